# The asyncio API of pyquic, shaped like aioquic's: connect() (an async
# context manager yielding a QuicConnectionProtocol), serve() (a QuicServer),
# streams as asyncio StreamReader/StreamWriter pairs, and our own UDP layer
# with GSO/GRO underneath (udp.py).  This package is the only place under
# pyquic/ that touches sockets, the event loop or the clock.
from .client import connect
from .protocol import (
    ConnectionTerminatedError,
    QuicConnectionProtocol,
    QuicStreamAdapter,
    QuicStreamHandler,
    StreamResetError,
)
from .server import QuicServer, serve
from .services import Service, ServiceRouter
from .udp import UdpSocket, UdpStats

__all__ = [
    "connect",
    "serve",
    "QuicServer",
    "Service",
    "ServiceRouter",
    "QuicConnectionProtocol",
    "QuicStreamAdapter",
    "QuicStreamHandler",
    "StreamResetError",
    "ConnectionTerminatedError",
    "UdpSocket",
    "UdpStats",
]
