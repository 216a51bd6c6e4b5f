# TLS over TCP without sockets (tls/connection.py): a client and a server
# TLSConnection joined back to back, bytes moved by hand.  The handshake and
# its record-level shape (compatibility CCS, key changes between records),
# application data both ways, KeyUpdate both ways, tickets, resumption,
# 0-RTT accepted / rejected / after HelloRetryRequest, closing, and bad input
# from a peer ending in the right alert - never an exception to the caller.
import os

import pytest

from tls.config import Config, VerifyMode
from tls.connection import (
    ConnectionClosed,
    ConnectionLost,
    DataReceived,
    HandshakeCompleted,
    KeyUpdated,
    TicketReceived,
    TLSConnection,
)
from tls.enums import AlertDescription, ContentType, Direction, Group
from tls.errors import PeerAlert, UsageError
from tls.events import EarlyDataRejected
from tls.record import MAX_PLAINTEXT, PadToMultiple, RecordLayer
from tls.tickets import TicketStore

from .pki import VALID_NOW, make_test_pki

NOW = VALID_NOW.timestamp()


@pytest.fixture(scope="module")
def pki():
    return make_test_pki()


def server_config(pki, **kw):
    return Config(certificate_chain=pki.server.chain, private_key=pki.server.key, **kw)


def client_config(pki, **kw):
    kw.setdefault("server_name", "localhost")
    return Config(ca_certificates=[pki.ca], **kw)


def events_of(conn):
    out = []
    while (e := conn.next_event()) is not None:
        out.append(e)
    return out


class Pair:
    """Client and server connections, with a wire log of what crossed."""

    def __init__(self, ccfg, scfg, **kw):
        self.client = TLSConnection(ccfg, True, now=NOW, **kw.get("client_options", {}))
        self.server = TLSConnection(scfg, False, now=NOW, **kw.get("server_options", {}))
        self.c_events, self.s_events = [], []
        self.wire = []  # (sender, bytes)

    def start(self):
        self.client.start()
        return self

    def drive(self, rounds=20):
        for _ in range(rounds):
            moved = False
            data = self.client.data_to_send()
            if data:
                self.wire.append(("client", data))
                self.server.receive_data(data)
                moved = True
            data = self.server.data_to_send()
            if data:
                self.wire.append(("server", data))
                self.client.receive_data(data)
                moved = True
            self.c_events += events_of(self.client)
            self.s_events += events_of(self.server)
            if not moved:
                return self
        raise AssertionError("connections did not settle")

    def c_data(self):
        return b"".join(e.data for e in self.c_events if isinstance(e, DataReceived))

    def s_data(self):
        return b"".join(e.data for e in self.s_events if isinstance(e, DataReceived))


def of_type(events, kind):
    return [e for e in events if isinstance(e, kind)]


def record_types(data: bytes):
    out, pos = [], 0
    while pos + 5 <= len(data):
        out.append(data[pos])
        pos += 5 + int.from_bytes(data[pos + 3:pos + 5], "big")
    return out


# ---------------------------------------------------------------------------


def test_full_handshake_and_data_both_ways(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    assert p.client.handshake_complete and p.server.handshake_complete
    done = of_type(p.c_events, HandshakeCompleted)[0]
    assert done.cipher_suite == 0x1301 and not done.resumed
    assert p.client.peer_certificates[0] == pki.server.cert
    p.client.send(b"ping")
    p.server.send(b"pong" * 10000)
    p.drive()
    assert p.s_data() == b"ping" and p.c_data() == b"pong" * 10000


def test_middlebox_compat_ccs_on_the_wire_and_off(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    client_types = [t for s, d in p.wire if s == "client" for t in record_types(d)]
    server_types = [t for s, d in p.wire if s == "server" for t in record_types(d)]
    assert server_types[:2] == [ContentType.HANDSHAKE, ContentType.CHANGE_CIPHER_SPEC]
    assert client_types[:2] == [ContentType.HANDSHAKE, ContentType.CHANGE_CIPHER_SPEC]
    assert client_types.count(ContentType.CHANGE_CIPHER_SPEC) == 1
    q = Pair(client_config(pki), server_config(pki),
             client_options={"middlebox_compat": False}, server_options={"middlebox_compat": False}).start().drive()
    assert all(ContentType.CHANGE_CIPHER_SPEC not in record_types(d) for _, d in q.wire)
    assert q.client.handshake_complete


def test_first_client_hello_uses_record_version_0301(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    assert p.wire[0][1][:3] == b"\x16\x03\x01"
    assert p.wire[1][1][:3] == b"\x16\x03\x03"


@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303])
def test_each_suite(pki, suite):
    p = Pair(client_config(pki, cipher_suites=[suite]), server_config(pki)).start().drive()
    assert p.client.cipher_suite == suite == p.server.cipher_suite
    p.client.send(os.urandom(50000))
    p.drive()
    assert len(p.s_data()) == 50000


def test_hello_retry_request_by_group_preference(pki):
    ccfg = client_config(pki, groups=[Group.X25519, Group.SECP256R1], key_share_groups=[Group.X25519])
    scfg = server_config(pki, groups=[Group.SECP256R1])  # no share for it in ClientHello1
    p = Pair(ccfg, scfg).start().drive()
    assert p.client.negotiated.hello_retry and p.client.negotiated.group == Group.SECP256R1
    p.client.send(b"after hrr")
    p.drive()
    assert p.s_data() == b"after hrr"


def test_client_certificate(pki):
    scfg = server_config(pki, verify_mode=VerifyMode.REQUIRED, ca_certificates=[pki.ca])
    ccfg = client_config(pki, certificate_chain=pki.client.chain, private_key=pki.client.key)
    p = Pair(ccfg, scfg).start().drive()
    assert p.server.peer_certificates[0] == pki.client.cert


def test_client_certificate_required_but_missing(pki):
    scfg = server_config(pki, verify_mode=VerifyMode.REQUIRED, ca_certificates=[pki.ca])
    p = Pair(client_config(pki), scfg).start().drive()
    closed = of_type(p.s_events, ConnectionClosed)[0]
    assert closed.alert == AlertDescription.certificate_required and not closed.by_peer
    peer = of_type(p.c_events, ConnectionClosed)[0]
    assert peer.alert == AlertDescription.certificate_required and peer.by_peer
    assert isinstance(p.client.failure, PeerAlert)


def test_application_data_written_early_waits_for_the_handshake(pki):
    p = Pair(client_config(pki), server_config(pki)).start()
    p.client.send(b"queued before the handshake")
    assert p.client.early_data_pending
    p.drive()
    assert p.s_data() == b"queued before the handshake"


# -- post-handshake -----------------------------------------------------------


def test_tickets_and_resumption(pki):
    store = TicketStore()
    scfg = server_config(pki)  # its ticket key seals and opens the tickets
    p = Pair(client_config(pki, ticket_store=store), scfg).start().drive()
    assert of_type(p.c_events, TicketReceived)
    p.server.send_session_ticket()
    p.drive()
    assert len(of_type(p.c_events, TicketReceived)) == 2
    q = Pair(client_config(pki, ticket_store=store), scfg).start().drive()
    assert of_type(q.c_events, HandshakeCompleted)[0].resumed


@pytest.mark.parametrize("who", ["client", "server"])
@pytest.mark.parametrize("request_peer", [False, True])
def test_key_update_either_side(pki, who, request_peer):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    a = getattr(p, who)
    b = p.server if who == "client" else p.client
    a_events, b_events = (p.c_events, p.s_events) if who == "client" else (p.s_events, p.c_events)
    a.key_update(request_peer=request_peer)
    a.send(b"under the new key")
    b.send(b"reply")
    p.drive()
    assert [e.direction for e in of_type(a_events, KeyUpdated)] == (
        [Direction.WRITE, Direction.READ] if request_peer else [Direction.WRITE])
    assert [e.direction for e in of_type(b_events, KeyUpdated)] == (
        [Direction.READ, Direction.WRITE] if request_peer else [Direction.READ])
    assert b"under the new key" in (p.s_data() if who == "client" else p.c_data())
    for _ in range(3):
        a.key_update()
        a.send(b"again")
        p.drive()


def test_automatic_key_update_near_the_aes_gcm_limit(pki, monkeypatch):
    import tls.record
    monkeypatch.setattr(tls.record, "AES_GCM_RECORD_LIMIT", 3)
    p = Pair(client_config(pki, cipher_suites=[0x1301]), server_config(pki)).start().drive()
    for i in range(4):
        p.client.send(b"x")
        p.drive()
    assert len(of_type(p.c_events, KeyUpdated)) == 1 and p.s_data() == b"xxxx"


# -- 0-RTT ---------------------------------------------------------------------


def resumable(pki, max_early=100000, **server_kw):
    store = TicketStore()
    scfg = server_config(pki, max_early_data=max_early, **server_kw)
    Pair(client_config(pki, ticket_store=store), scfg).start().drive()
    return store, scfg


def test_early_data_accepted(pki):
    store, scfg = resumable(pki)
    p = Pair(client_config(pki, ticket_store=store, enable_early_data=True), scfg).start()
    p.client.send(b"zero rtt")
    assert not p.client.early_data_pending  # it went out as early data
    p.drive()
    early = [e for e in p.s_events if isinstance(e, DataReceived)]
    assert early[0].early and early[0].data == b"zero rtt"
    assert of_type(p.c_events, HandshakeCompleted)[0].early_data_accepted


def test_early_data_beyond_the_ticket_limit_waits_for_1rtt(pki):
    store, scfg = resumable(pki, max_early=1000)
    p = Pair(client_config(pki, ticket_store=store, enable_early_data=True), scfg).start()
    p.client.send(b"a" * 2500)
    assert p.client.early_data_pending == 1500
    p.drive()
    received = of_type(p.s_events, DataReceived)
    assert received[0].early and len(received[0].data) == 1000
    assert p.s_data() == b"a" * 2500


def test_early_data_rejected_is_skipped_and_resent(pki):
    store, _ = resumable(pki)
    other_server = server_config(pki, max_early_data=0)  # a new ticket key: the PSK is unknown
    p = Pair(client_config(pki, ticket_store=store, enable_early_data=True), other_server).start()
    p.client.send(b"early bytes")
    p.drive()
    assert of_type(p.c_events, EarlyDataRejected)
    assert not of_type(p.c_events, HandshakeCompleted)[0].early_data_accepted
    assert p.s_data() == b"early bytes"  # resent under the 1-RTT key, once
    assert not any(e.early for e in of_type(p.s_events, DataReceived))


def test_early_data_after_hello_retry_request_is_skipped(pki):
    store, scfg = resumable(pki, groups=[Group.SECP256R1])
    ccfg = client_config(pki, ticket_store=store, enable_early_data=True,
                         groups=[Group.X25519, Group.SECP256R1], key_share_groups=[Group.X25519])
    p = Pair(ccfg, scfg).start()
    p.client.send(b"early then hrr")
    p.drive()
    assert p.client.handshake_complete and p.client.negotiated.hello_retry
    assert p.s_data() == b"early then hrr"


def test_server_enforces_max_early_data(pki):
    store, scfg = resumable(pki, max_early=100)
    p = Pair(client_config(pki, ticket_store=store, enable_early_data=True), scfg).start()
    p.client._early_limit = 10000  # a client that ignores the ticket's limit
    p.client.send(b"x" * 5000)
    p.drive()
    closed = of_type(p.s_events, ConnectionClosed)[0]
    assert closed.alert == AlertDescription.unexpected_message


# -- closing --------------------------------------------------------------------


def test_close_notify_exchange(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    p.client.send(b"last words")
    p.client.close()
    p.drive()
    assert p.s_data() == b"last words"
    closed = of_type(p.s_events, ConnectionClosed)[0]
    assert closed.clean and closed.by_peer and p.server.failure is None
    p.server.send(b"still allowed")  # half-close: the server may answer
    p.server.close()
    p.drive()
    assert p.c_data() == b"still allowed"
    assert of_type(p.c_events, ConnectionClosed)[0].clean
    with pytest.raises(UsageError):
        p.client.send(b"after close")


def test_eof_without_close_notify(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    p.server.receive_eof()
    closed = of_type(events_of(p.server), ConnectionClosed)[0]
    assert closed.alert is None and closed.by_peer and p.server.failure is None


def test_eof_during_handshake_is_connection_lost(pki):
    client = TLSConnection(client_config(pki), True, now=NOW)
    client.start()
    client.receive_eof()
    assert isinstance(client.failure, ConnectionLost)


def test_eof_inside_a_record_sends_decode_error(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    p.client.send(b"cut short")
    wire = p.client.data_to_send()
    p.server.receive_data(wire[:-3])
    p.server.receive_eof()
    closed = of_type(events_of(p.server), ConnectionClosed)[0]
    assert closed.alert == AlertDescription.decode_error
    assert p.server.data_to_send()[-7:-5] != b""  # an alert record went out


# -- bad input from the peer: an alert, a ConnectionClosed, never an exception ----


@pytest.mark.parametrize("garbage,alert", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", AlertDescription.unexpected_message),
    (b"\x16\x03\x03\x40\x01" + bytes(10), AlertDescription.record_overflow),
    (b"\x17\x03\x03\x00\x10" + bytes(16), AlertDescription.unexpected_message),
    (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", AlertDescription.unexpected_message),  # ServerHello to a server
])
def test_server_answers_garbage_with_an_alert(pki, garbage, alert):
    server = TLSConnection(server_config(pki), False, now=NOW)
    server.receive_data(garbage)
    closed = of_type(events_of(server), ConnectionClosed)[0]
    assert closed.alert == alert and not closed.by_peer
    out = server.data_to_send()
    assert out[:1] == b"\x15" and out[-1] == alert  # a plaintext fatal alert
    server.receive_data(b"more")  # ignored, no exception
    assert server.next_event() is None


def test_bad_tag_after_the_handshake(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    p.client.send(b"tamper with me")
    wire = bytearray(p.client.data_to_send())
    wire[-1] ^= 0x55
    p.server.receive_data(bytes(wire))
    closed = of_type(events_of(p.server), ConnectionClosed)[0]
    assert closed.alert == AlertDescription.bad_record_mac
    p.client.receive_data(p.server.data_to_send())
    peer = of_type(events_of(p.client), ConnectionClosed)[0]
    assert peer.alert == AlertDescription.bad_record_mac and peer.by_peer


def test_record_after_close_notify_is_ignored(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    p.client.close()
    wire = p.client.data_to_send()
    p.server.receive_data(wire + b"\x17\x03\x03\x00\x20" + os.urandom(32))
    events = events_of(p.server)
    assert of_type(events, ConnectionClosed)[0].clean and p.server.failure is None


def test_tls12_server_hello_is_protocol_version(pki):
    client = TLSConnection(client_config(pki), True, now=NOW)
    client.start()
    client.data_to_send()
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\xc0\x2f" + b"\x00" + b"\x00\x00"
    sh = b"\x02" + len(body).to_bytes(3, "big") + body
    client.receive_data(b"\x16\x03\x03" + len(sh).to_bytes(2, "big") + sh)
    closed = of_type(events_of(client), ConnectionClosed)[0]
    assert closed.alert in (AlertDescription.protocol_version, AlertDescription.illegal_parameter,
                            AlertDescription.handshake_failure)
    assert client.data_to_send()[:1] == b"\x15"


def test_handshake_message_interleaved_with_other_records(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    # Half a NewSessionTicket, then application data: §5.1 forbids it.
    p.server.record.write(ContentType.HANDSHAKE, b"\x04\x00\x00\x10" + bytes(4))
    p.server.record.write(ContentType.APPLICATION_DATA, b"interleaved")
    p.client.receive_data(p.server.data_to_send())
    closed = of_type(events_of(p.client), ConnectionClosed)[0]
    assert closed.alert == AlertDescription.unexpected_message


def test_padding_policy_reaches_the_wire(pki):
    p = Pair(client_config(pki), server_config(pki),
             client_options={"padding": PadToMultiple(MAX_PLAINTEXT)}).start().drive()
    p.client.send(b"tiny")
    wire = p.client.data_to_send()
    assert len(wire) == 5 + MAX_PLAINTEXT + 1 + 16
    p.server.receive_data(wire)
    assert of_type(events_of(p.server), DataReceived)[0].data == b"tiny"


def test_usage_errors(pki):
    client = TLSConnection(client_config(pki), True, now=NOW)
    with pytest.raises(UsageError):
        client.receive_data(b"x")
    client.start()
    with pytest.raises(UsageError):
        client.start()
    with pytest.raises(UsageError):
        client.kernel_handoff_states()


# -- the kernel record port (kTLS), with a stand-in --------------------------------


class FakePort:
    def __init__(self):
        self.sent, self.tx, self.rx = [], [], []

    def send_record(self, ctype, data):
        self.sent.append((ctype, bytes(data)))

    def rekey_tx(self, state):
        self.tx.append(state)

    def rekey_rx(self, state):
        self.rx.append(state)


def test_kernel_port_carries_post_handshake_traffic(pki):
    p = Pair(client_config(pki), server_config(pki)).start().drive()
    tx, rx = p.client.kernel_handoff_states()
    assert tx.seq == 0 and rx.seq == 0  # nothing sent or received at 1-RTT yet
    port = FakePort()
    p.client.attach_kernel(port)
    p.client.send(b"via kernel")
    assert port.sent == [(ContentType.APPLICATION_DATA, b"via kernel")]
    # The server asks for a key update; the kernel passes the record up.
    p.server.key_update(request_peer=True)
    ku = RecordLayer()
    ku.set_read_key(p.client.cipher_suite, p.client.engine.secret(3, 0))
    ku.handshaking = False
    ku.receive_data(p.server.data_to_send())
    record = ku.next_record()
    p.client.receive_record(record.content_type, record.content)
    assert len(port.rx) == 1 and port.rx[0].seq == 0  # new read key for the kernel
    assert port.sent[-1][0] == ContentType.HANDSHAKE and port.sent[-1][1][0] == 24  # KeyUpdate answer
    assert len(port.tx) == 1
    p.client.receive_record(ContentType.APPLICATION_DATA, b"from kernel")
    p.client.receive_record(ContentType.ALERT, b"\x01\x00")
    events = events_of(p.client)
    assert of_type(events, DataReceived)[0].data == b"from kernel"
    assert of_type(events, ConnectionClosed)[0].clean
    p.client.close()
    assert port.sent[-1] == (ContentType.ALERT, b"\x01\x00")


# -- property: whatever the peer sends, the caller sees events, never exceptions --

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tls.engine  # noqa: E402


@pytest.fixture()
def raise_engine_bugs(monkeypatch):
    # A bug in the engine must show up as an exception here, not be hidden
    # as an internal_error alert.
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", True)


def _client_flight(pki):
    client = TLSConnection(client_config(pki), True, now=NOW)
    client.start()
    return client.data_to_send()


def _mutate(flight: bytearray, edits) -> bytes:
    for where, value in edits:
        flight[where % len(flight)] = value
    return bytes(flight)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS, cut=st.integers(0, 1 << 16))
def test_mutated_client_flights_end_in_an_alert(pki, raise_engine_bugs, edits, cut):
    flight = _mutate(bytearray(_client_flight(pki)), edits)
    cut %= len(flight) + 1
    server = TLSConnection(server_config(pki), False, now=NOW)
    server.receive_data(flight[:cut])
    server.receive_data(flight[cut:])
    server.receive_eof()
    closed = of_type(events_of(server), ConnectionClosed)
    assert len(closed) == 1
    out = server.data_to_send()
    if not closed[0].by_peer:  # we failed it: our alert is the last record out
        assert out[-7:-2] == b"\x15\x03\x03\x00\x02" or out[-22:-19] == b"\x17\x03\x03"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=600), split=st.integers(0, 600))
def test_arbitrary_bytes_to_a_client_after_its_hello(pki, raise_engine_bugs, junk, split):
    client = TLSConnection(client_config(pki), True, now=NOW)
    client.start()
    client.data_to_send()
    client.receive_data(junk[:split])
    client.receive_data(junk[split:])
    client.receive_eof()
    events = events_of(client)
    assert of_type(events, ConnectionClosed) or not junk


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_mutated_server_flights_end_in_an_alert(pki, raise_engine_bugs, edits):
    p = Pair(client_config(pki), server_config(pki)).start()
    p.server.receive_data(p.client.data_to_send())
    flight = _mutate(bytearray(p.server.data_to_send()), edits)
    p.client.receive_data(flight)
    closed = of_type(events_of(p.client), ConnectionClosed)
    if not closed and not p.client.handshake_complete:
        # A mutation may leave the flight incomplete (a length grown by one),
        # so the client rightly waits for more; the peer's EOF must end it.
        p.client.receive_eof()
        assert of_type(events_of(p.client), ConnectionClosed)
        return
    if closed:
        assert not closed[0].by_peer or closed[0].alert is not None
        if not closed[0].by_peer:
            assert p.client.data_to_send()  # the alert record went out
