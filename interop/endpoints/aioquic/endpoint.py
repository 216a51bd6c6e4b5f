# Interop endpoint adapter for aioquic 1.7.2 and qh3 2.1.0 (`--impl aioquic|qh3`):
# the program interop/endpoints/{aioquic,qh3}/run_endpoint.sh start, because
# neither pip package ships its interop examples.  Owns only this process:
# one QuicConnectionProtocol serving or fetching files over hq-interop
# (HTTP/0.9: aioquic's own H0Connection; for qh3, which has none, the small
# H09 class below) or h3 (the library's H3Connection), picked by the ALPN.
#
# Server: serves --www on --host/--port with --certs/{cert.pem,priv.key},
# accepting both "hq-interop" and "h3" (so an h3-only client interoperates),
# keeps session tickets in memory (resumption, 0-RTT), optional Retry.
# Client: fetches the URLs into --downloads, named by the path's last
# segment; --mode decides the connections: "one" (all URLs concurrently on
# one connection), "each" (one connection per URL, in turn), "resume" (the
# first URL, then the rest on a second connection resuming the session),
# "zerortt" (the same, the rest sent as 0-RTT).  Exit 0 only if every URL
# came back complete (h3: status 200).
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import ssl
import sys
from typing import Optional
from urllib.parse import urlsplit

HQ, H3 = "hq-interop", "h3"
QH3_WINDOW = 32  # qh3 client: requests in flight at once (see one_connection)


class Lib:
    """aioquic or qh3 behind one set of names (qh3 is a fork with the same layout)."""

    def __init__(self, impl: str) -> None:
        self.impl = impl
        if impl == "aioquic":
            import aioquic.asyncio as aio
            from aioquic.h0.connection import H0Connection
            from aioquic.h3.connection import H3Connection
            from aioquic.h3.events import DataReceived, HeadersReceived
            from aioquic.quic import events
            from aioquic.quic.configuration import QuicConfiguration
            from aioquic.quic.logger import QuicFileLogger
            from aioquic.quic.packet import QuicProtocolVersion
            from aioquic.tls import CipherSuite
        else:
            import qh3.asyncio as aio
            from qh3.h3.connection import H3Connection
            from qh3.h3.events import DataReceived, HeadersReceived
            from qh3.quic import events
            from qh3.quic.configuration import QuicConfiguration
            from qh3.quic.logger import QuicFileLogger
            from qh3.quic.packet import QuicProtocolVersion
            from qh3.tls import CipherSuite

            H0Connection = None
        self.aio, self.events, self.QuicConfiguration = aio, events, QuicConfiguration
        self.H3Connection, self.HeadersReceived, self.DataReceived = H3Connection, HeadersReceived, DataReceived
        self.QuicFileLogger, self.Version, self.CipherSuite = QuicFileLogger, QuicProtocolVersion, CipherSuite
        self.H0Connection = H0Connection or self._h09()

    def _h09(self):
        lib = self

        class H09:
            """HTTP/0.9 on client bidirectional streams, with H0Connection's calls and events."""

            def __init__(self, quic) -> None:
                self._quic = quic
                self._client = quic.configuration.is_client
                self._buf: dict[int, bytes] = {}
                self._seen: set[int] = set()

            def handle_event(self, event) -> list:
                if not isinstance(event, lib.events.StreamDataReceived) or event.stream_id % 4 != 0:
                    return []
                sid, data, out = event.stream_id, event.data, []
                if sid not in self._seen:
                    if self._client:
                        out.append(lib.HeadersReceived(headers=[], stream_ended=False, stream_id=sid))
                    else:  # the request line, possibly split over several frames
                        data = self._buf.pop(sid, b"") + data
                        if b"\n" not in data and not event.end_stream:
                            self._buf[sid] = data
                            return []
                        method, _, path = data.split(b"\n", 1)[0].strip().partition(b" ")
                        out.append(lib.HeadersReceived(headers=[(b":method", method), (b":path", path.strip())],
                                                       stream_ended=False, stream_id=sid))
                        data = b""
                    self._seen.add(sid)
                out.append(lib.DataReceived(data=data, stream_ended=event.end_stream, stream_id=sid))
                return out

            def send_headers(self, stream_id: int, headers, end_stream: bool = False) -> None:
                if self._client:
                    h = dict(headers)
                    self._quic.send_stream_data(stream_id, h[b":method"] + b" " + h[b":path"] + b"\r\n", end_stream)
                elif end_stream:
                    self._quic.send_stream_data(stream_id, b"", True)

            def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
                self._quic.send_stream_data(stream_id, data, end_stream)

        return H09

    def configuration(self, args, is_client: bool):
        config = self.QuicConfiguration(is_client=is_client, alpn_protocols=list(args.alpn), idle_timeout=30.0)
        # qh3's H3Connection always announces SETTINGS_H3_DATAGRAM, which RFC 9297
        # only allows with the max_datagram_frame_size transport parameter.
        config.max_datagram_frame_size = 65536
        if args.v2:  # v1 first packet, v2 preferred (compatible version negotiation, RFC 9368)
            config.supported_versions = [self.Version.VERSION_2, self.Version.VERSION_1]
            if is_client:
                config.original_version = self.Version.VERSION_1
        if args.chacha20:
            config.cipher_suites = [self.CipherSuite.CHACHA20_POLY1305_SHA256]
        if args.keylog:
            config.secrets_log_file = open(args.keylog, "a")
        if args.qlog_dir:
            os.makedirs(args.qlog_dir, exist_ok=True)
            config.quic_logger = self.QuicFileLogger(args.qlog_dir)
        if not is_client:
            config.load_cert_chain(os.path.join(args.certs, "cert.pem"), os.path.join(args.certs, "priv.key"))
        else:
            config.verify_mode = ssl.CERT_NONE
        return config


def make_protocol(lib: Lib, args):
    ev = lib.events

    class Endpoint(lib.aio.QuicConnectionProtocol):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.http = None
            self.loop = asyncio.get_running_loop()
            self.fetches: dict[int, dict] = {}

        def _setup(self, alpn: Optional[str]) -> None:
            if self.http is None:
                self.http = (lib.H3Connection if alpn == H3 else lib.H0Connection)(self._quic)

        def quic_event_received(self, event) -> None:
            if isinstance(event, ev.ProtocolNegotiated):
                self._setup(event.alpn_protocol)
            elif isinstance(event, ev.HandshakeCompleted):
                self._setup(event.alpn_protocol)
            elif isinstance(event, ev.StreamReset):
                self._end(event.stream_id, f"reset by peer (code {event.error_code})")
            elif isinstance(event, ev.ConnectionTerminated):
                print(f"connection closed: code {event.error_code}, frame {event.frame_type}, "
                      f"reason {event.reason_phrase!r}", flush=True)
                for sid in list(self.fetches):
                    self._end(sid, f"connection closed (code {event.error_code}: {event.reason_phrase})")
            if self.http is None:
                return
            for h in self.http.handle_event(event):
                if isinstance(h, lib.HeadersReceived):
                    if self._quic.configuration.is_client:
                        self._on_response_headers(h)
                    else:
                        self._serve(h.stream_id, dict(h.headers))
                elif isinstance(h, lib.DataReceived) and h.stream_id in self.fetches:
                    f = self.fetches[h.stream_id]
                    f["file"].write(h.data)
                    if h.stream_ended:
                        self._end(h.stream_id, None)

        # -- server
        def _serve(self, sid: int, headers: dict) -> None:
            path = headers.get(b":path", b"").decode(errors="replace").split("?")[0]
            full = resolve(args.www, path)
            if headers.get(b":method") not in (b"GET", None) or full is None:
                print(f"{path}: not found", flush=True)
                if isinstance(self.http, lib.H3Connection):
                    self.http.send_headers(sid, [(b":status", b"404")], end_stream=True)
                else:
                    self._quic.reset_stream(sid, 0x1)
            else:
                with open(full, "rb") as fh:
                    body = fh.read()
                self.http.send_headers(sid, [(b":status", b"200"), (b"content-length", str(len(body)).encode())])
                self.http.send_data(sid, body, end_stream=True)
                print(f"{path}: 200, {len(body)} bytes", flush=True)
            self.transmit()

        # -- client
        def fetch(self, url: str) -> asyncio.Future:
            parts = urlsplit(url)
            sid = self._quic.get_next_available_stream_id()
            self._setup(self._quic.configuration.alpn_protocols[0])
            dest = os.path.join(args.downloads, os.path.basename(parts.path) or "index.html")
            done = self.loop.create_future()
            self.fetches[sid] = {"file": open(dest, "wb"), "done": done, "url": url}
            self.http.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                         (b":authority", parts.netloc.encode()), (b":path", (parts.path or "/").encode())],
                                   end_stream=True)
            self.transmit()
            return done

        def _on_response_headers(self, h) -> None:
            status = dict(h.headers).get(b":status")
            if status is not None and status != b"200" and h.stream_id in self.fetches:
                self._end(h.stream_id, f"status {status.decode(errors='replace')}")

        def _end(self, sid: int, error: Optional[str]) -> None:
            f = self.fetches.get(sid)
            if f is not None and not f["done"].done():
                f["file"].close()
                f["done"].set_result(error)

    return Endpoint


def resolve(root: str, path: str) -> Optional[str]:
    """The file under root a request path names, or None (missing, or outside root)."""
    if not path.startswith("/"):
        return None
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, path.lstrip("/")))
    if os.path.isdir(full):
        full = os.path.join(full, "index.html")
    if not full.startswith(real_root + os.sep) or not os.path.isfile(full):
        return None
    return full


async def run_server(lib: Lib, args) -> None:
    config = lib.configuration(args, is_client=False)
    tickets: dict = {}
    server = await lib.aio.serve(args.host, args.port, configuration=config, create_protocol=make_protocol(lib, args),
                                 session_ticket_fetcher=tickets.pop,
                                 session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t),
                                 retry=args.retry)
    print(f"{lib.impl} server listening on [{args.host}]:{args.port}, alpn {config.alpn_protocols}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def sni_for(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return "server"
    except ValueError:
        return host


async def one_connection(lib: Lib, args, urls: list[str], ticket=None, early: bool = False,
                         token: bytes = b"", tokens: Optional[list] = None) -> tuple[bool, object]:
    parts = urlsplit(urls[0])
    config = lib.configuration(args, is_client=True)
    config.server_name = sni_for(parts.hostname)
    config.session_ticket = ticket
    config.token = token  # a NEW_TOKEN token from the last connection (RFC 9000 §8.1.3)
    extra = {} if tokens is None else {"token_handler": tokens.append}
    got_ticket: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_ticket(t) -> None:
        if not got_ticket.done():
            got_ticket.set_result(t)

    async with lib.aio.connect(parts.hostname, parts.port or 443, configuration=config,
                               create_protocol=make_protocol(lib, args), session_ticket_handler=on_ticket,
                               wait_connected=not early, **extra) as proto:
        if args.key_update:
            # RFC 9001 §6.1: no key update before the handshake is confirmed
            # (HANDSHAKE_DONE received; neither library reports it as an event).
            deadline = asyncio.get_running_loop().time() + args.timeout
            while not proto._quic._handshake_confirmed:
                if asyncio.get_running_loop().time() > deadline:
                    raise asyncio.TimeoutError("handshake not confirmed")
                await asyncio.sleep(0.005)
            proto._quic.request_key_update()
            print("key update requested", flush=True)
        # qh3 raises (and leaves its stream bookkeeping behind) when a request
        # would exceed the peer's stream limit instead of waiting for
        # MAX_STREAMS: keep its requests in flight well under any limit.
        window = asyncio.Semaphore(QH3_WINDOW if lib.impl == "qh3" else len(urls))

        async def one(url: str):
            async with window:
                return await proto.fetch(url)

        results = await asyncio.wait_for(asyncio.gather(*(one(u) for u in urls)), args.timeout)
        ok = True
        for url, error in zip(urls, results):
            print(f"{url}: {'ok' if error is None else error}", flush=True)
            ok = ok and error is None
        if args.mode in ("resume", "zerortt") and ticket is None:
            try:
                await asyncio.wait_for(asyncio.shield(got_ticket), 2.0)
            except asyncio.TimeoutError:
                print("no session ticket received", flush=True)
        proto.close()
        await proto.wait_closed()
    return ok, (got_ticket.result() if got_ticket.done() else None)


async def run_client(lib: Lib, args) -> bool:
    os.makedirs(args.downloads, exist_ok=True)
    urls = args.urls
    if args.mode == "each":
        results = [(await one_connection(lib, args, [u]))[0] for u in urls]
        return all(results)
    if args.mode == "newtoken" and len(urls) > 1:
        tokens: list = []
        ok, _ = await one_connection(lib, args, urls[:1], tokens=tokens)
        if not tokens:
            print("no NEW_TOKEN received", flush=True)
            return False
        ok2, _ = await one_connection(lib, args, urls[1:], token=tokens[-1])
        return ok and ok2
    if args.mode in ("resume", "zerortt") and len(urls) > 1:
        ok, ticket = await one_connection(lib, args, urls[:1])
        if ticket is None:
            return False
        ok2, _ = await one_connection(lib, args, urls[1:], ticket=ticket, early=args.mode == "zerortt")
        return ok and ok2
    return (await one_connection(lib, args, urls))[0]


def main() -> int:
    ap = argparse.ArgumentParser(description="aioquic / qh3 interop endpoint")
    ap.add_argument("--impl", required=True, choices=["aioquic", "qh3"])
    ap.add_argument("--role", required=True, choices=["server", "client"])
    ap.add_argument("--alpn", action="append", help="ALPN offered (repeatable; default hq-interop)")
    ap.add_argument("--host", default="::")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--www", default="/www")
    ap.add_argument("--certs", default="/certs")
    ap.add_argument("--downloads", default="/downloads")
    ap.add_argument("--retry", action="store_true", help="server: validate addresses with Retry")
    ap.add_argument("--mode", default="one", choices=["one", "each", "resume", "zerortt", "newtoken"])
    ap.add_argument("--key-update", action="store_true")
    ap.add_argument("--chacha20", action="store_true")
    ap.add_argument("--v2", action="store_true")
    ap.add_argument("--keylog", default=os.environ.get("SSLKEYLOGFILE") or None)
    ap.add_argument("--qlog-dir", default=os.environ.get("QLOGDIR") or None)
    ap.add_argument("--timeout", type=float, default=180.0, help="client: seconds for each connection's requests")
    ap.add_argument("urls", nargs="*")
    args = ap.parse_args()
    args.alpn = args.alpn or [HQ]
    lib = Lib(args.impl)
    if args.role == "server":
        asyncio.run(run_server(lib, args))
        return 0
    try:
        return 0 if asyncio.run(run_client(lib, args)) else 1
    except (asyncio.TimeoutError, ConnectionError, OSError) as exc:
        print(f"client failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
