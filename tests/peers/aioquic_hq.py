# An hq-interop (HTTP/0.9 over QUIC, ALPN "hq-interop") peer process for
# tests/test_hq_interop.py, on aioquic or qh3: a server serving a directory,
# or a client downloading paths into a directory.  Each library's own
# QuicConnectionProtocol (raw events) carries it; on aioquic the HTTP/0.9
# part is aioquic's own aioquic.h0.connection.H0Connection (what its
# interop-runner image uses).  qh3 ships no HTTP/0.9 code, so for it this
# file has a minimal stand-in of the same shape (MiniH0).
#
# Output: one JSON object per line on stdout, as tests/peers/raw_peer.py.
#   server: {"event": "listening", "port": P}, then {"event": "handshake",
#           "alpn": ...} and per request {"event": "request", "path", "status",
#           "bytes"} (status "200", or "reset" for a missing / refused file).
#   client: per path {"op": "get", "path", "ok", "bytes", "sha256", "seconds",
#           "reset": error code or null}, then {"event": "done", "ok": bool,
#           "seconds", "bytes"}.  All paths are requested at once, each on its
#           own stream; a reset stream is reported, not an error of the run.
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_io import emit, until_stdin_closes  # noqa: E402

ALPN = "hq-interop"
RESET_CODE = 0x1


class Lib:
    def __init__(self, impl: str) -> None:
        self.impl = impl
        if impl == "aioquic":
            import aioquic.asyncio as aio
            from aioquic.h0.connection import H0Connection
            from aioquic.h3.events import DataReceived, HeadersReceived
            from aioquic.quic import events
            from aioquic.quic.configuration import QuicConfiguration

            self.H0 = H0Connection
        elif impl == "qh3":
            import qh3.asyncio as aio
            from qh3.h3.events import DataReceived, HeadersReceived
            from qh3.quic import events
            from qh3.quic.configuration import QuicConfiguration

            self.H0 = None
        else:
            raise SystemExit(f"unknown implementation {impl!r}")
        self.aio = aio
        self.events = events
        self.QuicConfiguration = QuicConfiguration
        self.HeadersReceived = HeadersReceived
        self.DataReceived = DataReceived
        if self.H0 is None:
            self.H0 = mini_h0(self)

    def configuration(self, args, is_client: bool):
        config = self.QuicConfiguration(is_client=is_client, alpn_protocols=[ALPN], idle_timeout=args.idle_timeout)
        if is_client:
            config.server_name = "localhost"
            config.load_verify_locations(cafile=args.ca)
        else:
            config.load_cert_chain(args.cert, args.key)
        if args.keylog:
            config.secrets_log_file = open(args.keylog, "a")
        return config


def mini_h0(lib: Lib):
    """HTTP/0.9 on a QUIC connection for qh3 (which has none): the same
    calls and events as aioquic's H0Connection, written for this test."""
    ev = lib.events

    class MiniH0:
        def __init__(self, quic) -> None:
            self._quic = quic
            self._is_client = quic.configuration.is_client
            self._pending: dict[int, bytes] = {}
            self._started: set[int] = set()

        def handle_event(self, event) -> list:
            if not isinstance(event, ev.StreamDataReceived) or event.stream_id % 4 != 0:
                return []
            sid, out = event.stream_id, []
            data = event.data
            if sid not in self._started:
                if self._is_client:
                    out.append(lib.HeadersReceived(headers=[], stream_ended=False, stream_id=sid))
                else:
                    data = self._pending.pop(sid, b"") + data
                    if b"\n" not in data and not event.end_stream:
                        self._pending[sid] = data
                        return out
                    line = data.split(b"\n", 1)[0].rstrip(b"\r")
                    method, _, path = line.partition(b" ")
                    out.append(lib.HeadersReceived(headers=[(b":method", method), (b":path", path)],
                                                   stream_ended=False, stream_id=sid))
                    data = b""
                self._started.add(sid)
            out.append(lib.DataReceived(data=data, stream_ended=event.end_stream, stream_id=sid))
            return out

        def send_headers(self, stream_id: int, headers, end_stream: bool = False) -> None:
            if self._is_client:
                h = dict(headers)
                self._quic.send_stream_data(stream_id, h[b":method"] + b" " + h[b":path"] + b"\r\n", end_stream)
            else:
                self._quic.send_stream_data(stream_id, b"", end_stream)

        def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
            self._quic.send_stream_data(stream_id, data, end_stream)

    return MiniH0


# --- server --------------------------------------------------------------------------------


def resolve(root: str, path: str):
    """The served file for a request path, or None (refused or missing).
    The adapter's own rule: an absolute path with no ".." segment."""
    if not path.startswith("/") or ".." in path.split("/"):
        return None
    full = os.path.realpath(os.path.join(root, path.lstrip("/")))
    if not full.startswith(os.path.realpath(root) + os.sep) or not os.path.isfile(full):
        return None
    return full


def server_protocol(lib: Lib, root: str):
    ev = lib.events

    class HqServer(lib.aio.QuicConnectionProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.h0 = lib.H0(self._quic)

        def quic_event_received(self, event) -> None:
            if isinstance(event, ev.HandshakeCompleted):
                emit({"event": "handshake", "alpn": event.alpn_protocol})
            elif isinstance(event, ev.StreamReset):
                emit({"event": "stream_reset", "stream_id": event.stream_id, "error_code": event.error_code})
            for h_event in self.h0.handle_event(event):
                if isinstance(h_event, lib.HeadersReceived):
                    self.answer(h_event.stream_id, dict(h_event.headers))

        def answer(self, sid: int, headers: dict) -> None:
            method = headers.get(b":method", b"").decode(errors="replace")
            path = headers.get(b":path", b"").decode(errors="replace")
            full = resolve(root, path) if method == "GET" else None
            if full is None:
                self._quic.reset_stream(sid, RESET_CODE)
                emit({"event": "request", "path": path, "status": "reset", "bytes": 0})
            else:
                with open(full, "rb") as f:
                    body = f.read()
                self.h0.send_headers(sid, [(b":status", b"200")])
                self.h0.send_data(sid, body, end_stream=True)
                emit({"event": "request", "path": path, "status": "200", "bytes": len(body)})
            self.transmit()

    return HqServer


async def run_server(lib: Lib, args) -> None:
    config = lib.configuration(args, is_client=False)
    server = await lib.aio.serve(args.host, args.port, configuration=config,
                                 create_protocol=server_protocol(lib, args.root))
    port = args.port or server._transport.get_extra_info("sockname")[1]
    emit({"event": "listening", "port": port, "pid": os.getpid()})
    await until_stdin_closes()  # the harness owns our lifetime
    server.close()


# --- client --------------------------------------------------------------------------------


def client_protocol(lib: Lib):
    ev = lib.events

    class HqClient(lib.aio.QuicConnectionProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.h0 = lib.H0(self._quic)
            self.loop = asyncio.get_running_loop()
            self.streams: dict[int, dict] = {}
            self.alpn = None

        def get(self, path: str, dest: str) -> int:
            sid = self._quic.get_next_available_stream_id()
            self.streams[sid] = {"file": open(dest, "wb"), "sha": hashlib.sha256(), "n": 0,
                                 "done": self.loop.create_future()}
            self.h0.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                       (b":authority", b"localhost"), (b":path", path.encode())])
            self.h0.send_data(sid, b"", end_stream=True)
            self.transmit()
            return sid

        def quic_event_received(self, event) -> None:
            if isinstance(event, ev.HandshakeCompleted):
                self.alpn = event.alpn_protocol
            elif isinstance(event, ev.StreamReset):
                self.finish(event.stream_id, ("reset", event.error_code))
            elif isinstance(event, ev.ConnectionTerminated):
                for sid in list(self.streams):
                    self.finish(sid, ("terminated", event.error_code))
            for h_event in self.h0.handle_event(event):
                if isinstance(h_event, lib.DataReceived):
                    st = self.streams.get(h_event.stream_id)
                    if st is None:
                        continue
                    st["file"].write(h_event.data)
                    st["sha"].update(h_event.data)
                    st["n"] += len(h_event.data)
                    if h_event.stream_ended:
                        self.finish(h_event.stream_id, ("fin", None))

        def finish(self, sid: int, how: tuple) -> None:
            st = self.streams.get(sid)
            if st is not None and not st["done"].done():
                st["file"].close()
                st["done"].set_result(how)

    return HqClient


async def run_client(lib: Lib, args) -> bool:
    config = lib.configuration(args, is_client=True)
    os.makedirs(args.output, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    async with lib.aio.connect(args.host, args.port, configuration=config,
                               create_protocol=client_protocol(lib)) as proto:
        starts, sids = {}, {}
        for path in args.paths:
            dest = os.path.join(args.output, os.path.basename(path) or "index")
            starts[path] = time.perf_counter()
            sids[path] = proto.get(path, dest)

        async def one(path: str) -> dict:
            st = proto.streams[sids[path]]
            how, code = await asyncio.wait_for(asyncio.shield(st["done"]), args.timeout)
            return {"op": "get", "path": path, "ok": how == "fin", "bytes": st["n"], "sha256": st["sha"].hexdigest(),
                    "seconds": time.perf_counter() - starts[path], "reset": code if how == "reset" else None,
                    "ended": how, "alpn": proto.alpn}

        try:
            results = await asyncio.gather(*(one(p) for p in args.paths))
        except asyncio.TimeoutError:
            emit({"event": "timeout", "pending": [p for p in args.paths if not proto.streams[sids[p]]["done"].done()]})
            return False
    for res in results:
        emit(res)
    # ok: every stream ended (FIN or reset, which the test judges), none timed out.
    emit({"event": "done", "ok": True, "seconds": time.perf_counter() - t0, "bytes": sum(r["bytes"] for r in results)})
    return True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, choices=["aioquic", "qh3"])
    ap.add_argument("--role", required=True, choices=["server", "client"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--root", help="server: the directory served")
    ap.add_argument("--output", help="client: the directory downloads go to")
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="client: for all downloads")
    ap.add_argument("--keylog", default=os.environ.get("SSLKEYLOGFILE", ""))
    ap.add_argument("paths", nargs="*", help="client: the paths to GET")
    args = ap.parse_args()
    lib = Lib(args.impl)
    if args.role == "server":
        if not args.root:
            ap.error("--root is required for a server")
        asyncio.run(run_server(lib, args))
        return 0
    if not args.output:
        ap.error("--output is required for a client")
    return 0 if asyncio.run(run_client(lib, args)) else 1


if __name__ == "__main__":
    sys.exit(main())
