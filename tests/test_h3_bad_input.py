# Every HTTP/3 / QPACK violation a peer can commit ends in its own code
# (RFC 9114 §8, RFC 9204 §6, RFC 9297 §5.2), seen by the misbehaving peer as
# the ConnectionTerminated error_code of its QUIC connection or the
# StreamReset error_code of the one stream.  The misbehaving side is a raw
# pyquic QuicConnection writing bytes with send_stream_data; the victim is
# our H3Connection (tests/h3_pair.py, in memory).  Also here: the caps
# (encoded and decoded field sections, a header block that decodes big from
# a few dynamic-table references, control frames, blocked streams) and what
# must be ignored (unknown frames, unknown stream types, grease).
from __future__ import annotations

import pylsqpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pyquic.buffer import encode_varint as v
from pyquic.events import ConnectionTerminated, StopSendingReceived as QuicStopSending, StreamReset as QuicReset
from pyquic.h3 import frames as f
from pyquic.h3.errors import H3ErrorCode as E
from pyquic.h3.events import DataReceived, HeadersReceived, StreamReset
from tests.h3_pair import H3Pair

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/")]
SETTINGS = f.encode_frame(f.SETTINGS, f.encode_settings({1: 4096, 7: 16}))


def frame(frame_type: int, payload: bytes = b"") -> bytes:
    return f.encode_frame(frame_type, payload)


def block(headers) -> bytes:
    """A header block using the static table and literals only."""
    return pylsqpack.Encoder().encode(0, headers)[1]


def hframe(headers) -> bytes:
    return frame(f.HEADERS, block(headers))


class Attack:
    """A pair whose `attacker` side has no H3Connection: it writes raw bytes."""

    def __init__(self, victim: str = "server", *, control: bool = True, victim_kwargs=None, **pair_kwargs) -> None:
        self.victim_side = victim
        attacker = "client" if victim == "server" else "server"
        kwargs = {f"h3_{victim}_kwargs": victim_kwargs or {}}
        self.pair = H3Pair(h3_sides=(victim,), **kwargs, **pair_kwargs)
        self.pair.start()
        self.conn = self.pair.client if attacker == "client" else self.pair.server
        self.h3 = self.pair.h3_server if victim == "server" else self.pair.h3_client
        if control:
            self.control = self.uni(f.STREAM_CONTROL, SETTINGS)

    def uni(self, stream_type: int, data: bytes = b"", fin: bool = False) -> int:
        sid = self.conn.get_next_available_stream_id(is_unidirectional=True)
        self.conn.send_stream_data(sid, v(stream_type) + data, fin)
        return sid

    def send(self, sid: int, data: bytes, fin: bool = False) -> "Attack":
        self.conn.send_stream_data(sid, data, fin)
        self.pair.drive()
        return self

    @property
    def attacker_events(self) -> list:
        return self.pair.client_events if self.conn is self.pair.client else self.pair.server_events

    def closed_with(self) -> int:
        self.pair.drive()
        ends = [e for e in self.attacker_events if isinstance(e, ConnectionTerminated)]
        assert ends, "the victim did not close the connection"
        return ends[0].error_code

    def reset_with(self, sid: int) -> int:
        self.pair.drive()
        assert not [e for e in self.attacker_events if isinstance(e, ConnectionTerminated)]
        # RESET_STREAM, or STOP_SENDING when the victim had finished sending already.
        resets = [e for e in self.attacker_events if isinstance(e, (QuicReset, QuicStopSending)) and e.stream_id == sid]
        assert resets, f"stream {sid} was not reset"
        # The victim reports its own reset to the application too.
        victim_events = self.pair.server_h3_events if self.victim_side == "server" else self.pair.client_h3_events
        assert StreamReset(sid, resets[0].error_code, local=True) in victim_events
        return resets[0].error_code

    def alive(self) -> None:
        """The connection still serves a request."""
        assert not [e for e in self.attacker_events if isinstance(e, ConnectionTerminated)]


def victim_client() -> Attack:
    """The attacker is the server; the victim client has sent GET on stream 0."""
    attack = Attack("client")
    attack.h3.send_headers(0, GET, end_stream=True)
    attack.pair.drive()
    return attack


# -- frames where they may not be (H3_FRAME_UNEXPECTED) ---------------------------------------

@pytest.mark.parametrize("data", [
    frame(f.DATA, b"body"),  # DATA before HEADERS (§4.1)
    hframe(GET) + frame(f.SETTINGS, b""),  # SETTINGS on a request stream (§7.2.4)
    hframe(GET) + frame(f.GOAWAY, b"\x00"),
    hframe(GET) + frame(f.MAX_PUSH_ID, b"\x00"),
    hframe(GET) + frame(f.CANCEL_PUSH, b"\x00"),
    hframe(GET) + frame(f.PUSH_PROMISE, b"\x00" + block(GET)),  # from a client (§7.2.5)
    hframe(GET) + frame(0x2, b"") ,  # HTTP/2 PRIORITY (§7.2.8)
    hframe(GET) + hframe([(b"x", b"1")]) + frame(f.DATA, b"x"),  # DATA after trailers (§4.1)
    hframe(GET) + hframe([(b"x", b"1")]) + hframe([(b"y", b"1")]),  # HEADERS after trailers
])
def test_frame_unexpected_on_request_stream(data):
    attack = Attack()
    attack.send(0, data)
    assert attack.closed_with() == E.H3_FRAME_UNEXPECTED


@pytest.mark.parametrize("data", [
    frame(f.HEADERS, block(GET)), frame(f.DATA, b"x"), frame(f.PUSH_PROMISE, b"\x00"), frame(0x6, b""),
    SETTINGS,  # a second SETTINGS (§7.2.4)
])
def test_frame_unexpected_on_control_stream(data):
    attack = Attack()
    attack.send(attack.control, data)
    assert attack.closed_with() == E.H3_FRAME_UNEXPECTED


def test_max_push_id_to_a_client_is_unexpected():
    attack = victim_client()
    attack.send(attack.control, frame(f.MAX_PUSH_ID, b"\x04"))
    assert attack.closed_with() == E.H3_FRAME_UNEXPECTED


# -- streams ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stream_type", [f.STREAM_CONTROL, f.STREAM_QPACK_ENCODER, f.STREAM_QPACK_DECODER])
def test_second_critical_stream(stream_type):
    attack = Attack()  # its control stream is open already
    payload = SETTINGS if stream_type == f.STREAM_CONTROL else b""
    if stream_type != f.STREAM_CONTROL:
        attack.uni(stream_type)
        attack.pair.drive()
        attack.alive()
    attack.uni(stream_type, payload)
    assert attack.closed_with() == E.H3_STREAM_CREATION_ERROR


def test_push_stream_to_a_server_and_to_a_client():
    attack = Attack()
    attack.uni(f.STREAM_PUSH, b"\x00")
    assert attack.closed_with() == E.H3_STREAM_CREATION_ERROR  # §6.2.2: clients do not push
    attack = victim_client()
    attack.uni(f.STREAM_PUSH, b"\x00")
    assert attack.closed_with() == E.H3_ID_ERROR  # §4.6: we sent no MAX_PUSH_ID


def test_push_promise_and_cancel_push_to_a_client():
    attack = victim_client()
    attack.send(0, frame(f.PUSH_PROMISE, b"\x00" + block(GET)))
    assert attack.closed_with() == E.H3_ID_ERROR  # §7.2.5
    attack = victim_client()
    attack.send(attack.control, frame(f.CANCEL_PUSH, b"\x00"))
    assert attack.closed_with() == E.H3_ID_ERROR  # §7.2.3


def test_server_initiated_bidirectional_stream():
    attack = victim_client()
    attack.send(1, hframe([(b":status", b"200")]))
    assert attack.closed_with() == E.H3_STREAM_CREATION_ERROR  # §6.1


def test_unknown_stream_type_is_stopped_and_ignored():
    attack = Attack()
    sid = attack.uni(f.grease_id(3), b"whatever" * 100)
    attack.pair.drive()
    stops = [e for e in attack.attacker_events if isinstance(e, QuicStopSending) and e.stream_id == sid]
    assert stops and stops[0].error_code == E.H3_STREAM_CREATION_ERROR  # §6.2
    attack.send(0, hframe(GET), fin=True)
    attack.alive()
    assert [e.stream_id for e in attack.pair.server_h3_events if isinstance(e, HeadersReceived)] == [0]
    assert sid not in attack.h3._uni


def test_unknown_and_reserved_frames_are_ignored():
    attack = Attack()
    attack.send(attack.control, frame(f.grease_id(9), b"x" * 50_000) + frame(0x3FFF, b""))
    data = (frame(f.grease_id(1), b"zz") + hframe(GET + [(b"content-length", b"4")]) + frame(f.grease_id(2), b"")
            + frame(f.DATA, b"ab") + frame(0x1234, b"y" * 70_000) + frame(f.DATA, b"cd"))
    attack.send(0, data, fin=True)
    attack.alive()
    events = attack.pair.server_h3_events
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"abcd"
    assert [e for e in events if isinstance(e, DataReceived)][-1].stream_ended


@pytest.mark.parametrize("kind", ["control", "encoder", "decoder"])
@pytest.mark.parametrize("how", ["fin", "reset"])
def test_closing_a_critical_stream(kind, how):
    attack = Attack()
    sid = {"control": lambda: attack.control, "encoder": lambda: attack.uni(f.STREAM_QPACK_ENCODER),
           "decoder": lambda: attack.uni(f.STREAM_QPACK_DECODER)}[kind]()
    attack.pair.drive()
    if how == "fin":
        attack.send(sid, b"", fin=True)
    else:
        attack.conn.reset_stream(sid, 0)
    assert attack.closed_with() == E.H3_CLOSED_CRITICAL_STREAM


def test_stop_sending_on_our_control_stream():
    attack = Attack()
    attack.conn.stop_sending(attack.h3._control_id, 0)
    assert attack.closed_with() == E.H3_CLOSED_CRITICAL_STREAM


# -- SETTINGS --------------------------------------------------------------------------------

@pytest.mark.parametrize("first", [frame(f.GOAWAY, b"\x00"), frame(f.grease_id(4), b""), frame(f.MAX_PUSH_ID, b"\x00")])
def test_first_control_frame_not_settings(first):
    attack = Attack(control=False)
    attack.uni(f.STREAM_CONTROL, first + SETTINGS)
    assert attack.closed_with() == E.H3_MISSING_SETTINGS  # §6.2.1


@pytest.mark.parametrize("payload", [
    b"\x01\x00\x01\x00",  # a repeated identifier
    b"\x02\x00", b"\x03\x00", b"\x04\x00", b"\x05\x00",  # HTTP/2 settings
    v(f.SETTING_H3_DATAGRAM) + b"\x02",  # RFC 9297: 0 or 1
    v(f.SETTING_ENABLE_CONNECT_PROTOCOL) + b"\x05",  # RFC 9220: 0 or 1
])
def test_bad_settings(payload):
    attack = Attack(control=False)
    attack.uni(f.STREAM_CONTROL, frame(f.SETTINGS, payload))
    assert attack.closed_with() == E.H3_SETTINGS_ERROR


# -- malformed frames (H3_FRAME_ERROR) --------------------------------------------------------

@pytest.mark.parametrize("control_data", [
    frame(f.SETTINGS, b"\x01"),  # a setting without its value
    SETTINGS + frame(f.GOAWAY, b"\x00\x00"),  # trailing bytes
    SETTINGS + frame(f.GOAWAY, b""),  # no ID
    SETTINGS + frame(f.GOAWAY, b"\x40"),  # a varint cut short
    SETTINGS + frame(f.MAX_PUSH_ID, b"\x80\x00"),
])
def test_malformed_control_frames(control_data):
    attack = Attack(control=False)
    attack.uni(f.STREAM_CONTROL, control_data)
    assert attack.closed_with() == E.H3_FRAME_ERROR


@pytest.mark.parametrize("data", [
    hframe(GET)[:-1],  # HEADERS cut by FIN
    hframe(GET) + f.encode_frame_header(f.DATA, 100) + b"short",  # DATA cut by FIN
    hframe(GET) + b"\x00",  # a frame header cut by FIN
    hframe(GET) + f.encode_frame_header(0x21, 10),  # an unknown frame cut by FIN
])
def test_frame_truncated_by_fin(data):
    attack = Attack()
    attack.send(0, data, fin=True)
    assert attack.closed_with() == E.H3_FRAME_ERROR  # §7.1


# -- malformed messages (stream error H3_MESSAGE_ERROR) ---------------------------------------

BAD_REQUESTS = {
    "unknown pseudo": GET + [(b":foo", b"x")],
    "pseudo after regular": [(b":method", b"GET"), (b"x", b"1"), (b":scheme", b"https"), (b":path", b"/"),
                             (b":authority", b"a")],
    "duplicate pseudo": GET + [(b":path", b"/again")],
    "missing :path": [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a")],
    "missing :method": GET[1:],
    "empty :path": [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"")],
    "no authority": [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")],
    "response pseudo in request": GET + [(b":status", b"200")],
    "uppercase name": GET + [(b"X-Upper", b"1")],
    "connection": GET + [(b"connection", b"keep-alive")],
    "keep-alive": GET + [(b"keep-alive", b"300")],
    "transfer-encoding": GET + [(b"transfer-encoding", b"chunked")],
    "upgrade": GET + [(b"upgrade", b"websocket")],
    "te gzip": GET + [(b"te", b"gzip")],
    "newline in value": GET + [(b"x", b"a\r\nb")],
    "trailing whitespace": GET + [(b"x", b"a ")],
    "bad content-length": GET + [(b"content-length", b"12a")],
    "CONNECT with :path": [(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":path", b"/")],
    ":protocol not enabled": [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
                              (b":authority", b"a"), (b":path", b"/")],
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_request(name):
    attack = Attack()
    assert attack.send(0, hframe(BAD_REQUESTS[name]), fin=True).reset_with(0) == E.H3_MESSAGE_ERROR
    attack.send(4, hframe(GET), fin=True)  # the connection goes on
    attack.alive()


def test_malformed_trailers_and_content_length():
    attack = Attack()
    attack.send(0, hframe(GET) + hframe([(b":path", b"/x")]), fin=True)  # pseudo-header in trailers
    assert attack.reset_with(0) == E.H3_MESSAGE_ERROR
    cl = GET + [(b"content-length", b"3")]
    attack.send(4, hframe(cl) + frame(f.DATA, b"four"))  # more than content-length
    assert attack.reset_with(4) == E.H3_MESSAGE_ERROR
    attack.send(8, hframe(cl) + frame(f.DATA, b"tw"), fin=True)  # less
    assert attack.reset_with(8) == E.H3_MESSAGE_ERROR
    attack.send(12, frame(f.grease_id(5), b""), fin=True)  # no HEADERS at all
    assert attack.reset_with(12) == E.H3_REQUEST_INCOMPLETE  # §4.1.2


@pytest.mark.parametrize("headers", [
    [(b":status", b"20")], [(b":status", b"101")], [(b":status", b"200"), (b":path", b"/")], [(b"x", b"no status")],
])
def test_malformed_response(headers):
    attack = victim_client()
    assert attack.send(0, hframe(headers)).reset_with(0) == E.H3_MESSAGE_ERROR


# -- QPACK -----------------------------------------------------------------------------------

def test_header_block_referring_past_the_table():
    attack = Attack()
    attack.send(0, frame(f.HEADERS, b"\x00\x00\x80"), fin=True)  # dynamic index 0 of an empty table
    assert attack.closed_with() == E.QPACK_DECOMPRESSION_FAILED


def test_garbage_header_block():
    attack = Attack()
    attack.send(0, frame(f.HEADERS, b"\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), fin=True)
    assert attack.closed_with() == E.QPACK_DECOMPRESSION_FAILED


@pytest.mark.parametrize("instruction", [
    b"\x80\x01a",  # Insert with Name Reference to dynamic entry 0 of an empty table
    b"\x00",  # Duplicate of an entry that does not exist
    b"\x3f\xe1\xff\x01",  # Set Dynamic Table Capacity above our maximum
])
def test_encoder_stream_instruction_past_the_table(instruction):
    attack = Attack()
    attack.uni(f.STREAM_QPACK_ENCODER, instruction)
    assert attack.closed_with() == E.QPACK_ENCODER_STREAM_ERROR


@pytest.mark.parametrize("instruction", [b"\x05", b"\x84"])  # Insert Count Increment 5; Section Ack of stream 4
def test_decoder_stream_instruction_past_the_table(instruction):
    attack = Attack()
    attack.uni(f.STREAM_QPACK_DECODER, instruction)
    assert attack.closed_with() == E.QPACK_DECODER_STREAM_ERROR


def test_too_many_blocked_streams():
    attack = Attack(victim_kwargs={"qpack_blocked_streams": 2})
    blocked = b"\x03\x00\x80"  # Required Insert Count 2: waits for inserts that never come
    for sid in (0, 4):
        attack.send(sid, frame(f.HEADERS, blocked))
    attack.alive()
    assert set(attack.h3._decoder.blocked) == {0, 4}
    attack.send(8, frame(f.HEADERS, blocked))
    assert attack.closed_with() == E.QPACK_DECOMPRESSION_FAILED  # RFC 9204 §2.1.2


def test_blocked_stream_resumes_and_its_buffer_is_capped():
    attack = Attack(victim_kwargs={"max_blocked_buffer": 10_000})
    encoder = pylsqpack.Encoder()
    instructions_cap = encoder.apply_settings(4096, 16)
    enc, blk = b"", b""
    for _ in range(3):  # the encoder inserts once a field repeats
        e, blk = encoder.encode(0, GET + [(b"x-long", b"v" * 100)])
        enc += e
    assert enc, "pylsqpack inserted nothing"
    attack.send(0, frame(f.HEADERS, blk) + frame(f.DATA, b"body"), fin=True)
    assert 0 in attack.h3._decoder.blocked  # the inserts have not arrived
    e4, blk4 = encoder.encode(4, GET + [(b"x-long", b"v" * 100)])
    attack.send(4, frame(f.HEADERS, blk4) + frame(f.DATA, b"z" * 20_000))
    encoder_stream = attack.uni(f.STREAM_QPACK_ENCODER, instructions_cap + enc + e4)
    assert attack.reset_with(4) == E.H3_EXCESSIVE_LOAD  # too much held behind a blocked HEADERS
    events = attack.pair.server_h3_events
    assert [e.headers for e in events if isinstance(e, HeadersReceived) and e.stream_id == 0] == [
        GET + [(b"x-long", b"v" * 100)]]
    assert b"".join(e.data for e in events if isinstance(e, DataReceived) and e.stream_id == 0) == b"body"
    assert encoder_stream and not attack.h3._decoder.blocked


def test_encoded_field_section_over_the_cap():
    attack = Attack(victim_kwargs={"max_field_section_size": 1000})
    big = frame(f.HEADERS, block(GET + [(b"x-big", b"\x01" * 1200)]))
    attack.send(0, big, fin=True)
    assert attack.reset_with(0) == E.H3_EXCESSIVE_LOAD  # RFC 9114 §4.2.2: refused, never buffered whole
    attack.alive()


def test_decoded_field_section_over_the_cap():
    attack = Attack(victim_kwargs={"max_field_section_size": 1000})
    headers = GET + [(b"x-big", b"a" * 1000)]  # Huffman: 'a' is 5 bits, so the block is far smaller
    encoded = block(headers)
    assert len(encoded) < 1000
    attack.send(0, frame(f.HEADERS, encoded), fin=True)
    assert attack.reset_with(0) == E.H3_EXCESSIVE_LOAD


def test_dynamic_table_bomb_is_refused_undecoded():
    """An entry of ~4 KB inserted once, then a header block of 200 one-byte
    references to it: 800 KB decoded from 200 bytes.  Refused from its bound
    alone (pylsqpack never sees the block), with the same code as any
    section over the cap."""
    attack = Attack()
    fed = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def feed_header(self, stream_id, data):
            fed.append(stream_id)
            return self.inner.feed_header(stream_id, data)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    attack.h3._decoder._decoder = Spy(attack.h3._decoder._decoder)
    # Set Dynamic Table Capacity 4096, then Insert with Literal Name "x" = 4000 bytes.
    insert = b"\x3f\xe1\x1f" + b"\x41x" + b"\x7f" + bytes([(4000 - 127) & 0x7F | 0x80, (4000 - 127) >> 7]) + b"a" * 4000
    attack.uni(f.STREAM_QPACK_ENCODER, insert)
    attack.pair.drive()
    assert attack.h3._decoder._bound.insert_count == 1
    bomb = b"\x02\x00" + b"\x80" * 200  # Required Insert Count 1, Base 1; dynamic index 0, 200 times
    attack.send(0, frame(f.HEADERS, bomb), fin=True)
    assert attack.reset_with(0) == E.H3_EXCESSIVE_LOAD
    assert fed == []
    # One reference decodes fine (and is checked after decoding as well).
    attack.send(4, frame(f.HEADERS, b"\x02\x00" + block(GET)[2:] + b"\x80"), fin=True)
    attack.alive()
    assert 4 in fed
    (request,) = [e for e in attack.pair.server_h3_events if isinstance(e, HeadersReceived)]
    assert request.headers == GET + [(b"x", b"a" * 4000)]


def test_control_frame_over_its_cap():
    attack = Attack(control=False)
    attack.uni(f.STREAM_CONTROL, f.encode_frame_header(f.SETTINGS, 20_000) + b"\x21\x00" * 10)
    assert attack.closed_with() == E.H3_EXCESSIVE_LOAD


# -- GOAWAY ----------------------------------------------------------------------------------

def test_goaway_id_must_not_increase():
    attack = victim_client()
    attack.send(attack.control, frame(f.GOAWAY, v(4)))
    attack.alive()
    attack.send(attack.control, frame(f.GOAWAY, v(8)))
    assert attack.closed_with() == E.H3_ID_ERROR  # §5.2


def test_goaway_from_a_server_must_name_a_request_stream():
    attack = victim_client()
    attack.send(attack.control, frame(f.GOAWAY, v(2)))
    assert attack.closed_with() == E.H3_ID_ERROR  # §5.2


def test_goaway_from_a_client_must_not_increase():
    attack = Attack()
    attack.send(attack.control, frame(f.GOAWAY, v(3)) + frame(f.GOAWAY, v(5)))
    assert attack.closed_with() == E.H3_ID_ERROR


# -- datagrams -------------------------------------------------------------------------------

def datagram_attack(enable: bool) -> Attack:
    return Attack(victim_kwargs={"enable_datagram": enable},
                  client_kwargs={"max_datagram_frame_size": 65536}, server_kwargs={"max_datagram_frame_size": 65536})


def test_datagram_with_an_invalid_quarter_stream_id():
    attack = datagram_attack(True)
    attack.conn.send_datagram_frame(v(1 << 60) + b"x")  # RFC 9297 §2.1: above 2^60-1
    assert attack.closed_with() == E.H3_DATAGRAM_ERROR


def test_datagram_without_quarter_stream_id():
    attack = datagram_attack(True)
    attack.conn.send_datagram_frame(b"\x40")  # a varint cut short
    assert attack.closed_with() == E.H3_DATAGRAM_ERROR


def test_datagram_not_negotiated():
    attack = datagram_attack(False)
    attack.conn.send_datagram_frame(b"\x00hello")
    assert attack.closed_with() == E.H3_DATAGRAM_ERROR


# -- property: whatever the peer writes, the outcome is an HTTP/3 code ------------------------

H3_CODES = {int(code) for code in E}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["request", "control", "encoder", "decoder", "uni"]),
    prefix=st.sampled_from([b"", hframe(GET), SETTINGS]),
    data=st.binary(max_size=200),
    fin=st.booleans(),
)
def test_random_bytes_end_in_h3_codes_only(kind, prefix, data, fin):
    attack = Attack(control=kind != "control")
    payload = prefix + data
    if kind == "request":
        attack.send(0, payload, fin=fin)
    else:
        stream_type = {"control": f.STREAM_CONTROL, "encoder": f.STREAM_QPACK_ENCODER,
                       "decoder": f.STREAM_QPACK_DECODER, "uni": f.grease_id(2)}[kind]
        attack.uni(stream_type, payload, fin=fin)
        attack.pair.drive()
    ends = [e for e in attack.attacker_events if isinstance(e, ConnectionTerminated)]
    if ends:
        assert ends[0].error_code in H3_CODES and ends[0].frame_type is None
    for event in attack.attacker_events:
        if isinstance(event, (QuicReset, QuicStopSending)):
            assert event.error_code in H3_CODES
