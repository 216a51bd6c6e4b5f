# The deterministic payload of the "pyquic-test" protocol, shared by the peer
# processes (tests/peers/raw_peer.py), the in-process tests and the bench.
# Byte i of a transfer is BLOCK[i % 65521]: the block length is prime, so no
# packet or buffer size lines up with it and a misplaced range changes the
# SHA-256.  Chunks are memoryview slices of one pre-built buffer: generating
# 50 MB costs no allocation and no per-byte Python work.
from __future__ import annotations

import functools
import hashlib
import random
from typing import Iterator

BLOCK_LEN = 65521
BLOCK = random.Random(0x5EED).randbytes(BLOCK_LEN)
CHUNK = 1 << 20
# BLOCK repeated so that any chunk of up to CHUNK bytes starting anywhere
# inside the first BLOCK is one contiguous slice.
_BIG = memoryview(BLOCK * (CHUNK // BLOCK_LEN + 2))


def chunks(size: int, chunk: int = CHUNK) -> Iterator[memoryview]:
    """The first ``size`` bytes of the pattern as slices of at most ``chunk`` bytes."""
    chunk = min(chunk, CHUNK)
    offset = 0
    while offset < size:
        n = min(chunk, size - offset)
        start = offset % BLOCK_LEN
        yield _BIG[start:start + n]
        offset += n


def pattern(size: int) -> bytes:
    return b"".join(chunks(size))


@functools.lru_cache(maxsize=64)
def sha256_of(size: int) -> str:
    h = hashlib.sha256()
    for c in chunks(size):
        h.update(c)
    return h.hexdigest()
