# pyquic/streams.py: stream ID rules for both roles, the send and receive
# state machines (every legal path, illegal frames -> the right
# TransportError code), final size rules, RESET_STREAM / STOP_SENDING, stream
# limits and MAX_STREAMS raising, retransmission bookkeeping, and two
# StreamManagers talking through frames (with and without loss).
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyquic.assembler import CHUNK_OVERHEAD
from pyquic.errors import ErrorCode, TransportError, UsageError
from pyquic.flow_control import MAX_STREAM_COUNT, RecvCredit
from pyquic.frames import (
    DataBlocked,
    MaxData,
    MaxStreamData,
    MaxStreams,
    ResetStream,
    StopSending,
    Stream,
    StreamDataBlocked,
    StreamsBlocked,
)
from pyquic.send_stream import SMALL_WRITE, SendState, SendStream, _Spans
from pyquic.streams import (
    DEFAULT_MAX_REASSEMBLY_OVERHEAD,
    RecvState,
    RecvStream,
    StopSendingReceived,
    StreamDataReceived,
    StreamManager,
    StreamReset,
    stream_is_client_initiated,
    stream_is_unidirectional,
)

LIMITS = dict(
    initial_max_data=1 << 20,
    initial_max_stream_data_bidi_local=1 << 16,
    initial_max_stream_data_bidi_remote=1 << 16,
    initial_max_stream_data_uni=1 << 16,
    initial_max_streams_bidi=10,
    initial_max_streams_uni=10,
)


def make_pair(client_limits=None, server_limits=None, **options):
    client_limits = {**LIMITS, **(client_limits or {})}
    server_limits = {**LIMITS, **(server_limits or {})}
    client = StreamManager(True, **client_limits, **options)
    server = StreamManager(False, **server_limits, **options)
    client.on_peer_transport_parameters(SimpleNamespace(**server_limits))
    server.on_peer_transport_parameters(SimpleNamespace(**client_limits))
    return client, server


def flight(sender, receiver, now=0.0, size=1200, lose=None, rng=None):
    """Every frame ``sender`` has, to ``receiver``; acknowledged unless
    ``lose(frame)``.  With ``rng``, frames arrive in random order and some twice."""
    wanted = sender.wants_to_send
    frames = sender.take_control_frames(now, rtt=0.1)
    while (frame := sender.next_stream_frame(size)) is not None:
        frames.append(frame)
    assert wanted == bool(frames), "wants_to_send disagrees with what was sent"
    events = []
    order = list(frames)
    if rng is not None:
        rng.shuffle(order)
        order += rng.sample(order, len(order) // 4)
    for frame in order:
        if lose is not None and lose(frame):
            if frame in frames:
                frames.remove(frame)
                sender.on_frame_lost(frame)
            continue
        event = receiver.handle_frame(frame)
        if event is not None:
            events.append(event)
        if frame in frames:
            frames.remove(frame)
            sender.on_frame_acked(frame)
    return order, events


def run(client, server, rounds=50, **kwargs):
    """Flights both ways until both sides are quiet; the events each side saw."""
    seen = {client: [], server: []}
    for i in range(rounds):
        moved = False
        for a, b in ((client, server), (server, client)):
            frames, events = flight(a, b, now=float(i), **kwargs)
            seen[b] += events
            moved = moved or bool(frames)
        if not moved:
            break
    return seen[client], seen[server]


def received(events, stream_id):
    data = b"".join(e.data for e in events if isinstance(e, StreamDataReceived) and e.stream_id == stream_id)
    ends = [e for e in events if isinstance(e, StreamDataReceived) and e.stream_id == stream_id and e.end_stream]
    return data, len(ends)


def code_of(info) -> int:
    return info.value.code


# --- stream IDs --------------------------------------------------------------------------


def test_stream_id_bits():
    assert [stream_is_client_initiated(i) for i in range(4)] == [True, False, True, False]
    assert [stream_is_unidirectional(i) for i in range(4)] == [False, False, True, True]


@pytest.mark.parametrize("is_client, first_bidi, first_uni", [(True, 0, 2), (False, 1, 3)])
def test_next_available_stream_ids_for_both_roles(is_client, first_bidi, first_uni):
    client, server = make_pair()
    manager = client if is_client else server
    assert manager.get_next_available_stream_id() == first_bidi
    assert manager.get_next_available_stream_id(is_unidirectional=True) == first_uni
    manager.send_stream_data(first_bidi, b"x")
    manager.send_stream_data(first_uni, b"y")
    assert manager.get_next_available_stream_id() == first_bidi + 4
    assert manager.get_next_available_stream_id(True) == first_uni + 4
    # Using a higher ID opens the lower ones of its type too (RFC 9000 §3.2).
    manager.send_stream_data(first_bidi + 12, b"z")
    assert manager.get_next_available_stream_id() == first_bidi + 16
    assert first_bidi + 8 in manager.streams


# --- the sending part ---------------------------------------------------------------------


def ack_all(send, frames):
    for data, offset, fin in frames:
        send.on_data_acked(offset, len(data), fin)


def test_send_states_ready_send_data_sent_data_recvd():
    send = SendStream(0, limit=1000)
    assert send.state == SendState.READY and send.get_frame(100) is None
    send.write(b"hello ")
    assert send.state == SendState.READY
    first = send.get_frame(100)
    assert first == (b"hello ", 0, False) and send.state == SendState.SEND
    send.write(b"world", end_stream=True)
    second = send.get_frame(100)
    assert bytes(second[0]) == b"world" and second[1:] == (6, True)
    assert send.state == SendState.DATA_SENT and not send.has_pending
    ack_all(send, [second])
    assert send.state == SendState.DATA_SENT  # the first frame is still unacknowledged
    ack_all(send, [first])
    assert send.state == SendState.DATA_RECVD and send.is_terminal and send.buffered == 0


def test_fin_alone_and_fin_retransmitted_alone():
    send = SendStream(0, limit=0)
    send.write(b"", end_stream=True)
    assert send.get_frame(0) == (b"", 0, True)  # a bare FIN needs no credit
    assert send.state == SendState.DATA_SENT
    send.on_data_lost(0, 0, True)
    assert send.has_pending and send.get_frame(10) == (b"", 0, True)
    send.on_data_acked(0, 0, True)
    assert send.state == SendState.DATA_RECVD


@pytest.mark.parametrize("frames_before", [0, 1, 2])
def test_send_reset_from_ready_send_and_data_sent(frames_before):
    send = SendStream(4, limit=1000)
    send.write(b"a" * 10)
    if frames_before >= 1:
        send.get_frame(5)
    if frames_before == 2:
        send.write(b"", end_stream=True)
        send.get_frame(100)
        assert send.state == SendState.DATA_SENT
    assert send.reset(7)
    assert send.state == SendState.RESET_SENT and not send.has_pending
    assert send.get_frame(100) is None  # RFC 9000 §3.3: no more STREAM frames
    final = {0: 0, 1: 5, 2: 10}[frames_before]
    assert send.take_reset() == (7, final)
    assert send.take_reset() is None
    send.on_data_lost(0, 5, False)  # ignored now
    assert not send.has_pending
    send.on_reset_lost()
    assert send.take_reset() == (7, final)
    assert not send.reset(8)  # only once
    send.on_reset_acked()
    assert send.state == SendState.RESET_RECVD and send.is_terminal


def test_no_reset_after_all_data_acknowledged_and_no_writes_after_fin_or_reset():
    send = SendStream(0, limit=100)
    send.write(b"abc", end_stream=True)
    ack_all(send, [send.get_frame(100)])
    assert send.state == SendState.DATA_RECVD
    assert not send.reset(1) and send.take_reset() is None
    with pytest.raises(UsageError):
        send.write(b"more")
    other = SendStream(0, limit=100)
    other.reset(1)
    with pytest.raises(UsageError):
        other.write(b"more")


def test_get_frame_respects_size_and_flow_control_and_retransmits_first():
    send = SendStream(0, limit=10)
    send.write(b"0123456789abcdef")
    assert send.get_frame(4, max_offset=10) == (b"0123", 0, False)
    assert bytes(send.get_frame(100, max_offset=10)[0]) == b"456789"
    assert send.get_frame(100, max_offset=10) is None  # blocked at the limit
    assert send.get_frame(-1) is None
    send.on_data_lost(2, 4, False)
    # Lost data goes first and needs no new credit.
    assert bytes(send.get_frame(3, max_offset=10)[0]) == b"234"
    assert send.next_offset == 5
    assert bytes(send.get_frame(3, max_offset=10)[0]) == b"5"
    assert bytes(send.get_frame(100, max_offset=16)[0]) == b"abcdef"


def test_lost_ranges_skip_bytes_already_acknowledged():
    send = SendStream(0, limit=1000)
    send.write(bytes(range(100)))
    frames = [send.get_frame(25) for _ in range(4)]
    ack_all(send, [frames[1]])  # [25, 50)
    for data, offset, fin in frames:
        send.on_data_lost(offset, len(data), fin)
    again = []
    while (frame := send.get_frame(1000)) is not None:
        again.append((frame[1], len(frame[0])))
    assert again == [(0, 25), (50, 50)]
    # A late ack of a lost frame (spurious loss) cancels its retransmission.
    send.on_data_lost(0, 25, False)
    send.on_data_acked(0, 25, False)
    assert send.get_frame(1000) is None and send.acked_offset == 50


def test_acknowledged_prefix_frees_chunks():
    send = SendStream(0, limit=1 << 20)
    chunks = [bytes([i]) * SMALL_WRITE for i in range(3)]
    for chunk in chunks:
        send.write(chunk)
    frames = [send.get_frame(SMALL_WRITE) for _ in range(3)]
    ack_all(send, frames[1:])
    assert send.buffered == 3 * SMALL_WRITE and send.acked_offset == 0
    ack_all(send, frames[:1])
    assert send.buffered == 0 and send.acked_offset == 3 * SMALL_WRITE


def test_large_writes_are_not_copied_small_ones_are_coalesced():
    send = SendStream(0, limit=1 << 20)
    big = bytes(SMALL_WRITE)
    send.write(big)
    assert send.get_frame(SMALL_WRITE)[0] is big
    small = SendStream(0, limit=1 << 20)
    for i in range(100):
        small.write(bytes([i]) * 10)
    assert len(small._chunks) == 1
    data, offset, _ = small.get_frame(2000)
    assert bytes(data) == b"".join(bytes([i]) * 10 for i in range(100))
    mutable = bytearray(b"x" * SMALL_WRITE)
    send.write(mutable)
    mutable[:] = b"y" * SMALL_WRITE  # the application may reuse its buffer
    assert bytes(send.get_frame(SMALL_WRITE)[0]) == b"x" * SMALL_WRITE


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3 * SMALL_WRITE // 2), min_size=0, max_size=6),
    ops=st.lists(st.tuples(st.sampled_from("sslaw"), st.integers(0, 1 << 30)), max_size=80),
)
def test_send_buffer_random_interleavings_end_with_everything_acked(sizes, ops):
    """get_frame / lost / acked (also late acks of lost frames) in any order:
    no acknowledged byte is ever sent again, every frame carries the right
    bytes, and draining ends in Data Recvd with every byte acknowledged."""
    rng = random.Random(len(ops))
    payload = bytes(rng.getrandbits(8) for _ in range(sum(sizes)))
    writes = []
    pos = 0
    for size in sizes:
        writes.append(payload[pos : pos + size])
        pos += size
    send = SendStream(0, limit=0)
    limit = 0
    acked = bytearray(len(payload))  # per-byte model (test only)
    fin_acked = False
    in_flight, lost = [], []

    def write_next():
        chunk = writes.pop(0)
        send.write(chunk, end_stream=not writes)

    def send_one(max_size):
        nonlocal limit
        frame = send.get_frame(max_size, max_offset=limit)
        if frame is None:
            return False
        data, offset, fin = frame
        assert bytes(data) == payload[offset : offset + len(data)]
        assert not any(acked[offset : offset + len(data)]), "acknowledged bytes sent again"
        assert not (fin and fin_acked)
        assert not fin or offset + len(data) == len(payload)
        in_flight.append((offset, len(data), fin))
        return True

    def ack(frame):
        nonlocal fin_acked
        offset, length, fin = frame
        send.on_data_acked(offset, length, fin)
        acked[offset : offset + length] = b"\x01" * length
        fin_acked = fin_acked or fin

    for op, n in ops:
        if op == "w" and writes:
            write_next()
        elif op == "s":
            limit += n % 3000
            send_one(n % 2000)
        elif op == "a" and in_flight:
            ack(in_flight.pop(n % len(in_flight)))
        elif op == "l" and in_flight:
            frame = in_flight.pop(n % len(in_flight))
            send.on_data_lost(*frame)
            lost.append(frame)
        elif op == "a" and lost:
            ack(lost.pop(n % len(lost)))  # a late ack after a loss was declared
    while writes:
        write_next()
    if not sizes:
        send.write(b"", end_stream=True)
    limit = len(payload)
    for _ in range(10000):
        if send.state == SendState.DATA_RECVD:
            break
        if not send_one(1200):
            for frame in in_flight:
                ack(frame)
            in_flight.clear()
    assert send.state == SendState.DATA_RECVD
    assert all(acked) and fin_acked and send.buffered == 0 and send.acked_offset == len(payload)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("as"), st.integers(0, 60), st.integers(0, 20)), max_size=30))
def test_spans_match_a_set_model(ops):
    spans, model = _Spans(), set()
    for op, start, length in ops:
        missing = spans.missing(start, start + length)
        expected = sorted(set(range(start, start + length)) - model)
        assert [i for a, b in zip(missing[0::2], missing[1::2]) for i in range(a, b)] == expected
        if op == "a":
            spans.add(start, start + length)
            model.update(range(start, start + length))
        else:
            spans.subtract(start, start + length)
            model.difference_update(range(start, start + length))
        flat = list(spans)  # the spans are the flat list itself
        assert all(flat[k] < flat[k + 1] for k in range(len(flat) - 1))  # sorted, disjoint, not touching
        assert {i for a, b in zip(flat[0::2], flat[1::2]) for i in range(a, b)} == model


# --- the receiving part -------------------------------------------------------------------


def recv_stream(window=1000):
    return RecvStream(1, window), RecvCredit(10 * window)


def test_recv_states_recv_size_known_data_read():
    recv, conn = recv_stream()
    assert recv.state == RecvState.RECV
    assert recv.on_stream_frame(5, b"world", True, conn) is None  # out of order
    assert recv.state == RecvState.SIZE_KNOWN and recv.final_size == 10
    assert recv.on_stream_frame(0, b"hello", False, conn) == (b"helloworld", True)
    assert recv.state == RecvState.DATA_READ and recv.is_terminal
    assert conn.received == 10
    assert recv.on_stream_frame(0, b"hello", False, conn) is None  # duplicate after the end
    assert not recv.on_reset(10, conn)  # a reset after everything arrived changes nothing


def test_empty_stream_with_fin_only():
    recv, conn = recv_stream()
    assert recv.on_stream_frame(0, b"", True, conn) == (b"", True)
    assert recv.state == RecvState.DATA_READ


@pytest.mark.parametrize("size_known", [False, True])
def test_reset_from_recv_and_size_known(size_known):
    recv, conn = recv_stream()
    recv.on_stream_frame(0, b"abc", False, conn)
    if size_known:
        recv.on_stream_frame(10, b"xyz", True, conn)
        assert recv.state == RecvState.SIZE_KNOWN
        assert recv.stop(3)
    assert recv.on_reset(13, conn)
    assert recv.state == RecvState.RESET_READ and recv.is_terminal
    assert conn.received == 13  # the final size counts for the connection (RFC 9000 §4.5)
    assert not recv.on_reset(13, conn)  # duplicate
    assert recv.on_stream_frame(3, b"late", False, conn) is None
    assert recv.take_stop() is None  # no STOP_SENDING once reset
    assert not recv.stop(4)


@pytest.mark.parametrize(
    "frames",
    [
        [(0, b"abc", True), (0, b"abcd", False)],  # data beyond the final size
        [(0, b"abc", True), (0, b"ab", True)],  # final size changed (smaller)
        [(0, b"abc", True), (3, b"d", True)],  # final size changed (larger)
        [(0, b"abcdef", False), (0, b"abc", True)],  # final size below data received
    ],
)
def test_final_size_violations(frames):
    recv, conn = recv_stream()
    *ok, (offset, data, fin) = frames
    for frame in ok:
        recv.on_stream_frame(*frame, conn)
    with pytest.raises(TransportError) as info:
        recv.on_stream_frame(offset, data, fin, conn)
    assert code_of(info) == ErrorCode.FINAL_SIZE_ERROR


def test_reset_final_size_violations():
    recv, conn = recv_stream()
    recv.on_stream_frame(0, b"abc", True, conn)
    with pytest.raises(TransportError) as info:
        recv.on_reset(4, conn)
    assert code_of(info) == ErrorCode.FINAL_SIZE_ERROR
    other, conn = recv_stream()
    other.on_stream_frame(0, b"abcdef", False, conn)
    with pytest.raises(TransportError) as info:
        other.on_reset(5, conn)
    assert code_of(info) == ErrorCode.FINAL_SIZE_ERROR
    third, conn = recv_stream()
    third.on_reset(5, conn)
    with pytest.raises(TransportError) as info:
        third.on_stream_frame(3, b"abc", False, conn)  # beyond the reset's final size
    assert code_of(info) == ErrorCode.FINAL_SIZE_ERROR


def test_stream_and_connection_flow_control_errors():
    recv, conn = recv_stream(window=100)
    recv.on_stream_frame(0, b"x" * 100, False, conn)
    with pytest.raises(TransportError) as info:
        recv.on_stream_frame(100, b"x", False, conn)
    assert code_of(info) == ErrorCode.FLOW_CONTROL_ERROR
    with pytest.raises(TransportError) as info:
        RecvStream(1, 100).on_reset(101, RecvCredit(1000))
    assert code_of(info) == ErrorCode.FLOW_CONTROL_ERROR
    tight = RecvCredit(150)
    RecvStream(1, 100).on_stream_frame(0, b"x" * 100, False, tight)
    with pytest.raises(TransportError) as info:
        RecvStream(5, 100).on_stream_frame(40, b"x" * 20, False, tight)
    assert code_of(info) == ErrorCode.FLOW_CONTROL_ERROR


def test_stop_sending_is_resent_only_while_useful():
    recv, conn = recv_stream()
    assert recv.stop(9) and not recv.stop(10)
    assert recv.take_stop() == 9 and recv.take_stop() is None
    recv.on_stop_lost()
    assert recv.take_stop() == 9
    recv.on_stream_frame(0, b"all", True, conn)
    recv.on_stop_lost()
    assert recv.take_stop() is None


# --- the manager: two endpoints through frames ----------------------------------------------


def test_bidirectional_exchange_closes_and_forgets_the_stream():
    client, server = make_pair()
    stream_id = client.get_next_available_stream_id()
    request = bytes(range(256)) * 40
    client.send_stream_data(stream_id, request, end_stream=True)
    _, server_events = run(client, server)
    assert received(server_events, stream_id) == (request, 1)
    # Each side still has the half that goes the other way.
    assert stream_id in server.streams and stream_id in client.streams
    server.send_stream_data(stream_id, b"response", end_stream=True)
    client_events, _ = run(client, server)
    assert received(client_events, stream_id) == (b"response", 1)
    assert stream_id not in client.streams and stream_id not in server.streams
    assert server.peer_streams[0].closed == 1
    # Calls on a forgotten stream: resets are no-ops, data is refused.
    client.reset_stream(stream_id, 1)
    server.stop_sending(stream_id, 1)
    with pytest.raises(UsageError):
        client.send_stream_data(stream_id, b"more")


def test_data_arrives_in_order_with_one_end_of_stream():
    client, server = make_pair()
    request = bytes(random.Random(1).getrandbits(8) for _ in range(10000))
    client.send_stream_data(0, request[:4000])
    client.send_stream_data(0, request[4000:], end_stream=True)
    _, server_events = run(client, server, size=700)
    assert received(server_events, 0) == (request, 1)


def test_transfer_survives_loss_of_any_frame():
    rng = random.Random(7)
    client, server = make_pair(
        client_limits=dict(initial_max_data=3000, initial_max_stream_data_bidi_remote=1500, initial_max_streams_bidi=2),
        server_limits=dict(initial_max_data=3000, initial_max_stream_data_bidi_remote=1500, initial_max_streams_bidi=2),
    )
    payloads = {}
    for i in range(5):  # more streams than the limit: MAX_STREAMS must be raised as they close
        stream_id = client.get_next_available_stream_id()
        payloads[stream_id] = bytes([i]) * (2000 + 500 * i)
        client.send_stream_data(stream_id, payloads[stream_id], end_stream=True)
    seen_c, seen_s = [], []
    for _ in range(40):
        c, s = run(client, server, rounds=1, size=500, lose=lambda f: rng.random() < 0.25)
        seen_c += c
        seen_s += s
        for event in s:
            if isinstance(event, StreamDataReceived) and event.end_stream:
                server.send_stream_data(event.stream_id, b"", end_stream=True)
    c, s = run(client, server)
    seen_s += s
    for stream_id, payload in payloads.items():
        assert received(seen_s, stream_id) == (payload, 1)
    assert not client.streams and not server.streams
    assert server.peer_streams[0].closed == 5 and server.peer_streams[0].limit >= 5


SMALL_LIMITS = dict(
    initial_max_data=4000,
    initial_max_stream_data_bidi_local=1500,
    initial_max_stream_data_bidi_remote=1500,
    initial_max_stream_data_uni=1500,
    initial_max_streams_bidi=2,
    initial_max_streams_uni=2,
)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    size=st.integers(40, 1500),
    plan=st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 5000)), min_size=1, max_size=6),
)
def test_random_streams_over_a_lossy_reordering_link_arrive_exactly(seed, loss, size, plan):
    """Streams of both kinds opened by either side, small windows and stream
    limits, frames lost, reordered and duplicated: every stream's data
    arrives exactly once with one end, and both sides end with no state."""
    rng = random.Random(seed)
    client, server = make_pair(SMALL_LIMITS, SMALL_LIMITS)
    expected = {}
    for client_opens, uni, length in plan:
        opener, peer = (client, server) if client_opens else (server, client)
        stream_id = opener.get_next_available_stream_id(uni)
        expected[peer, stream_id] = payload = rng.randbytes(length)
        opener.send_stream_data(stream_id, payload, end_stream=True)
    seen = {client: [], server: []}
    for i in range(400):
        moved = False
        for a, b in ((client, server), (server, client)):
            frames, events = flight(a, b, now=i * 0.01, size=size, lose=lambda f: rng.random() < loss, rng=rng)
            seen[b] += events
            moved = moved or bool(frames)
            for event in events:
                # The receiver of a bidirectional stream ends its own half too.
                if isinstance(event, StreamDataReceived) and event.end_stream and not event.stream_id & 2:
                    if stream_is_client_initiated(event.stream_id) != b.is_client and event.stream_id in b.streams:
                        b.send_stream_data(event.stream_id, b"", end_stream=True)
        if not moved:
            break
    for (receiver, stream_id), payload in expected.items():
        assert received(seen[receiver], stream_id) == (payload, 1)
    assert not client.streams and not server.streams
    assert not client.wants_to_send and not server.wants_to_send


@pytest.mark.parametrize("is_client", [True, False])
def test_frames_for_streams_in_the_wrong_direction_are_stream_state_errors(is_client):
    client, server = make_pair()
    me = client if is_client else server
    own_uni = me.get_next_available_stream_id(is_unidirectional=True)
    me.send_stream_data(own_uni, b"x")
    peer_uni = 3 if is_client else 2
    not_yet_bidi = me.get_next_available_stream_id()
    cases = [
        Stream(own_uni, 0, b"x", False),  # STREAM on a send-only stream (§19.8)
        ResetStream(own_uni, 0, 0),  # §19.4
        StreamDataBlocked(own_uni, 0),  # §19.13
        StopSending(peer_uni, 0),  # STOP_SENDING on a receive-only stream (§19.5)
        MaxStreamData(peer_uni, 100),  # §19.10
        Stream(not_yet_bidi, 0, b"x", False),  # our own stream, not yet opened (§19.8)
        MaxStreamData(not_yet_bidi, 100),  # §19.10
        StopSending(not_yet_bidi, 0),  # §19.5
        Stream(own_uni + 4, 0, b"x", False),  # a send-only stream not yet opened
    ]
    for frame in cases:
        with pytest.raises(TransportError) as info:
            me.handle_frame(frame)
        assert code_of(info) == ErrorCode.STREAM_STATE_ERROR, frame


@pytest.mark.parametrize("is_client", [True, False])
def test_peer_streams_open_implicitly_up_to_our_limit(is_client):
    client, server = make_pair(
        client_limits=dict(initial_max_streams_bidi=3, initial_max_streams_uni=2),
        server_limits=dict(initial_max_streams_bidi=3, initial_max_streams_uni=2),
    )
    me = client if is_client else server
    base_bidi, base_uni = (1, 3) if is_client else (0, 2)
    assert me.handle_frame(Stream(base_bidi + 8, 0, b"hi", False)) == StreamDataReceived(base_bidi + 8, b"hi", False)
    assert {base_bidi, base_bidi + 4, base_bidi + 8} <= set(me.streams)
    me.handle_frame(MaxStreamData(base_bidi + 4, 5000))  # on an implicitly opened stream: fine
    with pytest.raises(TransportError) as info:
        me.handle_frame(Stream(base_bidi + 12, 0, b"x", False))  # the fourth: beyond 3
    assert code_of(info) == ErrorCode.STREAM_LIMIT_ERROR
    me.handle_frame(ResetStream(base_uni + 4, 1, 0))  # RESET_STREAM opens a stream too
    with pytest.raises(TransportError) as info:
        me.handle_frame(StreamDataBlocked(base_uni + 8, 0))
    assert code_of(info) == ErrorCode.STREAM_LIMIT_ERROR


def test_frames_for_closed_streams_are_ignored_and_do_not_reopen_them():
    client, server = make_pair()
    client.send_stream_data(2, b"uni", end_stream=True)
    _, events = run(client, server)
    assert received(events, 2) == (b"uni", 1)
    assert 2 not in server.streams and 2 not in client.streams
    assert server.handle_frame(Stream(2, 0, b"uni", True)) is None
    assert server.handle_frame(ResetStream(2, 0, 3)) is None
    assert client.handle_frame(StopSending(2, 0)) is None
    assert 2 not in server.streams and 2 not in client.streams


def test_local_streams_beyond_max_streams_wait_and_report_streams_blocked():
    client, server = make_pair(server_limits=dict(initial_max_streams_uni=1))
    client.send_stream_data(2, b"first", end_stream=True)
    client.send_stream_data(6, b"second", end_stream=True)
    assert not client.can_open_stream(is_unidirectional=True)
    frames, events = flight(client, server)
    assert [f for f in frames if isinstance(f, Stream)] == [Stream(2, 0, b"first", True)]
    assert StreamsBlocked(False, 1) in frames
    assert flight(client, server) == ([], [])  # reported once
    frames, _ = flight(server, client)  # stream 2 closed at the server: MAX_STREAMS
    assert MaxStreams(False, 2) in frames
    frames, events = flight(client, server)
    assert Stream(6, 0, b"second", True) in frames
    assert received(events, 6) == (b"second", 1)


def test_stop_sending_is_answered_with_reset_stream_carrying_the_peer_code():
    client, server = make_pair()
    client.send_stream_data(0, b"x" * 3000)
    flight(client, server)
    server.stop_sending(0, 0x77)
    frames, events = flight(server, client)
    assert StopSending(0, 0x77) in frames
    assert events == [StopSendingReceived(0, 0x77)]
    frames, events = flight(client, server)
    assert frames == [ResetStream(0, 0x77, 3000)]
    assert events == [StreamReset(0, 0x77)]
    with pytest.raises(UsageError):
        client.send_stream_data(0, b"more")
    assert client.handle_frame(StopSending(0, 0x78)) is None  # a second one changes nothing


def test_peer_reset_returns_the_unread_credit_to_the_connection():
    client, server = make_pair(server_limits=dict(initial_max_data=1000))
    server.handle_frame(Stream(0, 0, b"x" * 100, False))
    assert server.handle_frame(ResetStream(0, 5, 900)) == StreamReset(0, 5)
    assert server.recv_data.received == 900 and server.recv_data.consumed == 900
    frames = server.take_control_frames(0.0)
    assert MaxData(1900) in frames
    assert not any(isinstance(f, MaxStreamData) for f in frames)  # no window for a reset stream


def test_blocked_frames_once_per_limit_and_unblocking():
    client, server = make_pair(server_limits=dict(initial_max_data=1500, initial_max_stream_data_bidi_remote=1000))
    client.send_stream_data(0, b"a" * 2000)
    frames, seen = flight(client, server, size=400)
    assert sum(len(f.data) for f in frames if isinstance(f, Stream)) == 1000  # the stream's limit
    client.send_stream_data(4, b"b" * 2000)
    frames, events = flight(client, server, size=400)
    seen += events
    assert StreamDataBlocked(0, 1000) in frames
    assert sum(len(f.data) for f in frames if isinstance(f, Stream)) == 500  # the connection's limit
    frames, _ = flight(client, server)
    assert frames == [DataBlocked(1500)]
    assert client.take_control_frames(0.0) == [] and not client.wants_to_send  # once per limit value
    seen += run(client, server)[1]
    assert received(seen, 0)[0] == b"a" * 2000 and received(seen, 4)[0] == b"b" * 2000


def test_blocked_is_noticed_when_the_application_writes():
    client, server = make_pair(server_limits=dict(initial_max_data=100))
    client.send_stream_data(0, b"a" * 100)
    frames, _ = flight(client, server)
    assert sum(len(f.data) for f in frames if isinstance(f, Stream)) == 100
    client.send_stream_data(4, b"b")  # nothing can be sent, yet the peer should hear why
    frames, _ = flight(client, server)
    assert frames == [DataBlocked(100)]


def test_streams_take_turns():
    client, server = make_pair()
    for stream_id in (0, 4, 8):
        client.send_stream_data(stream_id, bytes(5000))
    order = [client.next_stream_frame(500).stream_id for _ in range(9)]
    assert order == [0, 4, 8] * 3


def test_peer_exceeding_the_connection_limit_is_flow_control_error():
    _, server = make_pair(server_limits=dict(initial_max_data=1000))
    server.handle_frame(Stream(0, 0, b"x" * 600, False))
    server.handle_frame(Stream(0, 0, b"x" * 600, False))  # a duplicate does not count twice
    with pytest.raises(TransportError) as info:
        server.handle_frame(Stream(4, 0, b"x" * 401, False))
    assert code_of(info) == ErrorCode.FLOW_CONTROL_ERROR


def test_max_streams_and_streams_blocked_above_2_to_the_60():
    client, _ = make_pair()
    for frame in (MaxStreams(True, MAX_STREAM_COUNT + 1), StreamsBlocked(False, MAX_STREAM_COUNT + 1)):
        with pytest.raises(TransportError) as info:
            client.handle_frame(frame)
        assert code_of(info) == ErrorCode.FRAME_ENCODING_ERROR
    client.handle_frame(MaxStreams(True, MAX_STREAM_COUNT))
    client.handle_frame(MaxStreams(True, 5))  # smaller: ignored
    assert client.local_streams[0].limit == MAX_STREAM_COUNT


def test_lost_control_frames_come_back():
    client, server = make_pair(server_limits=dict(initial_max_data=1000, initial_max_stream_data_bidi_remote=1000))
    server.handle_frame(Stream(0, 0, b"x" * 600, False))
    server.stop_sending(0, 1)
    server.send_stream_data(1, b"y")
    server.reset_stream(1, 2)
    frames = server.take_control_frames(0.0)
    assert set(frames) == {MaxData(1600), MaxStreamData(0, 1600), StopSending(0, 1), ResetStream(1, 2, 0)}
    assert server.take_control_frames(0.0) == []
    for frame in frames:
        server.on_frame_lost(frame)
    assert server.wants_to_send
    assert set(server.take_control_frames(1.0)) == set(frames)
    client.send_stream_data(2, b"z" * 1500)  # beyond the server's connection window
    assert len(client.next_stream_frame(100000).data) == 1000
    assert client.next_stream_frame(100000) is None
    blocked = client.take_control_frames(0.0)
    assert blocked == [DataBlocked(1000)]
    client.on_frame_lost(blocked[0])
    assert client.take_control_frames(0.0) == blocked


def test_manual_consume_returns_credit_only_when_told():
    client, server = make_pair(server_limits=dict(initial_max_data=1000), auto_consume=False)
    server.handle_frame(Stream(0, 0, b"x" * 600, True))
    assert server.take_control_frames(0.0) == []
    with pytest.raises(UsageError):
        server.consume(0, 601)
    server.consume(0, 600)
    assert server.take_control_frames(0.0) == [MaxData(1600)]


def test_application_misuse_is_usage_error():
    client, server = make_pair()
    with pytest.raises(UsageError):
        client.send_stream_data(3, b"x")  # the server's uni stream: receive-only for us
    with pytest.raises(UsageError):
        client.stop_sending(2, 0)  # our own uni stream: nothing to receive
    with pytest.raises(UsageError):
        client.send_stream_data(1, b"x")  # the server has not opened it
    with pytest.raises(UsageError):
        client.reset_stream(0, 1 << 62)


# --- the connection's reassembly budget (RFC 9000 §21.7) ------------------------------------


def test_one_reassembly_budget_for_all_streams_released_on_read_and_reset():
    client, server = make_pair()
    assert server.reassembly.limit == DEFAULT_MAX_REASSEMBLY_OVERHEAD
    assert server.handle_frame(Stream(0, 10, b"a" * 10, False)) is None
    assert server.handle_frame(Stream(4, 10, b"b" * 10, False)) is None
    assert server.handle_frame(Stream(4, 30, b"c" * 10, True)) is None
    assert server.reassembly.used == 3 * CHUNK_OVERHEAD
    # RESET_STREAM drops what stream 0 held.
    assert server.handle_frame(ResetStream(0, 7, 20)) == StreamReset(0, 7)
    assert server.reassembly.used == 2 * CHUNK_OVERHEAD
    # Reading releases: stream 4 delivered up to its gap, then to the end.
    assert server.handle_frame(Stream(4, 0, b"B" * 10, False)) == StreamDataReceived(4, b"B" * 10 + b"b" * 10, False)
    assert server.reassembly.used == CHUNK_OVERHEAD
    assert server.handle_frame(Stream(4, 20, b"C" * 10, False)) == StreamDataReceived(4, b"C" * 10 + b"c" * 10, True)
    assert server.reassembly.used == 0


def test_tiny_scattered_frames_over_the_budget_are_protocol_violation():
    client, server = make_pair(max_reassembly_overhead=100 * CHUNK_OVERHEAD)
    with pytest.raises(TransportError) as info:
        for k in range(1, 1000):
            for stream_id in (0, 4, 8, 2, 6):
                server.handle_frame(Stream(stream_id, 2 * k, b"x", False))
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION
    assert info.value.frame_type == 0x08
    assert 95 <= 5 * k <= 105  # caught at about 100 one-byte pieces, not per stream


def test_out_of_order_runs_on_many_streams_are_joined_and_delivered_exactly():
    # Every stream loses its first frame; the rest arrive, interleaved: each
    # stream holds one run behind a gap, in far more chunks than the budget.
    client, server = make_pair(max_reassembly_overhead=64 * CHUNK_OVERHEAD)
    rng = random.Random(3)
    bodies = {4 * i: rng.randbytes(10_000) for i in range(10)}
    for offset in range(50, 10_000, 50):
        for stream_id, body in bodies.items():
            fin = offset + 50 == len(body)
            assert server.handle_frame(Stream(stream_id, offset, body[offset : offset + 50], fin)) is None
            assert server.reassembly.used <= server.reassembly.limit
    for stream_id, body in bodies.items():
        event = server.handle_frame(Stream(stream_id, 0, body[:50], False))
        assert event == StreamDataReceived(stream_id, body, True)
    assert server.reassembly.used == 0


def test_a_forgotten_stream_returns_its_budget():
    client, server = make_pair()
    stream_id = client.get_next_available_stream_id()
    client.send_stream_data(stream_id, b"x" * 5000, end_stream=True)
    flight(client, server, rng=random.Random(1))  # out of order, some twice
    assert server.reassembly.used == 0
    flight(server, client)
    server.send_stream_data(stream_id, b"", end_stream=True)
    flight(server, client)
    flight(client, server)
    assert stream_id not in server.streams and server.reassembly.used == 0
