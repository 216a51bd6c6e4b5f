# Recovery from a blackhole mid-transfer (RFC 9002 §6.2): our client
# downloads from aioquic's server through the relay, which drops everything
# in both directions for 2 to 5 seconds.  Before the fix the client stalled
# until the idle timeout in 3 of 5 runs: its ACK-only packets died in the
# blackhole and its PTO probes carried a PING but no ACK, so the server never
# learned what had arrived and kept backing off.  Ten runs in a row must all
# finish, each well inside the idle timeout.
from __future__ import annotations

import asyncio
import time

import pytest

from pyquic.asyncio import connect
from tests.quic_interop_cases import client_config, expect, request
from tests.quic_peers import pki_files, start_server
from tests.udp_relay import UdpRelay

SIZE = 3_000_000
IDLE_TIMEOUT = 30.0
BLACKHOLES = [2.0, 3.0, 4.0, 5.0, 2.5, 3.5, 4.5, 2.0, 3.0, 5.0]  # seconds, one per run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def aioquic_server(files):
    server = start_server("aioquic", files, idle_timeout=IDLE_TIMEOUT)
    yield server
    server.stop()


async def one_run(files, port: int, seconds: float, seed: int) -> tuple[float, dict]:
    relay = UdpRelay(("127.0.0.1", port), seed=seed)
    host, relay_port = await relay.start()
    try:
        async def blackhole_when_busy() -> None:
            while relay.stats["to_client"].received < 300:
                await asyncio.sleep(0.002)
            relay.blackhole(seconds)

        start = time.monotonic()
        async with connect(host, relay_port, configuration=client_config(files, idle_timeout=IDLE_TIMEOUT)) as proto:
            hole = asyncio.ensure_future(blackhole_when_busy())
            answer = await asyncio.wait_for(request(proto, f"source {SIZE}"), IDLE_TIMEOUT + 5)
            await hole
            assert answer == expect(SIZE)
            took = time.monotonic() - start
            dropped = relay.stats["to_client"].dropped_blackhole + relay.stats["to_server"].dropped_blackhole
            return took, {"dropped": dropped, **proto._quic.stats.as_dict()}
    finally:
        relay.close()


async def test_ten_blackholes_in_a_row_against_aioquic(files, aioquic_server):
    for run, seconds in enumerate(BLACKHOLES):
        took, stats = await one_run(files, aioquic_server.port, seconds, seed=100 + run)
        assert stats["dropped"] > 0, f"run {run}: the blackhole dropped nothing"
        # Back within a few PTOs of the hole's end, never near the idle timeout.
        assert took < seconds + 10.0, f"run {run}: {took:.1f} s for a {seconds} s blackhole ({stats})"
