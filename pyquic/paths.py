# The peer's address and its validation (RFC 9000 §8.2, §9).  PathValidator
# owns
#   - which addresses the peer has proven it owns (the handshake's, and each
#     one a PATH_RESPONSE answered; a few, newest kept);
#   - the one outstanding path validation: the PATH_CHALLENGE data (and the
#     frames waiting to carry it), the address it probes, when to send a
#     fresh challenge (each PTO) and when to give up (§8.2.4: three times the
#     larger of the current PTO and a new path's PTO);
#   - the address to fall back to when validation fails (§9.3.2);
#   - datagrams for a path other than the one in use (OffPath): a
#     PATH_RESPONSE goes back on the path its PATH_CHALLENGE came from
#     (§8.2.2), from a server with a PATH_CHALLENGE of its own, so that path
#     is proven both ways before it moves there (§9.6.2: its preferred address),
#     and a client's challenges to an address it has not moved to
#     yet (a server's preferred address, §9.6.1) go there, each alone in a
#     datagram expanded to 1200 bytes where the 3x limit allows (§8.2.1);
#   - the decision that the peer migrated (a non-probing packet with the
#     largest packet number so far, from another address, after the
#     handshake is confirmed, and only on a server: §9.3), and what that
#     means for congestion and RTT (reset through the LossRecovery it is
#     handed, unless only the port changed: §9.4).
# PathInUse owns the path the connection sends on: the peer's address and
# ours (a server on more than one address is told which one each datagram
# came to), whether the peer's address is proven, the datagram being read
# (its size, whether it came on another path) and the 3x anti-amplification
# accounting (§8.1), counted afresh on a new unproven address.
# PathValidator never touches the connection: it returns what the connection should do
# (Migration: switch the network path, take a fresh peer connection ID
# when the peer took a new one of ours (§9.5), count anti-amplification
# afresh on an unproven path; the address a PATH_RESPONSE proved;
# ValidationOutcome: fall back, or close).  The connection applies them to
# its PathInUse and keeps the stats.
# Which frames are probing (§9.1: a packet of only these never moves the
# connection) is frame_types.PROBING_FRAME_TYPES; is_probing applies it to
# parsed frames.  Randomness comes in; no clock is read here.
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Sequence

from .frame_types import PROBING_FRAME_TYPES
from .frames import PathChallenge, PathResponse
from .recovery import K_INITIAL_RTT

if TYPE_CHECKING:  # pragma: no cover
    from .recovery import LossRecovery

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
    fallback: Any  # where to go back to (None: nowhere proven: close)
    addr: Any = None  # the address given up on
    elsewhere: bool = False  # ... which was not the path in use (nothing to fall back from)


class OffPath(NamedTuple):
    """A datagram for another path than the one in use."""

    frames: tuple  # PATH_CHALLENGE / PATH_RESPONSE frames, alone in a 1-RTT packet
    addr: Any  # the peer's address on that path
    local: Any  # ours (None: the one in use)
    pad: bool  # expanded to 1200 bytes (§8.2.1)


class Migration(NamedTuple):
    """The peer moved (§9.3): what following it asks of the connection."""

    addr: Any  # the new network path
    new_peer_cid: bool  # §9.5: the peer took a new connection ID of ours: we take one of its
    validated: bool  # a proven address; else the 3x limit counts afresh from this datagram (§8.1)


class PathInUse:
    """The path a connection sends on; see the module header."""

    __slots__ = ("addr", "local", "validated", "received", "sent", "datagram_size", "datagram_local", "new_address")

    def __init__(self, validated: bool) -> None:
        self.addr: Any = None  # the peer's address (None: not known yet)
        self.local: Any = None  # ours, as receive_datagram was told (None: the only one)
        self.validated = validated  # the peer proved it owns addr (§8.1)
        self.received = 0  # bytes from addr, and sent to it, while unproven (the 3x limit)
        self.sent = 0
        self.datagram_size = 0  # the datagram being read: its size,
        self.datagram_local: Any = None  # the local address it came to,
        self.new_address: Any = None  # and its source, when it came on another path (else None)

    def on_datagram(self, addr: Any, size: int) -> None:
        """A datagram from `addr` (to datagram_local) is about to be read."""
        self.datagram_size = size
        self.received += size
        if self.addr is None:
            self.addr, self.local = addr, self.datagram_local
        self.new_address = None if addr == self.addr and self.datagram_local == self.local else addr

    @property
    def budget(self) -> int:
        """Bytes we may still send (§8.1: three times what arrived, until proven)."""
        return 1 << 30 if self.validated else 3 * self.received - self.sent

    @property
    def blocked(self) -> bool:
        return not self.validated and 3 * self.received - self.sent < 64

    def switch(self, addr: Any, validated: bool, local: Any) -> None:
        """Send to `addr` from `local` from now on; an unproven address counts
        the 3x limit afresh from the datagram being read (§8.1, §9.3)."""
        self.addr, self.local, self.validated = addr, local, validated
        if not validated:
            self.received = self.datagram_size
            self.sent = 0


class PathValidator:
    """One connection's view of its peer's addresses; see the module header."""

    def __init__(self, entropy: Callable[[int], bytes], *, follows_peer: bool = True) -> None:
        self._entropy = entropy
        self._follows_peer = follows_peer  # a server follows; a client keeps its own path
        self.validated: list = []  # proven addresses, oldest first
        self.fallback: Any = None  # last proven address before the probed one
        self.probing: Any = None  # the address under validation
        # Containers stay the shared empty tuple until a path is probed: an
        # idle connection keeps none of its own.
        self._sent: Sequence[bytes] = ()  # challenge data outstanding on the probed path
        self.resend_at: Optional[float] = None
        self.deadline: Optional[float] = None
        self.frames: Sequence = ()  # PATH_CHALLENGE frames waiting to be sent
        self.elsewhere = False  # the probed address is not the path in use: its challenges go as OffPath
        self.off_path: Sequence[OffPath] = ()  # datagrams for other paths, waiting to be sent
        self._asked_elsewhere: Optional[dict[bytes, Any]] = None  # our challenges sent with those responses -> address
        # (How many migrations, validations and failures: the connection's stats.)

    # -- addresses ---------------------------------------------------------------
    def is_validated(self, addr: Any) -> bool:
        return addr in self.validated

    def mark_validated(self, addr: Any) -> None:
        if addr in self.validated:
            self.validated.remove(addr)
        self.validated.append(addr)
        del self.validated[:-MAX_VALIDATED_ADDRESSES]

    # -- migration -----------------------------------------------------------------
    def on_packet_from_new_address(
        self,
        addr: Any,
        frames: list,
        newest: bool,
        *,
        current: Any,
        current_validated: bool,
        dcid_changed: bool,
        confirmed: bool,
        now: float,
        loss: "LossRecovery",
    ) -> Optional[Migration]:
        """A 1-RTT packet (its parsed `frames`; `newest`: it has the largest
        packet number so far) came from `addr`, not from `current`, the
        path in use: the Migration to apply if the peer moved there."""
        if not self._follows_peer or not confirmed:
            return None
        if not newest or is_probing(frames):
            return None  # reordered, or a probe: answered, but the path stays
        if current_validated:
            self.mark_validated(current)
        if not same_host(addr, current):
            loss.reset_path(now)  # §9.4: a new host is a new path for congestion and RTT
        if self.is_validated(addr):
            self.stop()  # back on a proven address
            return Migration(addr, dcid_changed, True)
        self.start(addr, current, now, loss.probe_timeout())  # (the PTO after any reset)
        return Migration(addr, dcid_changed, False)

    # -- validation ----------------------------------------------------------------
    def start(self, addr: Any, previous: Any, now: float, pto: float, elsewhere: bool = False) -> None:
        """Probe `addr`, which the connection has just moved to from `previous`."""
        if self.is_validated(previous):
            self.fallback = previous
        self.probing = addr
        self.elsewhere = elsewhere
        self._sent = []
        # §8.2.4: 3 x max(current PTO, a new path's PTO); the latter, from
        # kInitialRtt, is about 3 x kInitialRtt.
        self.deadline = now + 3 * max(pto, 3 * K_INITIAL_RTT)
        self._challenge(now, pto)

    def probe_elsewhere(self, addr: Any, now: float, pto: float) -> None:
        """Validate `addr` while staying on the path in use (a client and its
        server's preferred address): the challenges go there as OffPath."""
        self.start(addr, None, now, pto, elsewhere=True)

    def _challenge(self, now: float, pto: float) -> None:
        data = self._entropy(CHALLENGE_LENGTH)
        self._sent.append(data)
        del self._sent[:-MAX_OUTSTANDING_CHALLENGES]
        if self.elsewhere:
            self.off_path = [*self.off_path, OffPath((PathChallenge(data),), self.probing, None, True)]
        else:
            self.frames = [PathChallenge(data)]
        self.resend_at = now + pto

    def respond_elsewhere(self, frame: PathResponse, addr: Any, local: Any, pad: bool, limit: int) -> None:
        """A PATH_RESPONSE for a challenge that came on another path (§8.2.2),
        and, from a server (which may move there), a challenge of ours with
        it; only the newest `limit` wait."""
        frames: tuple = (frame,)
        if self._follows_peer:
            data = self._entropy(CHALLENGE_LENGTH)
            asked = self._asked_elsewhere
            if asked is None:
                asked = self._asked_elsewhere = {}
            asked[data] = addr
            while len(asked) > MAX_OUTSTANDING_CHALLENGES:
                del asked[next(iter(asked))]
            frames = (frame, PathChallenge(data))
        self.off_path = [*self.off_path, OffPath(frames, addr, local, pad)][-limit:]

    def take_off_path(self) -> Sequence[OffPath]:
        items, self.off_path = self.off_path, ()
        return items

    def on_response(self, data: bytes) -> Any:
        """A PATH_RESPONSE: the address it proves, or None (not ours, or late)."""
        elsewhere = self._asked_elsewhere.pop(data, None) if self._asked_elsewhere else None
        if elsewhere is not None:
            self.mark_validated(elsewhere)
            return elsewhere
        if self.probing is None or data not in self._sent:
            return None
        addr = self.probing
        self.mark_validated(addr)
        self.stop()
        return addr

    def stop(self) -> None:
        """No validation outstanding (proven, given up, or back on a proven address)."""
        self.probing = None
        self.elsewhere = False
        self._sent = ()
        self.resend_at = self.deadline = None
        self.frames = ()

    def take_frames(self) -> Sequence:
        frames, self.frames = self.frames, ()
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
            outcome = ValidationOutcome(True, self.fallback, self.probing, self.elsewhere)
            self.stop()
            return outcome
        if self.resend_at is not None and now >= self.resend_at:
            self._challenge(now, pto)
        return None


__all__ = [
    "MAX_VALIDATED_ADDRESSES",
    "Migration",
    "OffPath",
    "PathInUse",
    "PathValidator",
    "ValidationOutcome",
    "is_probing",
    "same_host",
]
