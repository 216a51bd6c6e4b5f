# serve(): the server side of the asyncio API.  Owns one UDP socket (udp.py)
# shared by every connection (and one more per preferred address, RFC 9000
# §9.6: a datagram from it is routed with that address as its `local`, and
# a batch the core says leaves from there goes out of it), a sans-I/O
# QuicEndpoint that routes each
# datagram to its connection by connection ID (and answers what no
# connection owns: version negotiation, Retry, stateless reset), one
# QuicConnectionProtocol per connection the endpoint accepts, and the
# batching: connections touched during one socket drain handle their events
# and transmit once at the end of it.  No protocol logic lives here.
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Callable, Optional, Sequence

from ..config import QuicConfiguration
from ..errors import UsageError
from .client import DEFAULT_ENTROPY, prepare_configuration
from .protocol import QuicConnectionProtocol, QuicStreamHandler
from .services import Service, ServiceRouter
from .udp import UdpSocket, create_socket

__all__ = ["QuicServer", "serve"]

logger = logging.getLogger("pyquic.asyncio")

CLOSE_TIMEOUT = 5.0


class _ConnectionSender:
    """A connection's view of the shared socket; also the endpoint's view of
    the protocol's pause/resume (the socket pauses everyone at once).
    `others` are the preferred addresses' sockets, by the `local` the core
    names them with."""

    __slots__ = ("udp", "others")

    def __init__(self, udp: UdpSocket, others: dict) -> None:
        self.udp = udp
        self.others = others

    def _socket(self, local: Any, addr: Any) -> tuple:
        udp = self.others.get(local, self.udp)
        if udp is not self.udp and udp.family == socket.AF_INET and len(addr) == 4 and addr[0].startswith("::ffff:"):
            addr = (addr[0][7:], addr[1])  # see _OtherAddress
        return udp, addr

    def send(self, data: Any, addr: Any, ecn: int = 0, local: Any = None) -> None:
        if local is None:
            self.udp.send(data, addr, ecn)
        else:
            udp, addr = self._socket(local, addr)
            udp.send(data, addr, ecn)

    def send_batch(self, data: Any, segment_size: int, addr: Any, ecn: int = 0, local: Any = None) -> None:
        if local is None:
            self.udp.send_batch(data, segment_size, addr, ecn)
        else:
            udp, addr = self._socket(local, addr)
            udp.send_batch(data, segment_size, addr, ecn)

    def send_datagrams(self, datagrams: list, addr: Any, ecn: int = 0) -> None:
        self.udp.send_datagrams(datagrams, addr, ecn)

    def is_writable(self) -> bool:
        return self.udp.is_writable()


def _v4_mapped(addr: Any) -> Any:
    """An IPv4 peer as a dual-stack IPv6 socket writes it."""
    return (f"::ffff:{addr[0]}", addr[1], 0, 0)


class _OtherAddress:
    """The receiver of a preferred address's socket: the server's, with that
    address as the datagrams' `local`.  Behind a dual-stack main socket an
    IPv4 socket's peers are written as IPv4-mapped, so a client that moves
    to the preferred address keeps the address the connection knows."""

    __slots__ = ("server", "local", "mapped")

    def __init__(self, server: "QuicServer", local: Any, mapped: bool) -> None:
        self.server = server
        self.local = local
        self.mapped = mapped

    def datagram_received(self, data: Any, addr: Any, ecn: int = 0) -> None:
        self.server.datagram_received(data, _v4_mapped(addr) if self.mapped else addr, ecn, self.local)

    def datagram_batch_received(self, data: Any, segment_size: int, addr: Any, ecn: int = 0) -> None:
        self.server.datagram_batch_received(data, segment_size, _v4_mapped(addr) if self.mapped else addr, ecn,
                                            self.local)

    def datagrams_done(self) -> None:
        self.server.datagrams_done()

    def pause_writing(self) -> None:
        self.server.pause_writing()

    def resume_writing(self) -> None:
        self.server.resume_writing()


class QuicServer:
    """A listening QUIC server: ``close()``, ``await wait_closed()``,
    ``local_address``; also an async context manager."""

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        create_protocol: Callable[..., QuicConnectionProtocol] = QuicConnectionProtocol,
        stream_handler: Optional[QuicStreamHandler] = None,
        endpoint_kwargs: Optional[dict] = None,
    ) -> None:
        from ..endpoint import QuicEndpoint

        self._loop = asyncio.get_running_loop()
        self._configuration = configuration
        self._create_protocol = create_protocol
        self._stream_handler = stream_handler
        self._endpoint = QuicEndpoint(configuration, **{"entropy": DEFAULT_ENTROPY, **(endpoint_kwargs or {})})
        self._protocols: dict[int, QuicConnectionProtocol] = {}  # id(connection) -> protocol
        self._touched: dict[int, QuicConnectionProtocol] = {}  # during one socket drain
        self._udp: Optional[UdpSocket] = None
        self._others: dict[Any, UdpSocket] = {}  # preferred address (as configured) -> its socket
        self._sender: Optional[_ConnectionSender] = None
        self._closing = False
        self._closed = asyncio.Event()
        self.router: Optional[ServiceRouter] = None  # serve(services=...): which service each connection has

    def _attach(self, udp: UdpSocket) -> None:
        self._udp = udp
        self._sender = _ConnectionSender(udp, self._others)

    def _attach_other(self, local: Any, udp: UdpSocket) -> None:
        self._others[local] = udp

    @property
    def preferred_sockets(self) -> dict[Any, UdpSocket]:
        """The sockets of the preferred addresses, by address."""
        return dict(self._others)

    @property
    def local_address(self) -> Any:
        return self._udp.getsockname() if self._udp is not None else None

    @property
    def udp(self) -> Optional[UdpSocket]:
        return self._udp

    @property
    def endpoint(self) -> Any:
        return self._endpoint

    @property
    def connections(self) -> list[QuicConnectionProtocol]:
        return list(self._protocols.values())

    # -- udp.DatagramReceiver ---------------------------------------------------------

    def datagram_received(self, data: Any, addr: Any, ecn: int = 0, local: Any = None) -> None:
        if self._closing:
            return
        # bytes: the view is only lent for this call (see protocol.datagram_received).
        try:
            connection = self._endpoint.receive_datagram(bytes(data), addr, now=self._loop.time(), ecn=ecn,
                                                         local=local)
        except Exception:
            # A bug must not stop the other connections' datagrams in this drain.
            logger.exception("pyquic endpoint failed on a datagram from %r", addr)
            return
        if connection is not None:
            self._touch(connection)

    def datagram_batch_received(self, data: Any, segment_size: int, addr: Any, ecn: int = 0,
                                local: Any = None) -> None:
        """A GRO batch: one copy of the whole batch, one routing call."""
        if self._closing:
            return
        try:
            touched = self._endpoint.receive_datagrams(bytes(data), segment_size, addr, now=self._loop.time(),
                                                       ecn=ecn, local=local)
        except Exception:
            logger.exception("pyquic endpoint failed on a datagram batch from %r", addr)
            return
        for connection in touched:
            self._touch(connection)

    def _touch(self, connection: Any) -> None:
        key = id(connection)
        protocol = self._protocols.get(key)
        if protocol is None:
            # New connections are announced by accept(); drain it so the
            # endpoint's list does not grow.
            while (accepted := self._endpoint.accept()) is not None:
                if id(accepted) not in self._protocols:
                    self._new_protocol(accepted)
            protocol = self._protocols.get(key) or self._new_protocol(connection)
        self._touched[key] = protocol

    def datagrams_done(self) -> None:
        # Stateless answers first (they are few), then each touched connection.
        self._send_endpoint_datagrams()
        touched = self._touched
        if touched:
            self._touched = {}
            for protocol in touched.values():
                protocol.datagrams_done()

    def pause_writing(self) -> None:
        for protocol in self._protocols.values():
            protocol.pause_writing()

    def resume_writing(self) -> None:
        for protocol in list(self._protocols.values()):
            protocol.resume_writing()

    # -- connections ----------------------------------------------------------------------

    def _new_protocol(self, connection: Any) -> QuicConnectionProtocol:
        protocol = self._create_protocol(connection, stream_handler=self._stream_handler)
        protocol.connection_made(self._sender)
        if self._udp is not None and not self._udp.is_writable():
            protocol.pause_writing()
        key = id(connection)
        self._protocols[key] = protocol

        def terminated() -> None:
            self._protocols.pop(key, None)
            self._touched.pop(key, None)
            # Drop its routes and its place under the caps now (a half-open
            # one ends on its handshake timeout with no datagram to tell us).
            self._endpoint.forget(connection)

        protocol._connection_terminated_handler = terminated
        return protocol

    def _send_endpoint_datagrams(self) -> None:
        # Only the endpoint's own answers (VN, Retry, stateless reset): each
        # connection transmits through its protocol.
        sender = self._sender
        for data, addr, local in self._endpoint.stateless_path_datagrams():
            sender.send(data, addr, local=local)  # type: ignore[union-attr]

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (CONNECTION_CLOSE, NO_ERROR) and stop listening
        once they are gone (or after CLOSE_TIMEOUT)."""
        if self._closing:
            return
        self._closing = True
        protocols = list(self._protocols.values())
        for protocol in protocols:
            protocol.close()
        self._loop.create_task(self._finish_close(protocols))

    async def _finish_close(self, protocols: list[QuicConnectionProtocol]) -> None:
        if protocols:
            try:
                await asyncio.wait_for(asyncio.gather(*(p.wait_closed() for p in protocols)), CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                pass
        for protocol in protocols:
            protocol._arm_timer(None)
        if self._udp is not None:
            self._udp.close()
        for udp in self._others.values():
            udp.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> "QuicServer":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()


async def serve(
    host: str,
    port: int,
    *,
    configuration: QuicConfiguration,
    create_protocol: Callable[..., QuicConnectionProtocol] = QuicConnectionProtocol,
    stream_handler: Optional[QuicStreamHandler] = None,
    reuse_port: bool = False,
    retry: Any = "auto",
    services: Optional[Sequence[Service]] = None,
    sock: Optional[socket.socket] = None,
    **endpoint_kwargs: Any,
) -> QuicServer:
    """Start a QUIC server on ``host``:``port`` (0 picks a port: see
    ``server.local_address``).  ``stream_handler(reader, writer)`` is called
    for each stream a client opens (a coroutine function runs as a task);
    ``create_protocol(connection, stream_handler=...)`` builds each
    connection's protocol.

    ``retry`` is the address-validation policy (RFC 9000 §8.1): ``"auto"``
    (the default) answers new clients with Retry only while many handshakes
    are half-open (QuicEndpoint's ``retry_threshold``, e.g. under a flood of
    Initials), ``"always"`` validates every client with Retry (one more
    round trip), ``"never"`` does not (past ``max_half_open`` clients are
    refused).  True and False mean "always" and "never", as before.  Extra
    keyword arguments go to QuicEndpoint (``max_connections``,
    ``max_half_open``, ``retry_threshold``, ...); the handshake timeout is
    QuicConfiguration.handshake_timeout.

    ``services`` (a list of Service) puts several applications on this one
    port: each connection goes to the service its ALPN list and server name
    choose (services.py), with that service's certificate, client policy and
    handler; ``server.router.service_of(protocol.quic)`` tells which.

    ``sock``: a bound UDP socket to serve on instead of host:port (a worker's
    socket of an SO_REUSEPORT group: reuseport.py)."""
    loop = asyncio.get_running_loop()
    prepare_configuration(configuration)  # before the services copy it
    router = None
    if services is not None:
        if stream_handler is not None or create_protocol is not QuicConnectionProtocol:
            raise UsageError("with services, each Service brings its own handler")
        router = ServiceRouter(configuration, services)
        configuration = router.configuration
        create_protocol = router.create_protocol
    endpoint_kwargs["retry"] = retry
    server = QuicServer(configuration=configuration, create_protocol=create_protocol,
                        stream_handler=stream_handler, endpoint_kwargs=endpoint_kwargs)
    server.router = router
    if sock is None:
        sock = create_socket(host, port, reuse_port=reuse_port)
    try:
        udp = UdpSocket(sock, server, loop=loop, ecn=bool(getattr(configuration, "ecn", False)))
    except BaseException:
        sock.close()
        raise
    server._attach(udp)
    try:
        for address in configuration.preferred_address:  # RFC 9000 §9.6: listen there too
            local = tuple(address)
            other = create_socket(local[0], local[1], reuse_port=reuse_port)
            mapped = sock.family == socket.AF_INET6 and other.family == socket.AF_INET
            try:
                server._attach_other(local, UdpSocket(other, _OtherAddress(server, local, mapped), loop=loop,
                                                      ecn=bool(getattr(configuration, "ecn", False))))
            except BaseException:
                other.close()
                raise
    except BaseException:
        server.close()
        await server.wait_closed()
        raise
    return server
