# The ways a QUIC operation fails, kept apart as tls/errors.py keeps them:
#   TransportError          - we close the connection: the peer broke RFC 9000
#                             (or TLS failed: CRYPTO_ERROR 0x0100+alert); the
#                             error carries its wire code, the offending frame
#                             type and a reason phrase for CONNECTION_CLOSE;
#   ApplicationError        - the application closes with its own code (0x1d);
#   ConnectionClosedByPeer  - the peer sent CONNECTION_CLOSE (either kind);
#   UsageError              - the caller used the API wrongly; nothing goes on
#                             the wire.
# Owns the transport error codes of RFC 9000 §20.1 (and RFC 9368's
# VERSION_NEGOTIATION_ERROR).  Codec-internal errors (BufferReadError,
# PacketDecodeError) live with their codecs and never leave the core.
from __future__ import annotations

from enum import IntEnum
from typing import Callable, Optional

from tls.enums import AlertDescription

CRYPTO_ERROR_BASE = 0x0100  # RFC 9000 §20.1: CRYPTO_ERROR is 0x0100-0x01ff


class ErrorCode(IntEnum):
    """Transport error codes (RFC 9000 §20.1, RFC 9368 §10.2)."""

    NO_ERROR = 0x00
    INTERNAL_ERROR = 0x01
    CONNECTION_REFUSED = 0x02
    FLOW_CONTROL_ERROR = 0x03
    STREAM_LIMIT_ERROR = 0x04
    STREAM_STATE_ERROR = 0x05
    FINAL_SIZE_ERROR = 0x06
    FRAME_ENCODING_ERROR = 0x07
    TRANSPORT_PARAMETER_ERROR = 0x08
    CONNECTION_ID_LIMIT_ERROR = 0x09
    PROTOCOL_VIOLATION = 0x0A
    INVALID_TOKEN = 0x0B
    APPLICATION_ERROR = 0x0C
    CRYPTO_BUFFER_EXCEEDED = 0x0D
    KEY_UPDATE_ERROR = 0x0E
    AEAD_LIMIT_EXCEEDED = 0x0F
    NO_VIABLE_PATH = 0x10
    VERSION_NEGOTIATION_ERROR = 0x11  # RFC 9368


def error_name(code: int) -> str:
    """A readable name for a transport error code, e.g. 'CRYPTO_ERROR(handshake_failure)'."""
    if CRYPTO_ERROR_BASE <= code <= CRYPTO_ERROR_BASE + 0xFF:
        alert = code - CRYPTO_ERROR_BASE
        try:
            return f"CRYPTO_ERROR({AlertDescription(alert).name})"
        except ValueError:
            return f"CRYPTO_ERROR({alert})"
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:x}"


class QuicError(Exception):
    """Base class of every error the pyquic core raises on purpose."""


def _constructor(code: ErrorCode) -> Callable[..., "TransportError"]:
    def make(cls: type[TransportError], reason: str = "", frame_type: Optional[int] = None) -> TransportError:
        return cls(code, reason, frame_type=frame_type)

    make.__name__ = code.name
    make.__doc__ = f"TransportError with code {code.name} (0x{code:02x})."
    return classmethod(make)  # type: ignore[return-value]


class TransportError(QuicError):
    """A transport-level violation we close the connection for (CONNECTION_CLOSE 0x1c).

    Build one with the code's name: ``TransportError.PROTOCOL_VIOLATION("reason")``,
    ``TransportError.FRAME_ENCODING_ERROR("reason", frame_type=0x06)``, or
    ``TransportError.crypto(alert, "reason")`` for a TLS alert.
    """

    def __init__(self, code: int, reason: str = "", *, frame_type: Optional[int] = None) -> None:
        self.code = int(code)
        self.reason = reason
        # The frame type that triggered the error, or None (sent as 0 on the wire).
        self.frame_type = frame_type
        text = error_name(self.code)
        if frame_type is not None:
            text += f" in frame 0x{frame_type:x}"
        super().__init__(f"{text}: {reason}" if reason else text)

    @classmethod
    def crypto(cls, alert_description: int, reason: str = "") -> "TransportError":
        """CRYPTO_ERROR for a TLS alert: code 0x0100 + alert (RFC 9001 §4.8)."""
        if not 0 <= int(alert_description) <= 0xFF:
            raise UsageError(f"alert description out of range: {alert_description}")
        return cls(CRYPTO_ERROR_BASE + int(alert_description), reason)

    @property
    def alert(self) -> Optional[int]:
        """The TLS alert of a CRYPTO_ERROR, else None."""
        if CRYPTO_ERROR_BASE <= self.code <= CRYPTO_ERROR_BASE + 0xFF:
            return self.code - CRYPTO_ERROR_BASE
        return None

    NO_ERROR = _constructor(ErrorCode.NO_ERROR)
    INTERNAL_ERROR = _constructor(ErrorCode.INTERNAL_ERROR)
    CONNECTION_REFUSED = _constructor(ErrorCode.CONNECTION_REFUSED)
    FLOW_CONTROL_ERROR = _constructor(ErrorCode.FLOW_CONTROL_ERROR)
    STREAM_LIMIT_ERROR = _constructor(ErrorCode.STREAM_LIMIT_ERROR)
    STREAM_STATE_ERROR = _constructor(ErrorCode.STREAM_STATE_ERROR)
    FINAL_SIZE_ERROR = _constructor(ErrorCode.FINAL_SIZE_ERROR)
    FRAME_ENCODING_ERROR = _constructor(ErrorCode.FRAME_ENCODING_ERROR)
    TRANSPORT_PARAMETER_ERROR = _constructor(ErrorCode.TRANSPORT_PARAMETER_ERROR)
    CONNECTION_ID_LIMIT_ERROR = _constructor(ErrorCode.CONNECTION_ID_LIMIT_ERROR)
    PROTOCOL_VIOLATION = _constructor(ErrorCode.PROTOCOL_VIOLATION)
    INVALID_TOKEN = _constructor(ErrorCode.INVALID_TOKEN)
    APPLICATION_ERROR = _constructor(ErrorCode.APPLICATION_ERROR)
    CRYPTO_BUFFER_EXCEEDED = _constructor(ErrorCode.CRYPTO_BUFFER_EXCEEDED)
    KEY_UPDATE_ERROR = _constructor(ErrorCode.KEY_UPDATE_ERROR)
    AEAD_LIMIT_EXCEEDED = _constructor(ErrorCode.AEAD_LIMIT_EXCEEDED)
    NO_VIABLE_PATH = _constructor(ErrorCode.NO_VIABLE_PATH)
    VERSION_NEGOTIATION_ERROR = _constructor(ErrorCode.VERSION_NEGOTIATION_ERROR)


class ApplicationError(QuicError):
    """An application-level close (CONNECTION_CLOSE 0x1d) with the application's own code."""

    def __init__(self, code: int, reason: str = "") -> None:
        if not 0 <= code < 1 << 62:
            raise UsageError(f"application error code out of range: {code}")
        self.code = code
        self.reason = reason
        super().__init__(f"application error 0x{code:x}: {reason}" if reason else f"application error 0x{code:x}")


class ConnectionClosedByPeer(QuicError):
    """The peer closed the connection with CONNECTION_CLOSE.

    ``application`` tells which kind (0x1d) it was; ``frame_type`` is only
    meaningful for a transport close.
    """

    def __init__(self, code: int, reason: str = "", *, frame_type: Optional[int] = None, application: bool = False) -> None:
        self.code = code
        self.reason = reason
        self.frame_type = frame_type
        self.application = application
        name = f"application error 0x{code:x}" if application else error_name(code)
        super().__init__(f"peer closed the connection: {name}" + (f": {reason}" if reason else ""))


class UsageError(QuicError):
    """The caller misused the API (wrong state, value out of range); not a protocol error."""
