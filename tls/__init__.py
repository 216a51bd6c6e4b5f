# The tls package: a sans-I/O TLS 1.3 engine (message level) shared by the
# QUIC and TCP carriers.  Public names are re-exported here; see
# ../shared/ARCHITECTURE.md, "The TLS seam", and tls/engine.py for the contract.
from __future__ import annotations

from ._version import __version__
from .config import ClientHelloInfo, Config, ExternalPsk, VerifyMode
from .connection import TLSConnection
from .engine import Engine
from .enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    Direction,
    ExtensionType,
    Group,
    HandshakeType,
    Level,
    PskKeyExchangeMode,
    SignatureScheme,
)
from .errors import AlertError, PeerAlert, TLSError, UsageError
from .events import (
    EarlyDataRejected,
    Event,
    HandshakeCompleted,
    HandshakeDataReady,
    KeyLog,
    KeyReady,
    PeerTransportParameters,
    TicketReceived,
)
from .handshake import Negotiated
from .key_schedule import (
    CIPHER_SUITES,
    derive_secret,
    hkdf_expand,
    hkdf_expand_label,
    hkdf_extract,
    next_traffic_secret,
    traffic_key_iv,
)
from .profile import QUIC, TCP, Profile
from .record import RecordLayer
from .tickets import AntiReplay, Ticket, TicketSealer, TicketStore

__all__ = [
    "AlertDescription",
    "AlertError",
    "AntiReplay",
    "CIPHER_SUITES",
    "CipherSuite",
    "ClientHelloInfo",
    "Config",
    "TLSConnection",
    "RecordLayer",
    "ContentType",
    "Direction",
    "EarlyDataRejected",
    "Engine",
    "Event",
    "ExtensionType",
    "ExternalPsk",
    "Group",
    "HandshakeCompleted",
    "HandshakeDataReady",
    "HandshakeType",
    "KeyLog",
    "KeyReady",
    "Level",
    "Negotiated",
    "PeerAlert",
    "PeerTransportParameters",
    "Profile",
    "PskKeyExchangeMode",
    "QUIC",
    "SignatureScheme",
    "TCP",
    "TLSError",
    "TicketReceived",
    "Ticket",
    "TicketSealer",
    "TicketStore",
    "UsageError",
    "VerifyMode",
    "derive_secret",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_extract",
    "next_traffic_secret",
    "traffic_key_iv",
]

