# The peer's address changes (RFC 9000 §8.2, §9), in memory on a simulated
# clock: a server follows a client through a NAT rebinding (port only, and a
# new address), validates the new path with PATH_CHALLENGE while holding to
# the anti-amplification limit, resets congestion state only when the host
# changed, goes back to a proven address at once, falls back when a probed
# address never answers, and never moves for probing packets, for reordered
# packets, before the handshake is confirmed, or on the client side.
from pyquic import events
from pyquic.connection import QuicConnectionState
from pyquic.congestion.base import initial_window
from pyquic.frames import Padding, PathChallenge, Ping
from pyquic.paths import Migration, PathValidator, is_probing
from pyquic.recovery import LossRecovery
from tests.quic_pair import CLIENT_ADDR, SERVER_ADDR, Pair, craft_short_packet, seeded_entropy

NEW_PORT = (CLIENT_ADDR[0], 50000)
NEW_HOST = ("10.9.9.9", 61000)
ATTACKER = ("10.6.6.6", 666)
BODY = bytes(range(256)) * 2000  # 512 kB each way


def settled_pair() -> Pair:
    pair = Pair(rtt=0.05)
    pair.handshake()
    pair.drive()
    assert pair.server.handshake_confirmed and pair.client.handshake_confirmed
    return pair


def start_exchange(pair: Pair) -> int:
    """The client uploads BODY on stream 0 while the server pushes it on stream 1."""
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, BODY, end_stream=True)
    pair.server.send_stream_data(pair.server.get_next_available_stream_id(), BODY, end_stream=True)
    return sid


def finish_exchange(pair: Pair, sid: int) -> None:
    assert pair.drive_until(
        lambda: pair.received("server", sid) == BODY and pair.received("client", 1) == BODY, duration=60
    ), "the exchange did not finish"


def rebind_midway(pair: Pair, addr) -> None:
    """Let the transfer run a few round trips, then move the client."""
    assert pair.drive_until(lambda: len(pair.received("client", 1)) > len(BODY) // 4, duration=30)
    pair.client_addr = addr


def test_nat_rebinding_port_only_keeps_congestion_state_and_validates_the_path():
    pair = settled_pair()
    sid = start_exchange(pair)
    rebind_midway(pair, NEW_PORT)
    before = pair.server._loss.congestion_window
    finish_exchange(pair, sid)
    server = pair.server
    assert server._path.addr == NEW_PORT and server._path.validated
    assert server.stats.path_migrations == 1 and server.stats.paths_validated == 1
    assert server.stats.frames_sent.get("path_challenge", 0) >= 1
    assert pair.client.stats.frames_sent.get("path_response", 0) >= 1
    # Only the port changed: the window was not reset to the initial one (§9.4).
    assert before > initial_window(1200) and server._loss.congestion_window >= initial_window(1200)
    assert server.state == QuicConnectionState.CONNECTED


def test_a_new_host_resets_congestion_and_rtt():
    pair = settled_pair()
    sid = start_exchange(pair)
    rebind_midway(pair, NEW_HOST)
    seen = []

    def migrated() -> bool:
        if pair.server._path.addr == NEW_HOST and not seen:
            rtt = pair.server._loss.rtt  # new: at most the sample of the ACK that moved it
            seen.append((pair.server._loss.congestion_window, rtt.first_sample_time in (None, pair.now)))
        return bool(seen)

    assert pair.drive_until(migrated, duration=10)
    assert seen[0] == (initial_window(1200), True)
    finish_exchange(pair, sid)
    assert pair.server.stats.paths_validated == 1


def test_the_new_path_is_held_to_three_times_what_came_from_it_until_validated():
    pair = settled_pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"ask", end_stream=False)
    pair.drive()
    pair.client_addr = NEW_PORT
    # From now on only the client's first datagram reaches the server.
    pair.client_to_server.drop_nth = set(range(pair.client_to_server.sent + 1, 10_000))
    pair.client.send_stream_data(sid, b"x" * 100, end_stream=False)
    pair.server.send_stream_data(sid, b"y" * 200_000, end_stream=False)
    sent_before = pair.bytes_sent["server"]
    pair.drive(duration=0.5)
    received = [e for e in pair.log if e[1] == "server" and e[2] == "received"][-1][3]
    assert pair.server._path.addr == NEW_PORT and not pair.server._path.validated
    assert 0 < pair.bytes_sent["server"] - sent_before <= 3 * received


def test_a_spoofed_address_is_left_as_soon_as_the_client_speaks_again():
    pair = settled_pair()
    sid = start_exchange(pair)
    # An off-path attacker races a copy of the client's next datagram (§9.3.3).
    datagrams = pair.client.datagrams_to_send(now=pair.now)
    pair._deliver("server", datagrams[0][0], ATTACKER)
    assert pair.server._path.addr == ATTACKER and not pair.server._path.validated
    for data, _ in datagrams:  # the genuine ones arrive after it (the first as a duplicate)
        pair._deliver("server", data, CLIENT_ADDR)
    assert pair.server._path.addr == CLIENT_ADDR and pair.server._path.validated
    assert pair.server.stats.path_migrations == 2
    finish_exchange(pair, sid)
    assert pair.server.stats.path_validation_failures == 0 and pair.server.stats.paths_validated == 0


def test_a_probed_address_that_never_answers_falls_back():
    pair = settled_pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"one", end_stream=False)
    datagrams = pair.client.datagrams_to_send(now=pair.now)
    pair._deliver("server", datagrams[0][0], ATTACKER)
    assert pair.server._path.addr == ATTACKER
    challenges_before = pair.server.stats.frames_sent.get("path_challenge", 0)
    # The client's retransmissions would move the server back at once: silence them.
    pair.client_to_server.blackhole = (pair.now, pair.now + 5.0)
    pair.drive(duration=6, quiet_gap=10)
    server = pair.server
    assert server.stats.path_validation_failures == 1
    assert server._path.addr == CLIENT_ADDR and server._path.validated
    assert server.stats.frames_sent.get("path_challenge", 0) - challenges_before >= 2  # resent each PTO
    assert server.state == QuicConnectionState.CONNECTED
    # And the connection still works on the old path.
    pair.client.send_stream_data(sid, b" two", end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"one two"


def test_probing_packets_and_reordered_packets_do_not_move_the_server():
    pair = settled_pair()
    probe = craft_short_packet(pair.client, bytes([0x1A]) + b"12345678")  # PATH_CHALLENGE
    pair._deliver("server", probe, ATTACKER)
    assert pair.server._path.addr == CLIENT_ADDR
    # Answered on the path the challenge came on (RFC 9000 §8.2.2), in a
    # datagram of its own, within three times what came from there (§8.1).
    answers = [data for data, addr in pair.server.datagrams_to_send(now=pair.now) if addr == ATTACKER]
    assert len(answers) == 1 and len(answers[0]) <= 3 * len(probe)
    assert pair.server.stats.frames_sent["path_response"] == 1 and not pair.server._builder.path_responses
    # An older packet (not the largest number seen) from elsewhere.
    older = craft_short_packet(pair.client, bytes([0x01]))  # PING
    newer = craft_short_packet(pair.client, bytes([0x01]))
    pair._deliver("server", newer, CLIENT_ADDR)
    pair._deliver("server", older, NEW_PORT)
    assert pair.server._path.addr == CLIENT_ADDR and pair.server.stats.path_migrations == 0


def test_the_client_never_follows_the_server_to_another_address():
    pair = settled_pair()
    pong = craft_short_packet(pair.server, bytes([0x01]))  # PING, the largest number so far
    pair.client.receive_datagram(pong, ("10.0.0.3", 443), now=pair.now)
    assert pair.client._path.addr == SERVER_ADDR and pair.client.stats.path_migrations == 0
    pair.client.send_ping(7)
    assert pair.client.datagrams_to_send(now=pair.now)[0][1] == SERVER_ADDR


def test_path_validator_unit_rules():
    v = PathValidator(seeded_entropy(3))
    assert v.timer is None and v.on_response(b"12345678") is None
    v.start(NEW_PORT, CLIENT_ADDR, now=1.0, pto=0.2)
    (frame,) = v.take_frames()
    assert isinstance(frame, PathChallenge) and v.timer == 1.2
    assert v.on_timer(1.2, 0.2) is None  # a fresh challenge
    (second,) = v.take_frames()
    assert second.data != frame.data
    # A response to the first challenge still proves the path.
    assert v.on_response(frame.data) == NEW_PORT and v.is_validated(NEW_PORT) and v.timer is None
    assert is_probing([Padding(10), PathChallenge(b"12345678")]) and not is_probing([Ping()])


def test_path_validator_decides_a_migration_and_returns_it():
    # The decision (§9.3) and its consequences (§9.4, §9.5) without a
    # connection: a LossRecovery to reset, a Migration for the caller to apply.
    loss = LossRecovery(is_client=False)
    loss.rtt.update(0.02, 0.0, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    v = PathValidator(seeded_entropy(5))
    v.mark_validated(CLIENT_ADDR)
    moved = dict(current=CLIENT_ADDR, current_validated=True, dcid_changed=False, confirmed=True, now=1.0, loss=loss)
    assert v.on_packet_from_new_address(NEW_PORT, [Ping()], True, **{**moved, "confirmed": False}) is None
    assert v.on_packet_from_new_address(NEW_PORT, [Ping()], False, **moved) is None  # reordered
    assert v.on_packet_from_new_address(NEW_PORT, [PathChallenge(b"12345678")], True, **moved) is None  # probing
    client_side = PathValidator(seeded_entropy(6), follows_peer=False)
    assert client_side.on_packet_from_new_address(NEW_PORT, [Ping()], True, **moved) is None
    assert v.timer is None and loss.rtt.has_sample  # nothing decided, nothing changed
    # A rebinding: only the port changed, so RTT and congestion stay; the new port is probed.
    assert v.on_packet_from_new_address(NEW_PORT, [Ping()], True, **moved) == Migration(NEW_PORT, False, False)
    (challenge,) = v.take_frames()
    assert loss.rtt.has_sample and v.timer is not None and v.fallback == CLIENT_ADDR
    # Back to the proven address with a fresh connection ID: no probe; a stale response proves nothing.
    back = {**moved, "current": NEW_PORT, "current_validated": False, "dcid_changed": True}
    assert v.on_packet_from_new_address(CLIENT_ADDR, [Ping()], True, **back) == Migration(CLIENT_ADDR, True, True)
    assert v.timer is None and not v.take_frames() and v.on_response(challenge.data) is None
    assert loss.rtt.has_sample
    assert v.on_packet_from_new_address(NEW_HOST, [Ping()], True, **moved) == Migration(NEW_HOST, False, False)
    assert not loss.rtt.has_sample  # §9.4: a new host starts RTT over


def test_connection_events_are_unchanged_by_a_rebinding():
    pair = settled_pair()
    sid = start_exchange(pair)
    rebind_midway(pair, NEW_PORT)
    finish_exchange(pair, sid)
    assert not pair.events_of("client", events.ConnectionTerminated)
    assert not pair.events_of("server", events.ConnectionTerminated)


def test_a_rebinding_keeps_our_connection_id_and_a_migration_with_a_new_one_changes_it():
    pair = settled_pair()
    sid = start_exchange(pair)
    before = pair.server._peer_cids.cid
    rebind_midway(pair, NEW_PORT)
    finish_exchange(pair, sid)
    assert pair.server._peer_cids.cid == before  # §9.5: the client kept its ID, so do we
    # Now the client moves with a fresh connection ID (as an active migration does).
    pair.client.change_connection_id()
    pair.client_addr = NEW_HOST
    pair.client.send_stream_data(pair.client.get_next_available_stream_id(), b"from elsewhere", end_stream=True)
    pair.drive()
    assert pair.server._path.addr == NEW_HOST
    assert pair.server._peer_cids.cid != before and pair.server.stats.path_migrations == 2
