# QUIC packet headers, without cryptography: step one of two-step decoding
# (quinn-proto's PartialDecode).  Owns
#   - PacketType, and the mapping of long-header type bits per version (read
#     from versions.VersionInfo, never from version numbers);
#   - decode_header / split_datagram: the invariant header (RFC 8999) and, for
#     the versions we know, the per-type fields (RFC 9000 §17.2, RFC 9369 §3.2)
#     up to the packet number offset, and the splitting of coalesced packets
#     in one datagram (RFC 9000 §12.2);
#   - encoding long and short plain headers (with a patchable Length field),
#     Version Negotiation and Retry packets;
#   - packet number length choice, encoding and decoding (RFC 9000 §17.1, A.2, A.3).
# Step two (header protection and AEAD) is PacketProtection.unprotect in
# pyquic._crypto, given the pn_offset found here.
#
# Malformed input never raises out of split_datagram: it returns the packets
# it could delimit and a reason for stopping.  decode_header raises one
# exception, PacketDecodeError.
from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple, Optional, Sequence

from .buffer import Buffer, encode_varint
from .errors import TransportError, UsageError
from .versions import VERSIONS, VersionInfo

MAX_CID_LENGTH = 20  # RFC 9000 §17.2: v1 (and v2) connection IDs
MAX_INVARIANT_CID_LENGTH = 255  # RFC 8999 §5.1: other versions may use up to 255 bytes
RETRY_INTEGRITY_TAG_LENGTH = 16  # RFC 9001 §5.8
VERSION_NEGOTIATION = 0  # RFC 8999 §6: the version field of a Version Negotiation packet

LONG_HEADER_BIT = 0x80
FIXED_BIT = 0x40
SPIN_BIT = 0x20  # short header (RFC 9000 §17.3.1)
KEY_PHASE_BIT = 0x04  # short header, under header protection
LONG_RESERVED_BITS = 0x0C  # RFC 9000 §17.2, under header protection
SHORT_RESERVED_BITS = 0x18  # RFC 9000 §17.3.1, under header protection
PN_LENGTH_MASK = 0x03

# The Length field is always written in 2 bytes so it can be patched once the
# payload is known; the packet (number + payload + tag) must fit 16383 bytes.
LENGTH_FIELD_SIZE = 2
MAX_LONG_PACKET_LENGTH = (1 << 14) - 1


class PacketType(IntEnum):
    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    RETRY = 3
    ONE_RTT = 4  # short header
    VERSION_NEGOTIATION = 5
    UNKNOWN_VERSION = 6  # a long header of a version we do not implement


# Long-header type bits -> PacketType, per version.
_LONG_TYPES: dict[int, tuple[PacketType, PacketType, PacketType, PacketType]] = {}
for _info in VERSIONS.values():
    _bits = [PacketType.INITIAL] * 4
    _bits[_info.type_initial] = PacketType.INITIAL
    _bits[_info.type_0rtt] = PacketType.ZERO_RTT
    _bits[_info.type_handshake] = PacketType.HANDSHAKE
    _bits[_info.type_retry] = PacketType.RETRY
    _LONG_TYPES[_info.version] = tuple(_bits)  # type: ignore[assignment]


def _type_bits(info: VersionInfo, packet_type: PacketType) -> int:
    if packet_type is PacketType.INITIAL:
        return info.type_initial
    if packet_type is PacketType.ZERO_RTT:
        return info.type_0rtt
    if packet_type is PacketType.HANDSHAKE:
        return info.type_handshake
    if packet_type is PacketType.RETRY:
        return info.type_retry
    raise UsageError(f"{packet_type!r} has no long-header type bits")


class PacketDecodeError(ValueError):
    """A packet whose header cannot be delimited: drop it and the rest of the datagram."""


class PartialHeader(NamedTuple):
    """What the invariant (unprotected) part of a header says.

    For INITIAL, ZERO_RTT, HANDSHAKE and ONE_RTT, pn_offset is where the
    protected packet number starts (relative to the packet); `first_byte`
    still has its protected low bits.  For RETRY, VERSION_NEGOTIATION and
    UNKNOWN_VERSION, pn_offset is -1.
    """

    packet_type: PacketType
    first_byte: int
    version: Optional[int]  # None for a short header
    destination_cid: bytes
    source_cid: bytes  # b"" for a short header
    token: bytes  # Initial token or Retry token, else b""
    offset: int  # where the packet starts in the datagram
    length: int  # the packet's whole length in the datagram
    pn_offset: int
    supported_versions: tuple[int, ...] = ()  # Version Negotiation only
    integrity_tag: bytes = b""  # Retry only


_tuple_new = tuple.__new__
_from_bytes = int.from_bytes


def decode_header(
    data: Buffer, offset: int = 0, *, short_dcid_length: int, fixed_bit_required: bool = True
) -> PartialHeader:
    """Decode the header of the packet starting at `data[offset]`.

    `short_dcid_length` is the length of our connection IDs (a short header
    does not say).  `fixed_bit_required=False` accepts a zero fixed bit, for
    a peer that negotiated grease_quic_bit (RFC 9287).  Raises
    PacketDecodeError; never reads past the data.
    """
    end = len(data)
    if offset >= end:
        raise PacketDecodeError("empty packet")
    first = data[offset]
    if not first & LONG_HEADER_BIT:
        # Short header (RFC 9000 §17.3.1): the packet runs to the end of the datagram.
        if fixed_bit_required and not first & FIXED_BIT:
            # RFC 9000 §17.3.1: packets with a zero Fixed Bit MUST be discarded.
            raise PacketDecodeError("short header with a zero fixed bit")
        pn_offset = 1 + short_dcid_length
        if offset + pn_offset > end:
            raise PacketDecodeError("short header shorter than its connection ID")
        return _tuple_new(
            PartialHeader,
            (
                PacketType.ONE_RTT,
                first,
                None,
                bytes(data[offset + 1 : offset + pn_offset]),
                b"",
                b"",
                offset,
                end - offset,
                pn_offset,
                (),
                b"",
            ),
        )

    # Long header: the invariant part (RFC 8999 §5.1).
    if offset + 7 > end:
        raise PacketDecodeError("long header too short")
    version = _from_bytes(data[offset + 1 : offset + 5], "big")
    long_types = _LONG_TYPES.get(version)
    max_cid = MAX_CID_LENGTH if long_types is not None else MAX_INVARIANT_CID_LENGTH
    pos = offset + 5
    dcid_length = data[pos]
    if dcid_length > max_cid:
        # RFC 9000 §17.2: a v1 long header with a longer DCID MUST be dropped.
        raise PacketDecodeError(f"destination connection ID of {dcid_length} bytes")
    pos += 1
    dcid_end = pos + dcid_length
    if dcid_end >= end:
        raise PacketDecodeError("long header truncated in the destination connection ID")
    dcid = bytes(data[pos:dcid_end])
    scid_length = data[dcid_end]
    if scid_length > max_cid:
        raise PacketDecodeError(f"source connection ID of {scid_length} bytes")
    pos = dcid_end + 1
    scid_end = pos + scid_length
    if scid_end > end:
        raise PacketDecodeError("long header truncated in the source connection ID")
    scid = bytes(data[pos:scid_end])
    pos = scid_end

    if version == VERSION_NEGOTIATION:
        # RFC 8999 §6: a list of 32-bit versions fills the rest of the datagram.
        rest = end - pos
        if rest == 0 or rest % 4:
            raise PacketDecodeError("version negotiation list is empty or not a multiple of 4 bytes")
        versions = struct.unpack(f">{rest // 4}I", data[pos:end])
        return PartialHeader(
            PacketType.VERSION_NEGOTIATION, first, version, dcid, scid, b"", offset, end - offset, -1, versions
        )
    if long_types is None:
        # Not ours to parse further: the caller may answer with Version Negotiation.
        return PartialHeader(PacketType.UNKNOWN_VERSION, first, version, dcid, scid, b"", offset, end - offset, -1)

    if fixed_bit_required and not first & FIXED_BIT:
        # RFC 9000 §17.2: packets with a zero Fixed Bit MUST be discarded.
        raise PacketDecodeError("long header with a zero fixed bit")
    packet_type = long_types[(first >> 4) & 0x03]

    if packet_type is PacketType.RETRY:
        # RFC 9000 §17.2.5: token, then the 16-byte integrity tag, to the end of the datagram.
        tag_start = end - RETRY_INTEGRITY_TAG_LENGTH
        if tag_start < pos:
            raise PacketDecodeError("retry packet shorter than its integrity tag")
        if tag_start == pos:
            # RFC 9000 §17.2.5.2: a client MUST discard a Retry with an empty token.
            raise PacketDecodeError("retry packet with an empty token")
        return PartialHeader(
            packet_type,
            first,
            version,
            dcid,
            scid,
            bytes(data[pos:tag_start]),
            offset,
            end - offset,
            -1,
            (),
            bytes(data[tag_start:end]),
        )

    token = b""
    try:
        if packet_type is PacketType.INITIAL:
            # RFC 9000 §17.2.2: Token Length (i), Token.
            token_length, pos = _varint(data, pos)
            token_end = pos + token_length
            if token_end > end:
                raise PacketDecodeError("initial token runs past the datagram")
            token = bytes(data[pos:token_end])
            pos = token_end
        length, pos = _varint(data, pos)
    except IndexError:
        raise PacketDecodeError("long header truncated") from None
    packet_end = pos + length
    if packet_end > end:
        # RFC 9000 §12.2 / §17.2: the Length field delimits the packet.
        raise PacketDecodeError(f"length field {length} runs past the datagram")
    return _tuple_new(
        PartialHeader,
        (packet_type, first, version, dcid, scid, token, offset, packet_end - offset, pos - offset, (), b""),
    )


def _varint(data: Buffer, pos: int) -> tuple[int, int]:
    # decode_varint raising IndexError rather than BufferReadError (one except clause above).
    first = data[pos]
    size = 1 << (first >> 6)
    if size == 1:
        return first, pos + 1
    end = pos + size
    if end > len(data):
        raise IndexError
    return _from_bytes(data[pos:end], "big") & ((1 << (8 * size - 2)) - 1), end


class SplitDatagram(NamedTuple):
    """The packets of one datagram, each with its header and its bytes, and why
    splitting stopped early (None if the whole datagram was used)."""

    packets: list[tuple[PartialHeader, memoryview]]
    error: Optional[str]


def split_datagram(
    datagram: Buffer, short_dcid_length: int, *, fixed_bit_required: bool = True
) -> SplitDatagram:
    """Split a datagram into its coalesced packets (RFC 9000 §12.2).

    A short-header, Retry, Version Negotiation or unknown-version packet takes
    the rest of the datagram.  A malformed header ends the datagram; so does a
    packet whose Destination Connection ID differs from the first packet's
    (RFC 9000 §12.2: receivers SHOULD ignore such packets).  Never raises.
    """
    view = memoryview(datagram)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    packets: list[tuple[PartialHeader, memoryview]] = []
    offset = 0
    end = len(view)
    first_dcid: Optional[bytes] = None
    while offset < end:
        try:
            header = decode_header(
                view, offset, short_dcid_length=short_dcid_length, fixed_bit_required=fixed_bit_required
            )
        except PacketDecodeError as exc:
            return SplitDatagram(packets, f"packet at offset {offset}: {exc}")
        if first_dcid is None:
            first_dcid = header.destination_cid
        elif header.destination_cid != first_dcid:
            return SplitDatagram(packets, f"packet at offset {offset}: coalesced with a different destination connection ID")
        packet_end = offset + header.length
        packets.append((header, view[offset:packet_end]))
        offset = packet_end
    return SplitDatagram(packets, None)


def check_reserved_bits(first_byte: int) -> None:
    """After header protection is removed and the packet opened: the reserved bits
    MUST be zero, else PROTOCOL_VIOLATION (RFC 9000 §17.2, §17.3.1)."""
    mask = LONG_RESERVED_BITS if first_byte & LONG_HEADER_BIT else SHORT_RESERVED_BITS
    if first_byte & mask:
        raise TransportError.PROTOCOL_VIOLATION("reserved header bits are not zero")


# --- packet numbers ------------------------------------------------------------


def packet_number_length(packet_number: int, largest_acked: Optional[int]) -> int:
    """Bytes (1..4) to send `packet_number` in (RFC 9000 §17.1, A.2).

    The encoding must represent more than twice the range between the largest
    acknowledged packet number and this one; with nothing acknowledged yet,
    the whole range from 0.
    """
    if largest_acked is None or largest_acked < 0:
        unacked = packet_number + 1
    else:
        unacked = packet_number - largest_acked
    if unacked <= 0:
        raise UsageError("packet number not above the largest acknowledged")
    # 2**(8n) > 2 * unacked  <=>  8n >= bit_length(unacked) + 1
    length = (unacked.bit_length() + 8) // 8
    if length > 4:
        raise UsageError("too many packets in flight to encode the packet number")
    return length


def encode_packet_number(packet_number: int, length: int) -> bytes:
    """The low `length` bytes of the packet number."""
    return (packet_number & ((1 << (8 * length)) - 1)).to_bytes(length, "big")


def decode_packet_number(truncated: int, pn_length: int, largest_pn: int) -> int:
    """The full packet number closest to largest_pn + 1 (RFC 9000 A.3).

    `largest_pn` is the largest packet number received in the space, or -1.
    """
    expected = largest_pn + 1
    window = 1 << (8 * pn_length)
    half = window >> 1
    candidate = (expected & ~(window - 1)) | truncated
    if candidate <= expected - half and candidate < (1 << 62) - window:
        return candidate + window
    if candidate > expected + half and candidate >= window:
        return candidate - window
    return candidate


# --- encoding ------------------------------------------------------------------


def _check_cid(cid: Buffer, limit: int = MAX_CID_LENGTH) -> None:
    if len(cid) > limit:
        raise UsageError(f"connection ID of {len(cid)} bytes (at most {limit})")


def encode_long_header(
    version: int,
    packet_type: PacketType,
    destination_cid: bytes,
    source_cid: bytes,
    packet_number: int,
    pn_length: int,
    *,
    token: bytes = b"",
    payload_length: int = 0,
) -> bytearray:
    """A plain Initial, 0-RTT or Handshake header ending with the packet number.

    The Length field is written in 2 bytes: pass `payload_length` (the payload
    plus the AEAD tag, without the packet number) if known, or patch it later
    with set_long_header_length.  Header protection comes later.
    """
    info = VERSIONS.get(version)
    if info is None:
        raise UsageError(f"unsupported QUIC version 0x{version:08x}")
    if packet_type is PacketType.RETRY or not 1 <= pn_length <= 4:
        raise UsageError("long header needs Initial, 0-RTT or Handshake and a 1..4 byte packet number")
    _check_cid(destination_cid)
    _check_cid(source_cid)
    if token and packet_type is not PacketType.INITIAL:
        raise UsageError("only Initial packets carry a token")
    out = bytearray()
    out.append(LONG_HEADER_BIT | FIXED_BIT | (_type_bits(info, packet_type) << 4) | (pn_length - 1))
    out += version.to_bytes(4, "big")
    out.append(len(destination_cid))
    out += destination_cid
    out.append(len(source_cid))
    out += source_cid
    if packet_type is PacketType.INITIAL:
        out += encode_varint(len(token))
        out += token
    out += _length_field(pn_length + payload_length)
    out += encode_packet_number(packet_number, pn_length)
    return out


def _length_field(value: int) -> bytes:
    if not 0 <= value <= MAX_LONG_PACKET_LENGTH:
        raise UsageError(f"long-header packet length {value} does not fit the 2-byte Length field")
    return (value | 0x4000).to_bytes(2, "big")


def set_long_header_length(header: bytearray, payload_length: int) -> None:
    """Patch the Length field of a header from encode_long_header: `payload_length`
    is the protected payload (frames plus the 16-byte AEAD tag)."""
    pn_length = (header[0] & PN_LENGTH_MASK) + 1
    at = len(header) - pn_length - LENGTH_FIELD_SIZE
    header[at : at + LENGTH_FIELD_SIZE] = _length_field(pn_length + payload_length)


def encode_short_header(
    destination_cid: bytes, packet_number: int, pn_length: int, *, key_phase: int = 0, spin: bool = False
) -> bytes:
    """A plain 1-RTT header (RFC 9000 §17.3.1) ending with the packet number."""
    if not 1 <= pn_length <= 4:
        raise UsageError("packet number length must be 1..4")
    _check_cid(destination_cid)
    first = FIXED_BIT | (SPIN_BIT if spin else 0) | (KEY_PHASE_BIT if key_phase else 0) | (pn_length - 1)
    return bytes((first,)) + destination_cid + encode_packet_number(packet_number, pn_length)


def encode_version_negotiation(
    destination_cid: bytes, source_cid: bytes, versions: Sequence[int], unused: int = 0
) -> bytes:
    """A Version Negotiation packet (RFC 9000 §17.2.1, RFC 8999 §6).

    The server echoes the client's CIDs swapped: `destination_cid` is the
    client's Source CID, `source_cid` the client's Destination CID.  `unused`
    is 7 random bits from the caller; the 0x40 bit is always set (§17.2.1:
    SHOULD, for multiplexing with other protocols).
    """
    _check_cid(destination_cid, MAX_INVARIANT_CID_LENGTH)
    _check_cid(source_cid, MAX_INVARIANT_CID_LENGTH)
    if not versions:
        raise UsageError("version negotiation needs at least one version")
    out = bytearray((LONG_HEADER_BIT | FIXED_BIT | (unused & 0x7F),))
    out += bytes(4)
    out.append(len(destination_cid))
    out += destination_cid
    out.append(len(source_cid))
    out += source_cid
    for version in versions:
        out += version.to_bytes(4, "big")
    return bytes(out)


def encode_retry(
    version: int,
    destination_cid: bytes,
    source_cid: bytes,
    token: bytes,
    original_destination_cid: bytes,
    unused: int = 0,
) -> bytes:
    """A Retry packet with its integrity tag (RFC 9000 §17.2.5, RFC 9001 §5.8)."""
    from .crypto import retry_integrity_tag  # the crypto backend loads only when needed

    info = VERSIONS.get(version)
    if info is None:
        raise UsageError(f"unsupported QUIC version 0x{version:08x}")
    _check_cid(destination_cid)
    _check_cid(source_cid)
    _check_cid(original_destination_cid)
    if not token:
        raise UsageError("a Retry carries a non-empty token")  # RFC 9000 §17.2.5.2
    out = bytearray((LONG_HEADER_BIT | FIXED_BIT | (info.type_retry << 4) | (unused & 0x0F),))
    out += version.to_bytes(4, "big")
    out.append(len(destination_cid))
    out += destination_cid
    out.append(len(source_cid))
    out += source_cid
    out += token
    out += retry_integrity_tag(version, original_destination_cid, bytes(out))
    return bytes(out)

