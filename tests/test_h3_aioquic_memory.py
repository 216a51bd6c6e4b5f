# Our H3Connection against aioquic's (1.7.2), both sans-I/O, in memory:
# tests/quic_pair.Pair carries the datagrams between a pyquic QuicConnection
# and an aioquic QuicConnection on a simulated clock.  Each side's HTTP/3
# layer is its own library's H3Connection, created at HandshakeCompleted.
# Our client against aioquic's server and aioquic's client against our
# server: a GET answered with a 1 MB body and trailers, and a 1 MB upload
# with trailers echoed back.  (Over UDP, with more peers, in test_h3_interop.py.)
from __future__ import annotations

import hashlib

import pytest
from aioquic.h3.connection import H3Connection as AioH3Connection  # a real peer: missing means failing
from aioquic.quic.configuration import QuicConfiguration as AioConfiguration
from aioquic.quic.connection import QuicConnection as AioQuicConnection
from cryptography.hazmat.primitives import serialization

from pyquic.connection import QuicConnection
from pyquic.h3.connection import H3Connection
from tests.quic_pair import Pair, client_configuration, seeded_entropy, server_configuration
from tests.pki import make_test_pki

MB = 1024 * 1024
BODY = bytes(range(251)) * (MB // 251) + b"x" * (MB % 251)


def aio_client() -> AioQuicConnection:
    pki = make_test_pki()
    config = AioConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
    config.cadata = pki.ca.public_bytes(serialization.Encoding.PEM)
    return AioQuicConnection(configuration=config)


def aio_server_factory(odcid: bytes) -> AioQuicConnection:
    pki = make_test_pki()
    config = AioConfiguration(is_client=False, alpn_protocols=["h3"])
    config.certificate = pki.server.chain[0]
    config.certificate_chain = pki.server.chain[1:]
    config.private_key = pki.server.key
    return AioQuicConnection(configuration=config, original_destination_connection_id=odcid)


class MixedPair(Pair):
    """A Pair whose sides may be aioquic; each gets its library's H3Connection
    at HandshakeCompleted and an `app(side, event)` callback for its HTTP/3 events."""

    def __init__(self, app, **kwargs) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.h3: dict[str, object] = {}
        self.h3_events: dict[str, list] = {"client": [], "server": []}
        self.record_events = False

    def _collect_events(self) -> None:
        for who, conn, _ in self._endpoints():
            while (event := conn.next_event()) is not None:
                (self.client_events if who == "client" else self.server_events).append(event)
                name = type(event).__name__
                if name == "HandshakeCompleted" and who not in self.h3:
                    cls = H3Connection if isinstance(conn, QuicConnection) else AioH3Connection
                    self.h3[who] = cls(conn)
                h3 = self.h3.get(who)
                if h3 is None:
                    continue
                for h3_event in h3.handle_event(event):
                    self.h3_events[who].append(h3_event)
                    self.app(self, who, h3_event)
                self._dirty.add(who)

    def of(self, who: str, name: str, stream_id: int) -> list:
        return [e for e in self.h3_events[who] if type(e).__name__ == name and getattr(e, "stream_id", None) == stream_id]


def server_app(pair: MixedPair, who: str, event) -> None:
    """GET /big: 1 MB + trailers; POST /echo: the body back as it comes, then
    trailers with the upload's sha256."""
    if who != "server" or not hasattr(event, "stream_id"):
        return
    h3 = pair.h3["server"]
    name = type(event).__name__
    sid = event.stream_id
    if name == "HeadersReceived" and not any(n == b"x-upload-sha256" for n, _ in event.headers):
        path = dict(event.headers)[b":path"]
        h3.send_headers(sid, [(b":status", b"200"), (b"server", b"test")])
        if path == b"/big":
            h3.send_data(sid, BODY, end_stream=False)
            h3.send_headers(sid, [(b"x-sha256", hashlib.sha256(BODY).hexdigest().encode())], end_stream=True)
        return
    if name == "DataReceived" and event.data:
        h3.send_data(sid, event.data, end_stream=False)
    if getattr(event, "stream_ended", False):
        h3.send_headers(sid, [(b"x-echoed", b"yes")], end_stream=True)


def no_app(pair, who, event) -> None:
    pass


def make_pair(our_side: str) -> MixedPair:
    if our_side == "client":
        pair = MixedPair(server_app, client_config=client_configuration(alpn_protocols=["h3"]),
                         server_factory=aio_server_factory)
    else:
        config = server_configuration(alpn_protocols=["h3"])
        pair = MixedPair(server_app, client=aio_client(), server_config=config)
    pair.connect()
    assert pair.drive_until(lambda: len(pair.h3) == 2), "handshake did not complete"
    pair.drive()
    return pair


def body(pair: MixedPair, sid: int) -> bytes:
    return b"".join(e.data for e in pair.of("client", "DataReceived", sid))


@pytest.mark.parametrize("our_side", ["client", "server"])
def test_get_1mb_with_trailers(our_side):
    pair = make_pair(our_side)
    h3 = pair.h3["client"]
    sid = pair.client.get_next_available_stream_id()
    h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
                          (b":path", b"/big")], end_stream=True)
    pair.drive()
    headers = pair.of("client", "HeadersReceived", sid)
    assert headers[0].headers[0] == (b":status", b"200")
    assert body(pair, sid) == BODY
    assert len(pair.of("client", "DataReceived", sid)) > 10  # delivered as it arrived
    assert headers[-1].headers == [(b"x-sha256", hashlib.sha256(BODY).hexdigest().encode())]
    assert headers[-1].stream_ended or pair.of("client", "DataReceived", sid)[-1].stream_ended
    assert not any(type(e).__name__ == "ConnectionTerminated" for e in pair.client_events + pair.server_events)
    ours = pair.h3[our_side]
    assert not ours._requests  # both directions done: forgotten
    peer_settings = ours.received_settings
    assert peer_settings is not None and peer_settings.get(0x1) is not None  # aioquic's QPACK table capacity


@pytest.mark.parametrize("our_side", ["client", "server"])
def test_upload_1mb_with_trailers_echoed(our_side):
    pair = make_pair(our_side)
    h3 = pair.h3["client"]
    sid = pair.client.get_next_available_stream_id()
    h3.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"),
                          (b":path", b"/echo"), (b"content-length", str(len(BODY)).encode())])
    for i in range(0, len(BODY), 64 * 1024):
        h3.send_data(sid, BODY[i:i + 64 * 1024], end_stream=False)
        pair.drive(duration=0.5)
    digest = hashlib.sha256(BODY).hexdigest().encode()
    h3.send_headers(sid, [(b"x-upload-sha256", digest)], end_stream=True)
    pair.drive()
    assert body(pair, sid) == BODY
    server_trailers = pair.of("server", "HeadersReceived", sid)[-1]
    assert server_trailers.headers == [(b"x-upload-sha256", digest)] and server_trailers.stream_ended
    client_headers = pair.of("client", "HeadersReceived", sid)
    assert client_headers[0].headers[0] == (b":status", b"200")
    assert client_headers[-1].headers == [(b"x-echoed", b"yes")]
    assert not any(type(e).__name__ == "ConnectionTerminated" for e in pair.client_events + pair.server_events)


@pytest.mark.parametrize("our_side", ["client", "server"])
def test_qpack_dynamic_table_both_ways(our_side):
    """Repeated fields make both encoders insert into the dynamic table; our
    decoder (and its size bound) follows aioquic's encoder stream, and
    aioquic's decoder follows ours."""
    pair = make_pair(our_side)
    h3 = pair.h3["client"]
    sids = []
    for i in range(30):
        sid = pair.client.get_next_available_stream_id()
        sids.append(sid)
        h3.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"),
                              (b":path", b"/echo"), (b"x-repeated-field", b"a value that repeats" * 4),
                              (b"x-count", str(i).encode())])
        h3.send_data(sid, b"body %d" % i, end_stream=True)
        if i % 3 == 0:
            pair.drive()
    pair.drive()
    for i, sid in enumerate(sids):
        assert body(pair, sid) == b"body %d" % i
        request = pair.of("server", "HeadersReceived", sid)[0]
        assert (b"x-count", str(i).encode()) in request.headers
    ours = pair.h3[our_side]
    our_peer_inserts = ours._decoder._bound.insert_count
    assert our_peer_inserts > 0, "the peer's encoder never used the dynamic table"
    peer_side = "server" if our_side == "client" else "client"
    peer_events = pair.server_events if peer_side == "server" else pair.client_events
    our_encoder_stream = b"".join(e.data for e in peer_events
                                  if type(e).__name__ == "StreamDataReceived" and e.stream_id == ours._encoder_id)
    assert len(our_encoder_stream) > 1, "our encoder never used the dynamic table"
    assert not any(type(e).__name__ == "ConnectionTerminated" for e in pair.client_events + pair.server_events)
