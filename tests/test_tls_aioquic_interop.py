# A real peer at message level: aioquic's tls.Context (aioquic 1.7.2) against
# our engine, both directions, QUIC profile (aioquic's transport parameters
# extension carries opaque bytes here): 1-RTT, resumption with the peer's
# tickets, 0-RTT, client certificates.  aioquic is driven as its QUIC
# connection drives it: handle_message(data, {epoch: Buffer}) and
# update_traffic_key_cb(direction, epoch, cipher_suite, secret).  The
# secrets each side installs must match pairwise.  aioquic reads the wall
# clock, so our engines get real time here too.
from __future__ import annotations

import time

import pytest

import aioquic.tls as aio  # a real peer: missing means failing, never skipping
from aioquic.buffer import Buffer  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

import tls  # noqa: E402
import tls.engine  # noqa: E402
from tls import Direction, Level  # noqa: E402
from tls import events as ev  # noqa: E402

from .pki import make_test_pki  # noqa: E402

ALPN = ["h3"]
EPOCHS = [aio.Epoch.INITIAL, aio.Epoch.ZERO_RTT, aio.Epoch.HANDSHAKE, aio.Epoch.ONE_RTT]


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", True)


@pytest.fixture(scope="module")
def pki():
    return make_test_pki()


class AioPeer:
    """aioquic's tls.Context with its per-epoch output buffers."""

    def __init__(self, is_client: bool, pki, *, ticket=None, client_cert=False, request_cert=False, max_early_data=None):
        kw = dict(alpn_protocols=ALPN, max_early_data=max_early_data)
        if is_client:
            kw.update(server_name="localhost", cadata=pki.ca.public_bytes(serialization.Encoding.PEM))
        self.ctx = aio.Context(is_client=is_client, **kw)
        self.ctx.handshake_extensions = [(tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS, b"aioquic-tp")]
        if not is_client or client_cert:
            leaf = pki.server if not is_client else pki.client
            self.ctx.certificate = leaf.cert
            self.ctx.certificate_chain = leaf.chain[1:]
            self.ctx.certificate_private_key = leaf.key
        self.ctx._request_client_certificate = request_cert
        self.secrets: dict[tuple[int, str], bytes] = {}
        self.ctx.update_traffic_key_cb = self._key
        self.tickets: list = []
        self.ctx.new_session_ticket_cb = self.tickets.append
        self.server_store: dict[bytes, object] = {}
        if not is_client:
            self.ctx.new_session_ticket_cb = lambda t: self.server_store.__setitem__(t.ticket, t)
            self.ctx.get_session_ticket_cb = self.server_store.get
        if ticket is not None:
            self.ctx.session_ticket = ticket
        self.buffers = {e: Buffer(capacity=65536) for e in EPOCHS}

    def _key(self, direction, epoch, cipher_suite, secret):
        self.secrets[(epoch.value, direction.name)] = secret

    def handle(self, data: bytes) -> list[tuple[Level, bytes]]:
        self.ctx.handle_message(data, self.buffers)
        out = []
        for epoch in EPOCHS:
            buf = self.buffers[epoch]
            if buf.tell():
                out.append((Level(epoch.value), buf.data))
                buf.seek(0)
        return out


def drive(ours: tls.Engine, peer: AioPeer, ours_first: bool) -> list:
    """Run the handshake to completion; returns our events."""
    events: list = []
    to_peer: list[tuple[Level, bytes]] = []
    to_us: list[tuple[Level, bytes]] = []

    def take(evs):
        events.extend(evs)
        to_peer.extend((e.level, e.data) for e in evs if isinstance(e, ev.HandshakeDataReady))

    if ours_first:
        take(ours.start(now=time.time()))
    else:
        to_us.extend(peer.handle(b""))
    for _ in range(20):
        if not to_peer and not to_us:
            break
        while to_peer:
            _, data = to_peer.pop(0)
            to_us.extend(peer.handle(data))
        while to_us:
            level, data = to_us.pop(0)
            take(ours.receive(level, data, now=time.time()))
    return events


def ours_client(pki, **kw) -> tls.Engine:
    cfg = tls.Config(server_name="localhost", trust_store=pki.trust_store(), alpn_protocols=ALPN, **kw)
    return tls.Engine(cfg, True, tls.QUIC, b"our-tp")


def ours_server(pki, **kw) -> tls.Engine:
    cfg = tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key, alpn_protocols=ALPN, **kw)
    return tls.Engine(cfg, False, tls.QUIC, b"our-tp")


def check_pairwise(ours: tls.Engine, peer: AioPeer, is_client: bool, levels=(Level.HANDSHAKE, Level.APPLICATION)):
    for level in levels:
        assert ours.secret(level, Direction.WRITE) == peer.secrets[(level.value, "DECRYPT")]
        assert ours.secret(level, Direction.READ) == peer.secrets[(level.value, "ENCRYPT")]
    assert ours.negotiated.alpn == "h3" and peer.ctx.alpn_negotiated == "h3"
    assert peer.ctx.state == (aio.State.CLIENT_POST_HANDSHAKE if not is_client else aio.State.SERVER_POST_HANDSHAKE)
    assert ours.handshake_complete


# ---------------------------------------------------------------------------
# our client, aioquic's server


def test_our_client_1rtt(pki):
    peer = AioPeer(False, pki)
    ours = ours_client(pki)
    events = drive(ours, peer, ours_first=True)
    check_pairwise(ours, peer, is_client=True)
    assert [e.data for e in events if isinstance(e, ev.PeerTransportParameters)] == [b"aioquic-tp"]
    assert dict(peer.ctx.received_extensions)[tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS] == b"our-tp"
    assert ours.negotiated.group == tls.Group.X25519  # aioquic has no ML-KEM: it took our x25519 share


def test_our_client_resumption_and_0rtt(pki):
    store = tls.TicketStore()
    server = AioPeer(False, pki, max_early_data=0xFFFFFFFF)
    ours = ours_client(pki, ticket_store=store, enable_early_data=True)
    events = drive(ours, server, ours_first=True)
    (ticket,) = [e.ticket for e in events if isinstance(e, ev.TicketReceived)]
    assert ticket.max_early_data == 0xFFFFFFFF and len(store) == 1
    # second connection: aioquic's stateful ticket store, same server context config
    server2 = AioPeer(False, pki, max_early_data=0xFFFFFFFF)
    server2.server_store.update(server.server_store)
    ours2 = ours_client(pki, ticket_store=store, enable_early_data=True)
    events = drive(ours2, server2, ours_first=True)
    check_pairwise(ours2, server2, is_client=True, levels=(Level.EARLY_DATA, Level.HANDSHAKE, Level.APPLICATION)[1:])
    assert ours2.secret(Level.EARLY_DATA, Direction.WRITE) == server2.secrets[(1, "DECRYPT")]
    assert ours2.negotiated.resumed and server2.ctx.session_resumed
    assert ours2.negotiated.early_data_accepted and server2.ctx.early_data_accepted
    assert not any(isinstance(e, ev.EarlyDataRejected) for e in events)


def test_our_client_resumption_without_0rtt(pki):
    store = tls.TicketStore()
    server = AioPeer(False, pki)  # no max_early_data: its tickets do not allow 0-RTT
    drive(ours_client(pki, ticket_store=store, enable_early_data=True), server, ours_first=True)
    server2 = AioPeer(False, pki)
    server2.server_store.update(server.server_store)
    ours2 = ours_client(pki, ticket_store=store, enable_early_data=True)
    drive(ours2, server2, ours_first=True)
    check_pairwise(ours2, server2, is_client=True)
    assert ours2.negotiated.resumed and not ours2.negotiated.early_data_accepted


def test_our_client_certificate(pki):
    peer = AioPeer(False, pki, request_cert=True)
    ours = ours_client(pki, certificate_chain=pki.client.chain, private_key=pki.client.key)
    drive(ours, peer, ours_first=True)
    check_pairwise(ours, peer, is_client=True)
    assert peer.ctx._peer_certificate == pki.client.cert
    assert ours.negotiated.client_signature_scheme == tls.SignatureScheme.ECDSA_SECP256R1_SHA256


# ---------------------------------------------------------------------------
# aioquic's client, our server


def test_their_client_1rtt(pki):
    peer = AioPeer(True, pki)
    ours = ours_server(pki)
    events = drive(ours, peer, ours_first=False)
    check_pairwise(ours, peer, is_client=False)
    assert [e.data for e in events if isinstance(e, ev.PeerTransportParameters)] == [b"aioquic-tp"]
    assert dict(peer.ctx.received_extensions)[tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS] == b"our-tp"


@pytest.mark.parametrize("early", [False, True])
def test_their_client_resumption(pki, early):
    sealer = tls.TicketSealer(time.time())
    kw = dict(ticket_sealer=sealer, max_early_data=(1 << 20) if early else 0)
    client = AioPeer(True, pki)
    drive(ours_server(pki, **kw), client, ours_first=False)
    (ticket,) = client.tickets
    assert ticket.max_early_data_size == (0xFFFFFFFF if early else None)
    client2 = AioPeer(True, pki, ticket=ticket)
    ours2 = ours_server(pki, **kw)
    drive(ours2, client2, ours_first=False)
    check_pairwise(ours2, client2, is_client=False)
    assert ours2.negotiated.resumed and client2.ctx.session_resumed
    assert ours2.negotiated.early_data_accepted == early == client2.ctx.early_data_accepted
    if early:
        assert ours2.secret(Level.EARLY_DATA, Direction.READ) == client2.secrets[(1, "ENCRYPT")]


def test_their_client_certificate(pki):
    peer = AioPeer(True, pki, client_cert=True)
    ours = ours_server(pki, verify_mode=tls.VerifyMode.REQUIRED, trust_store=pki.trust_store())
    drive(ours, peer, ours_first=False)
    check_pairwise(ours, peer, is_client=False)
    assert ours.peer_certificates[0] == pki.client.cert


def test_their_client_without_certificate_is_refused(pki):
    peer = AioPeer(True, pki)
    ours = ours_server(pki, verify_mode=tls.VerifyMode.REQUIRED, trust_store=pki.trust_store())
    with pytest.raises(tls.AlertError) as info:
        drive(ours, peer, ours_first=False)
    assert info.value.description == tls.AlertDescription.certificate_required
