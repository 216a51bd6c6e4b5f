# Paired engines in memory (tests/tls_engine_driver.py): every handshake mode,
# the exact order of events per mode and per call, key compatibility (what one
# side seals with its WRITE secret the other opens with its READ secret),
# exporters, QUIC transport parameters, ALPN, KeyUpdate and tickets.
from __future__ import annotations

import dataclasses
import io

import pytest

import tls
import tls.engine
from tls import AlertDescription as AD
from tls import Direction, Group, Level
from tls import events as ev

from .pki import make_test_pki
from .tls_engine_driver import NOW, Pair, keylog_labels, seal_open_roundtrip

SUITES = [0x1301, 0x1302, 0x1303]
GROUPS = [Group.X25519, Group.SECP256R1, Group.SECP384R1, Group.X25519MLKEM768]


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", True)


@pytest.fixture(scope="module")
def pki():
    return make_test_pki()


def server_cfg(pki, **kw) -> tls.Config:
    kw.setdefault("alpn_protocols", ["h3", "hq"])
    return tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key, **kw)


def client_cfg(pki, **kw) -> tls.Config:
    kw.setdefault("alpn_protocols", ["h3"])
    return tls.Config(server_name="localhost", trust_store=pki.trust_store(), **kw)


def check_keys(p: Pair, levels=(Level.HANDSHAKE, Level.APPLICATION)) -> None:
    suite = p.client.engine.negotiated.cipher_suite
    for level in levels:
        assert seal_open_roundtrip(p.client.engine, p.server.engine, level, suite)
        assert seal_open_roundtrip(p.server.engine, p.client.engine, level, suite)
    for engine in (p.client.engine, p.server.engine):
        completed = [e for e in (p.client if engine is p.client.engine else p.server).events if isinstance(e, ev.HandshakeCompleted)]
        assert len(completed) == 1
    c, s = p.client.engine, p.server.engine
    assert c.export_keying_material("EXPORTER-test", b"ctx", 40) == s.export_keying_material("EXPORTER-test", b"ctx", 40)
    assert c.export_keying_material("EXPORTER-test", b"", 32) != c.export_keying_material("EXPORTER-other", b"", 32)
    assert c.resumption_master_secret == s.resumption_master_secret
    assert c.exporter_master_secret == s.exporter_master_secret


CLIENT_FULL = [
    ["HDR(INITIAL:CH)"],
    ["Key(HANDSHAKE,READ)", "Key(HANDSHAKE,WRITE)"],
    ["HDR(HANDSHAKE:Fin)", "Key(APPLICATION,WRITE)", "Key(APPLICATION,READ)", "HandshakeCompleted"],
    ["TicketReceived"],
]
SERVER_FULL = [
    ["HDR(INITIAL:SH)", "Key(HANDSHAKE,WRITE)", "Key(HANDSHAKE,READ)", "HDR(HANDSHAKE:EE,Cert,CV,Fin)", "Key(APPLICATION,WRITE)"],
    ["Key(APPLICATION,READ)", "HandshakeCompleted", "HDR(APPLICATION:NST)"],
]
ALL_KEYLOG = [
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
]


# ---------------------------------------------------------------------------
# 1-RTT: every suite x every group


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
@pytest.mark.parametrize("suite", SUITES, ids=hex)
def test_full_handshake(pki, suite, group):
    p = Pair(
        client_cfg(pki, cipher_suites=[suite], groups=[group], ticket_store=tls.TicketStore()),
        server_cfg(pki),
    ).handshake()
    assert p.client.trace() == CLIENT_FULL
    assert p.server.trace() == SERVER_FULL
    check_keys(p)
    for side in (p.client, p.server):
        n = side.engine.negotiated
        assert (n.cipher_suite, n.group, n.alpn, n.resumed, n.version) == (suite, group, "h3", False, 0x0304)
        assert n.signature_scheme == tls.SignatureScheme.ECDSA_SECP256R1_SHA256
        assert keylog_labels(side.events) == ALL_KEYLOG
        assert all(e.client_random == p.client.engine.client_random for e in side.of_type(ev.KeyLog))
    assert p.client.engine.peer_certificates[0] == pki.server.cert
    assert p.server.engine.negotiated.server_name == "localhost"


def test_default_first_flight_is_hybrid_and_x25519(pki):
    p = Pair(client_cfg(pki), server_cfg(pki)).handshake()
    from tls.messages import ClientHello

    ch = ClientHello.parse(p.client.calls[0][1][0].data[4:])
    from tls import extensions as X

    shares = X.parse_key_share_client(ch.extension(tls.ExtensionType.KEY_SHARE))
    assert [g for g, _ in shares] == [Group.X25519MLKEM768, Group.X25519]
    assert p.server.engine.negotiated.group == Group.X25519MLKEM768


@pytest.mark.parametrize("key_type", ["p384", "ed25519", "rsa2048"])
def test_other_server_key_types(key_type):
    other = make_test_pki(key_type)
    p = Pair(client_cfg(other), server_cfg(other)).handshake()
    check_keys(p)
    expected = {"p384": 0x0503, "ed25519": 0x0807, "rsa2048": 0x0804}[key_type]
    assert p.client.engine.negotiated.signature_scheme == expected


# ---------------------------------------------------------------------------
# HelloRetryRequest


@pytest.mark.parametrize(
    "client_shares, server_groups, cookie",
    [
        ([Group.X25519], [Group.SECP384R1, Group.SECP256R1], 0),
        ([Group.X25519], [Group.X25519MLKEM768], 32),
        ([Group.SECP256R1], [Group.X25519], 0),
    ],
)
def test_hello_retry_request(pki, client_shares, server_groups, cookie):
    p = Pair(
        client_cfg(pki, key_share_groups=client_shares),
        server_cfg(pki, groups=server_groups, hrr_cookie_length=cookie, session_tickets=0),
    ).handshake()
    assert p.client.trace() == [
        ["HDR(INITIAL:CH)"],
        ["HDR(INITIAL:CH)"],
        ["Key(HANDSHAKE,READ)", "Key(HANDSHAKE,WRITE)"],
        ["HDR(HANDSHAKE:Fin)", "Key(APPLICATION,WRITE)", "Key(APPLICATION,READ)", "HandshakeCompleted"],
    ]
    assert p.server.trace() == [
        ["HDR(INITIAL:SH)"],  # the HelloRetryRequest
        SERVER_FULL[0],
        ["Key(APPLICATION,READ)", "HandshakeCompleted"],
    ]
    check_keys(p)
    assert p.client.engine.negotiated.group == server_groups[0]
    assert p.client.engine.negotiated.hello_retry and p.server.engine.negotiated.hello_retry


# ---------------------------------------------------------------------------
# external PSK


@pytest.mark.parametrize("mode", [tls.PskKeyExchangeMode.PSK_DHE_KE, tls.PskKeyExchangeMode.PSK_KE])
@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_external_psk(pki, mode, hash_name):
    psk = tls.ExternalPsk(b"client-7", b"\x42" * 32, hash_name)
    p = Pair(
        tls.Config(server_name="localhost", psks=[psk], psk_modes=[mode], alpn_protocols=["h3"]),
        tls.Config(psks=[psk], psk_modes=[tls.PskKeyExchangeMode.PSK_DHE_KE, tls.PskKeyExchangeMode.PSK_KE], alpn_protocols=["h3"]),
    ).handshake()
    assert p.client.trace() == CLIENT_FULL  # a ticket too: the client sent psk_key_exchange_modes
    assert p.server.trace()[0] == [
        "HDR(INITIAL:SH)", "Key(HANDSHAKE,WRITE)", "Key(HANDSHAKE,READ)", "HDR(HANDSHAKE:EE,Fin)", "Key(APPLICATION,WRITE)"
    ]
    check_keys(p)
    for side in (p.client, p.server):
        n = side.engine.negotiated
        assert n.resumed and n.external_psk == b"client-7" and n.psk_mode == mode
        assert (n.group is None) == (mode == tls.PskKeyExchangeMode.PSK_KE)
        assert n.cipher_suite == (0x1302 if hash_name == "sha384" else 0x1301)


def test_psk_only_server_without_matching_psk_fails(pki):
    psk = tls.ExternalPsk(b"id", b"k" * 32)
    other = tls.ExternalPsk(b"other", b"k" * 32)
    p = Pair(tls.Config(server_name="localhost", psks=[other], verify_mode=0), tls.Config(psks=[psk]))
    with pytest.raises(tls.AlertError) as info:
        p.handshake()
    assert info.value.description == AD.handshake_failure


# ---------------------------------------------------------------------------
# resumption and 0-RTT


def _resume(pki, profile=tls.TCP, client_kw=None, server_kw=None, second_server_kw=None):
    store = tls.TicketStore()
    skw = dict(max_early_data=4096, ticket_sealer=tls.TicketSealer(NOW))  # shared across replace()
    skw.update(server_kw or {})
    scfg = server_cfg(pki, **skw)
    ccfg = client_cfg(pki, ticket_store=store, **(client_kw or {}))
    first = Pair(ccfg, scfg, profile).handshake()
    assert len(store) == 1
    scfg2 = scfg if second_server_kw is None else dataclasses.replace(scfg, **second_server_kw)
    second = Pair(ccfg, scfg2, profile, now=NOW + 5).handshake()
    return first, second


def test_resumption(pki):
    first, p = _resume(pki)
    assert p.client.trace() == CLIENT_FULL
    assert p.server.trace() == [
        ["HDR(INITIAL:SH)", "Key(HANDSHAKE,WRITE)", "Key(HANDSHAKE,READ)", "HDR(HANDSHAKE:EE,Fin)", "Key(APPLICATION,WRITE)"],
        SERVER_FULL[1],
    ]
    check_keys(p)
    assert p.client.engine.negotiated.resumed and p.server.engine.negotiated.resumed
    assert p.client.engine.negotiated.psk_mode == tls.PskKeyExchangeMode.PSK_DHE_KE
    assert p.client.engine.negotiated.external_psk is None


def test_resumption_with_mlkem(pki):
    first, p = _resume(pki, client_kw=dict(key_share_groups=[Group.X25519MLKEM768]))
    check_keys(p)
    assert p.server.engine.negotiated.group == Group.X25519MLKEM768 and p.server.engine.negotiated.resumed


def test_0rtt_accepted_tcp(pki):
    first, p = _resume(pki, client_kw=dict(enable_early_data=True))
    assert p.client.trace() == [
        ["HDR(INITIAL:CH)", "Key(EARLY_DATA,WRITE)"],
        ["Key(HANDSHAKE,READ)"],
        ["HDR(EARLY_DATA:EOED)", "Key(HANDSHAKE,WRITE)", "HDR(HANDSHAKE:Fin)", "Key(APPLICATION,WRITE)",
         "Key(APPLICATION,READ)", "HandshakeCompleted"],
        ["TicketReceived"],
    ]
    assert p.server.trace() == [
        ["HDR(INITIAL:SH)", "Key(EARLY_DATA,READ)", "Key(HANDSHAKE,WRITE)", "HDR(HANDSHAKE:EE,Fin)", "Key(APPLICATION,WRITE)"],
        ["Key(HANDSHAKE,READ)"],
        SERVER_FULL[1],
    ]
    check_keys(p, levels=(Level.EARLY_DATA, Level.HANDSHAKE, Level.APPLICATION)[1:])
    suite = p.client.engine.negotiated.cipher_suite
    c, s = p.client.engine, p.server.engine
    assert seal_open_roundtrip(c, s, Level.EARLY_DATA, suite)
    assert c.negotiated.early_data_accepted and s.negotiated.early_data_accepted
    assert c.early_exporter_master_secret == s.early_exporter_master_secret is not None
    assert c.early_data_offered and s.early_data_offered
    assert c.max_early_data == 4096 and s.max_early_data == 4096
    assert keylog_labels(p.client.events)[:2] == ["CLIENT_EARLY_TRAFFIC_SECRET", "EARLY_EXPORTER_SECRET"]


def test_0rtt_accepted_quic(pki):
    first, p = _resume(pki, tls.QUIC, client_kw=dict(enable_early_data=True))
    ticket = first.client.of_type(ev.TicketReceived)[0].ticket
    assert ticket.max_early_data == 0xFFFFFFFF  # RFC 9001 §4.6.1
    assert p.client.trace() == [
        ["HDR(INITIAL:CH)", "Key(EARLY_DATA,WRITE)"],
        ["Key(HANDSHAKE,READ)", "Key(HANDSHAKE,WRITE)"],
        ["PeerTransportParameters", "HDR(HANDSHAKE:Fin)", "Key(APPLICATION,WRITE)", "Key(APPLICATION,READ)", "HandshakeCompleted"],
        ["TicketReceived"],
    ]
    assert p.server.trace() == [
        ["PeerTransportParameters", "HDR(INITIAL:SH)", "Key(EARLY_DATA,READ)", "Key(HANDSHAKE,WRITE)",
         "Key(HANDSHAKE,READ)", "HDR(HANDSHAKE:EE,Fin)", "Key(APPLICATION,WRITE)"],
        SERVER_FULL[1],
    ]
    c, s = p.client.engine, p.server.engine
    assert seal_open_roundtrip(c, s, Level.EARLY_DATA, c.negotiated.cipher_suite)
    check_keys(p)


@pytest.mark.parametrize("profile", [tls.TCP, tls.QUIC], ids=lambda p: p.name)
def test_0rtt_rejected(pki, profile):
    first, p = _resume(pki, profile, client_kw=dict(enable_early_data=True), second_server_kw=dict(max_early_data=0))
    ptp = ["PeerTransportParameters"] if profile is tls.QUIC else []
    if profile is tls.TCP:
        assert p.client.trace() == [
            ["HDR(INITIAL:CH)", "Key(EARLY_DATA,WRITE)"],
            ["Key(HANDSHAKE,READ)"],
            ["EarlyDataRejected", "Key(HANDSHAKE,WRITE)", "HDR(HANDSHAKE:Fin)", "Key(APPLICATION,WRITE)",
             "Key(APPLICATION,READ)", "HandshakeCompleted"],
            ["TicketReceived"],
        ]
    else:
        assert p.client.trace() == [
            ["HDR(INITIAL:CH)", "Key(EARLY_DATA,WRITE)"],
            ["Key(HANDSHAKE,READ)", "Key(HANDSHAKE,WRITE)"],
            ["PeerTransportParameters", "EarlyDataRejected", "HDR(HANDSHAKE:Fin)", "Key(APPLICATION,WRITE)",
             "Key(APPLICATION,READ)", "HandshakeCompleted"],
            ["TicketReceived"],
        ]
    assert p.server.trace()[0] == ["EarlyDataRejected"] + ptp + [
        "HDR(INITIAL:SH)", "Key(HANDSHAKE,WRITE)", "Key(HANDSHAKE,READ)", "HDR(HANDSHAKE:EE,Fin)", "Key(APPLICATION,WRITE)"
    ]
    check_keys(p)
    assert p.client.engine.negotiated.resumed and not p.client.engine.negotiated.early_data_accepted
    assert p.client.engine.max_early_data == 0 and p.server.engine.early_data_offered


def test_0rtt_rejected_by_hello_retry(pki):
    first, p = _resume(
        pki, client_kw=dict(enable_early_data=True, key_share_groups=[Group.X25519]),
        second_server_kw=dict(groups=[Group.SECP256R1]),
    )
    assert p.client.trace()[:2] == [["HDR(INITIAL:CH)", "Key(EARLY_DATA,WRITE)"], ["EarlyDataRejected", "HDR(INITIAL:CH)"]]
    assert p.server.trace()[0] == ["EarlyDataRejected", "HDR(INITIAL:SH)"]
    check_keys(p)
    assert p.client.engine.negotiated.resumed and p.client.engine.negotiated.hello_retry


def test_0rtt_replay_is_refused(pki):
    """The same ClientHello twice (a replay): the second gets no 0-RTT."""
    store = tls.TicketStore()
    scfg = server_cfg(pki, max_early_data=100)
    ccfg = client_cfg(pki, ticket_store=store, enable_early_data=True)
    Pair(ccfg, scfg).handshake()
    ticket = store.peek("localhost", NOW)
    captured = []
    Pair(ccfg, scfg, now=NOW + 1).handshake(intercept=lambda to_server, level, data: captured.append(data) or data)
    replay = tls.Engine(scfg, False, tls.TCP, now=NOW + 2)
    events = replay.receive(Level.INITIAL, captured[0])
    assert isinstance(events[0], ev.EarlyDataRejected)
    assert replay.negotiated.resumed and not replay.negotiated.early_data_accepted
    assert ticket is not None


# ---------------------------------------------------------------------------
# client authentication


def _client_auth(pki, mode, client_cert: bool):
    ccfg = client_cfg(pki, **(dict(certificate_chain=pki.client.chain, private_key=pki.client.key) if client_cert else {}))
    scfg = server_cfg(pki, verify_mode=mode, trust_store=pki.trust_store(), session_tickets=0)
    return Pair(ccfg, scfg)


@pytest.mark.parametrize("mode", [tls.VerifyMode.REQUIRED, tls.VerifyMode.OPTIONAL])
def test_client_auth(pki, mode):
    p = _client_auth(pki, mode, True).handshake()
    assert p.server.trace() == [
        ["HDR(INITIAL:SH)", "Key(HANDSHAKE,WRITE)", "Key(HANDSHAKE,READ)", "HDR(HANDSHAKE:EE,CR,Cert,CV,Fin)", "Key(APPLICATION,WRITE)"],
        ["Key(APPLICATION,READ)", "HandshakeCompleted"],
    ]
    assert p.client.trace()[2] == ["HDR(HANDSHAKE:Cert,CV,Fin)", "Key(APPLICATION,WRITE)", "Key(APPLICATION,READ)", "HandshakeCompleted"]
    check_keys(p)
    assert p.server.engine.peer_certificates[0] == pki.client.cert
    assert p.server.engine.peer_certificates[-1] == pki.ca  # the validated path
    assert p.server.engine.negotiated.client_signature_scheme == 0x0403


def test_client_auth_optional_without_certificate(pki):
    p = _client_auth(pki, tls.VerifyMode.OPTIONAL, False).handshake()
    assert p.client.trace()[2][0] == "HDR(HANDSHAKE:Cert,Fin)"  # an empty Certificate
    check_keys(p)
    assert p.server.engine.peer_certificates == ()


def test_client_auth_required_without_certificate(pki):
    p = _client_auth(pki, tls.VerifyMode.REQUIRED, False)
    with pytest.raises(tls.AlertError) as info:
        p.handshake()
    assert info.value.description == AD.certificate_required
    assert p.server.engine.failure is info.value


def test_client_auth_rsa_client_with_pss(pki):
    rsa = make_test_pki("rsa2048")
    ccfg = tls.Config(server_name="localhost", trust_store=pki.trust_store(), certificate_chain=rsa.client.chain, private_key=rsa.client.key)
    scfg = tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key,
                      verify_mode=tls.VerifyMode.REQUIRED, trust_store=rsa.trust_store())
    p = Pair(ccfg, scfg).handshake()
    assert p.server.engine.negotiated.client_signature_scheme == 0x0804


# ---------------------------------------------------------------------------
# QUIC profile, ALPN, post-handshake


def test_quic_transport_parameters_both_ways(pki):
    p = Pair(client_cfg(pki), server_cfg(pki), tls.QUIC, client_tp=b"\x01\x02client", server_tp=b"\x03server").handshake()
    assert [e.data for e in p.server.of_type(ev.PeerTransportParameters)] == [b"\x01\x02client"]
    assert [e.data for e in p.client.of_type(ev.PeerTransportParameters)] == [b"\x03server"]
    from tls.messages import ClientHello

    ch = ClientHello.parse(p.client.calls[0][1][0].data[4:])
    assert ch.legacy_session_id == b""  # RFC 9001 §8.4
    check_keys(p)


def test_a_server_answers_the_clients_transport_parameters(pki):
    # A server's transport_parameters as a callable: it sees the client's
    # before its flight is built (RFC 9368: QUIC names the negotiated version
    # in its answer), once, and the client gets what it returned.
    seen = []

    def answer(theirs: bytes) -> bytes:
        seen.append(theirs)
        return b"answer-to:" + theirs

    p = Pair(client_cfg(pki), server_cfg(pki), tls.QUIC, client_tp=b"\x01client", server_tp=answer).handshake()
    assert seen == [b"\x01client"]
    assert [e.data for e in p.client.of_type(ev.PeerTransportParameters)] == [b"answer-to:\x01client"]


@pytest.mark.parametrize("answer,why", [
    (lambda theirs: 1 / 0, "ZeroDivisionError"),
    (lambda theirs: "text", "something other than bytes"),
])
def test_a_failing_transport_parameters_answer_is_an_internal_error_alert(pki, answer, why):
    p = Pair(client_cfg(pki), server_cfg(pki), tls.QUIC, server_tp=answer)
    with pytest.raises(tls.AlertError) as info:
        p.handshake()
    assert info.value.description == AD.internal_error and why in str(info.value)


def test_tcp_compat_mode_session_id(pki):
    p = Pair(client_cfg(pki), server_cfg(pki)).handshake()
    from tls.messages import ClientHello, ServerHello

    ch = ClientHello.parse(p.client.calls[0][1][0].data[4:])
    sh = ServerHello.parse(p.server.calls[0][1][0].data[4:])
    assert len(ch.legacy_session_id) == 32 and sh.legacy_session_id_echo == ch.legacy_session_id


def test_alpn_mismatch(pki):
    p = Pair(client_cfg(pki, alpn_protocols=["spdy/1"]), server_cfg(pki))
    with pytest.raises(tls.AlertError) as info:
        p.handshake()
    assert info.value.description == AD.no_application_protocol


def test_alpn_server_preference_and_absent(pki):
    p = Pair(client_cfg(pki, alpn_protocols=["hq", "h3"]), server_cfg(pki)).handshake()
    assert p.client.engine.negotiated.alpn == "h3"
    p = Pair(client_cfg(pki, alpn_protocols=()), server_cfg(pki)).handshake()  # TCP: ALPN optional
    assert p.client.engine.negotiated.alpn is None


def test_key_update_both_ways(pki):
    p = Pair(client_cfg(pki), server_cfg(pki)).handshake()
    c, s = p.client.engine, p.server.engine
    suite = c.negotiated.cipher_suite
    old = c.secret(Level.APPLICATION, Direction.WRITE)
    evs = p.call(p.client, "key_update", False)
    assert [type(e) for e in evs] == [ev.HandshakeDataReady, ev.KeyReady]
    assert c.secret(Level.APPLICATION, Direction.WRITE) != old
    assert [type(e) for e in p.server.calls[-1][1]] == [ev.KeyReady]
    assert seal_open_roundtrip(c, s, Level.APPLICATION, suite) and seal_open_roundtrip(s, c, Level.APPLICATION, suite)
    # the server asks the client to update too
    p.call(p.server, "key_update", True)
    assert [type(e) for e in p.client.calls[-1][1]] == [ev.KeyReady, ev.HandshakeDataReady, ev.KeyReady]
    assert [type(e) for e in p.server.calls[-1][1]] == [ev.KeyReady]  # the client's answer
    assert seal_open_roundtrip(c, s, Level.APPLICATION, suite) and seal_open_roundtrip(s, c, Level.APPLICATION, suite)


def test_key_update_refused_in_quic(pki):
    p = Pair(client_cfg(pki), server_cfg(pki), tls.QUIC).handshake()
    with pytest.raises(tls.UsageError):
        p.client.engine.key_update(True)
    assert p.client.engine.failure is None  # misuse does not fail the connection


def test_new_session_ticket_post_handshake(pki):
    store = tls.TicketStore()
    p = Pair(client_cfg(pki, ticket_store=store), server_cfg(pki, session_tickets=0)).handshake()
    assert len(store) == 0
    for _ in range(3):
        p.call(p.server, "send_new_session_ticket")
    tickets = [e.ticket for e in p.client.of_type(ev.TicketReceived)]
    assert len(tickets) == 3 and len({t.psk for t in tickets}) == 3 and len(store) == 3
    with pytest.raises(tls.UsageError):
        p.client.engine.send_new_session_ticket()


def test_keylog_sinks(pki, tmp_path):
    lines = []
    buf = io.StringIO()
    path = tmp_path / "keys.log"
    for sink in (lines.append, buf, str(path)):
        Pair(client_cfg(pki, keylog=sink), server_cfg(pki)).handshake()
    assert len(lines) == 5 and all(line.split()[0] in ALL_KEYLOG for line in lines)
    assert buf.getvalue().splitlines() == path.read_text().splitlines()[:5] or len(buf.getvalue().splitlines()) == 5
    assert all(len(line.split()) == 3 and len(line.split()[1]) == 64 for line in lines)


def test_secret_api_errors(pki):
    e = tls.Engine(client_cfg(pki), True, tls.TCP, now=NOW)
    with pytest.raises(tls.UsageError):
        e.secret(Level.APPLICATION, Direction.READ)
    with pytest.raises(tls.UsageError):
        e.export_keying_material("x", b"", 16)
    with pytest.raises(tls.UsageError):
        e.receive(Level.INITIAL, b"")  # start() first


def test_config_loads_files_and_memory(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    files = pki.write_pem(tmp_path)
    pem_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.server.chain)
    pem_key = pki.server.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    der_key = pki.server.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    servers = [
        tls.Config(certificate_chain=files["server_chain"], private_key=files["server_key"]),
        tls.Config(certificate_chain=str(files["server_chain"]), private_key=str(files["server_key"])),
        tls.Config(certificate_chain=pem_chain, private_key=pem_key, private_key_password=b"pw"),
        tls.Config(certificate_chain=pki.server.chain, private_key=der_key),
    ]
    clients = [
        tls.Config(server_name="localhost", cafile=files["ca"]),
        tls.Config(server_name="localhost", cadata=pki.ca.public_bytes(serialization.Encoding.PEM)),
        tls.Config(server_name="127.0.0.1", ca_certificates=[pki.ca]),  # an IP address: no SNI, IP SAN checked
        tls.Config(server_name="wrong.example", check_hostname=False, ca_certificates=[pki.ca]),
    ]
    capath = tmp_path / "cas"
    capath.mkdir()
    (capath / "root.pem").write_bytes(pki.ca.public_bytes(serialization.Encoding.PEM))
    clients.append(tls.Config(server_name="localhost", capath=capath))
    for scfg, ccfg in zip(servers + servers[:1], clients):
        p = Pair(ccfg, scfg).handshake()
        assert p.client.engine.handshake_complete
        assert p.client.engine.peer_certificates[0] == pki.server.cert
    assert p.server.engine.negotiated.server_name == "localhost"


def test_verify_mode_none_and_custom_verifier(pki):
    seen = []

    def verifier(chain_der, server_name, is_server_cert, now):
        seen.append((len(chain_der), server_name, is_server_cert, now))
        from cryptography import x509

        return [x509.load_der_x509_certificate(d) for d in chain_der]

    p = Pair(tls.Config(server_name="localhost", certificate_verifier=verifier), server_cfg(pki)).handshake()
    assert seen == [(2, "localhost", True, NOW)]
    p = Pair(tls.Config(verify_mode=tls.VerifyMode.NONE), server_cfg(pki)).handshake()
    assert p.client.engine.peer_certificates[0] == pki.server.cert  # presented, not verified


def test_chain_verification_cache(pki):
    ccfg = client_cfg(pki)
    scfg = server_cfg(pki)
    Pair(ccfg, scfg).handshake()
    assert len(ccfg._cache["verified"]) == 1
    Pair(ccfg, scfg).handshake()
    assert len(ccfg._cache["verified"]) == 1  # reused
    # outside the validity window the cached result is not used
    p = Pair(ccfg, scfg, now=4_000_000_000.0)  # 2096: every certificate has expired
    with pytest.raises(tls.AlertError) as info:
        p.handshake()
    assert info.value.description == AD.certificate_expired


def test_accept_early_data_policy(pki):
    seen = []

    def policy(state):
        seen.append(state.app_data)
        return False

    first, p = _resume(pki, tls.QUIC, client_kw=dict(enable_early_data=True),
                       second_server_kw=dict(accept_early_data=policy))
    assert seen == [b"server-tp"]  # the transport parameters remembered in the ticket
    assert not p.client.engine.negotiated.early_data_accepted and p.client.engine.negotiated.resumed
    assert p.server.engine.ticket_state is not None and p.server.engine.ticket_state.app_data == b"server-tp"
