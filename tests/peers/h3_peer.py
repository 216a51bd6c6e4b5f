# An HTTP/3 peer process for interop tests and the benchmark: aioquic 1.7.2's
# or qh3 2.1.0's H3Connection (`--impl aioquic|qh3`) over its own asyncio
# QUIC, as a server or a client.  Owns only this process's HTTP/3 logic; the
# harness that starts it and reads its output is tests/h3_peers.py.
#
# Server (ALPN "h3", cert/key from args) serves --root:
#   GET|HEAD /path   200 with the file (a directory: its index.html), else 404
#   POST /echo       200; the request body streamed back as it arrives, then a
#                    trailer section "x-sha256: <hex digest of the body>"
# It prints {"event": "listening", "port": P} first, then one
# {"event": "request", ...} line per finished response (method, path, status,
# bytes sent) and {"event": "handshake"/"terminated"} per connection.
#
# Client: one connection; `--mode get` downloads the URLs into --out with at
# most --concurrency requests in flight and prints one result line per URL
# ({"event": "response", url, status, bytes, sha256, seconds, file, trailers});
# `--mode post` sends --body-size pattern bytes (tests/peers/pattern.py) to each
# URL and checks nothing itself (the line carries the trailers); `--mode rps`
# sends --requests GETs of one URL with --concurrency in flight and prints
# {"event": "rps", requests, seconds, rps, errors}.  Last line:
# {"event": "done", "ok": bool}; the exit status is 0 only if every request
# got a 2xx status and the connection held.
#
# The differences between the two libraries handled here: qh3 always sends
# SETTINGS_H3_DATAGRAM=1 (so it must also send max_datagram_frame_size); it reports a
# peer's RESET_STREAM / STOP_SENDING as H3 events of its own (aioquic only at
# the QUIC layer), can announce 1xx responses as InformationalHeadersReceived,
# and keys DatagramReceived by flow_id.
from __future__ import annotations

import argparse
import asyncio
import hashlib
import mimetypes
import os
import sys
import time
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pattern import chunks  # noqa: E402
from peer_io import emit, measure_rps, until_stdin_closes  # noqa: E402

ALPN = "h3"
FILE_CHUNK = 1 << 20  # one DATA frame per MiB read from disk


class Lib:
    """aioquic or qh3 behind one set of names (qh3 is a fork: same module layout)."""

    def __init__(self, impl: str) -> None:
        self.impl = impl
        if impl == "aioquic":
            import aioquic.asyncio as aio
            from aioquic.h3 import connection as h3c
            from aioquic.h3 import events as h3e
            from aioquic.quic import events as qe
            from aioquic.quic.configuration import QuicConfiguration
        elif impl == "qh3":
            import qh3.asyncio as aio
            from qh3.h3 import connection as h3c
            from qh3.h3 import events as h3e
            from qh3.quic import events as qe
            from qh3.quic.configuration import QuicConfiguration
        else:
            raise SystemExit(f"unknown implementation {impl!r}")
        self.aio, self.h3c, self.h3e, self.qe = aio, h3c, h3e, qe
        self.QuicConfiguration = QuicConfiguration
        # Only in qh3: H3-level reset/stop events and 1xx headers.
        self.H3Reset = getattr(h3e, "StreamReset", None)
        self.H3Stop = getattr(h3e, "StopSending", None)
        self.Informational = getattr(h3e, "InformationalHeadersReceived", None)

    def configuration(self, args, is_client: bool):
        kwargs = dict(is_client=is_client, alpn_protocols=[ALPN], idle_timeout=args.idle_timeout)
        if args.max_data:
            kwargs["max_data"] = args.max_data
        if args.max_stream_data:
            kwargs["max_stream_data"] = args.max_stream_data
        config = self.QuicConfiguration(**kwargs)
        if self.impl == "qh3":
            # qh3's H3Connection always sends SETTINGS_H3_DATAGRAM=1, and RFC 9297
            # section 2.1.1 makes that a connection error (H3_SETTINGS_ERROR) at
            # the peer unless the max_datagram_frame_size transport parameter came too.
            config.max_datagram_frame_size = 65536
        if is_client:
            config.server_name = args.server_name
            if args.insecure:
                import ssl

                config.verify_mode = ssl.CERT_NONE
            else:
                config.load_verify_locations(cafile=args.ca)
        else:
            config.load_cert_chain(args.cert, args.key)
        if args.keylog:
            config.secrets_log_file = open(args.keylog, "a")
        return config


def header(headers, name: bytes) -> Optional[bytes]:
    for k, v in headers:
        if k == name:
            return v
    return None


# --- server --------------------------------------------------------------------------------


def resolve(root: Path, raw_path: str) -> Optional[Path]:
    """The file a request path names inside root, or None (missing, or outside root)."""
    path = unquote(raw_path.split("?", 1)[0].split("#", 1)[0])
    if not path.startswith("/"):
        return None
    target = (root / path.lstrip("/")).resolve()
    if target != root and root not in target.parents:
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def server_protocol(lib: Lib, root: Path):
    qe, h3e = lib.qe, lib.h3e

    class H3Server(lib.aio.QuicConnectionProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = None
            self.requests: dict[int, dict] = {}

        def quic_event_received(self, event) -> None:
            if isinstance(event, qe.HandshakeCompleted):
                emit({"event": "handshake", "alpn": event.alpn_protocol,
                      "session_resumed": bool(event.session_resumed)})
            elif isinstance(event, qe.ConnectionTerminated):
                emit({"event": "terminated", "error_code": event.error_code, "reason": event.reason_phrase})
            elif isinstance(event, qe.StreamReset) and lib.H3Reset is None:  # aioquic
                self._abort(event.stream_id, "reset", event.error_code)
            if self.h3 is None and isinstance(event, (qe.HandshakeCompleted, qe.StreamDataReceived)):
                self.h3 = lib.h3c.H3Connection(self._quic)
            if self.h3 is not None:
                for h3_event in self.h3.handle_event(event):
                    self.h3_event_received(h3_event)

        def _abort(self, sid: int, how: str, code: int) -> None:
            req = self.requests.pop(sid, None)
            if req is not None:
                emit({"event": "request_aborted", "stream_id": sid, "path": req["path"], "how": how,
                      "error_code": code})

        def h3_event_received(self, event) -> None:
            if isinstance(event, h3e.HeadersReceived):
                req = self.requests.get(event.stream_id)
                if req is None:
                    req = self.requests[event.stream_id] = {
                        "method": (header(event.headers, b":method") or b"").decode(),
                        "path": (header(event.headers, b":path") or b"").decode(),
                        "digest": hashlib.sha256(), "received": 0, "sent": 0}
                    self._start(event.stream_id, req)
                if event.stream_ended:  # a body-less request, or request trailers
                    self._finish(event.stream_id, req)
            elif isinstance(event, h3e.DataReceived):
                req = self.requests.get(event.stream_id)
                if req is None:
                    return
                req["digest"].update(event.data)
                req["received"] += len(event.data)
                if req.get("echo") and event.data:
                    self.h3.send_data(event.stream_id, event.data, end_stream=False)
                    req["sent"] += len(event.data)
                if event.stream_ended:
                    self._finish(event.stream_id, req)
            elif lib.H3Reset is not None and isinstance(event, lib.H3Reset):
                self._abort(event.stream_id, "reset", event.error_code)
            elif lib.H3Stop is not None and isinstance(event, lib.H3Stop):
                self._abort(event.stream_id, "stop_sending", event.error_code)

        def _start(self, sid: int, req: dict) -> None:
            """Answer at once what needs no body; /echo answers as the body comes."""
            method, path = req["method"], req["path"]
            if method == "POST" and path.split("?", 1)[0] == "/echo":
                req["echo"] = True
                self.h3.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/octet-stream")])
                req["status"] = 200
                return
            if method not in ("GET", "HEAD"):
                req["status"] = 405
                self.h3.send_headers(sid, [(b":status", b"405")], end_stream=True)
                return
            target = resolve(root, path)
            if target is None:
                req["status"] = 404
                body = b"not found\n"
                self.h3.send_headers(sid, [(b":status", b"404"), (b"content-type", b"text/plain"),
                                           (b"content-length", str(len(body)).encode())],
                                     end_stream=method == "HEAD")
                if method == "GET":
                    self.h3.send_data(sid, body, end_stream=True)
                    req["sent"] = len(body)
                return
            size = target.stat().st_size
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            req["status"] = 200
            self.h3.send_headers(sid, [(b":status", b"200"), (b"content-type", ctype.encode()),
                                       (b"content-length", str(size).encode()),
                                       (b"cache-control", b"no-store")],
                                 end_stream=method == "HEAD" or size == 0)
            if method == "GET" and size:
                # Queued whole: neither library's raw API has send backpressure.
                with open(target, "rb") as f:
                    sent = 0
                    while sent < size:
                        block = f.read(min(FILE_CHUNK, size - sent))
                        if not block:
                            break
                        sent += len(block)
                        self.h3.send_data(sid, block, end_stream=sent >= size)
                req["sent"] = sent

        def _finish(self, sid: int, req: dict) -> None:
            """The request ended (FIN): close /echo with its trailer, log the request."""
            if req.get("echo"):
                digest = req["digest"].hexdigest().encode()
                self.h3.send_headers(sid, [(b"x-sha256", digest)], end_stream=True)
            self.requests.pop(sid, None)
            emit({"event": "request", "stream_id": sid, "method": req["method"], "path": req["path"],
                  "status": req.get("status"), "bytes": req["sent"], "body_bytes": req["received"]})
            self.transmit()

    return H3Server


async def run_server(lib: Lib, args) -> None:
    config = lib.configuration(args, is_client=False)
    root = Path(args.root).resolve()
    tickets: dict = {}
    server = await lib.aio.serve(
        args.host, args.port, configuration=config, create_protocol=server_protocol(lib, root),
        session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t),
        session_ticket_fetcher=lambda label: tickets.pop(label, None))
    port = server._transport.get_extra_info("sockname")[1]
    emit({"event": "listening", "port": port, "pid": os.getpid()})
    await until_stdin_closes()  # the harness owns our lifetime
    server.close()


# --- client --------------------------------------------------------------------------------


class RequestFailed(Exception):
    pass


def client_protocol(lib: Lib):
    qe, h3e = lib.qe, lib.h3e

    class H3Client(lib.aio.QuicConnectionProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = lib.h3c.H3Connection(self._quic)
            self.loop = asyncio.get_running_loop()
            self.streams: dict[int, dict] = {}
            self.terminated: Optional[str] = None

        def request(self, method: str, url: str, body: int = 0, sink=None) -> asyncio.Future:
            """Send one request; the future resolves to the stream's record at its FIN."""
            u = urlsplit(url)
            path = (u.path or "/") + (f"?{u.query}" if u.query else "")
            sid = self._quic.get_next_available_stream_id()
            st = self.streams[sid] = {"headers": None, "trailers": None, "digest": hashlib.sha256(),
                                      "bytes": 0, "sink": sink, "done": self.loop.create_future()}
            if self.terminated:
                st["done"].set_exception(RequestFailed(f"connection closed: {self.terminated}"))
                return st["done"]
            headers = [(b":method", method.encode()), (b":scheme", b"https"),
                       (b":authority", u.netloc.encode()), (b":path", path.encode()),
                       (b"user-agent", f"h3_peer/{lib.impl}".encode())]
            if body:
                headers.append((b"content-length", str(body).encode()))
            self.h3.send_headers(sid, headers, end_stream=not body)
            if body:
                parts = list(chunks(body))
                for i, part in enumerate(parts):
                    self.h3.send_data(sid, bytes(part), end_stream=i == len(parts) - 1)
            self.transmit()
            return st["done"]

        def _fail(self, sid: int, why: str) -> None:
            st = self.streams.get(sid)
            if st is not None and not st["done"].done():
                st["done"].set_exception(RequestFailed(why))

        def quic_event_received(self, event) -> None:
            if isinstance(event, qe.ConnectionTerminated):
                self.terminated = f"error {event.error_code:#x} {event.reason_phrase!r}"
                for sid in list(self.streams):
                    self._fail(sid, f"connection closed: {self.terminated}")
            elif isinstance(event, qe.StreamReset) and lib.H3Reset is None:  # aioquic
                self._fail(event.stream_id, f"stream reset with {event.error_code:#x}")
            for h3_event in self.h3.handle_event(event):
                self.h3_event_received(h3_event)

        def h3_event_received(self, event) -> None:
            st = self.streams.get(getattr(event, "stream_id", -1))
            if lib.H3Reset is not None and isinstance(event, (lib.H3Reset, lib.H3Stop)):
                self._fail(event.stream_id, f"stream {type(event).__name__} with {event.error_code:#x}")
                return
            if st is None or getattr(event, "push_id", None) is not None:
                return
            if isinstance(event, h3e.HeadersReceived):
                if st["headers"] is None:
                    st["headers"] = event.headers
                else:
                    st["trailers"] = event.headers
            elif isinstance(event, h3e.DataReceived):
                if event.data:
                    st["digest"].update(event.data)
                    st["bytes"] += len(event.data)
                    if st["sink"] is not None:
                        st["sink"].write(event.data)
            else:
                return  # informational (1xx) headers and the rest: nothing to record
            if event.stream_ended and not st["done"].done():
                st["done"].set_result(st)

    return H3Client


class Client:
    def __init__(self, lib: Lib, args) -> None:
        self.lib = lib
        self.args = args
        self.config = lib.configuration(args, is_client=True)

    def connect(self, url: str):
        u = urlsplit(url)
        host = self.args.host or u.hostname
        port = self.args.port or u.port or 443
        return self.lib.aio.connect(host, port, configuration=self.config,
                                    create_protocol=client_protocol(self.lib))

    async def fetch(self, proto, method: str, url: str, out: Optional[Path], body: int) -> dict:
        t0 = time.perf_counter()
        sink = open(out, "wb") if out is not None else None
        try:
            st = await asyncio.wait_for(asyncio.shield(proto.request(method, url, body, sink)),
                                        self.args.timeout)
        finally:
            if sink is not None:
                sink.close()
        status = int(header(st["headers"] or [], b":status") or 0)
        length = header(st["headers"] or [], b"content-length")
        whole = length is None or method == "HEAD" or int(length) == st["bytes"]
        res = {"event": "response", "url": url, "method": method, "status": status, "bytes": st["bytes"],
               "sha256": st["digest"].hexdigest(), "seconds": time.perf_counter() - t0,
               "ok": 200 <= status < 300 and whole}
        if not whole:
            res["error"] = f"content-length {length.decode()} but {st['bytes']} bytes"
        if out is not None:
            res["file"] = str(out)
        if st["trailers"] is not None:
            res["trailers"] = {k.decode(): v.decode() for k, v in st["trailers"]}
        return res

    async def run(self) -> bool:
        args = self.args
        outdir = Path(args.out) if args.out else None
        if outdir is not None:
            outdir.mkdir(parents=True, exist_ok=True)
        ok = True
        try:
            async with self.connect(args.urls[0]) as proto:
                if args.mode == "rps":
                    res = await self.rps(proto, args.urls[0], args.requests, args.concurrency)
                    emit(res)
                    return res["errors"] == 0
                sem = asyncio.Semaphore(args.concurrency)
                names: set[str] = set()

                async def one(url: str) -> dict:
                    async with sem:
                        out = None
                        if outdir is not None and args.mode == "get":
                            out = outdir / unique_name(url, names)
                        try:
                            return await self.fetch(proto, "POST" if args.mode == "post" else "GET", url, out,
                                                    args.body_size if args.mode == "post" else 0)
                        except Exception as exc:  # reported per URL, so the harness sees what broke
                            return {"event": "response", "url": url, "ok": False,
                                    "error": f"{type(exc).__name__}: {exc}"}

                for res in await asyncio.gather(*(one(u) for u in args.urls)):
                    ok &= res["ok"]
                    emit(res)
        except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
            emit({"event": "connect_failed", "error": f"{type(exc).__name__}: {exc}"})
            return False
        return ok

    async def rps(self, proto, url: str, total: int, inflight: int) -> dict:
        """`total` GETs of one URL, `inflight` at a time on this one connection."""

        async def get_one() -> int:
            st = await asyncio.shield(proto.request("GET", url))
            if header(st["headers"] or [], b":status") != b"200":
                raise RequestFailed(f"status {header(st['headers'] or [], b':status')!r}")
            return st["bytes"]

        return await measure_rps(get_one, url, total, inflight, self.args.timeout)


def unique_name(url: str, taken: set[str]) -> str:
    base = os.path.basename(urlsplit(url).path) or "index.html"
    name, n = base, 1
    while name in taken:
        name = f"{base}.{n}"
        n += 1
    taken.add(name)
    return name


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, choices=["aioquic", "qh3"])
    ap.add_argument("--role", required=True, choices=["server", "client"])
    ap.add_argument("--host", default="", help="server: address to bind; client: address to connect to "
                    "(default: the URL's host)")
    ap.add_argument("--port", type=int, default=0, help="server: 0 = any; client: overrides the URL's port")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--root", default=".", help="server: directory served")
    ap.add_argument("--ca", help="client: CA file to trust")
    ap.add_argument("--insecure", action="store_true", help="client: no certificate verification")
    ap.add_argument("--server-name", default="localhost", help="client: SNI and name verified")
    ap.add_argument("--mode", default="get", choices=["get", "post", "rps"])
    ap.add_argument("--out", default="", help="client get: directory for the downloads")
    ap.add_argument("--concurrency", type=int, default=1, help="client: requests in flight")
    ap.add_argument("--requests", type=int, default=1000, help="client rps: requests in total")
    ap.add_argument("--body-size", type=int, default=0, help="client post: pattern bytes per request")
    ap.add_argument("--timeout", type=float, default=60.0, help="client: per request")
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    ap.add_argument("--max-data", type=int, default=0)
    ap.add_argument("--max-stream-data", type=int, default=0)
    ap.add_argument("--keylog", default=os.environ.get("SSLKEYLOGFILE", ""))
    ap.add_argument("urls", nargs="*")
    args = ap.parse_args()
    lib = Lib(args.impl)
    if args.role == "server":
        args.host = args.host or "127.0.0.1"
        asyncio.run(run_server(lib, args))
        return 0
    if not args.urls:
        ap.error("a client needs at least one URL")
    ok = asyncio.run(Client(lib, args).run())
    emit({"event": "done", "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
