# The qlog sink the asyncio layer gives the core (configuration.quic_logger):
# one JSON-SEQ file per connection in a directory, named
# <odcid>-<vantage point>.sqlog so a client and a server sharing a directory
# do not overwrite each other.  Records are collected in memory and written
# in large chunks (every FLUSH_BYTES, every FLUSH_INTERVAL seconds while the
# loop runs, and at close) so a busy connection does not make one write()
# per packet from the event loop.  The core builds the records (qlog.py);
# this file only stores them.
from __future__ import annotations

import asyncio
import os
from typing import Optional

FLUSH_BYTES = 256 << 10
FLUSH_INTERVAL = 1.0


class QlogFileSink:
    """One connection's qlog file: write(record) and close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "w", encoding="utf-8")
        self._pending: list[str] = []
        self._size = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        try:
            self._loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def write(self, record: str) -> None:
        if self._file is None:
            return
        self._pending.append(record)
        self._size += len(record)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None and self._loop is not None:
            # A stalled connection's trace still reaches the disk soon.
            self._timer = self._loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and self._file is not None:
            self._file.write("".join(self._pending))
            self._file.flush()
        self._pending.clear()
        self._size = 0

    def close(self) -> None:
        if self._file is None:
            return
        self.flush()
        self._file.close()
        self._file = None


class QlogDirectory:
    """configuration.quic_logger: start(odcid_hex, vantage_point) -> QlogFileSink."""

    def __init__(self, directory: str) -> None:
        self.directory = os.fspath(directory)

    def start(self, odcid_hex: str, vantage_point: str) -> QlogFileSink:
        os.makedirs(self.directory, exist_ok=True)
        return QlogFileSink(os.path.join(self.directory, f"{odcid_hex}-{vantage_point}.sqlog"))
