# GSO batches: what the core hands the socket layer, datagrams of one size
# back to back in one buffer (the last may be shorter), sent with one write
# where UDP GSO allows.  Owns the limits of one such write and the two ways
# of reshaping batches: merge_batches (consecutive batches one write can
# carry) and split_batches (the datagrams one by one, for callers without GSO).
from __future__ import annotations

from typing import Any

# UDP GSO: at most 64 segments and 64 KiB per send.
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000


def merge_batches(batches: list) -> list:
    """Join consecutive batches that one GSO write can carry: a batch whose
    datagrams are all full (its length a multiple of its segment size)
    followed by one of the same segment size, or by a single datagram no
    larger.  A handshake flight (e.g. 1200 + 1200 + 189 bytes, built one
    coalesced datagram per batch) then leaves in one send call instead of
    one per datagram; the datagrams on the wire are the same."""
    out = [batches[0]]
    for buffer, segment in batches[1:]:
        prev, prev_segment = out[-1]
        if (
            len(prev) % prev_segment == 0
            and (segment == prev_segment or len(buffer) <= min(segment, prev_segment))
            and len(prev) // prev_segment + -(-len(buffer) // prev_segment) <= GSO_MAX_SEGMENTS
            and len(prev) + len(buffer) <= GSO_MAX_BYTES
        ):
            out[-1] = (prev + buffer, prev_segment)
        else:
            out.append((buffer, segment))
    return out


def split_batches(batches: list) -> list[tuple[bytes, Any]]:
    """(buffer, segment_size, addr) batches as (datagram, addr) pairs."""
    out = []
    for buffer, segment, addr in batches:
        if len(buffer) <= segment:
            out.append((buffer, addr))
        else:
            out += [(buffer[i : i + segment], addr) for i in range(0, len(buffer), segment)]
    return out


__all__ = ["GSO_MAX_BYTES", "GSO_MAX_SEGMENTS", "merge_batches", "split_batches"]
