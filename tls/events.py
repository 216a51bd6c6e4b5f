# The events the engine hands to its carrier (QUIC connection or TLS record
# layer).  They are frozen values returned in a list, never callbacks, and the
# carrier applies them in list order: that order is part of the contract
# (documented per handshake mode in tls/engine.py's header).
#
# Secrets cross the seam, keys do not: KeyReady carries the traffic secret and
# the carrier derives its own packet/record keys from it.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .enums import Direction, Level

# The three events every handshake makes most of (a dozen per side) define
# __init__ themselves: a frozen dataclass's generated __init__ assigns each
# field through object.__setattr__, about twice the cost of filling __dict__.
# Fields, defaults, repr, eq and frozenness are the dataclass's as before.


@dataclass(frozen=True)
class HandshakeDataReady:
    """Handshake bytes to send at `level` (one or more whole messages)."""

    level: Level
    data: bytes

    def __init__(self, level: Level, data: bytes) -> None:
        d = self.__dict__
        d["level"] = level
        d["data"] = data

    def __repr__(self) -> str:
        return f"HandshakeDataReady({self.level.name}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class KeyReady:
    """A traffic secret for (level, direction) is ready; install it now.

    For TCP, a WRITE key applies to everything written after this event and a
    READ key to every record after the message that triggered it.
    """

    level: Level
    direction: Direction
    cipher_suite: int
    secret: bytes = field(repr=False)

    def __init__(self, level: Level, direction: Direction, cipher_suite: int, secret: bytes) -> None:
        d = self.__dict__
        d["level"] = level
        d["direction"] = direction
        d["cipher_suite"] = cipher_suite
        d["secret"] = secret

    def __repr__(self) -> str:
        return f"KeyReady({self.level.name}, {self.direction.name}, 0x{self.cipher_suite:04x})"


@dataclass(frozen=True)
class PeerTransportParameters:
    """The peer's quic_transport_parameters extension body (QUIC profile)."""

    data: bytes = field(repr=False)


@dataclass(frozen=True)
class HandshakeCompleted:
    """The handshake is complete: both Finished messages are verified/sent."""

    alpn: str | None
    resumed: bool
    early_data_accepted: bool
    cipher_suite: int
    group: int | None  # None for psk_ke (no (EC)DHE)
    signature_scheme: int | None = None  # the peer's CertificateVerify scheme
    server_name: str | None = None
    peer_certificates: tuple[Any, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class EarlyDataRejected:
    """Client only: the server rejected 0-RTT (or sent a HelloRetryRequest).

    Everything sent with the EARLY_DATA key was lost and must be resent under
    the APPLICATION key if still wanted.
    """


@dataclass(frozen=True)
class TicketReceived:
    """Client only: a NewSessionTicket became a resumable ticket (tls.tickets.Ticket)."""

    ticket: Any = field(repr=False)


@dataclass(frozen=True)
class KeyLog:
    """One NSS key log line's worth: `label client_random_hex secret_hex`."""

    label: str
    client_random: bytes = field(repr=False)
    secret: bytes = field(repr=False)

    def __init__(self, label: str, client_random: bytes, secret: bytes) -> None:
        d = self.__dict__
        d["label"] = label
        d["client_random"] = client_random
        d["secret"] = secret

    def line(self) -> str:
        return f"{self.label} {self.client_random.hex()} {self.secret.hex()}"


Event = (
    HandshakeDataReady
    | KeyReady
    | PeerTransportParameters
    | HandshakeCompleted
    | EarlyDataRejected
    | TicketReceived
    | KeyLog
)

__all__ = [
    "Event",
    "HandshakeDataReady",
    "KeyReady",
    "PeerTransportParameters",
    "HandshakeCompleted",
    "EarlyDataRejected",
    "TicketReceived",
    "KeyLog",
]
