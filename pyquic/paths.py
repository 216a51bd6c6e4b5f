# The peer's address and its validation (RFC 9000 §8.2, §9).  Owns
#   - which addresses the peer has proven it owns (the handshake's, and each
#     one a PATH_RESPONSE answered; a few, newest kept);
#   - the one outstanding path validation: the PATH_CHALLENGE data, the
#     address it probes, when to send a fresh challenge (each PTO) and when
#     to give up (§8.2.4: three times the larger of the current PTO and a
#     new path's PTO);
#   - the address to fall back to when validation fails (§9.3.2).
# Which frames are probing (§9.1: a packet of only these never moves the
# connection) is frame_types.PROBING_FRAME_TYPES; is_probing applies it to
# parsed frames.
# And the connection's side of it, as functions of the connection (like the
# packet builder's): when the peer migrated (a non-probing packet with the
# largest packet number so far, from another address, after the handshake is
# confirmed: §9.3) and the consequences (anti-amplification on the new path,
# congestion and RTT reset unless only the port changed: §9.4, a fresh
# connection ID when the peer took one: §9.5), PATH_RESPONSE, the timer.
# Randomness comes in; no clock is read here.
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from . import events
from .errors import ErrorCode
from .frame_types import PROBING_FRAME_TYPES
from .frames import PathChallenge
from .recovery import K_INITIAL_RTT

if TYPE_CHECKING:  # pragma: no cover
    from .connection import QuicConnection
    from .spaces import Space

MAX_VALIDATED_ADDRESSES = 4  # addresses remembered as proven
CHALLENGE_LENGTH = 8
MAX_OUTSTANDING_CHALLENGES = 8  # sent on the probed path; any one's response proves it


def is_probing(frames: list) -> bool:
    """RFC 9000 §9.1: True if every (parsed) frame is a probing frame."""
    return all(frame.TYPE in PROBING_FRAME_TYPES for frame in frames)


def same_host(a: Any, b: Any) -> bool:
    """Only the port differs (a NAT rebinding, §9.4: congestion state may stay)."""
    return a is not None and b is not None and tuple(a)[0] == tuple(b)[0]


class ValidationOutcome(NamedTuple):
    """What a due path timer asks of the connection."""

    failed: bool  # give up on the probed address
    fallback: Any  # where to go back to (None: nowhere proven)


class PathValidator:
    """One connection's view of its peer's addresses; see the module header."""

    def __init__(self, entropy: Callable[[int], bytes]) -> None:
        self._entropy = entropy
        self.validated: list = []  # proven addresses, oldest first
        self.fallback: Any = None  # last proven address before the probed one
        self.probing: Any = None  # the address under validation
        self._sent: list[bytes] = []  # challenge data outstanding on the probed path
        self.resend_at: Optional[float] = None
        self.deadline: Optional[float] = None
        self.frames: list = []  # PATH_CHALLENGE frames waiting to be sent
        # (How many migrations, validations and failures: the connection's stats.)

    # -- addresses ---------------------------------------------------------------
    def is_validated(self, addr: Any) -> bool:
        return addr in self.validated

    def mark_validated(self, addr: Any) -> None:
        if addr in self.validated:
            self.validated.remove(addr)
        self.validated.append(addr)
        del self.validated[:-MAX_VALIDATED_ADDRESSES]

    # -- validation ----------------------------------------------------------------
    def start(self, addr: Any, previous: Any, now: float, pto: float) -> None:
        """Probe `addr`, which the connection has just moved to from `previous`."""
        if self.is_validated(previous):
            self.fallback = previous
        self.probing = addr
        self._sent = []
        # §8.2.4: 3 x max(current PTO, a new path's PTO); the latter, from
        # kInitialRtt, is about 3 x kInitialRtt.
        self.deadline = now + 3 * max(pto, 3 * K_INITIAL_RTT)
        self._challenge(now, pto)

    def _challenge(self, now: float, pto: float) -> None:
        data = self._entropy(CHALLENGE_LENGTH)
        self._sent.append(data)
        del self._sent[:-MAX_OUTSTANDING_CHALLENGES]
        self.frames = [PathChallenge(data)]
        self.resend_at = now + pto

    def on_response(self, data: bytes) -> Any:
        """A PATH_RESPONSE: the address it proves, or None (not ours, or late)."""
        if self.probing is None or data not in self._sent:
            return None
        addr = self.probing
        self.mark_validated(addr)
        self.stop()
        return addr

    def stop(self) -> None:
        """No validation outstanding (proven, given up, or back on a proven address)."""
        self.probing = None
        self._sent = []
        self.resend_at = self.deadline = None
        self.frames = []

    def take_frames(self) -> list:
        frames, self.frames = self.frames, []
        return frames

    # -- timers -----------------------------------------------------------------------
    @property
    def timer(self) -> Optional[float]:
        if self.deadline is None:
            return None
        return min(self.deadline, self.resend_at) if self.resend_at is not None else self.deadline

    def on_timer(self, now: float, pto: float) -> Optional[ValidationOutcome]:
        """A fresh challenge when one is due; the outcome when the deadline passed."""
        if self.deadline is None:
            return None
        if now >= self.deadline:
            fallback = self.fallback
            self.stop()
            return ValidationOutcome(True, fallback)
        if self.resend_at is not None and now >= self.resend_at:
            self._challenge(now, pto)
        return None


# -- the connection's side ------------------------------------------------------------


def on_packet_from_new_address(
    c: "QuicConnection", frames: list, pn: int, space: "Space", dcid: bytes, now: float
) -> None:
    """A 1-RTT packet from another address than the path's: maybe follow it."""
    if c.is_client or not c._handshake_confirmed:
        return
    if pn != space.ack.largest_received or is_probing(frames):
        return  # reordered, or a probe: answered, but the path stays
    addr, old = c._new_address, c._network_path
    c._new_address = None
    paths = c._paths
    if c._address_validated:
        paths.mark_validated(old)
    c._network_path = addr
    c._stats.path_migrations += 1
    if dcid != c._last_peer_dcid:
        # §9.5: the peer moved to one of our connection IDs it had not used:
        # we move to one of its own (if it gave us a spare), so the two paths
        # cannot be linked.  A NAT rebinding keeps its ID: so do we.
        c._peer_cids.change()
    if not same_host(addr, old):
        c._loss.reset_path()
    if paths.is_validated(addr):
        paths.stop()  # back on a proven address
        c._address_validated = True
        return
    paths.start(addr, old, now, c._loss.probe_timeout())
    c._address_validated = False
    c._bytes_received = c._datagram_size
    c._bytes_sent = 0


def on_path_response(c: "QuicConnection", data: bytes) -> None:
    addr = c._paths.on_response(data)
    if addr is not None:
        c._stats.paths_validated += 1
        if addr == c._network_path:
            c._address_validated = True
            c._amplification_blocked = False


def on_path_timer(c: "QuicConnection", now: float) -> None:
    outcome = c._paths.on_timer(now, c._loss.probe_timeout())
    if outcome is None or not outcome.failed:
        return
    # §9.3.2: back to the last proven address, or give up.
    c._stats.path_validation_failures += 1
    if outcome.fallback is None:
        c._close_event = events.ConnectionTerminated(ErrorCode.NO_ERROR, None, "Path validation failed")
        c._terminate()
        return
    c._network_path = outcome.fallback
    c._address_validated = True
    c._amplification_blocked = False


__all__ = [
    "MAX_VALIDATED_ADDRESSES",
    "PathValidator",
    "ValidationOutcome",
    "is_probing",
    "on_packet_from_new_address",
    "on_path_response",
    "on_path_timer",
    "same_host",
]
