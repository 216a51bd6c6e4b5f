# pyquic.h3.H3Connection: our client against our server over the in-memory
# QUIC pair (tests/h3_pair.py on tests/quic_pair.py, simulated clock):
# request/response, bodies streamed both ways (a DATA frame is delivered in
# pieces as it arrives), trailers, interim responses, GOAWAY (the client
# stops opening requests at the ID, the server refuses later ones with
# H3_REQUEST_REJECTED), HTTP datagrams, extended CONNECT, the reserved
# setting and frame on the wire, flow-control credit without auto_consume,
# resets both ways, and 10,000 requests leaving no per-stream state.
from __future__ import annotations

import pytest

from pyquic.buffer import decode_varint
from pyquic.h3 import frames as f
from pyquic.h3.connection import H3Connection
from pyquic.h3.errors import H3ErrorCode, H3UsageError
from pyquic.h3.events import (
    DatagramReceived, DataReceived, GoAwayReceived, HeadersReceived, SettingsReceived, StopSendingReceived,
    StreamReset,
)
from tests.h3_pair import H3Pair
from tests.quic_pair import client_configuration

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/")]


def post(length: int) -> list:
    return [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/up"),
            (b"content-length", str(length).encode())]


def body_of(pair: H3Pair, who: str, stream_id: int) -> bytes:
    return b"".join(e.data for e in pair.events(who, DataReceived, stream_id))


def ended(pair: H3Pair, who: str, stream_id: int) -> bool:
    return any(getattr(e, "stream_ended", False) for e in pair.events(who, (HeadersReceived, DataReceived), stream_id))


def echo_server(pair: H3Pair, trailers: bool = False):
    """Answers each request with its body (streamed back as it arrives)."""
    def on_event(event):
        h3 = pair.h3_server
        if isinstance(event, HeadersReceived) and any(n == b":method" for n, _ in event.headers):
            h3.send_headers(event.stream_id, [(b":status", b"200")], end_stream=False)
        if isinstance(event, (DataReceived, HeadersReceived)):
            if isinstance(event, DataReceived) and event.data:
                h3.send_data(event.stream_id, event.data, end_stream=False)
            if event.stream_ended:
                if trailers:
                    h3.send_headers(event.stream_id, [(b"x-trailer", b"done")], end_stream=True)
                else:
                    h3.send_data(event.stream_id, b"", end_stream=True)
    pair.on_server_event = on_event


def test_settings_exchanged():
    pair = H3Pair(h3_server_kwargs={"max_field_section_size": 10_000, "qpack_max_table_capacity": 1024})
    pair.start()
    got = pair.h3_client.received_settings
    assert got[f.SETTING_MAX_FIELD_SECTION_SIZE] == 10_000 and got[f.SETTING_QPACK_MAX_TABLE_CAPACITY] == 1024
    assert pair.events("client", SettingsReceived)[0].settings == got
    assert pair.h3_server.sent_settings == {1: 1024, 7: 16, 6: 10_000}


def test_get_with_response_body():
    pair = H3Pair()
    pair.start()
    body = bytes(range(256)) * 400

    def on_event(event):
        if isinstance(event, HeadersReceived):
            assert event.stream_ended and dict(event.headers)[b":path"] == b"/"
            pair.h3_server.send_headers(event.stream_id, [(b":status", b"200"), (b"content-length", b"102400")])
            pair.h3_server.send_data(event.stream_id, body, end_stream=True)
    pair.on_server_event = on_event
    sid = pair.client.get_next_available_stream_id()
    pair.h3_client.send_headers(sid, GET, end_stream=True)
    pair.drive()
    (response,) = pair.events("client", HeadersReceived, sid)
    assert response.headers[0] == (b":status", b"200")
    assert body_of(pair, "client", sid) == body and ended(pair, "client", sid)
    # One DATA frame of 100 KiB arrived in many packets: delivered in pieces, not buffered whole.
    assert len(pair.events("client", DataReceived, sid)) > 5
    assert not pair.h3_client._requests and not pair.h3_server._requests


def test_bodies_streamed_both_ways_with_trailers():
    pair = H3Pair()
    pair.start()
    echo_server(pair, trailers=True)
    sid = pair.client.get_next_available_stream_id()
    chunks = [bytes([i]) * 30_000 for i in range(10)]
    pair.h3_client.send_headers(sid, post(300_000))
    seen_before_end = []
    for chunk in chunks:
        pair.h3_client.send_data(sid, chunk)
        pair.drive(duration=0.3)
        seen_before_end.append(len(body_of(pair, "server", sid)))
    pair.h3_client.send_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)
    pair.drive()
    # The server saw the upload as it came, and echoed it as it came.
    assert 0 < seen_before_end[0] < seen_before_end[4] < 300_000
    assert body_of(pair, "server", sid) == b"".join(chunks)
    assert body_of(pair, "client", sid) == b"".join(chunks)
    server_trailers = pair.events("server", HeadersReceived, sid)[-1]
    assert server_trailers.headers == [(b"x-checksum", b"abc")] and server_trailers.stream_ended
    client_trailers = pair.events("client", HeadersReceived, sid)[-1]
    assert client_trailers.headers == [(b"x-trailer", b"done")] and client_trailers.stream_ended
    assert not pair.h3_client._requests and not pair.h3_server._requests


def test_interim_response_then_final():
    pair = H3Pair()
    pair.start()

    def on_event(event):
        if isinstance(event, HeadersReceived):
            pair.h3_server.send_headers(event.stream_id, [(b":status", b"103"), (b"link", b"</a.css>")])
            pair.h3_server.send_headers(event.stream_id, [(b":status", b"204")], end_stream=True)
    pair.on_server_event = on_event
    sid = pair.client.get_next_available_stream_id()
    pair.h3_client.send_headers(sid, GET, end_stream=True)
    pair.drive()
    statuses = [e.headers[0] for e in pair.events("client", HeadersReceived, sid)]
    assert statuses == [(b":status", b"103"), (b":status", b"204")] and ended(pair, "client", sid)


def test_send_misuse_raises_usage_errors():
    pair = H3Pair()
    pair.start()
    h3 = pair.h3_client
    with pytest.raises(H3UsageError):
        h3.send_data(0, b"x")  # DATA before HEADERS
    with pytest.raises(H3UsageError):
        h3.send_headers(0, [(b":method", b"GET")])  # no :scheme / :path
    with pytest.raises(H3UsageError):
        h3.send_headers(0, GET + [(b"Upper", b"x")])
    with pytest.raises(H3UsageError):
        h3.send_headers(0, GET + [(b"connection", b"close")])
    h3.send_headers(0, GET, end_stream=True)
    with pytest.raises(H3UsageError):
        h3.send_data(0, b"late")  # after the end
    with pytest.raises(H3UsageError):
        h3.send_headers(0, GET)  # a closed stream
    with pytest.raises(H3UsageError):
        pair.h3_server.send_headers(8, [(b":status", b"200")])  # no such request
    with pytest.raises(H3UsageError):
        h3.send_datagram(4, b"x")  # not negotiated


def test_peer_max_field_section_size_is_honoured():
    pair = H3Pair(h3_server_kwargs={"max_field_section_size": 200})
    pair.start()
    big = GET + [(b"x-big", b"v" * 200)]
    with pytest.raises(H3UsageError, match="MAX_FIELD_SECTION_SIZE"):
        pair.h3_client.send_headers(0, big, end_stream=True)
    pair.h3_client.send_headers(0, GET, end_stream=True)  # a small one still goes
    pair.drive()
    assert pair.events("server", HeadersReceived, 0)


def test_goaway_graceful_shutdown():
    pair = H3Pair()
    pair.start()
    echo_server(pair)
    for sid in (0, 4):
        pair.h3_client.send_headers(sid, post(0), end_stream=True)
    pair.drive()
    assert pair.h3_server.send_goaway() == 8  # the lowest request ID not processed
    pair.h3_client.send_headers(8, post(0), end_stream=True)  # crosses the GOAWAY in flight
    pair.drive()
    assert [e.stream_id for e in pair.events("client", GoAwayReceived)] == [8]
    assert pair.h3_client.goaway_received == 8
    # The server refused stream 8 without processing it ...
    assert not pair.events("server", HeadersReceived, 8)
    assert [(e.stream_id, e.error_code) for e in pair.events("client", StreamReset, 8)] == [
        (8, H3ErrorCode.H3_REQUEST_REJECTED)]
    # ... the client opens nothing at or above it ...
    with pytest.raises(H3UsageError, match="GOAWAY"):
        pair.h3_client.send_headers(12, GET, end_stream=True)
    # ... while the requests below it completed.
    assert ended(pair, "client", 0) and ended(pair, "client", 4)
    with pytest.raises(H3UsageError):
        pair.h3_server.send_goaway(12)  # must not increase
    assert pair.h3_server.send_goaway(0) == 0  # a final GOAWAY may lower it
    pair.h3_client.send_goaway()  # the client's names push ID 0
    pair.drive()
    assert [e.stream_id for e in pair.events("client", GoAwayReceived)] == [8, 0]
    assert [e.stream_id for e in pair.events("server", GoAwayReceived)] == [0]
    assert not pair.client_events[-1].__class__.__name__ == "ConnectionTerminated"


def datagram_pair(**h3) -> H3Pair:
    return H3Pair(client_kwargs={"max_datagram_frame_size": 65536}, server_kwargs={"max_datagram_frame_size": 65536},
                  h3_client_kwargs={"enable_datagram": True, **h3},
                  h3_server_kwargs={"enable_datagram": True, "enable_connect_protocol": True, **h3})


def test_extended_connect_with_datagrams():
    pair = datagram_pair()
    pair.start()
    assert pair.h3_client.received_settings[f.SETTING_ENABLE_CONNECT_PROTOCOL] == 1
    assert pair.h3_client.received_settings[f.SETTING_H3_DATAGRAM] == 1

    def on_event(event):
        if isinstance(event, HeadersReceived):
            assert (b":protocol", b"connect-udp") in event.headers
            pair.h3_server.send_headers(event.stream_id, [(b":status", b"200"), (b"capsule-protocol", b"?1")])
        elif isinstance(event, DatagramReceived):
            pair.h3_server.send_datagram(event.stream_id, b"echo:" + event.data)
        elif isinstance(event, DataReceived) and event.data:
            pair.h3_server.send_data(event.stream_id, event.data)
    pair.on_server_event = on_event
    sid = pair.client.get_next_available_stream_id()
    pair.h3_client.send_headers(sid, [
        (b":method", b"CONNECT"), (b":protocol", b"connect-udp"), (b":scheme", b"https"),
        (b":authority", b"localhost"), (b":path", b"/.well-known/masque/udp/192.0.2.6/443/")])
    pair.drive()
    assert pair.events("client", HeadersReceived, sid)[0].headers[0] == (b":status", b"200")
    pair.h3_client.send_datagram(sid, b"ping")
    pair.h3_client.send_data(sid, b"capsule bytes")
    pair.drive()
    assert pair.events("server", DatagramReceived) == [DatagramReceived(b"ping", sid)]
    assert pair.events("client", DatagramReceived) == [DatagramReceived(b"echo:ping", sid)]
    assert body_of(pair, "client", sid) == b"capsule bytes"
    # The quarter stream ID on the wire: stream 0 -> 0, so the datagram starts with a 0 byte.
    assert any(e.data == b"\x00ping" for e in pair.server_events if type(e).__name__ == "DatagramFrameReceived")


def test_extended_connect_needs_the_peers_setting():
    pair = H3Pair()
    pair.start()
    with pytest.raises(H3UsageError):
        pair.h3_client.send_headers(0, [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
                                        (b":authority", b"x"), (b":path", b"/")])


def test_datagram_needs_the_quic_transport_parameter():
    pair = H3Pair()
    with pytest.raises(H3UsageError, match="max_datagram_frame_size"):
        H3Connection(pair.client, enable_datagram=True)
    with pytest.raises(H3UsageError, match="max_datagram_frame_size"):
        H3Connection(pair.client, enable_webtransport=True)


def test_control_stream_carries_settings_first_and_grease():
    pair = H3Pair()
    pair.start()
    for who, peer in (("server", pair.h3_client), ("client", pair.h3_server)):
        raw = pair.received(who, peer._control_id)
        stream_type, pos = decode_varint(raw, 0)
        frames = f.parse_frames(raw[pos:])
        assert stream_type == f.STREAM_CONTROL
        assert frames[0][0] == f.SETTINGS
        settings = f.decode_settings(frames[0][1])
        assert any(f.is_grease(k) for k in settings)  # a reserved setting
        assert f.is_grease(frames[1][0])  # a reserved frame type right after
        for stream_id, kind in ((peer._encoder_id, f.STREAM_QPACK_ENCODER), (peer._decoder_id, f.STREAM_QPACK_DECODER)):
            assert pair.received(who, stream_id)[:1] == bytes([kind])
    # Push is refused: no MAX_PUSH_ID anywhere on the client's control stream.
    raw = pair.received("server", pair.h3_client._control_id)
    assert all(t != f.MAX_PUSH_ID for t, _ in f.parse_frames(raw[1:]))


def test_resets_both_ways():
    pair = H3Pair()
    pair.start()
    pair.h3_client.send_headers(0, post(10))
    pair.h3_client.send_data(0, b"12345")
    pair.drive()
    pair.h3_client.reset_stream(0, H3ErrorCode.H3_REQUEST_CANCELLED)
    pair.h3_client.stop_sending(0, H3ErrorCode.H3_REQUEST_CANCELLED)
    pair.drive()
    assert pair.events("server", StreamReset, 0) == [StreamReset(0, H3ErrorCode.H3_REQUEST_CANCELLED)]
    assert pair.events("server", StopSendingReceived, 0) == [StopSendingReceived(0, H3ErrorCode.H3_REQUEST_CANCELLED)]
    assert not pair.h3_server._requests
    pair.drive(duration=1)
    assert not pair.h3_client._requests


def test_credit_without_auto_consume():
    """Framing, control and QPACK bytes are consumed by H3Connection; body
    bytes only when the application says so: an unread body holds the
    window, and reading it lets the upload finish."""
    window = 64 * 1024
    pair = H3Pair(server_kwargs={"auto_consume": False, "max_stream_data": window, "max_data": 4 * window,
                                 "max_stream_data_window": None, "max_data_window": None})
    pair.start()
    body = b"b" * (5 * window)
    pair.h3_client.send_headers(0, post(len(body)))
    pair.h3_client.send_data(0, body, end_stream=True)
    pair.drive()
    held = len(body_of(pair, "server", 0))
    assert window // 2 < held <= window  # stalled by the window the application does not return
    for _ in range(40):
        delivered = sum(len(e.data) for e in pair.events("server", DataReceived, 0))
        consumed = getattr(pair, "_consumed", 0)
        if delivered > consumed:
            pair.server.consume(0, delivered - consumed)
            pair._consumed = delivered
        pair.drive()
        if ended(pair, "server", 0):
            break
    assert body_of(pair, "server", 0) == body and ended(pair, "server", 0)
    pair.server.consume(0, len(body) - pair._consumed)
    # Every byte was accounted for: what QUIC delivered was consumed by us or by H3Connection.
    stats = pair.server._streams.recv_data
    assert stats.consumed == sum(len(e.data) for e in pair.server_events if type(e).__name__ == "StreamDataReceived")


def test_ten_thousand_requests_leave_no_state():
    pair = H3Pair()
    pair.start()

    def on_event(event):
        if isinstance(event, HeadersReceived) and event.stream_ended:
            pair.h3_server.send_headers(event.stream_id, [(b":status", b"200")])
            pair.h3_server.send_data(event.stream_id, b"ok", end_stream=True)
    pair.on_server_event = on_event
    total, batch = 10_000, 100
    for start in range(0, total, batch):
        for _ in range(batch):
            sid = pair.client.get_next_available_stream_id()
            pair.h3_client.send_headers(sid, GET, end_stream=True)
        pair.drive(quiet_gap=0.5)
    answered = [e for e in pair.client_h3_events if isinstance(e, DataReceived) and e.stream_ended]
    assert len(answered) == total and all(e.data == b"ok" for e in answered)
    assert pair.h3_client._requests == {} and pair.h3_server._requests == {}
    assert len(pair.h3_server._uni) == 3 and len(pair.h3_client._uni) == 3  # only the peer's critical streams
    assert pair.h3_server._decoder.blocked == {}
