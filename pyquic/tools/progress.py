# The download progress bar of `python -m pyquic.client`: one line on a
# terminal (rewritten in place with \r), covering every transfer of the run
# (they go concurrently, so one aggregate line reads better than several
# fighting bars).  Owns when to draw (only on a terminal, only once the
# transfers have lasted SHOW_AFTER seconds, so small fetches stay quiet; at
# most every REDRAW_INTERVAL), the rate over a sliding window, and clearing
# the line before anyone else prints to the same stream (line()).
from __future__ import annotations

import sys
import time
from collections import deque
from typing import Optional, TextIO

SHOW_AFTER = 0.5  # seconds before a bar appears (quick transfers never show one)
REDRAW_INTERVAL = 0.1
RATE_WINDOW = 2.0  # seconds of samples behind the displayed rate
BAR_WIDTH = 24


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # not reached


class Transfer:
    """One request's share of the bar: its expected size (None: unknown)."""

    __slots__ = ("progress", "total", "done", "finished")

    def __init__(self, progress: "Progress", total: Optional[int]) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self.finished = False

    def set_total(self, total: Optional[int]) -> None:
        self.total = total

    def add(self, n: int) -> None:
        self.done += n
        self.progress._added(n)

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.progress._maybe_draw(force=True)


class Progress:
    """The aggregate bar; `enabled` False makes every call a cheap no-op
    (not a terminal, or --quiet)."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: Optional[bool] = None,
                 clock=time.monotonic) -> None:
        self.stream = stream
        if enabled is None:
            isatty = getattr(stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._clock = clock
        self._transfers: list[Transfer] = []
        self._started = clock()
        self._last_draw = 0.0
        self._drawn = False
        self._bytes = 0
        self._samples: deque = deque([(self._started, 0)])  # (time, cumulative bytes)

    def transfer(self, total: Optional[int] = None) -> Transfer:
        t = Transfer(self, total)
        self._transfers.append(t)
        return t

    def _added(self, n: int) -> None:
        self._bytes += n
        if self.enabled:
            self._maybe_draw()

    def _sample(self, now: float) -> None:
        samples = self._samples
        samples.append((now, self._bytes))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()

    def rate(self, now: float) -> float:
        """Bytes per second over the last RATE_WINDOW seconds (or so)."""
        t0, b0 = self._samples[0]
        return (self._bytes - b0) / (now - t0) if now > t0 else 0.0

    def _maybe_draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self._clock()
        self._sample(now)
        if now - self._started < SHOW_AFTER:
            return
        if not force and now - self._last_draw < REDRAW_INTERVAL:
            return
        self._last_draw = now
        self.stream.write("\r" + self.render(now) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def render(self, now: float) -> str:
        active = [t for t in self._transfers if not t.finished]
        known = all(t.total is not None for t in self._transfers)
        total = sum(t.total or 0 for t in self._transfers)
        done = sum(t.done for t in self._transfers)
        rate = human_bytes(self.rate(now)) + "/s"
        count = f"{len(self._transfers) - len(active)}/{len(self._transfers)} done"
        if known and total > 0:
            frac = min(1.0, done / total)
            filled = int(frac * BAR_WIDTH)
            bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
            return f"[{bar}] {frac * 100:5.1f}% {human_bytes(done)} / {human_bytes(total)}  {rate}  {count}"
        return f"{human_bytes(done)}  {rate}  {count}"

    def clear(self) -> None:
        """Erase the bar (it comes back on the next update)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def line(self, text: str) -> None:
        """Print a line to the bar's stream without tearing the bar."""
        self.clear()
        print(text, file=self.stream, flush=True)
        if self.enabled and any(not t.finished for t in self._transfers):
            self._maybe_draw(force=True)
