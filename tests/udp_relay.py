# A user-space UDP relay that impairs traffic between a QUIC client and server
# (the kernel here has no netem).  Owns, per direction and from a seeded RNG
# (so a failing run can be replayed): loss, duplication, reordering (a packet
# is held back and released after the next k packets, or after a short
# time if traffic stops), constant delay with optional jitter, and two kinds
# of blackhole: by time (drop everything for D seconds, either at a set time
# after the first packet or on demand: a real outage, as the interop tests
# want) and by count (drop datagrams N..M-1 of a direction, or the next K
# from now: exact whatever the machine's speed).  Every queue is bounded;
# what overflows is dropped and counted like a router's tail drop.
#
# The relay's clock (blackhole windows, delay, the reorder hold) is the
# event loop's unless one is injected: VirtualClock is moved by hand, so a
# test of the time-based impairments does not depend on scheduling.
#
#   relay = UdpRelay(("127.0.0.1", server_port), to_server=Impairment(loss=0.05),
#                    to_client=Impairment(loss=0.05), seed=1)
#   host, port = await relay.start()      # the client connects here
#   relay.blackhole(2.0)                  # now, both directions, for 2 s
#   relay.blackhole_next(20)              # the next 20 datagrams of each direction
#   await relay.rebind()                  # a NAT rebinding: new source ports towards the server
#   relay.stats["to_client"].dropped_loss ...
#   relay.close()
#
# Also runnable for the benchmark: python -m tests.udp_relay --server 127.0.0.1:4433 --loss 5
from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import random
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional

MAX_HELD = 64  # reordering: packets held back at once
MAX_DELAYED = 4096  # delay: packets in flight inside the relay
REORDER_MAX_HOLD = 0.1  # seconds a held packet waits at most for its k successors


@dataclass
class Impairment:
    loss: float = 0.0  # probability a packet is dropped
    duplicate: float = 0.0  # probability a packet is sent twice
    reorder: float = 0.0  # probability a packet is held back ...
    reorder_gap: int = 3  # ... until this many later packets went ahead of it
    delay: float = 0.0  # seconds, one way
    jitter: float = 0.0  # uniform extra delay in [0, jitter] (reorders too)
    blackhole_at: Optional[float] = None  # seconds after the first packet in this direction
    blackhole_for: float = 0.0
    # By count: datagrams number first..last-1 of this direction (0-based, in
    # the order the relay received them) are dropped.
    blackhole_packets: Optional[tuple[int, int]] = None


@dataclass
class DirectionStats:
    received: int = 0
    forwarded: int = 0
    dropped_loss: int = 0
    dropped_blackhole: int = 0
    dropped_queue: int = 0
    duplicated: int = 0
    reordered: int = 0

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _VirtualTimer:
    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable, args: tuple) -> None:
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A relay clock that moves only when told: ``time()`` and ``call_later()``
    as the relay uses them from the event loop, and ``advance(seconds)``,
    which runs the timers that fall due, in order, at their own times."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._timers: list = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable, *args: Any) -> _VirtualTimer:
        timer = _VirtualTimer(self.now + max(delay, 0.0), callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    def advance_to(self, when: float) -> None:
        while self._timers and self._timers[0][0] <= when:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self.now = max(self.now, timer.when)
                timer.callback(*timer.args)
        self.now = max(self.now, when)


class _Direction:
    """One direction's impairment pipeline; ``send(data)`` is the real output.
    ``clock`` has ``time()`` and ``call_later()``: the event loop or a VirtualClock."""

    def __init__(self, name: str, imp: Impairment, rng: random.Random, clock: Any) -> None:
        self.name = name
        self.imp = imp
        self.rng = rng
        self.clock = clock
        self.stats = DirectionStats()
        self.first_packet_at: Optional[float] = None
        self.blackhole_until = 0.0
        self.blackhole_count = 0  # the next this many datagrams are dropped (blackhole_next)
        self.held: list[list] = []  # [data, send, packets still to pass it, timer handle]
        self.delayed = 0

    def in_count_blackhole(self, index: int) -> bool:
        """Datagram number `index` of this direction falls in a count-based blackhole."""
        if self.blackhole_count > 0:
            self.blackhole_count -= 1
            return True
        window = self.imp.blackhole_packets
        return window is not None and window[0] <= index < window[1]

    def in_blackhole(self, now: float) -> bool:
        if now < self.blackhole_until:
            return True
        imp = self.imp
        if imp.blackhole_at is not None and self.first_packet_at is not None:
            start = self.first_packet_at + imp.blackhole_at
            return start <= now < start + imp.blackhole_for
        return False

    def packet(self, data: bytes, send) -> None:
        now = self.clock.time()
        st = self.stats
        index = st.received
        st.received += 1
        if self.first_packet_at is None:
            self.first_packet_at = now
        if self.in_count_blackhole(index) or self.in_blackhole(now):
            st.dropped_blackhole += 1
            return
        rng, imp = self.rng, self.imp
        if imp.loss and rng.random() < imp.loss:
            st.dropped_loss += 1
            return
        copies = 2 if imp.duplicate and rng.random() < imp.duplicate else 1
        if copies == 2:
            st.duplicated += 1
        for _ in range(copies):
            if imp.reorder and len(self.held) < MAX_HELD and rng.random() < imp.reorder:
                st.reordered += 1
                entry = [data, send, imp.reorder_gap, None]
                entry[3] = self.clock.call_later(REORDER_MAX_HOLD, self._release, entry)
                self.held.append(entry)
                continue
            self._forward(data, send)
            self._passed_by_one()

    def _passed_by_one(self) -> None:
        # Each packet that went out counts against every held one.
        for entry in list(self.held):
            entry[2] -= 1
            if entry[2] <= 0:
                self._release(entry)

    def _release(self, entry: list) -> None:
        if entry in self.held:
            self.held.remove(entry)
            entry[3].cancel()
            self._forward(entry[0], entry[1])

    def _forward(self, data: bytes, send) -> None:
        imp = self.imp
        if imp.delay or imp.jitter:
            if self.delayed >= MAX_DELAYED:
                self.stats.dropped_queue += 1
                return
            self.delayed += 1
            wait = imp.delay + (self.rng.uniform(0, imp.jitter) if imp.jitter else 0.0)
            self.clock.call_later(wait, self._send_delayed, data, send)
            return
        self.stats.forwarded += 1
        send(data)

    def _send_delayed(self, data: bytes, send) -> None:
        self.delayed -= 1
        if self.in_blackhole(self.clock.time()):  # a time-based outage also eats what it catches in flight
            self.stats.dropped_blackhole += 1
            return
        self.stats.forwarded += 1
        send(data)

    def close(self) -> None:
        for entry in self.held:
            entry[3].cancel()
        self.held.clear()


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, relay: "UdpRelay") -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr) -> None:
        self.relay._from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class _Upstream(asyncio.DatagramProtocol):
    """The relay's socket towards the server for one client address."""

    def __init__(self, relay: "UdpRelay", client_addr) -> None:
        self.relay = relay
        self.client_addr = client_addr
        self.transport: Optional[asyncio.DatagramTransport] = None
        self.pending: list[bytes] = []  # until the socket exists (bounded)

    def connection_made(self, transport) -> None:
        self.transport = transport
        for data in self.pending:
            transport.sendto(data)
        self.pending.clear()

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data)
        elif len(self.pending) < MAX_HELD:
            self.pending.append(data)

    def datagram_received(self, data: bytes, addr) -> None:
        self.relay._from_server(data, self)

    def error_received(self, exc: Exception) -> None:
        pass


class UdpRelay:
    def __init__(
        self,
        server_addr: tuple,
        *,
        to_server: Optional[Impairment] = None,
        to_client: Optional[Impairment] = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Any = None,
        tap: Optional[Callable[[str, bytes], None]] = None,
    ) -> None:
        """``clock``: what the time-based impairments read and schedule on
        (``time()``, ``call_later()``); None is the running event loop.
        ``tap(direction, datagram)`` sees every datagram as it arrives
        ("to_server" or "to_client"), before any impairment."""
        self.tap = tap
        self.server_addr = server_addr
        self.clock = clock
        self.host = host
        self.port = port
        self._imp = (to_server or Impairment(), to_client or Impairment())
        self._seed = seed
        self._listener: Optional[asyncio.DatagramTransport] = None
        self._upstreams: dict = {}
        self.address: Optional[tuple] = None
        self.rebinds = 0

    async def start(self) -> tuple:
        loop = asyncio.get_running_loop()
        self._loop = loop
        clock = self.clock if self.clock is not None else loop
        self._up = _Direction("to_server", self._imp[0], random.Random(self._seed * 2 + 1), clock)
        self._down = _Direction("to_client", self._imp[1], random.Random(self._seed * 2 + 2), clock)
        self._listener, _ = await loop.create_datagram_endpoint(lambda: _Listener(self), local_addr=(self.host, self.port))
        self.address = self._listener.get_extra_info("sockname")[:2]
        return self.address

    @property
    def stats(self) -> dict[str, DirectionStats]:
        return {"to_server": self._up.stats, "to_client": self._down.stats}

    def blackhole(self, duration: float, *, to_server: bool = True, to_client: bool = True) -> None:
        """Drop everything from now for ``duration`` seconds (of the relay's clock)."""
        if to_server:
            self._up.blackhole_until = self._up.clock.time() + duration
        if to_client:
            self._down.blackhole_until = self._down.clock.time() + duration

    def blackhole_next(self, count: int, *, to_server: bool = True, to_client: bool = True) -> None:
        """Drop the next ``count`` datagrams that reach the relay in each chosen direction."""
        if to_server:
            self._up.blackhole_count = count
        if to_client:
            self._down.blackhole_count = count

    async def rebind(self) -> None:
        """Model a NAT rebinding: every client's traffic to the server leaves
        from a new socket (a new source port) from now on; what the server
        sends to the old one is lost with it."""
        loop = self._loop
        for addr, old in list(self._upstreams.items()):
            new = self._upstreams[addr] = _Upstream(self, addr)
            await loop.create_datagram_endpoint(lambda new=new: new, remote_addr=self.server_addr)
            if old.transport is not None:
                old.transport.close()
        self.rebinds += 1

    def _from_client(self, data: bytes, addr) -> None:
        if self.tap is not None:
            self.tap("to_server", data)
        up = self._upstreams.get(addr)
        if up is None:
            if len(self._upstreams) >= 64:
                return  # bounded: a test relay serves a handful of clients
            up = self._upstreams[addr] = _Upstream(self, addr)
            self._loop.create_task(self._loop.create_datagram_endpoint(lambda: up, remote_addr=self.server_addr))
        self._up.packet(data, up.send)

    def _from_server(self, data: bytes, up: _Upstream) -> None:
        if self.tap is not None:
            self.tap("to_client", data)
        listener = self._listener
        if listener is not None:
            self._down.packet(data, lambda d: listener.sendto(d, up.client_addr))

    def close(self) -> None:
        self._up.close()
        self._down.close()
        for up in self._upstreams.values():
            if up.transport is not None:
                up.transport.close()
        self._upstreams.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


async def _main() -> None:
    ap = argparse.ArgumentParser(description="impairing UDP relay")
    ap.add_argument("--server", required=True, help="host:port of the real server")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--loss", type=float, default=0.0, help="percent, both directions")
    ap.add_argument("--duplicate", type=float, default=0.0, help="percent")
    ap.add_argument("--reorder", type=float, default=0.0, help="percent")
    ap.add_argument("--delay", type=float, default=0.0, help="ms one way")
    ap.add_argument("--blackhole-at", type=float, default=None, help="s after the first packet")
    ap.add_argument("--blackhole-for", type=float, default=0.0)
    ap.add_argument("--blackhole-packets", default=None, help="N:M: drop datagrams N..M-1 of each direction")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shost, sport = args.server.rsplit(":", 1)
    lhost, lport = args.listen.rsplit(":", 1)
    window = tuple(int(n) for n in args.blackhole_packets.split(":")) if args.blackhole_packets else None
    imp = Impairment(loss=args.loss / 100, duplicate=args.duplicate / 100, reorder=args.reorder / 100,
                     delay=args.delay / 1000, blackhole_at=args.blackhole_at, blackhole_for=args.blackhole_for,
                     blackhole_packets=window)
    relay = UdpRelay((shost, int(sport)), to_server=imp, to_client=imp, seed=args.seed, host=lhost, port=int(lport))
    addr = await relay.start()
    print(f"relaying {addr[0]}:{addr[1]} -> {args.server}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        relay.close()


if __name__ == "__main__":
    asyncio.run(_main())
