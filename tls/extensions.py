# Owns the TLS 1.3 extensions as bytes: reading and writing an extension block
# (duplicates rejected, RFC 8446 §4.2), the encode/parse pair of each
# extension body this stack speaks, and the table of which handshake message
# may carry which extension (RFC 8446 §4.2, RFC 9001 §8.2, RFC 8449) with
# check_allowed() raising the alert the RFC names.
#
# Extension bodies are raw bytes on the messages (an ordered list of
# (type, data)); the engine parses the ones it needs with the functions here.
# No state, no crypto.  Every parse error is AlertError: decode_error for
# structure and bounds, illegal_parameter where the RFC says so.
from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Sequence

from .codec import Reader, Writer, decode_error, illegal_parameter, pack_u16_list
from .enums import AlertDescription, ExtensionType, HandshakeType
from .errors import AlertError, UsageError

Extension = tuple[int, bytes]
ET = ExtensionType
_U16 = struct.Struct(">H")
_U16_U16 = struct.Struct(">HH")


# ---------------------------------------------------------------------------
# Extension blocks
# ---------------------------------------------------------------------------
def read_extensions(r: Reader, minimum: int = 0, maximum: int = 0xFFFF, what: str = "extensions") -> list[Extension]:
    """Read `Extension extensions<minimum..maximum>` (u16 length prefix).

    RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type
    in a given extension block" -> illegal_parameter.
    """
    block = r.sub16(minimum, maximum, what)
    # Fast path: a well-formed block in one loop.  A malformed one is not
    # consumed and is read again entry by entry below, so the first fault
    # raises its own alert, as before.
    out = block.typed_items16()
    if out is not None:
        if len({t for t, _ in out}) != len(out):
            seen: set[int] = set()
            for ext_type, _ in out:  # the first repeat, as the loop below finds it
                if ext_type in seen:
                    raise illegal_parameter(f"{what}: duplicate extension {ext_type}")
                seen.add(ext_type)
        return out
    out = []
    seen = set()
    while not block.at_end():
        ext_type = block.u16(f"{what}: extension type")
        data = block.vec16(0, 0xFFFF, f"{what}: extension {ext_type} data")
        if ext_type in seen:
            raise illegal_parameter(f"{what}: duplicate extension {ext_type}")
        seen.add(ext_type)
        out.append((ext_type, data))
    return out


def extensions_length(extensions: Sequence[Extension]) -> int:
    """Encoded size of the extension list (without the block's own u16 length)."""
    return sum(4 + len(data) for _, data in extensions)


def encode_extensions(extensions: Sequence[Extension]) -> bytes:
    """The extension block with its u16 length, in one join (every message we
    send has one; a Writer call per field costs more than the bytes)."""
    parts = [b""]
    for ext_type, data in extensions:
        if not 0 <= ext_type <= 0xFFFF:  # the Writer's checks and messages
            raise UsageError(f"value {ext_type!r} does not fit in 2 bytes")
        if len(data) > 0xFFFF:
            raise UsageError(f"value {len(data)!r} does not fit in 2 bytes")
        parts.append(_U16_U16.pack(ext_type, len(data)))
        parts.append(data)
    return _u16_block(b"".join(parts))


def _u16_block(data: bytes) -> bytes:
    """data with its u16 length (the small encoders build bytes with joins:
    a Writer costs a Python call per field)."""
    if len(data) > 0xFFFF:
        raise UsageError(f"block of {len(data)} bytes does not fit a 2-byte length")
    return _U16.pack(len(data)) + data


def write_extensions(w: Writer, extensions: Sequence[Extension]) -> None:
    w.raw(encode_extensions(extensions))


def find_extension(extensions: Sequence[Extension], ext_type: int) -> bytes | None:
    """Data of the extension of that type, or None (blocks hold no duplicates)."""
    for t, data in extensions:
        if t == ext_type:
            return data
    return None


# Fast paths.  The hot parsers below first try the well-formed shape of their
# body with a few slices (every connection parses them; a Reader costs several
# Python calls per field).  Anything that does not fit exactly falls through
# to the Reader code after it, which raises the precise alert as before.


def _fast_u16_list16(data: bytes) -> list[int] | None:
    """uint16 values<2..> with a 2-byte length covering exactly the rest."""
    n = len(data) - 2
    if type(data) is bytes and n >= 2 and not n & 1 and ((data[0] << 8) | data[1]) == n:
        return list(struct.unpack_from(f">{n >> 1}H", data, 2))
    return None


def _done(r: Reader, what: str) -> None:
    r.expect_end(what)


def expect_empty(data: bytes, what: str) -> None:
    """Extensions whose extension_data is empty in this message (e.g. server_name in EE)."""
    if data:
        raise decode_error(f"{what}: extension_data must be empty, got {len(data)} bytes")


# ---------------------------------------------------------------------------
# server_name (RFC 6066 §3)
# ---------------------------------------------------------------------------
NAME_TYPE_HOST_NAME = 0


def encode_server_name(host: str) -> bytes:
    name = host.encode("ascii")
    if not 1 <= len(name) <= 0xFFFF:
        raise UsageError("server name must be 1..65535 ASCII bytes")
    w = Writer()
    with w.block16():
        w.u8(NAME_TYPE_HOST_NAME)
        w.vec16(name)
    return w.getvalue()


def parse_server_name(data: bytes) -> str:
    """ServerNameList server_name_list<1..2^16-1> with only host_name entries.

    RFC 6066 §3: the list MUST NOT contain more than one name of the same
    name_type -> illegal_parameter.  Unknown name types cannot be decoded
    (ServerName is a select on the type) -> decode_error.
    """
    n = len(data)
    if type(data) is bytes and n > 5 and data[2] == NAME_TYPE_HOST_NAME and (
        ((data[0] << 8) | data[1]) == n - 2 and ((data[3] << 8) | data[4]) == n - 5
    ):  # one host_name: the usual list
        try:
            return data[5:].decode("ascii")
        except UnicodeDecodeError:
            pass  # the Reader path raises decode_error
    r = Reader(data)
    names = r.sub16(1, 0xFFFF, "server_name_list")
    _done(r, "server_name")
    host: str | None = None
    while not names.at_end():
        name_type = names.u8("server_name.name_type")
        if name_type != NAME_TYPE_HOST_NAME:
            raise decode_error(f"server_name: unknown name_type {name_type}")
        raw = names.vec16(1, 0xFFFF, "server_name.host_name")
        if host is not None:
            raise illegal_parameter("server_name: more than one host_name")
        try:
            host = raw.decode("ascii")
        except UnicodeDecodeError:
            raise decode_error("server_name: host_name is not ASCII") from None
    assert host is not None  # the list is non-empty and every entry is a host_name
    return host


# ---------------------------------------------------------------------------
# application_layer_protocol_negotiation (RFC 7301 §3.1)
# ---------------------------------------------------------------------------
def encode_alpn(protocols: Sequence[bytes]) -> bytes:
    parts = []
    for p in protocols:
        if not 1 <= len(p) <= 0xFF:
            raise UsageError("ALPN protocol names are 1..255 bytes")
        parts.append(bytes((len(p),)))
        parts.append(p)
    if not parts:
        raise UsageError("ALPN list must not be empty")
    return _u16_block(b"".join(parts))


def parse_alpn(data: bytes) -> list[bytes]:
    """ProtocolName protocol_name_list<2..2^16-1>; ProtocolName opaque<1..2^8-1>."""
    n = len(data)
    if type(data) is bytes and n >= 4 and ((data[0] << 8) | data[1]) == n - 2:
        names = []
        pos = 2
        while pos < n:
            end = pos + 1 + data[pos]
            if end == pos + 1 or end > n:
                break
            names.append(data[pos + 1 : end])
            pos = end
        else:
            return names
    r = Reader(data)
    names = r.sub16(2, 0xFFFF, "protocol_name_list")
    _done(r, "application_layer_protocol_negotiation")
    out = []
    while not names.at_end():
        out.append(names.vec8(1, 0xFF, "ProtocolName"))
    return out


def encode_alpn_selected(protocol: bytes) -> bytes:
    return encode_alpn([protocol])


def parse_alpn_selected(data: bytes) -> bytes:
    """Server's ALPN response: the list MUST contain exactly one name (RFC 7301 §3.1)."""
    names = parse_alpn(data)
    if len(names) != 1:
        raise decode_error(f"application_layer_protocol_negotiation: server selected {len(names)} names")
    return names[0]


# ---------------------------------------------------------------------------
# supported_groups (RFC 8446 §4.2.7), signature_algorithms(_cert) (§4.2.3)
# ---------------------------------------------------------------------------
def encode_supported_groups(groups: Sequence[int]) -> bytes:
    return _encode_u16_list16(groups, "supported_groups")


def parse_supported_groups(data: bytes) -> list[int]:
    """NamedGroup named_group_list<2..2^16-1>."""
    fast = _fast_u16_list16(data)
    if fast is not None:
        return fast
    r = Reader(data)
    out = r.u16_list16(2, 0xFFFF, "named_group_list")
    _done(r, "supported_groups")
    return out


def encode_signature_algorithms(schemes: Sequence[int]) -> bytes:
    return _encode_u16_list16(schemes, "signature_algorithms")


def parse_signature_algorithms(data: bytes) -> list[int]:
    """SignatureScheme supported_signature_algorithms<2..2^16-2>."""
    fast = _fast_u16_list16(data)  # even, so at most 2^16-2
    if fast is not None:
        return fast
    r = Reader(data)
    out = r.u16_list16(2, 0xFFFE, "supported_signature_algorithms")
    _done(r, "signature_algorithms")
    return out


# signature_algorithms_cert has the same body (RFC 8446 §4.2.3).
encode_signature_algorithms_cert = encode_signature_algorithms
parse_signature_algorithms_cert = parse_signature_algorithms


def _encode_u16_list16(values: Sequence[int], what: str) -> bytes:
    if not values:
        raise UsageError(f"{what} must not be empty")
    w = Writer()
    w.u16_list16(values)
    return w.getvalue()


# ---------------------------------------------------------------------------
# supported_versions (RFC 8446 §4.2.1)
# ---------------------------------------------------------------------------
def encode_supported_versions_client(versions: Sequence[int]) -> bytes:
    if not 1 <= len(versions) <= 127:
        raise UsageError("supported_versions: 1..127 versions")
    w = Writer()
    w.u16_list8(versions)
    return w.getvalue()


def parse_supported_versions_client(data: bytes) -> list[int]:
    """ProtocolVersion versions<2..254> (ClientHello)."""
    n = len(data) - 1
    if type(data) is bytes and 2 <= n <= 254 and not n & 1 and data[0] == n:
        return list(struct.unpack_from(f">{n >> 1}H", data, 1))
    r = Reader(data)
    out = r.u16_list8(2, 254, "supported_versions.versions")
    _done(r, "supported_versions")
    return out


def encode_supported_versions_server(version: int) -> bytes:
    return pack_u16_list([version])


def parse_supported_versions_server(data: bytes) -> int:
    """ProtocolVersion selected_version (ServerHello, HelloRetryRequest)."""
    if type(data) is bytes and len(data) == 2:
        return (data[0] << 8) | data[1]
    r = Reader(data)
    v = r.u16("supported_versions.selected_version")
    _done(r, "supported_versions")
    return v


# ---------------------------------------------------------------------------
# key_share (RFC 8446 §4.2.8)
# ---------------------------------------------------------------------------
def _key_share_entry(group: int, key_exchange: bytes) -> bytes:
    if not 1 <= len(key_exchange) <= 0xFFFF:
        raise UsageError("key_exchange must be 1..65535 bytes")
    if not 0 <= group <= 0xFFFF:
        raise UsageError(f"value {group!r} does not fit in 2 bytes")
    return _U16_U16.pack(group, len(key_exchange)) + key_exchange


def _read_key_share_entry(r: Reader) -> tuple[int, bytes]:
    group = r.u16("KeyShareEntry.group")
    return group, r.vec16(1, 0xFFFF, "KeyShareEntry.key_exchange")


def encode_key_share_client(entries: Sequence[tuple[int, bytes]]) -> bytes:
    return _u16_block(b"".join([_key_share_entry(group, key_exchange) for group, key_exchange in entries]))


def parse_key_share_client(data: bytes) -> list[tuple[int, bytes]]:
    """KeyShareEntry client_shares<0..2^16-1>.

    RFC 8446 §4.2.8: clients MUST NOT offer multiple KeyShareEntry values for
    the same group; servers MAY abort with illegal_parameter -- we do.
    """
    n = len(data)
    if type(data) is bytes and n >= 2 and ((data[0] << 8) | data[1]) == n - 2:
        out = []
        pos = 2
        while pos < n:
            if pos + 4 > n:
                break
            group, length = _U16_U16.unpack_from(data, pos)
            end = pos + 4 + length
            if length == 0 or end > n or any(g == group for g, _ in out):
                break
            out.append((group, data[pos + 4 : end]))
            pos = end
        else:
            return out
    r = Reader(data)
    shares = r.sub16(0, 0xFFFF, "client_shares")
    _done(r, "key_share")
    out = []
    seen: set[int] = set()
    while not shares.at_end():
        group, key_exchange = _read_key_share_entry(shares)
        if group in seen:
            raise illegal_parameter(f"key_share: two shares for group {group:#06x}")
        seen.add(group)
        out.append((group, key_exchange))
    return out


def encode_key_share_server(entry: tuple[int, bytes]) -> bytes:
    return _key_share_entry(entry[0], entry[1])


def parse_key_share_server(data: bytes) -> tuple[int, bytes]:
    """KeyShareEntry server_share (ServerHello)."""
    if type(data) is bytes and len(data) > 4 and ((data[2] << 8) | data[3]) == len(data) - 4:
        return (data[0] << 8) | data[1], data[4:]
    r = Reader(data)
    entry = _read_key_share_entry(r)
    _done(r, "key_share")
    return entry


def encode_key_share_hrr(group: int) -> bytes:
    return pack_u16_list([group])


def parse_key_share_hrr(data: bytes) -> int:
    """NamedGroup selected_group (HelloRetryRequest)."""
    r = Reader(data)
    group = r.u16("key_share.selected_group")
    _done(r, "key_share")
    return group


# ---------------------------------------------------------------------------
# psk_key_exchange_modes (RFC 8446 §4.2.9)
# ---------------------------------------------------------------------------
def encode_psk_key_exchange_modes(modes: Sequence[int]) -> bytes:
    if not 1 <= len(modes) <= 0xFF:
        raise UsageError("psk_key_exchange_modes: 1..255 modes")
    w = Writer()
    w.vec8(bytes(modes))
    return w.getvalue()


def parse_psk_key_exchange_modes(data: bytes) -> list[int]:
    """PskKeyExchangeMode ke_modes<1..255>; unknown modes are kept (the engine ignores them)."""
    if type(data) is bytes and len(data) >= 2 and data[0] == len(data) - 1:
        return list(data[1:])
    r = Reader(data)
    modes = r.vec8(1, 0xFF, "ke_modes")
    _done(r, "psk_key_exchange_modes")
    return list(modes)


# ---------------------------------------------------------------------------
# pre_shared_key (RFC 8446 §4.2.11)
# ---------------------------------------------------------------------------
PskIdentity = tuple[bytes, int]  # (identity, obfuscated_ticket_age)


def encode_pre_shared_key_client(identities: Sequence[PskIdentity], binders: Sequence[bytes]) -> bytes:
    """OfferedPsks.  To compute binders, encode with placeholder binders of the
    right lengths (e.g. bytes(hash_length)) and see messages.build_client_hello_with_binders."""
    if not identities or len(identities) != len(binders):
        raise UsageError("pre_shared_key: need one binder per identity, at least one")
    w = Writer()
    with w.block16():
        for identity, age in identities:
            if not 1 <= len(identity) <= 0xFFFF:
                raise UsageError("PSK identity must be 1..65535 bytes")
            w.vec16(identity)
            w.u32(age)
    with w.block16():
        for binder in binders:
            if not 32 <= len(binder) <= 0xFF:
                raise UsageError("PSK binder must be 32..255 bytes")
            w.vec8(binder)
    return w.getvalue()


def _read_identities(r: Reader) -> list[PskIdentity]:
    block = r.sub16(7, 0xFFFF, "OfferedPsks.identities")
    out = []
    while not block.at_end():
        identity = block.vec16(1, 0xFFFF, "PskIdentity.identity")
        out.append((identity, block.u32("PskIdentity.obfuscated_ticket_age")))
    return out


def parse_pre_shared_key_client(data: bytes) -> tuple[list[PskIdentity], list[bytes]]:
    """OfferedPsks: PskIdentity identities<7..2^16-1>; PskBinderEntry binders<33..2^16-1>,
    PskBinderEntry opaque<32..255>.  One binder per identity, in order (§4.2.11);
    a different count is illegal_parameter."""
    r = Reader(data)
    identities = _read_identities(r)
    block = r.sub16(33, 0xFFFF, "OfferedPsks.binders")
    _done(r, "pre_shared_key")
    binders = []
    while not block.at_end():
        binders.append(block.vec8(32, 0xFF, "PskBinderEntry"))
    if len(binders) != len(identities):
        raise illegal_parameter(f"pre_shared_key: {len(identities)} identities but {len(binders)} binders")
    return identities, binders


def binders_length(pre_shared_key_data: bytes) -> int:
    """Size of the binders list at the end of a ClientHello's pre_shared_key
    extension, including its u16 length: what Truncate() removes (§4.2.11.2)."""
    r = Reader(pre_shared_key_data)
    _read_identities(r)
    start = r.position
    r.sub16(33, 0xFFFF, "OfferedPsks.binders")
    _done(r, "pre_shared_key")
    return len(pre_shared_key_data) - start


def truncated_client_hello(client_hello: bytes) -> bytes:
    """The ClientHello (with its 4-byte header) up to, not including, the binders
    list (RFC 8446 §4.2.11.2).  Same as messages.truncated_client_hello."""
    from .messages import truncated_client_hello as impl  # messages imports this module

    return impl(client_hello)


def encode_pre_shared_key_server(selected_identity: int) -> bytes:
    return pack_u16_list([selected_identity])


def parse_pre_shared_key_server(data: bytes) -> int:
    """uint16 selected_identity (ServerHello).  Range check against the offer is the engine's
    (§4.2.11: out of range -> illegal_parameter)."""
    r = Reader(data)
    index = r.u16("pre_shared_key.selected_identity")
    _done(r, "pre_shared_key")
    return index


# ---------------------------------------------------------------------------
# early_data (§4.2.10), cookie (§4.2.2), post_handshake_auth (§4.2.6),
# quic_transport_parameters (RFC 9001 §8.2), padding (RFC 7685),
# certificate_authorities (§4.2.4), oid_filters (§4.2.5),
# record_size_limit (RFC 8449), status_request (RFC 6066 §8)
# ---------------------------------------------------------------------------
def encode_early_data() -> bytes:
    """Empty body, in ClientHello and EncryptedExtensions."""
    return b""


def parse_early_data(data: bytes) -> None:
    expect_empty(data, "early_data")


def encode_max_early_data_size(size: int) -> bytes:
    """early_data in NewSessionTicket: uint32 max_early_data_size."""
    w = Writer()
    w.u32(size)
    return w.getvalue()


def parse_max_early_data_size(data: bytes) -> int:
    r = Reader(data)
    size = r.u32("early_data.max_early_data_size")
    _done(r, "early_data")
    return size


def encode_cookie(cookie: bytes) -> bytes:
    if not 1 <= len(cookie) <= 0xFFFF:
        raise UsageError("cookie must be 1..65535 bytes")
    w = Writer()
    w.vec16(cookie)
    return w.getvalue()


def parse_cookie(data: bytes) -> bytes:
    """opaque cookie<1..2^16-1>."""
    r = Reader(data)
    cookie = r.vec16(1, 0xFFFF, "cookie")
    _done(r, "cookie")
    return cookie


def encode_post_handshake_auth() -> bytes:
    return b""


def parse_post_handshake_auth(data: bytes) -> None:
    expect_empty(data, "post_handshake_auth")


def encode_quic_transport_parameters(params: bytes) -> bytes:
    """Opaque to TLS; the QUIC layer encodes and validates it (RFC 9001 §8.2)."""
    return bytes(params)


def parse_quic_transport_parameters(data: bytes) -> bytes:
    return bytes(data)


def encode_padding(length: int) -> bytes:
    return bytes(length)


def parse_padding(data: bytes) -> int:
    """RFC 7685 §3: the padding MUST be all zero bytes; anything else -> illegal_parameter."""
    if data != bytes(len(data)):
        raise illegal_parameter("padding: non-zero byte")
    return len(data)


def encode_certificate_authorities(names: Sequence[bytes]) -> bytes:
    w = Writer()
    with w.block16():
        for dn in names:
            if not 1 <= len(dn) <= 0xFFFF:
                raise UsageError("DistinguishedName must be 1..65535 bytes")
            w.vec16(dn)
    if len(w) == 2:
        raise UsageError("certificate_authorities must not be empty")
    return w.getvalue()


def parse_certificate_authorities(data: bytes) -> list[bytes]:
    """DistinguishedName authorities<3..2^16-1>; DistinguishedName opaque<1..2^16-1> (DER)."""
    r = Reader(data)
    block = r.sub16(3, 0xFFFF, "certificate_authorities")
    _done(r, "certificate_authorities")
    out = []
    while not block.at_end():
        out.append(block.vec16(1, 0xFFFF, "DistinguishedName"))
    return out


def encode_oid_filters(filters: Sequence[tuple[bytes, bytes]]) -> bytes:
    w = Writer()
    with w.block16():
        for oid, values in filters:
            if not 1 <= len(oid) <= 0xFF:
                raise UsageError("OID must be 1..255 bytes")
            w.vec8(oid)
            w.vec16(values)
    return w.getvalue()


def parse_oid_filters(data: bytes) -> list[tuple[bytes, bytes]]:
    """OIDFilter filters<0..2^16-1>: (certificate_extension_oid<1..2^8-1>, values<0..2^16-1>)."""
    r = Reader(data)
    block = r.sub16(0, 0xFFFF, "oid_filters")
    _done(r, "oid_filters")
    out = []
    while not block.at_end():
        oid = block.vec8(1, 0xFF, "OIDFilter.certificate_extension_oid")
        out.append((oid, block.vec16(0, 0xFFFF, "OIDFilter.certificate_extension_values")))
    return out


def encode_record_size_limit(limit: int) -> bytes:
    return pack_u16_list([limit])


def parse_record_size_limit(data: bytes) -> int:
    """uint16 RecordSizeLimit; RFC 8449 §4: a value below 64 -> illegal_parameter."""
    r = Reader(data)
    limit = r.u16("record_size_limit")
    _done(r, "record_size_limit")
    if limit < 64:
        raise illegal_parameter(f"record_size_limit {limit} < 64")
    return limit


def parse_status_request(data: bytes) -> bytes:
    """Tolerated and ignored: OCSP stapling is not implemented, so the body is
    returned as-is (an empty body is the server's acknowledgement)."""
    return bytes(data)


# ---------------------------------------------------------------------------
# Which message may carry which extension (RFC 8446 §4.2 table)
# ---------------------------------------------------------------------------
CH, SH, HRR, EE, CT, CR, NST = "CH", "SH", "HRR", "EE", "CT", "CR", "NST"

ALLOWED_IN: dict[int, frozenset[str]] = {
    ET.SERVER_NAME: frozenset({CH, EE}),
    ET.MAX_FRAGMENT_LENGTH: frozenset({CH, EE}),
    ET.STATUS_REQUEST: frozenset({CH, CR, CT}),
    ET.SUPPORTED_GROUPS: frozenset({CH, EE}),
    ET.SIGNATURE_ALGORITHMS: frozenset({CH, CR}),
    ET.USE_SRTP: frozenset({CH, EE}),
    ET.HEARTBEAT: frozenset({CH, EE}),
    ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION: frozenset({CH, EE}),
    ET.SIGNED_CERTIFICATE_TIMESTAMP: frozenset({CH, CR, CT}),
    ET.CLIENT_CERTIFICATE_TYPE: frozenset({CH, EE}),
    ET.SERVER_CERTIFICATE_TYPE: frozenset({CH, EE}),
    ET.PADDING: frozenset({CH}),
    ET.KEY_SHARE: frozenset({CH, SH, HRR}),
    ET.PRE_SHARED_KEY: frozenset({CH, SH}),
    ET.PSK_KEY_EXCHANGE_MODES: frozenset({CH}),
    ET.EARLY_DATA: frozenset({CH, EE, NST}),
    ET.COOKIE: frozenset({CH, HRR}),
    ET.SUPPORTED_VERSIONS: frozenset({CH, SH, HRR}),
    ET.CERTIFICATE_AUTHORITIES: frozenset({CH, CR}),
    ET.OID_FILTERS: frozenset({CR}),
    ET.POST_HANDSHAKE_AUTH: frozenset({CH}),
    ET.SIGNATURE_ALGORITHMS_CERT: frozenset({CH, CR}),
    ET.RECORD_SIZE_LIMIT: frozenset({CH, EE}),  # RFC 8449 §5
    ET.QUIC_TRANSPORT_PARAMETERS: frozenset({CH, EE}),  # RFC 9001 §8.2
}

_MESSAGE_NAMES = {
    HandshakeType.CLIENT_HELLO: CH,
    HandshakeType.SERVER_HELLO: SH,
    HandshakeType.ENCRYPTED_EXTENSIONS: EE,
    HandshakeType.CERTIFICATE: CT,
    HandshakeType.CERTIFICATE_REQUEST: CR,
    HandshakeType.NEW_SESSION_TICKET: NST,
}
# Messages that answer the peer's offer: unknown or unrequested extensions are
# unsupported_extension (§4.2).  In CH, CR and NST unknown ones are ignored
# (§4.1.2, §4.3.2, §4.6.1).
_RESPONSES = frozenset({SH, HRR, EE, CT})


def check_allowed(
    msg_type: int,
    extensions: Sequence[Extension],
    *,
    hello_retry_request: bool = False,
    offered: Collection[int] | None = None,
) -> None:
    """Raise the alert RFC 8446 §4.2 names for an extension that may not be in this message.

    - A recognized extension in a message the table does not list for it
      -> illegal_parameter.
    - An unrecognized extension: ignored in ClientHello, CertificateRequest and
      NewSessionTicket; unsupported_extension in ServerHello, HelloRetryRequest,
      EncryptedExtensions and Certificate.
    - With `offered` (the extension types we sent in the message being answered:
      the ClientHello, or the CertificateRequest for a client Certificate): a
      response extension not offered -> unsupported_extension, except cookie in
      a HelloRetryRequest.
    - ClientHello: pre_shared_key not last -> illegal_parameter (§4.2.11).

    Pass msg_type SERVER_HELLO with hello_retry_request=True for an HRR.  For a
    ServerHello, check supported_versions first: a TLS 1.2 ServerHello carries
    extensions that are not TLS 1.3's and deserves protocol_version instead.
    """
    where = _MESSAGE_NAMES.get(msg_type)  # IntEnum keys: an int finds them, no Enum call
    if where is None:
        raise UsageError(f"message type {msg_type} carries no extensions")
    if hello_retry_request:
        if where != SH:
            raise UsageError("hello_retry_request applies to SERVER_HELLO")
        where = HRR
    is_response = where in _RESPONSES
    for index, (ext_type, _) in enumerate(extensions):
        allowed = ALLOWED_IN.get(ext_type)
        if allowed is None:
            if is_response:
                raise AlertError(AlertDescription.unsupported_extension, f"unknown extension {ext_type} in {where}")
            continue
        if where not in allowed:
            raise illegal_parameter(f"extension {_name(ext_type)} not allowed in {where}")
        if is_response and offered is not None and ext_type not in offered:
            if not (where == HRR and ext_type == ET.COOKIE):
                raise AlertError(AlertDescription.unsupported_extension, f"{where} answers {_name(ext_type)}, which was not offered")
        if where == CH and ext_type == ET.PRE_SHARED_KEY and index != len(extensions) - 1:
            raise illegal_parameter("pre_shared_key is not the last extension in ClientHello")


def _name(ext_type: int) -> str:
    try:
        return ExtensionType(ext_type).name.lower()
    except ValueError:
        return str(ext_type)


# Per-extension body parsers, keyed by (type, message) -- used by the fuzz tests
# and available to the engine for a uniform "parse what you got" step.
PARSERS: dict[tuple[int, str], Callable[[bytes], object]] = {
    (ET.SERVER_NAME, CH): parse_server_name,
    (ET.SERVER_NAME, EE): lambda d: expect_empty(d, "server_name"),
    (ET.SUPPORTED_GROUPS, CH): parse_supported_groups,
    (ET.SUPPORTED_GROUPS, EE): parse_supported_groups,
    (ET.SIGNATURE_ALGORITHMS, CH): parse_signature_algorithms,
    (ET.SIGNATURE_ALGORITHMS, CR): parse_signature_algorithms,
    (ET.SIGNATURE_ALGORITHMS_CERT, CH): parse_signature_algorithms_cert,
    (ET.SIGNATURE_ALGORITHMS_CERT, CR): parse_signature_algorithms_cert,
    (ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, CH): parse_alpn,
    (ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, EE): parse_alpn_selected,
    (ET.SUPPORTED_VERSIONS, CH): parse_supported_versions_client,
    (ET.SUPPORTED_VERSIONS, SH): parse_supported_versions_server,
    (ET.SUPPORTED_VERSIONS, HRR): parse_supported_versions_server,
    (ET.KEY_SHARE, CH): parse_key_share_client,
    (ET.KEY_SHARE, SH): parse_key_share_server,
    (ET.KEY_SHARE, HRR): parse_key_share_hrr,
    (ET.PSK_KEY_EXCHANGE_MODES, CH): parse_psk_key_exchange_modes,
    (ET.PRE_SHARED_KEY, CH): parse_pre_shared_key_client,
    (ET.PRE_SHARED_KEY, SH): parse_pre_shared_key_server,
    (ET.EARLY_DATA, CH): parse_early_data,
    (ET.EARLY_DATA, EE): parse_early_data,
    (ET.EARLY_DATA, NST): parse_max_early_data_size,
    (ET.COOKIE, CH): parse_cookie,
    (ET.COOKIE, HRR): parse_cookie,
    (ET.POST_HANDSHAKE_AUTH, CH): parse_post_handshake_auth,
    (ET.QUIC_TRANSPORT_PARAMETERS, CH): parse_quic_transport_parameters,
    (ET.QUIC_TRANSPORT_PARAMETERS, EE): parse_quic_transport_parameters,
    (ET.PADDING, CH): parse_padding,
    (ET.CERTIFICATE_AUTHORITIES, CH): parse_certificate_authorities,
    (ET.CERTIFICATE_AUTHORITIES, CR): parse_certificate_authorities,
    (ET.OID_FILTERS, CR): parse_oid_filters,
    (ET.RECORD_SIZE_LIMIT, CH): parse_record_size_limit,
    (ET.RECORD_SIZE_LIMIT, EE): parse_record_size_limit,
    (ET.STATUS_REQUEST, CH): parse_status_request,
    (ET.STATUS_REQUEST, CR): parse_status_request,
    (ET.STATUS_REQUEST, CT): parse_status_request,
}
