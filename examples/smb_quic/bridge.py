# The client bridge: a local TCP listener that carries each TCP connection
# over a QUIC connection of its own to an SMB over QUIC server (our gateway,
# or Windows / Samba with QUIC), so unmodified SMB clients use QUIC:
#   smbclient //127.0.0.1/share -p <bridge port>
# Owns the listener, one QUIC connection (ALPN "smb", one bidirectional
# stream) per TCP connection, the relay between them (half-closes passed on,
# resets and connection loss turned into a TCP close), and a log line each.
#
#   python -m examples.smb_quic.bridge --server files.example.com:443 --listen 127.0.0.1:4445 --cafile ca.pem
from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
import time
from typing import Any, Optional

from pyquic.asyncio import connect
from pyquic.config import QuicConfiguration
from pyquic.errors import UsageError

from .gateway import SMB_ALPN, relay, split_host_port

__all__ = ["SmbQuicBridge", "client_configuration", "main"]


def client_configuration(server_name: str, *, cafile: Optional[str] = None, insecure: bool = False,
                         certfile: Optional[str] = None, keyfile: Optional[str] = None,
                         idle_timeout: float = 60.0) -> QuicConfiguration:
    """A QUIC client configuration for SMB over QUIC: ALPN "smb", the server
    name checked in its certificate, optionally a client certificate."""
    config = QuicConfiguration(is_client=True, alpn_protocols=[SMB_ALPN], server_name=server_name,
                               idle_timeout=idle_timeout, congestion_control_algorithm="cubic")
    if insecure:
        config.verify_mode = ssl.CERT_NONE
    elif cafile:
        config.load_verify_locations(cafile=cafile)
    if certfile:
        config.load_cert_chain(certfile, keyfile)
    return config


class SmbQuicBridge:
    """TCP on ``listen`` -> SMB over QUIC to ``server`` (host, port)."""

    def __init__(self, server: tuple[str, int], configuration: QuicConfiguration, *,
                 keepalive: Optional[float] = 15.0, quiet: bool = False) -> None:
        self.server_address = server
        self.configuration = configuration
        self.keepalive = keepalive
        self.quiet = quiet
        self.connections = 0
        self.failures = 0
        self.log: list[str] = []
        self._listener: Optional[asyncio.AbstractServer] = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.AbstractServer:
        self._listener = await asyncio.start_server(self._handle, host, port)
        return self._listener

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _log(self, text: str) -> None:
        self.log.append(text)
        del self.log[:-100]
        if not self.quiet:
            print(text, flush=True)

    async def _handle(self, tcp_reader: asyncio.StreamReader, tcp_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        peer = tcp_writer.get_extra_info("peername")
        host, port = self.server_address
        started = time.monotonic()
        counts = [0, 0]
        ending = "closed"
        try:
            async with connect(host, port, configuration=self.configuration) as protocol:
                if self.keepalive:
                    protocol.keep_alive(self.keepalive)
                self.connections += 1
                await relay((tcp_reader, tcp_writer), await protocol.create_stream(), counts)
        except (ConnectionError, OSError, UsageError) as exc:
            self.failures += 1
            ending = f"ended: {exc}"
        finally:
            if ending == "closed":
                tcp_writer.close()
            else:
                tcp_writer.transport.abort()  # the SMB client sees the connection drop, as over TCP
            self._log(f"smb-quic bridge {peer[0]}:{peer[1]} -> {host}:{port}: {counts[0]} bytes out, "
                      f"{counts[1]} bytes in, {time.monotonic() - started:.1f} s, {ending}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.smb_quic.bridge",
                                description="Carry local TCP SMB connections over SMB over QUIC.")
    p.add_argument("--server", required=True, help="the SMB over QUIC server, host[:port] (port 443 by default)")
    p.add_argument("--server-name", help="name to check in its certificate (default: the --server host)")
    p.add_argument("--listen", default="127.0.0.1:4445", help="local TCP address (default 127.0.0.1:4445)")
    p.add_argument("--cafile", help="CA file for the server's certificate (default: the system store)")
    p.add_argument("-k", "--insecure", action="store_true", help="do not verify the server's certificate")
    p.add_argument("--cert", help="client certificate (PEM chain), for servers with client access control")
    p.add_argument("--key", help="its private key")
    p.add_argument("--keepalive", type=float, default=15.0, help="PING interval in seconds (0: none)")
    p.add_argument("--quiet", action="store_true")
    return p


async def amain(args: argparse.Namespace) -> int:
    host, port = split_host_port(args.server, 443)
    config = client_configuration(args.server_name or host, cafile=args.cafile, insecure=args.insecure,
                                  certfile=args.cert, keyfile=args.key)
    bridge = SmbQuicBridge((host, port), config, keepalive=args.keepalive or None, quiet=args.quiet)
    listen_host, listen_port = split_host_port(args.listen, 4445)
    await bridge.start(listen_host, listen_port)
    print(f"smb-quic bridge on tcp {listen_host}:{bridge.port} -> quic {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await bridge.close()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except (ValueError, OSError, UsageError) as exc:
        print(f"smb-quic bridge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
