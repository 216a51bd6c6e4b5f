# A GRO batch of 1-RTT packets is opened in one call (KeyPhases.open_batch,
# QuicConnection.receive_datagrams), its STREAM frames coalesced while they
# continue each other (stream_runs.StreamRun), and must come to exactly what
# the same datagrams one by one come to: the same stream data, events,
# counters, ACK state and errors.  Then what ends the batched run or a held
# STREAM run early, each checked against the one-by-one path too: a peer's
# key update in mid-batch, a forged packet, a packet for a connection ID
# that is not ours, a CONNECTION_CLOSE, a duplicate, a gap, two streams in
# turn, a new stream, a RESET_STREAM, flow control exceeded.
import os

from pyquic.connection import QuicConnectionState
from pyquic.events import StreamDataReceived
from pyquic.frames import ConnectionClose, ResetStream, Stream
from pyquic.spaces import KeyPhases
from pyquic.streams import StreamManager
from tests.quic_pair import SERVER_ADDR, Pair, craft_short_packet

SIZE = 1200  # these pairs do not probe for a larger size: every full datagram is 1200 bytes


def _pair() -> Pair:
    pair = Pair(seed=7)
    pair.client_config.max_probe_datagram_size = 0
    pair.server_config.max_probe_datagram_size = 0
    pair.handshake()
    pair.drive()
    return pair


def _server_datagrams(pair: Pair, data: bytes, end_stream: bool = True) -> list[bytes]:
    """What the server sends for `data` on its first stream (id 1), all of it
    (within its initial congestion window)."""
    if pair.server._streams.streams.get(1) is None:
        assert pair.server.get_next_available_stream_id() == 1
    pair.server.send_stream_data(1, data, end_stream=end_stream)
    datagrams = [d for d, _ in pair.server.datagrams_to_send(now=pair.now)]
    assert not pair.server._streams.streams[1].send.has_pending, "more than the window"
    return datagrams


def _gro(datagrams: list[bytes]) -> list[tuple[bytes, int]]:
    """Datagrams as the kernel's GRO would hand them over: runs of one size, the last of a run may be shorter."""
    batches: list[tuple[list[bytes], int]] = []
    for d in datagrams:
        if batches and len(batches[-1][0][-1]) == batches[-1][1] and len(d) <= batches[-1][1]:
            batches[-1][0].append(d)
        else:
            batches.append(([d], len(d)))
    return [(b"".join(ds), size) for ds, size in batches]


def _feed(pair: Pair, datagrams: list[bytes], batched: bool) -> None:
    client = pair.client
    if batched:
        for data, size in _gro(datagrams):
            client.receive_datagrams(data, size, SERVER_ADDR, now=pair.now)
    else:
        for data in datagrams:
            client.receive_datagram(data, SERVER_ADDR, now=pair.now)
    pair._collect_events()


def _counters(pair: Pair) -> tuple:
    stats = pair.client.stats
    return (stats.datagrams_received, stats.bytes_received, stats.packets_received, stats.packets_dropped,
            stats.duplicates, stats.decryption_failures)


def _facts(pair: Pair, before: tuple) -> dict:
    """What feeding did (counters as differences: the handshakes' sizes vary by a byte or two)."""
    client = pair.client
    ack = client._spaces[2].ack
    return {
        "data": pair.received("client", 1),
        "events": [type(e).__name__ for e in pair.client_events],
        "stats": tuple(after - was for after, was in zip(_counters(pair), before)),
        "acks": list(ack._received),
        "largest": ack.largest_received,
        "state": client.state,
        "key_phase": client.key_phase,
        "closed": (client._end.event.error_code, client._end.event.frame_type) if client._end.event else None,
        "per_stream": _per_stream(pair),
    }


def _per_stream(pair: Pair) -> dict:
    out: dict = {}
    for e in pair.client_events:
        if isinstance(e, StreamDataReceived):
            data, ended = out.get(e.stream_id, (b"", False))
            out[e.stream_id] = (data + e.data, ended or e.end_stream)
    return out


def _both(datagrams_of) -> tuple[dict, dict]:
    """The same scenario on two identical pairs, batched and one by one."""
    out = []
    for batched in (True, False):
        pair = _pair()
        datagrams = datagrams_of(pair)
        pair.client_events.clear()
        before = _counters(pair)
        _feed(pair, datagrams, batched)
        out.append(_facts(pair, before))
    return out[0], out[1]


def _padded(sender, frames: bytes, size: int = SIZE) -> bytes:
    """A crafted 1-RTT packet of exactly `size` bytes (PADDING after `frames`)."""
    overhead = 1 + len(sender._peer_cids.cid) + 4 + 16
    return craft_short_packet(sender, frames + bytes(size - overhead - len(frames)))


def test_pairs_send_the_same_datagrams_but_for_keys():
    # The TLS key exchange is random, so the bytes differ; what is sent does not.
    a, b = _pair(), _pair()
    data = b"s" * 10_000
    assert [len(d) for d in _server_datagrams(a, data)] == [len(d) for d in _server_datagrams(b, data)]


def test_a_bulk_batch_comes_to_what_single_datagrams_come_to(monkeypatch):
    data = bytes(range(256)) * 40  # 10 KB: 9 full datagrams and a short one
    opened_in_batches = []
    real = KeyPhases.open_batch

    def counting(self, *args):
        segments, opened, resume = real(self, *args)
        opened_in_batches.append(len(segments))
        return segments, opened, resume

    monkeypatch.setattr(KeyPhases, "open_batch", counting)

    def scenario(pair):
        datagrams = _server_datagrams(pair, data)
        assert len(datagrams) >= 8 and len(_gro(datagrams)) <= 2
        return datagrams

    batched, single = _both(scenario)
    assert batched == single
    assert batched["data"] == data
    assert batched["stats"][5] == 0
    assert sum(opened_in_batches) == batched["stats"][2]  # every packet of the batched run opened in a batch


def test_a_key_update_in_mid_batch():
    data = b"k" * 9_000

    def scenario(pair):
        first = _server_datagrams(pair, data[:4_800], end_stream=False)
        pair.server.request_key_update()
        second = _server_datagrams(pair, data[4_800:])
        # One GRO batch across the update, then the short ones: the old key's
        # comes after the new key's packets (the previous key opens it, §6.5).
        full = [d for d in first + second if len(d) == SIZE]
        assert len([d for d in first if len(d) == SIZE]) >= 2 and len([d for d in second if len(d) == SIZE]) >= 2
        return full + [d for d in first + second if len(d) != SIZE]

    batched, single = _both(scenario)
    assert batched == single
    assert batched["key_phase"] == 1 and batched["stats"][5] == 0
    assert len(batched["data"]) == len(data)


def test_a_forged_packet_in_mid_batch_is_dropped_and_the_rest_taken():
    def scenario(pair):
        datagrams = _server_datagrams(pair, b"f" * 10_000)
        forged = bytearray(datagrams[3])
        forged[-1] ^= 1  # the tag no longer matches
        datagrams[3] = bytes(forged)
        return datagrams

    batched, single = _both(scenario)
    assert batched == single
    assert batched["stats"][5] == 1  # one decryption failure
    assert batched["stats"][0] == batched["stats"][2] + 1  # every other datagram's packet was taken


def test_a_packet_for_another_connection_id_ends_the_run():
    def scenario(pair):
        datagrams = _server_datagrams(pair, b"c" * 10_000)
        foreign = bytearray(datagrams[4])
        foreign[1] ^= 0xFF  # not one of the client's connection IDs
        datagrams[4] = bytes(foreign)
        return datagrams

    batched, single = _both(scenario)
    assert batched == single
    assert batched["stats"][3] >= 1  # dropped


def test_connection_close_in_mid_batch_stops_it():
    def scenario(pair):
        datagrams = _server_datagrams(pair, b"x" * 10_000)
        close = bytearray()
        ConnectionClose(0x0A, 0, "bye", False).encode(close)
        datagrams.insert(3, _padded(pair.server, bytes(close)))
        return datagrams

    batched, single = _both(scenario)
    assert batched == single
    assert batched["state"] is QuicConnectionState.DRAINING
    assert batched["stats"][2] == 4  # three packets of data and the close; nothing after it


def test_a_duplicate_in_a_batch_is_counted_once():
    def scenario(pair):
        datagrams = _server_datagrams(pair, b"d" * 10_000)
        return datagrams[:5] + [datagrams[2]] + datagrams[5:]

    batched, single = _both(scenario)
    assert batched == single
    assert batched["stats"][4] == 1


def test_stream_events_from_a_batch(monkeypatch):
    # The batch's STREAM frames continue each other: the stream manager gets two frames, the first
    # packet's (it opens the stream, which is never held) and one for all the rest.
    frames = []
    real = StreamManager.handle_stream_frame
    monkeypatch.setattr(StreamManager, "handle_stream_frame", lambda self, f: frames.append(f) or real(self, f))
    pair = _pair()
    data = os.urandom(10_000)
    datagrams = _server_datagrams(pair, data)
    _feed(pair, datagrams, batched=True)
    assert len(_gro(datagrams)) == 1 and len(datagrams) >= 8 and len(frames) == 2
    got = [e for e in pair.client_events if isinstance(e, StreamDataReceived)]
    assert b"".join(e.data for e in got) == data and got[-1].end_stream


def _stream_frame(stream_id: int, offset: int, data: bytes, fin: bool = False) -> bytes:
    out = bytearray()
    Stream(stream_id, offset, data, fin).encode(out)
    return bytes(out)


CHUNK = 1000  # STREAM data per crafted packet (they are padded to SIZE)


def test_two_streams_in_turn_a_gap_and_a_new_stream():
    def scenario(pair):
        s = pair.server
        packets = []
        for i in range(4):  # streams 1 and 5 in turn (5 is new to the client at its first frame)
            packets.append(_padded(s, _stream_frame(1, i * CHUNK, b"a" * CHUNK)))
            packets.append(_padded(s, _stream_frame(5, i * CHUNK, b"b" * CHUNK)))
        for i in range(4, 8):  # stream 1 alone, with offset 6 * CHUNK missing, then its end
            if i != 6:
                packets.append(_padded(s, _stream_frame(1, i * CHUNK, b"a" * CHUNK, fin=i == 7)))
        packets.append(_padded(s, _stream_frame(1, 6 * CHUNK, b"a" * CHUNK)))  # the gap, late
        return packets

    batched, single = _both(scenario)
    assert batched == single
    assert batched["per_stream"] == {1: (b"a" * 8 * CHUNK, True), 5: (b"b" * 4 * CHUNK, False)}


def test_a_reset_after_held_data_keeps_the_order():
    def scenario(pair):
        s = pair.server
        reset = bytearray()
        ResetStream(1, 7, 3 * CHUNK).encode(reset)
        return [_padded(s, _stream_frame(1, i * CHUNK, b"r" * CHUNK)) for i in range(3)] + [
            _padded(s, bytes(reset)), _padded(s, _stream_frame(1, 3 * CHUNK, b"late"))]

    batched, single = _both(scenario)
    assert batched == single
    assert batched["events"][-2:] == ["StreamDataReceived", "StreamReset"]


def test_flow_control_exceeded_in_a_held_run_closes_alike():
    def scenario(pair):
        s = pair.server
        limit = pair.client_config.max_stream_data
        start = limit - 2 * CHUNK  # the third packet goes past the stream's limit
        return [_padded(s, _stream_frame(1, start + i * CHUNK, b"o" * CHUNK)) for i in range(4)]

    batched, single = _both(scenario)
    assert batched["closed"] == single["closed"] and batched["closed"][0] == 0x03  # FLOW_CONTROL_ERROR
    assert batched["state"] == single["state"]


def test_an_error_in_mid_batch_delivers_what_came_before_it():
    # Packets 0-2 carry data the run holds; packet 3 is malformed (a frame type that does not exist):
    # one by one, the data of 0-2 is delivered before the close, and so it is from a batch.
    def scenario(pair):
        s = pair.server
        held = [_padded(s, _stream_frame(1, 0, b"h" * CHUNK))]  # opens stream 1 (not held)
        held += [_padded(s, _stream_frame(1, i * CHUNK, b"h" * CHUNK)) for i in range(1, 3)]
        return held + [_padded(s, b"\x21\x00")] + [_padded(s, _stream_frame(1, 3 * CHUNK, b"h" * CHUNK))]

    batched, single = _both(scenario)
    assert batched == single
    assert batched["per_stream"] == {1: (b"h" * 3 * CHUNK, False)}
    assert batched["closed"][0] == 0x07  # FRAME_ENCODING_ERROR
