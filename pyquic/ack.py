# ACK generation for one packet number space (RFC 9000 §13.2): which packet
# numbers were received (ranges, capped), duplicate detection (§12.3), when
# an ACK is due (immediately for Initial and Handshake, otherwise after two
# ack-eliciting packets, on reordering or a gap, on ECN-CE, or when
# max_ack_delay runs out: §13.2.1-2), the ACK Delay field (§13.2.5, §19.3),
# which ranges the next ACK carries (largest first, bounded), the ECN counts
# (§13.4.1), and forgetting ranges once an ACK carrying them was itself
# acknowledged (§13.2.4).  The connection keeps one AckTracker per space and
# encodes the frame; this module never touches bytes.
from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from .errors import UsageError

# The number of ranges kept, both for the next ACK frame and for duplicate
# detection.  Beyond it the lowest (oldest) range is dropped: it is no longer
# acknowledged, and packets at or below it count as duplicates (§12.3 allows
# "a minimum packet number below which all packets are immediately dropped").
MAX_TRACKED_RANGES = 64
# §13.2.2: an ACK after at least two ack-eliciting packets.
ACK_ELICITING_THRESHOLD = 2
# §18.2 defaults of the transport parameters that govern our ACKs.
DEFAULT_MAX_ACK_DELAY = 0.025
DEFAULT_ACK_DELAY_EXPONENT = 3

# ECN codepoints as the IP header carries them (RFC 3168).
ECN_NOT_ECT = 0b00
ECN_ECT1 = 0b01
ECN_ECT0 = 0b10
ECN_CE = 0b11


class PacketNumberRanges:
    """Sorted, disjoint, half-open ranges of packet numbers, at most `cap`.

    Kept here (not pyquic.rangeset) so this module stands alone; it only
    needs add-one, membership, drop-below and iteration.
    """

    __slots__ = ("cap", "_ranges")

    def __init__(self, cap: int = MAX_TRACKED_RANGES) -> None:
        if cap < 1:
            raise UsageError("cap must be at least 1")
        self.cap = cap
        self._ranges: list[list[int]] = []  # [start, stop], ascending

    def __len__(self) -> int:
        return len(self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __contains__(self, pn: int) -> bool:
        ranges = self._ranges
        if ranges and pn >= ranges[-1][0]:  # the newest range: in-order receipt
            return pn < ranges[-1][1]
        i = bisect_right(self._ranges, pn, key=_start) - 1
        return i >= 0 and pn < self._ranges[i][1]

    def __iter__(self):
        return (tuple(r) for r in self._ranges)

    def descending(self) -> list[tuple[int, int]]:
        return [(r[0], r[1]) for r in reversed(self._ranges)]

    def range_start(self, pn: int) -> int:
        """The start of the range holding `pn` (`pn` itself if none does)."""
        ranges = self._ranges
        if ranges and ranges[-1][0] <= pn < ranges[-1][1]:  # the newest range: in-order receipt
            return ranges[-1][0]
        i = bisect_right(self._ranges, pn, key=_start) - 1
        if i >= 0 and pn < self._ranges[i][1]:
            return self._ranges[i][0]
        return pn

    @property
    def largest(self) -> int | None:
        return self._ranges[-1][1] - 1 if self._ranges else None

    def add(self, pn: int) -> tuple[bool, int | None]:
        """Add one packet number.  Returns (was it new, the stop of the range
        dropped to respect the cap or None)."""
        ranges = self._ranges
        if ranges:
            last = ranges[-1]
            if pn == last[1]:  # the common case: the next packet in order
                last[1] = pn + 1
                return True, None
            if pn > last[1]:
                ranges.append([pn, pn + 1])
                return True, self._enforce_cap()
        i = bisect_right(ranges, pn, key=_start) - 1
        if i >= 0 and pn < ranges[i][1]:
            return False, None
        joins_below = i >= 0 and ranges[i][1] == pn
        joins_above = i + 1 < len(ranges) and ranges[i + 1][0] == pn + 1
        if joins_below and joins_above:
            ranges[i][1] = ranges[i + 1][1]
            del ranges[i + 1]
        elif joins_below:
            ranges[i][1] = pn + 1
        elif joins_above:
            ranges[i + 1][0] = pn
        else:
            ranges.insert(i + 1, [pn, pn + 1])
        return True, self._enforce_cap()

    def _enforce_cap(self) -> int | None:
        dropped_stop = None
        while len(self._ranges) > self.cap:
            dropped_stop = self._ranges.pop(0)[1]
        return dropped_stop

    def remove_below(self, stop: int) -> None:
        """Forget every packet number < stop."""
        ranges = self._ranges
        while ranges and ranges[0][1] <= stop:
            ranges.pop(0)
        if ranges and ranges[0][0] < stop:
            ranges[0][0] = stop

    def clear(self) -> None:
        self._ranges.clear()


def _start(r: list[int]) -> int:
    return r[0]


class AckFrameData(NamedTuple):
    """What the next ACK frame says; the connection encodes it (§19.3).  A
    NamedTuple: one is made for most bursts a bulk sender builds, and a
    frozen dataclass's __init__ cost several times a tuple's."""

    ranges: tuple[tuple[int, int], ...]  # half-open, largest first, non-empty
    ack_delay: float  # seconds, as measured
    ack_delay_encoded: int  # the ACK Delay field: microseconds >> exponent
    ecn_counts: tuple[int, int, int] | None  # (ECT0, ECT1, ECN-CE), or None: plain ACK

    @property
    def largest_acknowledged(self) -> int:
        return self.ranges[0][1] - 1


class AckTracker:
    """Received packet numbers and the ACK due for one packet number space.

    `immediate` is True for the Initial and Handshake spaces (§13.2.1: their
    ack-eliciting packets are acknowledged immediately); `max_ack_delay` and
    `ack_delay_exponent` are the values we advertise (§18.2).
    """

    def __init__(
        self,
        *,
        immediate: bool = False,
        max_ack_delay: float = DEFAULT_MAX_ACK_DELAY,
        ack_delay_exponent: int = DEFAULT_ACK_DELAY_EXPONENT,
        max_ranges: int = MAX_TRACKED_RANGES,
        ack_eliciting_threshold: int = ACK_ELICITING_THRESHOLD,
    ) -> None:
        self.immediate = immediate
        self.max_ack_delay = max_ack_delay
        self.ack_delay_exponent = ack_delay_exponent
        self.ack_eliciting_threshold = ack_eliciting_threshold
        self.max_ranges = max_ranges
        # Everything received above the duplicate floor (never pruned by
        # acks of acks, only by the cap).
        self._received = PacketNumberRanges(max_ranges)
        # §12.3: packet numbers below this are dropped as duplicates.
        self.duplicate_floor = 0
        # What the next ACK acknowledges (pruned by on_ack_of_ack, §13.2.4).
        self._to_ack = PacketNumberRanges(max_ranges)
        self.largest_received = -1
        self.largest_received_time: float | None = None
        self._largest_ack_eliciting = -1
        self._unacked_ack_eliciting = 0
        self._ack_deadline: float | None = None
        # Something (even only non-ack-eliciting) arrived since the last ACK.
        self.ack_pending = False
        self.ecn_counts = [0, 0, 0]  # ECT0, ECT1, CE (§13.4.1)
        self.duplicates = 0

    # -- receiving ---------------------------------------------------------

    def is_duplicate(self, pn: int) -> bool:
        """§12.3: a packet number already processed (or below the floor)."""
        return pn < self.duplicate_floor or pn in self._received

    def on_packet_received(self, pn: int, *, ack_eliciting: bool, now: float, ecn: int = ECN_NOT_ECT) -> bool:
        """Record a packet that was successfully unprotected (§12.3: duplicate
        suppression happens after removing packet protection).  Returns False,
        recording nothing, for a duplicate the caller must discard."""
        # Once per packet: PacketNumberRanges.add's in-order case inline (the
        # next packet extends the newest range: new, and nothing is dropped).
        received = self._received._ranges
        if received and received[-1][1] == pn:
            received[-1][1] = pn + 1
        elif pn < self.duplicate_floor or pn in self._received:  # is_duplicate()
            self.duplicates += 1
            return False
        else:
            _, dropped = self._received.add(pn)
            if dropped is not None:
                self.duplicate_floor = max(self.duplicate_floor, dropped)
        to_ack = self._to_ack._ranges
        if to_ack and to_ack[-1][1] == pn:
            to_ack[-1][1] = pn + 1
        else:
            self._to_ack.add(pn)
        if pn > self.largest_received:
            self.largest_received = pn
            self.largest_received_time = now
        # §13.4.1: count ECN codepoints of each packet (duplicates aren't).
        if ecn == ECN_ECT0:
            self.ecn_counts[0] += 1
        elif ecn == ECN_ECT1:
            self.ecn_counts[1] += 1
        elif ecn == ECN_CE:
            self.ecn_counts[2] += 1
        self.ack_pending = True
        if not ack_eliciting:
            # §13.2.1: a non-ack-eliciting packet never triggers an ACK on its
            # own; it is only included in the next one.
            return True

        self._unacked_ack_eliciting += 1
        immediate = (
            self.immediate  # §13.2.1: Initial and Handshake
            or ecn == ECN_CE  # §13.2.1: SHOULD ack CE-marked packets at once
            or self._unacked_ack_eliciting >= self.ack_eliciting_threshold  # §13.2.2
            or self._is_out_of_order(pn)  # §13.2.1
        )
        if pn > self._largest_ack_eliciting:
            self._largest_ack_eliciting = pn
        deadline = now if immediate else now + self.max_ack_delay
        if self._ack_deadline is None or deadline < self._ack_deadline:
            self._ack_deadline = deadline
        return True

    def _is_out_of_order(self, pn: int) -> bool:
        """§13.2.1: an ack-eliciting packet below another ack-eliciting one,
        or above the largest with missing packets in between."""
        largest = self._largest_ack_eliciting
        if largest < 0:
            return False
        if pn < largest:
            return True
        # pn is the newest: a gap unless its range reaches back to `largest`.
        return self._received.range_start(pn) > largest

    # -- sending -----------------------------------------------------------

    def get_ack_timer(self) -> float | None:
        """When an ACK must be sent; None when none is due."""
        return self._ack_deadline

    def ack_due(self, now: float) -> bool:
        return self._ack_deadline is not None and self._ack_deadline <= now

    def build_ack(self, now: float, *, max_ranges: int | None = None) -> AckFrameData | None:
        """The next ACK frame (largest ranges first, at most `max_ranges` so it
        fits the packet), or None if there is nothing to acknowledge.  Call
        `on_ack_sent` once it is in a packet."""
        if not self._to_ack:
            return None
        ranges = self._to_ack.descending()
        limit = self.max_ranges if max_ranges is None else max_ranges
        ranges = ranges[: max(1, limit)]
        largest = ranges[0][1] - 1
        delay = 0.0
        if largest == self.largest_received and self.largest_received_time is not None:
            # §13.2.5: from receipt of the largest acknowledged to now.
            delay = max(0.0, now - self.largest_received_time)
        encoded = round(delay * 1_000_000) >> self.ack_delay_exponent
        ecn = tuple(self.ecn_counts) if any(self.ecn_counts) else None
        return AckFrameData(ranges=tuple(ranges), ack_delay=delay, ack_delay_encoded=encoded, ecn_counts=ecn)  # type: ignore[arg-type]

    def on_ack_sent(self) -> None:
        """An ACK built by `build_ack` went out: nothing is due any more."""
        self._unacked_ack_eliciting = 0
        self._ack_deadline = None
        self.ack_pending = False

    def on_ack_of_ack(self, largest_acked_in_that_ack: int) -> None:
        """A packet that carried an ACK whose Largest Acknowledged was this was
        itself acknowledged: stop acknowledging what it covered (§13.2.4)."""
        self._to_ack.remove_below(largest_acked_in_that_ack + 1)

    def on_ack_lost(self) -> None:
        """A packet that carried an ACK was lost: the next packet we send in
        this space carries one again, without waiting for new packets."""
        if self._to_ack:
            self.ack_pending = True

    @property
    def has_ranges(self) -> bool:
        """Something received is not yet known to be acknowledged (an ACK of
        it may have gone out, but none was itself acknowledged)."""
        return bool(self._to_ack)

    def ranges_to_ack(self) -> list[tuple[int, int]]:
        return self._to_ack.descending()
