# What a connection keeps once its handshake is over and it sits idle
# (docs/ARCHITECTURE.md, "What an idle connection holds").  The bytes are
# measured by bench/bench_connection_memory.py; these tests pin the
# structure behind them, so a change that brings the weight back fails here:
# discarded spaces hold nothing, the finished handshake holds no ClientHello,
# transcript or handshake secrets, no empty deque, emptied tables cleared, and
# the C packet protection makes each direction's context only on first use.
from __future__ import annotations

import os

import pytest

from pyquic.connection import QuicConnection
from pyquic.events import EventQueue, StreamDataReceived
from pyquic.recovery import PacketNumberSpace
from tests.quic_pair import Pair

INITIAL, HANDSHAKE, APPLICATION = PacketNumberSpace.INITIAL, PacketNumberSpace.HANDSHAKE, PacketNumberSpace.APPLICATION


def idle_pair() -> Pair:
    pair = Pair(rtt=0.04)
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"request", end_stream=True)
    pair.drive()
    pair.server.send_stream_data(sid, b"answer", end_stream=True)
    pair.drive()
    assert pair.received("client", sid) == b"answer"
    return pair


@pytest.mark.parametrize("side", ["client", "server"])
def test_discarded_spaces_and_the_finished_handshake_hold_nothing(side):
    pair = idle_pair()
    conn: QuicConnection = getattr(pair, side)
    for sid in (INITIAL, HANDSHAKE):
        space = conn._spaces[sid]
        assert space.discarded
        assert (space.ack, space.crypto_send, space.crypto_recv, space.send_keys, space.recv_keys) == (None,) * 5
    assert conn._spaces[APPLICATION].ack is not None
    engine = conn.tls
    assert engine.handshake_complete and engine._buffers == {}  # no per-level reassembly buffer left
    ks = engine._state.ks if side == "client" else engine._state.s.ks
    assert (ks.psk, ks.early_secret, ks.handshake_secret) == (None, None, None)
    if side == "server":
        session = engine._state.s
        assert (session.view, session.transcript, session.c_hs, session.c_ap) == (None, None, b"", b"")
    assert conn._pending_1rtt is None  # both 1-RTT directions live in the key phases
    assert conn._builder.datagrams is None  # made on first DATAGRAM frame only
    assert conn._streams.streams == {}
    # Only ACK-only packets may stay outstanding (no one acknowledges them).
    assert not any(p.ack_eliciting for p in conn._loss._spaces[APPLICATION].sent.values())
    # Exporters and further tickets still work from what is kept.
    assert len(engine.export_keying_material(b"EXPORTER-test", b"", 32)) == 32


def test_the_slimmed_server_state_still_seals_tickets_and_the_connection_still_works():
    pair = idle_pair()
    engine = pair.server.tls
    sent = engine._state.tickets_sent
    engine._state.send_ticket(engine)  # one more NewSessionTicket, from what the session kept
    assert engine._state.tickets_sent == sent + 1
    assert pair.upload(b"again" * 1000) == b"again" * 1000


def test_slots_keep_a_dict_for_attributes_set_from_outside():
    pair = idle_pair()
    pair.server.custom_tag = "set by an application"
    pair.server.tls.custom_tag = 1
    assert pair.server.custom_tag == "set by an application" and pair.server.tls.custom_tag == 1
    assert not hasattr(pair.client, "custom_tag")


def test_event_queue_reads_in_order_merges_one_streams_data_and_empties():
    q = EventQueue()
    assert q.pop() is None
    q.append(StreamDataReceived(stream_id=0, data=b"a", end_stream=False))
    q.append(StreamDataReceived(stream_id=0, data=b"b", end_stream=True))
    q.append(StreamDataReceived(stream_id=0, data=b"late", end_stream=False))
    merged = q.pop()
    assert (merged.data, merged.end_stream) == (b"ab", True)
    assert q._items and q.pop().data == b"late"
    assert q._items == [] and q._at == 0 and q.pop() is None  # emptied once all are read
    for i in range(3):
        q.append(StreamDataReceived(stream_id=4 * i, data=bytes([i]), end_stream=False))
    assert [q.pop().stream_id for _ in range(3)] == [0, 4, 8]
    # A reader that takes one event for every one that arrives, never
    # catching up: what it has read is not kept.
    q.append(StreamDataReceived(stream_id=0, data=b"x", end_stream=True))
    for i in range(10_000):
        q.append(StreamDataReceived(stream_id=4 * (i + 1), data=b"x", end_stream=True))
        assert q.pop().stream_id == 4 * i
    assert len(q._items) < 200


def test_packet_protection_makes_each_context_on_first_use():
    from pyquic import _crypto  # the C extension: CI builds it, so this must not skip

    key, iv, hp = os.urandom(16), os.urandom(12), os.urandom(16)
    header = bytes([0x41]) + b"\x07" * 8 + b"\x00\x01"
    # Lazily made contexts give the same packets as a fresh object each time.
    sealer = _crypto.PacketProtection(0x1301, key, iv, hp)
    packet = sealer.protect(header, b"p" * 100, 1)
    assert _crypto.PacketProtection(0x1301, key, iv, hp).protect(header, b"p" * 100, 1) == packet
    opener = _crypto.PacketProtection(0x1301, key, iv, hp)
    plain_header, payload, pn = opener.unprotect(packet, len(header) - 2, -1)
    assert (bytes(plain_header), bytes(payload), pn) == (header, b"p" * 100, 1)
    # The same object both ways, in either order.
    both = _crypto.PacketProtection(0x1301, key, iv, hp)
    assert bytes(both.unprotect(packet, len(header) - 2, -1)[1]) == b"p" * 100
    assert both.protect(header, b"p" * 100, 1) == packet
