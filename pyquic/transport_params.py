# QUIC transport parameters (RFC 9000 §7.4, §18): the quic_transport_parameters
# TLS extension body.  Owns the QuicTransportParameters dataclass (every §18.2
# parameter, version_information from RFC 9368, max_datagram_frame_size from
# RFC 9221, grease_quic_bit from RFC 9287), its encoder, and its parser with
# every check that needs no connection state.  The connection still compares
# the connection-ID parameters with the IDs it saw (RFC 9000 §7.3).
#
# Fields hold the RFC default when a parameter is absent (so readers never
# meet None for a number); encode() omits parameters equal to their default.
# The connection-ID and token parameters are None when absent.
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, fields
from typing import Optional

from .buffer import BufferReadError, Reader, Writer, decode_varint
from .errors import TransportError, UsageError

MAX_CID_LENGTH = 20
STATELESS_RESET_TOKEN_LENGTH = 16
MAX_STREAMS_LIMIT = 1 << 60


class ParamId:
    """Transport parameter identifiers (RFC 9000 §18.2, RFC 9368 §3, RFC 9221 §3, RFC 9287 §3)."""

    ORIGINAL_DESTINATION_CONNECTION_ID = 0x00
    MAX_IDLE_TIMEOUT = 0x01
    STATELESS_RESET_TOKEN = 0x02
    MAX_UDP_PAYLOAD_SIZE = 0x03
    INITIAL_MAX_DATA = 0x04
    INITIAL_MAX_STREAM_DATA_BIDI_LOCAL = 0x05
    INITIAL_MAX_STREAM_DATA_BIDI_REMOTE = 0x06
    INITIAL_MAX_STREAM_DATA_UNI = 0x07
    INITIAL_MAX_STREAMS_BIDI = 0x08
    INITIAL_MAX_STREAMS_UNI = 0x09
    ACK_DELAY_EXPONENT = 0x0A
    MAX_ACK_DELAY = 0x0B
    DISABLE_ACTIVE_MIGRATION = 0x0C
    PREFERRED_ADDRESS = 0x0D
    ACTIVE_CONNECTION_ID_LIMIT = 0x0E
    INITIAL_SOURCE_CONNECTION_ID = 0x0F
    RETRY_SOURCE_CONNECTION_ID = 0x10
    VERSION_INFORMATION = 0x11
    MAX_DATAGRAM_FRAME_SIZE = 0x20
    GREASE_QUIC_BIT = 0x2AB2


# RFC 9000 §18.2: a client MUST NOT send these; a server receiving one closes
# with TRANSPORT_PARAMETER_ERROR.
SERVER_ONLY_PARAMS = frozenset(
    {
        ParamId.ORIGINAL_DESTINATION_CONNECTION_ID,
        ParamId.STATELESS_RESET_TOKEN,
        ParamId.PREFERRED_ADDRESS,
        ParamId.RETRY_SOURCE_CONNECTION_ID,
    }
)


def is_grease(param_id: int) -> bool:
    """Reserved identifiers 31 * N + 27 (RFC 9000 §18.1): always ignored."""
    return param_id % 31 == 27


@dataclass(frozen=True)
class PreferredAddress:
    """RFC 9000 §18.2 preferred_address.  An address family the server does
    not offer is None (sent as all zeros)."""

    ipv4_address: Optional[tuple[str, int]]
    ipv6_address: Optional[tuple[str, int]]
    connection_id: bytes
    stateless_reset_token: bytes


@dataclass(frozen=True)
class VersionInformation:
    """RFC 9368 §3: the version in use and the versions the sender supports."""

    chosen_version: int
    available_versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class QuicTransportParameters:
    original_destination_connection_id: Optional[bytes] = None
    max_idle_timeout: int = 0  # milliseconds; 0 = no idle timeout
    stateless_reset_token: Optional[bytes] = None
    max_udp_payload_size: int = 65527
    initial_max_data: int = 0
    initial_max_stream_data_bidi_local: int = 0
    initial_max_stream_data_bidi_remote: int = 0
    initial_max_stream_data_uni: int = 0
    initial_max_streams_bidi: int = 0
    initial_max_streams_uni: int = 0
    ack_delay_exponent: int = 3
    max_ack_delay: int = 25  # milliseconds
    disable_active_migration: bool = False
    preferred_address: Optional[PreferredAddress] = None
    active_connection_id_limit: int = 2
    initial_source_connection_id: Optional[bytes] = None
    retry_source_connection_id: Optional[bytes] = None
    version_information: Optional[VersionInformation] = None
    max_datagram_frame_size: int = 0  # RFC 9221: 0 = DATAGRAM not supported
    grease_quic_bit: bool = False  # RFC 9287

    @classmethod
    def parse(cls, data: bytes, *, from_server: bool) -> "QuicTransportParameters":
        return parse_transport_parameters(data, from_server=from_server)

    def encode(self) -> bytes:
        return encode_transport_parameters(self)


# id -> (field name, kind); kind: "int", "cid", "flag", or a special codec name.
_PARAMS: dict[int, tuple[str, str]] = {
    ParamId.ORIGINAL_DESTINATION_CONNECTION_ID: ("original_destination_connection_id", "cid"),
    ParamId.MAX_IDLE_TIMEOUT: ("max_idle_timeout", "int"),
    ParamId.STATELESS_RESET_TOKEN: ("stateless_reset_token", "token"),
    ParamId.MAX_UDP_PAYLOAD_SIZE: ("max_udp_payload_size", "int"),
    ParamId.INITIAL_MAX_DATA: ("initial_max_data", "int"),
    ParamId.INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: ("initial_max_stream_data_bidi_local", "int"),
    ParamId.INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: ("initial_max_stream_data_bidi_remote", "int"),
    ParamId.INITIAL_MAX_STREAM_DATA_UNI: ("initial_max_stream_data_uni", "int"),
    ParamId.INITIAL_MAX_STREAMS_BIDI: ("initial_max_streams_bidi", "int"),
    ParamId.INITIAL_MAX_STREAMS_UNI: ("initial_max_streams_uni", "int"),
    ParamId.ACK_DELAY_EXPONENT: ("ack_delay_exponent", "int"),
    ParamId.MAX_ACK_DELAY: ("max_ack_delay", "int"),
    ParamId.DISABLE_ACTIVE_MIGRATION: ("disable_active_migration", "flag"),
    ParamId.PREFERRED_ADDRESS: ("preferred_address", "preferred_address"),
    ParamId.ACTIVE_CONNECTION_ID_LIMIT: ("active_connection_id_limit", "int"),
    ParamId.INITIAL_SOURCE_CONNECTION_ID: ("initial_source_connection_id", "cid"),
    ParamId.RETRY_SOURCE_CONNECTION_ID: ("retry_source_connection_id", "cid"),
    ParamId.VERSION_INFORMATION: ("version_information", "version_information"),
    ParamId.MAX_DATAGRAM_FRAME_SIZE: ("max_datagram_frame_size", "int"),
    ParamId.GREASE_QUIC_BIT: ("grease_quic_bit", "flag"),
}
_DEFAULTS = {f.name: f.default for f in fields(QuicTransportParameters)}


def _value_problem(name: str, value: object) -> Optional[str]:
    """Why `value` is invalid for parameter `name` (RFC 9000 §18.2), or None."""
    if name == "max_udp_payload_size" and value < 1200:  # type: ignore[operator]
        return "max_udp_payload_size below 1200"
    if name == "ack_delay_exponent" and value > 20:  # type: ignore[operator]
        return "ack_delay_exponent above 20"
    if name == "max_ack_delay" and value >= 1 << 14:  # type: ignore[operator]
        return "max_ack_delay of 2^14 or more"
    if name == "active_connection_id_limit" and value < 2:  # type: ignore[operator]
        return "active_connection_id_limit below 2"
    if name in ("initial_max_streams_bidi", "initial_max_streams_uni") and value > MAX_STREAMS_LIMIT:  # type: ignore[operator]
        return f"{name} above 2^60"  # RFC 9000 §4.6
    return None


def _tpe(reason: str) -> TransportError:
    return TransportError.TRANSPORT_PARAMETER_ERROR(reason)


def _parse_preferred_address(value: bytes) -> PreferredAddress:
    # IPv4 (4) + port (2) + IPv6 (16) + port (2) + CID length (1) + CID + token (16)
    if len(value) < 41:
        raise _tpe("preferred_address too short")
    ipv4, ipv4_port, ipv6, ipv6_port, cid_length = struct.unpack_from(">4sH16sHB", value)
    if not 1 <= cid_length <= MAX_CID_LENGTH:
        # RFC 9000 §18.2: a zero-length CID here is a TRANSPORT_PARAMETER_ERROR.
        raise _tpe(f"preferred_address with a {cid_length}-byte connection ID")
    if len(value) != 25 + cid_length + STATELESS_RESET_TOKEN_LENGTH:
        raise _tpe("preferred_address length does not match its connection ID")
    cid = value[25 : 25 + cid_length]
    token = value[25 + cid_length :]
    v4 = None if ipv4 == bytes(4) and ipv4_port == 0 else (str(ipaddress.IPv4Address(ipv4)), ipv4_port)
    v6 = None if ipv6 == bytes(16) and ipv6_port == 0 else (str(ipaddress.IPv6Address(ipv6)), ipv6_port)
    return PreferredAddress(v4, v6, cid, token)


def _encode_preferred_address(address: PreferredAddress) -> bytes:
    if not 1 <= len(address.connection_id) <= MAX_CID_LENGTH:
        raise UsageError("preferred_address needs a 1..20 byte connection ID")
    if len(address.stateless_reset_token) != STATELESS_RESET_TOKEN_LENGTH:
        raise UsageError("preferred_address needs a 16-byte stateless reset token")
    ipv4, ipv4_port = address.ipv4_address or ("0.0.0.0", 0)
    ipv6, ipv6_port = address.ipv6_address or ("::", 0)
    return (
        struct.pack(
            ">4sH16sHB",
            ipaddress.IPv4Address(ipv4).packed,
            ipv4_port,
            ipaddress.IPv6Address(ipv6).packed,
            ipv6_port,
            len(address.connection_id),
        )
        + address.connection_id
        + address.stateless_reset_token
    )


def _parse_version_information(value: bytes) -> VersionInformation:
    # RFC 9368 §3, §4: a 4-byte chosen version then 4-byte available versions;
    # any other length, or a version 0, is a parse failure.
    if len(value) < 4 or len(value) % 4:
        raise _tpe("version_information length is not a positive multiple of 4")
    versions = struct.unpack(f">{len(value) // 4}I", value)
    if 0 in versions:
        raise _tpe("version_information contains version 0")
    return VersionInformation(versions[0], versions[1:])


def parse_transport_parameters(data: bytes, *, from_server: bool) -> QuicTransportParameters:
    """Parse the extension body sent by a server (`from_server=True`) or a client.

    Raises TransportError.TRANSPORT_PARAMETER_ERROR for anything malformed,
    duplicated, out of range, sent by the wrong role or missing (RFC 9000 §7.3,
    §7.4, §18.2).  Unknown and GREASE identifiers are ignored.
    """
    values: dict[str, object] = {}
    seen: set[int] = set()
    reader = Reader(data)
    try:
        while not reader.eof():
            param_id = reader.pull_varint()
            value = reader.pull_varint_bytes()
            if param_id in seen:
                # RFC 9000 §7.4: SHOULD treat duplicates as TRANSPORT_PARAMETER_ERROR.
                raise _tpe(f"duplicate transport parameter 0x{param_id:x}")
            seen.add(param_id)
            entry = _PARAMS.get(param_id)
            if entry is None or is_grease(param_id):
                continue  # RFC 9000 §7.4.2, §18.1: unknown and reserved ids are ignored
            if not from_server and param_id in SERVER_ONLY_PARAMS:
                raise _tpe(f"client sent server-only transport parameter 0x{param_id:x}")  # §18.2
            name, kind = entry
            if kind == "int":
                number, end = decode_varint(value, 0)
                if end != len(value):
                    raise _tpe(f"{name}: value length does not match its varint")
                problem = _value_problem(name, number)
                if problem:
                    raise _tpe(problem)  # §7.4: invalid values are TRANSPORT_PARAMETER_ERROR
                values[name] = number
            elif kind == "cid":
                if len(value) > MAX_CID_LENGTH:
                    raise _tpe(f"{name} longer than 20 bytes")
                values[name] = value
            elif kind == "token":
                if len(value) != STATELESS_RESET_TOKEN_LENGTH:
                    raise _tpe("stateless_reset_token is not 16 bytes")
                values[name] = value
            elif kind == "flag":
                if value:
                    raise _tpe(f"{name} must be empty")
                values[name] = True
            elif kind == "preferred_address":
                values[name] = _parse_preferred_address(value)
            else:
                values[name] = _parse_version_information(value)
    except BufferReadError as exc:
        raise _tpe(f"truncated transport parameters: {exc}") from None
    # RFC 9000 §7.3: initial_source_connection_id from both, and
    # original_destination_connection_id from a server, MUST be present.
    if "initial_source_connection_id" not in values:
        raise _tpe("initial_source_connection_id missing")
    if from_server and "original_destination_connection_id" not in values:
        raise _tpe("original_destination_connection_id missing from a server")
    return QuicTransportParameters(**values)  # type: ignore[arg-type]


def encode_transport_parameters(params: QuicTransportParameters) -> bytes:
    """The extension body: parameters that differ from their defaults, by id.

    Values out of range raise UsageError.  Which role may send which
    parameter is the caller's to respect (parse checks it on receipt).
    """
    writer = Writer()
    for param_id, (name, kind) in _PARAMS.items():
        value = getattr(params, name)
        if value is None or value == _DEFAULTS[name]:
            continue
        if kind == "int":
            if _value_problem(name, value):
                raise UsageError(_value_problem(name, value))
            body = Writer()
            body.push_varint(value)
            encoded = bytes(body.data)
        elif kind == "cid":
            if len(value) > MAX_CID_LENGTH:
                raise UsageError(f"{name} longer than 20 bytes")
            encoded = value
        elif kind == "token":
            if len(value) != STATELESS_RESET_TOKEN_LENGTH:
                raise UsageError("stateless_reset_token must be 16 bytes")
            encoded = value
        elif kind == "flag":
            encoded = b""
        elif kind == "preferred_address":
            encoded = _encode_preferred_address(value)
        else:
            versions = (value.chosen_version, *value.available_versions)
            if 0 in versions:
                raise UsageError("version_information cannot carry version 0")
            encoded = struct.pack(f">{len(versions)}I", *versions)
        writer.push_varint(param_id)
        writer.push_varint_bytes(encoded)
    return writer.getvalue()



def check_connection_ids(
    params: QuicTransportParameters,
    *,
    initial_scid: Optional[bytes],
    original_dcid: Optional[bytes] = None,
    retry_scid: Optional[bytes] = None,
    retried: bool = False,
) -> None:
    """RFC 9000 §7.3: the connection IDs the peer's parameters name must be
    the ones its packets used (TRANSPORT_PARAMETER_ERROR otherwise).  A
    client passes the ID it first sent to (`original_dcid`) and, after a
    Retry (`retried`), the Retry's Source CID."""
    if params.initial_source_connection_id != initial_scid:
        raise _tpe("initial_source_connection_id does not match")
    if original_dcid is None:
        return  # the server's view: the client names only its own ID
    if params.original_destination_connection_id != original_dcid:
        raise _tpe("original_destination_connection_id does not match")
    if retried and params.retry_source_connection_id != retry_scid:
        raise _tpe("retry_source_connection_id does not match the Retry")
    if not retried and params.retry_source_connection_id is not None:
        raise _tpe("retry_source_connection_id without a Retry")
