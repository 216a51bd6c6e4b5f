# QUIC frame types and the rules about them, as data: which frame type may
# appear in which packet type (RFC 9000 §12.4, Table 3, and §12.5; RFC 9221 §4
# for DATAGRAM), which frames only a server sends (§19.7, §19.20), and the
# classification of the "Spec" column (ack-eliciting, in flight, probing,
# flow controlled; RFC 9002 §2).  check_frame_allowed raises the wire error;
# frames.py's parser reads the same tables through 64-entry vectors.
from __future__ import annotations

from enum import IntEnum
from typing import Optional

from .errors import TransportError, UsageError
from .packet import PacketType


class FrameType(IntEnum):
    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    ACK_ECN = 0x03
    RESET_STREAM = 0x04
    STOP_SENDING = 0x05
    CRYPTO = 0x06
    NEW_TOKEN = 0x07
    STREAM = 0x08  # 0x08..0x0f: | OFF 0x04 | LEN 0x02 | FIN 0x01
    MAX_DATA = 0x10
    MAX_STREAM_DATA = 0x11
    MAX_STREAMS_BIDI = 0x12
    MAX_STREAMS_UNI = 0x13
    DATA_BLOCKED = 0x14
    STREAM_DATA_BLOCKED = 0x15
    STREAMS_BLOCKED_BIDI = 0x16
    STREAMS_BLOCKED_UNI = 0x17
    NEW_CONNECTION_ID = 0x18
    RETIRE_CONNECTION_ID = 0x19
    PATH_CHALLENGE = 0x1A
    PATH_RESPONSE = 0x1B
    CONNECTION_CLOSE = 0x1C
    CONNECTION_CLOSE_APP = 0x1D
    HANDSHAKE_DONE = 0x1E
    DATAGRAM = 0x30  # RFC 9221: no length, runs to the end of the packet
    DATAGRAM_LEN = 0x31


STREAM_OFF_BIT = 0x04
STREAM_LEN_BIT = 0x02
STREAM_FIN_BIT = 0x01

# --- the legality table (RFC 9000 §12.4, Table 3) -------------------------------
# The "Pkts" column as the RFC prints it: I = Initial, H = Handshake, 0 = 0-RTT,
# 1 = 1-RTT.  "ih01" for CONNECTION_CLOSE means only type 0x1c may appear in
# Initial and Handshake packets, so the two types have separate rows.
# RETIRE_CONNECTION_ID is "__01" in Table 3, but §12.5 lists it among the frames
# that cannot be sent in 0-RTT and lets a server treat it as PROTOCOL_VIOLATION
# there; we do.  DATAGRAM: RFC 9221 §4 (0-RTT and 1-RTT only).
_PKTS_COLUMN = {
    FrameType.PADDING: "IH01",
    FrameType.PING: "IH01",
    FrameType.ACK: "IH_1",
    FrameType.ACK_ECN: "IH_1",
    FrameType.RESET_STREAM: "__01",
    FrameType.STOP_SENDING: "__01",
    FrameType.CRYPTO: "IH_1",
    FrameType.NEW_TOKEN: "___1",
    **{FrameType.STREAM + bits: "__01" for bits in range(8)},
    FrameType.MAX_DATA: "__01",
    FrameType.MAX_STREAM_DATA: "__01",
    FrameType.MAX_STREAMS_BIDI: "__01",
    FrameType.MAX_STREAMS_UNI: "__01",
    FrameType.DATA_BLOCKED: "__01",
    FrameType.STREAM_DATA_BLOCKED: "__01",
    FrameType.STREAMS_BLOCKED_BIDI: "__01",
    FrameType.STREAMS_BLOCKED_UNI: "__01",
    FrameType.NEW_CONNECTION_ID: "__01",
    FrameType.RETIRE_CONNECTION_ID: "___1",  # §12.5, see above
    FrameType.PATH_CHALLENGE: "__01",
    FrameType.PATH_RESPONSE: "___1",
    FrameType.CONNECTION_CLOSE: "IH01",
    FrameType.CONNECTION_CLOSE_APP: "__01",
    FrameType.HANDSHAKE_DONE: "___1",
    FrameType.DATAGRAM: "__01",
    FrameType.DATAGRAM_LEN: "__01",
}
_COLUMN_LETTERS = (
    ("I", PacketType.INITIAL),
    ("H", PacketType.HANDSHAKE),
    ("0", PacketType.ZERO_RTT),
    ("1", PacketType.ONE_RTT),
)
FRAME_PACKETS: dict[int, frozenset[PacketType]] = {
    int(ft): frozenset(pt for (letter, pt), mark in zip(_COLUMN_LETTERS, column) if mark == letter)
    for ft, column in _PKTS_COLUMN.items()
}
KNOWN_FRAME_TYPES = frozenset(FRAME_PACKETS)
FRAME_CARRYING_PACKETS = frozenset(pt for _, pt in _COLUMN_LETTERS)

# Frames only a server may send: a server receiving one closes with
# PROTOCOL_VIOLATION (RFC 9000 §19.7 NEW_TOKEN, §19.20 HANDSHAKE_DONE).
SERVER_ONLY_FRAME_TYPES = frozenset({FrameType.NEW_TOKEN, FrameType.HANDSHAKE_DONE})

# The "Spec" column of Table 3 and RFC 9002 §2.
# N: not ack-eliciting.  C: does not count toward bytes in flight.
# P: probing (path validation may send packets of only these).  F: flow controlled.
NON_ACK_ELICITING_FRAME_TYPES = frozenset(
    {FrameType.PADDING, FrameType.ACK, FrameType.ACK_ECN, FrameType.CONNECTION_CLOSE, FrameType.CONNECTION_CLOSE_APP}
)
NOT_IN_FLIGHT_FRAME_TYPES = frozenset(
    {FrameType.ACK, FrameType.ACK_ECN, FrameType.CONNECTION_CLOSE, FrameType.CONNECTION_CLOSE_APP}
)
PROBING_FRAME_TYPES = frozenset(
    {FrameType.PADDING, FrameType.NEW_CONNECTION_ID, FrameType.PATH_CHALLENGE, FrameType.PATH_RESPONSE}
)
FLOW_CONTROLLED_FRAME_TYPES = frozenset(FrameType.STREAM + bits for bits in range(8))


def is_ack_eliciting(frame_type: int) -> bool:
    return frame_type not in NON_ACK_ELICITING_FRAME_TYPES


def counts_in_flight(frame_type: int) -> bool:
    return frame_type not in NOT_IN_FLIGHT_FRAME_TYPES


def is_probing(frame_type: int) -> bool:
    return frame_type in PROBING_FRAME_TYPES


def check_frame_allowed(frame_type: int, packet_type: PacketType, *, from_server: Optional[bool] = None) -> None:
    """Raise unless `frame_type` may arrive in a `packet_type` packet.

    Unknown type: FRAME_ENCODING_ERROR (§12.4).  Known type in the wrong packet
    type, or a server-only frame sent by a client (`from_server=False`):
    PROTOCOL_VIOLATION (§12.4, §19.7, §19.20).
    """
    packets = FRAME_PACKETS.get(frame_type)
    if packets is None:
        raise TransportError.FRAME_ENCODING_ERROR("unknown frame type", frame_type=frame_type)
    if packet_type not in FRAME_CARRYING_PACKETS:
        raise UsageError(f"{packet_type!r} packets carry no frames")
    if packet_type not in packets:
        raise TransportError.PROTOCOL_VIOLATION(
            f"frame 0x{frame_type:02x} not allowed in {packet_type.name} packets", frame_type=frame_type
        )
    if from_server is False and frame_type in SERVER_ONLY_FRAME_TYPES:
        raise TransportError.PROTOCOL_VIOLATION(
            f"frame 0x{frame_type:02x} is sent only by servers", frame_type=frame_type
        )


def _allowed_vector(packet_type: PacketType, from_server: Optional[bool]) -> tuple[bool, ...]:
    return tuple(
        t in KNOWN_FRAME_TYPES
        and packet_type in FRAME_PACKETS[t]
        and not (from_server is False and t in SERVER_ONLY_FRAME_TYPES)
        for t in range(64)
    )


# (packet type, from_server) -> 64 booleans indexed by one-byte frame type.
_ALLOWED = {
    (pt, fs): _allowed_vector(pt, fs) for pt in FRAME_CARRYING_PACKETS for fs in (None, True, False)
}
_KNOWN = tuple(t in KNOWN_FRAME_TYPES for t in range(64))
_ACK_ELICITING = tuple(t not in NON_ACK_ELICITING_FRAME_TYPES for t in range(64))
# frames.py imports these private vectors; they are derived, never edited by hand.


def frame_name(kind: type) -> str:
    """qlog's name of a frame class: MaxStreamData -> max_stream_data."""
    name = _QLOG_NAMES.get(kind)
    if name is None:
        name = _QLOG_NAMES[kind] = "".join("_" + ch.lower() if ch.isupper() else ch for ch in kind.__name__).lstrip("_")
    return name


_QLOG_NAMES: dict = {}
