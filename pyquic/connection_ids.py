# Connection IDs of one connection (RFC 9000 §5.1, §10.3, §19.15-16).  Owns
#   - stateless reset tokens, derived from a static key with HMAC so an
#     endpoint that lost the connection can recompute the token of a CID
#     (stateless_reset_token);
#   - LocalConnectionIds: the IDs we issue (the peer's Destination CIDs):
#     sequence numbers, NEW_CONNECTION_ID frames to send and resend, retiring
#     on RETIRE_CONNECTION_ID with its checks, keeping the peer supplied up to
#     its active_connection_id_limit, and asking it to move off every ID
#     issued so far (rotate: fresh IDs carrying Retire Prior To, §5.1.2);
#   - PeerConnectionIds: the IDs the peer issued (our Destination CIDs): the
#     one in use, spares, retire_prior_to, RETIRE_CONNECTION_ID frames to
#     send, the CONNECTION_ID_LIMIT_ERROR cap, and the reset tokens that
#     identify a stateless reset: only those of the ID in use and of IDs we
#     used until the peer acknowledged their retirement (§10.3.1), never a
#     spare's nor one retired long ago.
# Frames come in and go out as frames.py tuples; the connection routes them.
from __future__ import annotations

import hashlib
import hmac
from typing import Callable, Optional

from .errors import TransportError, UsageError
from .frames import FrameType, NewConnectionId, RetireConnectionId

STATELESS_RESET_TOKEN_LENGTH = 16


def stateless_reset_token(key: bytes, connection_id: bytes) -> bytes:
    """RFC 9000 §10.3.2: a token only the holder of `key` can compute for a CID."""
    return hmac.new(key, connection_id, hashlib.sha256).digest()[:STATELESS_RESET_TOKEN_LENGTH]


class LocalCid:
    """One ID we issued.  Its reset token is computed when asked for (a
    NEW_CONNECTION_ID, the transport parameter): an idle connection keeps
    no copy."""

    __slots__ = ("sequence", "cid", "retired", "_key")

    def __init__(self, sequence: int, cid: bytes, reset_key: bytes) -> None:
        self.sequence = sequence
        self.cid = cid
        self.retired = False
        self._key = reset_key

    @property
    def token(self) -> bytes:
        return stateless_reset_token(self._key, self.cid)


class LocalConnectionIds:
    """The connection IDs we issued.  `issued`/`retired` collect the IDs to
    announce as ConnectionIdIssued / ConnectionIdRetired events."""

    def __init__(
        self,
        length: int,
        reset_key: bytes,
        entropy: Callable[[int], bytes],
        initial_cid: Optional[bytes] = None,
        generator: Optional[Callable[[], bytes]] = None,
    ) -> None:
        self.length = length
        self.reset_key = reset_key
        self.entropy = entropy
        # Where new IDs come from (QUIC-LB: routable ones, quic_lb.LbEncoder); default random.
        self.generator = generator  # None: random
        self.by_cid: dict[bytes, LocalCid] = {}
        self.by_sequence: dict[int, LocalCid] = {}
        self.next_sequence = 0
        self.limit = 2  # the peer's active_connection_id_limit (§18.2 default)
        self.pending: list[int] = []  # sequence numbers whose NEW_CONNECTION_ID is due
        self.retire_prior_to = 0  # the peer must retire our IDs below this (rotate())
        self.events: list[tuple[bool, bytes]] = []  # (issued?, cid) for the connection's events
        first = self._issue(initial_cid)
        self.host_cid = first.cid

    def _issue(self, cid: Optional[bytes] = None) -> LocalCid:
        while cid is None or cid in self.by_cid:
            cid = self.generator() if self.generator is not None else self.entropy(self.length)
            if len(cid) != self.length:
                raise UsageError(f"the connection ID generator made {len(cid)} octets, not {self.length}")
        entry = LocalCid(self.next_sequence, cid, self.reset_key)
        self.next_sequence += 1
        self.by_cid[cid] = entry
        self.by_sequence[entry.sequence] = entry
        self.events.append((True, cid))
        return entry

    def issue(self) -> LocalCid:
        """One more ID, sent some other way than NEW_CONNECTION_ID (the
        server's preferred_address transport parameter)."""
        return self._issue()

    @property
    def announced_token(self) -> Optional[bytes]:
        """A server's stateless_reset_token transport parameter: the first ID's
        (none for zero-length IDs: a reset could not name the connection)."""
        return self.by_sequence[0].token if self.length else None

    def replenish(self) -> None:
        """Issue IDs until the peer holds as many as it accepts (§5.1.1), not
        counting those it was asked to retire.  A zero-length ID is the only
        one there is (§5.1.1: none to issue)."""
        while self.length and self._usable_count() < self.limit:
            entry = self._issue()
            self.pending.append(entry.sequence)

    def _usable_count(self) -> int:
        return sum(1 for e in self.by_sequence.values() if not e.retired and e.sequence >= self.retire_prior_to)

    def rotate(self) -> None:
        """Ask the peer to stop using every ID issued so far: a full set of
        fresh ones, each with Retire Prior To past the old (§5.1.2: the peer
        retires the old before it counts the new against its limit).  The
        old ones still route until the peer retires them."""
        self.retire_prior_to = self.next_sequence
        self.replenish()

    def take_frames(self) -> list[NewConnectionId]:
        frames = []
        for sequence in self.pending:
            entry = self.by_sequence.get(sequence)
            if entry is not None and not entry.retired:
                frames.append(NewConnectionId(sequence, self.retire_prior_to, entry.cid, entry.token))
        self.pending.clear()
        return frames

    def on_frame_lost(self, frame: NewConnectionId) -> None:
        entry = self.by_sequence.get(frame.sequence_number)
        if entry is not None and not entry.retired:
            self.pending.append(frame.sequence_number)

    def on_retire(self, sequence: int, packet_dcid: bytes) -> None:
        """RETIRE_CONNECTION_ID from the peer (§19.16)."""
        if not self.length:
            # §19.16: nothing to retire when our connection ID is zero-length.
            raise TransportError.PROTOCOL_VIOLATION(
                "RETIRE_CONNECTION_ID to a zero-length connection ID", frame_type=FrameType.RETIRE_CONNECTION_ID
            )
        if sequence >= self.next_sequence:
            # §19.16: a sequence number never sent is PROTOCOL_VIOLATION.
            raise TransportError.PROTOCOL_VIOLATION(
                f"retiring connection ID {sequence}, never issued", frame_type=FrameType.RETIRE_CONNECTION_ID
            )
        entry = self.by_sequence.get(sequence)
        if entry is None or entry.retired:
            return
        if entry.cid == packet_dcid:
            # §19.16: MUST NOT retire the CID the packet was sent to.
            raise TransportError.PROTOCOL_VIOLATION(
                "retiring the connection ID the packet was sent to", frame_type=FrameType.RETIRE_CONNECTION_ID
            )
        entry.retired = True
        del self.by_sequence[sequence]
        del self.by_cid[entry.cid]
        self.events.append((False, entry.cid))
        self.replenish()


class PeerCid:
    __slots__ = ("sequence", "cid", "token")

    def __init__(self, sequence: int, cid: bytes, token: Optional[bytes]) -> None:
        self.sequence = sequence
        self.cid = cid
        self.token = token


class PeerConnectionIds:
    """The connection IDs the peer issued; `active.cid` is our Destination CID."""

    def __init__(self, initial_cid: bytes, limit: int, max_retire_pending: int = 64) -> None:
        self.limit = limit  # our active_connection_id_limit
        self.max_retire_pending = max_retire_pending
        self.active = PeerCid(0, initial_cid, None)
        self.spare: dict[int, PeerCid] = {}
        self.retire_prior_to = 0
        self.retire_pending: list[int] = []  # RETIRE_CONNECTION_ID frames due
        # Sent, not yet acknowledged: an ordered set (an empty set costs 216 bytes, a dict 64).
        self.retire_unacked: dict[int, None] = {}
        # Every ID the peer announced by sequence number, for the §19.15 checks
        # (the same PeerCid objects as in spare).
        self.seen: dict[int, PeerCid] = {}
        # Tokens of IDs we used and retired, until the retirement is acknowledged:
        # a late packet of ours with that ID may still draw a reset.
        self.recent_tokens: dict[int, bytes] = {}

    @property
    def cid(self) -> bytes:
        return self.active.cid

    def set_initial(self, cid: bytes) -> None:
        """The peer's first Source CID (§7.2: the client switches to the server's)."""
        self.active = PeerCid(0, cid, self.active.token)

    def set_active_token(self, token: bytes) -> None:
        """The server's stateless_reset_token transport parameter (sequence 0)."""
        self.active.token = token
        self.seen[0] = self.active

    def on_new_connection_id(self, frame: NewConnectionId) -> None:
        ft = FrameType.NEW_CONNECTION_ID
        if not self.active.cid:
            # §19.15: a peer using a zero-length CID cannot issue more.
            raise TransportError.PROTOCOL_VIOLATION("NEW_CONNECTION_ID with a zero-length connection ID", frame_type=ft)
        previous = self.seen.get(frame.sequence_number)
        if previous is not None:
            if (previous.cid, previous.token) != (frame.connection_id, frame.stateless_reset_token):
                # §19.15: the same sequence number with other contents.
                raise TransportError.PROTOCOL_VIOLATION("sequence number reused for another connection ID", frame_type=ft)
            return
        for entry in self.seen.values():
            if entry.cid == frame.connection_id:
                raise TransportError.PROTOCOL_VIOLATION("connection ID reissued with another sequence number", frame_type=ft)
        entry = PeerCid(frame.sequence_number, frame.connection_id, frame.stateless_reset_token)
        if len(self.seen) < 4 * self.limit + 16:
            self.seen[frame.sequence_number] = entry
        if frame.sequence_number < self.retire_prior_to:
            # §5.1.2: already retired by an earlier retire_prior_to: retire at once.
            self._retire(frame.sequence_number)
        else:
            self.spare[frame.sequence_number] = entry
        if frame.retire_prior_to > self.retire_prior_to:
            self.retire_prior_to = frame.retire_prior_to
            for sequence in [s for s in self.spare if s < frame.retire_prior_to]:
                self._retire(sequence)
            if self.active.sequence < frame.retire_prior_to:
                if not self.spare:
                    raise TransportError.PROTOCOL_VIOLATION("retire_prior_to leaves no connection ID", frame_type=ft)
                self._switch()
        # §5.1.1: more active IDs than our limit is CONNECTION_ID_LIMIT_ERROR.
        if 1 + len(self.spare) > self.limit:
            raise TransportError.CONNECTION_ID_LIMIT_ERROR(
                f"{1 + len(self.spare)} active connection IDs, limit {self.limit}", frame_type=ft
            )
        # §5.1.2: SHOULD bound the retirements waiting for acknowledgment.
        if len(self.retire_pending) + len(self.retire_unacked) > self.max_retire_pending:
            raise TransportError.CONNECTION_ID_LIMIT_ERROR("too many connection IDs retired at once", frame_type=ft)

    def _retire(self, sequence: int) -> None:
        self.spare.pop(sequence, None)  # never used: its token never counted
        self.retire_pending.append(sequence)

    def _switch(self, sequence: Optional[int] = None) -> None:
        old = self.active
        self.active = self.spare.pop(min(self.spare) if sequence is None else sequence)
        if old.token is not None:
            self.recent_tokens[old.sequence] = old.token  # a reset may still come for the old one
        self.retire_pending.append(old.sequence)

    def change(self) -> bool:
        """Move to the next spare ID and retire the current one (False if none)."""
        if not self.spare:
            return False
        self._switch()
        return True

    def use(self, sequence: int) -> bool:
        """Move to the spare ID `sequence` and retire the current one (False
        if there is no such spare: retired, or never received)."""
        if sequence not in self.spare:
            return False
        self._switch(sequence)
        return True

    def next_cid(self) -> bytes:
        """The ID change() would move to (the one in use if there is no
        spare): what a datagram on another path carries (§9.5)."""
        return self.spare[min(self.spare)].cid if self.spare else self.active.cid

    def take_frames(self) -> list[RetireConnectionId]:
        frames = [RetireConnectionId(s) for s in self.retire_pending]
        self.retire_unacked.update(dict.fromkeys(self.retire_pending))
        self.retire_pending.clear()
        return frames

    def on_retire_acked(self, sequence: int) -> None:
        self.retire_unacked.pop(sequence, None)
        self.recent_tokens.pop(sequence, None)

    def on_retire_lost(self, sequence: int) -> None:
        if sequence in self.retire_unacked:
            self.retire_unacked.pop(sequence)
            self.retire_pending.append(sequence)

    def reset_tokens(self) -> list[bytes]:
        """The tokens a stateless reset may carry now (RFC 9000 §10.3.1): the
        ID in use and IDs used recently; not spares, not old retirements."""
        tokens = list(self.recent_tokens.values())
        if self.active.token is not None:
            tokens.append(self.active.token)
        return tokens

    def is_stateless_reset(self, datagram: bytes) -> bool:
        """RFC 9000 §10.3.1: the last 16 bytes of a datagram equal one of
        reset_tokens(), compared in constant time."""
        if len(datagram) < 21:
            return False
        tokens = self.reset_tokens()
        if not tokens:
            return False
        tail = bytes(datagram[-STATELESS_RESET_TOKEN_LENGTH:])
        found = False
        for token in tokens:
            found |= hmac.compare_digest(tail, token)
        return found


__all__ = [
    "STATELESS_RESET_TOKEN_LENGTH",
    "stateless_reset_token",
    "LocalConnectionIds",
    "PeerConnectionIds",
]
