# Services: several applications behind one UDP port, chosen per connection
# by the client's ALPN list and server name (SNI), each with its own
# certificate, client-certificate policy and handler -- a file server ("smb")
# and a web server ("h3") sharing port 443, say.  Owns the routing table and
# the TLS configuration of each service; the choice is made by the TLS
# engine's config_for_client hook on the first ClientHello, so a connection
# is bound to one service before anything is sent, and the handlers find it
# again from the connection's TLS configuration.  No sockets here: serve()
# (server.py) takes a list of Service and uses ServiceRouter.
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Sequence

import tls

from ..config import QuicConfiguration
from ..errors import UsageError
from .protocol import QuicConnectionProtocol, QuicStreamHandler

__all__ = ["Service", "ServiceRouter"]

H3_ALPN = "h3"


@dataclass
class Service:
    """One application on a shared port.

    ``alpn``: the protocol it speaks ("smb", "h3", "hq-interop", ...).
    ``server_names``: the SNI names it answers ("files.example.com", or one
    wildcard label: "*.example.com"); empty means any name, and clients that
    send none.  An exact or wildcard match wins over a service with no names.
    ``stream_handler(reader, writer)`` serves each stream a client opens
    (raw-stream protocols); ``request_handler(request)`` serves HTTP/3
    requests (alpn "h3").  Credentials: ``certfile``/``keyfile`` (PEM) or
    ``certificate``, ``certificate_chain`` and ``private_key`` objects; none
    given: the server configuration's.  Client certificates:
    ``verify_mode`` (ssl.CERT_*), ``cafile``/``cadata``, and
    ``certificate_verifier`` (tls.Config's hook: a pinning or access-control
    policy).  Transport settings are the server configuration's."""

    alpn: str
    stream_handler: Optional[QuicStreamHandler] = None
    request_handler: Optional[Callable[[Any], Awaitable[None]]] = None
    server_names: Sequence[str] = ()
    certfile: Any = None
    keyfile: Any = None
    password: Any = None
    certificate: Any = None
    certificate_chain: list = field(default_factory=list)
    private_key: Any = None
    verify_mode: Optional[int] = None
    cafile: Optional[str] = None
    cadata: Optional[bytes] = None
    certificate_verifier: Optional[Callable[..., Any]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.alpn, str) or not 1 <= len(self.alpn.encode()) <= 255:
            raise UsageError("Service.alpn must be a protocol name of 1..255 bytes")
        if isinstance(self.server_names, str):
            self.server_names = [self.server_names]
        self.server_names = [n.lower().rstrip(".") for n in self.server_names]
        for name in self.server_names:
            if not name or "*" in name[1:] or (name.startswith("*") and not name.startswith("*.")):
                raise UsageError(f"server name {name!r}: a host name, or '*.' and a domain")
        if self.alpn == H3_ALPN:
            if self.request_handler is None:
                raise UsageError("an h3 Service needs request_handler")
        elif self.stream_handler is None:
            raise UsageError(f"the {self.alpn!r} Service needs stream_handler")
        if self.certfile is not None:
            loader = QuicConfiguration(is_client=False)
            loader.load_cert_chain(self.certfile, self.keyfile, self.password)
            self.certificate, self.certificate_chain, self.private_key = (
                loader.certificate, loader.certificate_chain, loader.private_key)

    def matches(self, server_name: Optional[str]) -> int:
        """2: the name is ours; 1: we take any name; 0: not ours."""
        if not self.server_names:
            return 1
        if server_name is None:
            return 0
        name = server_name.lower().rstrip(".")
        for pattern in self.server_names:
            if pattern == name:
                return 2
            suffix = pattern[1:]
            if pattern.startswith("*.") and name.endswith(suffix) and "." not in name[: -len(suffix)] \
                    and len(name) > len(suffix):
                return 2
        return 0

    def _tls_overrides(self) -> dict:
        out: dict[str, Any] = {}
        if self.certificate is not None or self.certificate_chain:
            out.update(certificate=self.certificate, certificate_chain=list(self.certificate_chain),
                       private_key=self.private_key)
        for name in ("verify_mode", "cafile", "cadata", "certificate_verifier"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


class ServiceRouter:
    """The routing table of one server: picks each client's service from its
    first ClientHello and finds it again for the handlers."""

    def __init__(self, configuration: QuicConfiguration, services: Sequence[Service]) -> None:
        if configuration.is_client:
            raise UsageError("services are for a server configuration")
        services = list(services)
        if not services:
            raise UsageError("services is empty")
        seen: set = set()
        for service in services:
            for name in service.server_names or ["(any)"]:
                if (service.alpn, name) in seen:
                    raise UsageError(f"two services for ALPN {service.alpn!r} and name {name}")
                seen.add((service.alpn, name))
        self.services = services
        self._by_config: dict[int, Service] = {}
        self._tls: list[tuple[Service, tls.Config]] = []
        for service in services:
            derived = dataclasses.replace(configuration, alpn_protocols=[service.alpn],
                                          config_for_client=None, **service._tls_overrides())
            if derived.certificate is None and not derived.certificate_chain:
                raise UsageError(f"the {service.alpn!r} service has no certificate, and neither has the server")
            tls_config = derived.tls_config()
            self._tls.append((service, tls_config))
            self._by_config[id(tls_config)] = service
        # The configuration every connection starts from: all the ALPNs, and
        # credentials of its own (the engine wants some before the hello).
        alpns = list(dict.fromkeys(s.alpn for s in services))
        first = services[0]._tls_overrides()
        base_credentials = {} if (configuration.certificate is not None or configuration.certificate_chain) else {
            k: first[k] for k in ("certificate", "certificate_chain", "private_key") if k in first}
        self.configuration = dataclasses.replace(configuration, alpn_protocols=alpns,
                                                 config_for_client=self.choose, **base_credentials)
        self.has_h3 = any(s.alpn == H3_ALPN for s in services)

    def choose(self, hello: tls.ClientHelloInfo) -> tls.Config:
        """The TLS engine's config_for_client: the best service by name
        (exact or wildcard over any-name) among those whose ALPN the client
        offers, the earlier service first; refusals are TLS alerts."""
        offered = set(hello.alpn_protocols)
        best: Optional[tuple[int, tls.Config]] = None
        any_alpn = False
        for service, tls_config in self._tls:
            if service.alpn not in offered:
                continue
            any_alpn = True
            rank = service.matches(hello.server_name)
            if rank and (best is None or rank > best[0]):
                best = (rank, tls_config)
        if best is None:
            if not any_alpn:
                raise tls.AlertError(tls.AlertDescription.no_application_protocol,
                                     "no service for the offered application protocols")
            raise tls.AlertError(tls.AlertDescription.unrecognized_name,
                                 f"no service for server name {hello.server_name!r}")
        return best[1]

    def service_of(self, quic: Any) -> Optional[Service]:
        """The service a connection was routed to (None before its hello)."""
        engine = getattr(quic, "tls", None)
        return self._by_config.get(id(getattr(engine, "config", None)))

    # -- the handlers serve() installs ------------------------------------------------------

    def create_protocol(self, quic: Any, stream_handler: Any = None) -> QuicConnectionProtocol:
        def streams(reader: Any, writer: Any) -> Any:
            service = self.service_of(quic)
            if service is None or service.stream_handler is None:
                writer.transport.abort()  # an h3 connection's stray raw stream cannot happen; be safe
                return None
            return service.stream_handler(reader, writer)

        if not self.has_h3:
            return QuicConnectionProtocol(quic, stream_handler=streams)
        from .h3 import H3Protocol

        async def requests(request: Any) -> None:
            service = self.service_of(quic)
            assert service is not None and service.request_handler is not None  # h3 was negotiated
            await service.request_handler(request)

        return H3Protocol(quic, stream_handler=streams, request_handler=requests)
