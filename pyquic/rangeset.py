# A sorted set of integers kept as disjoint half-open ranges [start, stop):
# received packet numbers (ACK generation), acknowledged packets, received
# stream or CRYPTO offsets.  Owns RangeSet and its cap, MAX_RANGES.
#
# Representation: one flat sorted list [s0, e0, s1, e1, ...] with
# s0 < e0 < s1 < e1 < ...  (touching ranges are merged, so e_i < s_i+1).
# bisect on the flat list finds where a value falls: an odd insertion point
# means "inside a range".  add and subtract are O(log n) plus one slice
# assignment; no Python loop walks the ranges.
#
# The cap: a peer can make us hold one range per packet it skips.  When an
# add leaves more than `max_ranges` ranges, the LOWEST ranges are dropped and
# counted in `dropped_ranges`.  For ACK tracking that forgets the oldest
# packet numbers, which RFC 9000 §13.2.3 allows (the ACK then omits them).
# Users that must not forget (stream reassembly) check len() before adding
# and refuse the data instead.
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Iterable, Iterator, Optional

from .errors import UsageError

MAX_RANGES = 1024


class RangeSet:
    __slots__ = ("_flat", "max_ranges", "dropped_ranges")

    def __init__(self, ranges: Iterable[tuple[int, int]] = (), max_ranges: int = MAX_RANGES) -> None:
        if max_ranges < 1:
            raise UsageError("max_ranges must be at least 1")
        self._flat: list[int] = []
        self.max_ranges = max_ranges
        self.dropped_ranges = 0
        for start, stop in ranges:
            self.add(start, stop)

    def add(self, start: int, stop: Optional[int] = None) -> None:
        """Add [start, stop) (or the single value `start`), merging with
        overlapping and touching ranges."""
        if stop is None:
            stop = start + 1
        if stop <= start:
            if stop == start:
                return
            raise UsageError(f"empty range [{start}, {stop})")
        flat = self._flat
        # Fast path: appending at or past the top (in-order packets / data).
        if not flat or start > flat[-1]:
            flat += (start, stop)
        elif start == flat[-1]:
            flat[-1] = stop
        else:
            i = bisect_left(flat, start)  # boundaries < start
            j = bisect_right(flat, stop)  # boundaries <= stop
            if i & 1:  # start falls inside (or touches the end of) a range
                i -= 1
                start = flat[i]
            if j & 1:  # stop falls inside (or touches the start of) a range
                stop = flat[j]
                j += 1
            flat[i:j] = (start, stop)
        if len(flat) > 2 * self.max_ranges:
            excess = len(flat) // 2 - self.max_ranges
            del flat[: 2 * excess]
            self.dropped_ranges += excess

    def subtract(self, start: int, stop: int) -> None:
        """Remove [start, stop)."""
        if stop <= start:
            return
        flat = self._flat
        i = bisect_right(flat, start)  # boundaries <= start
        j = bisect_left(flat, stop)  # boundaries < stop
        pieces: list[int] = []
        if i & 1:  # start is inside a range: keep its part below start
            i -= 1
            if flat[i] < start:
                pieces += (flat[i], start)
        if j & 1:  # stop is inside a range: keep its part from stop
            if stop < flat[j]:
                pieces += (stop, flat[j])
            j += 1
        flat[i:j] = pieces

    def discard_below(self, value: int) -> None:
        """Remove everything below `value` (e.g. acknowledged ACK ranges, RFC 9000 §13.2.4)."""
        if self._flat and self._flat[0] < value:
            self.subtract(self._flat[0], value)

    def shift(self) -> tuple[int, int]:
        """Remove and return the lowest range."""
        if not self._flat:
            raise IndexError("shift from an empty RangeSet")
        start, stop = self._flat[0], self._flat[1]
        del self._flat[:2]
        return start, stop

    def pop(self) -> tuple[int, int]:
        """Remove and return the highest range."""
        if not self._flat:
            raise IndexError("pop from an empty RangeSet")
        stop = self._flat.pop()
        return self._flat.pop(), stop

    def __contains__(self, value: int) -> bool:
        return bool(bisect_right(self._flat, value) & 1)

    def covers(self, start: int, stop: int) -> bool:
        """Whether all of [start, stop) is in the set."""
        if stop <= start:
            return True
        i = bisect_right(self._flat, start)
        return bool(i & 1) and stop <= self._flat[i]

    def bounds(self) -> tuple[int, int]:
        """(lowest value, highest value + 1)."""
        if not self._flat:
            raise IndexError("bounds of an empty RangeSet")
        return self._flat[0], self._flat[-1]

    def __len__(self) -> int:
        """The number of ranges (not of values)."""
        return len(self._flat) >> 1

    def __bool__(self) -> bool:
        return bool(self._flat)

    def __getitem__(self, index: int) -> tuple[int, int]:
        n = len(self._flat) >> 1
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("RangeSet index out of range")
        return self._flat[2 * index], self._flat[2 * index + 1]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        flat = self._flat
        return zip(flat[0::2], flat[1::2])

    def __reversed__(self) -> Iterator[tuple[int, int]]:
        flat = self._flat
        return zip(flat[-2::-2], flat[::-2])

    def descending(self, limit: Optional[int] = None) -> tuple[tuple[int, int], ...]:
        """The highest `limit` ranges, highest first: the shape of Ack.ranges."""
        flat = self._flat if limit is None else self._flat[-2 * limit :] if limit > 0 else []
        return tuple(zip(flat[-2::-2], flat[::-2]))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RangeSet):
            return self._flat == other._flat
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"
