# QuicConnectionStats: the counters one connection keeps (datagrams, packets,
# bytes, drops, frames by type, paths, 0-RTT), read by applications, the
# benchmarks and the tests.  Owns nothing else; the connection counts into it.
from __future__ import annotations

__all__ = ["QuicConnectionStats"]


class QuicConnectionStats:
    """Counters; dropped datagrams and failed decryptions are never raised."""

    __slots__ = (
        "datagrams_sent", "datagrams_received", "bytes_sent", "bytes_received", "packets_sent",
        "packets_received", "packets_dropped", "decryption_failures", "packets_lost", "duplicates",
        "frames_sent", "frames_received", "path_migrations", "paths_validated", "path_validation_failures",
        "zero_rtt_packets_sent", "zero_rtt_packets_received", "zero_rtt_rejected", "crypto_resent_early",
        "retries_received",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)
        # Control frames by qlog name (STREAM, ACK, PADDING, CRYPTO are not counted).
        self.frames_sent: dict[str, int] = {}
        self.frames_received: dict[str, int] = {}

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}
