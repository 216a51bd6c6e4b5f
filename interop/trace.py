# Evidence from the wire: a capture taken in the sim namespace, decrypted
# by tshark with the endpoints' key logs, turned into a flat list of QUIC
# packets the test cases can ask questions of.  Owns: running tshark (JSON
# output with duplicate keys folded into lists, the QUIC dissector forced
# on the server's port), reading its nested layers into Packet records
# (long/short header fields, frame types, the TLS handshake messages inside
# CRYPTO frames, ACK_ECN counts, the IP ECN bits, whether decryption
# failed), and the direction of each packet, told by the server's port (a
# client that rebinds changes its address and port, the server does not).
#
# Nothing here judges a test: testcases.py does, from these records.
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF

# tshark's long packet type numbers, by version (RFC 9000 §17.2, RFC 9369 §3.2).
_LONG_TYPES_V1 = {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"}
_LONG_TYPES_V2 = {1: "initial", 2: "0rtt", 3: "handshake", 0: "retry"}

FRAME_PADDING, FRAME_PING, FRAME_ACK, FRAME_ACK_ECN, FRAME_CRYPTO = 0x00, 0x01, 0x02, 0x03, 0x06
FRAME_NEW_TOKEN, FRAME_NEW_CONNECTION_ID, FRAME_PATH_CHALLENGE, FRAME_PATH_RESPONSE = 0x07, 0x18, 0x1A, 0x1B
FRAME_CONNECTION_CLOSE, FRAME_APPLICATION_CLOSE = 0x1C, 0x1D
TLS_CERTIFICATE = 11

TSHARK_TIMEOUT = 600
PREFERRED_PORT = 4434  # where the endpoints put a preferred address (run_endpoint.sh, connectionmigration)


class TraceError(Exception):
    """tshark could not read the capture."""


@dataclass
class Packet:
    """One QUIC packet (several may share a UDP datagram: `frame` says which)."""

    frame: int  # the capture's frame number
    time: float  # seconds since the epoch, as captured
    src: str
    dst: str
    sport: int
    dport: int
    from_client: bool
    ecn: int  # the IP header's ECN bits: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE
    kind: str  # initial, 0rtt, handshake, retry, 1rtt, vn
    version: Optional[int]  # None for 1-RTT packets
    dcid: str  # hex, no separators
    scid: str  # hex; "" for 1-RTT packets
    length: int  # the packet's size on the wire
    datagram: int  # the UDP payload's size (shared by the packets coalesced in it)
    packet_number: Optional[int] = None
    token: str = ""  # Initial token or Retry token (hex)
    key_phase: Optional[int] = None
    decrypted: bool = True
    frames: list[int] = field(default_factory=list)  # frame types, in order
    tls_messages: list[int] = field(default_factory=list)  # TLS handshake types carried in CRYPTO frames
    ack_ecn: Optional[tuple[int, int, int]] = None  # (ECT(0), ECT(1), CE) counts of an ACK_ECN frame
    stream_bytes: int = 0  # STREAM frame payload bytes
    cipher_suite: Optional[int] = None  # the ServerHello's, where this packet completes one


def _hex(value: Any) -> str:
    return str(value or "").replace(":", "")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _int(value: Any, default: Optional[int] = None) -> Optional[int]:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return default


def _walk(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under `key` anywhere below node (tshark nests
    TLS messages under subtrees named after their content)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield from _as_list(v)
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _ecn(layers: dict) -> int:
    ip = layers.get("ip")
    if isinstance(ip, dict):
        return _int(ip.get("ip.dsfield_tree", {}).get("ip.dsfield.ecn"), 0) or 0
    ip6 = layers.get("ipv6")
    if isinstance(ip6, dict):
        return _int(ip6.get("ipv6.tclass_tree", {}).get("ipv6.tclass.ecn"), 0) or 0
    return 0


def _addresses(layers: dict) -> tuple[str, str]:
    ip = layers.get("ip")
    if isinstance(ip, dict):
        return str(ip.get("ip.src", "")), str(ip.get("ip.dst", ""))
    ip6 = layers.get("ipv6")
    if isinstance(ip6, dict):
        return str(ip6.get("ipv6.src", "")), str(ip6.get("ipv6.dst", ""))
    return "", ""


def _frames(quic: dict, packet: Packet) -> None:
    for frame in _as_list(quic.get("quic.frame")):
        if not isinstance(frame, dict):
            continue
        ftype = _int(frame.get("quic.frame_type"))
        if ftype is None:
            continue
        packet.frames.append(ftype)
        if ftype == FRAME_ACK_ECN:
            packet.ack_ecn = (_int(frame.get("quic.ack.ect0_count"), 0) or 0,
                              _int(frame.get("quic.ack.ect1_count"), 0) or 0,
                              _int(frame.get("quic.ack.ecn_ce_count"), 0) or 0)
        elif ftype == FRAME_CRYPTO:
            packet.tls_messages.extend(t for t in (_int(v) for v in _walk(frame, "tls.handshake.type"))
                                       if t is not None)
            if 2 in packet.tls_messages:  # a ServerHello names one suite
                suites = [_int(v) for v in _walk(frame, "tls.handshake.ciphersuite")]
                packet.cipher_suite = suites[0] if len(suites) == 1 else packet.cipher_suite
        elif 0x08 <= ftype <= 0x0F:
            packet.stream_bytes += _int(frame.get("quic.stream.length"), 0) or 0


def _packet(number: int, when: float, layers: dict, quic: dict, server_ports: frozenset) -> Packet:
    src, dst = _addresses(layers)
    udp = layers.get("udp") if isinstance(layers.get("udp"), dict) else {}
    sport, dport = _int(udp.get("udp.srcport"), 0) or 0, _int(udp.get("udp.dstport"), 0) or 0
    common = dict(frame=number, time=when, src=src, dst=dst, sport=sport, dport=dport,
                  from_client=dport in server_ports, ecn=_ecn(layers),
                  datagram=max((_int(udp.get("udp.length"), 8) or 8) - 8, 0),
                  length=_int(quic.get("quic.packet_length"), 0) or 0)
    short = quic.get("quic.short")
    if isinstance(short, dict) or quic.get("quic.header_form") == "0":
        fields = short if isinstance(short, dict) else quic
        packet = Packet(kind="1rtt", version=None, dcid=_hex(fields.get("quic.dcid")), scid="",
                        packet_number=_int(fields.get("quic.packet_number")),
                        key_phase=_int(fields.get("quic.key_phase")), **common)
        _frames(quic, packet)
        packet.decrypted = bool(packet.frames)  # every packet holds a frame; tshark lists none it could not open
        return packet
    version = _int(quic.get("quic.version"), 0) or 0
    if version == 0:
        kind = "vn"
    elif "quic.long.packet_type_v2" in quic:
        kind = _LONG_TYPES_V2.get(_int(quic.get("quic.long.packet_type_v2"), -1), "unknown")
    else:
        table = _LONG_TYPES_V2 if version == QUIC_V2 else _LONG_TYPES_V1
        kind = table.get(_int(quic.get("quic.long.packet_type"), -1), "unknown")
    packet = Packet(kind=kind, version=version, dcid=_hex(quic.get("quic.dcid")), scid=_hex(quic.get("quic.scid")),
                    packet_number=_int(quic.get("quic.packet_number")),
                    token=_hex(quic.get("quic.retry_token") if kind == "retry" else quic.get("quic.token")),
                    **common)
    _frames(quic, packet)
    packet.decrypted = bool(packet.frames) or kind in ("retry", "vn")
    return packet


def read_trace(pcap: Path, server_port: int, keylog: Optional[Path] = None,
               other_ports: Sequence[int] = (PREFERRED_PORT,)) -> list[Packet]:
    """The QUIC packets in pcap, decrypted where keylog (an NSS key log) has
    keys; a packet is the client's when it goes to server_port or one of
    other_ports (a preferred address's)."""
    ports = frozenset((server_port, *other_ports))
    argv = ["tshark", "-n", "-r", str(pcap), *(a for port in sorted(ports) for a in ("-d", f"udp.port=={port},quic")),
            "-T", "json", "--no-duplicate-keys", "-J", "frame ip ipv6 icmp icmpv6 udp quic",
            "--disable-protocol", "http3", "-Y", "quic"]
    if keylog is not None and keylog.exists() and keylog.stat().st_size:
        argv[1:1] = ["-o", f"tls.keylog_file:{keylog}"]
    proc = subprocess.run(argv, capture_output=True, timeout=TSHARK_TIMEOUT)
    if proc.returncode != 0:
        raise TraceError(f"tshark failed on {pcap}: {proc.stderr.decode(errors='replace')[-500:]}")
    try:
        records = json.loads(proc.stdout or b"[]")
    except json.JSONDecodeError as exc:
        raise TraceError(f"tshark's JSON for {pcap} did not parse: {exc}") from None
    packets: list[Packet] = []
    for record in records:
        layers = record.get("_source", {}).get("layers", {})
        if "icmp" in layers or "icmpv6" in layers:
            continue  # a packet quoted in an ICMP error (a closed port), not one that was sent
        frame = layers.get("frame") if isinstance(layers.get("frame"), dict) else {}
        number = _int(frame.get("frame.number"), 0) or 0
        when = float(frame.get("frame.time_epoch", 0.0) or 0.0)
        for quic in _as_list(layers.get("quic")):
            if isinstance(quic, dict):
                packets.append(_packet(number, when, layers, quic, ports))
    return packets


def merge_keylogs(paths: Iterable[Path], out: Path) -> Optional[Path]:
    """One key log from the client's and the server's (either may lack
    some secrets, e.g. a client that only logs its own)."""
    lines: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if line.strip() and line not in seen:
                    seen.add(line)
                    lines.append(line)
    if not lines:
        return None
    out.write_text("\n".join(lines) + "\n")
    return out
