# The HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6, RFC 9297
# §5.2) and the exceptions that carry them.  A peer's violation raises
# H3Error (a connection error: the QUIC connection closes with its code) or
# StreamError (one request stream is reset with its code); a caller's misuse
# of the API raises H3UsageError, which never reaches the wire.
from __future__ import annotations

from enum import IntEnum


class H3ErrorCode(IntEnum):
    H3_NO_ERROR = 0x100
    H3_GENERAL_PROTOCOL_ERROR = 0x101
    H3_INTERNAL_ERROR = 0x102
    H3_STREAM_CREATION_ERROR = 0x103
    H3_CLOSED_CRITICAL_STREAM = 0x104
    H3_FRAME_UNEXPECTED = 0x105
    H3_FRAME_ERROR = 0x106
    H3_EXCESSIVE_LOAD = 0x107
    H3_ID_ERROR = 0x108
    H3_SETTINGS_ERROR = 0x109
    H3_MISSING_SETTINGS = 0x10A
    H3_REQUEST_REJECTED = 0x10B
    H3_REQUEST_CANCELLED = 0x10C
    H3_REQUEST_INCOMPLETE = 0x10D
    H3_MESSAGE_ERROR = 0x10E
    H3_CONNECT_ERROR = 0x10F
    H3_VERSION_FALLBACK = 0x110
    QPACK_DECOMPRESSION_FAILED = 0x200
    QPACK_ENCODER_STREAM_ERROR = 0x201
    QPACK_DECODER_STREAM_ERROR = 0x202
    H3_DATAGRAM_ERROR = 0x33


class H3Error(Exception):
    """The peer broke HTTP/3: a connection error with this code."""

    def __init__(self, error_code: int, reason: str = "") -> None:
        super().__init__(f"{_name(error_code)}: {reason}" if reason else _name(error_code))
        self.error_code = int(error_code)
        self.reason = reason


class StreamError(H3Error):
    """The peer broke HTTP/3 on one request stream: reset that stream only."""


class H3UsageError(Exception):
    """The caller used the API wrongly (nothing goes on the wire)."""


def _name(code: int) -> str:
    try:
        return H3ErrorCode(code).name
    except ValueError:
        return hex(code)


__all__ = ["H3ErrorCode", "H3Error", "StreamError", "H3UsageError"]
