# The TLS 1.3 engine: sans-I/O, message level, for both roles and both
# carriers (QUIC CRYPTO frames, TLS records).  This module owns the seam:
# per-level reassembly with caps and level checks, splitting the byte stream
# into handshake messages, dispatch to the current state object (tls/client.py,
# tls/server.py), sticky failure, the ordered event list, and the
# post-handshake API.  The protocol itself lives in the state classes.
#
# Input:  engine.start(now=None), engine.receive(level, data, now=None),
#         engine.receive_alert(description).
# Output: a list of frozen events (tls/events.py), applied by the carrier in
#         order.  KeyLog events (one per secret, NSS labels) come right before
#         the KeyReady of the same secret, or where the secret is derived; they
#         never separate two HandshakeDataReady of one flight.
#
# Event order per mode (KeyLog omitted; "HDR" = HandshakeDataReady; [x] = if
# applicable):
#
#   client, full handshake (any profile):
#     start()                  HDR(INITIAL, ClientHello)
#     receive(INITIAL, SH)     KeyReady(HANDSHAKE, READ), KeyReady(HANDSHAKE, WRITE)
#     receive(HANDSHAKE, ...)  [PeerTransportParameters] (at EncryptedExtensions),
#                              HDR(HANDSHAKE, [Certificate, [CertificateVerify],] Finished),
#                              KeyReady(APPLICATION, WRITE), KeyReady(APPLICATION, READ),
#                              HandshakeCompleted
#     receive(APPLICATION, NewSessionTicket)   TicketReceived
#   client, 0-RTT offered:
#     start()                  HDR(INITIAL, ClientHello), KeyReady(EARLY_DATA, WRITE)
#     QUIC profile: as the full handshake, with EarlyDataRejected after
#       [PeerTransportParameters] when EncryptedExtensions has no early_data.
#     TCP profile (EndOfEarlyData): KeyReady(HANDSHAKE, WRITE) is held back so
#       0-RTT records can continue until the server's Finished:
#       receive(INITIAL, SH)     KeyReady(HANDSHAKE, READ)
#       receive(HANDSHAKE, ...)  [EarlyDataRejected] (at EncryptedExtensions),
#                                [HDR(EARLY_DATA, EndOfEarlyData)] (if accepted),
#                                KeyReady(HANDSHAKE, WRITE), HDR(HANDSHAKE, Finished),
#                                KeyReady(APPLICATION, WRITE), KeyReady(APPLICATION, READ),
#                                HandshakeCompleted
#   client, HelloRetryRequest:
#     receive(INITIAL, HRR)    [EarlyDataRejected], HDR(INITIAL, ClientHello2)
#     then as the full handshake.
#
#   server, full handshake:
#     receive(INITIAL, CH)     [EarlyDataRejected] (the client offered 0-RTT, refused),
#                              [PeerTransportParameters], HDR(INITIAL, ServerHello),
#                              KeyReady(HANDSHAKE, WRITE), KeyReady(HANDSHAKE, READ),
#                              HDR(HANDSHAKE, EE, [CertificateRequest,] [Certificate,
#                                  CertificateVerify,] Finished),
#                              KeyReady(APPLICATION, WRITE)
#     receive(HANDSHAKE, [Certificate, [CertificateVerify],] Finished)
#                              KeyReady(APPLICATION, READ), HandshakeCompleted,
#                              [HDR(APPLICATION, NewSessionTicket x config.session_tickets)]
#   server, 0-RTT accepted:    KeyReady(EARLY_DATA, READ) right after HDR(INITIAL, ServerHello);
#     TCP profile: KeyReady(HANDSHAKE, READ) waits for EndOfEarlyData:
#       receive(EARLY_DATA, EndOfEarlyData)    KeyReady(HANDSHAKE, READ)
#   server, HelloRetryRequest:
#     receive(INITIAL, CH1)    [EarlyDataRejected], HDR(INITIAL, HelloRetryRequest)
#     receive(INITIAL, CH2)    as the full handshake (PeerTransportParameters from CH2).
#
#   post-handshake (both):
#     key_update(request_peer) (TCP profile)   HDR(APPLICATION, KeyUpdate), KeyReady(APPLICATION, WRITE)
#     receive(APPLICATION, KeyUpdate)          KeyReady(APPLICATION, READ)
#                              [, HDR(APPLICATION, KeyUpdate), KeyReady(APPLICATION, WRITE)]
#     send_new_session_ticket() (server)       HDR(APPLICATION, NewSessionTicket)
#
# Levels: bytes for a level above the current read level are buffered (at most
# config.max_handshake_buffer per level); bytes for a lower level, for a level
# this role never reads, or left over when the read level (or the read key)
# changes are unexpected_message (RFC 8446 §5.1).  A message larger than its
# cap is decode_error, judged from its 4-byte header before the body is
# buffered: a server's ClientHello may reach config.max_client_hello (default:
# the largest legal ClientHello), every other message
# config.max_handshake_buffer.
#
# Time: steps that need the time (certificate validity, ticket ages, issuing
# tickets) use, in order: the `now` argument of the current call, the
# Engine's `now` (float or callable), config.clock.  With none of them such a
# step raises UsageError.  The engine never reads a clock itself.
#
# Failure: AlertError (our alert), PeerAlert (via receive_alert) and a
# UsageError raised while processing input are sticky: every later start /
# receive / post-handshake call raises the same exception.  Any other
# exception is a bug; it becomes AlertError(internal_error) (and is re-raised
# as is when RAISE_INTERNAL_ERRORS is true, which the tests set).
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from . import events as ev
from .config import Config, VerifyMode
from .enums import AlertDescription, Direction, HandshakeType, Level
from .errors import AlertError, PeerAlert, TLSError, UsageError
from .client import ClientStart
from .handshake import Negotiated, State, can_authenticate, send_key_update
from .server import ExpectClientHello
from .key_schedule import CIPHER_SUITES, export_keying_material
from .messages import parse_message
from .profile import TCP, Profile

# Tests set this (or PYQUIC_TLS_RAISE_INTERNAL=1) so a bug shows its traceback
# instead of an internal_error alert.
RAISE_INTERNAL_ERRORS = os.environ.get("PYQUIC_TLS_RAISE_INTERNAL", "") not in ("", "0")

AD = AlertDescription
# Iterating an Enum class runs a Python generator; the engine checks the
# levels below the read level after every key change, so keep them as a tuple
# (in value order 0..3: _LEVELS[:n] are the levels below n).
_LEVELS = tuple(Level)
_ALL_LEVELS = frozenset(Level)
_NO_EARLY_LEVEL = frozenset({Level.INITIAL, Level.HANDSHAKE, Level.APPLICATION})
_NO_PRIVATE_KEYS: Mapping[int, bytes] = MappingProxyType({})
# One key tuple per (level, direction) for the secrets table, shared by every
# engine: a connection stores its secrets under these, not tuples of its own.
_SECRET_KEY = {(level, direction): (level, direction) for level in Level for direction in Direction}
# Negotiated is frozen: every engine can start from the same empty one.
_NOTHING_NEGOTIATED = Negotiated()
_CLIENT_HELLO = int(HandshakeType.CLIENT_HELLO)


class Engine:
    """A TLS 1.3 handshake endpoint.  See the module header for the contract."""

    # Slots: a server holds one Engine per connection for its whole life, and
    # an instance dict of this many attributes costs kilobytes.  "__dict__"
    # stays for attributes set from outside (tests, applications).
    __slots__ = (
        "_boundary", "_buffers", "_call_now", "_entropy", "_events", "_failure", "_now_source",
        "_private_keys", "_read_level", "_resumption", "_resumption_master_secret", "_secrets", "_started",
        "_state", "_valid_levels", "client_random", "config", "early_data_offered", "early_data_ticket",
        "early_exporter_master_secret", "exporter_master_secret", "extensions_hook", "handshake_complete",
        "is_client", "max_early_data", "negotiated", "peer_certificates", "peer_transport_parameters",
        "profile", "signer", "ticket_app_data", "ticket_state", "transport_parameters",
        "transport_parameters_for", "verify_mode", "__dict__", "__weakref__"
    )

    def __init__(
        self,
        config: Config,
        is_client: bool,
        profile: Profile = TCP,
        transport_parameters: bytes | Callable[[bytes], bytes] | None = None,
        *,
        entropy: Callable[[int], bytes] | None = None,
        key_share_private_keys: dict[int, bytes] | None = None,
        signer: Callable[[int, bytes], bytes] | None = None,
        now: float | Callable[[], float] | None = None,
        extensions_hook: Callable[[int, list], list] | None = None,
        ticket_app_data: bytes | None = None,
    ) -> None:
        """entropy(n) -> n random bytes (randoms, session id, ticket age_add,
        cookies; default os.urandom).  key_share_private_keys injects the
        private key per group (tls.keyshare.KeyShare.generate's format).
        signer(scheme, content) -> signature overrides CertificateVerify
        signing.  now: float seconds (wall-clock epoch: certificates are
        checked against it) or a callable returning it; a `now` passed to a
        call wins (see the module header).  extensions_hook(msg_type,
        extensions) -> extensions rewrites the extension list of each message
        we build (before padding and binders); it exists for known-answer
        replays (RFC 8448) and tests.  ticket_app_data (server): what the
        carrier wants sealed in its tickets (TicketState.app_data; default:
        our transport parameters).  A server's transport_parameters may be a
        callable instead: it gets the client's quic_transport_parameters once
        the ClientHello is accepted, before our flight is built, and returns
        ours (RFC 9368: a server names the version it negotiated in them)."""
        if not isinstance(config, Config):
            raise UsageError("config must be a tls.Config")
        if not isinstance(profile, Profile):
            raise UsageError("profile must be a tls.Profile (tls.QUIC or tls.TCP)")
        self.transport_parameters_for: Callable[[bytes], bytes] | None = None
        if profile.transport_parameters and callable(transport_parameters) and not is_client:
            self.transport_parameters_for = transport_parameters
            transport_parameters = None
        elif profile.transport_parameters:
            if not isinstance(transport_parameters, (bytes, bytearray, memoryview)):
                raise UsageError(f"the {profile.name} profile needs transport_parameters (bytes)")
            transport_parameters = bytes(transport_parameters)
        elif transport_parameters is not None:
            raise UsageError(f"the {profile.name} profile carries no transport parameters")
        if profile.alpn_required and not config.alpn_protocols:
            raise UsageError(f"the {profile.name} profile requires alpn_protocols")
        self.config = config
        self.is_client = bool(is_client)
        self.profile = profile
        self.transport_parameters = transport_parameters
        self.ticket_app_data = None if ticket_app_data is None else bytes(ticket_app_data)
        self._entropy = entropy or os.urandom
        # Injected key shares (tests and vectors); most engines have none and share one empty mapping.
        self._private_keys = dict(key_share_private_keys) if key_share_private_keys else _NO_PRIVATE_KEYS
        self.signer = signer
        self._now_source = now
        self._call_now: float | None = None
        self.extensions_hook = extensions_hook
        self.verify_mode = config.role_verify_mode(self.is_client)

        if not self.is_client:
            if not config.psks and not can_authenticate(self):
                raise UsageError("a server needs certificate_chain and private_key (or signer), or PSKs")
            if config.certificate_chain and config.certified_key is None and signer is None:
                raise UsageError("certificate_chain without private_key needs a signer")
        else:
            if (
                self.verify_mode != VerifyMode.NONE
                and config.check_hostname
                and not config.server_name
                and config.certificate_verifier is None
            ):
                raise UsageError("verifying the server with check_hostname needs server_name")
            if config.certificate_chain and config.certified_key is None and signer is None:
                raise UsageError("certificate_chain without private_key needs a signer")

        self._valid_levels = _ALL_LEVELS if not self.is_client and profile.end_of_early_data else _NO_EARLY_LEVEL
        self._read_level = Level.INITIAL
        # Bytes of an incomplete message, per level; a level's buffer exists
        # only while it holds some (a finished handshake keeps none).
        self._buffers: dict[Level, bytearray] = {}
        self._boundary = False
        self._events: list[Any] = []
        self._failure: TLSError | None = None
        self._started = False
        self._secrets: dict[tuple[Level, Direction], bytes] = {}

        # filled in by the states
        self.negotiated = _NOTHING_NEGOTIATED
        self.client_random: bytes = b""
        self.peer_certificates: tuple = ()
        self.exporter_master_secret: bytes | None = None
        self.early_exporter_master_secret: bytes | None = None
        self._resumption: tuple[Any, bytes] | None = None
        self._resumption_master_secret: bytes | None = None
        self.handshake_complete = False
        self.peer_transport_parameters: bytes | None = None
        # 0-RTT facts for the TCP record layer (RFC 8446 §4.2.10): whether the
        # (first) ClientHello offered early data, and the byte limit in force
        # (client: the ticket's max_early_data_size while offering; server:
        # config.max_early_data once accepted; else 0).
        self.early_data_offered = False
        self.early_data_ticket = None  # client: the ticket whose PSK keys 0-RTT (QUIC reads its transport parameters)
        self.max_early_data = 0
        # server: the TicketState the session resumed from (None otherwise)
        self.ticket_state: Any = None

        self._state: State = ClientStart() if self.is_client else ExpectClientHello()

    # ------------------------------------------------------------------
    # public API
    def start(self, now: float | None = None) -> list[Any]:
        """Client: build the ClientHello.  Server: nothing to do (returns [])."""
        if self._started:
            raise UsageError("start() was already called")

        def step() -> None:
            self._started = True
            if self.is_client:
                self._state = self._state.start(self)  # type: ignore[attr-defined]

        return self._run(step, now)

    def receive(self, level: Level | int, data: bytes, now: float | None = None) -> list[Any]:
        """Handshake bytes received at `level`; returns the events they cause."""
        if type(level) is not Level:  # Level(level) costs an Enum lookup
            try:
                level = Level(level)
            except ValueError:
                raise UsageError(f"unknown level {level!r}") from None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UsageError("data must be bytes")
        if self._failure is None and self.is_client and not self._started:
            raise UsageError("call start() before receive()")
        return self._run(lambda: self._receive(level, data), now)

    def receive_alert(self, description: int, level: int = 2) -> None:
        """The carrier got an alert from the peer: raises PeerAlert (sticky)."""
        if self._failure is not None:
            raise self._failure
        self._failure = PeerAlert(description, level)
        raise self._failure

    def send_new_session_ticket(self, now: float | None = None) -> list[Any]:
        """Server, after the handshake: issue one NewSessionTicket."""
        if self._failure is None:
            if self.is_client:
                raise UsageError("only a server sends NewSessionTicket")
            if not self.handshake_complete:
                raise UsageError("the handshake is not complete")
        return self._run(lambda: self._state.send_ticket(self), now)  # type: ignore[attr-defined]

    def key_update(self, request_peer: bool = False) -> list[Any]:
        """Send KeyUpdate and switch our write key (TCP profile only)."""
        if self._failure is None:
            if not self.profile.key_update:
                raise UsageError(f"KeyUpdate is not used with the {self.profile.name} profile")
            if not self.handshake_complete:
                raise UsageError("the handshake is not complete")
        return self._run(lambda: send_key_update(self, bool(request_peer)), None)

    def export_keying_material(self, label: bytes | str, context: bytes = b"", length: int = 32) -> bytes:
        """TLS-Exporter (RFC 8446 §7.5)."""
        if self._failure is not None:
            raise self._failure
        if self.exporter_master_secret is None:
            raise UsageError("exporters are available once the handshake is complete")
        if not isinstance(label, (str, bytes)) or not isinstance(context, (bytes, bytearray, memoryview)):
            raise UsageError("label is str or bytes, context is bytes")
        if isinstance(label, str) and not label.isascii():
            raise UsageError("exporter labels are ASCII")
        if not 0 <= length <= 255 * CIPHER_SUITES[self.negotiated.cipher_suite].hash_length:
            raise UsageError("exporter length out of range")
        return export_keying_material(
            CIPHER_SUITES[self.negotiated.cipher_suite].hash_name,
            self.exporter_master_secret,
            label,
            bytes(context),
            length,
        )

    def secret(self, level: Level | int, direction: Direction | int) -> bytes:
        """The current traffic secret for (level, direction)."""
        try:
            return self._secrets[(Level(level), Direction(direction))]
        except (KeyError, ValueError):
            raise UsageError(f"no secret for {level!r}/{direction!r}") from None

    @property
    def resumption_master_secret(self) -> bytes | None:
        """RFC 8446 §7.1.  Only tickets use it, so it is derived on first use
        from what the states recorded when the handshake completed."""
        if self._resumption is not None:
            ks, transcript_hash = self._resumption
            self._resumption = None
            self._resumption_master_secret = ks.resumption_master_secret(transcript_hash)
        return self._resumption_master_secret

    def set_resumption_source(self, ks: Any, transcript_hash: bytes) -> None:
        """The key schedule and Transcript-Hash(ClientHello..client Finished)
        from which resumption_master_secret is derived when first read."""
        self._resumption = (ks, transcript_hash)

    @property
    def read_level(self) -> Level:
        return self._read_level

    @property
    def failure(self) -> TLSError | None:
        return self._failure

    @property
    def state_name(self) -> str:
        return type(self._state).__name__

    # ------------------------------------------------------------------
    # for the states
    def now(self) -> float:
        if self._call_now is not None:
            return self._call_now
        source = self._now_source
        if source is not None:
            return float(source() if callable(source) else source)
        if self.config.clock is not None:
            return float(self.config.clock())
        raise UsageError("this step needs the time: pass now= to the call, the Engine or Config.clock")

    def random(self, n: int) -> bytes:
        data = self._entropy(n)
        if len(data) != n:
            raise UsageError(f"entropy returned {len(data)} bytes, {n} asked")
        return bytes(data)

    def private_key_for(self, group: int) -> bytes | None:
        return self._private_keys.get(group)

    def hook(self, msg_type: int, extensions: list) -> list:
        if self.extensions_hook is None:
            return extensions
        return list(self.extensions_hook(msg_type, list(extensions)))

    def send(self, level: Level, data: bytes) -> None:
        events = self._events
        if events and isinstance(events[-1], ev.HandshakeDataReady) and events[-1].level == level:
            events[-1] = ev.HandshakeDataReady(level, events[-1].data + data)
        else:
            events.append(ev.HandshakeDataReady(level, data))

    def emit(self, event: Any) -> None:
        self._events.append(event)

    def install_key(self, level: Level, direction: Direction, secret: bytes, cipher_suite: int) -> None:
        self._secrets[_SECRET_KEY[level, direction]] = secret
        self._events.append(ev.KeyReady(level, direction, cipher_suite, secret))

    def remember_secret(self, level: Level, direction: Direction, secret: bytes) -> None:
        """Record a secret without a KeyReady (e.g. one held back until later)."""
        self._secrets[_SECRET_KEY[level, direction]] = secret

    def keylog(self, label: str, secret: bytes) -> None:
        event = ev.KeyLog(label, self.client_random, secret)
        self._events.append(event)
        if self.config.keylog is not None:
            self.config.write_keylog(event.line())

    def set_read_level(self, level: Level) -> None:
        if level != self._read_level:
            self._read_level = level
            self._boundary = True

    def key_boundary(self) -> None:
        """The message just handled must end its flight / record (§5.1)."""
        self._boundary = True

    # ------------------------------------------------------------------
    # internals
    def _run(self, step: Callable[[], None], now: float | None) -> list[Any]:
        if self._failure is not None:
            raise self._failure
        self._events = []
        self._call_now = None if now is None else float(now)
        try:
            step()
        except (AlertError, UsageError) as exc:
            exc.events = self._events  # type: ignore[attr-defined]
            self._failure = exc
            raise
        except Exception as exc:
            if RAISE_INTERNAL_ERRORS:
                raise
            failure = AlertError(AD.internal_error, f"{type(exc).__name__}: {exc}")
            failure.events = self._events  # type: ignore[attr-defined]
            self._failure = failure
            raise failure from exc
        finally:
            self._call_now = None
        events, self._events = self._events, []
        return events

    def _receive(self, level: Level, data: bytes) -> None:
        if level not in self._valid_levels:
            raise AlertError(AD.unexpected_message, f"handshake data at {level.name}, which this endpoint never reads")
        if level < self._read_level:
            raise AlertError(AD.unexpected_message, f"handshake data at {level.name} after moving to {self._read_level.name}")
        if not data:
            return
        buf = self._buffers.get(level)
        if buf is None:
            buf = self._buffers[level] = bytearray()
        cap = self.config.max_handshake_buffer
        if level > self._read_level and len(buf) + len(data) > cap:
            raise AlertError(AD.unexpected_message, f"more than {cap} bytes buffered at {level.name}")
        buf += data
        self._process()

    def _process(self) -> None:
        cap = self.config.max_handshake_buffer
        # Only a server reads ClientHello; a client keeps the general cap for
        # type 1, which its states then refuse as unexpected_message.
        hello_cap = cap if self.is_client else self.config.max_client_hello
        while True:
            level = self._read_level
            buf = self._buffers.get(level)
            if buf is None or len(buf) < 4:
                return
            length = (buf[1] << 16) | (buf[2] << 8) | buf[3]
            limit = hello_cap if buf[0] == _CLIENT_HELLO else cap
            if length > limit:
                raise AlertError(AD.decode_error, f"handshake message of {length} bytes exceeds the {limit}-byte limit")
            if len(buf) < 4 + length:
                return
            raw = bytes(buf[: 4 + length])
            del buf[: 4 + length]
            if not buf:
                del self._buffers[level]
                if not self._buffers:
                    self._buffers = {}  # the emptied table goes too
            self._boundary = False
            self._dispatch(raw)
            if self._boundary:
                self._boundary = False
                # RFC 8446 §5.1: handshake messages MUST NOT span key changes;
                # after ServerHello, Finished, KeyUpdate (and HRR / a level
                # change) nothing else may be pending at the old level.
                if buf or any(self._buffers.get(lv) for lv in _LEVELS[: self._read_level]):
                    raise AlertError(AD.unexpected_message, f"data after a key change at {level.name}")

    def _dispatch(self, raw: bytes) -> None:
        msg_type = raw[0]
        state = self._state
        if msg_type not in state.expects:
            try:
                name = HandshakeType(msg_type).name
            except ValueError:
                name = f"type {msg_type}"
            raise AlertError(AD.unexpected_message, f"{name} in state {state!r}")
        msg = parse_message(msg_type, raw[4:])
        self._state = state.handle(self, msg, raw)


__all__ = ["Engine", "RAISE_INTERNAL_ERRORS"]
