# Path MTU discovery (RFC 9000 §14.3, RFC 8899): the search in pyquic/pmtud.py
# on its own, then two of our connections on the in-memory link (tests/quic_pair.py)
# whose paths carry only so much: the size found, probes that are lost without
# a congestion response (§14.4), a black hole in mid-transfer, the peer's
# max_udp_payload_size, and no probing when it is off.  The same over real
# sockets, across a router with a smaller MTU, is in tests/test_quic_pmtud_netns.py.
from __future__ import annotations

import pytest

from pyquic.config import QuicConfiguration
from pyquic.errors import UsageError
from pyquic.pmtud import MAX_PROBES, PMTU_RAISE_TIMER, SEARCH_GRANULARITY, PathMtu
from tests.quic_pair import Pair, client_configuration, server_configuration


def drive_search(mtu: PathMtu, path_limit: int, now: float = 0.0, rounds: int = 200) -> float:
    """Probe as the builder and recovery would, on a path carrying `path_limit` bytes."""
    pn = 0
    for _ in range(rounds):
        if not mtu.probe_due(now):
            break
        mtu.on_probe_sent(pn)
        pn += 1
        now += 0.01
        if mtu.probe_size <= path_limit:
            mtu.on_probe_acked(now)
        else:
            mtu.on_probe_lost(now)
    return now


def sizes_sent(pair: Pair, who: str) -> list[int]:
    return [entry[4] for entry in pair.log if entry[1] == who and entry[2] in ("sent", "lost")]


# -- the search ------------------------------------------------------------------------------

def test_the_ceiling_first_and_one_probe_when_the_path_carries_it():
    sizes = []
    mtu = PathMtu(1200, 1452, sizes.append)
    assert not mtu.probe_due(0.0)  # nothing before the handshake is confirmed
    mtu.start(0.0)
    assert mtu.probe_due(0.0) and mtu.probe_size == 1452
    drive_search(mtu, 1500)
    assert (mtu.size, mtu.probes_sent, mtu.probes_lost, sizes) == (1452, 1, 0, [1452])
    assert not mtu.probe_due(PMTU_RAISE_TIMER * 10)  # at the ceiling: nothing more to find


@pytest.mark.parametrize("path_limit", [1200, 1201, 1250, 1280, 1299, 1350, 1400, 1451])
def test_the_search_settles_within_the_granularity_below_what_the_path_carries(path_limit):
    mtu = PathMtu(1200, 1452, lambda size: None)
    mtu.start(0.0)
    drive_search(mtu, path_limit)
    assert path_limit - SEARCH_GRANULARITY <= mtu.size <= path_limit
    assert not mtu.probe_due(1.0)
    # Each size that failed was tried MAX_PROBES times before it counted.
    assert mtu.probes_lost % MAX_PROBES == 0


def test_the_raise_timer_searches_above_a_settled_size_again():
    mtu = PathMtu(1200, 1452, lambda size: None)
    mtu.start(0.0)
    now = drive_search(mtu, 1300)
    settled = mtu.size
    assert not mtu.probe_due(now + PMTU_RAISE_TIMER - 1)
    assert mtu.probe_due(now + PMTU_RAISE_TIMER) and mtu.probe_size == 1452
    drive_search(mtu, 1500, now + PMTU_RAISE_TIMER)  # the path got better meanwhile
    assert settled < 1300 and mtu.size == 1452


def test_a_black_hole_falls_back_to_the_base_and_searches_below_what_failed():
    sizes = []
    mtu = PathMtu(1200, 1452, sizes.append)
    mtu.start(0.0)
    drive_search(mtu, 1500)
    assert mtu.on_black_hole(1.0)
    assert mtu.size == 1200 and sizes[-1] == 1200 and mtu.black_holes == 1
    assert mtu.probe_due(1.0) and 1200 < mtu.probe_size < 1452
    drive_search(mtu, 1280, 1.0)
    assert 1280 - SEARCH_GRANULARITY <= mtu.size <= 1280
    assert not PathMtu(1200, 1452, sizes.append).on_black_hole(0.0)  # at the base: nothing to do


def test_the_peers_limit_caps_the_search_and_can_end_it():
    mtu = PathMtu(1200, 1452, lambda size: None)
    mtu.limit(1350)
    mtu.start(0.0)
    assert mtu.probe_size == 1350
    mtu = PathMtu(1200, 1452, lambda size: None)
    mtu.limit(1200)
    mtu.start(0.0)
    assert not mtu.enabled and not mtu.probe_due(0.0)
    off = PathMtu(1200, 0, lambda size: None)
    off.start(0.0)
    assert not off.probe_due(0.0) and off.size == 1200


def test_configuration_checks():
    with pytest.raises(UsageError):
        QuicConfiguration(is_client=True, max_probe_datagram_size=1199)
    with pytest.raises(UsageError):
        QuicConfiguration(is_client=True, max_probe_datagram_size=70000)
    fixed = QuicConfiguration(is_client=True, max_datagram_size=1500)  # above the default ceiling: no search
    pair = Pair(client_configuration(max_datagram_size=1500), server_configuration())
    pair.handshake()
    pair.drive()
    assert fixed.max_probe_datagram_size == 1452 and pair.client.path_mtu.size == 1500
    assert pair.client.path_mtu.probes_sent == 0 and pair.server.path_mtu.size == 1452
    assert QuicConfiguration(is_client=True).max_probe_datagram_size == 1452
    assert QuicConfiguration(is_client=True, max_probe_datagram_size=0).max_probe_datagram_size == 0


# -- two connections on the in-memory link ----------------------------------------------------

def test_both_sides_find_the_ceiling_and_the_transfer_uses_it():
    pair = Pair()
    pair.handshake()
    pair.drive()
    for conn in (pair.client, pair.server):
        mtu = conn.path_mtu
        assert (mtu.size, mtu.probes_sent, mtu.probes_lost) == (1452, 1, 0)
        assert conn._loss.cc.max_datagram_size == 1452
    data = bytes(300_000)
    assert pair.upload(data) == data
    sizes = sizes_sent(pair, "client")
    assert max(sizes) == 1452
    assert sizes.count(1452) >= len(data) // 1452  # the bulk went in full 1452-byte datagrams


def test_a_smaller_path_is_found_and_lost_probes_are_no_congestion():
    pair = Pair()
    for link in (pair.client_to_server, pair.server_to_client):
        link.drop_if = lambda datagram: len(datagram) > 1300
    pair.handshake()
    pair.drive()
    for conn in (pair.client, pair.server):
        loss = conn._loss
        assert 1300 - SEARCH_GRANULARITY <= loss.pmtu.size <= 1300
        assert loss.pmtu.probes_lost >= MAX_PROBES
        # RFC 9000 §14.4: lost probes left the window and the event count alone.
        assert loss.cc.congestion_events == 0 and loss.cc.bytes_in_flight == 0
    dropped = pair.client_to_server.dropped
    data = bytes(300_000)
    assert pair.upload(data) == data
    assert pair.client_to_server.dropped == dropped  # nothing of the transfer was too large
    assert max(sizes_sent(pair, "client")[-100:]) == pair.client.path_mtu.size


def test_a_black_hole_in_mid_transfer_falls_back_and_the_data_arrives():
    pair = Pair()
    pair.handshake()
    pair.drive()
    assert pair.client.path_mtu.size == 1452
    pair.client_to_server.drop_if = lambda datagram: len(datagram) > 1250  # the route changed
    data = bytes(300_000)
    assert pair.upload(data) == data
    mtu = pair.client.path_mtu
    assert mtu.black_holes == 1
    assert 1250 - SEARCH_GRANULARITY <= mtu.size <= 1250


def test_the_peers_max_udp_payload_size_bounds_every_datagram():
    pair = Pair(server_config=server_configuration(max_udp_payload_size=1300))
    pair.handshake()
    pair.drive()
    data = bytes(100_000)
    assert pair.upload(data) == data
    assert max(sizes_sent(pair, "client")) == 1300
    assert pair.client.path_mtu.size == 1300


def test_no_probing_when_it_is_off():
    pair = Pair(client_configuration(max_probe_datagram_size=0), server_configuration(max_probe_datagram_size=0))
    pair.handshake()
    pair.drive()
    data = bytes(100_000)
    assert pair.upload(data) == data
    assert max(sizes_sent(pair, "client")) == 1200 and max(sizes_sent(pair, "server")) == 1200
    assert pair.client.path_mtu.probes_sent == pair.server.path_mtu.probes_sent == 0


def test_a_new_peer_address_starts_from_the_base_and_searches_again():
    pair = Pair()
    pair.handshake()
    pair.drive()
    assert pair.server.path_mtu.size == 1452 and pair.server.path_mtu.probes_sent == 1
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"go")
    pair.drive()
    pair.client_addr = ("10.0.0.9", 5555)  # the client's NAT moved it to another host
    pair.client.send_stream_data(sid, b"!", end_stream=True)  # the packet that shows the move
    mark = len(pair.log)
    pair.server.send_stream_data(sid, bytes(200_000), end_stream=True)
    pair.drive()
    assert pair.received("client", sid) == bytes(200_000)
    assert pair.server.stats.path_migrations == 1
    sent = [entry[4] for entry in pair.log[mark:] if entry[1] == "server" and entry[2] == "sent"]
    # RFC 9000 §14.3: on the new path full datagrams are 1200 bytes until a probe is acknowledged.
    # (the new path's probe goes first; the data follows at 1200, then at 1452 once it is acknowledged)
    last_full = len(sent) - 1 - sent[::-1].index(1452)
    assert 1200 in sent and sent.index(1200) < last_full, sent[:20]
    assert pair.server.path_mtu.probes_sent == 2 and pair.server.path_mtu.size == 1452
