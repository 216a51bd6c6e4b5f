# What a peer can make one connection hold in out-of-order STREAM data
# (RFC 9000 §21.7): flow control counts bytes, the connection's
# ReassemblyBudget (pyquic/assembler.py, QuicConfiguration.
# max_reassembly_overhead) counts what the pieces cost beyond them.  A
# client and a server in memory (tests/quic_pair.py): tiny scattered frames
# end in CONNECTION_CLOSE with PROTOCOL_VIOLATION and a bounded memory peak
# (tracemalloc), while legitimate out-of-order data -- loss and reordering,
# and a whole default-sized receive window held behind one gap -- arrives
# byte-exact without touching the cap.
import random
import tracemalloc

from pyquic import events
from pyquic.assembler import CHUNK_OVERHEAD
from pyquic.config import QuicConfiguration
from pyquic.connection import QuicConnectionState
from pyquic.errors import ErrorCode
from pyquic.frames import Stream
from pyquic.streams import StreamDataReceived, StreamManager
from tests.quic_pair import CLIENT_ADDR, Pair, craft_short_packet

STREAMS = 228  # 128 bidirectional + 100 unidirectional client streams (the server allows 128 + 128)
FRAMES_PER_STREAM = 2000
# Before the budget the attack below held 21.2 MB (tracemalloc peak; RSS grew
# by 23.5 MB) for 456,000 bytes of flow control credit.  Now ~2.3 MB.
MEMORY_BOUND = 6 * 1048576


def attack_packets(pair: Pair) -> list[bytes]:
    """2,000 one-byte STREAM frames at scattered (odd, shuffled) offsets on
    each of 228 streams, packed ~160 to a 1-RTT packet: 456,000 frames, each
    within every flow control limit (highest offset 3,999 per stream)."""
    rng = random.Random(5)
    stream_ids = [i << 2 for i in range(128)] + [i << 2 | 2 for i in range(STREAMS - 128)]
    offsets = [1 + 2 * k for k in range(FRAMES_PER_STREAM)]
    rng.shuffle(offsets)
    # Each frame encoded once per (stream, offset) part, as Stream.encode would.
    heads = {sid: _encoded(Stream(sid, 1, b"x"))[:-3] for sid in stream_ids}
    tails = {offset: _encoded(Stream(0, offset, b"x"))[2:] for offset in offsets}
    assert heads[4] + tails[3] == _encoded(Stream(4, 3, b"x"))
    packets = []
    payload: list[bytes] = []
    size = 0
    for offset in offsets:
        rng.shuffle(stream_ids)
        tail = tails[offset]
        for stream_id in stream_ids:
            frame = heads[stream_id] + tail
            payload.append(frame)
            size += len(frame)
            if size > 1100:
                packets.append(craft_short_packet(pair.client, b"".join(payload)))
                payload, size = [], 0
    packets.append(craft_short_packet(pair.client, b"".join(payload)))
    return packets


def _encoded(frame: Stream) -> bytes:
    out = bytearray()
    frame.encode(out)
    return bytes(out)


def test_tiny_scattered_stream_frames_end_the_connection_with_memory_bounded():
    pair = Pair()
    pair.handshake()
    pair.drive()
    packets = attack_packets(pair)  # built before tracing: only the receiver is measured
    server = pair.server
    assert server._streams.reassembly.limit == QuicConfiguration().max_reassembly_overhead
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        delivered = 0
        for packet in packets:
            server.receive_datagram(packet, CLIENT_ADDR, now=pair.now)
            delivered += 1
            if server.state >= QuicConnectionState.CLOSING:
                break
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert server.state >= QuicConnectionState.CLOSING
    assert (server._end.event.error_code, server._end.event.frame_type) == (ErrorCode.PROTOCOL_VIOLATION, 0x08)
    # Caught once the pieces of all streams together cost the budget (~37,000
    # of the 456,000 frames: 233 of 2,827 packets).
    assert delivered < len(packets) // 10
    assert peak < MEMORY_BOUND, f"receiver peak {peak / 1e6:.1f} MB"
    # Closing drops what the streams held at once, not when the object goes.
    assert server._streams.reassembly.used == 0
    # The rest is ignored (closing), and the client hears why.
    for packet in packets[delivered:]:
        server.receive_datagram(packet, CLIENT_ADDR, now=pair.now)
    pair.drive()
    closed = pair.events_of("client", events.ConnectionTerminated)
    assert [(e.error_code, e.frame_type) for e in closed] == [(ErrorCode.PROTOCOL_VIOLATION, 0x08)]


def test_out_of_order_streams_over_a_lossy_reordering_link_arrive_exactly():
    pair = Pair(seed=4)
    pair.handshake()
    pair.drive()
    link = pair.client_to_server
    link.loss = 0.05
    link.reorder = 0.3
    link.reorder_delay = 0.05
    link.duplicate = 0.05
    rng = random.Random(9)
    bodies = {}
    for _ in range(8):
        stream_id = pair.client.get_next_available_stream_id()
        bodies[stream_id] = rng.randbytes(rng.randrange(50_000, 300_000))
        pair.client.send_stream_data(stream_id, bodies[stream_id], end_stream=True)
    budget = pair.server._streams.reassembly
    peak = [0]

    def done() -> bool:
        peak[0] = max(peak[0], budget.used)
        return all(pair.received("server", sid) == body for sid, body in bodies.items())

    assert pair.drive_until(done, duration=120)
    assert pair.server.state == QuicConnectionState.CONNECTED
    assert peak[0] > 0  # data really was held out of order
    assert budget.used == 0
    ended = [e.stream_id for e in pair.events_of("server", events.StreamDataReceived) if e.end_stream]
    assert sorted(ended) == sorted(bodies)


def test_a_full_default_window_behind_one_gap_stays_within_the_budget():
    """Windows grown to their default maximum (16 MiB for the connection,
    8 MiB a stream), the first frame of each of two streams lost, the rest
    arriving with local reordering and its own losses retransmitted late:
    the receiver holds ~16 MiB out of order and the default budget holds."""
    config = QuicConfiguration()
    server = StreamManager(
        False,
        initial_max_data=config.max_data_window,
        initial_max_stream_data_bidi_local=config.max_stream_data_window,
        initial_max_stream_data_bidi_remote=config.max_stream_data_window,
        initial_max_stream_data_uni=config.max_stream_data_window,
        initial_max_streams_bidi=config.max_streams_bidi,
        initial_max_streams_uni=config.max_streams_uni,
        max_reassembly_overhead=config.max_reassembly_overhead,
    )
    rng = random.Random(2)
    frame_size = 1100  # data in a full-sized packet
    bodies = {0: rng.randbytes(config.max_stream_data_window), 4: rng.randbytes(config.max_stream_data_window)}
    pieces = [
        (sid, offset) for offset in range(0, len(bodies[0]), frame_size) for sid in bodies
    ]
    first, rest = pieces[:2], pieces[2:]
    # 2% lost again (resent after everything else); neighbours swapped at random.
    late = [p for p in rest if rng.random() < 0.02]
    late_set = set(late)
    order = [p for p in rest if p not in late_set]
    for i in range(0, len(order) - 1):
        if rng.random() < 0.1:
            order[i], order[i + 1] = order[i + 1], order[i]
    received = {sid: [] for sid in bodies}
    peak = 0

    def deliver(sid: int, offset: int) -> None:
        body = bodies[sid]
        end = min(offset + frame_size, len(body))
        event = server.handle_frame(Stream(sid, offset, body[offset:end], end == len(body)))
        if event is not None:
            assert isinstance(event, StreamDataReceived)
            received[sid].append(event.data)

    for sid, offset in order + late:
        deliver(sid, offset)
        peak = max(peak, server.reassembly.used)
    assert not any(received.values())  # everything waited behind the first frames
    held = sum(server.streams[sid].recv._assembler.buffered for sid in bodies)
    assert held == sum(len(body) for body in bodies.values()) - 2 * frame_size
    # Each stream joins its contiguous runs at MAX_STREAM_CHUNKS: a few
    # thousand chunks held at most, a fraction of the budget.
    assert 1000 * CHUNK_OVERHEAD < peak <= server.reassembly.limit // 4
    for sid, offset in first:
        deliver(sid, offset)
    for sid, body in bodies.items():
        assert b"".join(received[sid]) == body
    assert server.reassembly.used == 0
