# Writing what in-memory tests put on the wire as a pcap file, so tshark can
# read it (it needs no capture privileges that way): IPv4 packets in the raw
# link type, carrying UDP datagrams or TCP segments (one-way sequence
# numbers, no handshake; tshark follows a stream without its SYN).
# Checksums are left zero: UDP allows it over IPv4 and tshark does not check.
from __future__ import annotations

import socket
import struct
from pathlib import Path

LINKTYPE_RAW = 101
TCP_SEGMENT = 1400


def _ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    return header + payload


class PcapWriter:
    def __init__(self) -> None:
        self._records: list[tuple[float, bytes]] = []
        self._tcp_seq: dict[tuple, int] = {}

    def udp(self, time: float, src: tuple, dst: tuple, data: bytes) -> None:
        udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(data), 0) + data
        self._records.append((time, _ipv4(src[0], dst[0], 17, udp)))

    def tcp(self, time: float, src: tuple, dst: tuple, data: bytes) -> None:
        """Bytes one side wrote to its TCP stream, as PSH/ACK segments."""
        key = (src, dst)
        for at in range(0, len(data), TCP_SEGMENT):
            piece = data[at : at + TCP_SEGMENT]
            seq = self._tcp_seq.get(key, 1000)
            ack = self._tcp_seq.get((dst, src), 1000)
            tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, 0x18, 65535, 0, 0) + piece
            self._records.append((time, _ipv4(src[0], dst[0], 6, tcp)))
            self._tcp_seq[key] = (seq + len(piece)) & 0xFFFFFFFF

    def write(self, path: Path) -> None:
        out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for time, packet in self._records:
            seconds = int(time)
            out += struct.pack("<IIII", seconds, int((time - seconds) * 1e6), len(packet), len(packet))
            out += packet
        Path(path).write_bytes(bytes(out))


def tap(pair, wire: PcapWriter, client: tuple, server: tuple, base: float = 1_700_000_000) -> None:
    """Record every datagram an in-memory tests.quic_pair.Pair sends into
    wire, with the given addresses and its simulated clock (from base)."""
    transmit = pair._transmit

    def capture(who, link, data, addr=None, codepoint=0):
        src, dst = (client, server) if who == "client" else (server, client)
        wire.udp(base + pair.now, src, dst, data)
        transmit(who, link, data, addr, codepoint)

    pair._transmit = capture
