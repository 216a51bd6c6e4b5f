# Owns the TLS 1.3 handshake messages as bytes (RFC 8446 §4): one dataclass
# per message with parse(body) and encode() (encode() includes the 4-byte
# handshake header), the handshake framing (header, splitting a byte stream
# into complete messages under a size cap), the HelloRetryRequest random, and
# the PSK binder plumbing on an encoded ClientHello (RFC 8446 §4.2.11.2).
#
# Every parse enforces the vector bounds of RFC 8446 §4 and consumes the body
# fully; violations are AlertError(decode_error), or illegal_parameter where
# the RFC says so.  Extensions stay an ordered list of (type, raw data);
# tls/extensions.py decodes their bodies.  No state, no crypto.
from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, Union

from .codec import Reader, Writer, decode_error, illegal_parameter, pack_u16_list
from .enums import AlertDescription, ExtensionType, HandshakeType
from .errors import AlertError, UsageError
from .extensions import (
    Extension,
    binders_length,
    encode_extensions,
    find_extension,
    read_extensions,
    write_extensions,
)

# RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello with this random
# (SHA-256 of "HelloRetryRequest").
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# (RFC 8446 §4.1.3's downgrade sentinels need no check here: a ServerHello
# for TLS 1.2 or below already ends in protocol_version, since only 1.3 is spoken.)

HEADER_LENGTH = 4
MAX_U24 = 0xFFFFFF


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


def handshake_header(msg_type: int, length: int) -> bytes:
    """struct { HandshakeType msg_type; uint24 length; } (RFC 8446 §4)."""
    if not 0 <= msg_type <= 0xFF or not 0 <= length <= MAX_U24:
        raise UsageError("handshake header out of range")
    return _U32.pack((msg_type << 24) | length)


# Encoders for the hot messages build bytes with joins (a Writer call per
# field costs more than the bytes); the checks and messages are the Writer's.
def _u8(value: int) -> bytes:
    if not 0 <= value <= 0xFF:
        raise UsageError(f"value {value!r} does not fit in 1 bytes")
    return bytes((value,))


def _u16(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise UsageError(f"value {value!r} does not fit in 2 bytes")
    return _U16.pack(value)


def _client_hello_fixed(body: bytes) -> tuple[int, bytes, bytes, list[int], bytes, int] | None:
    """(legacy_version, random, session id, cipher suites, compression methods,
    offset of the extensions) of a ClientHello whose fixed fields are
    well-formed; None otherwise (the Reader then finds the fault)."""
    n = len(body)
    if n < 35 or body[34] > 32:
        return None
    pos = 35 + body[34]  # after legacy_session_id<0..32>
    if pos + 2 > n:
        return None
    suites_len = (body[pos] << 8) | body[pos + 1]  # cipher_suites<2..2^16-2>, pairs
    end = pos + 2 + suites_len
    if suites_len < 2 or suites_len & 1 or end >= n or body[end] < 1 or end + 1 + body[end] > n:
        return None
    suites = list(struct.unpack_from(f">{suites_len >> 1}H", body, pos + 2))
    compression_end = end + 1 + body[end]  # legacy_compression_methods<1..2^8-1>
    return (
        (body[0] << 8) | body[1], body[2:34], body[35:pos], suites, body[end + 1 : compression_end], compression_end,
    )  # fmt: skip


def _certificate_fields(body: bytes) -> tuple[bytes, list[CertificateEntry]] | None:
    """(context, entries) of a well-formed Certificate whose entries carry no
    extensions (what peers send unless asked), sliced directly; None for
    anything else, which the Reader parse then reads (and rejects) field by field."""
    n = len(body)
    pos = 1 + body[0] if n else n  # after certificate_request_context<0..2^8-1>
    if pos + 3 > n or pos + 3 + ((body[pos] << 16) | (body[pos + 1] << 8) | body[pos + 2]) != n:
        return None
    pos += 3
    entries = []
    while pos < n:
        if pos + 3 > n:
            return None
        end = pos + 3 + ((body[pos] << 16) | (body[pos + 1] << 8) | body[pos + 2])  # cert_data<1..2^24-1>
        if end == pos + 3 or end + 2 > n or body[end] or body[end + 1]:  # then extensions<0..2^16-1>, empty
            return None
        entries.append(CertificateEntry(body[pos + 3 : end], []))
        pos = end + 2
    return body[1 : 1 + body[0]], entries


class HandshakeFrame(NamedTuple):
    msg_type: int
    body: bytes
    raw: bytes  # header + body, as hashed into the transcript


def split_handshake_messages(
    data: bytes | bytearray | memoryview, max_message_size: int
) -> tuple[list[HandshakeFrame], bytes]:
    """Split a stream of handshake bytes into complete messages.

    Returns (complete messages, leftover bytes of an incomplete message).  A
    header announcing a body larger than max_message_size is rejected as soon
    as the header is visible, so the caller never buffers it.
    """
    mv = memoryview(data)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    n = len(mv)
    pos = 0
    out: list[HandshakeFrame] = []
    while n - pos >= HEADER_LENGTH:
        length = int.from_bytes(mv[pos + 1 : pos + 4], "big")
        if length > max_message_size:
            raise decode_error(f"handshake message too large ({length} > {max_message_size} bytes)")
        end = pos + HEADER_LENGTH + length
        if end > n:
            break
        raw = mv[pos:end].tobytes()
        out.append(HandshakeFrame(raw[0], raw[HEADER_LENGTH:], raw))
        pos = end
    return out, mv[pos:].tobytes()


class _Message:
    msg_type: ClassVar[int]

    def encode_body(self) -> bytes:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The message with its 4-byte handshake header."""
        body = self.encode_body()
        if len(body) > MAX_U24:
            raise UsageError("handshake header out of range")
        return _U32.pack((self.msg_type << 24) | len(body)) + body


class _WithExtensions(_Message):
    extensions: list[Extension]

    def extension(self, ext_type: int) -> bytes | None:
        """Raw data of the extension of that type, or None."""
        for t, data in self.extensions:  # find_extension() inlined: states ask often
            if t == ext_type:
                return data
        return None

    def extension_types(self) -> list[int]:
        return [t for t, _ in self.extensions]


def _is_tls13_hello(extensions: Sequence[Extension]) -> bool:
    return find_extension(extensions, ExtensionType.SUPPORTED_VERSIONS) is not None


def _read_hello_extensions(r: Reader, tls13_minimum: int, what: str) -> list[Extension]:
    """Hello extensions, which pre-extension peers omit entirely (RFC 8446 §4.1.2:
    "TLS 1.3 servers will need to perform this check first").  Absent -> [].

    The TLS 1.3 floor (<8..> in ClientHello, <6..> in ServerHello) applies to
    TLS 1.3 hellos, i.e. those with supported_versions; older hellos follow the
    TLS 1.2 rule <0..2^16-1>, so the engine can answer them with protocol_version.
    """
    if r.at_end():
        return []
    start = r.position
    extensions = read_extensions(r, 0, 0xFFFF, what)
    length = r.position - start - 2  # = extensions_length(extensions): the block was read whole
    if length < tls13_minimum and _is_tls13_hello(extensions):
        raise decode_error(f"{what}: length {length} below {tls13_minimum}")
    return extensions


# ---------------------------------------------------------------------------
# ClientHello, ServerHello / HelloRetryRequest (RFC 8446 §4.1.2, §4.1.3, §4.1.4)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientHello(_WithExtensions):
    random: bytes
    legacy_session_id: bytes
    cipher_suites: list[int]
    extensions: list[Extension]
    legacy_version: int = 0x0303
    legacy_compression_methods: bytes = b"\x00"
    msg_type: ClassVar[int] = HandshakeType.CLIENT_HELLO

    @classmethod
    def parse(cls, body: bytes) -> ClientHello:
        fixed = _client_hello_fixed(body) if type(body) is bytes else None
        if fixed is not None:
            # the fixed fields of a well-formed hello, sliced in one step
            legacy_version, random, session_id, suites, compression, pos = fixed
            r = Reader(body, pos)
        else:  # field by field, so a malformed hello gets its precise alert
            r = Reader(body)
            legacy_version = r.u16("ClientHello.legacy_version")  # <= 0x0300: the engine's protocol_version (D.5)
            random = r.raw(32, "ClientHello.random")
            session_id = r.vec8(0, 32, "ClientHello.legacy_session_id")
            suites = r.u16_list16(2, 0xFFFE, "ClientHello.cipher_suites")
            compression = r.vec8(1, 0xFF, "ClientHello.legacy_compression_methods")
        extensions = _read_hello_extensions(r, 8, "ClientHello.extensions")
        r.expect_end("ClientHello")
        # RFC 8446 §4.1.2: a TLS 1.3 ClientHello MUST carry exactly one
        # compression method, null; otherwise illegal_parameter.  An SSL 3.0
        # (or older) legacy_version is left for the engine's protocol_version
        # (Appendix D.5), which takes precedence.
        if compression != b"\x00" and legacy_version > 0x0300 and _is_tls13_hello(extensions):
            raise illegal_parameter("ClientHello.legacy_compression_methods must be [null]")
        return cls(random, session_id, suites, extensions, legacy_version, compression)

    def encode_body(self) -> bytes:
        if len(self.random) != 32 or len(self.legacy_session_id) > 32 or not self.cipher_suites:
            raise UsageError("ClientHello: random is 32 bytes, session id <= 32, cipher suites non-empty")
        version = _u16(self.legacy_version)
        session_id = self.legacy_session_id
        suites = pack_u16_list(self.cipher_suites)
        compression = self.legacy_compression_methods
        return b"".join((
            version, self.random,
            _u8(len(session_id)), session_id,
            _u16(len(suites)), suites,
            _u8(len(compression)), compression,
            encode_extensions(self.extensions),
        ))  # fmt: skip


@dataclass(frozen=True)
class ServerHello(_WithExtensions):
    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    extensions: list[Extension]
    legacy_version: int = 0x0303
    legacy_compression_method: int = 0
    msg_type: ClassVar[int] = HandshakeType.SERVER_HELLO

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HRR_RANDOM

    @classmethod
    def parse(cls, body: bytes) -> ServerHello:
        # legacy_version != 0x0303 and legacy_compression_method != 0 are for the
        # engine to judge after it knows the version (protocol_version vs
        # illegal_parameter); this parse only decodes.
        sid_end = 35 + body[34] if type(body) is bytes and len(body) > 34 else 0
        if 0 < sid_end <= 67 and sid_end + 3 <= len(body):
            # the fixed fields in a few slices (every bound is checked above)
            legacy_version = _U16.unpack_from(body)[0]
            random = body[2:34]
            session_id = body[35:sid_end]
            suite = _U16.unpack_from(body, sid_end)[0]
            compression = body[sid_end + 2]
            r = Reader(body, sid_end + 3)
        else:  # field by field, so a malformed hello gets its precise alert
            r = Reader(body)
            legacy_version = r.u16("ServerHello.legacy_version")
            random = r.raw(32, "ServerHello.random")
            session_id = r.vec8(0, 32, "ServerHello.legacy_session_id_echo")
            suite = r.u16("ServerHello.cipher_suite")
            compression = r.u8("ServerHello.legacy_compression_method")
        extensions = _read_hello_extensions(r, 6, "ServerHello.extensions")
        r.expect_end("ServerHello")
        return cls(random, session_id, suite, extensions, legacy_version, compression)

    def encode_body(self) -> bytes:
        if len(self.random) != 32 or len(self.legacy_session_id_echo) > 32:
            raise UsageError("ServerHello: random is 32 bytes, session id <= 32")
        session_id = self.legacy_session_id_echo
        return b"".join((
            _u16(self.legacy_version), self.random,
            _u8(len(session_id)), session_id,
            _u16(self.cipher_suite), _u8(self.legacy_compression_method),
            encode_extensions(self.extensions),
        ))  # fmt: skip


# ---------------------------------------------------------------------------
# EncryptedExtensions (§4.3.1), CertificateRequest (§4.3.2)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EncryptedExtensions(_WithExtensions):
    extensions: list[Extension] = field(default_factory=list)
    msg_type: ClassVar[int] = HandshakeType.ENCRYPTED_EXTENSIONS

    @classmethod
    def parse(cls, body: bytes) -> EncryptedExtensions:
        r = Reader(body)
        extensions = read_extensions(r, 0, 0xFFFF, "EncryptedExtensions.extensions")
        r.expect_end("EncryptedExtensions")
        return cls(extensions)

    def encode_body(self) -> bytes:
        return encode_extensions(self.extensions)


@dataclass(frozen=True)
class CertificateRequest(_WithExtensions):
    request_context: bytes
    extensions: list[Extension]
    msg_type: ClassVar[int] = HandshakeType.CERTIFICATE_REQUEST

    @classmethod
    def parse(cls, body: bytes) -> CertificateRequest:
        # signature_algorithms MUST be present (§4.3.2, missing_extension): the engine checks.
        r = Reader(body)
        context = r.vec8(0, 0xFF, "CertificateRequest.certificate_request_context")
        extensions = read_extensions(r, 2, 0xFFFF, "CertificateRequest.extensions")
        r.expect_end("CertificateRequest")
        return cls(context, extensions)

    def encode_body(self) -> bytes:
        w = Writer()
        w.vec8(self.request_context)
        write_extensions(w, self.extensions)
        return w.getvalue()


# ---------------------------------------------------------------------------
# Certificate (§4.4.2), CertificateVerify (§4.4.3), Finished (§4.4.4)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CertificateEntry:
    data: bytes  # DER X.509 certificate (certificate_type X509 only)
    extensions: list[Extension] = field(default_factory=list)

    def extension(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)


@dataclass(frozen=True)
class Certificate(_Message):
    request_context: bytes
    entries: list[CertificateEntry]
    msg_type: ClassVar[int] = HandshakeType.CERTIFICATE

    @classmethod
    def parse(cls, body: bytes) -> Certificate:
        fast = _certificate_fields(body) if type(body) is bytes else None
        if fast is not None:
            return cls(*fast)
        r = Reader(body)
        context = r.vec8(0, 0xFF, "Certificate.certificate_request_context")
        block = r.sub24(0, MAX_U24, "Certificate.certificate_list")
        r.expect_end("Certificate")
        entries = []
        while not block.at_end():
            data = block.vec24(1, MAX_U24, "CertificateEntry.cert_data")
            extensions = read_extensions(block, 0, 0xFFFF, "CertificateEntry.extensions")
            entries.append(CertificateEntry(data, extensions))
        return cls(context, entries)

    def encode_body(self) -> bytes:
        w = Writer()
        w.vec8(self.request_context)
        with w.block24():
            for entry in self.entries:
                if not entry.data:
                    raise UsageError("empty certificate")
                w.vec24(entry.data)
                write_extensions(w, entry.extensions)
        return w.getvalue()


@dataclass(frozen=True)
class CertificateVerify(_Message):
    algorithm: int
    signature: bytes
    msg_type: ClassVar[int] = HandshakeType.CERTIFICATE_VERIFY

    @classmethod
    def parse(cls, body: bytes) -> CertificateVerify:
        if type(body) is bytes and len(body) >= 4 and ((body[2] << 8) | body[3]) == len(body) - 4:
            return cls((body[0] << 8) | body[1], body[4:])  # well-formed: two slices
        r = Reader(body)
        algorithm = r.u16("CertificateVerify.algorithm")
        signature = r.vec16(0, 0xFFFF, "CertificateVerify.signature")
        r.expect_end("CertificateVerify")
        return cls(algorithm, signature)

    def encode_body(self) -> bytes:
        return _u16(self.algorithm) + _u16(len(self.signature)) + self.signature


@dataclass(frozen=True)
class Finished(_Message):
    verify_data: bytes
    msg_type: ClassVar[int] = HandshakeType.FINISHED

    @classmethod
    def parse(cls, body: bytes, hash_length: int | None = None) -> Finished:
        """opaque verify_data[Hash.length]: the whole body.  Pass hash_length to
        have a wrong size rejected here (decode_error); the value itself is the
        engine's to check (decrypt_error, §4.4.4)."""
        if hash_length is not None and len(body) != hash_length:
            raise decode_error(f"Finished: {len(body)} bytes, expected {hash_length}")
        if not body:
            raise decode_error("Finished: empty verify_data")
        return cls(bytes(body))

    def encode_body(self) -> bytes:
        return bytes(self.verify_data)


# ---------------------------------------------------------------------------
# NewSessionTicket (§4.6.1), EndOfEarlyData (§4.5), KeyUpdate (§4.6.3)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NewSessionTicket(_WithExtensions):
    lifetime: int
    age_add: int
    nonce: bytes
    ticket: bytes
    extensions: list[Extension] = field(default_factory=list)
    msg_type: ClassVar[int] = HandshakeType.NEW_SESSION_TICKET

    @classmethod
    def parse(cls, body: bytes) -> NewSessionTicket:
        # lifetime > 604800 (§4.6.1) is for the engine/ticket store to judge.
        r = Reader(body)
        lifetime = r.u32("NewSessionTicket.ticket_lifetime")
        age_add = r.u32("NewSessionTicket.ticket_age_add")
        nonce = r.vec8(0, 0xFF, "NewSessionTicket.ticket_nonce")
        ticket = r.vec16(1, 0xFFFF, "NewSessionTicket.ticket")
        extensions = read_extensions(r, 0, 0xFFFE, "NewSessionTicket.extensions")
        r.expect_end("NewSessionTicket")
        return cls(lifetime, age_add, nonce, ticket, extensions)

    def encode_body(self) -> bytes:
        if not self.ticket:
            raise UsageError("NewSessionTicket: empty ticket")
        w = Writer()
        w.u32(self.lifetime)
        w.u32(self.age_add)
        w.vec8(self.nonce)
        w.vec16(self.ticket)
        write_extensions(w, self.extensions)
        return w.getvalue()


@dataclass(frozen=True)
class EndOfEarlyData(_Message):
    msg_type: ClassVar[int] = HandshakeType.END_OF_EARLY_DATA

    @classmethod
    def parse(cls, body: bytes) -> EndOfEarlyData:
        Reader(body).expect_end("EndOfEarlyData")
        return cls()

    def encode_body(self) -> bytes:
        return b""


@dataclass(frozen=True)
class KeyUpdate(_Message):
    request_update: int
    msg_type: ClassVar[int] = HandshakeType.KEY_UPDATE

    @classmethod
    def parse(cls, body: bytes) -> KeyUpdate:
        r = Reader(body)
        request = r.u8("KeyUpdate.request_update")
        r.expect_end("KeyUpdate")
        # RFC 8446 §4.6.3: any value other than update_not_requested(0) /
        # update_requested(1) -> illegal_parameter.
        if request not in (0, 1):
            raise illegal_parameter(f"KeyUpdate.request_update {request}")
        return cls(request)

    def encode_body(self) -> bytes:
        return bytes((self.request_update,))


HandshakeMessage = Union[
    ClientHello,
    ServerHello,
    EncryptedExtensions,
    CertificateRequest,
    Certificate,
    CertificateVerify,
    Finished,
    NewSessionTicket,
    EndOfEarlyData,
    KeyUpdate,
]

MESSAGE_CLASSES: dict[int, type] = {
    cls.msg_type: cls
    for cls in (
        ClientHello,
        ServerHello,
        EncryptedExtensions,
        CertificateRequest,
        Certificate,
        CertificateVerify,
        Finished,
        NewSessionTicket,
        EndOfEarlyData,
        KeyUpdate,
    )
}


def parse_message(msg_type: int, body: bytes) -> HandshakeMessage:
    """Decode a handshake body by type.  Types TLS 1.3 does not send on the wire
    (message_hash, TLS 1.2's hello_request, server_key_exchange, ...) or unknown
    ones -> unexpected_message (RFC 8446 §5: out-of-place message)."""
    cls = MESSAGE_CLASSES.get(msg_type)
    if cls is None:
        raise AlertError(AlertDescription.unexpected_message, f"handshake message type {msg_type}")
    return cls.parse(body)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# PSK binders on an encoded ClientHello (RFC 8446 §4.2.11.2)
#
# The binder is an HMAC over the transcript up to a ClientHello truncated
# just before its binders list, with every length field (message, extension
# block, pre_shared_key) as if the binders were present.  pre_shared_key is
# the last extension and binders end it, so the binders list is exactly the
# tail of the message.  Client flow:
#     hello = ClientHello(..., extensions=[..., (PRE_SHARED_KEY,
#              encode_pre_shared_key_client(identities, [bytes(hash_len)] * n))])
#     wire = build_client_hello_with_binders(hello, lambda prefix: [binder(prefix) ...])
# (or: prefix = truncated_client_hello(hello.encode()); wire = replace_binders(hello.encode(), binders)).
# Server: truncated_client_hello(raw ClientHello) is the binder's input.
# ---------------------------------------------------------------------------
def _binders_tail(client_hello: bytes) -> int:
    if len(client_hello) < HEADER_LENGTH or client_hello[0] != HandshakeType.CLIENT_HELLO:
        raise decode_error("not a ClientHello")
    body = client_hello[HEADER_LENGTH:]
    if int.from_bytes(client_hello[1:4], "big") != len(body):
        raise decode_error("ClientHello: length does not match its header")
    hello = ClientHello.parse(body)
    if not hello.extensions or hello.extensions[-1][0] != ExtensionType.PRE_SHARED_KEY:
        # RFC 8446 §4.2.11: pre_shared_key MUST be the last extension.
        if hello.extension(ExtensionType.PRE_SHARED_KEY) is not None:
            raise illegal_parameter("pre_shared_key is not the last extension in ClientHello")
        raise AlertError(AlertDescription.missing_extension, "ClientHello has no pre_shared_key")
    return binders_length(hello.extensions[-1][1])


def truncated_client_hello(client_hello: bytes) -> bytes:
    """The ClientHello (with its 4-byte header) up to, not including, the
    binders list: Truncate(ClientHello) of RFC 8446 §4.2.11.2."""
    return bytes(client_hello[: len(client_hello) - _binders_tail(client_hello)])


def replace_binders(client_hello: bytes, binders: Sequence[bytes]) -> bytes:
    """The encoded ClientHello with its binders list replaced.  The new binders
    must have the placeholders' count and lengths (so no length field changes);
    anything else is UsageError."""
    tail = _binders_tail(client_hello)
    w = Writer()
    with w.block16():
        for binder in binders:
            w.vec8(binder)
    new_tail = w.getvalue()
    old_tail = client_hello[len(client_hello) - tail :]
    if len(new_tail) != tail or _binder_lengths(old_tail) != [len(b) for b in binders]:
        raise UsageError("binders must match the placeholders in count and length")
    return bytes(client_hello[: len(client_hello) - tail]) + new_tail


def _binder_lengths(tail: bytes) -> list[int]:
    r = Reader(tail).sub16()
    lengths = []
    while not r.at_end():
        lengths.append(len(r.vec8()))
    return lengths


def build_client_hello_with_binders(
    hello: ClientHello, compute_binders: Callable[[bytes], Sequence[bytes]]
) -> bytes:
    """Encode `hello` (whose last extension is pre_shared_key with placeholder
    binders of the final lengths), call compute_binders(truncated ClientHello
    with header) and return the wire ClientHello with those binders patched in."""
    encoded = hello.encode()
    try:
        prefix = truncated_client_hello(encoded)
    except AlertError as exc:
        raise UsageError(f"cannot compute binders: {exc}") from None
    return replace_binders(encoded, compute_binders(prefix))
