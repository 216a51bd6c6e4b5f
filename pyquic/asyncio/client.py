# connect(): the client side of the asyncio API, an async context manager as
# in aioquic.  Owns resolving the server's address, creating the client's
# own UDP socket (udp.py: GSO/GRO, big buffers) bound to the family of that
# address, wiring socket <-> QuicConnectionProtocol, honouring SSLKEYLOGFILE,
# and closing: on leaving the block the connection is closed, its draining
# period awaited (bounded), and the socket released.
from __future__ import annotations

import asyncio
import os
import socket
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Optional

from ..config import QuicConfiguration
from .protocol import QuicConnectionProtocol, QuicStreamHandler
from .udp import UdpSocket, create_socket

__all__ = ["connect"]

# Leaving `async with connect(...)` waits at most this long for the
# closing/draining period (3 PTO, RFC 9000 §10.2) before dropping the socket.
CLOSE_TIMEOUT = 5.0

# What the sans-I/O core is never given by default, supplied here for every
# connection and endpoint this package builds (an `entropy=` keyword, or a
# wall_clock already set on the configuration, wins):
DEFAULT_ENTROPY: Callable[[int], bytes] = os.urandom  # CIDs, reset tokens, TLS randoms, Retry tokens
DEFAULT_WALL_CLOCK: Callable[[], float] = time.time  # certificate validity, ticket ages


def prepare_configuration(configuration: QuicConfiguration) -> None:
    """What every connection's configuration gets here: the wall clock for
    certificate checks, SSLKEYLOGFILE (appended to), a qlog sink when a qlog
    directory is set (only fields still unset are touched), and
    auto_consume=False: flow-control credit goes back to the peer as the
    application reads its StreamReader (the protocol consumes on delivery
    for data it does not put in a reader)."""
    changed = False
    if getattr(configuration, "auto_consume", False):
        configuration.auto_consume = False
    if configuration.wall_clock is None:
        configuration.wall_clock = DEFAULT_WALL_CLOCK
        changed = True
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and configuration.secrets_log_file is None:
        configuration.secrets_log_file = open(keylog, "a", buffering=1)
        changed = True
    if configuration.qlog_dir and configuration.quic_logger is None:
        from .qlog_files import QlogDirectory

        configuration.quic_logger = QlogDirectory(configuration.qlog_dir)
        changed = True
    if changed and hasattr(configuration, "invalidate"):
        configuration.invalidate()


def _new_connection(configuration: QuicConfiguration, **kwargs: Any) -> Any:
    from ..connection import QuicConnection

    kwargs.setdefault("entropy", DEFAULT_ENTROPY)
    return QuicConnection(configuration=configuration, **kwargs)


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    *,
    configuration: Optional[QuicConfiguration] = None,
    create_protocol: Callable[..., QuicConnectionProtocol] = QuicConnectionProtocol,
    stream_handler: Optional[QuicStreamHandler] = None,
    wait_connected: bool = True,
    local_host: Optional[str] = None,
    local_port: int = 0,
    **connection_kwargs: Any,
) -> AsyncIterator[QuicConnectionProtocol]:
    """Connect to a QUIC server; yields the connection's protocol.

    ``create_protocol(connection, stream_handler=...)`` builds the protocol
    (a QuicConnectionProtocol subclass); ``stream_handler(reader, writer)``
    is called for each stream the server opens (a coroutine function is run
    as a task).  Extra keyword arguments go to QuicConnection.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    if configuration is None:
        configuration = QuicConfiguration(is_client=True)
    if configuration.server_name is None:
        configuration.server_name = host
        if hasattr(configuration, "invalidate"):
            configuration.invalidate()
    prepare_configuration(configuration)
    connection = _new_connection(configuration, **connection_kwargs)
    if local_host is None:
        local_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    protocol = create_protocol(connection, stream_handler=stream_handler)
    sockets: list[UdpSocket] = []

    def new_socket(host: Optional[str] = None, port: int = 0) -> UdpSocket:
        """A socket of the connection's family (the first, or one to migrate to)."""
        sock = create_socket(host or local_host, port, family=family)
        try:
            udp = UdpSocket(sock, protocol, loop=loop, ecn=bool(getattr(configuration, "ecn", False)))
        except BaseException:
            sock.close()
            raise
        sockets.append(udp)
        return udp

    udp = new_socket(local_host, local_port)
    protocol.connection_made(udp)
    protocol._new_socket = new_socket  # for change_local_address()
    try:
        protocol.connect(addr[:2] if family == socket.AF_INET else addr, transmit=True)
        if wait_connected:
            await protocol.wait_connected()
        yield protocol
    finally:
        protocol.close()
        try:
            await asyncio.wait_for(protocol.wait_closed(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            pass
        finally:
            protocol._arm_timer(None)
            for each in sockets:
                each.close()

