# Out-of-order reassembly of one byte stream: the receive buffer of a QUIC
# stream (RFC 9000 §2.2) and of the CRYPTO data of one encryption level
# (RFC 9000 §7.5).  Owns: the non-overlapping chunks received beyond the read
# offset, handing out contiguous data, and the two caps a peer must not be
# able to push us past -- a window of bytes beyond the read offset
# (max_buffered) and a count of chunks (max_chunks).  Final size and flow
# control are not known here; streams.py and flow_control.py own them.
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


class AssemblerLimitError(Exception):
    """A cap of an Assembler was exceeded (raised when no error factory was given)."""


class Assembler:
    """Reassembles a byte stream from (offset, data) pieces in any order.

    ``max_buffered`` bounds how far beyond the read offset data may reach;
    ``error(reason)`` builds what add() raises when a cap is exceeded (for
    CRYPTO: ``TransportError.CRYPTO_BUFFER_EXCEEDED``).  Where pieces overlap,
    the data already held is kept; conflicting bytes from a misbehaving peer
    are not detected (RFC 9000 §2.2 makes that check optional).
    """

    __slots__ = (
        "read_offset",
        "highest_offset",
        "max_buffered",
        "max_chunks",
        "buffered",
        "_starts",
        "_chunks",
        "_error",
    )

    def __init__(
        self,
        max_buffered: int,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
        error: Optional[Callable[[str], Exception]] = None,
        read_offset: int = 0,
    ) -> None:
        if max_chunks < 2:
            raise ValueError("max_chunks must be at least 2")
        self.read_offset = read_offset  # everything below has been read
        self.highest_offset = read_offset  # end of the highest data ever added
        self.max_buffered = max_buffered
        self.max_chunks = max_chunks
        self.buffered = 0  # bytes held in chunks
        self._starts: list[int] = []
        self._chunks: list[BytesLike] = []
        self._error: Callable[[str], Exception] = error or AssemblerLimitError

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
            if len(starts) > self.max_chunks:
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
        while j < count and starts[j] + len(chunks[j]) <= end:
            removed += len(chunks[j])
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
        if len(starts) > self.max_chunks:
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
        while n < count and starts[n] == pos and (limit is None or pos < limit):
            pos += len(chunks[n])
            n += 1
        if limit is not None and pos > limit:
            # The last chunk taken is split: its tail stays.
            last = chunks[n - 1]
            keep = pos - limit
            head = memoryview(last)[: len(last) - keep]
            starts[n - 1] = limit
            chunks[n - 1] = memoryview(last)[len(last) - keep :]
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
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def clear(self) -> None:
        """Drop everything held (e.g. on RESET_STREAM); offsets are kept."""
        self._starts.clear()
        self._chunks.clear()
        self.buffered = 0

    def _compact(self) -> None:
        """Join contiguous chunks; fail if the data is still in too many pieces."""
        starts: list[int] = []
        chunks: list[BytesLike] = []
        run: list[BytesLike] = []
        run_start = run_end = -1
        for start, chunk in zip(self._starts, self._chunks):
            if start != run_end and run:
                starts.append(run_start)
                chunks.append(run[0] if len(run) == 1 else b"".join(run))
                run = []
            if not run:
                run_start = run_end = start
            run.append(chunk)
            run_end += len(chunk)
        if run:
            starts.append(run_start)
            chunks.append(run[0] if len(run) == 1 else b"".join(run))
        self._starts = starts
        self._chunks = chunks
        # Leaving at most half the cap makes compaction amortized O(1) per add.
        if len(starts) > self.max_chunks // 2:
            raise self._error(f"data arrived in more than {self.max_chunks // 2} separate pieces")
