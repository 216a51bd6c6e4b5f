# QuicConfiguration: everything one QUIC endpoint (client or server) is
# configured with, named as aioquic names it where the meaning is the same,
# and the tls.Config built from it (cached: one per configuration, shared by
# every connection that uses it).  Owns, too, the named caps on every buffer
# a peer can grow (CRYPTO reassembly per level, ACK ranges, connection IDs,
# buffered undecryptable packets, pending control frames, stream chunks),
# so a test or an operator finds them in one place.
#
# No I/O happens here except reading certificate/key/CA files when asked
# (load_cert_chain, load_verify_locations).  The core reads no clock and
# draws no randomness of its own: the wall clock the TLS engine needs (for
# certificate validity and ticket ages) is `wall_clock`, and randomness is
# the `entropy` a QuicConnection or QuicEndpoint is built with; both are
# checked there (require_inputs).  pyquic.asyncio supplies time.time and
# os.urandom; sans-I/O users pass their own (tests: fixed or seeded ones).
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, TextIO

import tls

from .errors import UsageError
from .transport_params import QuicTransportParameters
from .versions import QUIC_V1, QUIC_V2, VERSIONS

SMALLEST_MAX_DATAGRAM_SIZE = 1200  # RFC 9000 §14: the minimum every path carries
MAX_UDP_PAYLOAD_SIZE = 65527  # RFC 9000 §18.2: the largest max_udp_payload_size


@dataclass
class QuicConfiguration:
    """Configuration of a QUIC endpoint (one per role; shareable between connections)."""

    is_client: bool = True
    alpn_protocols: Optional[list[str]] = None
    # -- identity and trust
    certificate: Any = None  # server: leaf x509.Certificate (aioquic's name); see certificate_chain
    certificate_chain: list = field(default_factory=list)  # intermediates (aioquic) or the whole chain
    private_key: Any = None
    cafile: Optional[str] = None
    capath: Optional[str] = None
    cadata: Optional[bytes] = None
    verify_mode: Optional[int] = None  # ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED (None: role default)
    server_name: Optional[str] = None
    check_hostname: bool = True
    # tls.Config's hooks, passed through: a verifier replacing chain checks
    # (pinning, client access control), and a server's per-client choice of
    # TLS configuration by SNI and ALPN (pyquic.asyncio.Service builds on it)
    certificate_verifier: Optional[Callable[..., Any]] = None
    config_for_client: Optional[Callable[[Any], Any]] = None
    # -- versions (RFC 9000 v1, RFC 9369 v2), in order of preference: a client
    # starts with original_version (default: the first) and offers them all; a
    # server answers a first flight in its most preferred one the client
    # offers (compatible version negotiation, RFC 9368)
    supported_versions: list[int] = field(default_factory=lambda: [QUIC_V1, QUIC_V2])
    original_version: Optional[int] = None  # client: the version of the first Initial
    # -- transport
    ecn: bool = True  # mark datagrams ECT(0) and report the peer's marks (RFC 9000 §13.4), where the socket can
    idle_timeout: float = 60.0  # seconds (max_idle_timeout)
    # A handshake not yet confirmed ends silently, like an idle timeout, when
    # this many seconds (or the idle timeout, if shorter) pass without a
    # packet from the peer that opens, and in any case once the longer of
    # the two has passed since its first packet: a peer whose probes get
    # through under heavy loss keeps its handshake, a half-open connection
    # cannot hold state for long (the endpoint's half-open caps bound how
    # many there are).
    handshake_timeout: Optional[float] = 10.0
    max_data: int = 1048576  # initial_max_data
    max_stream_data: int = 1048576  # initial_max_stream_data_*
    max_data_window: Optional[int] = 16 * 1048576  # receive windows may grow (auto-tuning) up to these
    max_stream_data_window: Optional[int] = 8 * 1048576
    max_streams_bidi: int = 128
    max_streams_uni: int = 128
    max_datagram_frame_size: Optional[int] = None  # RFC 9221: None = DATAGRAM frames not accepted
    max_datagram_size: int = SMALLEST_MAX_DATAGRAM_SIZE  # UDP payload we build (path MTU minus headers)
    max_udp_payload_size: int = MAX_UDP_PAYLOAD_SIZE  # what we accept (transport parameter)
    # Path MTU discovery (RFC 9000 §14.3, RFC 8899): once the handshake is
    # confirmed, probe for datagrams up to this size, and fall back to
    # max_datagram_size on a black hole; 0 = no probing.  1452 fits a
    # 1500-byte MTU under IPv6 or IPv4 headers; raise it for jumbo frames.
    max_probe_datagram_size: int = 1452
    ack_delay_exponent: int = 3
    max_ack_delay: float = 0.025  # seconds
    connection_id_length: int = 8  # 4..20, or 0: zero-length IDs (a server then routes by address; no migration)
    # server: makes each connection ID we issue (connection_id_length octets), e.g. a
    # quic_lb.LbEncoder so a QUIC-LB load balancer can route them; default random
    connection_id_generator: Optional[Callable[[], bytes]] = None
    # Connection IDs in use each way: the peer's we store (also the
    # CONNECTION_ID_LIMIT_ERROR cap), and at most this many of ours issued
    # (fewer if the peer's limit is lower).  Four leave three spares for
    # migration and rotation; each costs about 200 bytes per connection.
    active_connection_id_limit: int = 4
    congestion_control_algorithm: str = "reno"  # "reno" or "cubic"
    hystart: bool = True  # leave slow start on a rising RTT, before a loss (HyStart++, RFC 9406)
    undo_spurious_loss: bool = True  # a reduction whose "lost" packets all arrive after all is undone (RFC 9438 §4.9)
    initial_rtt: float = 0.333  # RFC 9002 §6.2.2
    pacing: bool = True
    # Receive credit returns to the peer as data is delivered in events
    # (True, aioquic's behaviour) or as the application calls consume().
    auto_consume: bool = True
    disable_active_migration: bool = False  # tell the peer not to migrate (RFC 9000 §18.2)
    # server: addresses it also listens on and asks clients to move to, at most
    # one IPv4 and one IPv6 (host, port) (RFC 9000 §9.6); serve() binds them too
    preferred_address: Sequence[tuple[str, int]] = ()
    follow_preferred_address: bool = True  # client: validate the server's preferred address and move there
    # -- TLS
    cipher_suites: Optional[Sequence[int]] = None
    groups: Optional[Sequence[int]] = None
    key_share_groups: Optional[Sequence[int]] = None
    session_ticket: Any = None  # client: a tls.Ticket to resume
    token: bytes = b""  # client: a NEW_TOKEN token from this server, for its Initials (RFC 9000 §8.1.3)
    ticket_store: Any = None  # client: a tls.TicketStore (tickets received are added to it)
    ticket_sealer: Any = None  # server: a tls.TicketSealer shared by connections
    session_tickets: int = 1  # server: tickets sent after the handshake
    max_early_data: int = 0  # server: 0 = no 0-RTT; else 0-RTT accepted (QUIC tickets say 0xffffffff)
    enable_early_data: bool = False  # client: send 0-RTT when the session ticket allows it
    wall_clock: Optional[Callable[[], float]] = None  # epoch seconds for certificates and tickets (required)
    # -- observability
    qlog_dir: Optional[str] = None  # one JSON-SEQ file per connection (see pyquic/qlog.py)
    quic_logger: Any = None  # or a sink object: start(odcid, vantage_point) -> writer
    secrets_log_file: Optional[TextIO] = None  # NSS key log lines (SSLKEYLOGFILE)
    # -- caps on what a peer can make us buffer (each violation has its error)
    max_crypto_buffer: int = 65536  # CRYPTO bytes per level beyond the read offset (CRYPTO_BUFFER_EXCEEDED)
    max_ack_ranges: int = 64  # ranges we track per space for our ACKs
    max_ack_ranges_received: int = 1024  # ranges accepted in a peer's ACK (FRAME_ENCODING_ERROR)
    max_undecryptable_packets: int = 10  # packets held until their keys arrive
    max_pending_path_responses: int = 4  # PATH_RESPONSEs queued; older ones dropped
    max_retire_frames_pending: int = 64  # RETIRE_CONNECTION_ID frames queued or unacknowledged (beyond: CONNECTION_ID_LIMIT_ERROR)
    max_datagrams_received: int = 256  # DATAGRAM frames queued as events before the app reads them
    max_datagrams_pending: int = 256  # our DATAGRAM frames waiting to go out
    # Estimated memory out-of-order STREAM chunks of one connection may cost
    # beyond their payload bytes (112 B a chunk, pyquic/assembler.py), which
    # flow control does not bound (PROTOCOL_VIOLATION past it).
    max_reassembly_overhead: int = 4 * 1048576

    def __post_init__(self) -> None:
        for version in self.supported_versions:
            if version not in VERSIONS:
                raise UsageError(f"unsupported QUIC version 0x{version:08x}")
        if not self.supported_versions:
            raise UsageError("supported_versions is empty")
        if self.max_datagram_size < SMALLEST_MAX_DATAGRAM_SIZE:
            raise UsageError("max_datagram_size below 1200")
        if self.max_probe_datagram_size and not (
            SMALLEST_MAX_DATAGRAM_SIZE <= self.max_probe_datagram_size <= MAX_UDP_PAYLOAD_SIZE
        ):  # (at or below max_datagram_size: nothing to search for, no probing)
            raise UsageError("max_probe_datagram_size must be 0, or 1200..65527")
        if not (4 <= self.connection_id_length <= 20 or self.connection_id_length == 0):
            # Zero-length IDs (RFC 9000 §5.1): a client's socket tells its
            # connection; a server's endpoint routes by address (no migration).
            raise UsageError("connection_id_length must be 4..20, or 0")
        if self.active_connection_id_limit < 2:
            raise UsageError("active_connection_id_limit below 2")
        if not self.idle_timeout >= 0:
            raise UsageError("idle_timeout must not be negative (0: none)")
        if self.handshake_timeout is not None and not self.handshake_timeout > 0:
            raise UsageError("handshake_timeout must be positive (or None: the idle timeout only)")
        if self.preferred_address:
            from .preferred_address import check_addresses

            check_addresses(self.preferred_address)  # IP addresses and ports, one per family
        self._tls_config: Optional[tls.Config] = None

    def log_secret(self, line: str) -> None:
        """One NSS key log line to secrets_log_file, flushed (a capture's reader
        may look at once), if there is one."""
        sink = self.secrets_log_file
        if sink is not None:
            sink.write(line + "\n")
            flush = getattr(sink, "flush", None)
            if flush is not None:
                flush()

    # -- aioquic-style loaders -------------------------------------------------
    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        """Load a PEM certificate chain (leaf first) and its private key
        (from keyfile, or from certfile when it holds both)."""
        from tls.certificates import load_certificate_chain, load_private_key

        chain = load_certificate_chain(_read(certfile))
        if not chain:
            raise UsageError("no certificate in certfile")
        key_source = _read(keyfile) if keyfile is not None else _read(certfile)
        self.certificate = chain[0]
        self.certificate_chain = chain[1:]
        self.private_key = load_private_key(key_source, password)
        self._tls_config = None

    def load_verify_locations(self, cafile: Any = None, capath: Any = None, cadata: Any = None) -> None:
        self.cafile = cafile if cafile is None else os.fspath(cafile)
        self.capath = capath if capath is None else os.fspath(capath)
        if cadata is not None:
            self.cadata = cadata.encode("ascii") if isinstance(cadata, str) else bytes(cadata)
        self._tls_config = None

    # -- the TLS side ---------------------------------------------------------------
    def clock(self) -> float:
        if self.wall_clock is None:
            raise UsageError(_NO_WALL_CLOCK)
        return self.wall_clock()

    def require_inputs(self, entropy: Optional[Callable[[int], bytes]], owner: str) -> Callable[[int], bytes]:
        """What the sans-I/O core must be handed, checked where a QuicConnection
        or QuicEndpoint (`owner`) is built: `entropy(n) -> n random bytes` and
        this configuration's `wall_clock` (the TLS side reads it for every
        certificate check and ticket).  Returns entropy; UsageError naming
        what is missing."""
        if entropy is None or not callable(entropy):
            raise UsageError(
                f"{owner} needs entropy=, a callable n -> n random bytes: the sans-I/O core "
                "draws no randomness itself (pyquic.asyncio passes os.urandom; tests pass a seeded one)"
            )
        if self.wall_clock is None or not callable(self.wall_clock):
            raise UsageError(_NO_WALL_CLOCK)
        return entropy

    def tls_config(self) -> tls.Config:
        """The tls.Config for this configuration (built once; later edits to the
        TLS fields are picked up only after load_* calls or invalidate())."""
        if self._tls_config is None:
            self._tls_config = self._build_tls_config()
        return self._tls_config

    def invalidate(self) -> None:
        self._tls_config = None

    def _build_tls_config(self) -> tls.Config:
        if not self.alpn_protocols:
            raise UsageError("QUIC requires alpn_protocols (RFC 9001 §8.1)")
        chain = None
        if self.certificate is not None:
            chain = [self.certificate, *self.certificate_chain]
        elif self.certificate_chain:
            chain = list(self.certificate_chain)
        kwargs: dict[str, Any] = dict(
            certificate_chain=chain,
            private_key=self.private_key if chain else None,
            cafile=self.cafile,
            capath=self.capath,
            cadata=self.cadata,
            verify_mode=self.verify_mode,
            server_name=self.server_name if self.is_client else None,
            check_hostname=self.check_hostname,
            certificate_verifier=self.certificate_verifier,
            config_for_client=None if self.is_client else self.config_for_client,
            alpn_protocols=tuple(self.alpn_protocols),
            session_tickets=self.session_tickets,
            max_early_data=self.max_early_data,
            enable_early_data=self.enable_early_data,
            accept_early_data=None if self.is_client else self._accepts_early_data,
            ticket_sealer=self.ticket_sealer,
            max_handshake_buffer=max(self.max_crypto_buffer, 1024),
            clock=self.clock,
        )
        if self.cipher_suites is not None:
            kwargs["cipher_suites"] = tuple(self.cipher_suites)
        if self.groups is not None:
            kwargs["groups"] = tuple(self.groups)
        if self.key_share_groups is not None:
            kwargs["key_share_groups"] = tuple(self.key_share_groups)
        if self.is_client:
            # A store makes the client offer PSK modes, so servers send tickets
            # (to the session_ticket_handler).  Only an explicit ticket_store
            # reuses them by itself; otherwise just `session_ticket`, once.
            if self.ticket_store is not None:
                store = self.ticket_store
                if self.session_ticket is not None:
                    store.add(self.session_ticket)
            else:
                store = _SessionTicketStore(self.session_ticket)
            kwargs["ticket_store"] = store
        try:
            return tls.Config(**kwargs)
        except tls.UsageError as exc:
            raise UsageError(str(exc)) from None

    def initial_limits(self) -> dict:
        """Our initial flow-control and stream limits by transport parameter
        name (RFC 9000 §18.2): what we advertise, what the stream manager
        enforces, what a ticket remembers for 0-RTT."""
        return dict(
            initial_max_data=self.max_data,
            initial_max_stream_data_bidi_local=self.max_stream_data,
            initial_max_stream_data_bidi_remote=self.max_stream_data,
            initial_max_stream_data_uni=self.max_stream_data,
            initial_max_streams_bidi=self.max_streams_bidi,
            initial_max_streams_uni=self.max_streams_uni,
        )

    def transport_parameters(self, *, is_client: bool, source_cid: bytes, version_information: Any,
                             original_dcid: Optional[bytes] = None, retry_scid: Optional[bytes] = None,
                             reset_token: Optional[bytes] = None, preferred_address: Any = None) -> bytes:
        """Our transport parameters, encoded (RFC 9000 §18.2): this
        configuration's values and the connection's IDs; the server-only
        ones (original and Retry IDs, reset token, preferred address) only
        from a server."""
        server = not is_client
        return QuicTransportParameters(
            original_destination_connection_id=original_dcid if server else None,
            max_idle_timeout=int(self.idle_timeout * 1000),
            stateless_reset_token=reset_token if server else None,
            max_udp_payload_size=self.max_udp_payload_size,
            **self.initial_limits(),
            ack_delay_exponent=self.ack_delay_exponent,
            max_ack_delay=int(self.max_ack_delay * 1000),
            disable_active_migration=self.disable_active_migration,
            active_connection_id_limit=self.active_connection_id_limit,
            initial_source_connection_id=source_cid,
            retry_source_connection_id=retry_scid if server else None,
            version_information=version_information,
            max_datagram_frame_size=self.max_datagram_frame_size or 0,
            preferred_address=preferred_address if server else None,
        ).encode()

    def _accepts_early_data(self, state: Any) -> bool:
        """The TLS engine's accept_early_data hook: 0-RTT only while the
        limits sealed in the ticket still hold (pyquic/zero_rtt.py)."""
        from .zero_rtt import limits_still_hold

        return limits_still_hold(self, state.app_data)


_NO_WALL_CLOCK = (
    "QuicConfiguration.wall_clock is not set: the sans-I/O core reads no clock; give it a callable "
    "returning epoch seconds, e.g. time.time (pyquic.asyncio sets time.time when it is unset)"
)


class _SessionTicketStore(tls.TicketStore):
    """The configured session_ticket (used once); received tickets are not kept."""

    def __init__(self, ticket: Any = None) -> None:
        super().__init__()
        if ticket is not None:
            super().add(ticket)

    def add(self, ticket: Any) -> None:
        pass


def _read(source: Any) -> Any:
    """Paths are read here (tls loaders take bytes as data, str as a path)."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    with open(os.fspath(source), "rb") as f:
        return f.read()


__all__ = ["QuicConfiguration", "SMALLEST_MAX_DATAGRAM_SIZE", "QUIC_V1", "QUIC_V2"]
