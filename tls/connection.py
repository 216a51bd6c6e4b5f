# TLS 1.3 over TCP, sans-I/O: the handshake engine (tls/engine.py, TCP
# profile) joined to the record layer (tls/record.py).  This module owns:
#   - applying the engine's events to the record layer in order (handshake
#     bytes at their level, keys exactly where KeyReady says, the
#     middlebox-compatibility ChangeCipherSpec when configured);
#   - application data: queued until a write key exists, 0-RTT up to the
#     ticket's limit (resent under the 1-RTT key if the server rejects it),
#     0-RTT received by a server (counted against max_early_data), delivery as
#     DataReceived events;
#   - skipping a client's unwanted 0-RTT (rejected or after HelloRetryRequest);
#   - post-handshake: NewSessionTicket, KeyUpdate both ways (answering
#     update_requested; automatic before the AES-GCM record limit);
#   - closing: close_notify both ways, fatal alerts sent for every bad input
#     (never an exception to the caller for what the peer did), EOF handling;
#   - an optional kernel record port (kTLS) that replaces user-space
#     protection after the handshake;
#   - the negotiated parameters in ssl.SSLSocket's shapes (getpeercert's
#     dict, cipher()'s tuple) for the drivers.
# It does no I/O and reads no clock: `now` comes in, as with the engine.
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from . import events as ev
from .config import Config
from .engine import Engine
from .enums import AlertDescription, ContentType, Direction, Level
from .errors import AlertError, PeerAlert, TLSError, UsageError
from .events import EarlyDataRejected, HandshakeCompleted, TicketReceived
from .key_schedule import CIPHER_SUITES
from .profile import TCP
from .record import MAX_BUFFERED_INPUT, CipherState, PaddingPolicy, RecordLayer, no_padding

# §4.2.10: how much unwanted 0-RTT a server skips when its own limit is lower
# (a client may hold a ticket from a configuration that allowed more).
EARLY_DATA_SKIP_LIMIT = 1 << 14
VERSION_NAME = "TLSv1.3"


# ---------------------------------------------------------------------------
# Events (engine events HandshakeCompleted, TicketReceived, EarlyDataRejected
# pass through unchanged)


@dataclass(frozen=True)
class DataReceived:
    data: bytes
    early: bool = False  # 0-RTT data (server side)

    def __repr__(self) -> str:
        return f"DataReceived({len(self.data)} bytes{', early' if self.early else ''})"


@dataclass(frozen=True)
class KeyUpdated:
    """The application traffic key of `direction` moved to the next generation."""

    direction: Direction


@dataclass(frozen=True)
class ConnectionClosed:
    """The connection (or the peer's sending side) ended.

    alert: the alert that ended it (close_notify for an orderly close), or
    None when the transport ended without one.  by_peer: the peer sent it
    (or closed the transport).  A close_notify from the peer ends only the
    peer's direction: we may still send, then close().
    """

    alert: int | None
    by_peer: bool
    reason: str = ""

    @property
    def clean(self) -> bool:
        return self.alert == AlertDescription.close_notify


class ConnectionLost(TLSError):
    """The transport ended before the handshake completed (no alert)."""


__all__ = [
    "TLSConnection",
    "ConnectionLost",
    "DataReceived",
    "KeyUpdated",
    "ConnectionClosed",
    "HandshakeCompleted",
    "TicketReceived",
    "EarlyDataRejected",
    "KernelPort",
    "certificate_dict",
    "cipher_tuple",
]


# ---------------------------------------------------------------------------
# What was negotiated, in the shapes of ssl.SSLSocket (getpeercert, cipher)


def certificate_dict(cert) -> dict:
    """The dict ssl.SSLSocket.getpeercert() returns, from an x509 object."""
    from cryptography import x509

    def name(n) -> tuple:
        return tuple(
            tuple((getattr(a.oid, "_name", a.oid.dotted_string), str(a.value)) for a in rdn) for rdn in n.rdns
        )

    def when(d) -> str:  # OpenSSL's ASN1_TIME_print: "Jan  1 00:00:00 2020 GMT"
        return f"{d:%b} {d.day:2d} {d:%H:%M:%S %Y} GMT"

    serial = f"{cert.serial_number:X}"

    out: dict[str, Any] = {
        "subject": name(cert.subject),
        "issuer": name(cert.issuer),
        "version": cert.version.value + 1,
        "serialNumber": serial if len(serial) % 2 == 0 else "0" + serial,
        "notBefore": when(cert.not_valid_before_utc),
        "notAfter": when(cert.not_valid_after_utc),
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return out
    entries = [("DNS", v) for v in san.get_values_for_type(x509.DNSName)]
    entries += [("IP Address", str(v)) for v in san.get_values_for_type(x509.IPAddress)]
    entries += [("email", v) for v in san.get_values_for_type(x509.RFC822Name)]
    entries += [("URI", v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    if entries:
        out["subjectAltName"] = tuple(entries)
    return out


def cipher_tuple(suite: int | None) -> tuple[str, str, int] | None:
    if suite is None:
        return None
    info = CIPHER_SUITES[suite]
    return info.name, VERSION_NAME, info.key_length * 8


class KernelPort(Protocol):
    """What the connection needs from a kernel TLS socket (tls/ktls.py)."""

    def send_record(self, content_type: int, data: bytes) -> None: ...
    def rekey_tx(self, state: CipherState) -> None: ...
    def rekey_rx(self, state: CipherState) -> None: ...


class _HandshakeFraming:
    """Where handshake messages start and end in the bytes given to the
    engine: §5.1 forbids other record types between the fragments of one
    handshake message."""

    __slots__ = ("_need", "_header")

    def __init__(self) -> None:
        self._need = 0
        self._header = bytearray()

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._need:
                take = min(self._need, end - pos)
                self._need -= take
                pos += take
                continue
            take = min(4 - len(self._header), end - pos)
            self._header += data[pos : pos + take]
            pos += take
            if len(self._header) == 4:
                self._need = int.from_bytes(self._header[1:4], "big")
                self._header.clear()

    @property
    def mid_message(self) -> bool:
        return bool(self._need or self._header)


class TLSConnection:
    """One TLS 1.3 connection over a byte stream, without I/O.

    Feed received bytes to receive_data(), send what data_to_send() returns,
    and read events with next_event().  A client calls start() first.
    """

    def __init__(
        self,
        config: Config,
        is_client: bool,
        *,
        padding: PaddingPolicy = no_padding,
        middlebox_compat: bool | None = None,
        now: float | Callable[[], float] | None = None,
        max_buffered_input: int = MAX_BUFFERED_INPUT,
        auto_key_update: bool = True,
        **engine_options: Any,
    ) -> None:
        self.config = config
        self.is_client = bool(is_client)
        self.engine = Engine(config, self.is_client, TCP, now=now, **engine_options)
        self.record = RecordLayer(padding=padding, max_buffered_input=max_buffered_input)
        self.middlebox_compat = TCP.middlebox_compat if middlebox_compat is None else bool(middlebox_compat)
        self.auto_key_update = auto_key_update
        self._events: deque[Any] = deque()
        self._framing = _HandshakeFraming()
        self._ccs_sent = False
        self._started = False
        self.handshake_complete = False
        self.completed: HandshakeCompleted | None = None
        self.failure: TLSError | None = None  # what ended the connection abnormally
        self.peer_closed = False  # close_notify (or EOF) from the peer
        self._closed_event = False
        # application data
        self._app_queue = bytearray()  # waiting for a write key
        self._rx: list = []  # application data received, not yet turned into an event
        self._rx_early = False
        # 0-RTT
        self._early_limit = 0  # client: what the ticket allows; server: what we accept
        self._early_count = 0
        self._early_copy = bytearray()  # client: sent as 0-RTT, resent if rejected
        self._early_rejected = False
        self._hello_retry_sent = False
        self._kernel: KernelPort | None = None  # set when the kernel sends (tx)
        self._kernel_port: KernelPort | None = None
        self._kernel_rx = False

    # -- public API ---------------------------------------------------------

    def start(self, now: float | None = None) -> None:
        """Client: build the ClientHello (and the 0-RTT key when a ticket
        allows it).  A server needs no start()."""
        if self._started:
            raise UsageError("start() was already called")
        self._started = True
        if not self.is_client:
            return
        self.record.plaintext_version = 0x0301  # §5.1: allowed for the first ClientHello
        self._guarded(lambda: self.engine.start(now))
        self.record.flush()  # the ClientHello leaves with 0x0301, nothing after it
        self.record.plaintext_version = 0x0303

    def receive_data(self, data: bytes, now: float | None = None) -> None:
        """Bytes from the transport.  Problems caused by the peer never
        raise: they end the connection with an alert and a ConnectionClosed
        event."""
        if self.failure is not None or self.peer_closed:
            return
        if self.is_client and not self._started:
            raise UsageError("call start() before receive_data()")
        view = memoryview(data)
        chunk = max(1, self.record.max_buffered_input // 2)
        try:
            while True:
                self.record.receive_data(view[:chunk])
                view = view[chunk:]
                while self.failure is None and (record := self.record.next_record()) is not None:
                    self._handle_record(record, now)
                if not view or self.failure is not None:
                    break
        except AlertError as exc:
            self._fail(exc)
        except PeerAlert as exc:
            self._peer_alert(exc)
        self._flush_rx()

    def receive_eof(self) -> None:
        """The transport ended (TCP FIN) without more bytes."""
        if self.failure is not None or self.peer_closed:
            return
        if self.record.buffered_input:
            # A record cut short: tell the peer, in case it still reads.
            self._fail(AlertError(AlertDescription.decode_error, "connection ended inside a record"))
            return
        self.peer_closed = True
        reason = "transport closed without close_notify"
        if not self.handshake_complete:
            reason += " during the handshake"
            self.failure = ConnectionLost(reason)
        self._close_event(None, True, reason)

    def data_to_send(self) -> bytes:
        return self.record.data_to_send()

    def records_to_send(self) -> list[bytes]:
        return self.record.records_to_send()

    def next_event(self) -> Any | None:
        return self._events.popleft() if self._events else None

    def send(self, data: bytes) -> None:
        """Application data.  Before the handshake completes it waits (or,
        for a client with a 0-RTT ticket, goes out as early data up to the
        ticket's limit)."""
        if self.failure is not None:
            raise self.failure
        if self.record.write_closed:
            raise UsageError("the connection is closed for sending")
        if not data:
            return
        if self._kernel is not None:
            self._kernel.send_record(ContentType.APPLICATION_DATA, bytes(data))
            return
        level = self.record.write_level
        if level == Level.APPLICATION and not self._app_queue:
            self.record.write(ContentType.APPLICATION_DATA, data)
            if self.auto_key_update and self.record.write_key_update_due:
                self.key_update()
            return
        self._app_queue += data
        self._flush_app_queue()

    def close(self) -> None:
        """Send close_notify (§6.1); reading goes on until the peer's."""
        if self.record.write_closed or self.failure is not None:
            return
        self._flush_app_queue()
        if self._kernel is not None:
            self._kernel.send_record(ContentType.ALERT, b"\x01\x00")
            self.record.write_closed = True
            return
        self.record.write_alert(AlertDescription.close_notify)

    def abort(self, description: AlertDescription = AlertDescription.user_canceled, reason: str = "") -> None:
        """End the connection now with an error alert."""
        if self.failure is None:
            self._fail(AlertError(description, reason or "aborted by the application"))

    def key_update(self, request_peer: bool = False) -> None:
        """Send KeyUpdate and move to the next write key (§4.6.3)."""
        self._guarded(lambda: self.engine.key_update(request_peer))

    def send_session_ticket(self, now: float | None = None) -> None:
        """Server: one more NewSessionTicket."""
        self._guarded(lambda: self.engine.send_new_session_ticket(now))

    def export_keying_material(self, label: bytes | str, context: bytes = b"", length: int = 32) -> bytes:
        return self.engine.export_keying_material(label, context, length)

    # -- what was negotiated --------------------------------------------------

    @property
    def negotiated(self):
        return self.engine.negotiated

    @property
    def alpn_protocol(self) -> str | None:
        return self.engine.negotiated.alpn

    @property
    def cipher_suite(self) -> int | None:
        return self.engine.negotiated.cipher_suite

    @property
    def peer_certificates(self) -> tuple:
        return tuple(self.engine.peer_certificates)

    @property
    def has_data_to_send(self) -> bool:
        return self.record.has_data_to_send

    @property
    def early_data_pending(self) -> int:
        """Client: bytes queued for after the handshake."""
        return len(self._app_queue)

    # -- kTLS -----------------------------------------------------------------

    def kernel_handoff_states(self) -> tuple[CipherState, CipherState]:
        """The (tx, rx) states to give the kernel.  Only valid right after the
        handshake with nothing pending on either side."""
        if not self.handshake_complete or self.failure is not None:
            raise UsageError("hand off only an established connection")
        if self.record.has_data_to_send or self.record.buffered_input or self._framing.mid_message:
            raise UsageError("records are pending in user space")
        tx, rx = self.record.write_state(), self.record.read_state()
        assert tx is not None and rx is not None
        return tx, rx

    def attach_kernel(self, port: KernelPort, tx: bool = True, rx: bool = True) -> None:
        """From now on the kernel protects records in the directions given.
        tx: app data, handshake messages and alerts go out through `port`.
        rx: records the kernel passes up come in through receive_record()
        (else receive_data() goes on as before)."""
        self.kernel_handoff_states()
        if not (tx or rx):
            raise UsageError("attach_kernel needs tx or rx")
        self._kernel = port if tx else None
        self._kernel_port = port
        self._kernel_rx = rx

    def receive_record(self, content_type: int, content: bytes, now: float | None = None) -> None:
        """A record the kernel already deprotected (kTLS receive path)."""
        if self.failure is not None or self.peer_closed:
            return
        try:
            if content_type == ContentType.ALERT:
                from .record import decode_alert

                level, description = decode_alert(content)
                if description == AlertDescription.close_notify:
                    self.peer_closed = True
                    self._close_event(description, True, "close_notify")
                elif description != AlertDescription.user_canceled:
                    raise PeerAlert(description, level)
            elif content_type == ContentType.HANDSHAKE:
                from .record import Record

                self._handle_record(Record(ContentType.HANDSHAKE, content, Level.APPLICATION), now)
            elif content_type == ContentType.APPLICATION_DATA:
                if content:
                    self._events.append(DataReceived(bytes(content)))
            else:
                raise AlertError(AlertDescription.unexpected_message, f"record type {content_type} from the kernel")
        except AlertError as exc:
            self._fail(exc)
        except PeerAlert as exc:
            self._peer_alert(exc)
        self._flush_rx()

    # -- internals: records in --------------------------------------------------

    def _handle_record(self, record, now: float | None) -> None:
        ctype = record.content_type
        if ctype != ContentType.HANDSHAKE and self._framing.mid_message:
            # §5.1: a handshake message split over records has nothing between.
            raise AlertError(
                AlertDescription.unexpected_message, "record interleaved with a fragmented handshake message"
            )
        if ctype == ContentType.APPLICATION_DATA:
            self._receive_app_data(record)
        elif ctype == ContentType.HANDSHAKE:
            self._flush_rx()
            self._framing.feed(record.content)
            level = record.level
            self._engine_call(lambda: self.engine.receive(level, record.content, now))
        elif ctype == ContentType.ALERT:
            # The record layer raises PeerAlert for error alerts; what reaches
            # here is close_notify or user_canceled.
            if record.content[1] == AlertDescription.close_notify:
                self._flush_rx()
                self.peer_closed = True
                reason = "close_notify"
                if not self.handshake_complete:
                    reason += " before the handshake completed"
                    self.failure = PeerAlert(AlertDescription.close_notify)
                self._close_event(AlertDescription.close_notify, True, reason)

    def _receive_app_data(self, record) -> None:
        if not record.content:
            return  # §5.1: zero-length application data is allowed and means nothing
        early = record.level == Level.EARLY_DATA
        if early:
            self._early_count += len(record.content)
            if self._early_count > self._early_limit:
                # §4.2.10: more 0-RTT than max_early_data_size.
                raise AlertError(AlertDescription.unexpected_message, "more early data than max_early_data_size")
        if self._rx and self._rx_early != early:
            self._flush_rx()
        self._rx_early = early
        self._rx.append(record.content)

    def _flush_rx(self) -> None:
        rx = self._rx
        if rx:
            # Records' contents (views of their decrypted buffers) are joined
            # once into the event's bytes.
            self._events.append(DataReceived(bytes(rx[0]) if len(rx) == 1 else b"".join(rx), self._rx_early))
            rx.clear()

    # -- internals: engine events -------------------------------------------------

    def _engine_call(self, call: Callable[[], list], raise_usage: bool = False) -> None:
        """Run one engine call and apply its events.  AlertError propagates
        (receive_data turns it into the alert); on a failed connection the
        post-handshake API raises the failure."""
        if self.failure is not None:
            if raise_usage:
                raise self.failure
            return
        self._apply(call())

    def _guarded(self, call: Callable[[], list]) -> None:
        try:
            self._engine_call(call, raise_usage=True)
        except AlertError as exc:
            self._fail(exc)

    def _apply(self, events: list) -> None:
        saw_handshake_read = False
        saw_early_read = False
        initial_write = False
        for event in events:
            kind = type(event)
            if kind is ev.HandshakeDataReady:
                self._write_handshake(event)
                initial_write = initial_write or event.level == Level.INITIAL
            elif kind is ev.KeyReady:
                if event.direction == Direction.WRITE:
                    self._set_write_key(event)
                else:
                    self._set_read_key(event)
                    saw_handshake_read = saw_handshake_read or event.level == Level.HANDSHAKE
                    saw_early_read = saw_early_read or event.level == Level.EARLY_DATA
            elif kind is ev.HandshakeCompleted:
                self._completed(event)
            elif kind is ev.EarlyDataRejected:
                self._early_data_rejected(event)
            elif kind is ev.TicketReceived:
                self._flush_rx()
                self._events.append(event)
            # KeyLog: the engine already wrote it to config.keylog.
        if not self.is_client and initial_write and self.engine.early_data_offered:
            limit = max(self.config.max_early_data, EARLY_DATA_SKIP_LIMIT)
            if not saw_handshake_read and not saw_early_read:
                # HelloRetryRequest: the client's 0-RTT records are not for us.
                self.record.skip_early_data(limit, trial_decrypt=False)
                self._hello_retry_sent = True
            elif saw_handshake_read and not saw_early_read and not self._hello_retry_sent:
                # 0-RTT rejected: skip what the handshake key cannot open.
                self.record.skip_early_data(limit, trial_decrypt=True)

    def _write_handshake(self, event: ev.HandshakeDataReady) -> None:
        if self._kernel is not None:
            self._kernel.send_record(ContentType.HANDSHAKE, event.data)
            return
        if event.level == Level.INITIAL and self.record.write_level == Level.EARLY_DATA:
            self.record.clear_write_key()  # ClientHello2 after HelloRetryRequest
        if self.record.write_level != event.level:
            raise AlertError(
                AlertDescription.internal_error,
                f"handshake data for {event.level.name} with the {self.record.write_level.name} key",
            )
        self.record.write(ContentType.HANDSHAKE, event.data)
        if (
            not self.is_client
            and self.middlebox_compat
            and not self._ccs_sent
            and event.level == Level.INITIAL
        ):
            # Appendix D.4: the server's CCS right after its first handshake
            # message (ServerHello or HelloRetryRequest).
            self.record.write_change_cipher_spec()
            self._ccs_sent = True

    def _set_write_key(self, event: ev.KeyReady) -> None:
        if self._kernel is not None:
            self._kernel.rekey_tx(self._state_for(event))
            self._events.append(KeyUpdated(Direction.WRITE))
            return
        if self.is_client and self.middlebox_compat and not self._ccs_sent:
            # Appendix D.4: the client's CCS right after ClientHello1 when it
            # sends 0-RTT, else right before its second flight.
            self.record.write_change_cipher_spec()
            self._ccs_sent = True
        if (
            event.level == Level.APPLICATION
            and self._early_copy
            and not self.engine.negotiated.early_data_accepted
        ):
            self._early_data_rejected(None)  # before anything queued goes out
        self.record.set_write_key(event.cipher_suite, event.secret, event.level)
        if event.level == Level.APPLICATION and self.handshake_complete:
            self._events.append(KeyUpdated(Direction.WRITE))
        if event.level == Level.EARLY_DATA:
            self._early_limit = self.engine.max_early_data  # the ticket's max_early_data_size
        self._flush_app_queue()

    def _set_read_key(self, event: ev.KeyReady) -> None:
        if self._kernel_rx and self._kernel_port is not None:
            self._kernel_port.rekey_rx(self._state_for(event))
            self._flush_rx()
            self._events.append(KeyUpdated(Direction.READ))
            return
        self.record.set_read_key(event.cipher_suite, event.secret, event.level)
        if event.level == Level.EARLY_DATA:
            self._early_limit = self.engine.max_early_data  # what we accept
        if event.level == Level.APPLICATION and self.handshake_complete:
            self._flush_rx()
            self._events.append(KeyUpdated(Direction.READ))

    @staticmethod
    def _state_for(event: ev.KeyReady) -> CipherState:
        from .record import RecordCipher

        return RecordCipher(event.cipher_suite, event.secret, event.level).state()

    def _completed(self, event: HandshakeCompleted) -> None:
        self.handshake_complete = True
        self.completed = event
        self.record.handshaking = False  # the peer's Finished is in
        self._early_copy = bytearray()
        self._flush_rx()
        self._events.append(event)
        self._flush_app_queue()

    def _early_data_rejected(self, event: EarlyDataRejected | None) -> None:
        """Client: the server did not take our 0-RTT.  The bytes are resent,
        in order, under the 1-RTT key: for a byte stream that is the only
        faithful behaviour, and the server never processed them."""
        self._early_rejected = True
        if self._early_copy:
            self._app_queue[0:0] = self._early_copy
            self._early_copy = bytearray()
        if event is not None:
            self._events.append(event)

    def _flush_app_queue(self) -> None:
        if not self._app_queue or self.record.write_closed:
            return
        level = self.record.write_level
        if level == Level.APPLICATION:
            data, self._app_queue = bytes(self._app_queue), bytearray()
            self.record.write(ContentType.APPLICATION_DATA, data)
        elif level == Level.EARLY_DATA and self.is_client and not self._early_rejected:
            room = self._early_limit - self._early_count
            if room > 0:
                data = bytes(self._app_queue[:room])
                del self._app_queue[:room]
                self._early_count += len(data)
                self._early_copy += data
                self.record.write(ContentType.APPLICATION_DATA, data)

    # -- internals: endings -------------------------------------------------------

    def _fail(self, exc: AlertError) -> None:
        self._flush_rx()
        self.failure = exc
        if self._kernel is not None:
            try:
                self._kernel.send_record(ContentType.ALERT, bytes((2, int(exc.description))))
            except OSError:
                pass
        else:
            self.record.write_alert(exc.description)
        self._close_event(exc.description, False, exc.reason or str(exc))

    def _peer_alert(self, exc: PeerAlert) -> None:
        self._flush_rx()
        self.failure = exc
        self.peer_closed = True
        self.record.write_closed = True  # §6.2: nothing more is sent after an error alert
        self._close_event(int(exc.description), True, str(exc))

    def _close_event(self, alert: int | None, by_peer: bool, reason: str) -> None:
        if not self._closed_event:
            self._closed_event = True
            self._events.append(ConnectionClosed(alert, by_peer, reason))
