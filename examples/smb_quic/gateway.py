# The SMB over QUIC gateway: a pyquic server with ALPN "smb" (MS-SMB2 §2.1:
# UDP 443 by default, one bidirectional stream per connection carrying the
# Direct-TCP framing unchanged) that relays each stream to an SMB server over
# TCP -- Samba's smbd, or any SMB server.  Owns the relay (bytes both ways,
# half-closes passed on, counted), the per-connection log line, the client
# access control (access.py, in the TLS handshake), keepalive PINGs for idle
# sessions behind NATs, and the connection cap (the endpoint refuses clients
# past it with CONNECTION_REFUSED).  Other services may share its UDP port
# (an h3 web server, say), each by ALPN and server name with its own
# certificate: pyquic.asyncio.serve(services=...).
#
#   python -m examples.smb_quic.gateway --cert c.pem --key k.pem --smb 127.0.0.1:445 --port 443
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from pyquic.asyncio import ConnectionTerminatedError, QuicServer, Service, serve
from pyquic.config import QuicConfiguration
from pyquic.errors import UsageError

from .access import ClientAccessControl, normal_thumbprint, thumbprint

__all__ = ["SmbGateway", "GatewayStats", "SMB_ALPN", "relay", "pump", "main"]

SMB_ALPN = "smb"
RELAY_CHUNK = 256 * 1024
# Application error codes in CONNECTION_CLOSE / RESET_STREAM (ours: SMB over
# QUIC defines none).
SMB_SERVER_UNREACHABLE = 0x101
RELAY_FAILED = 0x102

logger = logging.getLogger("smb_quic.gateway")


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host.strip("[]"), int(port)


@dataclass
class GatewayStats:
    connections: int = 0  # SMB streams relayed (one per SMB connection)
    active: int = 0
    bytes_from_clients: int = 0
    bytes_to_clients: int = 0
    unreachable: int = 0
    log: list = field(default_factory=list)  # the last log lines (tests read them)


class SmbGateway:
    """SMB over QUIC in front of an SMB server reached over TCP.

    ``smb_address``: (host, port) of the SMB server.  ``certfile``/``keyfile``:
    the gateway's certificate (the name SMB clients connect to, e.g.
    files.example.com, must be in it).  ``access``: a ClientAccessControl
    (None: no client certificate is asked for).  ``server_names``: the SNI
    names the smb service answers (empty: any).  ``extra_services``: more
    pyquic.asyncio.Service entries on the same port."""

    def __init__(self, smb_address: tuple[str, int], *, certfile: Any, keyfile: Any = None,
                 server_names: Sequence[str] = (), access: Optional[ClientAccessControl] = None,
                 max_connections: int = 1000, keepalive: Optional[float] = 15.0,
                 idle_timeout: float = 60.0, max_streams: int = 4,
                 extra_services: Sequence[Service] = (), configuration: Optional[QuicConfiguration] = None,
                 quiet: bool = False) -> None:
        self.smb_address = smb_address
        self.access = access
        self.keepalive = keepalive
        self.max_connections = max_connections
        self.quiet = quiet
        self.stats = GatewayStats()
        self.configuration = configuration or QuicConfiguration(
            is_client=False, idle_timeout=idle_timeout, max_streams_bidi=max_streams, max_streams_uni=0,
            congestion_control_algorithm="cubic")
        smb = Service(SMB_ALPN, stream_handler=self._relay, server_names=server_names,
                      certfile=certfile, keyfile=keyfile,
                      verify_mode=ssl.CERT_REQUIRED if access is not None else None,
                      certificate_verifier=access)
        self.services = [smb, *extra_services]
        self.server: Optional[QuicServer] = None
        self._relays: set[asyncio.Task] = set()

    async def start(self, host: str = "::", port: int = 443) -> QuicServer:
        self.server = await serve(host, port, configuration=self.configuration, services=self.services,
                                  max_connections=self.max_connections)
        return self.server

    @property
    def local_address(self) -> Any:
        return self.server.local_address if self.server is not None else None

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self._relays):
            task.cancel()

    def _log(self, text: str) -> None:
        self.stats.log.append(text)
        del self.stats.log[:-100]
        logger.info("%s", text)
        if not self.quiet:
            print(text, flush=True)

    # -- one SMB connection: a QUIC stream <-> a TCP connection -------------------------------------

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._relays.add(task)
            task.add_done_callback(self._relays.discard)
        protocol = writer.transport.get_extra_info("connection")
        quic = protocol.quic
        peer = quic.peer_address
        certs = quic.tls.peer_certificates
        who = f"{peer[0]}:{peer[1]}"
        if certs:
            who += f" cert {thumbprint(certs[0])[:16]} ({certs[0].subject.rfc4514_string()})"
        if self.keepalive:
            protocol.keep_alive(self.keepalive)
        started = time.monotonic()
        try:
            smb_reader, smb_writer = await asyncio.open_connection(*self.smb_address)
        except OSError as exc:
            self.stats.unreachable += 1
            self._log(f"smb-quic {who}: SMB server {self.smb_address[0]}:{self.smb_address[1]} unreachable: {exc}")
            protocol.close(SMB_SERVER_UNREACHABLE, f"SMB server unreachable: {exc.strerror or exc}")
            return
        self.stats.connections += 1
        self.stats.active += 1
        counts = [0, 0]
        ending = "closed"
        try:
            await relay((reader, writer), (smb_reader, smb_writer), counts)
        except (ConnectionError, OSError) as exc:
            if isinstance(exc, ConnectionTerminatedError) and exc.error_code == 0 and not exc.reason_phrase:
                ending = "closed by the client"  # CONNECTION_CLOSE(NO_ERROR) before our FIN went out
            else:
                ending = f"ended: {exc}"
            smb_writer.transport.abort()
            try:
                writer.transport.abort(RELAY_FAILED)  # RESET_STREAM, if the connection still lives
            except UsageError:
                pass
        except asyncio.CancelledError:
            ending = "gateway stopping"
            smb_writer.transport.abort()
            raise
        finally:
            self.stats.active -= 1
            self.stats.bytes_from_clients += counts[0]
            self.stats.bytes_to_clients += counts[1]
            smb_writer.close()
            seconds = time.monotonic() - started
            self._log(f"smb-quic {who} -> {self.smb_address[0]}:{self.smb_address[1]}: "
                      f"{counts[0]} bytes in, {counts[1]} bytes out, {seconds:.1f} s, {ending}")



async def relay(a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                b: tuple[asyncio.StreamReader, asyncio.StreamWriter], counts: list) -> None:
    """Copy a -> b (counted in counts[0]) and b -> a (counts[1]) until both
    ends have finished; the first failure of either direction is raised
    and the other direction stopped."""
    pumps = [asyncio.ensure_future(pump(a[0], b[1], counts, 0)), asyncio.ensure_future(pump(b[0], a[1], counts, 1))]
    try:
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        for finished in done:
            if finished.exception() is not None:
                raise finished.exception()  # type: ignore[misc]
    finally:
        for running in pumps:
            running.cancel()


async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, counts: list, index: int) -> None:
    """Copy one direction of a relay, counting into counts[index]; the end
    of the source is passed on as a half-close (FIN)."""
    while True:
        data = await source.read(RELAY_CHUNK)
        if not data:
            if sink.can_write_eof():
                sink.write_eof()
            return
        counts[index] += len(data)
        sink.write(data)
        await sink.drain()


# -- command line -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.smb_quic.gateway",
                                description="SMB over QUIC in front of an SMB server reached over TCP.")
    p.add_argument("--host", default="::", help="address to listen on (default :: , all)")
    p.add_argument("--port", type=int, default=443, help="UDP port (default 443, SMB over QUIC's)")
    p.add_argument("--smb", default="127.0.0.1:445", help="the SMB server, host:port (default 127.0.0.1:445)")
    p.add_argument("--cert", required=True, help="PEM certificate chain of the gateway (leaf first)")
    p.add_argument("--key", help="PEM private key (default: in --cert)")
    p.add_argument("--name", action="append", default=[], help="server name (SNI) the smb service answers; repeat")
    p.add_argument("--client-ca", help="require client certificates that verify against this CA file")
    p.add_argument("--allow-thumbprint", action="append", default=[], help="SHA-256 of an allowed client certificate")
    p.add_argument("--block-thumbprint", action="append", default=[], help="SHA-256 of a blocked client certificate")
    p.add_argument("--allow-issuer", action="append", default=[], help="allowed issuer, e.g. 'CN=Corp CA,O=Corp'")
    p.add_argument("--block-issuer", action="append", default=[], help="blocked issuer")
    p.add_argument("--require-client-cert", action="store_true",
                   help="ask every client for a certificate even with no list or CA")
    p.add_argument("--max-connections", type=int, default=1000)
    p.add_argument("--keepalive", type=float, default=15.0, help="PING interval in seconds (0: none)")
    p.add_argument("--idle-timeout", type=float, default=60.0)
    p.add_argument("--www", help="also serve this directory over HTTP/3 on the same port")
    p.add_argument("--www-cert", help="certificate for the h3 service (default: --cert)")
    p.add_argument("--www-key", help="its key")
    p.add_argument("--www-name", action="append", default=[], help="server name of the h3 service; repeat")
    p.add_argument("--quiet", action="store_true")
    return p


def gateway_from_args(args: argparse.Namespace) -> SmbGateway:
    access = None
    if (args.client_ca or args.allow_thumbprint or args.block_thumbprint or args.allow_issuer
            or args.block_issuer or args.require_client_cert):
        access = ClientAccessControl(
            allow_thumbprints=[normal_thumbprint(t) for t in args.allow_thumbprint],
            block_thumbprints=[normal_thumbprint(t) for t in args.block_thumbprint],
            allow_issuers=args.allow_issuer, block_issuers=args.block_issuer, trust=args.client_ca)
    extra = []
    if args.www:
        from pathlib import Path

        from pyquic.tools.server import FileServer

        files = FileServer(Path(args.www), quiet=args.quiet)
        extra.append(Service("h3", request_handler=files.handle_h3, server_names=args.www_name,
                             certfile=args.www_cert or args.cert,
                             keyfile=args.www_key if args.www_cert else args.key))
    return SmbGateway(split_host_port(args.smb, 445), certfile=args.cert, keyfile=args.key,
                      server_names=args.name, access=access, max_connections=args.max_connections,
                      keepalive=args.keepalive or None, idle_timeout=args.idle_timeout,
                      extra_services=extra, quiet=args.quiet)


async def amain(args: argparse.Namespace) -> int:
    gateway = gateway_from_args(args)
    await gateway.start(args.host, args.port)
    host, port = gateway.local_address[:2]
    print(f"smb-quic gateway on udp {host}:{port} -> smb {gateway.smb_address[0]}:{gateway.smb_address[1]}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gateway.close()
    s = gateway.stats
    print(f"smb-quic gateway stopped: {s.connections} connections, {s.bytes_from_clients} bytes in, "
          f"{s.bytes_to_clients} bytes out", flush=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except (ValueError, OSError) as exc:
        print(f"smb-quic gateway: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
