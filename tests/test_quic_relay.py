# The impairing UDP relay (tests/udp_relay.py) on its own, with plain UDP
# sockets: loss, duplication, reordering, delay and both blackholes (by
# count, by time) do what they say and are reproducible from the seed; then
# the peer harness through it (aioquic client -> relay -> qh3 server), so a
# failure of the pyquic interop tests under impairment can be told apart from
# a broken relay.
#
# Deterministic by construction: datagrams go out in small windows and the
# test waits (by condition, bounded by TIMEOUT only as a failure guard) until
# the relay and both ends have accounted for every one of them, so nothing
# overflows a socket and nothing is counted before it arrived; the
# time-based impairments run on a VirtualClock the test moves itself.
from __future__ import annotations

import asyncio
from typing import Callable

import pytest

from tests.quic_peers import assert_all_ok, pki_files, run_client, start_server
from tests.udp_relay import REORDER_MAX_HOLD, Impairment, UdpRelay, VirtualClock

TIMEOUT = 10.0
WINDOW = 32  # datagrams in flight at once (well under every socket buffer and the relay's pending cap)


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data, addr) -> None:
        self.got.append(data)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition`; the timeout only turns a hang into a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def value(data: bytes) -> int:
    return int.from_bytes(data[-4:], "big")


class Rig:
    """client -> relay -> echo server ('ack:' + data back) -> relay -> client."""

    def __init__(self, **relay_kwargs) -> None:
        self.relay_kwargs = relay_kwargs
        self.server = Endpoint()
        self.client = Endpoint()
        self.sent = 0

    async def __aenter__(self) -> "Rig":
        loop = asyncio.get_running_loop()
        server = self.server

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                server.datagram_received(data, addr)
                self.transport.sendto(b"ack:" + data, addr)

        self.server_transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        self.relay = UdpRelay(self.server_transport.get_extra_info("sockname"), **self.relay_kwargs)
        self.addr = await self.relay.start()
        self.client_transport, _ = await loop.create_datagram_endpoint(lambda: self.client, local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(self, *exc) -> None:
        self.client_transport.close()
        self.relay.close()
        self.server_transport.close()

    @property
    def stats(self):
        return self.relay.stats

    def settled(self) -> bool:
        """Every datagram sent reached the relay, and every one the relay let
        through (either way) reached its end."""
        up, down = self.stats["to_server"], self.stats["to_client"]
        return (up.received == self.sent and len(self.server.got) == up.forwarded
                and down.received == len(self.server.got) and len(self.client.got) == down.forwarded)

    async def settle(self) -> None:
        await until(self.settled, f"{self.sent} datagrams to settle: {self.stats}")

    async def send(self, values) -> None:
        for i in values:
            self.client_transport.sendto(i.to_bytes(4, "big"), self.addr)
            self.sent += 1
            if self.sent % WINDOW == 0:
                await self.settle()
        await self.settle()


async def run_through(relay_kwargs: dict, count: int):
    async with Rig(**relay_kwargs) as rig:
        await rig.send(range(count))
        return rig.server.got, rig.client.got, rig.stats


def encoded(values) -> list[bytes]:
    return [i.to_bytes(4, "big") for i in values]


async def test_clean_relay_forwards_everything_in_order():
    to_server, to_client, stats = await run_through({}, 300)
    assert to_server == encoded(range(300))
    assert to_client == [b"ack:" + d for d in encoded(range(300))]
    assert stats["to_server"].forwarded == stats["to_client"].forwarded == 300
    assert all(getattr(stats[d], f) == 0 for d in stats for f in ("dropped_loss", "dropped_blackhole", "dropped_queue"))


async def test_loss_is_about_the_configured_rate_and_seeded():
    kwargs = dict(to_server=Impairment(loss=0.2), seed=7)
    a, _, stats = await run_through(kwargs, 1000)
    b, _, _ = await run_through(kwargs, 1000)
    assert a == b  # same seed, same drops
    assert 120 <= stats["to_server"].dropped_loss <= 280
    assert len(a) == 1000 - stats["to_server"].dropped_loss
    c, _, _ = await run_through(dict(to_server=Impairment(loss=0.2), seed=8), 1000)
    assert c != a  # the seed is what decides


async def test_duplication_and_reordering():
    clock = VirtualClock()  # no hold expires unless the test says so
    kwargs = dict(to_server=Impairment(duplicate=0.1, reorder=0.1, reorder_gap=3), seed=3, clock=clock)
    async with Rig(**kwargs) as rig:
        await rig.send(range(500))
        st = rig.stats["to_server"]
        still_held = len(rig.relay._up.held)
        assert rig.sent + st.duplicated == st.forwarded + still_held
        clock.advance(REORDER_MAX_HOLD)  # the last few, with no successors to pass them, go now
        await rig.settle()
        got = rig.server.got
    assert st.duplicated > 20 and st.reordered > 20
    assert len(got) == 500 + st.duplicated
    values = [value(d) for d in got]
    assert set(values) == set(range(500))
    assert values != sorted(values)
    # A held packet comes out after its 3 successors (give or take other held
    # ones and duplicates), not later: count the distinct later packets that
    # overtook each one.
    seen: set[int] = set()
    overtaken_by = {}
    for v in values:
        if v not in seen:
            overtaken_by[v] = sum(1 for w in seen if w > v)
            seen.add(v)
    assert max(overtaken_by.values()) <= 10
    assert sum(1 for n in overtaken_by.values() if n) >= st.reordered // 2


async def test_a_held_packet_waits_at_most_the_hold_time():
    clock = VirtualClock()
    async with Rig(to_server=Impairment(reorder=1.0, reorder_gap=3), clock=clock) as rig:
        await rig.send([7])
        assert rig.stats["to_server"].reordered == 1 and rig.server.got == []
        clock.advance(REORDER_MAX_HOLD * 0.99)
        assert rig.stats["to_server"].forwarded == 0
        clock.advance(REORDER_MAX_HOLD * 0.02)
        assert rig.stats["to_server"].forwarded == 1
        await rig.settle()
        assert rig.server.got == encoded([7])


async def test_delay():
    clock = VirtualClock()
    async with Rig(to_server=Impairment(delay=0.1), to_client=Impairment(delay=0.05), clock=clock) as rig:
        await rig.send([1, 2])
        assert rig.server.got == [] and rig.stats["to_server"].forwarded == 0  # not yet: 100 ms delay
        clock.advance_to(0.099)
        assert rig.stats["to_server"].forwarded == 0
        clock.advance_to(0.1)
        assert rig.stats["to_server"].forwarded == 2
        await rig.settle()  # the answers reached the relay at 0.1: due at 0.15
        assert rig.server.got == encoded([1, 2]) and rig.client.got == []
        clock.advance_to(0.149)
        assert rig.stats["to_client"].forwarded == 0
        clock.advance_to(0.151)
        await rig.settle()
        assert rig.client.got == [b"ack:" + d for d in encoded([1, 2])]


async def test_blackhole_by_count_drops_exactly_those_datagrams():
    async with Rig(to_server=Impairment(blackhole_packets=(10, 25))) as rig:
        rig.relay.blackhole_next(5, to_server=False)  # and the first 5 answers
        await rig.send(range(40))
        up, down = rig.stats["to_server"], rig.stats["to_client"]
        assert up.dropped_blackhole == 15 and down.dropped_blackhole == 5
        assert rig.server.got == encoded([*range(10), *range(25, 40)])
        assert rig.client.got == [b"ack:" + d for d in encoded([*range(5, 10), *range(25, 40)])]
        # blackhole_next counts from when it is called, in the chosen direction only.
        rig.relay.blackhole_next(3, to_client=False)
        await rig.send(range(40, 50))
        assert rig.server.got[-7:] == encoded(range(43, 50)) and up.dropped_blackhole == 18
        assert down.dropped_blackhole == 5


async def test_blackhole_at_a_set_time_drops_a_window():
    clock = VirtualClock()
    async with Rig(to_server=Impairment(blackhole_at=0.095, blackhole_for=0.2), clock=clock) as rig:
        # One datagram every 10 ms of the relay's clock, the first at 5 ms:
        # the window [first + 0.095, first + 0.295) = [0.1, 0.3) holds
        # datagrams 10..29 (each 5 ms from an edge).
        for i in range(40):
            clock.advance_to(0.005 + 0.01 * i)
            await rig.send([i])
        st = rig.stats["to_server"]
        assert st.dropped_blackhole == 20
        assert rig.server.got == encoded([*range(10), *range(30, 40)])
    # On demand, by time: from now for D seconds of the relay's clock.
    clock = VirtualClock()
    async with Rig(clock=clock) as rig:
        await rig.send([0])
        rig.relay.blackhole(0.5)
        await rig.send([1, 2])
        clock.advance(0.5)
        await rig.send([3])
        assert rig.server.got == encoded([0, 3]) and rig.client.got == [b"ack:" + d for d in encoded([0, 3])]
        assert rig.stats["to_server"].dropped_blackhole == 2


async def test_a_time_blackhole_eats_delayed_datagrams_it_catches_in_flight():
    clock = VirtualClock()
    async with Rig(to_server=Impairment(delay=0.2), clock=clock) as rig:
        await rig.send([1])
        rig.relay.blackhole(0.3, to_client=False)
        clock.advance(0.2)
        assert rig.stats["to_server"].dropped_blackhole == 1 and rig.stats["to_server"].forwarded == 0


def test_the_virtual_clock_runs_timers_in_order_at_their_times():
    clock = VirtualClock(start=1.0)
    fired = []
    clock.call_later(0.3, lambda: fired.append(("b", clock.time())))
    clock.call_later(0.1, lambda: fired.append(("a", clock.time())))
    cancelled = clock.call_later(0.2, lambda: fired.append(("never", clock.time())))
    cancelled.cancel()
    clock.call_later(0.1, lambda: clock.call_later(0.1, lambda: fired.append(("chained", clock.time()))))
    clock.advance(0.25)
    assert fired == [("a", 1.1), ("chained", pytest.approx(1.2))] and clock.time() == 1.25
    clock.advance(1.0)
    assert fired[-1] == ("b", 1.3) and clock.time() == 2.25


async def test_peers_complete_a_transfer_through_loss_reordering_and_a_blackhole(tmp_path):
    files = pki_files(tmp_path)
    server = start_server("qh3", files)
    imp = Impairment(loss=0.05, reorder=0.05, duplicate=0.02)
    relay = UdpRelay(("127.0.0.1", server.port), to_server=imp, to_client=imp, seed=11)
    try:
        host, port = await relay.start()
        loop = asyncio.get_running_loop()
        ops = [{"op": "source", "size": 2_000_000}, {"op": "sink", "size": 1_000_000}]
        job = loop.run_in_executor(None, lambda: run_client("aioquic", port, files, ops, timeout=60))
        # Once the download is under way (by count), a real outage: both
        # directions for 1 s.  By time on purpose, as in the interop tests: a
        # count-based outage ends only when enough datagrams met it, and the
        # peers' backed-off probes make that take up to their idle timeout.
        await until(lambda: relay.stats["to_client"].received >= 300, "the download to get under way")
        relay.blackhole(1.0)
        results = await asyncio.wait_for(job, 90)
        assert_all_ok(results, server)
        st = relay.stats
        assert st["to_client"].dropped_loss > 0
        # A busy sender meets a 1 s outage: its packets in flight are lost, then its probes.
        assert st["to_client"].dropped_blackhole > 0
    finally:
        relay.close()
        server.stop()
