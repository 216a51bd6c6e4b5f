# The TLS 1.3 record layer (RFC 8446 §5), sans-I/O.  This module owns:
#   - framing: TLSPlaintext / TLSCiphertext headers, the inner content type and
#     zero padding of TLSInnerPlaintext (a pluggable padding policy), the size
#     limits (2^14 plaintext, 2^14 + 256 ciphertext) and fragmentation;
#   - protection: one RecordCipher per direction (AEAD from `cryptography`,
#     key/iv from the traffic secret, nonce = iv XOR 64-bit sequence number),
#     installed exactly where the engine's KeyReady events say;
#   - what may arrive when: the content types legal at each read level, the
#     middlebox-compatibility ChangeCipherSpec, plaintext after keys, alerts
#     (closure versus error), data after close_notify, skipping 0-RTT records
#     a server does not want;
#   - coalescing small writes into one record and splitting large ones.
# It does not parse handshake messages (the engine reassembles them: records
# may hold several messages and a message may span records) and does no I/O.
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .enums import AlertDescription, AlertLevel, ContentType, Level
from .errors import AlertError, PeerAlert, UsageError
from .key_schedule import CIPHER_SUITES, next_traffic_secret, traffic_key_iv

HEADER_LENGTH = 5
MAX_PLAINTEXT = 1 << 14  # TLSPlaintext.length, and content + padding (§5.1, §5.4)
MAX_INNER_PLAINTEXT = MAX_PLAINTEXT + 1  # the encoded TLSInnerPlaintext (§5.4)
MAX_CIPHERTEXT = (1 << 14) + 256  # TLSCiphertext.length (§5.2)
AEAD_TAG_LENGTH = 16
LEGACY_RECORD_VERSION = b"\x03\x03"  # §5.1: 0x0303 on every record we write
# Input the caller may hand over without draining records (next_record()).
# The connection drains after every receive_data(), so only a caller that
# feeds megabytes at once without reading reaches it: a UsageError, not an
# alert, because the peer cannot cause it.
MAX_BUFFERED_INPUT = 1 << 20
# §5.5: AES-GCM keys are good for 2^24.5 full-size records; ask for a
# KeyUpdate well before that.  ChaCha20-Poly1305 has no practical limit.
AES_GCM_RECORD_LIMIT = 1 << 24
SEQUENCE_LIMIT = 1 << 64  # §5.3: a sequence number never wraps

# Content types each read level may carry once decrypted (plaintext records
# at INITIAL).  ChangeCipherSpec is handled before this table is consulted.
ALLOWED_CONTENT: dict[Level, frozenset[ContentType]] = {
    Level.INITIAL: frozenset({ContentType.HANDSHAKE, ContentType.ALERT}),
    Level.EARLY_DATA: frozenset(
        {ContentType.HANDSHAKE, ContentType.ALERT, ContentType.APPLICATION_DATA}
    ),
    Level.HANDSHAKE: frozenset({ContentType.HANDSHAKE, ContentType.ALERT}),
    Level.APPLICATION: frozenset(
        {ContentType.HANDSHAKE, ContentType.ALERT, ContentType.APPLICATION_DATA}
    ),
}
# §6.1: closure alerts; every other description is an error alert (§6.2),
# whatever level byte it carries, and unknown ones too.
CLOSURE_ALERTS = frozenset({AlertDescription.close_notify, AlertDescription.user_canceled})

_CCS_RECORD = bytes((ContentType.CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1))
_KNOWN_TYPES = frozenset(int(t) for t in ContentType if t != ContentType.INVALID)
_CONTENT_TYPE = {int(t): t for t in ContentType}
_APPLICATION_DATA = int(ContentType.APPLICATION_DATA)


# ---------------------------------------------------------------------------
# Alerts


def encode_alert(description: AlertDescription | int) -> bytes:
    """The two-byte Alert: closure alerts as warning, everything else fatal."""
    level = AlertLevel.WARNING if description in CLOSURE_ALERTS else AlertLevel.FATAL
    return bytes((level, int(description)))


def decode_alert(payload: bytes) -> tuple[int, int]:
    """(level, description) of an alert record's payload.

    §5.1: an alert record holds exactly one alert: alerts are neither
    fragmented nor coalesced.  §5.4: "Implementations MUST NOT send Handshake
    and Alert records that have a zero-length TLSInnerPlaintext.content; if
    such a message is received, the receiving implementation MUST terminate
    the connection with an "unexpected_message" alert" (plaintext alert
    records alike).
    """
    if not payload:
        raise AlertError(AlertDescription.unexpected_message, "zero-length alert record")
    if len(payload) != 2:
        raise AlertError(AlertDescription.decode_error, "alert record must hold exactly one alert")
    return payload[0], payload[1]


# ---------------------------------------------------------------------------
# Padding policies (§5.4).  A policy maps (content_type, content_length) to
# the number of zero bytes wanted; the record layer clamps it so that content
# + padding stays within 2^14.  Only protected records are padded.

PaddingPolicy = Callable[[int, int], int]


def no_padding(content_type: int, length: int) -> int:
    return 0


class PadToMultiple:
    """Pad content + padding up to a multiple of `block` bytes (block = 2^14
    makes every protected record full size)."""

    def __init__(self, block: int) -> None:
        if not 1 <= block <= MAX_PLAINTEXT:
            raise UsageError(f"padding block must be in 1..{MAX_PLAINTEXT}")
        self.block = block

    def __call__(self, content_type: int, length: int) -> int:
        return -length % self.block

    def __repr__(self) -> str:
        return f"PadToMultiple({self.block})"


# ---------------------------------------------------------------------------
# One direction's protection state


@dataclass(frozen=True)
class CipherState:
    """A snapshot of one direction for handing over (kTLS): the suite, the
    derived key and iv, and the next sequence number."""

    cipher_suite: int
    key: bytes
    iv: bytes
    seq: int
    level: Level


class RecordCipher:
    """AEAD, key, iv and sequence number of one direction (§5.2, §5.3)."""

    __slots__ = ("cipher_suite", "suite", "secret", "level", "key", "iv", "_iv_int", "_aead", "seq")

    def __init__(self, cipher_suite: int, secret: bytes, level: Level = Level.APPLICATION) -> None:
        suite = CIPHER_SUITES.get(int(cipher_suite))
        if suite is None:
            raise UsageError(f"unknown cipher suite 0x{int(cipher_suite):04x}")
        self.cipher_suite = suite.code
        self.suite = suite
        self.secret = bytes(secret)
        self.level = Level(level)
        self.key, self.iv = traffic_key_iv(suite, self.secret)
        self._iv_int = int.from_bytes(self.iv, "big")
        self._aead = (
            ChaCha20Poly1305(self.key) if suite.code == 0x1303 else AESGCM(self.key)
        )
        self.seq = 0

    def _nonce(self) -> bytes:
        # §5.3: the 64-bit sequence number, left-padded to iv_length, XOR iv.
        if self.seq >= SEQUENCE_LIMIT:
            raise AlertError(
                AlertDescription.internal_error, "record sequence number would wrap (§5.3)"
            )
        return (self._iv_int ^ self.seq).to_bytes(len(self.iv), "big")

    def seal(self, content_type: int, content, padding: int) -> bytes:
        """One TLSCiphertext record (header included) holding `content`."""
        inner_length = len(content) + 1 + padding
        length = inner_length + AEAD_TAG_LENGTH
        header = bytes((ContentType.APPLICATION_DATA, 3, 3, length >> 8, length & 0xFF))
        tail = bytes((content_type,)) + bytes(padding) if padding else bytes((content_type,))
        sealed = self._aead.encrypt(self._nonce(), b"".join((content, tail)), header)
        self.seq += 1
        return header + sealed

    def open(self, header: bytes, body) -> bytes | None:
        """The TLSInnerPlaintext of a record, or None if the tag does not verify.
        (cryptography's decrypt_into measured slower here than decrypt.)"""
        if len(body) <= AEAD_TAG_LENGTH:
            return None
        try:
            inner = self._aead.decrypt(self._nonce(), body, header)
        except InvalidTag:
            return None
        self.seq += 1
        return inner

    def next(self) -> RecordCipher:
        """The cipher for application_traffic_secret_N+1 (§7.2), sequence 0."""
        return RecordCipher(self.cipher_suite, next_traffic_secret(self.suite, self.secret), self.level)

    def state(self) -> CipherState:
        return CipherState(self.cipher_suite, self.key, self.iv, self.seq, self.level)

    @property
    def key_update_due(self) -> bool:
        return self.cipher_suite != 0x1303 and self.seq >= AES_GCM_RECORD_LIMIT


class Record(NamedTuple):
    """One received record after deprotection: its true content type, its
    content (padding removed) and the read level whose key protected it.
    Application data comes as a read-only view of the decrypted record (no
    copy until its reader joins it); every other type as bytes."""

    content_type: ContentType
    content: bytes | memoryview
    level: Level


# ---------------------------------------------------------------------------
# The record layer


class RecordLayer:
    """Sans-I/O TLS 1.3 records in both directions.

    Reading: receive_data(bytes), then next_record() until it returns None.
    Records are deprotected one at a time, so a read key installed after
    handling one record applies from the very next record on.

    Writing: write(content_type, data) buffers (small writes coalesce into one
    record, large ones split at the fragment limit); data_to_send() returns
    the finished records.  set_write_key() seals what is pending under the old
    key first, so key changes land exactly between the right records.

    Flags the connection drives: `handshaking` (True until the peer's Finished
    has been received: the compatibility ChangeCipherSpec and a plaintext
    alert are tolerated only then).
    """

    def __init__(
        self,
        *,
        padding: PaddingPolicy = no_padding,
        max_fragment: int = MAX_PLAINTEXT,
        max_buffered_input: int = MAX_BUFFERED_INPUT,
    ) -> None:
        self.padding = padding
        self.set_write_record_limit(max_fragment)
        self.max_buffered_input = max_buffered_input
        self._read: RecordCipher | None = None
        self._write: RecordCipher | None = None
        self.handshaking = True
        self._hello_seen = False  # a handshake record was sent or received
        # input side
        self._in = bytearray()
        self._failure: Exception | None = None
        self.read_closed = False  # close_notify received
        self._skip_budget = -1  # >= 0 while skipping unwanted 0-RTT records
        self._skip_trial = False
        # output side
        self._out: list[bytes] = []
        self._pending = bytearray()
        self._pending_type = ContentType.APPLICATION_DATA
        self.write_closed = False  # close_notify or a fatal alert sent
        # §5.1: legacy_record_version is 0x0303, except that an initial
        # ClientHello (not one after HelloRetryRequest) MAY use 0x0301; a
        # client sets this for its first flight, as most stacks do.
        self.plaintext_version = 0x0303

    # -- keys ---------------------------------------------------------------

    def set_read_key(self, cipher_suite: int, secret: bytes, level: Level = Level.APPLICATION) -> None:
        self._read = RecordCipher(cipher_suite, secret, level)

    def set_write_key(self, cipher_suite: int, secret: bytes, level: Level = Level.APPLICATION) -> None:
        self._flush_pending()  # what was written so far goes out under the old key
        self._write = RecordCipher(cipher_suite, secret, level)

    def clear_write_key(self) -> None:
        """Back to plaintext records: a client whose 0-RTT was cut short by
        a HelloRetryRequest sends ClientHello2 unprotected (§4.1.2)."""
        self._flush_pending()
        self._write = None

    def update_read_key(self) -> None:
        """KeyUpdate received: application_traffic_secret_N+1 (§4.6.3, §7.2)."""
        if self._read is None or self._read.level != Level.APPLICATION:
            raise UsageError("no application read key to update")
        self._read = self._read.next()

    def update_write_key(self) -> None:
        """After sending KeyUpdate: everything pending so far uses the old key."""
        if self._write is None or self._write.level != Level.APPLICATION:
            raise UsageError("no application write key to update")
        self._flush_pending()
        self._write = self._write.next()

    @property
    def read_level(self) -> Level:
        return self._read.level if self._read else Level.INITIAL

    @property
    def write_level(self) -> Level:
        return self._write.level if self._write else Level.INITIAL

    def read_state(self) -> CipherState | None:
        return self._read.state() if self._read else None

    def write_state(self) -> CipherState | None:
        return self._write.state() if self._write else None

    @property
    def write_key_update_due(self) -> bool:
        return self._write is not None and self._write.key_update_due

    def set_write_record_limit(self, limit: int) -> None:
        """Largest content per record we write (RFC 8449 record_size_limit
        minus one for the content type in TLS 1.3)."""
        if not 1 <= limit <= MAX_PLAINTEXT:
            raise UsageError(f"record limit must be in 1..{MAX_PLAINTEXT}")
        self.max_fragment = limit

    # -- 0-RTT a server does not want (§4.2.10) -------------------------------

    def skip_early_data(self, max_bytes: int, *, trial_decrypt: bool) -> None:
        """Drop the client's 0-RTT records, at most `max_bytes` of them.

        trial_decrypt=True (early data rejected, read key = handshake key):
        records that fail deprotection are dropped until one succeeds.
        trial_decrypt=False (after HelloRetryRequest, no read key): protected
        records (outer type application_data) are dropped until the second
        ClientHello arrives.
        """
        self._skip_budget = max(0, int(max_bytes))
        self._skip_trial = trial_decrypt

    @property
    def skipping_early_data(self) -> bool:
        return self._skip_budget >= 0

    def _skip(self, length: int, why: str) -> None:
        # Count what the client could have sent as early data: the record
        # minus the tag and the content type byte.
        self._skip_budget -= max(0, length - AEAD_TAG_LENGTH - 1)
        if self._skip_budget < 0:
            raise AlertError(
                AlertDescription.unexpected_message if not self._skip_trial
                else AlertDescription.bad_record_mac,
                f"more skipped 0-RTT data than max_early_data_size ({why})",
            )

    # -- reading ------------------------------------------------------------

    def receive_data(self, data) -> None:
        if self._failure is not None or self.read_closed:
            return  # §6.1: data after a closure alert is ignored
        if len(self._in) + len(data) > self.max_buffered_input:
            raise UsageError(
                f"more than {self.max_buffered_input} bytes of input buffered; drain next_record()"
            )
        self._in += data

    @property
    def buffered_input(self) -> int:
        return len(self._in)

    def take_buffered_input(self) -> bytes:
        """Hand over undecrypted input (for kTLS: nothing may stay behind)."""
        data = bytes(self._in)
        self._in.clear()
        return data

    def next_record(self) -> Record | None:
        """The next complete record, deprotected, or None until more input.

        Raises AlertError (send that alert) or PeerAlert (the peer sent an
        error alert); both are sticky.
        """
        if self._failure is not None:
            raise self._failure
        try:
            return self._next_record()
        except (AlertError, PeerAlert) as exc:
            self._failure = exc
            self._in.clear()
            raise

    def _next_record(self) -> Record | None:
        buf = self._in
        while not self.read_closed:
            avail = len(buf)
            if avail < HEADER_LENGTH:
                return None
            ctype = buf[0]
            length = (buf[3] << 8) | buf[4]
            # Judge the header before the body arrives: garbage fails at once.
            if ctype == _APPLICATION_DATA:  # protected: the bulk of a connection, first
                if length > MAX_CIPHERTEXT:  # §5.2
                    raise AlertError(AlertDescription.record_overflow, "TLSCiphertext longer than 2^14+256")
                end = HEADER_LENGTH + length
                if avail < end:
                    return None
                read = self._read
                if read is None:
                    if self._skip_budget >= 0 and not self._skip_trial:
                        self._skip(length, "after HelloRetryRequest")
                        del buf[:end]
                        continue
                    raise AlertError(
                        AlertDescription.unexpected_message, "protected record before any read key"
                    )
                with memoryview(buf) as view:
                    inner = read.open(bytes(view[:HEADER_LENGTH]), view[HEADER_LENGTH:end])
                del buf[:end]
                if inner is None:
                    if self._skip_budget >= 0 and self._skip_trial:
                        self._skip(length, "undecryptable with the handshake key")
                        continue
                    raise AlertError(AlertDescription.bad_record_mac, "record failed to deprotect")
                if self._skip_trial and self._skip_budget >= 0:
                    self._skip_budget = -1  # the first record that opens ends skipping
                return self._deliver(self._unpad(inner))
            if ctype not in _KNOWN_TYPES:
                raise AlertError(
                    AlertDescription.unexpected_message, f"unknown record type {ctype}"
                )
            if ctype == ContentType.CHANGE_CIPHER_SPEC:
                self._check_ccs(length, buf)
                if avail < HEADER_LENGTH + 1:
                    return None
                if buf[5] != 1:
                    raise AlertError(
                        AlertDescription.unexpected_message, "change_cipher_spec value is not 1 (§5)"
                    )
                del buf[:HEADER_LENGTH + 1]  # §5: dropped without further processing
                continue
            if length > MAX_PLAINTEXT:  # §5.1
                raise AlertError(AlertDescription.record_overflow, "TLSPlaintext longer than 2^14")
            if self._read is not None and not (ctype == ContentType.ALERT and self.handshaking):
                # §5.2: once keys are in use every record is protected.
                # A plaintext alert during the handshake is let through:
                # a peer that failed before it had keys can only say so
                # in the clear.
                raise AlertError(
                    AlertDescription.unexpected_message,
                    f"unprotected {ContentType(ctype).name} record after keys were installed",
                )
            end = HEADER_LENGTH + length
            if avail < end:
                return None
            content = bytes(buf[HEADER_LENGTH:end])
            del buf[:end]
            if ctype == ContentType.HANDSHAKE and self._skip_budget >= 0 and not self._skip_trial:
                self._skip_budget = -1  # the second ClientHello ends the skipping
            return self._deliver(Record(ContentType(ctype), content, Level.INITIAL))
        return None

    def _check_ccs(self, length: int, buf: bytearray) -> None:
        # §5: a single-byte 0x01 CCS may arrive after the first ClientHello
        # and before the peer's Finished; anything else is unexpected_message.
        if length != 1:
            raise AlertError(AlertDescription.unexpected_message, "change_cipher_spec record length is not 1")
        if not (self.handshaking and self._hello_seen):
            raise AlertError(
                AlertDescription.unexpected_message, "change_cipher_spec outside the handshake"
            )

    def _unpad(self, inner: bytes) -> Record:
        if len(inner) > MAX_INNER_PLAINTEXT:  # §5.2, §5.4
            raise AlertError(AlertDescription.record_overflow, "TLSInnerPlaintext longer than 2^14+1")
        end = len(inner)
        if inner[-1] == 0:
            end = len(inner.rstrip(b"\x00"))
            if end == 0:  # §5.4: no non-zero octet
                raise AlertError(AlertDescription.unexpected_message, "record is all padding")
        ctype = inner[end - 1]
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            raise AlertError(AlertDescription.unexpected_message, "protected change_cipher_spec (§5)")
        if ctype not in _KNOWN_TYPES:
            raise AlertError(AlertDescription.unexpected_message, f"unknown inner content type {ctype}")
        # Application data is lent as a view of the decrypted record (its
        # reader copies it once, when it joins or hands it on); what the
        # engine parses becomes bytes.
        content = memoryview(inner)[: end - 1] if ctype == _APPLICATION_DATA else inner[: end - 1]
        return Record(_CONTENT_TYPE[ctype], content, self._read.level)  # type: ignore[union-attr]

    def _deliver(self, record: Record) -> Record:
        ctype = record.content_type
        if ctype not in ALLOWED_CONTENT[record.level]:
            raise AlertError(
                AlertDescription.unexpected_message,
                f"{ctype.name} record at level {record.level.name}",
            )
        if ctype == ContentType.HANDSHAKE:
            if not record.content:  # §5.1: no zero-length handshake fragments
                raise AlertError(AlertDescription.unexpected_message, "zero-length handshake record")
            self._hello_seen = True
        elif ctype == ContentType.ALERT:
            _level, description = decode_alert(record.content)
            if description == AlertDescription.close_notify:
                self.read_closed = True
                self._in.clear()
            elif description != AlertDescription.user_canceled:
                raise PeerAlert(description, _level)  # §6.2: error alerts are fatal
        return record

    # -- writing ------------------------------------------------------------

    def write(self, content_type: ContentType | int, data) -> None:
        """Queue content of one type; it leaves in records at the next
        data_to_send() (or sooner, once a full record's worth is pending)."""
        if self.write_closed:
            raise UsageError("write side is closed")
        ctype = ContentType(content_type)
        if ctype == ContentType.ALERT:
            raise UsageError("use write_alert()")
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            raise UsageError("use write_change_cipher_spec()")
        if ctype == ContentType.APPLICATION_DATA and self.write_level not in (
            Level.EARLY_DATA,
            Level.APPLICATION,
        ):
            raise UsageError("no early or application write key installed")
        if not data:
            return  # §5.1: never a zero-length handshake record; nothing to say otherwise
        if ctype == ContentType.HANDSHAKE:
            self._hello_seen = True
        if self._pending and self._pending_type != ctype:
            self._flush_pending()
        self._pending_type = ctype
        view = memoryview(data)
        limit = self.max_fragment
        if not self._pending:
            # Large writes: seal full records straight from the caller's buffer.
            whole = len(view) - len(view) % limit
            for start in range(0, whole, limit):
                self._emit(ctype, view[start : start + limit])
            view = view[whole:]
        self._pending += view
        while len(self._pending) >= limit:
            self._emit(ctype, bytes(self._pending[:limit]))
            del self._pending[:limit]

    def write_alert(self, description: AlertDescription | int) -> None:
        """Send one alert in its own record (§5.1).  After close_notify or an
        error alert nothing more can be written."""
        if self.write_closed:
            return
        self._flush_pending()
        self._emit(ContentType.ALERT, encode_alert(description))
        if description != AlertDescription.user_canceled:
            self.write_closed = True

    def write_change_cipher_spec(self) -> None:
        """The middlebox-compatibility CCS (Appendix D.4): always plaintext."""
        self._flush_pending()
        self._out.append(_CCS_RECORD)

    def _flush_pending(self) -> None:
        if self._pending:
            self._emit(self._pending_type, bytes(self._pending))
            self._pending.clear()

    def _emit(self, ctype: int, content) -> None:
        cipher = self._write
        if cipher is None:
            length = len(content)
            version = self.plaintext_version
            self._out.append(
                bytes((ctype, version >> 8, version & 0xFF, length >> 8, length & 0xFF)) + bytes(content)
            )
            return
        padding = 0
        if self.padding is not no_padding:
            room = MAX_PLAINTEXT - len(content)
            padding = max(0, min(int(self.padding(ctype, len(content))), room))
        self._out.append(cipher.seal(ctype, content, padding))

    def flush(self) -> None:
        """Seal what is pending into records now (data_to_send() does too)."""
        self._flush_pending()

    def records_to_send(self) -> list[bytes]:
        """Finished records as a list (for gathered writes)."""
        self._flush_pending()
        out, self._out = self._out, []
        return out

    def data_to_send(self) -> bytes:
        return b"".join(self.records_to_send())

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out or self._pending)
