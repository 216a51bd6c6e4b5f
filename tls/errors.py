# The three ways a TLS operation fails, kept apart as h11 keeps local and
# remote errors apart:
#   AlertError  - we abort the handshake/connection and send this alert;
#   PeerAlert   - the peer sent a fatal alert (or close_notify);
#   UsageError  - the caller used the API wrongly; nothing goes on the wire.
# Any other exception escaping the engine is a bug.
from __future__ import annotations

from .enums import AlertDescription


class TLSError(Exception):
    """Base class of every error the tls package raises on purpose."""


class AlertError(TLSError):
    """A fatal alert this side sends: the engine is failed from now on."""

    def __init__(self, description: AlertDescription | int, reason: str = "") -> None:
        self.description = AlertDescription(description)
        self.reason = reason
        super().__init__(f"{self.description.name}: {reason}" if reason else self.description.name)


class PeerAlert(TLSError):
    """The peer sent an alert."""

    def __init__(self, description: int, level: int = 2) -> None:
        try:
            self.description: AlertDescription | int = AlertDescription(description)
            name = self.description.name
        except ValueError:
            self.description = description
            name = f"alert {description}"
        self.level = level
        super().__init__(f"peer sent {name}")


class UsageError(TLSError):
    """The caller misused the API (wrong state, bad argument); not a protocol error."""
