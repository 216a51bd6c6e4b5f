# QuicConnection: one QUIC connection, sans-I/O (RFC 9000, 9001, 9002; QUIC v2
# RFC 9369).  This module orchestrates and dispatches; the work lives in
#   spaces.py (packet number spaces, key phases), packet_builder.py (what
#   goes into datagrams, sent-packet records), recovery.py (loss detection,
#   congestion), ack.py (ACK generation), streams.py (streams, flow
#   control), connection_ids.py (CIDs, reset tokens), paths.py (the peer's
#   address: validation, migration), liveness.py (idle and handshake
#   timeouts), zero_rtt.py (0-RTT keys and rules;
#   these two decide and return actions, which this module applies),
#   transport_params.py, packet.py / frames.py (codecs), tls/ (the
#   handshake), qlog.py.
# It owns: the connection's life cycle (handshake, confirmation, key
# discarding, closing, draining, timing out), receiving datagrams (the
# short-header fast path and the general path over coalesced packets, one
# by one or a GRO batch at a time),
# feeding CRYPTO data to the TLS engine and applying its events, Version
# Negotiation and Retry on the client (which version: version_negotiation.py),
# transport parameter validation
# (§7.3, §7.4), anti-amplification accounting, timers, and the
# application's API (aioquic's names: connect, receive_datagram,
# datagrams_to_send, get_timer, handle_timer, next_event, stream calls).
#
# Errors: a peer violation raises TransportError inside the receive path; it
# becomes CONNECTION_CLOSE with its code.  A datagram that fails to decrypt
# is dropped and counted.  Any other exception inside receive_datagram or
# handle_timer is a bug: it is logged and closes with INTERNAL_ERROR, or is
# re-raised when RAISE_INTERNAL_ERRORS is set (the tests set it).
from __future__ import annotations

import logging
import os
from enum import IntEnum
from typing import Any, Callable, Optional, Sequence

import tls

from . import events, preferred_address, zero_rtt
from .closing import Closing
from .config import QuicConfiguration
from .connection_ids import LocalConnectionIds, PeerConnectionIds
from .crypto import CryptoError, PacketKeys, derive_packet_keys, initial_keys, verify_retry_integrity
from .errors import ErrorCode, TransportError, UsageError
from .frame_types import frame_name
from .frames import (
    Ack,
    ConnectionClose,
    Crypto,
    Datagram,
    HandshakeDone,
    NewConnectionId,
    NewToken,
    Padding,
    PathChallenge,
    PathResponse,
    Ping,
    RetireConnectionId,
    Stream,
    payload_parsers,
)
from .packet import (
    LONG_RESERVED_BITS,
    SHORT_RESERVED_BITS,
    PacketType,
    PartialHeader,
    check_reserved_bits,
    split_datagram,
)
from .batches import GSO_MAX_SEGMENTS, merge_batches, split_batches
from .packet_builder import MIN_INITIAL_DATAGRAM, PacketBuilder, SendFacts
from .pmtud import PathMtu
from .recovery import LossRecovery, PacketNumberSpace, PacketsLost, ProbeNeeded
from .paths import Migration, PathInUse, PathValidator, ValidationOutcome
from .preferred_address import PREFERRED_CID_SEQUENCE
from .spaces import KeyPhases, Space
from .stream_runs import StreamRun
from .streams import HANDLED_FRAME_TYPES, StreamManager
from .ack import ECN_ECT0
from .liveness import Liveness
from .stats import QuicConnectionStats
from .transport_params import QuicTransportParameters, check_connection_ids
from .version_negotiation import Verdict, Versions

logger = logging.getLogger("pyquic.connection")

# Tests set this (or PYQUIC_RAISE_INTERNAL=1) so a bug shows its traceback
# instead of an INTERNAL_ERROR close.
RAISE_INTERNAL_ERRORS = os.environ.get("PYQUIC_RAISE_INTERNAL", "") not in ("", "0")

INITIAL = PacketNumberSpace.INITIAL
HANDSHAKE = PacketNumberSpace.HANDSHAKE
APPLICATION = PacketNumberSpace.APPLICATION
LEVEL_SPACE = {
    tls.Level.INITIAL: INITIAL,
    tls.Level.HANDSHAKE: HANDSHAKE,
    tls.Level.APPLICATION: APPLICATION,
    tls.Level.EARLY_DATA: APPLICATION,
}
SPACE_LEVEL = {INITIAL: tls.Level.INITIAL, HANDSHAKE: tls.Level.HANDSHAKE, APPLICATION: tls.Level.APPLICATION}
PACKET_SPACE = {
    PacketType.INITIAL: INITIAL,
    PacketType.HANDSHAKE: HANDSHAKE,
    PacketType.ZERO_RTT: APPLICATION,
    PacketType.ONE_RTT: APPLICATION,
}
CLIENT_INITIAL_DCID_LENGTH = 8  # RFC 9000 §7.2: at least 8 bytes
PACING_QUANTUM = 0.001  # seconds of sending a pacing wake-up waits for (kGranularity)
EARLY_CRYPTO_RESENDS = 3  # RFC 9002 §6.2.3: "a limited number of times per connection"


class QuicConnectionState(IntEnum):
    FIRSTFLIGHT = 0
    CONNECTED = 1
    CLOSING = 2
    DRAINING = 3
    TERMINATED = 4


class QuicConnection:
    """A QUIC connection: see the module header."""

    # Slots: a dict of this many attributes costs kilobytes per connection
    # (issue 14's memory target); "__dict__" stays for attributes set from outside.
    __slots__ = (
        "_alpn", "_builder", "_cid_length", "_client_params", "_configuration", "_datagrams_queued",
        "_ecn_in", "_end", "_entropy", "_events", "_first_initial", "_handshake_complete",
        "_handshake_confirmed", "_initial_dcid", "_initial_keys_cid", "_last_peer_dcid", "_liveness",
        "_local_cids", "_loss", "_parsers", "_run", "_one_rtt", "_original_dcid",
        "_original_initial_recv", "_pacing_at", "_path", "_paths", "_peer_ack_delay_exponent", "_peer_cids",
        "_peer_initial_scid", "_peer_max_datagram_frame_size", "_peer_params", "_pending_1rtt",
        "_preferred", "_preferred_offer", "_qlog", "_received_valid", "_retry_received",
        "_retry_source_cid", "_session_ticket_handler", "_spaces", "_state", "_stats", "_streams",
        "_streams_ready", "_tls", "_token", "_token_handler", "_undecryptable", "_versions", "_zero_rtt",
        "cid_listener", "is_client", "__dict__", "__weakref__"
    )

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        original_destination_connection_id: Optional[bytes] = None,
        retry_source_connection_id: Optional[bytes] = None,
        address_validated: bool = False,
        session_ticket_handler: Optional[Callable[[Any], None]] = None,
        token_handler: Optional[Callable[[bytes], None]] = None,
        stateless_reset_key: Optional[bytes] = None,
        entropy: Optional[Callable[[int], bytes]] = None,
    ) -> None:
        config = configuration
        if not config.alpn_protocols:
            raise UsageError("QUIC requires alpn_protocols (RFC 9001 §8.1)")
        self._configuration = config
        self.is_client = bool(config.is_client)
        self._entropy = config.require_inputs(entropy, "QuicConnection")  # no default: sans-I/O
        self._session_ticket_handler = session_ticket_handler
        self._token_handler = token_handler  # client: NEW_TOKEN tokens, for this server's next connection
        self._events = events.EventQueue()
        self._state = QuicConnectionState.FIRSTFLIGHT
        self._stats = QuicConnectionStats()
        self._local_cids = LocalConnectionIds(config.connection_id_length, stateless_reset_key or self._entropy(32),
                                              self._entropy, generator=config.connection_id_generator)
        self._local_cids.events.clear()  # the first CID is host_cid, not announced
        if self.is_client:
            if original_destination_connection_id is not None:
                raise UsageError("a client chooses its own original destination connection ID")
            self._original_dcid = self._entropy(CLIENT_INITIAL_DCID_LENGTH)
            first = config.original_version or config.supported_versions[0]
            if first not in config.supported_versions:
                raise UsageError("original_version is not in supported_versions")
            self._versions = Versions(config.supported_versions, True, first)
        else:
            if original_destination_connection_id is None:
                raise UsageError("a server connection needs original_destination_connection_id")
            self._original_dcid = bytes(original_destination_connection_id)
            self._versions = Versions(config.supported_versions, False)  # the client's Initial decides
            if config.certificate is None and not config.certificate_chain:
                raise UsageError("a server needs a certificate and private key (load_cert_chain)")
        self._peer_cids = PeerConnectionIds(
            self._original_dcid if self.is_client else b"",
            config.active_connection_id_limit,
            config.max_retire_frames_pending,
        )
        self._retry_source_cid = retry_source_connection_id
        self._retry_received = False
        self._token = bytes(config.token) if self.is_client else b""  # a NEW_TOKEN one, until a Retry's
        self._peer_initial_scid: Optional[bytes] = None
        self._initial_dcid: Optional[bytes] = None  # server: the DCID of the client's Initials
        self._original_initial_recv: Any = None  # server: the client's version's Initial keys, after a switch
        self._first_initial: Optional[tuple] = None  # server: what receive_first_initial was handed
        self._client_params: Optional[tuple] = None  # server: (bytes, parsed) of the client's transport parameters
        self._ecn_in = 0  # the ECN codepoint of the datagram being processed
        self._cid_length = config.connection_id_length
        self._parsers = payload_parsers(self.is_client, config.max_ack_ranges_received)
        self._run: Optional[StreamRun] = None  # a batch's held STREAM run (pyquic/stream_runs.py)
        self._received_valid = False  # some packet from the peer opened
        self._path = PathInUse(self.is_client or retry_source_connection_id is not None or address_validated)
        self._last_peer_dcid = b""  # which of our connection IDs the peer's last packet used
        self._paths = PathValidator(self._entropy, follows_peer=not self.is_client)
        self._preferred: Any = None  # client: the server's preferred address, while we validate it
        self._preferred_offer = None if self.is_client else preferred_address.offer(
            config.preferred_address, self._local_cids)
        self._peer_params: Optional[QuicTransportParameters] = None
        self._peer_ack_delay_exponent = 3
        self._peer_max_datagram_frame_size = 0
        self._alpn: Optional[str] = None
        self._handshake_complete = False
        self._handshake_confirmed = False
        self._datagrams_queued = 0  # DatagramFrameReceived events not yet taken (capped)
        self._end = Closing()  # why it ends, the CONNECTION_CLOSE owed, when it is gone
        self._liveness = Liveness(config.idle_timeout, config.handshake_timeout)
        self._pacing_at: Optional[float] = None
        self._undecryptable: Sequence[bytes] = ()  # a list only while some are held
        self._streams = StreamManager(
            self.is_client,
            **config.initial_limits(),
            max_data_window=config.max_data_window,
            max_stream_data_window=config.max_stream_data_window,
            auto_consume=config.auto_consume,
            max_reassembly_overhead=config.max_reassembly_overhead,
        )
        self._streams_ready = False
        self._builder = PacketBuilder(
            is_client=self.is_client, streams=self._streams, local_cids=self._local_cids, peer_cids=self._peer_cids,
            paths=self._paths, configuration=config, stats=self._stats, can_send_eliciting=self._can_send_eliciting,
            on_packet_sent=self._on_packet_sent, on_eliciting_sent=self._on_eliciting_sent,
            on_handshake_sent=self._on_handshake_sent, on_ping_acked=self._on_ping_acked,
        )
        self._qlog = None
        # The endpoint's routing hook: cid_listener(issued: bool, cid: bytes).
        self.cid_listener: Optional[Callable[[bool, bytes], None]] = None
        self._setup_handshake()

    # ------------------------------------------------------------------
    # properties
    @property
    def configuration(self) -> QuicConfiguration:
        return self._configuration

    @property
    def host_cid(self) -> bytes:
        return self._local_cids.host_cid

    @property
    def original_destination_connection_id(self) -> bytes:
        return self._original_dcid

    @property
    def tls(self) -> tls.Engine:
        return self._tls

    @property
    def version(self) -> Optional[int]:
        return self._versions.current

    @property
    def alpn_protocol(self) -> Optional[str]:
        return self._alpn

    @property
    def peer_max_datagram_frame_size(self) -> int:
        """The peer's max_datagram_frame_size transport parameter (0: none)."""
        return self._peer_max_datagram_frame_size

    @property
    def peer_address(self) -> Any:
        """The address the peer is reached at now (it may change: migration)."""
        return self._path.addr

    @property
    def state(self) -> QuicConnectionState:
        return self._state

    @property
    def stats(self) -> QuicConnectionStats:
        return self._stats

    @property
    def path_mtu(self) -> PathMtu:
        """The datagram size in use and path MTU discovery's counts (pmtud.PathMtu)."""
        return self._loss.pmtu

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_complete

    @property
    def handshake_confirmed(self) -> bool:
        return self._handshake_confirmed

    @property
    def peer_cid(self) -> bytes:
        return self._peer_cids.cid

    @property
    def host_cids(self) -> list[bytes]:
        """Every CID currently routed to us (for the endpoint)."""
        return list(self._local_cids.by_cid)

    @property
    def ecn_codepoint(self) -> int:
        """What the socket should mark the datagrams of datagrams_to_send() with:
        ECT(0) while ECN is on and the path has not failed validation (RFC 9000 §13.4.2)."""
        return ECN_ECT0 if self._configuration.ecn and not self._loss.ecn_failed else 0

    @property
    def key_phase(self) -> int:
        return self._one_rtt.send_phase if self._one_rtt is not None else 0

    @property
    def loss(self) -> LossRecovery:
        return self._loss

    # ------------------------------------------------------------------
    # set-up
    def _setup_handshake(self) -> None:
        """Spaces, recovery and the TLS engine (again after Version Negotiation)."""
        config = self._configuration
        old = getattr(self, "_spaces", None)
        self._spaces = [
            Space(
                sid,
                max_crypto_buffer=config.max_crypto_buffer,
                max_ack_delay=config.max_ack_delay,
                ack_delay_exponent=config.ack_delay_exponent,
                max_ack_ranges=config.max_ack_ranges,
            )
            for sid in PacketNumberSpace
        ]
        if old is not None:
            for space, previous in zip(self._spaces, old):
                space.next_pn = previous.next_pn  # packet numbers keep increasing
        self._loss = self._new_recovery()
        self._one_rtt: Optional[KeyPhases] = None
        self._pending_1rtt: Optional[PacketKeys] = None  # a 1-RTT read key that came before the write key
        self._zero_rtt = zero_rtt.ZeroRtt()  # 0-RTT keys; the last 0-RTT packet number, if refused
        self._builder.reset(self._spaces, self._loss, self._zero_rtt)
        self._tls: Optional[tls.Engine] = None
        if self.is_client:
            self._install_initial_keys(self._original_dcid)
            self._create_engine()

    def _new_recovery(self) -> LossRecovery:
        config = self._configuration
        loss = LossRecovery(
            is_client=self.is_client,
            congestion_control=config.congestion_control_algorithm,
            max_datagram_size=config.max_datagram_size, max_probe_datagram_size=config.max_probe_datagram_size,
            initial_rtt=config.initial_rtt, hystart=config.hystart, undo_spurious=config.undo_spurious_loss,
        )
        # At high rates let a pacing wake-up send up to 1 ms worth, at most one GSO write.
        loss.pacer.burst_time = PACING_QUANTUM
        loss.pacer.max_burst_packets = GSO_MAX_SEGMENTS
        return loss

    def _install_initial_keys(self, dcid: bytes) -> None:
        send, recv = initial_keys(self._versions.current, dcid, self.is_client)
        space = self._spaces[INITIAL]
        space.send_keys, space.recv_keys = send, recv
        self._initial_keys_cid = dcid  # client: the DCID its Initial keys come from (RFC 9368: again on a switch)

    def _local_transport_parameters(self) -> bytes:
        return self._configuration.transport_parameters(
            is_client=self.is_client, source_cid=self._local_cids.host_cid,
            version_information=self._versions.local_information(), original_dcid=self._original_dcid,
            retry_scid=self._retry_source_cid,
            reset_token=None if self.is_client else self._local_cids.announced_token,  # an HMAC: servers only
            preferred_address=self._preferred_offer,
        )

    def _create_engine(self) -> None:
        try:
            self._tls = tls.Engine(
                self._configuration.tls_config(),
                self.is_client,
                profile=tls.QUIC,
                transport_parameters=self._local_transport_parameters() if self.is_client else self._answer_versions,
                entropy=self._entropy,
                ticket_app_data=None if self.is_client else zero_rtt.ticket_limits(self._configuration),
            )
        except tls.UsageError as exc:
            raise UsageError(f"TLS configuration: {exc}") from None

    # ------------------------------------------------------------------
    # the application's API
    def connect(self, addr: Any, now: float) -> None:
        """Client: start the handshake towards `addr`."""
        if not self.is_client:
            raise UsageError("connect() is for clients")
        if self._path.addr is not None:
            raise UsageError("connect() was already called")
        self._path.addr = addr
        self._liveness.start(now)
        self._start_client(now)

    def _start_client(self, now: float) -> None:
        self._qlog_start()
        self._run_tls(lambda: self._tls.start(), now)

    def next_event(self) -> Optional[events.QuicEvent]:
        """The next event, or None.  Data of one stream that arrived in a row
        (say, one GRO batch) comes as one StreamDataReceived."""
        event = self._events.pop()
        if type(event) is events.DatagramFrameReceived:
            self._datagrams_queued -= 1
        return event

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        return self._streams.get_next_available_stream_id(is_unidirectional)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._check_open()
        self._streams.send_stream_data(stream_id, data, end_stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._check_open()
        self._streams.reset_stream(stream_id, error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self._check_open()
        self._streams.stop_sending(stream_id, error_code)

    @property
    def auto_consume(self) -> bool:
        return self._streams.auto_consume

    def consume(self, stream_id: int, count: int) -> None:
        """Without auto_consume: the application has read `count` bytes of the
        stream, so their credit may go back to the peer (MAX_STREAM_DATA, MAX_DATA)."""
        self._streams.consume(stream_id, count)

    def stream_send_buffered(self, stream_id: int) -> int:
        """Bytes written to the stream and not yet acknowledged (0 if unknown or done)."""
        stream = self._streams.streams.get(stream_id)
        if stream is None or stream.send is None:
            return 0
        return stream.send.buffered

    def change_path(self, now: float) -> None:
        """Client: our local address changed (active migration, RFC 9000 §9.2):
        a spare connection ID of the server's (§9.5), congestion and RTT
        afresh (§9.4), and the path validated (PathValidated, or
        PathValidationFailed and the connection stays)."""
        if not self.is_client or not self._handshake_confirmed:
            raise UsageError("active migration is a client's, once the handshake is confirmed")
        if self._peer_params is not None and self._peer_params.disable_active_migration:
            raise UsageError("the server asked for no active migration (disable_active_migration)")
        self._check_open()
        if not self._peer_cids.change():
            raise UsageError("no spare connection ID of the server's to migrate with")
        self._stats.path_migrations += 1
        self._loss.reset_path(now)
        self._paths.start(self._path.addr, None, now, self._loss.probe_timeout())
        self._builder.request_ack_eliciting()

    def send_new_token(self, token: bytes) -> None:
        """Server: give the client a token for its next connection (NEW_TOKEN,
        RFC 9000 §8.1.3; the endpoint mints them)."""
        if self.is_client or not self._handshake_complete or not token:
            raise UsageError("NEW_TOKEN: a server's, after the handshake, and not empty")
        self._check_open()
        self._builder.queue_new_token(bytes(token))

    def send_ping(self, uid: int) -> None:
        self._check_open()
        self._builder.queue_ping(uid)

    def send_datagram_frame(self, data: bytes) -> None:
        """RFC 9221: queue an unreliable DATAGRAM frame (the peer must accept them)."""
        self._check_open()
        limit = self._peer_max_datagram_frame_size
        if self._peer_params is None or not limit:
            raise UsageError("the peer does not accept DATAGRAM frames")
        if Datagram(data).size > limit or len(data) + 9 > self._loss.pmtu.base - 64:
            raise UsageError("datagram frame too large")  # RFC 9221 §3: type and length count
        if not self._builder.queue_datagram(bytes(data), self._configuration.max_datagrams_pending):
            raise UsageError("too many datagram frames queued")

    def change_connection_id(self) -> bool:
        """Switch to the peer's next connection ID, retiring the current one
        (False: the peer has given no spare one yet)."""
        self._check_open()
        return self._peer_cids.change()

    def request_connection_id_rotation(self) -> None:
        """Ask the peer to move off every connection ID we issued so far (fresh
        ones with Retire Prior To, RFC 9000 §5.1.2), e.g. to retire routing keys."""
        self._check_open()
        if not self._handshake_complete or not self._cid_length:
            raise UsageError("connection ID rotation needs a complete handshake and non-empty connection IDs")
        self._local_cids.rotate()
        self._flush_cid_events()  # the endpoint routes the new ones from now on

    def request_key_update(self) -> None:
        """RFC 9001 §6: start a key update (UsageError if one may not start now)."""
        self._check_open()
        kp = self._one_rtt
        if kp is None or not self._handshake_confirmed:
            raise UsageError("key updates need a confirmed handshake")
        if not kp.can_initiate():
            raise UsageError("the previous key update is not acknowledged yet")
        kp.initiate(self._spaces[APPLICATION].next_pn)

    def close(self, error_code: int = 0, frame_type: Optional[int] = None, reason_phrase: str = "") -> None:
        """Close the connection: an application close (CONNECTION_CLOSE 0x1d),
        or a transport close (0x1c) when frame_type is given."""
        if self._state >= QuicConnectionState.CLOSING or self._end.pending:
            return
        self._end.ask(error_code, frame_type, reason_phrase)

    def _check_open(self) -> None:
        if self._state >= QuicConnectionState.CLOSING or self._end.pending:
            raise UsageError("the connection is closing")

    # ------------------------------------------------------------------
    # sending
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """Datagrams to send now, as (data, addr) pairs."""
        return split_batches(self.datagram_batches_to_send(now))

    def datagram_batches_to_send(self, now: float) -> list[tuple[bytes, int, Any]]:
        """Datagrams as GSO batches: (buffer, segment_size, addr); each buffer
        is packets of segment_size bytes, the last one possibly shorter."""
        return [batch[:3] for batch in self.path_datagram_batches(now)]

    def path_datagram_batches(self, now: float) -> list[tuple[bytes, int, Any, Any]]:
        """The same batches with the local address each must leave from, as
        receive_datagram was told it (None: the only one): (buffer,
        segment_size, addr, local).  For a server on more than one address."""
        state = self._state
        if state >= QuicConnectionState.DRAINING or self._path.addr is None:
            return []
        addr = self._path.addr
        try:
            if self._end.pending or state == QuicConnectionState.CLOSING:
                return self._send_close(now)
            kp = self._one_rtt
            if kp is not None and kp.needs_update() and kp.can_initiate() and self._handshake_confirmed:
                kp.initiate(self._spaces[APPLICATION].next_pn)  # RFC 9001 §6.6
            self._pacing_at = None
            if self._loss.needs_ack_eliciting(APPLICATION) and self._one_rtt is not None:
                self._builder.request_ack_eliciting()
            batches = self._builder.build(now, self._send_facts())
            self._path.sent += self._builder.bytes_sent
        except Exception as exc:
            if RAISE_INTERNAL_ERRORS:
                raise
            logger.exception("internal error while sending")
            self._close_locally(TransportError.INTERNAL_ERROR(f"{type(exc).__name__}: {exc}"), now)
            return self._send_close(now)
        stats = self._stats
        for buffer, segment in batches:
            stats.datagrams_sent += -(-len(buffer) // segment)
            stats.bytes_sent += len(buffer)
        if len(batches) > 1:
            batches = merge_batches(batches)
        local = self._path.local
        out = [(buffer, segment, addr, local) for buffer, segment in batches]
        if self._paths.off_path:  # PATH_RESPONSEs for other paths, challenges to an address not in use
            out += self._builder.build_off_path(now, self._send_facts(), self._paths.take_off_path())
        return out

    def _send_close(self, now: float) -> list[tuple[bytes, int, Any, Any]]:
        frame = self._end.take()
        if frame is None:
            return []
        budget = self._path.budget
        datagram = self._builder.build_close(now, self._send_facts(), frame, self._handshake_confirmed)
        if self._state < QuicConnectionState.CLOSING:
            self._enter_closing(now, QuicConnectionState.CLOSING)
        if datagram is None:
            return []
        if len(datagram) > budget:
            # RFC 9000 §8.1, §10.2.1: a close to an unvalidated address obeys the
            # 3x limit too; unsent, it does not count against it.
            return []
        self._path.sent += len(datagram)
        self._stats.datagrams_sent += 1
        self._stats.bytes_sent += len(datagram)
        return [(datagram, len(datagram), self._path.addr, self._path.local)]

    def _send_facts(self) -> SendFacts:
        path = self._path
        return SendFacts(
            self._one_rtt, self._versions.current, self._token, path.validated, path.budget, self._loss.pmtu.size,
            self._state >= QuicConnectionState.CLOSING, self._streams_ready, self._qlog, self.ecn_codepoint == ECN_ECT0,
        )

    def _can_send_eliciting(self, now: float) -> bool:
        loss = self._loss
        mds = loss.pmtu.size
        if not loss.cc.can_send(mds):
            return False
        if self._configuration.pacing:
            pacer = loss.pacer
            rate = pacer.rate
            if rate is not None and pacer.next_send_time(now) > now:
                # Wake up when a batch's worth (up to 1 ms of sending, at most
                # the bucket) is there, not for every single packet.
                quantum = min(pacer.capacity, max(mds, rate * PACING_QUANTUM))
                self._pacing_at = pacer.next_send_time(now, quantum)
                return False
        return True

    def _on_packet_sent(self, space: int, pn: int, size: int, eliciting: bool, records: list, now: float) -> None:
        """Bookkeeping for each packet sent (the 1-RTT burst does the same inline)."""
        self._stats.packets_sent += 1
        if eliciting:
            self._on_eliciting_sent(now)
        if self._qlog is not None:
            zero_rtt = space == APPLICATION and self._one_rtt is None  # only 0-RTT goes there before 1-RTT keys
            self._qlog.packet_sent(now, space, pn, size, records, zero_rtt=zero_rtt)

    def _on_eliciting_sent(self, now: float) -> None:
        self._liveness.on_eliciting_sent(now)

    def _on_handshake_sent(self, now: float) -> None:
        if self.is_client and not self._spaces[INITIAL].discarded:
            # RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet.
            self._discard_space(INITIAL, now)

    def _on_ping_acked(self, uid: int) -> None:
        self._events.append(events.PingAcknowledged(uid))

    # ------------------------------------------------------------------
    # receiving
    def receive_datagram(self, data: bytes, addr: Any, now: float, ecn: int = 0, local: Any = None) -> None:
        """Process one UDP datagram from `addr`; `ecn` is the ECN codepoint
        its IP header carried (0-3, RFC 3168), where the socket can tell;
        `local` which of our addresses it came to, for a server on more than
        one (a preferred address): path_datagram_batches says where to send from."""
        if self._state < QuicConnectionState.DRAINING:
            self._ecn_in = ecn
            self._path.datagram_local = local
            self._guarded(self._receive_datagram, now, data, addr, now)

    def receive_first_initial(self, data: bytes, addr: Any, now: float, keys: tuple, opened: tuple,
                              ecn: int = 0, local: Any = None) -> None:
        """Server, from QuicEndpoint: the first datagram, whose first packet (an
        Initial) the endpoint opened already: `keys` are the (send, receive)
        Initial keys of its DCID, `opened` that packet's (plain header,
        payload, packet number); neither is derived nor opened again."""
        self._first_initial = (keys, opened)
        try:
            self.receive_datagram(data, addr, now, ecn, local)
        finally:
            self._first_initial = None  # only ever for that packet

    def receive_datagrams(self, data: bytes, segment_size: int, addr: Any, now: float, ecn: int = 0,
                          local: Any = None) -> None:
        """Process the datagrams of one GRO batch from `addr`: `data` holds
        them back to back, `segment_size` bytes each (the last may be
        shorter).  The same as receive_datagram on each, in one call."""
        if segment_size <= 0:
            raise UsageError("segment_size must be positive")
        self._ecn_in = ecn  # one codepoint for the batch: GRO merges only equal ones
        self._path.datagram_local = local
        first = self._receive_short_batch(data, segment_size, addr, now) if len(data) > segment_size else 0
        for start in range(first, len(data), segment_size):
            if self._state >= QuicConnectionState.DRAINING:
                return
            self._guarded(self._receive_datagram, now, data[start : start + segment_size], addr, now)

    def _receive_short_batch(self, data: bytes, segment_size: int, addr: Any, now: float) -> int:
        """A batch's leading run of 1-RTT packets (KeyPhases.open_batch), taken as _receive_short would, STREAM
        coalesced (StreamRun).  Returns where the one-by-one path goes on (after the run, or where it broke off)."""
        kp = self._one_rtt
        if kp is None or kp.recv is None or self._state is not QuicConnectionState.CONNECTED:
            return 0
        space, stats, path, taken = self._spaces[APPLICATION], self._stats, self._path, 0
        segments, results, resume = kp.open_batch(data, segment_size, self._cid_length, self._local_cids.by_cid,
                                                  space.ack.largest_received)
        run = self._run = StreamRun(self._streams, self._events)
        try:
            for (start, size, pn_offset), opened in zip(segments, results):
                if opened is None or self._state is not QuicConnectionState.CONNECTED:
                    resume = start
                    break
                taken = start + size  # this datagram is consumed, even if its packet ends in an error
                stats.datagrams_received += 1
                stats.bytes_received += size
                path.on_datagram(addr, size)
                plain, payload, pn = opened
                kp.accept(plain, pn)
                self._process_packet(space, PacketType.ONE_RTT, plain, payload, pn, data[start + 1 : start + pn_offset], now)
            run.flush()
        except Exception as exc:
            try:
                run.flush()  # what earlier packets held goes first, as one by one it would have gone
            except Exception as earlier:
                exc = earlier  # ... and one by one, its error would have come first
            self._on_input_error(exc, now)
            return taken  # the rest: the closing connection's own path
        finally:
            self._run = None
        return resume

    def _guarded(self, step: Callable, now: float, *args: Any) -> None:
        """One step of input (a datagram, a timer), through _on_input_error."""
        try:
            step(*args)
        except Exception as exc:
            self._on_input_error(exc, now)

    def _on_input_error(self, exc: Exception, now: float) -> None:
        """A TransportError closes the connection with that error, anything else (a bug) with INTERNAL_ERROR."""
        if not isinstance(exc, TransportError):
            if RAISE_INTERNAL_ERRORS:
                raise exc
            logger.error("internal error while processing input", exc_info=exc)
            exc = TransportError.INTERNAL_ERROR(f"{type(exc).__name__}: {exc}")
        self._close_locally(exc, now)

    def _receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        stats = self._stats
        size = len(data)
        stats.datagrams_received += 1
        stats.bytes_received += size
        path = self._path
        if path.addr is None:
            self._liveness.start(now)
        path.on_datagram(addr, size)
        if self._state == QuicConnectionState.CLOSING:
            self._end.on_datagram()  # RFC 9000 §10.2.1: CONNECTION_CLOSE again, ever less often
            return
        if not size:
            return
        kp = self._one_rtt
        if not data[0] & 0x80 and kp is not None and kp.recv is not None:
            if not self._receive_short(data, now) and self._peer_cids.is_stateless_reset(data):
                self._on_stateless_reset(now)
            return
        packets, _ = split_datagram(data, self._configuration.connection_id_length)
        if not packets:
            stats.packets_dropped += 1
        opened = False
        for header, view in packets:
            if self._receive_packet(header, view, now):
                opened = True
            if self._state >= QuicConnectionState.CLOSING:
                return
        if not opened and not data[0] & 0x80 and self._peer_cids.is_stateless_reset(data):
            self._on_stateless_reset(now)

    def _receive_short(self, data: bytes, now: float) -> bool:
        """The fast path: one 1-RTT packet fills the datagram (the usual case once 1-RTT keys are there): the
        steps _receive_packet takes for it, without splitting the datagram or parsing a long header."""
        cid_length = self._cid_length
        dcid = data[1 : 1 + cid_length]
        if dcid not in self._local_cids.by_cid or not data[0] & 0x40:
            self._stats.packets_dropped += 1
            return False
        opened = self._open_one_rtt(data, 1 + cid_length, now)
        if opened is None:
            return False
        return self._process_packet(self._spaces[APPLICATION], PacketType.ONE_RTT, *opened, dcid, now)

    def _open_one_rtt(self, data: Any, pn_offset: int, now: float) -> Optional[tuple]:
        """(plain header, payload, packet number) of a 1-RTT packet (KeyPhases.open), or None (_decryption_failed)."""
        kp = self._one_rtt
        space = self._spaces[APPLICATION]
        opened = kp.open(data, pn_offset, space.ack.largest_received)
        if opened is None:
            return self._decryption_failed(kp)
        plain, payload, pn, keys = opened
        if keys is not kp.recv:  # the previous key (a late packet) or the next one: the peer updated (§6.2)
            kp.on_opened(keys, pn, space.next_pn, now + 3 * self._loss.probe_timeout())
        return plain, payload, pn

    def _decryption_failed(self, kp: Optional[KeyPhases]) -> None:
        """A packet did not open: counted, and for 1-RTT against the integrity limit.  Returns None."""
        self._stats.decryption_failures += 1
        self._stats.packets_dropped += 1
        if kp is not None and kp.integrity_exceeded():  # KeyPhases.open counted the failure
            raise TransportError.AEAD_LIMIT_EXCEEDED("integrity limit reached")  # RFC 9001 §6.6: too many forgeries
        return None

    def _receive_packet(self, header: PartialHeader, view: memoryview, now: float) -> bool:
        ptype = header.packet_type
        if ptype is PacketType.VERSION_NEGOTIATION:
            self._on_version_negotiation(header, now)
            return False
        if ptype is PacketType.RETRY:
            self._on_retry(header, view, now)
            return False
        if ptype is PacketType.UNKNOWN_VERSION:
            self._stats.packets_dropped += 1
            return False
        other_keys = None  # Initial keys of another version than the current one
        if header.version is not None and (header.version != self._versions.current or ptype is PacketType.ZERO_RTT):
            verdict = self._versions.on_packet(ptype, header.version)
            if verdict is Verdict.DROP:
                return self._drop()
            if verdict is Verdict.SWITCH:  # RFC 9368 §2.3: the server chose this version; follow it once it opens
                other_keys = initial_keys(header.version, self._initial_keys_cid, True)
            elif ptype is PacketType.INITIAL and self._versions.negotiated:  # server: the client has not followed yet
                other_keys = (None, self._original_initial_recv)
        dcid = header.destination_cid
        if dcid not in self._local_cids.by_cid:
            # Only a server's first packets may use the DCID the client chose.
            if self.is_client or (ptype is not PacketType.INITIAL and ptype is not PacketType.ZERO_RTT):
                return self._drop()
            if self._initial_dcid is not None and dcid != self._initial_dcid:
                return self._drop()
        if ptype is PacketType.INITIAL and not self.is_client and self._path.datagram_size < 1200:
            return self._drop()  # RFC 9000 §14.1: MUST discard Initials in small datagrams
        if (
            self.is_client
            and self._peer_initial_scid is not None
            and header.source_cid != self._peer_initial_scid
            and (ptype is PacketType.INITIAL or ptype is PacketType.HANDSHAKE)
        ):
            return self._drop()  # RFC 9000 §7.2: the server's Source CID may not change
        sid = PACKET_SPACE[ptype]
        space = self._spaces[sid]
        if space.discarded:
            return self._drop()
        opened = None
        if not self.is_client and ptype is PacketType.INITIAL and space.recv_keys is None:
            opened = self._server_first_initial(header, view, now)
            if self._state >= QuicConnectionState.CLOSING:
                return False
        if ptype is PacketType.ONE_RTT:
            kp = self._one_rtt
            if kp is None or kp.recv is None:
                return self._hold_undecryptable(header, view)
            opened = self._open_one_rtt(view, header.pn_offset, now)
            if opened is None:
                return False
            return self._process_packet(space, ptype, *opened, dcid, now)
        if ptype is PacketType.ZERO_RTT:
            early = self._zero_rtt
            keys = early.recv
            if keys is None or self.is_client or early.recv_keys_expired(now):
                return self._drop()
        else:
            keys = space.recv_keys if other_keys is None else other_keys[1]
            if keys is None:
                if ptype is PacketType.HANDSHAKE and self.is_client:
                    self._resend_crypto_early(INITIAL)  # the server's Initial was lost
                return self._hold_undecryptable(header, view)
        try:
            largest = space.ack.largest_received
            plain, payload, pn = opened or keys.protection.unprotect(view, header.pn_offset, largest)
        except CryptoError:
            return bool(self._decryption_failed(None))
        if ptype is PacketType.ZERO_RTT:
            self._stats.zero_rtt_packets_received += 1
        if other_keys is not None and self.is_client:
            self._versions.switch(header.version)
            space.send_keys, space.recv_keys = other_keys
        if ptype is PacketType.INITIAL or ptype is PacketType.HANDSHAKE:
            if ptype is PacketType.HANDSHAKE:
                self._versions.handshake_seen = True
            if self.is_client and self._peer_initial_scid is None:
                # RFC 9000 §7.2: the client switches to the server's Source CID.
                self._peer_initial_scid = header.source_cid
                self._peer_cids.set_initial(header.source_cid)
            if ptype is PacketType.HANDSHAKE and not self.is_client:
                # RFC 9000 §8.1: a Handshake packet proves the client's address;
                # RFC 9001 §4.9.1: the server discards its Initial keys.
                self._path.validated = True
                if not self._spaces[INITIAL].discarded:
                    self._discard_space(INITIAL, now)
        return self._process_packet(space, ptype, plain, payload, pn, dcid, now)

    def _resend_crypto_early(self, *sids: int) -> None:
        """RFC 9002 §6.2.3: a peer that plainly lacks our CRYPTO data gets what
        is outstanding in `sids` now rather than at the next PTO, a few times
        a connection (anti-amplification still applies)."""
        if self._stats.crypto_resent_early >= EARLY_CRYPTO_RESENDS:
            return
        if any(self._spaces[sid].crypto_send.has_pending for sid in sids if not self._spaces[sid].discarded):
            return  # already queued: one resend for a whole flight of triggers
        if self._requeue_in_flight(sids):
            self._stats.crypto_resent_early += 1

    def _requeue_in_flight(self, sids: tuple) -> list:
        """What the ack-eliciting packets in flight in each of `sids` carried
        goes out again (a probe's or an early resend's content); returns the
        spaces that had any."""
        requeued = []
        for sid in sids:
            if self._spaces[sid].discarded:
                continue
            packets = [p for p in self._loss.sent_packets(sid) if p.ack_eliciting]
            for packet in packets:
                self._builder.requeue_for_probe(packet)
            if packets:
                requeued.append(sid)
        return requeued

    def _drop(self) -> bool:
        self._stats.packets_dropped += 1
        return False

    def _hold_undecryptable(self, header: PartialHeader, view: memoryview) -> bool:
        """Packets whose keys are not there yet are kept (a few) and retried."""
        if len(self._undecryptable) < self._configuration.max_undecryptable_packets:
            self._undecryptable = [*self._undecryptable, bytes(view)]
        else:
            self._stats.packets_dropped += 1
        return False

    def _retry_undecryptable(self, now: float) -> None:
        held, self._undecryptable = self._undecryptable, ()
        for datagram in held:
            if self._state >= QuicConnectionState.CLOSING:
                return
            self._receive_datagram_again(datagram, now)

    def _receive_datagram_again(self, datagram: bytes, now: float) -> None:
        kp = self._one_rtt
        if not datagram[0] & 0x80 and kp is not None and kp.recv is not None:
            self._receive_short(datagram, now)
            return
        for header, view in split_datagram(datagram, self._configuration.connection_id_length)[0]:
            self._receive_packet(header, view, now)

    def _server_first_initial(self, header: PartialHeader, view: memoryview, now: float) -> Optional[tuple]:
        """The first Initial a server sees: Initial keys from its DCID, the
        client's Source CID as ours to use, and the TLS engine.  Returns the
        packet opened, when the endpoint handed it over with the keys (the
        datagram's first packet: this one)."""
        self._initial_dcid = header.destination_cid
        handed, self._first_initial = self._first_initial, None
        if handed is None:
            self._install_initial_keys(header.destination_cid)
        else:
            space = self._spaces[INITIAL]
            (space.send_keys, space.recv_keys), _ = handed
        self._peer_initial_scid = header.source_cid
        self._peer_cids.set_initial(header.source_cid)
        self._qlog_start()
        self._create_engine()
        return None if handed is None else handed[1]

    def _answer_versions(self, client_params: bytes) -> bytes:
        """Server, called by the TLS engine once it accepts the ClientHello:
        the negotiated version (RFC 9368 §2.3), its Initial keys for what we
        send from now on, and our transport parameters, which name it."""
        before = self._versions.current
        try:
            self._client_params = (client_params, QuicTransportParameters.parse(client_params, from_server=False))
        except TransportError:
            self._client_params = None  # rejected with their error when the engine hands them over
        version = self._versions.choose(self._client_params[1].version_information if self._client_params else None)
        if version != before:
            space = self._spaces[INITIAL]
            self._original_initial_recv = space.recv_keys  # the client's Initials until it follows
            space.send_keys, space.recv_keys = initial_keys(version, self._initial_dcid, False)
        return self._local_transport_parameters()

    def _process_packet(
        self, space: Space, ptype: PacketType, plain: bytes, payload: bytes, pn: int, dcid: bytes, now: float
    ) -> bool:
        """After opening: checks, frames, and the ACK bookkeeping."""
        first = plain[0]
        if first & (LONG_RESERVED_BITS if first & 0x80 else SHORT_RESERVED_BITS):
            check_reserved_bits(first)  # RFC 9000 §17.2, §17.3.1: PROTOCOL_VIOLATION
        parsed = self._parsers[ptype](payload)
        # RFC 9000 §12.3: duplicates (after opening) are dropped; recording the
        # packet before its frames run changes nothing if they close the connection.
        if not space.ack.on_packet_received(pn, ack_eliciting=parsed.ack_eliciting, now=now, ecn=self._ecn_in):
            self._stats.duplicates += 1
            return True
        self._stats.packets_received += 1
        self._received_valid = True
        self._liveness.on_received(now)
        if self._state == QuicConnectionState.FIRSTFLIGHT:
            self._state = QuicConnectionState.CONNECTED
        if self._qlog is not None:
            self._qlog.packet_received(now, ptype, pn, len(plain) + len(payload) + 16, parsed.frames)
        if self._path.new_address is not None and ptype is PacketType.ONE_RTT:
            move = self._paths.on_packet_from_new_address(
                self._path.new_address, parsed.frames, pn == space.ack.largest_received,
                current=self._path.addr, current_validated=self._path.validated,
                dcid_changed=dcid != self._last_peer_dcid, confirmed=self._handshake_confirmed,
                now=now, loss=self._loss,
            )
            if move is not None:
                self._follow_peer(move)
        self._last_peer_dcid = dcid
        self._handle_frames(parsed.frames, space, dcid, now)
        if ptype is PacketType.INITIAL and parsed.ack_eliciting and not self.is_client:
            self._resend_crypto_early(INITIAL, HANDSHAKE)  # the client's Initial again: our flight was lost
        return True

    def _handle_frames(self, frames: list, space: Space, dcid: bytes, now: float) -> None:
        """Each frame to its handler through _FRAME_HANDLERS (STREAM, the bulk of the traffic, inline; in a
        batch, held in the StreamRun while it continues it).  A handler returning True ends the packet
        (CONNECTION_CLOSE: nothing after it counts)."""
        streams, handlers, run = self._streams, _FRAME_HANDLERS, self._run
        for frame in frames:
            kind = type(frame)
            if kind is Stream:
                if run is not None and run.take(frame):
                    continue
                event = streams.handle_stream_frame(frame)
                if event is not None:
                    self._events.append(event)
            else:
                handler = handlers[kind]
                if run is not None and handler is not _ON_NOTHING:
                    run.flush()  # everything in order: the held STREAM data first
                if handler(self, frame, space, dcid, now):
                    return

    # Frame handlers: (connection, frame, space, dcid, now) -> True to stop the packet.
    def _on_ack_frame(self, frame: Ack, space: Space, dcid: bytes, now: float) -> None:
        self._on_ack(frame, space, now)

    def _on_nothing(self, frame: Any, space: Space, dcid: bytes, now: float) -> None:
        """PADDING and PING (their effect is the packet's: it gets acknowledged)."""

    def _on_new_token(self, frame: NewToken, space: Space, dcid: bytes, now: float) -> None:
        self._events.append(events.NewTokenReceived(frame.token))  # only a client gets here (§19.7)
        if self._token_handler is not None:
            self._token_handler(frame.token)

    def _on_crypto_frame(self, frame: Crypto, space: Space, dcid: bytes, now: float) -> None:
        self._on_crypto(frame, space, now)

    def _on_stream_manager_frame(self, frame: Any, space: Space, dcid: bytes, now: float) -> None:
        self._count_received(type(frame))
        event = self._streams.handle_frame(frame)
        if event is not None:
            self._events.append(event)

    def _on_close_frame(self, frame: ConnectionClose, space: Space, dcid: bytes, now: float) -> bool:
        self._on_connection_close(frame, now)
        return True

    def _on_handshake_done(self, frame: HandshakeDone, space: Space, dcid: bytes, now: float) -> None:
        self._count_received(HandshakeDone)
        if not self._handshake_confirmed:
            self._confirm_handshake(now)

    def _on_new_connection_id(self, frame: NewConnectionId, space: Space, dcid: bytes, now: float) -> None:
        self._count_received(NewConnectionId)
        self._peer_cids.on_new_connection_id(frame)

    def _on_retire_connection_id(self, frame: RetireConnectionId, space: Space, dcid: bytes, now: float) -> None:
        self._count_received(RetireConnectionId)
        self._local_cids.on_retire(frame.sequence_number, dcid)
        self._flush_cid_events()

    def _on_path_challenge(self, frame: PathChallenge, space: Space, dcid: bytes, now: float) -> None:
        response, limit, path = PathResponse(frame.data), self._configuration.max_pending_path_responses, self._path
        if path.new_address is None:
            self._builder.queue_path_response(response, limit)
        else:  # RFC 9000 §8.2.2: on the path the challenge came from; 1200 bytes if 3x allows (§8.2.1)
            pad = 3 * path.datagram_size >= MIN_INITIAL_DATAGRAM
            self._paths.respond_elsewhere(response, path.new_address, path.datagram_local, pad, limit)

    def _on_path_response(self, frame: PathResponse, space: Space, dcid: bytes, now: float) -> None:
        addr = self._paths.on_response(frame.data)
        if addr is not None:
            self._stats.paths_validated += 1
            self._events.append(events.PathValidated(addr))
            if addr == self._preferred and (self._peer_cids.use(PREFERRED_CID_SEQUENCE) or self._peer_cids.change()):
                self._preferred = None  # RFC 9000 §9.6.1: proven; move there, with its connection ID (§9.5)
                self._stats.path_migrations += 1
                self._loss.reset_path(now)  # another server address: a new path (§9.4)
                self._path.switch(addr, True, self._path.local)
                if self._path.new_address == addr:
                    self._path.new_address = None  # the rest of this datagram came on the path in use
            elif addr == self._path.addr:
                self._path.validated = True

    # What paths.py decides, applied: the path in use and its anti-amplification accounting.
    def _follow_peer(self, move: Migration) -> None:
        path = self._path
        path.new_address = None
        self._stats.path_migrations += 1
        if move.new_peer_cid:
            self._peer_cids.change()
        path.switch(move.addr, move.validated, path.datagram_local)  # §9.6.2: to a server's preferred address too

    def _on_path_failed(self, outcome: ValidationOutcome) -> None:
        # RFC 9000 §9.3.2: back to the last proven address, or give up.
        self._stats.path_validation_failures += 1
        self._events.append(events.PathValidationFailed(outcome.addr))
        if self.is_client or outcome.elsewhere:
            return  # our own new path (the application may go back), or one we never moved to
        fallback = outcome.fallback
        if fallback is None:
            self._end.silently(ErrorCode.NO_ERROR, "Path validation failed")
            self._terminate()
        else:
            self._path.switch(fallback, True, self._path.local)

    def _count_received(self, kind: type) -> None:
        counts = self._stats.frames_received
        name = frame_name(kind)
        counts[name] = counts.get(name, 0) + 1

    def _on_ack(self, frame: Ack, space: Space, now: float) -> None:
        refused = self._zero_rtt.rejected_last_pn
        if refused is not None and space.id == APPLICATION and frame.ranges[-1][0] <= refused:
            # RFC 9001 §4.6.2: a server that refused 0-RTT cannot acknowledge it.
            raise TransportError.PROTOCOL_VIOLATION("acknowledgment for a rejected 0-RTT packet", frame_type=0x02)
        delay = (frame.delay << self._peer_ack_delay_exponent) / 1_000_000
        outcome = self._loss.on_ack_received(space.id, frame.ranges, delay, now, frame.ecn)
        if outcome.acked:
            self._builder.on_packets_acked(outcome.acked)
        if outcome.lost:
            self._stats.packets_lost += len(outcome.lost)
            for packet in outcome.lost:
                self._builder.on_packet_lost(packet)
        if space.id == APPLICATION and self._one_rtt is not None:
            self._one_rtt.on_acked(frame.ranges[0][1] - 1)
            if self.is_client and not self._handshake_confirmed and self._one_rtt.update_acked:
                self._confirm_handshake(now)  # RFC 9001 §4.1.2: a 1-RTT packet of ours was acknowledged
        if self._qlog is not None and outcome.acked:
            self._qlog.metrics(now, self._loss)

    def _on_datagram_frame(self, frame: Datagram, space: Space, dcid: bytes, now: float) -> None:
        limit = self._configuration.max_datagram_frame_size
        if not limit or frame.size > limit:
            # RFC 9221 §3: not negotiated, or larger than we said: PROTOCOL_VIOLATION.
            raise TransportError.PROTOCOL_VIOLATION("unexpected DATAGRAM frame", frame_type=0x30)
        if self._datagrams_queued < self._configuration.max_datagrams_received:
            self._datagrams_queued += 1
            self._events.append(events.DatagramFrameReceived(frame.data))
        # else: dropped -- DATAGRAM frames are unreliable and the application lags (RFC 9221 §5)

    def _on_connection_close(self, frame: ConnectionClose, now: float) -> None:
        self._end.on_peer_close(frame)
        self._enter_closing(now, QuicConnectionState.DRAINING)  # RFC 9000 §10.2.2

    def _on_stateless_reset(self, now: float) -> None:
        # RFC 9000 §10.3.1: enter the draining period, send nothing more.
        self._end.silently(0, "stateless reset")
        self._enter_closing(now, QuicConnectionState.DRAINING)

    # ------------------------------------------------------------------
    # CRYPTO and the TLS engine
    def _on_crypto(self, frame: Crypto, space: Space, now: float) -> None:
        assembler = space.crypto_recv
        assembler.add(frame.offset, frame.data)
        data = assembler.read()
        if not data:
            return
        level = SPACE_LEVEL[space.id]
        engine = self._tls
        if engine is None:
            raise TransportError.PROTOCOL_VIOLATION("CRYPTO data before the handshake started", frame_type=0x06)
        if level < engine.read_level:
            # RFC 9001 §4.1.3: new data at a level the handshake has left.
            raise TransportError.PROTOCOL_VIOLATION(
                f"CRYPTO data at {level.name} after moving to {engine.read_level.name}", frame_type=0x06
            )
        self._run_tls(lambda: engine.receive(level, bytes(data)), now)

    def _run_tls(self, step: Callable[[], list], now: float) -> None:
        try:
            tls_events = step()
        except tls.AlertError as exc:
            self._apply_tls_events(getattr(exc, "events", []), now)
            raise TransportError.crypto(exc.description, exc.reason or exc.description.name) from None
        self._apply_tls_events(tls_events, now)

    def _apply_tls_events(self, tls_events: list, now: float) -> None:
        retry_held = False
        for event in tls_events:
            kind = type(event)
            if kind is tls.HandshakeDataReady:
                space = self._spaces[LEVEL_SPACE[event.level]]
                if space.discarded:  # the engine cannot send at a level it left; say so if it does
                    raise TransportError.INTERNAL_ERROR(f"handshake data for discarded {event.level.name} keys")
                space.crypto_send.write(event.data)
            elif kind is tls.KeyReady:
                self._install_key(event, now)
                retry_held = True
            elif kind is tls.PeerTransportParameters:
                self._on_peer_transport_parameters(event.data)
            elif kind is tls.HandshakeCompleted:
                self._on_handshake_completed(event, now)
            elif kind is tls.KeyLog:
                self._configuration.log_secret(event.line())
            elif kind is tls.TicketReceived:
                if self._session_ticket_handler is not None:
                    self._session_ticket_handler(event.ticket)
                store = self._configuration.ticket_store
                if store is not None:
                    store.add(event.ticket)
            elif kind is tls.EarlyDataRejected:
                if self.is_client:
                    self._on_zero_rtt_refused()
        if retry_held and self._undecryptable:
            self._retry_undecryptable(now)

    def _on_zero_rtt_refused(self) -> None:
        # RFC 9001 §4.6.2, decided in zero_rtt.py: what the 0-RTT packets held
        # goes again in 1-RTT, under the server's new limits; the application hears.
        refusal = self._zero_rtt.on_rejected(self._loss)
        if self._one_rtt is None:
            self._streams_ready = False
        for packet in refusal.lost:
            self._builder.on_packet_lost(packet)
        self._stats.zero_rtt_rejected = True
        if self._peer_params is not None:
            self._streams.replace_peer_limits(self._peer_params)
        self._events.append(refusal.event)

    def _install_key(self, event: tls.KeyReady, now: float) -> None:
        level = event.level
        # RFC 9369 §4: 0-RTT keeps the original version, whatever was negotiated.
        version = self._versions.original if level == tls.Level.EARLY_DATA else self._versions.current
        keys = derive_packet_keys(version, event.cipher_suite, event.secret)
        write = event.direction == tls.Direction.WRITE
        if level == tls.Level.EARLY_DATA:
            if write:
                remembered = self._zero_rtt.start_client(keys, getattr(self._tls, "early_data_ticket", None), version)
                if remembered is not None:  # streams open at once, within the ticket's limits
                    self._streams.on_peer_transport_parameters(remembered)
                    self._peer_max_datagram_frame_size = remembered.max_datagram_frame_size
                    self._streams_ready = True
            else:
                self._zero_rtt.install_recv(keys)
        elif level == tls.Level.HANDSHAKE:
            space = self._spaces[HANDSHAKE]
            if write:
                space.send_keys = keys
                self._loss.has_handshake_keys = True
            else:
                space.recv_keys = keys
        elif level == tls.Level.APPLICATION:
            if write:
                self._one_rtt = KeyPhases(keys, self._pending_1rtt)
                self._pending_1rtt = None
                self._one_rtt.first_send_pn = self._spaces[APPLICATION].next_pn  # after any 0-RTT
                self._streams_ready = True
            elif self._one_rtt is not None:
                self._one_rtt.set_recv(keys)
            else:
                self._pending_1rtt = keys
            if self._one_rtt is not None and self._one_rtt.recv is not None:
                self._zero_rtt.stop_sending()

    def _on_peer_transport_parameters(self, data: bytes) -> None:
        parsed, self._client_params = self._client_params, None  # server: parsed already, to choose the version
        if parsed is not None and parsed[0] == data:
            params = parsed[1]
        else:
            params = QuicTransportParameters.parse(data, from_server=self.is_client)
        check_connection_ids(
            params, initial_scid=self._peer_initial_scid, original_dcid=self._original_dcid if self.is_client else None,
            retry_scid=self._retry_source_cid, retried=self._retry_received,
        )
        if self.is_client:
            if params.stateless_reset_token is not None:
                self._peer_cids.set_active_token(params.stateless_reset_token)
            if params.preferred_address is not None:  # its connection ID is the server's number 1 (§5.1.1)
                self._peer_cids.on_new_connection_id(preferred_address.cid_frame(params.preferred_address))
        self._versions.check_peer(params.version_information)
        self._peer_params = params
        self._peer_ack_delay_exponent = params.ack_delay_exponent
        self._peer_max_datagram_frame_size = params.max_datagram_frame_size
        self._loss.max_ack_delay = params.max_ack_delay / 1000
        if params.max_idle_timeout:
            self._liveness.on_peer_idle_timeout(params.max_idle_timeout / 1000)
        self._loss.pmtu.limit(params.max_udp_payload_size)
        self._local_cids.limit = min(params.active_connection_id_limit, self._configuration.active_connection_id_limit)
        if self._stats.zero_rtt_rejected:
            self._streams.replace_peer_limits(params)  # not the ticket's limits any more
        else:
            self._streams.on_peer_transport_parameters(params)

    def _on_handshake_completed(self, event: tls.HandshakeCompleted, now: float) -> None:
        self._handshake_complete = True
        alpn = event.alpn.decode() if isinstance(event.alpn, bytes) else event.alpn
        self._alpn = alpn
        self._events.append(events.ProtocolNegotiated(alpn))
        self._events.append(events.HandshakeCompleted(alpn, event.early_data_accepted, event.resumed))
        self._local_cids.replenish()
        self._flush_cid_events()
        if not self.is_client:
            # RFC 9001 §4.1.2: the server's handshake is confirmed on completion;
            # HANDSHAKE_DONE tells the client (RFC 9000 §19.20).
            self._builder.queue_handshake_done()
            self._confirm_handshake(now)

    def _confirm_handshake(self, now: float) -> None:
        self._handshake_confirmed = True
        self._zero_rtt.on_handshake_confirmed(now, self._loss)
        self._loss.on_handshake_confirmed(now)
        # RFC 9001 §4.9.2: Handshake keys go at confirmation.
        if not self._spaces[HANDSHAKE].discarded:
            self._discard_space(HANDSHAKE, now)
        if not self._spaces[INITIAL].discarded:
            self._discard_space(INITIAL, now)
        if self.is_client and self._configuration.follow_preferred_address:
            # RFC 9000 §9.6.1: validate the server's preferred address from the path in use.
            self._preferred = preferred_address.target(self._peer_params, self._path.addr, self._peer_cids)
            if self._preferred is not None:
                self._paths.probe_elsewhere(self._preferred, now, self._loss.probe_timeout())

    def _discard_space(self, sid: PacketNumberSpace, now: float) -> None:
        self._spaces[sid].discard()
        self._loss.discard_space(sid, now)
        if self._qlog is not None:
            self._qlog.key_discarded(now, sid)

    def _flush_cid_events(self) -> None:
        listener = self.cid_listener
        for issued, cid in self._local_cids.events:
            self._events.append(events.ConnectionIdIssued(cid) if issued else events.ConnectionIdRetired(cid))
            if listener is not None:
                listener(issued, cid)
        self._local_cids.events.clear()

    # ------------------------------------------------------------------
    # Version Negotiation and Retry (client)
    def _on_version_negotiation(self, header: PartialHeader, now: float) -> Optional[bool]:
        versions = self._versions
        if not self.is_client or self._received_valid or versions.vn_versions is not None or self._retry_received:
            return self._drop()
        if header.destination_cid != self.host_cid or header.source_cid != self._original_dcid:
            return self._drop()  # RFC 9000 §6.2: must echo our connection IDs
        if versions.current in header.supported_versions:
            return self._drop()  # RFC 9000 §6.2: it lists the version we use
        if versions.on_version_negotiation(header.supported_versions) is None:
            reason = "no common QUIC version"
            self._end.silently(ErrorCode.VERSION_NEGOTIATION_ERROR, reason)
            self._terminate(now)
            return
        # RFC 9368 §2.1: start over with the chosen version.
        self._requeue_early_data()
        self._setup_handshake()
        self._start_client(now)

    def _on_retry(self, header: PartialHeader, view: memoryview, now: float) -> Optional[bool]:
        if not self.is_client or self._received_valid or self._retry_received:
            return self._drop()  # RFC 9000 §17.2.5.2: only one, only before any other packet
        if header.destination_cid != self.host_cid or header.version != self._versions.current:
            return self._drop()  # RFC 9369 §4: a Retry is in the original version
        if not verify_retry_integrity(self._versions.current, self._original_dcid, bytes(view)):
            return self._drop()  # RFC 9001 §5.8
        self._retry_received = True
        self._stats.retries_received += 1
        self._retry_source_cid = header.source_cid
        self._token = header.token
        self._peer_cids.set_initial(header.source_cid)
        self._install_initial_keys(header.source_cid)
        # RFC 9002 §6.3: reset loss recovery; the ClientHello goes again.
        self._requeue_early_data()
        self._loss = self._new_recovery()
        self._builder.reset(self._spaces, self._loss, self._zero_rtt)
        crypto = self._spaces[INITIAL].crypto_send
        crypto.on_data_lost(0, crypto.write_offset, False)

    def _requeue_early_data(self) -> None:
        """Before loss recovery starts over (Retry, Version Negotiation): the
        server kept nothing of our 0-RTT packets, so their data goes again
        (RFC 9001 §4.7, RFC 9000 §17.2.5.3), in new 0-RTT or in 1-RTT packets."""
        for packet in self._loss.forget_sent(APPLICATION):
            self._builder.on_packet_lost(packet)

    # ------------------------------------------------------------------
    # timers
    def get_timer(self) -> Optional[float]:
        """When handle_timer should run next (None: no timer)."""
        state = self._state
        if state >= QuicConnectionState.TERMINATED:
            return None
        if state >= QuicConnectionState.CLOSING:
            return self._end.deadline
        blocked = self._path.blocked
        kp = self._one_rtt
        timers = [
            self._liveness.deadline(self._loss.probe_timeout(), self._handshake_confirmed),
            self._loss.get_loss_detection_timer(amplification_blocked=blocked),
            kp.prev_discard_at if kp is not None else None,
            self._pacing_at,
            self._paths.timer,
        ]
        if not blocked:
            timers += [space.ack.get_ack_timer() for space in self._spaces
                       if not space.discarded and (space.send_keys is not None or space.id == APPLICATION)]
        return min((t for t in timers if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        """Run whatever timer is due at `now`."""
        self._guarded(self._handle_timer, now, now)

    def _handle_timer(self, now: float) -> None:
        state = self._state
        if state >= QuicConnectionState.TERMINATED:
            return
        if state >= QuicConnectionState.CLOSING:
            if self._end.deadline is not None and now >= self._end.deadline:
                self._terminate(now)
            return
        why = self._liveness.expired(now, self._loss.probe_timeout(), self._handshake_confirmed)
        if why is not None:
            # RFC 9000 §10.1: silently closed (a half-open peer may be a spoofed address, too).
            self._end.silently(ErrorCode.NO_ERROR, why)
            self._terminate(now)
            return
        kp = self._one_rtt
        if kp is not None:
            kp.discard_previous(now)
        early = self._zero_rtt
        if early.recv is not None:
            early.recv_keys_expired(now)
        path_timer = self._paths.timer
        if path_timer is not None and now >= path_timer:
            outcome = self._paths.on_timer(now, self._loss.probe_timeout())
            if outcome is not None and outcome.failed:
                self._on_path_failed(outcome)
            if self._state >= QuicConnectionState.TERMINATED:
                return
        result = self._loss.on_loss_detection_timeout(now, amplification_blocked=self._path.blocked)
        if type(result) is PacketsLost:
            self._stats.packets_lost += len(result.lost)
            for packet in result.lost:
                self._builder.on_packet_lost(packet)
        elif type(result) is ProbeNeeded:
            self._on_probe(result, now)

    def _on_probe(self, probe: ProbeNeeded, now: float) -> None:
        """RFC 9002 §6.2.4: owed ack-eliciting packets, resending what is outstanding."""
        space = self._spaces[probe.space]
        if space.discarded:
            return
        space.probes = probe.count
        if probe.space != APPLICATION:
            # §6.2.4: the other spaces with data in flight are probed too, coalesced: a server's
            # Initial probe carries its Handshake data again (the client may hold the ServerHello
            # and lack the rest); a server with our Finished drops our Handshake packets, and a
            # 1-RTT probe gets the ACK that confirms the handshake (RFC 9001 §4.1.2).
            for sid in self._requeue_in_flight((INITIAL, HANDSHAKE)):
                self._spaces[sid].probes = max(self._spaces[sid].probes, 1)  # not held back by the window
            if self._one_rtt is not None and self._loss.ack_eliciting_in_flight(APPLICATION):
                self._spaces[APPLICATION].probes = max(self._spaces[APPLICATION].probes, 1)
        elif not self._streams.has_queued:
            outstanding = next((p for p in self._loss.sent_packets(APPLICATION) if p.ack_eliciting), None)
            if outstanding is not None:
                self._builder.requeue_for_probe(outstanding)
        if self._qlog is not None:
            self._qlog.metrics(now, self._loss)

    # ------------------------------------------------------------------
    # closing
    def _close_locally(self, error: TransportError, now: float) -> None:
        """We close because of `error` (RFC 9000 §10.2)."""
        if self._state >= QuicConnectionState.CLOSING:
            return
        logger.debug("closing: %s", error)
        self._end.on_error(error)
        self._enter_closing(now, QuicConnectionState.CLOSING)

    def _enter_closing(self, now: float, state: QuicConnectionState) -> None:
        self._state = state
        self._end.start(now, self._loss.probe_timeout())
        self._builder.drop_queued()
        self._streams.drop_buffers()

    def _terminate(self, now: Optional[float] = None) -> None:
        self._state = QuicConnectionState.TERMINATED
        self._end.deadline = None
        for space in self._spaces:
            if not space.discarded:
                space.discard()
        event = self._end.event
        if event is not None:
            self._events.append(event)
        if self._qlog is not None:
            self._qlog.connection_closed(event.error_code if event else 0, event.reason_phrase if event else "", now)
            self._qlog.close()
            self._qlog = None

    # ------------------------------------------------------------------
    # qlog
    def _qlog_start(self) -> None:
        from .qlog import start_trace

        if self._qlog is None:
            self._qlog = start_trace(self._configuration, self._original_dcid, self.is_client)


_ON_NOTHING = QuicConnection._on_nothing
# Which handler each frame type goes to (STREAM is handled inline).  Frames
# not allowed in a packet type never get here: parse_frames checks the
# RFC 9000 §12.4 table first.
_FRAME_HANDLERS: dict[type, Callable[..., Optional[bool]]] = {
    Ack: QuicConnection._on_ack_frame,
    Padding: QuicConnection._on_nothing,
    Ping: QuicConnection._on_nothing,
    NewToken: QuicConnection._on_new_token,
    Crypto: QuicConnection._on_crypto_frame,
    ConnectionClose: QuicConnection._on_close_frame,
    HandshakeDone: QuicConnection._on_handshake_done,
    NewConnectionId: QuicConnection._on_new_connection_id,
    RetireConnectionId: QuicConnection._on_retire_connection_id,
    PathChallenge: QuicConnection._on_path_challenge,
    PathResponse: QuicConnection._on_path_response,
    Datagram: QuicConnection._on_datagram_frame,
    **{kind: QuicConnection._on_stream_manager_frame for kind in HANDLED_FRAME_TYPES},
}
