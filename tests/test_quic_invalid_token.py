# INVALID_TOKEN with real peers (RFC 9000 §8.1.2, §8.1.3): our server
# (pyquic.asyncio.serve, retry="always") answers a client's first Initial
# with Retry; the client's next Initial, carrying the token, reaches the
# server from another source port (tests/udp_relay.py: the relay rebinds its
# socket towards the server while the Retry is on its way to the client).
# The token is ours but bound to the old address, and the client may not
# take a second Retry, so the server closes with CONNECTION_CLOSE
# (INVALID_TOKEN, 0x0b) in an Initial, statelessly.  The clients, aioquic
# and qh3 in their own processes (tests/peers/raw_peer.py), must end their
# handshake with that error code.  The same path without the rebinding is
# the control: the client goes through Retry and its request completes.
from __future__ import annotations

import asyncio
import time

import pytest

from pyquic.errors import ErrorCode
from tests.quic_interop_cases import PyquicTestServer, server_config
from tests.quic_peers import pki_files, start_client
from tests.udp_relay import Impairment, UdpRelay

RETRY_HOLD = 0.15  # seconds the relay holds what goes to the client: the rebind happens meanwhile
CLIENT_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


async def poll(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("rebind", [True, False], ids=["rebound", "same_address"])
@pytest.mark.parametrize("impl", ["aioquic", "qh3"])
async def test_a_client_whose_token_comes_from_another_address_gets_invalid_token(files, impl, rebind):
    ours = PyquicTestServer()
    port = await ours.start(server_config(files), retry="always")
    endpoint = ours.server.endpoint
    # Everything the server sends waits RETRY_HOLD in the relay, so the
    # rebinding below is done before the client can answer the Retry (the
    # relay's timers fire in order; this poll's wake-ups come first).
    relay = UdpRelay(("127.0.0.1", port), to_client=Impairment(delay=RETRY_HOLD))
    _, relay_port = await relay.start()
    loop = asyncio.get_running_loop()
    client = start_client(impl, relay_port, files, [{"op": "echo", "size": 1000}], op_timeout=CLIENT_TIMEOUT)
    try:
        await poll(lambda: relay.stats["to_client"].received >= 1, CLIENT_TIMEOUT, "the server's first answer")
        # The server's first datagram is a Retry (qh3's ClientHello, with its
        # hybrid key share, fills two Initials: two Retries, the client takes
        # the first, RFC 9000 §17.2.5.2), and nothing is kept for them.
        assert endpoint.stats["retry"] >= 1 and relay.stats["to_client"].forwarded == 0
        assert endpoint.connections == [] and endpoint.half_open == 0
        if rebind:
            await relay.rebind()  # the client's next Initial leaves from a new port
        done = await loop.run_in_executor(None, client.wait_for, lambda l: l.get("event") == "done",
                                          CLIENT_TIMEOUT + 10, f"the {impl} client to finish")
        ended = client.events("terminated_in_handshake")
        stats = dict(endpoint.stats)
        print(f"\n[invalid_token] {impl} rebind={rebind}: client ended {ended}, endpoint {stats}")
        if rebind:
            assert relay.rebinds == 1
            # §8.1.3: ours but for another address: CONNECTION_CLOSE(INVALID_TOKEN), no state.
            assert not done["ok"], client.describe()
            assert [e["error_code"] for e in ended] == [ErrorCode.INVALID_TOKEN] == [0x0B], client.describe()
            assert stats["invalid_token"] >= 1 and 1 <= stats["retry"] <= 2, stats
            assert endpoint.connections == [] and stats["half_open_peak"] == 0, stats
        else:
            assert done["ok"] and ended == [], client.describe()
            assert stats["invalid_token"] == 0 and 1 <= stats["retry"] <= 2 and stats["half_open_peak"] == 1, stats
            # The connection carries the Retry's CIDs (the client checked them in the transport parameters).
            assert ours.protocols and ours.protocols[0]._quic._retry_source_cid is not None
    finally:
        await loop.run_in_executor(None, client.stop)
        relay.close()
        await ours.stop()
