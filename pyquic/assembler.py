# Out-of-order reassembly of one byte stream: the receive buffer of a QUIC
# stream (RFC 9000 §2.2) and of the CRYPTO data of one encryption level
# (RFC 9000 §7.5).  Owns: the non-overlapping chunks received beyond the read
# offset, handing out contiguous data, and the caps a peer must not be able
# to push us past -- a window of bytes beyond the read offset
# (max_buffered), a count of chunks (max_chunks), and the memory the chunks
# cost beyond their payload bytes, charged to a ReassemblyBudget that one
# connection's stream assemblers share.  Final size and flow control are not
# known here; streams.py and flow_control.py own them.
#
# Work is per chunk, never per byte: chunks are kept as the bytes or
# memoryview objects they arrived in (sliced, never copied, when trimmed), in
# two parallel sorted lists.  A read that takes one whole chunk returns that
# very object.  Data given to add() must not change afterwards (bytes, or a
# memoryview over bytes).
from __future__ import annotations

from bisect import bisect_right
from typing import Callable, Optional, Union

BytesLike = Union[bytes, bytearray, memoryview]

# At most this many chunks are held before contiguous ones are joined; if more
# than half of them are still separate runs after joining, the peer is
# fragmenting the stream on purpose and add() fails.
DEFAULT_MAX_CHUNKS = 4096

# What a held chunk costs beyond its payload bytes (its "overhead"), measured
# with tracemalloc and sys.getsizeof on CPython 3.11 (64-bit): an entry in
# each of the two lists with their over-allocation and the int of its start
# offset (sys.getsizeof 28-32 B; 49 B together, traced), and the bytes
# object's header (sys.getsizeof(b"") == 33): 86 B traced per chunk at any
# size, ~100 B once the allocator rounds each object up to 16 B.  (A
# one-byte chunk sliced from a packet is a shared singleton and costs 49 B.)
CHUNK_OVERHEAD = 112
# A chunk the assembler trimmed is a memoryview: the view and its managed
# buffer (sys.getsizeof(memoryview) == 184; ~310 B traced), the list entries,
# int and header of the object it was cut from, as above (~415 B traced in
# all, ~460 B rounded), plus that object's bytes beyond the view's, which
# the view keeps alive.
VIEW_CHUNK_OVERHEAD = 480


def chunk_overhead(chunk: BytesLike) -> int:
    """The estimated memory a held chunk costs beyond len(chunk)."""
    if type(chunk) is not memoryview:
        return CHUNK_OVERHEAD
    base = chunk.obj
    pinned = len(base) if isinstance(base, (bytes, bytearray)) else chunk.nbytes
    return VIEW_CHUNK_OVERHEAD + pinned - len(chunk)


class AssemblerLimitError(Exception):
    """A cap of an Assembler was exceeded (raised when no error factory was given)."""


class ReassemblyBudget:
    """The overhead (see chunk_overhead) that all the assemblers sharing it --
    the receiving streams of one connection -- may hold together.

    Payload bytes are not counted: flow control bounds them.  The overhead
    is what a peer can grow without limit by sending data in many tiny
    pieces at scattered offsets (RFC 9000 §21.7): 1 byte of credit, ~100
    bytes held.  When an add() takes ``used`` past ``limit``, contiguous
    chunks are joined everywhere (``relieve``, or else in that assembler);
    unless that brings ``used`` down to 3/4 of the limit, ``error(reason)``
    is raised.  The margin makes joining amortized: a quarter of the limit
    must be added again before the next round.
    """

    __slots__ = ("limit", "used", "relieve", "_error")

    def __init__(
        self,
        limit: int,
        error: Optional[Callable[[str], Exception]] = None,
        relieve: Optional[Callable[[], None]] = None,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        self.limit = limit
        self.used = 0
        self.relieve = relieve
        self._error: Callable[[str], Exception] = error or AssemblerLimitError

    def overflow(self, assembler: "Assembler") -> None:
        """``used`` went past ``limit`` while adding to ``assembler``."""
        if self.relieve is not None:
            self.relieve()
        else:
            assembler.join_runs()
        if self.used > self.limit - self.limit // 4:
            raise self._error(
                f"out-of-order stream data in too many pieces: about {self.used} bytes of overhead "
                f"held, the limit is {self.limit}"
            )


class Assembler:
    """Reassembles a byte stream from (offset, data) pieces in any order.

    ``max_buffered`` bounds how far beyond the read offset data may reach;
    ``error(reason)`` builds what add() raises when a cap is exceeded (for
    CRYPTO: ``TransportError.CRYPTO_BUFFER_EXCEEDED``).  ``overhead`` is
    what the held chunks cost beyond their bytes; with a ``budget`` it is
    charged there as well (and returned as chunks are read, joined or
    cleared).  Where pieces overlap, the data already held is kept;
    conflicting bytes from a misbehaving peer are not detected (RFC 9000
    §2.2 makes that check optional).
    """

    __slots__ = (
        "read_offset",
        "highest_offset",
        "max_buffered",
        "max_chunks",
        "buffered",
        "overhead",
        "_starts",
        "_chunks",
        "_error",
        "_budget",
    )

    def __init__(
        self,
        max_buffered: int,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
        error: Optional[Callable[[str], Exception]] = None,
        read_offset: int = 0,
        budget: Optional[ReassemblyBudget] = None,
    ) -> None:
        if max_chunks < 2:
            raise ValueError("max_chunks must be at least 2")
        self.read_offset = read_offset  # everything below has been read
        self.highest_offset = read_offset  # end of the highest data ever added
        self.max_buffered = max_buffered
        self.max_chunks = max_chunks
        self.buffered = 0  # bytes held in chunks
        self.overhead = 0  # what they cost beyond that (chunk_overhead)
        self._starts: list[int] = []
        self._chunks: list[BytesLike] = []
        self._error: Callable[[str], Exception] = error or AssemblerLimitError
        self._budget = budget

    def __len__(self) -> int:
        """Number of chunks held."""
        return len(self._starts)

    @property
    def has_data(self) -> bool:
        """True when read() would return at least one byte."""
        return bool(self._starts) and self._starts[0] == self.read_offset

    def add(self, offset: int, data: BytesLike) -> None:
        """Add the bytes at ``offset``; duplicates and already-read bytes are dropped."""
        size = len(data)
        end = offset + size
        read_offset = self.read_offset
        if end <= read_offset or not size:
            return
        if end - read_offset > self.max_buffered:
            raise self._error(
                f"data up to offset {end} exceeds the buffer of {self.max_buffered} bytes "
                f"beyond offset {read_offset}"
            )
        if end > self.highest_offset:
            self.highest_offset = end
        if offset < read_offset:
            data = memoryview(data)[read_offset - offset :]
            offset = read_offset
        starts = self._starts
        chunks = self._chunks

        # Fast path: beyond everything held (in-order delivery, or a gap).
        if not starts or offset >= starts[-1] + len(chunks[-1]):
            starts.append(offset)
            chunks.append(data)
            self.buffered += end - offset
            self._charge(CHUNK_OVERHEAD if type(data) is not memoryview else chunk_overhead(data))
            if len(self._starts) > self.max_chunks:  # (_charge may have joined runs: new lists)
                self._compact()
            return

        # The chunk starting at or before offset may cover our head (or all).
        i = bisect_right(starts, offset) - 1
        if i >= 0:
            prev_end = starts[i] + len(chunks[i])
            if prev_end >= end:
                return
            if prev_end > offset:
                data = memoryview(data)[prev_end - offset :]
                offset = prev_end
        i += 1
        # Chunks entirely inside [offset, end) are replaced by the new data.
        j = i
        count = len(starts)
        removed = 0
        freed = 0
        while j < count and starts[j] + len(chunks[j]) <= end:
            chunk = chunks[j]
            removed += len(chunk)
            freed += CHUNK_OVERHEAD if type(chunk) is not memoryview else chunk_overhead(chunk)
            j += 1
        if j < count and starts[j] < end:
            # The next chunk overlaps our tail: keep it, trim ours.
            if starts[j] <= offset:
                return
            data = memoryview(data)[: starts[j] - offset]
            end = starts[j]
        starts[i:j] = (offset,)
        chunks[i:j] = (data,)
        self.buffered += end - offset - removed
        self._charge((CHUNK_OVERHEAD if type(data) is not memoryview else chunk_overhead(data)) - freed)
        if len(self._starts) > self.max_chunks:
            self._compact()

    def add_and_read(self, offset: int, data: BytesLike) -> BytesLike:
        """add() then read().  Why a fast path: in a bulk transfer nearly every
        frame is the next in-order piece with nothing held, and then the data
        goes straight back out without being stored (same checks as add())."""
        size = len(data)
        if offset != self.read_offset or self._starts or not size or size > self.max_buffered:
            self.add(offset, data)
            return self.read()
        end = offset + size
        if end > self.highest_offset:
            self.highest_offset = end
        self.read_offset = end
        return data

    def read(self, max_bytes: Optional[int] = None) -> BytesLike:
        """Remove and return the contiguous bytes at the read offset (b"" if none).

        One whole chunk comes back as the object that was added (or a slice
        of it); several are joined into new bytes.
        """
        starts = self._starts
        if not starts or starts[0] != self.read_offset:
            return b""
        chunks = self._chunks
        count = len(starts)
        limit = self.read_offset + max_bytes if max_bytes is not None else None
        n = 0
        pos = self.read_offset
        freed = 0
        while n < count and starts[n] == pos and (limit is None or pos < limit):
            chunk = chunks[n]
            pos += len(chunk)
            freed += CHUNK_OVERHEAD if type(chunk) is not memoryview else chunk_overhead(chunk)
            n += 1
        if limit is not None and pos > limit:
            # The last chunk taken is split: its tail stays.
            last = chunks[n - 1]
            keep = pos - limit
            head = memoryview(last)[: len(last) - keep]
            starts[n - 1] = limit
            tail = chunks[n - 1] = memoryview(last)[len(last) - keep :]
            freed -= chunk_overhead(tail)
            taken = chunks[: n - 1]
            taken.append(head)
            n -= 1
            pos = limit
        else:
            taken = chunks[:n]
        del starts[:n]
        del chunks[:n]
        self.buffered -= pos - self.read_offset
        self.read_offset = pos
        # Released, never checked: a split tail may cost more than the whole
        # did, but reading is progress.
        self.overhead -= freed
        if self._budget is not None:
            self._budget.used -= freed
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def clear(self) -> None:
        """Drop everything held (e.g. on RESET_STREAM); offsets are kept."""
        self._starts.clear()
        self._chunks.clear()
        self.buffered = 0
        if self._budget is not None:
            self._budget.used -= self.overhead
        self.overhead = 0

    def _charge(self, delta: int) -> None:
        self.overhead += delta
        budget = self._budget
        if budget is not None:
            budget.used += delta
            if delta > 0 and budget.used > budget.limit:
                budget.overflow(self)

    def _compact(self) -> None:
        """Join contiguous chunks; fail if the data is still in too many pieces."""
        self.join_runs()
        # Leaving at most half the cap makes compaction amortized O(1) per add.
        if len(self._starts) > self.max_chunks // 2:
            raise self._error(f"data arrived in more than {self.max_chunks // 2} separate pieces")

    def join_runs(self) -> None:
        """Join each run of contiguous chunks into one bytes object (work and
        copying proportional to what is held; the overhead drops).  A lone
        memoryview is copied too, freeing the object it was cut from."""
        if not self._starts:
            return
        starts: list[int] = []
        chunks: list[BytesLike] = []
        run: list[BytesLike] = []
        run_start = run_end = -1
        for start, chunk in zip(self._starts, self._chunks):
            if start != run_end and run:
                starts.append(run_start)
                chunks.append(run[0] if len(run) == 1 and type(run[0]) is bytes else b"".join(run))
                run = []
            if not run:
                run_start = run_end = start
            run.append(chunk)
            run_end += len(chunk)
        if run:
            starts.append(run_start)
            chunks.append(run[0] if len(run) == 1 and type(run[0]) is bytes else b"".join(run))
        self._starts = starts
        self._chunks = chunks
        overhead = sum(CHUNK_OVERHEAD if type(c) is not memoryview else chunk_overhead(c) for c in chunks)
        freed = self.overhead - overhead
        self.overhead = overhead
        if self._budget is not None:
            self._budget.used -= freed
