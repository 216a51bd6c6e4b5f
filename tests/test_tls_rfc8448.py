# RFC 8448 byte for byte: each trace (sections 3 to 7) is replayed against our
# client (fed the trace's server messages) and our server (fed the trace's
# client messages), with the trace's randoms, session ids and key shares
# injected, and every message we produce and every secret we derive is
# compared with the trace.
#
# What is injected and why:
#   - entropy (randoms, session id, ticket_age_add, HRR cookie) and key-share
#     private keys: the parameters the engine takes for exactly this;
#   - CertificateVerify signatures through `signer`: RSA-PSS and ECDSA are
#     randomized (and §6's private keys are not published).  The trace's
#     signatures are checked by our real verifier on the receiving side, and
#     on the sending side the trace signature must verify over the content
#     our engine asked to sign;
#   - the ticket blob through a fake sealer (NSS's ticket format is its own);
#   - NSS-specific extensions via the engine's extensions_hook (ReplayHook):
#     renegotiation_info, session_ticket and record_size_limit (which we do
#     not implement), and NSS's longer supported_groups / signature_algorithms
#     lists (ffdhe, secp521r1, SHA-1 schemes we do not offer).  The hook
#     asserts that every extension we produce ourselves is byte-identical to
#     the trace's and in the trace's order; only those listed may differ.
from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import tls
import tls.engine
from tls import Direction, Level
from tls import events as ev
from tls.certificates import certificate_verify_content, verify_certificate_verify
from tls.enums import ExtensionType as ET
from tls.enums import HandshakeType as HT
from tls.messages import Certificate, ClientHello, CertificateVerify, EncryptedExtensions, ServerHello, parse_message
from tls.tickets import Ticket, TicketState

from .vectors import h, load

V = load("rfc8448.json")
NO_COMPAT = dataclasses.replace(tls.TCP, middlebox_compat=False)
T0 = 1_600_000_000.0  # any time: the trace certificates are not date-checked here

# NSS extensions we do not produce, and lists NSS sends that we cannot.
NSS_ONLY = {ET.RENEGOTIATION_INFO, ET.SESSION_TICKET, ET.RECORD_SIZE_LIMIT, ET.SUPPORTED_GROUPS}
NSS_LISTS = {ET.SUPPORTED_GROUPS, ET.SIGNATURE_ALGORITHMS}


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", True)


def section(n: str) -> dict:
    return V["sections"][n]["summary"]


def messages(n: str) -> list[bytes]:
    return [h(m["hex"]) for m in section(n)["handshake_messages"]]


def secrets(n: str) -> dict[str, bytes]:
    return {k: h(v) for k, v in section(n)["secrets"].items()}


def keys(n: str, party: str) -> dict[int, bytes]:
    names = {"x25519": tls.Group.X25519, "secp256r1": tls.Group.SECP256R1}
    return {names[k["group"]]: h(k["private_key"]) for k in section(n)["key_exchange"][party]}


class Entropy:
    """Hands out the given byte strings in order; each must be asked for exactly."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        assert self.chunks, f"unexpected entropy request for {n} bytes"
        chunk = self.chunks.pop(0)
        assert len(chunk) == n, (len(chunk), n)
        return chunk


class ReplayHook:
    """extensions_hook returning the trace's extension list for each message we
    build, after checking our own extensions against it."""

    def __init__(self, trace_messages: list[bytes]) -> None:
        self.queue: dict[int, list[list[tuple[int, bytes]]]] = {}
        for raw in trace_messages:
            msg = parse_message(raw[0], raw[4:])
            exts = getattr(msg, "extensions", None)
            if exts is None:
                continue
            if raw[0] == HT.CLIENT_HELLO:  # padding and PSK are added after the hook
                exts = [(t, d) for t, d in exts if t not in (ET.PADDING, ET.PRE_SHARED_KEY)]
            self.queue.setdefault(raw[0], []).append(exts)
        self.inserted: set[int] = set()
        self.replaced: set[int] = set()

    def __call__(self, msg_type: int, ours: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        trace = self.queue[msg_type].pop(0)
        trace_types = [t for t, _ in trace]
        it = iter(trace_types)
        assert all(t in it for t, _ in ours), f"our order {[t for t, _ in ours]} vs trace {trace_types}"
        trace_data = dict(trace)
        for t, data in ours:
            if data != trace_data[t]:
                assert t in NSS_LISTS, f"extension {t} differs from the trace"
                self.replaced.add(t)
        self.inserted |= set(trace_types) - {t for t, _ in ours}
        assert self.inserted <= NSS_ONLY, self.inserted
        return trace


def rsa_key() -> rsa.RSAPrivateKey:
    k = V["server_rsa_private_key"]
    num = lambda name: int(k[name], 16)  # noqa: E731
    pub = rsa.RSAPublicNumbers(num("public_exponent"), num("modulus"))
    return rsa.RSAPrivateNumbers(
        num("prime1"), num("prime2"), num("private_exponent"),
        num("exponent1"), num("exponent2"), num("coefficient"), pub,
    ).private_key()


def chain_of(raw_certificate_message: bytes):
    from cryptography import x509

    msg = Certificate.parse(raw_certificate_message[4:])
    return [x509.load_der_x509_certificate(e.data) for e in msg.entries]


def trace_signer(raw_cv: bytes, chain, is_server: bool):
    """Returns the trace's signature, after checking it verifies over the
    content our engine asks to sign (so our transcript is the trace's)."""
    cv = CertificateVerify.parse(raw_cv[4:])
    calls = []

    def signer(scheme: int, content: bytes) -> bytes:
        assert scheme == cv.algorithm
        verify_certificate_verify(chain[0], scheme, cv.signature, content)
        calls.append(scheme)
        return cv.signature

    signer.calls = calls  # type: ignore[attr-defined]
    return signer


class FakeSealer:
    """Seals nothing: returns the trace's ticket and opens it to `state`."""

    def __init__(self, blob: bytes, state: TicketState | None = None) -> None:
        self.blob = blob
        self.state = state
        self.sealed: list[TicketState] = []

    def seal(self, state: TicketState, now: float) -> bytes:
        self.sealed.append(state)
        return self.blob

    def open(self, ticket: bytes, now: float) -> TicketState | None:
        return self.state if ticket == self.blob else None


def hdr(events, level: Level) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ev.HandshakeDataReady) and e.level == level)


def key_events(events) -> dict[tuple[Level, Direction], bytes]:
    return {(e.level, e.direction): e.secret for e in events if isinstance(e, ev.KeyReady)}


def keylog(events) -> dict[str, bytes]:
    return {e.label: e.secret for e in events if isinstance(e, ev.KeyLog)}


def check_secrets(engine: tls.Engine, events: list, s: dict[str, bytes], is_client: bool) -> None:
    mine, theirs = (Direction.WRITE, Direction.READ) if is_client else (Direction.READ, Direction.WRITE)
    assert engine.secret(Level.HANDSHAKE, mine) == s["client_handshake_traffic_secret"]
    assert engine.secret(Level.HANDSHAKE, theirs) == s["server_handshake_traffic_secret"]
    assert engine.secret(Level.APPLICATION, mine) == s["client_application_traffic_secret_0"]
    assert engine.secret(Level.APPLICATION, theirs) == s["server_application_traffic_secret_0"]
    assert engine.exporter_master_secret == s["exporter_master_secret"]
    assert engine.resumption_master_secret == s["resumption_master_secret"]
    logged = keylog(events)
    assert logged["CLIENT_HANDSHAKE_TRAFFIC_SECRET"] == s["client_handshake_traffic_secret"]
    assert logged["SERVER_HANDSHAKE_TRAFFIC_SECRET"] == s["server_handshake_traffic_secret"]
    assert logged["CLIENT_TRAFFIC_SECRET_0"] == s["client_application_traffic_secret_0"]
    assert logged["SERVER_TRAFFIC_SECRET_0"] == s["server_application_traffic_secret_0"]
    assert logged["EXPORTER_SECRET"] == s["exporter_master_secret"]
    if "client_early_traffic_secret" in s:
        assert logged["CLIENT_EARLY_TRAFFIC_SECRET"] == s["client_early_traffic_secret"]
        assert logged["EARLY_EXPORTER_SECRET"] == s["early_exporter_master_secret"]
        assert engine.early_exporter_master_secret == s["early_exporter_master_secret"]
    assert {e.client_random for e in events if isinstance(e, ev.KeyLog)} == {ClientHello.parse(messages_of(engine)[0][4:]).random}


_current: dict[int, list[bytes]] = {}


def messages_of(engine) -> list[bytes]:
    return _current[id(engine)]


# ---------------------------------------------------------------------------
# Section-specific configuration


def client_config(n: str, **kw) -> tls.Config:
    groups = {"5": [tls.Group.X25519, tls.Group.SECP256R1, tls.Group.SECP384R1]}.get(
        n, [tls.Group.X25519, tls.Group.SECP256R1, tls.Group.SECP384R1]
    )
    return tls.Config(
        server_name="server",
        verify_mode=tls.VerifyMode.NONE,  # the trace certificates are self-signed, expired today
        cipher_suites=[0x1301, 0x1303, 0x1302],
        groups=groups,
        key_share_groups=[tls.Group.X25519],
        pad_client_hello=True,
        ticket_store=kw.pop("ticket_store", tls.TicketStore()),  # NSS always sends psk_key_exchange_modes
        **kw,
    )


def server_config(n: str, chain, key=None, **kw) -> tls.Config:
    kw.setdefault("session_tickets", 1 if n == "3" else 0)  # only §3's server issues a ticket
    return tls.Config(certificate_chain=chain, private_key=key, cipher_suites=[0x1301, 0x1302, 0x1303], **kw)


def accept_any(chain_der, server_name, is_server_cert, now):
    from cryptography import x509

    return [x509.load_der_x509_certificate(d) for d in chain_der]


def ticket_state_s3(blob_owner_now: float) -> TicketState:
    s3 = secrets("3")
    return TicketState(
        cipher_suite=0x1301, psk=s3["resumption_psk"], age_add=0xFAD6AAC5, issued_at=blob_owner_now,
        lifetime=30, alpn=None, server_name="server", max_early_data=1024,
    )


# ---------------------------------------------------------------------------
# Our client against the trace's server


def run_client(n: str, profile=NO_COMPAT, engine_kw: dict | None = None, **config_kw):
    msgs = messages(n)
    ch = ClientHello.parse(msgs[0][4:])
    chunks = [ch.random] + ([ch.legacy_session_id] if ch.legacy_session_id else [])
    hook = ReplayHook(msgs)
    kw = dict(entropy=Entropy(*chunks), key_share_private_keys=keys(n, "client"), extensions_hook=hook)
    kw.update(engine_kw or {})
    client = tls.Engine(client_config(n, **config_kw), True, profile, now=T0, **kw)
    _current[id(client)] = msgs
    return client, hook


def test_s3_client_1rtt():
    msgs = messages("3")  # CH SH EE Cert CV Fin | Fin | NST
    store = tls.TicketStore()
    client, hook = run_client("3", ticket_store=store)
    events = client.start()
    assert hdr(events, Level.INITIAL) == msgs[0]
    events += client.receive(Level.INITIAL, msgs[1])
    flight = client.receive(Level.HANDSHAKE, b"".join(msgs[2:6]))
    events += flight
    assert hdr(flight, Level.HANDSHAKE) == msgs[6]
    tickets = client.receive(Level.APPLICATION, msgs[7], now=T0 + 1)
    events += tickets
    check_secrets(client, events, secrets("3"), is_client=True)
    (received,) = [e.ticket for e in tickets if isinstance(e, ev.TicketReceived)]
    assert received.psk == secrets("3")["resumption_psk"]
    assert received.age_add == 0xFAD6AAC5 and received.lifetime == 30 and received.max_early_data == 1024
    assert len(store) == 1
    assert hook.inserted == {ET.RENEGOTIATION_INFO, ET.SESSION_TICKET, ET.RECORD_SIZE_LIMIT}
    assert client.negotiated.signature_scheme == 0x0804  # the trace's RSA-PSS signature verified


def test_s4_client_resumption_0rtt():
    msgs = messages("4")  # CH SH EE Fin EOED Fin
    s3 = messages("3")
    nst = parse_message(HT.NEW_SESSION_TICKET, s3[7][4:])
    ticket = Ticket(
        server_name="server", cipher_suite=0x1301, psk=secrets("3")["resumption_psk"], ticket=nst.ticket,
        age_add=nst.age_add, lifetime=nst.lifetime, received_at=T0, alpn=None, max_early_data=1024,
    )
    store = tls.TicketStore()
    store.add(ticket)
    client, hook = run_client("4", ticket_store=store, enable_early_data=True)
    events = client.start(now=T0 + 0.006)  # obfuscated age in the trace: age_add + 6 ms
    assert hdr(events, Level.INITIAL) == msgs[0]
    early = key_events(events)[(Level.EARLY_DATA, Direction.WRITE)]
    assert early == secrets("4")["client_early_traffic_secret"]
    events += client.receive(Level.INITIAL, msgs[1])
    flight = client.receive(Level.HANDSHAKE, b"".join(msgs[2:4]))
    events += flight
    assert hdr(flight, Level.EARLY_DATA) == msgs[4]  # EndOfEarlyData (TCP profile)
    assert hdr(flight, Level.HANDSHAKE) == msgs[5]
    check_secrets(client, events, secrets("4"), is_client=True)
    assert client.negotiated.resumed and client.negotiated.early_data_accepted
    assert section("4")["psk_binder"]["binder"] in msgs[0].hex()


def test_s5_client_hello_retry():
    msgs = messages("5")  # CH1 HRR CH2 SH EE Cert CV Fin Fin
    client, hook = run_client("5")
    events = client.start()
    assert hdr(events, Level.INITIAL) == msgs[0]
    retry = client.receive(Level.INITIAL, msgs[1])
    assert hdr(retry, Level.INITIAL) == msgs[2]
    events += retry
    events += client.receive(Level.INITIAL, msgs[3])
    flight = client.receive(Level.HANDSHAKE, b"".join(msgs[4:8]))
    events += flight
    assert hdr(flight, Level.HANDSHAKE) == msgs[8]
    check_secrets(client, events, secrets("5"), is_client=True)
    assert client.negotiated.group == tls.Group.SECP256R1 and client.negotiated.hello_retry


def test_s6_client_authentication():
    msgs = messages("6")  # CH SH EE CR Cert CV Fin | Cert CV Fin
    client_chain = chain_of(msgs[7])
    signer = trace_signer(msgs[8], client_chain, is_server=False)
    client, hook = run_client("6", certificate_chain=client_chain, engine_kw={"signer": signer})
    events = client.start()
    assert hdr(events, Level.INITIAL) == msgs[0]
    events += client.receive(Level.INITIAL, msgs[1])
    flight = client.receive(Level.HANDSHAKE, b"".join(msgs[2:7]))
    events += flight
    assert hdr(flight, Level.HANDSHAKE) == b"".join(msgs[7:10])
    assert signer.calls == [0x0804]
    check_secrets(client, events, secrets("6"), is_client=True)
    assert client.negotiated.signature_scheme == 0x0403  # the server's ECDSA signature verified


def test_s7_client_compatibility_mode():
    msgs = messages("7")  # CH SH EE Cert CV Fin | Fin
    client, hook = run_client("7", profile=tls.TCP)
    events = client.start()
    assert hdr(events, Level.INITIAL) == msgs[0]
    events += client.receive(Level.INITIAL, msgs[1])
    flight = client.receive(Level.HANDSHAKE, b"".join(msgs[2:6]))
    events += flight
    assert hdr(flight, Level.HANDSHAKE) == msgs[6]
    check_secrets(client, events, secrets("7"), is_client=True)


# ---------------------------------------------------------------------------
# Our server against the trace's client


def make_server(n: str, chunks: list[bytes], cfg: tls.Config, profile=NO_COMPAT, signer=None):
    msgs = messages(n)
    hook = ReplayHook(msgs)
    server = tls.Engine(
        cfg, False, profile, entropy=Entropy(*chunks), key_share_private_keys=keys(n, "server"),
        signer=signer, now=T0, extensions_hook=hook,
    )
    _current[id(server)] = msgs
    return server, hook


def server_random(raw_sh: bytes) -> bytes:
    return ServerHello.parse(raw_sh[4:]).random


def test_s3_server_1rtt():
    msgs = messages("3")
    chain = chain_of(msgs[3])
    sealer = FakeSealer(parse_message(HT.NEW_SESSION_TICKET, msgs[7][4:]).ticket)
    cfg = server_config("3", chain, rsa_key(), ticket_sealer=sealer, ticket_lifetime=30, max_early_data=1024)
    signer = trace_signer(msgs[4], chain, is_server=True)
    server, hook = make_server("3", [server_random(msgs[1]), (0xFAD6AAC5).to_bytes(4, "big")], cfg, signer=signer)
    events = server.receive(Level.INITIAL, msgs[0])
    assert hdr(events, Level.INITIAL) == msgs[1]
    assert hdr(events, Level.HANDSHAKE) == b"".join(msgs[2:6])
    done = server.receive(Level.HANDSHAKE, msgs[6])
    events += done
    assert hdr(done, Level.APPLICATION) == msgs[7]  # NewSessionTicket
    check_secrets(server, events, secrets("3"), is_client=False)
    assert sealer.sealed[0].psk == secrets("3")["resumption_psk"]
    assert hook.inserted == {ET.SUPPORTED_GROUPS, ET.RECORD_SIZE_LIMIT}  # NSS's EncryptedExtensions


def test_s4_server_resumption_0rtt():
    msgs = messages("4")
    s3 = messages("3")
    blob = parse_message(HT.NEW_SESSION_TICKET, s3[7][4:]).ticket
    sealer = FakeSealer(blob, ticket_state_s3(T0 - 0.006))
    cfg = server_config("4", chain_of(s3[3]), rsa_key(), ticket_sealer=sealer, max_early_data=1024)
    server, hook = make_server("4", [server_random(msgs[1])], cfg)
    events = server.receive(Level.INITIAL, msgs[0])
    assert hdr(events, Level.INITIAL) == msgs[1]
    assert hdr(events, Level.HANDSHAKE) == b"".join(msgs[2:4])
    assert key_events(events)[(Level.EARLY_DATA, Direction.READ)] == secrets("4")["client_early_traffic_secret"]
    assert (Level.HANDSHAKE, Direction.READ) not in key_events(events)  # waits for EndOfEarlyData
    assert server.read_level == Level.EARLY_DATA
    eoed = server.receive(Level.EARLY_DATA, msgs[4])
    assert [type(e) for e in eoed if not isinstance(e, ev.KeyLog)] == [ev.KeyReady]
    events += eoed
    events += server.receive(Level.HANDSHAKE, msgs[5])
    check_secrets(server, events, secrets("4"), is_client=False)
    assert server.negotiated.resumed and server.negotiated.early_data_accepted


def test_s5_server_hello_retry():
    msgs = messages("5")
    chain = chain_of(msgs[5])
    hrr = ServerHello.parse(msgs[1][4:])
    cookie = hrr.extension(ET.COOKIE)[2:]
    cfg = server_config("5", chain, rsa_key(), groups=[tls.Group.SECP256R1], hrr_cookie_length=len(cookie))
    signer = trace_signer(msgs[6], chain, is_server=True)
    server, hook = make_server("5", [cookie, server_random(msgs[3])], cfg, signer=signer)
    events = server.receive(Level.INITIAL, msgs[0])
    assert hdr(events, Level.INITIAL) == msgs[1]
    flight = server.receive(Level.INITIAL, msgs[2])
    assert hdr(flight, Level.INITIAL) == msgs[3]
    assert hdr(flight, Level.HANDSHAKE) == b"".join(msgs[4:8])
    events += flight
    events += server.receive(Level.HANDSHAKE, msgs[8])
    check_secrets(server, events, secrets("5"), is_client=False)


def test_s6_server_requires_client_certificate():
    msgs = messages("6")
    chain = chain_of(msgs[4])  # ECDSA P-256; its private key is not in the RFC
    signer = trace_signer(msgs[5], chain, is_server=True)
    cfg = server_config("6", chain, None, verify_mode=tls.VerifyMode.REQUIRED, certificate_verifier=accept_any)
    server, hook = make_server("6", [server_random(msgs[1])], cfg, signer=signer)
    events = server.receive(Level.INITIAL, msgs[0])
    assert hdr(events, Level.INITIAL) == msgs[1]
    assert hdr(events, Level.HANDSHAKE) == b"".join(msgs[2:7])
    assert hook.replaced == {ET.SIGNATURE_ALGORITHMS}  # NSS's CertificateRequest list
    events += server.receive(Level.HANDSHAKE, b"".join(msgs[7:10]))
    check_secrets(server, events, secrets("6"), is_client=False)
    assert server.negotiated.client_signature_scheme == 0x0804  # the trace's client signature verified
    assert server.peer_certificates[0].subject == chain_of(msgs[7])[0].subject


def test_s7_server_compatibility_mode():
    msgs = messages("7")
    chain = chain_of(msgs[3])
    signer = trace_signer(msgs[4], chain, is_server=True)
    cfg = server_config("7", chain, rsa_key())
    server, hook = make_server("7", [server_random(msgs[1])], cfg, profile=tls.TCP, signer=signer)
    events = server.receive(Level.INITIAL, msgs[0])
    assert hdr(events, Level.INITIAL) == msgs[1]  # the session id is echoed
    assert hdr(events, Level.HANDSHAKE) == b"".join(msgs[2:6])
    events += server.receive(Level.HANDSHAKE, msgs[6])
    check_secrets(server, events, secrets("7"), is_client=False)


def test_rsa_key_matches_trace_certificate():
    chain = chain_of(messages("3")[3])
    cfg = server_config("3", chain, rsa_key())
    assert cfg.certified_key is not None
    content = certificate_verify_content(True, bytes(32))
    sig = cfg.certified_key.sign(0x0804, content)
    verify_certificate_verify(chain[0], 0x0804, sig, content)


def test_encrypted_extensions_parse():
    # sanity: the trace's EncryptedExtensions are what our parser sees
    ee = EncryptedExtensions.parse(messages("3")[2][4:])
    assert ee.extension(ET.SERVER_NAME) == b""
