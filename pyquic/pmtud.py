# Datagram packetization layer path MTU discovery (RFC 9000 §14.3, RFC 8899)
# for the path in use: the size of the datagrams we build now (`size`), the
# search for a larger one with PMTU probes, and the fall back to the base
# size when the path stops carrying large datagrams (a black hole).
#
# It owns the search state only.  The packet builder asks `probe_due(now)`
# and sends a probe of `probe_size` (PING and PADDING in one 1-RTT packet,
# a datagram of its own); loss recovery tells it the probe's fate
# (`on_probe_acked`, `on_probe_lost`, by packet number), keeps a lost probe
# out of congestion control (RFC 9000 §14.4) and reports black holes.  Each
# change of `size` goes to the one callback it is given (loss recovery sets
# its congestion controller's and pacer's datagram size).
#
# The search (RFC 8899 §5.3): the ceiling first (on most paths it holds and
# the search is over in one round trip), then halving the gap between the
# largest size acknowledged and the smallest that failed, down to
# SEARCH_GRANULARITY bytes.  A size fails after MAX_PROBES lost probes.
# Searching starts when the handshake is confirmed, again on a new path
# (§14.3: from the base), and again PMTU_RAISE_TIMER after a search that
# stopped below the ceiling (checked when the connection next sends).
from __future__ import annotations

from typing import Callable

MAX_PROBES = 3  # RFC 8899 §5.1.2: lost probes of one size before it counts as failed
SEARCH_GRANULARITY = 16  # stop when the gap between acknowledged and failed is this small
PMTU_RAISE_TIMER = 600.0  # RFC 8899 §5.1.1: seconds before searching above a settled size again
_NEVER = float("inf")


class PathMtu:
    """The datagram size for the path in use and the search for a larger one.

    `base` is where every path starts and where a black hole sends us back
    (at least 1200, RFC 9000 §14); `ceiling` the largest size searched for,
    lowered by the peer's max_udp_payload_size (`limit`).  A ceiling at or
    below the base means no search: the size stays `min(base, limit)` and no
    probe is sent.
    """

    __slots__ = (
        "base", "ceiling", "size", "probe_pn", "probe_size", "_failed", "_attempts",
        "_next_at", "_started", "_on_size", "probes_sent", "probes_lost", "black_holes",
    )

    def __init__(self, base: int, ceiling: int, on_size: Callable[[int], None]) -> None:
        self.base = base
        self.ceiling = max(base, ceiling)
        self.size = base
        self.probe_pn = -1  # the outstanding probe's packet number (Application space), or -1
        self.probe_size = 0  # the size the next (or outstanding) probe tries
        self._failed = self.ceiling + 1  # the smallest size known not to pass
        self._attempts = 0  # probes of probe_size lost so far
        self._next_at = _NEVER  # when a probe may go: never before the handshake is confirmed
        self._started = False  # the handshake is confirmed: searching is allowed
        self._on_size = on_size
        self.probes_sent = 0
        self.probes_lost = 0
        self.black_holes = 0

    @property
    def enabled(self) -> bool:
        """Whether there is anything to search for: a ceiling above the base."""
        return self.ceiling > self.base

    # -- what the connection says ------------------------------------------------

    def limit(self, max_udp_payload_size: int) -> None:
        """The peer's transport parameter: no datagram larger than this
        (RFC 9000 §18.2), probes included."""
        self.base = min(self.base, max_udp_payload_size)
        self.ceiling = min(self.ceiling, max_udp_payload_size)
        self._failed = min(self._failed, self.ceiling + 1)
        if not self.enabled:
            self.probe_size, self._next_at = 0, _NEVER
        if self.size > max_udp_payload_size:
            self._set(max_udp_payload_size)

    def start(self, now: float) -> None:
        """The handshake is confirmed: search from now on (RFC 9000 §14.3)."""
        self._started = True
        if self.enabled and self.probe_pn < 0:
            self._next_candidate(now)

    def restart(self, now: float) -> None:
        """A new path (RFC 9000 §14.3, §9.4): back to the base size and search again."""
        self.probe_pn = -1
        self._failed = self.ceiling + 1
        if self.size != self.base:
            self._set(self.base)
        if self.enabled and self._started:
            self._next_candidate(now)

    # -- the builder -------------------------------------------------------------

    def probe_due(self, now: float) -> bool:
        """Whether a probe of probe_size should go now."""
        if now < self._next_at:
            return False
        if self.probe_size == 0:  # the raise timer: search above the settled size again
            self._failed = self.ceiling + 1
            self._next_candidate(now)
        return self.probe_size > 0

    def on_probe_sent(self, pn: int) -> None:
        self.probe_pn = pn
        self.probes_sent += 1
        self._next_at = _NEVER  # one probe at a time

    # -- loss recovery -------------------------------------------------------------

    def on_probe_acked(self, now: float) -> None:
        """The path carried a probe_size datagram."""
        self.probe_pn = -1
        if self.probe_size > self.size:
            self._set(self.probe_size)
        self._next_candidate(now)

    def on_probe_lost(self, now: float) -> None:
        self.probe_pn = -1
        self.probes_lost += 1
        self._attempts += 1
        if self._attempts >= MAX_PROBES:
            self._failed = self.probe_size
            self._next_candidate(now)
        else:
            self._next_at = now  # the same size again

    def on_black_hole(self, now: float) -> bool:
        """Datagrams of `size` stopped arriving (RFC 8899 §4.3): back to the
        base size, and search below the size that failed.  False if already
        at the base (nothing to fall back from)."""
        if self.size <= self.base:
            return False
        self.black_holes += 1
        self._failed = self.size
        self.probe_pn = -1
        self._set(self.base)
        self._next_candidate(now)
        return True

    # -- the search ----------------------------------------------------------------

    def _next_candidate(self, now: float) -> None:
        low, failed = self.size, self._failed
        if failed > self.ceiling:
            candidate = self.ceiling  # the ceiling first: most paths carry it
        elif failed - low > SEARCH_GRANULARITY:
            candidate = (low + failed) // 2
        else:
            candidate = 0
        if candidate <= low:
            candidate = 0
        self._attempts = 0
        self.probe_size = candidate
        if candidate:
            self._next_at = now
        elif self.size < self.ceiling:
            self._next_at = now + PMTU_RAISE_TIMER  # settled below the ceiling: look again later
        else:
            self._next_at = _NEVER

    def _set(self, size: int) -> None:
        self.size = size
        self._on_size(size)


__all__ = ["MAX_PROBES", "PMTU_RAISE_TIMER", "SEARCH_GRANULARITY", "PathMtu"]
