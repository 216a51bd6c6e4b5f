# HTTP/3 (RFC 9114) with QPACK (RFC 9204, through pylsqpack), extended CONNECT
# (RFC 9220) and HTTP Datagrams (RFC 9297), sans-I/O over pyquic's
# QuicConnection.  This package re-exports the public names; connection.py
# holds H3Connection, events.py its events, errors.py the codes.
from .connection import H3Connection
from .errors import H3Error, H3ErrorCode, H3UsageError, StreamError
from .events import (
    DatagramReceived, DataReceived, GoAwayReceived, H3Event, Headers, HeadersReceived, SettingsReceived,
    StopSendingReceived, StreamReset, WebTransportStreamDataReceived,
)

__all__ = [
    "H3Connection", "H3Error", "H3ErrorCode", "H3UsageError", "StreamError",
    "H3Event", "Headers", "HeadersReceived", "DataReceived", "DatagramReceived", "WebTransportStreamDataReceived",
    "GoAwayReceived", "SettingsReceived", "StreamReset", "StopSendingReceived",
]
