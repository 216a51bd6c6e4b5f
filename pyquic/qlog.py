# qlog for pyquic connections: JSON-SEQ (RFC 7464 record separators) in the
# shape of draft-ietf-quic-qlog-main-schema / quic-events (qlog 0.4), which
# qvis opens: a header record with qlog_format "JSON-SEQ" and the trace's
# common fields, then one record per event (transport:packet_sent,
# transport:packet_received, recovery:metrics_updated, security:key_discarded,
# connectivity:connection_closed) with times in milliseconds relative to the
# first event.
#
# The core only builds event dicts (QlogTrace).  Where they go is a writer:
# any object with write(record: str) and close().  configuration.quic_logger
# may be a factory with start(odcid_hex, vantage_point) -> writer (the
# asyncio layer's choice); with configuration.qlog_dir, QlogDirectory opens
# one file per connection named by its original destination CID.  Opening
# and writing files happens in QlogDirectory/QlogFileWriter only.
from __future__ import annotations

import json
import os
from typing import Any, Optional

from .frames import Ack, ConnectionClose, Crypto, Datagram, MaxData, MaxStreamData, Padding, Ping, Stream
from .sent_records import K_ACK, K_CRYPTO, K_HANDSHAKE_DONE, K_NEW_CID, K_PING, K_RETIRE_CID, K_STREAM, K_STREAM_CTRL
from .packet import PacketType

RECORD_SEPARATOR = "\x1e"
_SPACE_PACKET = {0: "initial", 1: "handshake", 2: "1RTT"}
_SPACE_NAME = {0: "initial", 1: "handshake", 2: "application_data"}
_PACKET_NAME = {
    PacketType.INITIAL: "initial",
    PacketType.HANDSHAKE: "handshake",
    PacketType.ZERO_RTT: "0RTT",
    PacketType.ONE_RTT: "1RTT",
}


class QlogFileWriter:
    """Writes JSON-SEQ records to one file (the only place qlog touches files)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "w", encoding="utf-8")

    def write(self, record: str) -> None:
        self._file.write(record)

    def close(self) -> None:
        self._file.close()


class QlogDirectory:
    """A quic_logger that puts each connection's trace in `directory`/<odcid>.sqlog."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def start(self, odcid_hex: str, vantage_point: str) -> QlogFileWriter:
        os.makedirs(self.directory, exist_ok=True)
        return QlogFileWriter(os.path.join(self.directory, f"{odcid_hex}.sqlog"))


def start_trace(configuration: Any, odcid: bytes, is_client: bool) -> Optional["QlogTrace"]:
    """A trace for a new connection, or None when qlog is off."""
    factory = configuration.quic_logger
    if factory is None and configuration.qlog_dir:
        factory = QlogDirectory(configuration.qlog_dir)
    if factory is None:
        return None
    vantage = "client" if is_client else "server"
    return QlogTrace(factory.start(odcid.hex(), vantage), odcid, vantage)


class QlogTrace:
    """Builds the qlog records of one connection and hands them to a writer."""

    def __init__(self, writer: Any, odcid: bytes, vantage_point: str) -> None:
        self.writer = writer
        self.reference: Optional[float] = None
        self._last = 0.0
        header = {
            "qlog_version": "0.4",
            "qlog_format": "JSON-SEQ",
            "file_schema": "urn:ietf:params:qlog:file:sequential",
            "serialization_format": "application/qlog+json-seq",
            "title": "pyquic",
            "trace": {
                "common_fields": {"ODCID": odcid.hex(), "time_format": "relative", "reference_time": 0},
                "vantage_point": {"name": "pyquic", "type": vantage_point},
            },
        }
        writer.write(RECORD_SEPARATOR + json.dumps(header) + "\n")

    def event(self, now: float, name: str, data: dict) -> None:
        if self.reference is None:
            self.reference = now
        self._last = now - self.reference
        record = {"time": round((now - self.reference) * 1000, 3), "name": name, "data": data}
        self.writer.write(RECORD_SEPARATOR + json.dumps(record) + "\n")

    def packet_sent(self, now: float, space: int, pn: int, size: int, records: list, zero_rtt: bool = False) -> None:
        self.event(
            now,
            "transport:packet_sent",
            {
                "header": {"packet_type": "0RTT" if zero_rtt else _SPACE_PACKET[int(space)], "packet_number": pn},
                "raw": {"length": size},
                "frames": [_record_frame(r) for r in records],
            },
        )

    def packet_received(self, now: float, ptype: PacketType, pn: int, size: int, frames: list) -> None:
        self.event(
            now,
            "transport:packet_received",
            {
                "header": {"packet_type": _PACKET_NAME.get(ptype, "unknown"), "packet_number": pn},
                "raw": {"length": size},
                "frames": [_frame(f) for f in frames],
            },
        )

    def metrics(self, now: float, loss: Any) -> None:
        data = loss.log_metrics()
        out = {}
        for key, value in data.items():
            if key in ("smoothed_rtt", "rtt_variance", "latest_rtt", "min_rtt"):
                out[key] = round(value * 1000, 3)
            else:
                out[key] = value
        self.event(now, "recovery:metrics_updated", out)

    def key_discarded(self, now: float, space: int) -> None:
        self.event(now, "security:key_discarded", {"key_type": f"{_SPACE_NAME[int(space)]}_keys", "trigger": "tls"})

    def connection_closed(self, error_code: int, reason: str, now: Optional[float] = None) -> None:
        """At `now` (a timeout's time), else at the last event's."""
        if now is None:
            now = (self.reference if self.reference is not None else 0.0) + self._last
        self.event(now, "connectivity:connection_closed", {"error_code": error_code, "reason": reason})

    def close(self) -> None:
        self.writer.close()


def _record_frame(record: tuple) -> dict:
    kind = record[0]
    if kind == K_STREAM:
        return {"frame_type": "stream", "stream_id": record[1], "offset": record[2], "length": record[3], "fin": record[4]}
    if kind == K_ACK:
        return {"frame_type": "ack", "largest_acknowledged": record[2]}
    if kind == K_CRYPTO:
        return {"frame_type": "crypto", "offset": record[2], "length": record[3]}
    if kind == K_PING:
        return {"frame_type": "ping"}
    if kind == K_HANDSHAKE_DONE:
        return {"frame_type": "handshake_done"}
    if kind == K_NEW_CID:
        return {"frame_type": "new_connection_id", "sequence_number": record[1].sequence_number}
    if kind == K_RETIRE_CID:
        return {"frame_type": "retire_connection_id", "sequence_number": record[1]}
    if kind == K_STREAM_CTRL:
        return _frame(record[1])
    return {"frame_type": "unknown"}


def _frame(frame: Any) -> dict:
    kind = type(frame)
    if kind is Stream:
        return {"frame_type": "stream", "stream_id": frame.stream_id, "offset": frame.offset,
                "length": len(frame.data), "fin": frame.fin}
    if kind is Ack:
        return {"frame_type": "ack", "ack_delay": frame.delay,
                "acked_ranges": [[start, stop - 1] for start, stop in reversed(frame.ranges)]}
    if kind is Crypto:
        return {"frame_type": "crypto", "offset": frame.offset, "length": len(frame.data)}
    if kind is Padding:
        return {"frame_type": "padding", "length": frame.length}
    if kind is Ping:
        return {"frame_type": "ping"}
    if kind is MaxData:
        return {"frame_type": "max_data", "maximum": frame.maximum}
    if kind is MaxStreamData:
        return {"frame_type": "max_stream_data", "stream_id": frame.stream_id, "maximum": frame.maximum}
    if kind is Datagram:
        return {"frame_type": "datagram", "length": len(frame.data)}
    if kind is ConnectionClose:
        return {"frame_type": "connection_close", "error_space": "application" if frame.application else "transport",
                "error_code": frame.error_code, "reason": frame.reason}
    name = kind.__name__
    snake = "".join("_" + ch.lower() if ch.isupper() else ch for ch in name).lstrip("_")
    return {"frame_type": snake}


__all__ = ["QlogTrace", "QlogDirectory", "QlogFileWriter", "start_trace", "RECORD_SEPARATOR"]
