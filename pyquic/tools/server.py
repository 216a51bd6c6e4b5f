# `python -m pyquic.server`: serve a directory over HTTP/3 and hq-interop on
# one UDP port.  This module owns the command: its options, the certificate
# (given, or a throwaway self-signed one for localhost whose SPKI pin is
# printed for chromium), mapping an HTTP/3 request path to a file under
# --root (percent-decoded; index.html for a directory; traversal out of the
# root refused), streaming files in chunks under the connection's
# backpressure (never read whole),
# the access log (one line per request, one per connection at its end) and
# the graceful stop on SIGINT/SIGTERM (GOAWAY on HTTP/3 connections, wait
# for the requests in progress, then close).
#
# Which protocol a connection speaks is its negotiated ALPN: every
# connection gets a ServerProtocol (pyquic.asyncio.h3.H3Protocol, which
# starts HTTP/3 when ALPN is "h3" and hands the streams of any other ALPN to
# the plain stream handler); hq-interop requests are answered by
# pyquic.asyncio.hq's handler, with this server's bookkeeping around it.
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import hashlib
import mimetypes
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote

from ..asyncio.hq import HqAccessRecord, hq_stream_handler
from ..config import QuicConfiguration
from ..errors import UsageError
from ..fleet import FleetSecrets
from ..versions import QUIC_V1, QUIC_V2

H3 = "h3"
HQ = "hq-interop"
ALPNS = [H3, HQ]
CHUNK = 128 * 1024  # file bytes read per step; send_data/drain bound what waits in memory
H3_NO_ERROR = 0x100
SHUTDOWN_GRACE = 10.0  # seconds requests in progress get after SIGINT/SIGTERM


# -- the certificate -------------------------------------------------------------------------------


def self_signed_files(directory: Path) -> tuple[Path, Path]:
    """tls.tools.server's self-signed localhost certificate and its key,
    written as PEM in directory.  Valid for 14 days: chromium accepts a
    pinned SPKI whatever the issuer, not a certificate that has expired."""
    from cryptography.hazmat.primitives import serialization

    from tls.tools.server import self_signed_credentials

    (cert,), key = self_signed_credentials(days=14)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def spki_pin(certificate: Any) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what chromium's
    --ignore-certificate-errors-spki-list takes."""
    from cryptography.hazmat.primitives import serialization

    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


# -- paths to files ----------------------------------------------------------------------------------


class Refused(Exception):
    """A path that tries to leave the root (403)."""


def resolve(root: Path, target: str) -> Optional[Path]:
    """The file a request target names under root (root is already
    resolved), or None when there is none (404).  Refused for a path that
    would leave the root: a ".." segment, a NUL, or a symbolic link that
    points outside."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        raise Refused(target)
    decoded = unquote(path, errors="strict") if "%" in path else path
    segments = [s for s in decoded.split("/") if s not in ("", ".")]
    if ".." in segments or "\x00" in decoded or any("\\" in s for s in segments):
        raise Refused(target)
    candidate = root.joinpath(*segments) if segments else root
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real != root and root not in real.parents:
        raise Refused(target)
    if real.is_dir():
        real = real / "index.html"
        if not real.is_file():
            return None
    return real if real.is_file() else None


def content_type(path: Path) -> str:
    kind, encoding = mimetypes.guess_type(path.name)
    if kind is None or encoding is not None:
        return "application/octet-stream"
    return kind + ("; charset=utf-8" if kind.startswith("text/") else "")


def show_address(addr: Any) -> str:
    if not addr:
        return "-"
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:"):
        host = host[7:]  # an IPv4 client of the dual-stack socket
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the server ----------------------------------------------------------------------------------------


class FileServer:
    """The handlers (h3 and hq), the access log and the stop."""

    def __init__(self, root: Path, quiet: bool = False) -> None:
        self.root = root
        self.quiet = quiet
        self.active: set[asyncio.Task] = set()  # requests in progress (both protocols)
        self.requests: dict[int, int] = {}  # id(protocol) -> requests served
        # Responses whose last bytes are written but not yet acknowledged,
        # by connection: closing before they are would lose them.  Pruned as
        # new ones come and when the connection ends, so it holds about as
        # many streams as are in flight.
        self.unacked: dict[Any, set[int]] = {}
        self._hq = hq_stream_handler(root, log=self._hq_logged)

    def log(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def access(self, addr: Any, alpn: str, method: str, path: str, status: Any, sent: int, seconds: float) -> None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.log(f"{stamp} {show_address(addr)} {alpn} {method} {path} {status} {sent} {seconds:.3f}s")

    def _track(self, protocol: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
            task.add_done_callback(self.active.discard)
        self.requests[id(protocol)] = self.requests.get(id(protocol), 0) + 1

    def _written(self, protocol: Any, stream_id: int) -> None:
        """A handler is done writing stream_id: remember it until acknowledged."""
        if protocol is None or protocol.quic.stream_send_buffered(stream_id) == 0:
            return
        streams = self.unacked.setdefault(protocol, set())
        streams.add(stream_id)
        streams.difference_update([s for s in streams if protocol.quic.stream_send_buffered(s) == 0])

    def forget(self, protocol: Any) -> None:
        self.unacked.pop(protocol, None)
        self.requests.pop(id(protocol), None)

    def all_acknowledged(self) -> bool:
        return not any(p.quic.stream_send_buffered(s) for p, streams in self.unacked.items() for s in streams)

    # -- HTTP/3
    async def handle_h3(self, request: Any) -> None:
        start = time.monotonic()
        protocol = request.connection
        self._track(protocol)
        status: Any = "-"
        try:
            status = await self._serve_h3(request)
        except ConnectionError:
            status = f"{request.status or '-'}(cancelled)"
        finally:
            self._written(protocol, request.stream_id)
            self.access(protocol.quic.peer_address, H3, request.method, request.path, status,
                        request.bytes_sent, time.monotonic() - start)

    async def _serve_h3(self, request: Any) -> int:
        text = [("content-type", "text/plain; charset=utf-8")]
        if request.method not in ("GET", "HEAD"):
            await request.respond(405, text + [("allow", "GET, HEAD")], b"only GET and HEAD\n")
            return 405
        try:
            path = resolve(self.root, request.path)
        except (Refused, UnicodeError):
            await request.respond(403, text, b"forbidden\n")
            return 403
        if path is None:
            await request.respond(404, text, b"not found\n")
            return 404
        try:
            f = open(path, "rb")
        except OSError:
            await request.respond(404, text, b"not found\n")
            return 404
        with f:
            size = os.fstat(f.fileno()).st_size
            headers = [("content-type", content_type(path)), ("content-length", str(size))]
            if request.method == "HEAD" or size == 0:
                await request.send_response(200, headers, end_stream=True)
                return 200
            await request.send_response(200, headers)
            left = size
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:  # the file shrank under us: the length promised cannot be kept
                    raise ConnectionError("file truncated while being sent")
                left -= len(chunk)
                await request.send_data(chunk, end_stream=left == 0)
        return 200

    # -- hq-interop: pyquic.asyncio.hq's handler, with this server's bookkeeping around it
    async def handle_hq(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = writer.get_extra_info("connection")
        stream_id = writer.get_extra_info("stream_id")
        if stream_id & 3 == 0:  # a request stream (the handler refuses the others)
            self._track(protocol)
        try:
            await self._hq(reader, writer)
        finally:
            self._written(protocol, stream_id)

    def _hq_logged(self, record: HqAccessRecord) -> None:
        status = record.status if record.status == "200" else f"{record.status}(reset)"
        self.access(record.peer, HQ, record.method, record.path, status, record.bytes, record.duration)


def make_server_protocol(files: FileServer) -> Any:
    """The per-connection protocol: H3Protocol (HTTP/3 for ALPN h3, plain
    streams to handle_hq otherwise) that also logs each connection's end."""
    from ..asyncio.h3 import H3Protocol
    from ..events import ConnectionTerminated, HandshakeCompleted

    class ServerProtocol(H3Protocol):
        def __init__(self, quic: Any, stream_handler: Any = None) -> None:
            super().__init__(quic, stream_handler, request_handler=files.handle_h3)
            self._handshake: Optional[HandshakeCompleted] = None

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, HandshakeCompleted):
                self._handshake = event
            elif isinstance(event, ConnectionTerminated) and self._handshake is not None:
                quic = self.quic
                hs = self._handshake
                version = {QUIC_V1: "QUIC v1", QUIC_V2: "QUIC v2"}.get(quic.version, f"0x{quic.version:08x}")
                served = files.requests.get(id(self), 0)
                files.log(
                    f"connection {show_address(quic.peer_address)} {hs.alpn_protocol} closed: "
                    f"{served} requests, {version}, key phase {quic.key_phase}, "
                    f"{'resumed' if hs.session_resumed else 'full handshake'}, "
                    f"{'0-RTT accepted' if hs.early_data_accepted else 'no 0-RTT'}, "
                    f"error 0x{event.error_code:x} {event.reason_phrase!r}")
            if isinstance(event, ConnectionTerminated):
                files.forget(self)
            super().quic_event_received(event)

    return ServerProtocol


async def stop_gracefully(server: Any, files: FileServer, grace: float) -> None:
    """GOAWAY on every HTTP/3 connection (RFC 9114 §5.2: no new requests),
    let the requests in progress finish (at most `grace` seconds), then
    close every connection and the socket."""
    protocols = list(server.connections)
    for protocol in protocols:
        send_goaway = getattr(protocol, "send_goaway", None)
        if send_goaway is not None:
            try:
                send_goaway()
            except Exception:  # a connection already closing (the peer's close) takes no GOAWAY
                pass
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    if files.active:
        await asyncio.wait(set(files.active), timeout=grace)
    # A handler returns once its last bytes are queued: let the peer have them.
    while not files.all_acknowledged() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for protocol in protocols:
        h3 = getattr(protocol, "h3", None)
        try:
            protocol.close(error_code=H3_NO_ERROR if h3 is not None else 0)
        except Exception:
            pass
    server.close()
    await server.wait_closed()


async def serve_files(args: argparse.Namespace, config: QuicConfiguration) -> int:
    from ..asyncio import serve

    root = Path(args.root).resolve()
    files = FileServer(root, quiet=args.quiet)
    worker = getattr(args, "worker", None)
    server = await serve(args.host, args.port, configuration=config, create_protocol=make_server_protocol(files),
                         stream_handler=files.handle_hq, retry=args.retry, sock=getattr(args, "sock", None),
                         **getattr(args, "endpoint_kwargs", {}))
    addr = server.local_address
    host = args.host if ":" not in args.host else f"[{args.host}]"
    if worker is None:
        print(f"listening on {host}:{addr[1]} ({', '.join(config.alpn_protocols)}), serving {root}", flush=True)
    if not args.cert:
        print(f"chromium: --origin-to-force-quic-on=localhost:{addr[1]} "
              f"--ignore-certificate-errors-spki-list={args.pin}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            os._exit(1)  # a second ^C: the user does not want to wait
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    print("stopping: GOAWAY, waiting for requests in progress", file=sys.stderr, flush=True)
    await stop_gracefully(server, files, args.grace)
    counts = ", ".join(f"{name} {n}" for name, n in server.endpoint.stats.items() if n)
    who = "" if worker is None else f"worker {worker}: "
    print(f"{who}stopped; endpoint: {counts or 'nothing to report'}", file=sys.stderr, flush=True)
    return 0


def _die_with_parent() -> None:
    """Linux: SIGTERM when the parent goes, so a killed group leaves no workers."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_workers(args: argparse.Namespace, config: QuicConfiguration) -> int:
    """--workers N: N processes on one port (SO_REUSEPORT), each datagram
    steered in the kernel to the worker its connection ID names (reuseport.py);
    reset, token and ticket keys shared (from --fleet, else made here)."""
    from ..asyncio.reuseport import WorkerCids, reuseport_sockets

    fleet = getattr(args, "fleet_secrets", None)
    if fleet is None:
        fleet = FleetSecrets.generate(time.time(), os.urandom)
        fleet.quic_lb = None
    elif fleet.quic_lb is not None and fleet.quic_lb.encode_length:
        print("error: --workers with QUIC-LB needs a configuration whose first octet does not encode the length "
              '("encode_length": false): its five low bits name the worker', file=sys.stderr)
        return 2
    socks = reuseport_sockets(args.host, args.port, args.workers)
    port = socks[0].getsockname()[1]
    host = args.host if ":" not in args.host else f"[{args.host}]"
    children = []
    for index, sock in enumerate(socks):
        pid = os.fork()
        if pid == 0:  # the worker: its socket, its bits in every connection ID it issues
            _die_with_parent()
            for other in socks:
                if other is not sock:
                    other.close()
            server_id = bytes.fromhex(args.server_id) if args.server_id else None
            fleet.configure(config, server_id, time.time(), os.urandom, low_bits=index if fleet.quic_lb else None)
            if fleet.quic_lb is None:
                config.connection_id_generator = WorkerCids(index, config.connection_id_length, os.urandom)
            args.sock, args.worker, args.endpoint_kwargs = sock, index, fleet.endpoint_kwargs()
            code = 1
            try:
                code = asyncio.run(serve_files(args, config))
            except BaseException:
                traceback.print_exc()  # os._exit below would swallow it: a worker that dies says why
            finally:
                os._exit(code)
        children.append(pid)
    for sock in socks:
        sock.close()
    print(f"listening on {host}:{port} ({', '.join(config.alpn_protocols)}), {args.workers} workers, "
          f"serving {Path(args.root).resolve()}", flush=True)

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    worst = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        worst = max(worst, os.waitstatus_to_exitcode(status) & 0xFF)
    return worst


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyquic.server",
        description="Serve a directory over HTTP/3 and hq-interop (one UDP port; the ALPN picks the protocol).")
    p.add_argument("--root", default=".", help="the directory served (default: the current one)")
    p.add_argument("--host", default="::", help="address to listen on (default ::, which takes IPv4 too)")
    p.add_argument("--port", type=int, default=4433, help="UDP port (default 4433; 0 picks a free one)")
    p.add_argument("--cert", help="certificate chain (PEM); default: a self-signed one for localhost")
    p.add_argument("--key", help="private key (PEM); default: in --cert")
    p.add_argument("--retry", choices=["never", "always", "auto"], default="auto",
                   help="address validation with Retry: never, always, or auto (under load; the default)")
    p.add_argument("--no-0rtt", dest="zero_rtt", action="store_false", help="refuse early data (0-RTT)")
    p.add_argument("--qlog-dir", metavar="DIR", help="write a qlog file per connection in DIR")
    p.add_argument("--keylog", metavar="FILE", help="append NSS key log lines to FILE")
    p.add_argument("--grace", type=float, default=SHUTDOWN_GRACE, metavar="SECONDS",
                   help=f"on SIGINT/SIGTERM, how long requests in progress may take (default {SHUTDOWN_GRACE:g})")
    defaults = QuicConfiguration(is_client=False)
    p.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout, metavar="SECONDS",
                   help=f"a connection with no packets this long ends; 0: never (default {defaults.idle_timeout:g})")
    p.add_argument("--handshake-timeout", type=float, default=defaults.handshake_timeout, metavar="SECONDS",
                   help="a handshake with no packet from the client this long ends, and at the latest at the"
                        f" idle timeout (default {defaults.handshake_timeout:g})")
    p.add_argument("--prefer-version", choices=["v1", "v2"], default="v1",
                   help="with a client that offers both, answer in this QUIC version (compatible version "
                        "negotiation, RFC 9368; default v1)")
    p.add_argument("--congestion", choices=["reno", "cubic"], default=defaults.congestion_control_algorithm,
                   help=f"congestion controller (default {defaults.congestion_control_algorithm})")
    p.add_argument("--no-hystart", dest="hystart", action="store_false",
                   help="plain slow start, without HyStart++ (RFC 9406)")
    p.add_argument("--fleet", metavar="FILE",
                   help="secrets shared with the other servers of a fleet (python -m pyquic.tools.fleet new): reset, "
                        "token and ticket keys, and the QUIC-LB configuration its connection IDs follow")
    p.add_argument("--server-id", metavar="HEX", help="with --fleet: this server's QUIC-LB server ID")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N processes on the one port (SO_REUSEPORT, steered by connection ID; Linux)")
    p.add_argument("--preferred-address", action="append", default=[], metavar="HOST:PORT",
                   help="also listen on HOST:PORT and ask clients to move there (RFC 9000 §9.6); once per "
                        "address family, [v6]:port for IPv6")
    p.add_argument("-q", "--quiet", action="store_true", help="no access log")
    return p


def parse_host_port(text: str) -> tuple[str, int]:
    """'192.0.2.1:443' or '[2001:db8::1]:443' as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not Path(args.root).is_dir():
        print(f"error: --root {args.root}: not a directory", file=sys.stderr)
        return 2
    if args.key and not args.cert:
        print("error: --key needs --cert", file=sys.stderr)
        return 2
    try:
        config = QuicConfiguration(is_client=False, alpn_protocols=list(ALPNS),
                                   max_early_data=0xFFFFFFFF if args.zero_rtt else 0,
                                   idle_timeout=args.idle_timeout, handshake_timeout=args.handshake_timeout,
                                   supported_versions=[QUIC_V2, QUIC_V1] if args.prefer_version == "v2"
                                   else [QUIC_V1, QUIC_V2],
                                   preferred_address=[parse_host_port(a) for a in args.preferred_address],
                                   congestion_control_algorithm=args.congestion, hystart=args.hystart)
        args.endpoint_kwargs = {}
        if args.fleet:
            fleet = args.fleet_secrets = FleetSecrets.load(args.fleet)
            if args.workers <= 1:  # (workers configure themselves)
                fleet.configure(config, bytes.fromhex(args.server_id) if args.server_id else None, time.time(),
                                os.urandom)
            args.endpoint_kwargs = fleet.endpoint_kwargs()
        if not 1 <= args.workers <= 32:
            raise UsageError("--workers: 1..32")
    except UsageError as exc:  # the configuration's own checks (--handshake-timeout 0, ...)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: --fleet / --server-id: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pyquic-server-") as tmp:
        try:
            if args.cert:
                cert, key = Path(args.cert), Path(args.key or args.cert)
            else:
                cert, key = self_signed_files(Path(tmp))
            config.load_cert_chain(cert, key)
            config.tls_config()  # a key that does not match, ...: refused now, not at the first client
        except Exception as exc:
            print(f"error: certificate: {exc}", file=sys.stderr)
            return 2
        args.pin = spki_pin(config.certificate)
        print(f"certificate {cert} (SPKI SHA-256 pin {args.pin})", flush=True)
        keylog = None
        try:
            if args.keylog:
                keylog = config.secrets_log_file = open(args.keylog, "a", buffering=1)
            if args.qlog_dir:
                Path(args.qlog_dir).mkdir(parents=True, exist_ok=True)
                config.qlog_dir = args.qlog_dir
            if args.workers > 1:
                return run_workers(args, config)
            return asyncio.run(serve_files(args, config))
        except OSError as exc:
            print(f"error: {exc.strerror or exc}", file=sys.stderr)
            return 1
        finally:
            if keylog is not None:
                keylog.close()


if __name__ == "__main__":
    sys.exit(main())
