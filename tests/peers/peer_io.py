# What every peer process (tests/peers/*.py, bench/bench_h3.py's pyquic
# peers) says and hears from its harness: one JSON object per stdout line
# (emit), a life that ends when the harness closes our stdin
# (until_stdin_closes), and the requests-per-second loop the HTTP/3 clients
# share (measure_rps), so every stack's figure is counted the same way.
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Awaitable, Callable


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def until_stdin_closes() -> None:
    """Return when stdin reaches its end: the harness owns our lifetime."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: stop.done() or (not os.read(fd, 4096) and stop.set_result(None)))
    try:
        await stop
    finally:
        loop.remove_reader(fd)


async def measure_rps(get_one: Callable[[], Awaitable[int]], url: str, total: int, inflight: int,
                      timeout: float) -> dict:
    """`total` calls of get_one() (one GET of url; returns the body's length,
    raises on any failure), `inflight` at a time.  The "rps" event line:
    requests, seconds, rps, errors, bytes (the one body length seen, or
    None when they differed) and the first error."""
    errors, sizes, left, first_error = 0, set(), total, None

    async def worker() -> None:
        nonlocal left, errors, first_error
        while left > 0:
            left -= 1
            try:
                sizes.add(await asyncio.wait_for(get_one(), timeout))
            except Exception as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(inflight, total))))
    seconds = time.perf_counter() - t0
    if len(sizes) > 1:
        errors += 1
        first_error = first_error or f"responses of different sizes {sorted(sizes)}"
    res = {"event": "rps", "url": url, "requests": total, "concurrency": inflight, "seconds": seconds,
           "rps": total / seconds if seconds else 0.0, "errors": errors,
           "bytes": sizes.pop() if len(sizes) == 1 else None}
    if first_error:
        res["error"] = first_error
    return res
