# interop/sim.py: the network simulator process.  Owns the scenarios (their
# command syntax, after the quic-interop-runner's ns-3 ones: simple-p2p,
# drop-rate, corrupt-rate, droplist, blackhole, rebind), the per-direction
# link model (tail-drop queue of --queue packets, serialisation at
# --bandwidth, propagation --delay), the impairments, the client NAT of the
# rebind scenario, the pcap captures of both sides and the final counts in the
# sim log, and the frame forwarder: run inside the sim namespace (see
# interop/network.py), it reads Ethernet frames with AF_PACKET on both veths,
# rewrites MACs, decrements TTL / hop limit and sends them out of the other
# veth.  The kernel there does not forward; it only answers ARP/NDP for the
# gateway addresses.  The loopback relay of the fallback (interop/network.py)
# reuses the link model, NAT, captures and loop from here.
# Self-contained on purpose (standard library only, no package imports), so
# that `ip netns exec SIM python interop/sim.py ...` needs no PYTHONPATH.
# One thread, one select loop: each direction's packets leave in FIFO order at
# known times (a deque, not a heap), so the loop sleeps until the earliest.
from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import os
import random
import select
import shlex
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field, replace

# ---------------------------------------------------------------- scenarios

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
_RATE_UNITS = {"bps": 1.0, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9}
_COMMON = ("delay", "bandwidth", "queue")
_LOSSY = ("rate_to_server", "rate_to_client", "burst_to_server", "burst_to_client")
SCENARIO_FLAGS = {
    "simple-p2p": _COMMON,
    "drop-rate": _COMMON + _LOSSY,
    "corrupt-rate": _COMMON + _LOSSY,
    "droplist": _COMMON + ("drops_to_server", "drops_to_client"),
    "blackhole": _COMMON + ("on", "off"),
    "rebind": _COMMON + ("first_rebind", "rebind_freq", "rebind_addr"),
}
_REQUIRED = {"blackhole": ("on", "off"), "rebind": ("first_rebind", "rebind_freq")}


def _split_unit(text: str, units: dict, what: str) -> float:
    low = text.strip().lower()
    # Longest suffix first: "ms" must not be read as "s".
    for unit in sorted(units, key=len, reverse=True):
        if low.endswith(unit):
            number = low[: -len(unit)]
            break
    else:
        unit, number = None, low
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"bad {what}: {text!r}") from None
    if value < 0:
        raise ValueError(f"negative {what}: {text!r}")
    # A bare number is taken in the base unit (seconds, bit/s).
    return value * (units[unit] if unit else 1.0)


def parse_duration(text: str) -> float:
    """'15ms' -> 0.015 (seconds)."""
    return _split_unit(text, _DURATION_UNITS, "duration")


def parse_rate(text: str) -> float:
    """'10Mbps' -> 10e6 (bit/s)."""
    return _split_unit(text, _RATE_UNITS, "bandwidth")


@dataclass(frozen=True)
class Scenario:
    """One scenario with its parameters in base units.  Flags the reference
    always passes but that are missing here take the values its test cases
    use (15 ms, 10 Mbit/s, 25 packets)."""

    name: str = "simple-p2p"
    delay: float = 0.015  # seconds, one way
    bandwidth: float = 10e6  # bit/s
    queue: int = 25  # packets per direction
    rate_to_server: float = 0.0  # fraction of packets dropped / corrupted
    rate_to_client: float = 0.0
    burst_to_server: int = 0  # longest run of consecutive impaired packets; 0: no limit
    burst_to_client: int = 0
    drops_to_server: frozenset = field(default_factory=frozenset)  # 1-based packet numbers
    drops_to_client: frozenset = field(default_factory=frozenset)
    on: float = 0.0  # blackhole: forward for `on`, then drop for `off`, repeat
    off: float = 0.0
    first_rebind: float = 0.0
    rebind_freq: float = 0.0
    rebind_addr: bool = False
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> "Scenario":
        """The reference's syntax, e.g. "drop-rate --delay=15ms --rate_to_server=2".
        Unknown scenarios and flags raise ValueError."""
        tokens = shlex.split(text)
        if not tokens:
            raise ValueError("empty scenario")
        name, rest = tokens[0], tokens[1:]
        if name not in SCENARIO_FLAGS:
            raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIO_FLAGS)})")
        allowed = SCENARIO_FLAGS[name]
        values: dict = {}
        i = 0
        while i < len(rest):
            token = rest[i]
            i += 1
            if not token.startswith("--"):
                raise ValueError(f"{name}: unexpected argument {token!r}")
            key, eq, value = token[2:].partition("=")
            # The reference mixes rate_to_server and first-rebind: accept both spellings.
            key = key.replace("-", "_")
            if key not in allowed:
                raise ValueError(f"{name}: unknown flag --{key} (allowed: {', '.join(allowed)})")
            if key in values:
                raise ValueError(f"{name}: --{key} given twice")
            if key == "rebind_addr":
                if eq:
                    raise ValueError("--rebind-addr takes no value")
                values[key] = True
                continue
            if not eq:
                if i >= len(rest):
                    raise ValueError(f"{name}: --{key} needs a value")
                value = rest[i]
                i += 1
            values[key] = _convert(key, value)
        for key in _REQUIRED.get(name, ()):
            if key not in values:
                raise ValueError(f"{name}: --{key.replace('_', '-')} is required")
        scn = cls(name=name, **values)
        if scn.bandwidth <= 0 or scn.queue < 1:
            raise ValueError(f"{name}: bandwidth must be > 0 and queue >= 1")
        if name == "blackhole" and (scn.on <= 0 or scn.off <= 0):
            raise ValueError("blackhole: --on and --off must be > 0")
        if name == "rebind" and scn.rebind_freq <= 0:
            raise ValueError("rebind: --rebind-freq must be > 0")
        return replace(scn, text=" ".join(tokens))

    def __str__(self) -> str:
        return self.text or self.name


def _convert(key: str, value: str):
    if key in ("delay", "on", "off", "first_rebind", "rebind_freq"):
        return parse_duration(value)
    if key == "bandwidth":
        return parse_rate(value)
    if key in ("queue", "burst_to_server", "burst_to_client"):
        n = int(value)
        if n < 0:
            raise ValueError(f"--{key} must be >= 0")
        return n
    if key in ("rate_to_server", "rate_to_client"):
        pct = float(value)
        if not 0 <= pct <= 100:
            raise ValueError(f"--{key} is a percentage (0..100)")
        return pct / 100.0
    if key in ("drops_to_server", "drops_to_client"):
        numbers = frozenset(int(n) for n in value.split(",") if n.strip())
        if any(n < 1 for n in numbers):
            raise ValueError(f"--{key}: packet numbers start at 1")
        return numbers
    raise ValueError(f"no conversion for --{key}")


# ---------------------------------------------------------------- checksums


def ones_sum(data: bytes) -> int:
    """One's-complement sum of the 16-bit big-endian words of `data`.
    65536 = 1 (mod 65535), so the sum of the words is the number that the
    bytes spell, mod 65535: one C-level conversion, no loop over words."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    n = int.from_bytes(data, "big")
    s = n % 0xFFFF
    return 0xFFFF if s == 0 and n else s


def _fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def checksum(data: bytes) -> int:
    return ~ones_sum(data) & 0xFFFF


def csum_adjust(csum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 incremental update, HC' = ~(~HC + ~m + m'), for a change of
    equal-length, word-aligned fields: no need to sum the whole payload."""
    x = (~csum & 0xFFFF) + (0xFFFF - ones_sum(old)) + ones_sum(new)
    return ~_fold(x) & 0xFFFF


# ---------------------------------------------------------------- link model

PASS, DROP, CORRUPT = 0, 1, 2
LATE_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2, 5)  # error histogram (|actual - due|) reported in STATS
WAKE_EARLY = 0.0001
RELEASE_EARLY = 0.00005  # a packet this close to its due time goes now rather than after another sleep
MAX_IN_FLIGHT = 20000  # propagation pipe per direction: 750 ms at 10 Mbit/s of 64-byte frames fits


class Link:
    """One direction: impairment verdicts, then the queue and the wire."""

    def __init__(self, name: str, scn: Scenario, rng: random.Random, to_server: bool) -> None:
        self.name = name
        self.scn = scn
        self.rng = rng
        self.rate = scn.rate_to_server if to_server else scn.rate_to_client
        self.burst = scn.burst_to_server if to_server else scn.burst_to_client
        self.drops = scn.drops_to_server if to_server else scn.drops_to_client
        self.corrupting = scn.name == "corrupt-rate"
        self.blackhole = scn.name == "blackhole"
        self.seconds_per_bit = 1.0 / scn.bandwidth
        self.backlog: collections.deque = collections.deque()  # end of serialisation of each queued packet
        self.pipe: collections.deque = collections.deque()  # (release time, item), FIFO in time order
        self.link_free = 0.0
        self.index = 0
        self.run = 0  # consecutive impaired packets, for the burst limit
        self.stats = dict(received=0, forwarded=0, dropped_rate=0, dropped_list=0, dropped_blackhole=0,
                          dropped_queue=0, dropped_pipe=0, dropped_ttl=0, dropped_stale_binding=0,
                          dropped_send=0, corrupted=0, in_flight_at_stop=0)
        # How late packets left against their due time: the sim's own timing error.
        self.late = dict(n=0, sum_ms=0.0, max_ms=0.0, **{f"over_{t}ms": 0 for t in LATE_BUCKETS_MS})
        # (the name says late; early releases, at most RELEASE_EARLY, count by their size too)

    def late_by(self, seconds: float) -> None:
        late = self.late
        ms = seconds * 1000.0
        late["n"] += 1
        late["sum_ms"] += ms
        if ms > late["max_ms"]:
            late["max_ms"] = ms
        for t in LATE_BUCKETS_MS:
            if ms <= t:
                break
            late[f"over_{t}ms"] += 1

    def judge(self, now: float, epoch: float) -> int:
        """Counts the packet and says what happens to it before it is queued."""
        self.index += 1
        st = self.stats
        st["received"] += 1
        if self.blackhole:
            period = self.scn.on + self.scn.off
            if (now - epoch) % period >= self.scn.on:
                st["dropped_blackhole"] += 1
                return DROP
        if self.index in self.drops:
            st["dropped_list"] += 1
            return DROP
        if self.rate:
            if self.rng.random() < self.rate and (not self.burst or self.run < self.burst):
                self.run += 1
                if self.corrupting:
                    return CORRUPT  # counted by the caller once a byte really changed
                st["dropped_rate"] += 1
                return DROP
            self.run = 0
        return PASS

    def enqueue(self, now: float, size: int, item) -> bool:
        backlog = self.backlog
        while backlog and backlog[0] <= now:
            backlog.popleft()
        if len(backlog) >= self.scn.queue:
            self.stats["dropped_queue"] += 1  # tail drop
            return False
        if len(self.pipe) >= MAX_IN_FLIGHT:
            self.stats["dropped_pipe"] += 1
            return False
        start = now if now > self.link_free else self.link_free
        self.link_free = end = start + size * 8 * self.seconds_per_bit
        backlog.append(end)
        self.pipe.append((end + self.scn.delay, item))
        return True

    def next_due(self):
        return self.pipe[0][0] if self.pipe else None

    def pop_due(self, now: float):
        pipe = self.pipe
        horizon = now + RELEASE_EARLY
        while pipe and pipe[0][0] <= horizon:
            due, item = pipe.popleft()
            self.late_by(abs(now - due))
            yield item

    def stop(self) -> None:
        self.stats["in_flight_at_stop"] = len(self.pipe)
        self.pipe.clear()


# ---------------------------------------------------------------- captures

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101


class Pcap:
    """A classic pcap file (microseconds), tshark-readable.  Buffered; flushed
    by the loop about once a second so a capture can be read while running."""

    def __init__(self, path: str, linktype: int) -> None:
        self.f = open(path, "wb", buffering=1 << 20)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        self.frames = 0

    def write(self, wall: float, data: bytes) -> None:
        sec = int(wall)
        self.f.write(struct.pack("<IIII", sec, int((wall - sec) * 1e6), len(data), len(data)))
        self.f.write(data)
        self.frames += 1

    def close(self) -> None:
        self.f.close()


# ---------------------------------------------------------------- the NAT of "rebind"

MAX_BINDINGS = 1024


class Rebinder:
    """Client-side NAT.  Until the first rebind nothing is translated; from
    then on every client (address, port) gets a fresh binding each period,
    and what the server sends to any other (older) binding is dropped, as a
    real NAT forgets it."""

    def __init__(self, scn: Scenario, rng: random.Random, new_address) -> None:
        self.scn = scn
        self.rng = rng
        self.new_address = new_address  # (old address, family) -> address for a new binding
        self.generation = 0
        self.fwd: dict = {}
        self.rev: dict = {}

    def tick(self, now: float, epoch: float) -> bool:
        due = epoch + self.scn.first_rebind + self.generation * self.scn.rebind_freq
        if now < due:
            return False
        self.generation += 1
        self.fwd.clear()
        self.rev.clear()
        return True

    def outbound(self, key: tuple):
        if self.generation == 0:
            return key
        mapped = self.fwd.get(key)
        if mapped is None:
            if len(self.fwd) >= MAX_BINDINGS:
                oldest = next(iter(self.fwd))
                self.rev.pop(self.fwd.pop(oldest), None)
            address = self.new_address(key[0]) if self.scn.rebind_addr else key[0]
            while True:
                mapped = (address, self.rng.randrange(1024, 65536))
                if mapped not in self.rev and mapped != key:
                    break
            self.fwd[key] = mapped
            self.rev[mapped] = key
        return mapped

    def inbound(self, key: tuple):
        if self.generation == 0:
            return key
        return self.rev.get(key)


# ---------------------------------------------------------------- shared loop


class SimLoop:
    def __init__(self, scn: Scenario, seed: int, log_path: str) -> None:
        self.scn = scn
        self.rng = random.Random(seed)
        self.links = (Link("to_server", scn, random.Random(seed * 2 + 1), True),
                      Link("to_client", scn, random.Random(seed * 2 + 2), False))
        self.rebinder = None
        self.epoch = None  # first packet: blackhole and rebind times count from it
        self.mono0 = time.monotonic()
        self.wall0 = time.time()
        self.stopping = False
        self.log = open(log_path, "a", buffering=1)
        self.extra: dict = {}
        self.pcaps: tuple = ()
        self.log_line(f"sim start: scenario {scn} seed {seed}")

    def log_line(self, text: str) -> None:
        self.log.write(f"{time.monotonic() - self.mono0:9.4f} {text}\n")

    def wall(self, now: float) -> float:
        return self.wall0 + (now - self.mono0)

    def start_epoch(self, now: float) -> None:
        # The reference's scenarios count from simulation start; here the
        # endpoints start seconds after the sim (the server first), so the
        # first packet is the honest zero for on/off and rebind periods.
        self.epoch = now
        self.log_line("first packet: blackhole/rebind clock starts")

    def check_rebind(self, now: float) -> None:
        if self.rebinder is not None and self.epoch is not None and self.rebinder.tick(now, self.epoch):
            self.log_line(f"rebind #{self.rebinder.generation}: new client bindings from now on")
            self.on_rebind()

    def on_rebind(self) -> None:
        pass

    def loop(self, fds: dict) -> None:
        """fds: {fd or socket: handler(now)}.  Runs until SIGTERM/SIGINT."""
        links = self.links
        next_flush = time.monotonic() + 1.0
        while not self.stopping:
            now = time.monotonic()
            self.release(now)
            due = [t for t in (links[0].next_due(), links[1].next_due()) if t is not None]
            # Wake a little before the due time: select's wake-up itself takes
            # about 0.1 ms here, so aiming at the due time would make every
            # packet late by that much.
            timeout = min(due) - now - WAKE_EARLY if due else 0.25
            timeout = min(max(timeout, 0.0), 0.25)  # bounded, so a stop request is seen soon
            try:
                ready, _, _ = select.select(list(fds), [], [], timeout)
            except InterruptedError:
                continue
            for r in ready:
                fds[r](time.monotonic())
            if now >= next_flush:
                next_flush = now + 1.0
                self.flush()

    def release(self, now: float) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        for p in self.pcaps:
            p.f.flush()

    def finish(self) -> None:
        for link in self.links:
            link.stop()
        self.flush()
        for link in self.links:
            late = dict(link.late, mean_ms=round(link.late["sum_ms"] / max(link.late["n"], 1), 4))
            late["max_ms"] = round(late["max_ms"], 4)
            del late["sum_ms"]
            link.stats["late"] = late
        stats = {"scenario": str(self.scn), "to_server": self.links[0].stats, "to_client": self.links[1].stats,
                 "rebinds": self.rebinder.generation if self.rebinder else 0,
                 "seconds": round(time.monotonic() - self.mono0, 3),
                 "cpu_seconds": round(time.process_time(), 3)}
        stats.update(self.extra)
        self.log_line("STATS " + json.dumps(stats, sort_keys=True))
        self.log.close()
        for p in self.pcaps:
            p.close()


# ---------------------------------------------------------------- frames mode

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
MAX_FRAME = 1514  # MTU 1500 + Ethernet header; larger means an offload is still on
RECV_BURST = 64  # frames read per wake-up before due packets are released again


def _read_mac(ifname: str) -> bytes:
    with open(f"/sys/class/net/{ifname}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


class FrameSim(SimLoop):
    """Forwards between two veths of the sim namespace (side 0: client, 1: server)."""

    def __init__(self, scn: Scenario, seed: int, log_path: str, ifnames: tuple, peer_macs: tuple,
                 pcaps: tuple, own: list, client_nets: list) -> None:
        super().__init__(scn, seed, log_path)
        self.own_macs = tuple(_read_mac(n) for n in ifnames)
        self.peer_macs = peer_macs
        self.own4 = {ipaddress.ip_address(a).packed for a in own if ":" not in a}
        self.own6 = {ipaddress.ip_address(a).packed for a in own if ":" in a}
        self.client_nets = [ipaddress.ip_network(n) for n in client_nets]
        self.reserved = {ipaddress.ip_address(a).packed for a in own}
        self.pcaps = tuple(Pcap(p, LINKTYPE_ETHERNET) for p in pcaps)
        self.max_frame = 0
        self.oversize = 0
        self.arrival_lag_max = self.arrival_lag_sum = 0.0  # kernel stamp to our read
        self.arrival_lag_n = 0
        self.socks = []
        for name in ifnames:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            # Bursts of a window's worth of packets must not be lost before we read them.
            try:
                s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            # What we send ourselves must not come back as input.
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.bind((name, ETH_P_ALL))
            s.setblocking(False)
            self.socks.append(s)
        if scn.name == "rebind":
            self.rebinder = Rebinder(scn, self.rng, self._new_client_address)

    def _new_client_address(self, old: bytes) -> bytes:
        for net in self.client_nets:
            if net.max_prefixlen == len(old) * 8:
                while True:
                    host = net.network_address + self.rng.randrange(3, min(net.num_addresses - 1, 1 << 62))
                    if host.packed not in self.reserved and host.packed != old:
                        return host.packed
        return old

    def run(self) -> None:
        fds = {self.socks[0]: lambda now: self._receive(0, now), self.socks[1]: lambda now: self._receive(1, now)}
        self.loop(fds)

    def _receive(self, side: int, now: float) -> None:
        sock = self.socks[side]
        # The kernel's arrival stamp (CLOCK_REALTIME) moved onto the monotonic
        # clock: the delay then counts from when the frame arrived, not from
        # when this process got round to reading it.
        offset = time.time() - time.monotonic()
        for _ in range(RECV_BURST):
            try:
                frame, anc, _flags, addr = sock.recvmsg(65536, 64)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            now = time.monotonic()
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack_from("qq", data)
                    lag = now - (sec + nsec * 1e-9 - offset)
                    if 0 <= lag < 1.0:
                        now -= lag
                        self.arrival_lag_max = max(self.arrival_lag_max, lag)
                        self.arrival_lag_sum += lag
                        self.arrival_lag_n += 1
            self._frame(side, frame, now)

    def _frame(self, side: int, frame: bytes, now: float) -> None:
        self.pcaps[side].write(self.wall(now), frame)
        size = len(frame)
        if size > self.max_frame:
            self.max_frame = size
        if frame[0:6] != self.own_macs[side]:
            return  # broadcast / multicast: ARP, NDP, MLD are the kernel's business
        ethertype = frame[12:14]
        if ethertype == b"\x08\x00":
            v6 = False
            dst = frame[30:34]
            if dst in self.own4 or dst[0] >= 224:
                return
            if frame[22] <= 1:
                self.links[side].stats["dropped_ttl"] += 1
                return
        elif ethertype == b"\x86\xdd":
            v6 = True
            dst = frame[38:54]
            if dst in self.own6 or dst[0] == 0xFF or (dst[0] == 0xFE and dst[1] & 0xC0 == 0x80):
                return
            if frame[21] <= 1:
                self.links[side].stats["dropped_ttl"] += 1
                return
        else:
            return
        if size > MAX_FRAME:
            self.oversize += 1  # cannot leave through a 1500-byte MTU: offloads are on somewhere
            return
        if self.epoch is None:
            self.start_epoch(now)
        self.check_rebind(now)
        link = self.links[side]
        verdict = link.judge(now, self.epoch)
        if verdict == DROP:
            return
        buf = bytearray(frame)
        if v6:
            buf[21] -= 1  # hop limit; no header checksum in IPv6
            udp = 54 if buf[20] == 17 else None
            addr_at, addr_len = (22, 16) if side == 0 else (38, 16)
        else:
            ttl_word = bytes(buf[22:24])
            buf[22] -= 1
            buf[24:26] = struct.pack("!H", csum_adjust(struct.unpack_from("!H", buf, 24)[0], ttl_word, bytes(buf[22:24])))
            ihl = (buf[14] & 0x0F) * 4
            fragmented = struct.unpack_from("!H", buf, 20)[0] & 0x3FFF  # MF or an offset
            udp = 14 + ihl if buf[23] == 17 and not fragmented else None
            addr_at, addr_len = (26, 4) if side == 0 else (30, 4)
        if self.rebinder is not None and udp is not None:
            if not self._translate(buf, side, v6, udp, addr_at, addr_len):
                link.stats["dropped_stale_binding"] += 1
                return
        if verdict == CORRUPT and udp is not None and self._corrupt(buf, v6, udp):
            link.stats["corrupted"] += 1
        out = 1 - side
        buf[0:6] = self.peer_macs[out]
        buf[6:12] = self.own_macs[out]
        link.enqueue(now, size, bytes(buf))

    def _translate(self, buf: bytearray, side: int, v6: bool, udp: int, addr_at: int, addr_len: int) -> bool:
        """NAT: the client's source on the way out (side 0), the destination
        on the way back; the checksums follow the changed fields."""
        port_at = udp if side == 0 else udp + 2
        old = bytes(buf[addr_at:addr_at + addr_len]) + bytes(buf[port_at:port_at + 2])
        key = (old[:addr_len], struct.unpack("!H", old[addr_len:])[0])
        new_key = self.rebinder.outbound(key) if side == 0 else self.rebinder.inbound(key)
        if new_key is None:
            return False
        if new_key == key:
            return True
        new = new_key[0] + struct.pack("!H", new_key[1])
        buf[addr_at:addr_at + addr_len] = new_key[0]
        buf[port_at:port_at + 2] = new[addr_len:]
        if not v6 and old[:addr_len] != new_key[0]:
            ip_csum = struct.unpack_from("!H", buf, 24)[0]
            struct.pack_into("!H", buf, 24, csum_adjust(ip_csum, old[:addr_len], new_key[0]))
        udp_csum = struct.unpack_from("!H", buf, udp + 6)[0]
        if udp_csum or v6:  # IPv4 UDP may carry no checksum at all (0): leave it so
            struct.pack_into("!H", buf, udp + 6, csum_adjust(udp_csum, old, new) or 0xFFFF)
        return True

    def _corrupt(self, buf: bytearray, v6: bool, udp: int) -> bool:
        """One random byte of the UDP payload changes; the UDP checksum is
        fixed so the datagram reaches the application (QUIC must notice)."""
        length = struct.unpack_from("!H", buf, udp + 4)[0] - 8
        if length <= 0:
            return False
        pos = udp + 8 + self.rng.randrange(length)
        word = udp + ((pos - udp) & ~1)  # the 16-bit word of the segment holding that byte
        end = udp + 8 + length
        old = bytes(buf[word:min(word + 2, end)])
        buf[pos] ^= self.rng.randrange(1, 256)
        new = bytes(buf[word:min(word + 2, end)])
        udp_csum = struct.unpack_from("!H", buf, udp + 6)[0]
        if udp_csum or v6:
            struct.pack_into("!H", buf, udp + 6, csum_adjust(udp_csum, old, new) or 0xFFFF)
        return True

    def release(self, now: float) -> None:
        for link, out in ((self.links[0], 1), (self.links[1], 0)):
            if not link.pipe or link.pipe[0][0] > now + RELEASE_EARLY:
                continue
            sock, pcap, wall = self.socks[out], self.pcaps[out], self.wall(now)
            for frame in link.pop_due(now):
                try:
                    sock.send(frame)
                except OSError:
                    link.stats["dropped_send"] += 1
                    continue
                link.stats["forwarded"] += 1
                pcap.write(wall, frame)

    def finish(self) -> None:
        kernel = {}
        for name, s in zip(("client_side", "server_side"), self.socks):
            packets, drops = struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            kernel[name] = {"packets": packets, "drops": drops}
        lag = {"max_ms": round(self.arrival_lag_max * 1000, 4),
               "mean_ms": round(self.arrival_lag_sum * 1000 / max(self.arrival_lag_n, 1), 4)}
        self.extra.update(max_frame=self.max_frame, oversize=self.oversize, kernel_socket=kernel, read_lag=lag,
                          captured={"client_side": self.pcaps[0].frames, "server_side": self.pcaps[1].frames})
        super().finish()
        for s in self.socks:
            s.close()


# ---------------------------------------------------------------- command line


def arg_parser(description: str) -> argparse.ArgumentParser:
    """The options every sim process takes (frames here, the relay in interop/network.py)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--scenario", required=True, help='e.g. "simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25"')
    ap.add_argument("--log", required=True, help="the sim log (appended; ends with a STATS json line)")
    ap.add_argument("--client-pcap", required=True)
    ap.add_argument("--server-pcap", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nice", type=int, default=-10, help="priority change for this process (needs root to raise)")
    return ap


def serve(sim: SimLoop, ready: dict, nice: int) -> int:
    """Runs a sim until SIGTERM/SIGINT, after one READY line on stdout."""
    def stop(signum, frame):
        sim.stopping = True

    if nice:
        # The sim is the clock of the experiment and uses little CPU; on a
        # small shared machine it must not wait behind the endpoints it times.
        try:
            os.nice(nice)
        except OSError:
            pass
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("READY " + json.dumps(ready), flush=True)
    try:
        sim.run()
    finally:
        sim.finish()
    return 0


def main(argv=None) -> int:
    ap = arg_parser("interop network simulator: forwards frames between two veths of the sim namespace")
    ap.add_argument("--client-if", default="simc", help="the sim's veth towards the client")
    ap.add_argument("--server-if", default="sims", help="the sim's veth towards the server")
    ap.add_argument("--client-mac", required=True, help="MAC of the client's veth")
    ap.add_argument("--server-mac", required=True, help="MAC of the server's veth")
    ap.add_argument("--own", default="", help="comma list of the sim's own addresses")
    ap.add_argument("--client-nets", default="", help="client subnets (rebind-addr picks from them)")
    args = ap.parse_args(argv)
    macs = tuple(bytes.fromhex(m.replace(":", "")) for m in (args.client_mac, args.server_mac))
    sim = FrameSim(Scenario.parse(args.scenario), args.seed, args.log, (args.client_if, args.server_if), macs,
                   (args.client_pcap, args.server_pcap), [a for a in args.own.split(",") if a],
                   [n for n in args.client_nets.split(",") if n])
    return serve(sim, {"mode": "frames"}, args.nice)


if __name__ == "__main__":
    sys.exit(main())
