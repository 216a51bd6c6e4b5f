# Bad input to the engine: wrong levels, out-of-order, truncated and oversized
# messages, bad Finished / binder / signature, TLS 1.2 peers, certificate
# failures, RFC rules on HelloRetryRequest, QUIC profile rules, sticky
# failure, and hypothesis fuzzing of receive() in every state.  Each case
# asserts the specific alert; internal_error never appears (the fixture makes
# any stray exception propagate as itself, so it fails the test).
from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tls
import tls.engine
from tls import AlertDescription as AD
from tls import Group, Level
from tls import events as ev
from tls import extensions as X
from tls.enums import ExtensionType as ET
from tls.enums import HandshakeType as HT
from tls.messages import ClientHello, NewSessionTicket, ServerHello, handshake_header

from .pki import make_test_pki
from .tls_engine_driver import NOW, Pair


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", True)


@pytest.fixture(scope="module")
def pki():
    return make_test_pki()


def server_cfg(pki, **kw) -> tls.Config:
    return tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key, **kw)


def client_cfg(pki, **kw) -> tls.Config:
    return tls.Config(server_name="localhost", trust_store=pki.trust_store(), **kw)


def split(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i + 1 : i + 4], "big")
        out.append(data[i : i + 4 + n])
        i += 4 + n
    return out


def edit(msg_type: int, fn):
    """An intercept for Pair.handshake: apply fn(raw message) -> raw message
    to the first message of that type, wherever it travels."""
    done = []

    def intercept(to_server, level, data):
        if done:
            return data
        parts = split(data)
        for i, raw in enumerate(parts):
            if raw[0] == msg_type:
                parts[i] = fn(raw)
                done.append(True)
                break
        return b"".join(parts)

    return intercept


def body_edit(fn):
    return lambda raw: handshake_header(raw[0], len(fn(raw[4:]))) + fn(raw[4:])


def flip_last(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


def expect_alert(p: Pair, description: AD, intercept=None, side: str | None = None) -> tls.AlertError:
    with pytest.raises(tls.AlertError) as info:
        p.handshake(intercept)
    assert info.value.description == description, info.value
    if side is not None:
        assert getattr(p, side).engine.failure is info.value
    return info.value


def hello_with(exts_fn, base: ClientHello | None = None, **kw) -> bytes:
    """A ClientHello from our client with its extensions rewritten."""
    raw = base or ClientHello.parse(split(tls.Engine(tls.Config(server_name="localhost", verify_mode=0), True).start()[0].data)[0][4:])
    return dataclasses.replace(raw, extensions=exts_fn(list(raw.extensions)), **kw).encode()


def fresh_server(pki, profile=tls.TCP, **kw) -> tls.Engine:
    return tls.Engine(server_cfg(pki, **kw), False, profile, b"tp" if profile.transport_parameters else None, now=NOW)


def set_ext(exts, ext_type, data):
    return [(t, data if t == ext_type else d) for t, d in exts]


def drop_ext(exts, ext_type):
    return [(t, d) for t, d in exts if t != ext_type]


# ---------------------------------------------------------------------------
# levels and framing


def test_wrong_levels(pki):
    client = tls.Engine(client_cfg(pki), True, tls.TCP, now=NOW)
    client.start()
    with pytest.raises(tls.AlertError) as info:
        client.receive(Level.EARLY_DATA, b"\x02\x00\x00\x00")  # a client never reads 0-RTT
    assert info.value.description == AD.unexpected_message
    quic_server = fresh_server(pki, tls.QUIC, alpn_protocols=["h3"])
    with pytest.raises(tls.AlertError) as info:
        quic_server.receive(Level.EARLY_DATA, b"\x05\x00\x00\x00")  # no EndOfEarlyData in QUIC
    assert info.value.description == AD.unexpected_message


def test_old_level_after_moving_on(pki):
    p = Pair(client_cfg(pki), server_cfg(pki)).handshake()
    with pytest.raises(tls.AlertError) as info:
        p.client.engine.receive(Level.INITIAL, b"\x02")
    assert info.value.description == AD.unexpected_message


def test_leftover_bytes_at_a_key_change(pki):
    def add_garbage(to_server, level, data):
        return data + b"\x08\x00" if not to_server and level == Level.INITIAL else data

    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.unexpected_message, add_garbage, "client")


def test_future_level_is_buffered_then_capped(pki):
    client = tls.Engine(client_cfg(pki, max_handshake_buffer=2048), True, tls.TCP, now=NOW)
    client.start()
    assert client.receive(Level.HANDSHAKE, b"\x08\x00\x00\x02\x00\x00") == []  # kept for later
    with pytest.raises(tls.AlertError) as info:
        client.receive(Level.HANDSHAKE, bytes(3000))
    assert info.value.description == AD.unexpected_message


def test_oversized_message(pki):
    server = fresh_server(pki, max_client_hello=4096)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, b"\x01\x01\x00\x00")  # announces 64 KiB
    assert info.value.description == AD.decode_error
    # every other message: max_handshake_buffer (a ServerHello header, here)
    client = tls.Engine(client_cfg(pki, max_handshake_buffer=4096), True, tls.TCP, now=NOW)
    client.start()
    with pytest.raises(tls.AlertError) as info:
        client.receive(Level.INITIAL, b"\x02\x00\x10\x01")
    assert info.value.description == AD.decode_error


def test_truncated_and_trailing(pki):
    raw = hello_with(lambda e: e)
    server = fresh_server(pki)
    # a header that lies: the body is cut short inside the hello
    cut = handshake_header(1, 40) + raw[4:44]
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, cut)
    assert info.value.description == AD.decode_error
    server = fresh_server(pki)
    padded = handshake_header(1, len(raw) - 4 + 3) + raw[4:] + b"\x00\x00\x00"
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, padded)
    assert info.value.description == AD.decode_error


def test_partial_message_waits(pki):
    raw = hello_with(lambda e: e)
    server = fresh_server(pki)
    assert server.receive(Level.INITIAL, raw[:10]) == []
    assert any(isinstance(e, ev.HandshakeDataReady) for e in server.receive(Level.INITIAL, raw[10:]))


# ---------------------------------------------------------------------------
# order


@pytest.mark.parametrize("drop", [HT.ENCRYPTED_EXTENSIONS, HT.CERTIFICATE, HT.CERTIFICATE_VERIFY])
def test_missing_server_message(pki, drop):
    def intercept(to_server, level, data):
        return b"".join(m for m in split(data) if m[0] != drop) if not to_server else data

    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.unexpected_message, intercept, "client")


def test_out_of_order_server_flight(pki):
    def swap(to_server, level, data):
        if to_server or level != Level.HANDSHAKE:
            return data
        ee, cert, cv, fin = split(data)
        return ee + cv + cert + fin

    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.unexpected_message, swap, "client")


def test_client_hello_twice(pki):
    raw = hello_with(lambda e: e)
    server = fresh_server(pki)
    server.receive(Level.INITIAL, raw)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.HANDSHAKE, raw)
    assert info.value.description == AD.unexpected_message


def test_unknown_message_type(pki):
    server = fresh_server(pki)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, b"\xfe\x00\x00\x00")  # message_hash never travels
    assert info.value.description == AD.unexpected_message


# ---------------------------------------------------------------------------
# integrity


def test_bad_server_finished(pki):
    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.decrypt_error, edit(HT.FINISHED, flip_last), "client")


def test_bad_client_finished(pki):
    done = []

    def intercept(to_server, level, data):
        if to_server and level == Level.HANDSHAKE and not done:
            done.append(1)
            return flip_last(data)
        return data

    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.decrypt_error, intercept, "server")


def test_finished_wrong_length(pki):
    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.decode_error, edit(HT.FINISHED, body_edit(lambda b: b[:-1])), "client")


def test_bad_signature(pki):
    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.decrypt_error, edit(HT.CERTIFICATE_VERIFY, flip_last), "client")


def test_signature_scheme_not_offered(pki):
    # rsa_pkcs1_sha256 in CertificateVerify is never legal (RFC 8446 §4.2.3)
    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.illegal_parameter,
                 edit(HT.CERTIFICATE_VERIFY, body_edit(lambda b: b"\x04\x01" + b[2:])), "client")


def test_bad_binder(pki):
    store = tls.TicketStore()
    scfg = server_cfg(pki)
    Pair(client_cfg(pki, ticket_store=store), scfg).handshake()
    expect_alert(Pair(client_cfg(pki, ticket_store=store), scfg, now=NOW + 1), AD.decrypt_error,
                 edit(HT.CLIENT_HELLO, flip_last), "server")


def test_bad_external_psk_binder():
    psk = tls.ExternalPsk(b"id", b"s" * 32)
    wrong = tls.ExternalPsk(b"id", b"x" * 32)
    p = Pair(tls.Config(server_name="s", psks=[wrong], verify_mode=0), tls.Config(psks=[psk]))
    expect_alert(p, AD.decrypt_error, side="server")


# ---------------------------------------------------------------------------
# versions


def test_tls12_only_client_hello(pki):
    ch = ClientHello(b"\x11" * 32, b"", [0xC02F, 0x009C], [(ET.SUPPORTED_GROUPS, X.encode_supported_groups([23]))])
    server = fresh_server(pki)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, ch.encode())
    assert info.value.description == AD.protocol_version


def test_client_hello_without_tls13(pki):
    raw = hello_with(lambda e: set_ext(e, ET.SUPPORTED_VERSIONS, X.encode_supported_versions_client([0x0303])))
    server = fresh_server(pki)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, raw)
    assert info.value.description == AD.protocol_version


def test_tls12_server_hello(pki):
    def tls12(raw):
        sh = ServerHello.parse(raw[4:])
        return dataclasses.replace(sh, extensions=drop_ext(sh.extensions, ET.SUPPORTED_VERSIONS)).encode()

    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.protocol_version, edit(HT.SERVER_HELLO, tls12), "client")


def sh_edit(fn):
    def apply(raw):
        return fn(ServerHello.parse(raw[4:])).encode()

    return edit(HT.SERVER_HELLO, apply)


@pytest.mark.parametrize(
    "change, alert",
    [
        (lambda sh: dataclasses.replace(sh, extensions=set_ext(sh.extensions, ET.SUPPORTED_VERSIONS, b"\x03\x03")), AD.illegal_parameter),
        (lambda sh: dataclasses.replace(sh, legacy_session_id_echo=b"\x01" * 32), AD.illegal_parameter),
        (lambda sh: dataclasses.replace(sh, cipher_suite=0x1304), AD.illegal_parameter),
        (lambda sh: dataclasses.replace(sh, legacy_compression_method=1), AD.illegal_parameter),
        (lambda sh: dataclasses.replace(sh, extensions=drop_ext(sh.extensions, ET.KEY_SHARE)), AD.missing_extension),
        (lambda sh: dataclasses.replace(sh, extensions=sh.extensions + [(0x7777, b"")]), AD.unsupported_extension),
        (lambda sh: dataclasses.replace(sh, extensions=sh.extensions + [(ET.SERVER_NAME, b"")]), AD.illegal_parameter),
        (lambda sh: dataclasses.replace(sh, extensions=sh.extensions + [(ET.PRE_SHARED_KEY, b"\x00\x00")]), AD.unsupported_extension),
        (lambda sh: dataclasses.replace(sh, extensions=set_ext(sh.extensions, ET.KEY_SHARE, X.encode_key_share_server((Group.SECP384R1, b"\x04" + bytes(96))))), AD.illegal_parameter),
        (lambda sh: dataclasses.replace(sh, extensions=set_ext(sh.extensions, ET.KEY_SHARE, X.encode_key_share_server((Group.X25519, bytes(32))))), AD.illegal_parameter),
    ],
    ids=["version", "session-id", "suite", "compression", "no-key-share", "unknown-ext", "forbidden-ext", "unoffered-psk", "unoffered-group", "zero-x25519"],
)
def test_bad_server_hello(pki, change, alert):
    cfg = client_cfg(pki, key_share_groups=[Group.X25519], groups=[Group.X25519, Group.SECP256R1])
    expect_alert(Pair(cfg, server_cfg(pki)), alert, sh_edit(change), "client")


# ---------------------------------------------------------------------------
# HelloRetryRequest rules (RFC 8446 §4.1.4, §4.2.8)


def hrr_pair(pki, **server_kw):
    return Pair(client_cfg(pki, key_share_groups=[Group.X25519]), server_cfg(pki, groups=[Group.SECP256R1], **server_kw))


def test_hrr_for_group_already_shared(pki):
    change = lambda sh: dataclasses.replace(sh, extensions=set_ext(sh.extensions, ET.KEY_SHARE, X.encode_key_share_hrr(Group.X25519)))  # noqa: E731
    expect_alert(hrr_pair(pki), AD.illegal_parameter, sh_edit(change), "client")


def test_hrr_for_group_not_offered(pki):
    cfg = client_cfg(pki, key_share_groups=[Group.X25519], groups=[Group.X25519, Group.SECP384R1])
    expect_alert(Pair(cfg, server_cfg(pki, groups=[Group.SECP256R1, Group.SECP384R1])), AD.illegal_parameter,
                 sh_edit(lambda sh: dataclasses.replace(sh, extensions=set_ext(sh.extensions, ET.KEY_SHARE, X.encode_key_share_hrr(Group.SECP256R1)))),
                 "client")


def test_hrr_without_change(pki):
    change = lambda sh: dataclasses.replace(sh, extensions=drop_ext(sh.extensions, ET.KEY_SHARE))  # noqa: E731
    expect_alert(hrr_pair(pki), AD.illegal_parameter, sh_edit(change), "client")


def test_second_hrr(pki):
    no_compat = dataclasses.replace(tls.TCP, middlebox_compat=False)  # the same (empty) session id twice
    p = Pair(client_cfg(pki, key_share_groups=[Group.X25519]), server_cfg(pki, groups=[Group.SECP256R1]), no_compat)
    captured = []

    def keep(to_server, level, data):
        if not to_server and level == Level.INITIAL and not captured:
            captured.append(data)
        return data

    p.handshake(keep)
    client = tls.Engine(client_cfg(pki, key_share_groups=[Group.X25519]), True, no_compat, now=NOW)
    client.start()
    hrr = ServerHello.parse(captured[0][4:])
    client.receive(Level.INITIAL, captured[0])
    again = dataclasses.replace(hrr, extensions=set_ext(hrr.extensions, ET.KEY_SHARE, X.encode_key_share_hrr(Group.SECP384R1))).encode()
    with pytest.raises(tls.AlertError) as info:
        client.receive(Level.INITIAL, again)
    assert info.value.description == AD.unexpected_message


def test_second_client_hello_must_echo_cookie(pki):
    def drop_cookie(raw):
        ch = ClientHello.parse(raw[4:])
        if ch.extension(ET.COOKIE) is None:
            return raw
        return dataclasses.replace(ch, extensions=drop_ext(ch.extensions, ET.COOKIE)).encode()

    p = hrr_pair(pki, hrr_cookie_length=16)
    seen = []

    def intercept(to_server, level, data):
        if to_server and level == Level.INITIAL:
            seen.append(1)
            if len(seen) == 2:
                return drop_cookie(data)
        return data

    expect_alert(p, AD.illegal_parameter, intercept, "server")


def test_second_client_hello_without_requested_share(pki):
    p = hrr_pair(pki)
    seen = []

    def intercept(to_server, level, data):
        if to_server and level == Level.INITIAL:
            seen.append(1)
            if len(seen) == 2:
                ch = ClientHello.parse(data[4:])
                shares = X.encode_key_share_client([(Group.X25519, bytes(range(1, 33)))])
                return dataclasses.replace(ch, extensions=set_ext(ch.extensions, ET.KEY_SHARE, shares)).encode()
        return data

    expect_alert(p, AD.illegal_parameter, intercept, "server")


# ---------------------------------------------------------------------------
# ClientHello rules on the server


@pytest.mark.parametrize(
    "exts_fn, alert",
    [
        (lambda e: drop_ext(e, ET.SIGNATURE_ALGORITHMS), AD.missing_extension),
        (lambda e: drop_ext(e, ET.KEY_SHARE), AD.missing_extension),
        (lambda e: e + [(ET.KEY_SHARE, b"\x00\x00")], AD.illegal_parameter),  # duplicate
        (lambda e: [(ET.PRE_SHARED_KEY, b"\x00")] + e, AD.illegal_parameter),  # psk not last
        (lambda e: e + [(ET.PADDING, b"\x00\x01")], AD.illegal_parameter),
        (lambda e: set_ext(e, ET.KEY_SHARE, X.encode_key_share_client([(Group.SECP256R1, b"\x04" + bytes(64))])), AD.illegal_parameter),
        (lambda e: set_ext(e, ET.SUPPORTED_GROUPS, X.encode_supported_groups([0x0100])), AD.illegal_parameter),
        (lambda e: set_ext(e, ET.SIGNATURE_ALGORITHMS, X.encode_signature_algorithms([0x0201])), AD.handshake_failure),
        (lambda e: set_ext(e, ET.SUPPORTED_GROUPS, b"\x00\x03\x00\x1d\x00"), AD.decode_error),
        (lambda e: e + [(0x7A7A, b"grease"), (ET.POST_HANDSHAKE_AUTH, b"")], None),  # ignored / refused silently
    ],
    ids=["no-sigalgs", "no-key-share", "dup-ext", "psk-not-last", "bad-padding", "share-bad-point", "share-not-in-groups", "no-common-scheme", "odd-groups", "unknown-ignored"],
)
def test_client_hello_rules(pki, exts_fn, alert):
    server = fresh_server(pki)
    raw = hello_with(exts_fn)
    if alert is None:
        assert any(isinstance(e, ev.HandshakeDataReady) for e in server.receive(Level.INITIAL, raw))
        return
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, raw)
    assert info.value.description == alert, info.value


def test_client_hello_bad_compression(pki):
    server = fresh_server(pki)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, hello_with(lambda e: e, legacy_compression_methods=b"\x00\x01"))
    assert info.value.description == AD.illegal_parameter


def test_client_hello_no_common_suite(pki):
    server = fresh_server(pki, cipher_suites=[0x1302])
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, hello_with(lambda e: e, cipher_suites=[0x1301]))
    assert info.value.description == AD.handshake_failure


# ---------------------------------------------------------------------------
# QUIC profile rules


def test_quic_requires_transport_parameters(pki):
    server = fresh_server(pki, tls.QUIC, alpn_protocols=["h3"])
    raw = hello_with(lambda e: e + [(ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, X.encode_alpn([b"h3"]))], legacy_session_id=b"")
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, raw)
    assert info.value.description == AD.missing_extension

    def drop_tp(raw):
        from tls.messages import EncryptedExtensions

        ee = EncryptedExtensions.parse(raw[4:])
        return EncryptedExtensions(drop_ext(ee.extensions, ET.QUIC_TRANSPORT_PARAMETERS)).encode()

    p = Pair(client_cfg(pki, alpn_protocols=["h3"]), server_cfg(pki, alpn_protocols=["h3"]), tls.QUIC)
    expect_alert(p, AD.missing_extension, edit(HT.ENCRYPTED_EXTENSIONS, drop_tp), "client")


def test_quic_refuses_session_id(pki):
    server = fresh_server(pki, tls.QUIC, alpn_protocols=["h3"])
    raw = hello_with(
        lambda e: e + [(ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, X.encode_alpn([b"h3"])), (ET.QUIC_TRANSPORT_PARAMETERS, b"")],
        legacy_session_id=b"\x01" * 32,
    )
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, raw)
    assert info.value.description == AD.illegal_parameter


def test_quic_requires_alpn(pki):
    server = fresh_server(pki, tls.QUIC, alpn_protocols=["h3"])
    raw = hello_with(lambda e: e + [(ET.QUIC_TRANSPORT_PARAMETERS, b"")], legacy_session_id=b"")
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, raw)
    assert info.value.description == AD.no_application_protocol
    with pytest.raises(tls.UsageError):
        tls.Engine(tls.Config(server_name="x"), True, tls.QUIC, b"tp")  # a QUIC client needs ALPN


def test_quic_key_update_message_is_unexpected(pki):
    p = Pair(client_cfg(pki, alpn_protocols=["h3"]), server_cfg(pki, alpn_protocols=["h3"]), tls.QUIC).handshake()
    with pytest.raises(tls.AlertError) as info:
        p.client.engine.receive(Level.APPLICATION, b"\x18\x00\x00\x01\x00")
    assert info.value.description == AD.unexpected_message


def test_quic_ticket_with_wrong_max_early_data(pki):
    p = Pair(client_cfg(pki, alpn_protocols=["h3"]), server_cfg(pki, alpn_protocols=["h3"], session_tickets=0), tls.QUIC).handshake()
    nst = NewSessionTicket(60, 1, b"\x00", b"ticket", [(ET.EARLY_DATA, X.encode_max_early_data_size(1024))]).encode()
    with pytest.raises(tls.AlertError) as info:
        p.client.engine.receive(Level.APPLICATION, nst)
    assert info.value.description == AD.illegal_parameter


def test_post_handshake_certificate_request_refused(pki):
    p = Pair(client_cfg(pki), server_cfg(pki)).handshake()
    cr = b"\x0d\x00\x00\x0b\x01\x01\x00\x06\x00\x0d\x00\x02\x04\x03"[:4] + b"\x01\x01\x00\x06\x00\x0d\x00\x02\x04\x03"
    with pytest.raises(tls.AlertError) as info:
        p.client.engine.receive(Level.APPLICATION, handshake_header(13, len(cr[4:])) + cr[4:])
    assert info.value.description == AD.unexpected_message


def test_key_update_bad_value_and_alignment(pki):
    p = Pair(client_cfg(pki), server_cfg(pki)).handshake()
    with pytest.raises(tls.AlertError) as info:
        p.client.engine.receive(Level.APPLICATION, b"\x18\x00\x00\x01\x02")
    assert info.value.description == AD.illegal_parameter
    p = Pair(client_cfg(pki), server_cfg(pki)).handshake()
    with pytest.raises(tls.AlertError) as info:  # data after KeyUpdate in the same record
        p.client.engine.receive(Level.APPLICATION, b"\x18\x00\x00\x01\x00\x18\x00")
    assert info.value.description == AD.unexpected_message


# ---------------------------------------------------------------------------
# certificates


@pytest.mark.parametrize(
    "leaf, alert",
    [
        ("expired", AD.certificate_expired),
        ("not_yet_valid", AD.certificate_expired),
        ("wrong_host", AD.bad_certificate),
        ("unknown_ca", AD.unknown_ca),
        ("bad_usage", AD.unsupported_certificate),
        ("self_signed", AD.unknown_ca),
    ],
)
def test_server_certificate_failures(pki, leaf, alert):
    bad = getattr(pki, leaf)
    p = Pair(client_cfg(pki), tls.Config(certificate_chain=bad.chain, private_key=bad.key))
    expect_alert(p, alert, side="client")


def test_self_signed_trusted(pki):
    leaf = pki.self_signed
    trust = tls.certificates.TrustStore.from_certs([leaf.cert])
    p = Pair(tls.Config(server_name="localhost", trust_store=trust), tls.Config(certificate_chain=leaf.chain, private_key=leaf.key))
    p.handshake()
    assert p.client.engine.handshake_complete


def test_no_verification_accepts_anything(pki):
    bad = pki.expired
    p = Pair(tls.Config(server_name="localhost", verify_mode=tls.VerifyMode.NONE), tls.Config(certificate_chain=bad.chain, private_key=bad.key))
    assert p.handshake().client.engine.handshake_complete


def test_unparsable_server_certificate(pki):
    def garble(raw):
        return raw[:20] + b"\xff\xff\xff" + raw[23:]

    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.bad_certificate, edit(HT.CERTIFICATE, garble), "client")


def test_empty_server_certificate(pki):
    expect_alert(Pair(client_cfg(pki), server_cfg(pki)), AD.decode_error,
                 edit(HT.CERTIFICATE, lambda raw: b"\x0b\x00\x00\x04\x00\x00\x00\x00"), "client")


@pytest.mark.parametrize(
    "leaf, trust, alert",
    [
        ("expired", "p256", AD.certificate_expired),  # a server certificate: expired first
        ("client", "p384", AD.unknown_ca),
        ("server", "p256", AD.unsupported_certificate),  # serverAuth only, no clientAuth
    ],
)
def test_client_certificate_failures(pki, leaf, trust, alert):
    bad = getattr(pki, leaf)
    p = Pair(
        client_cfg(pki, certificate_chain=bad.chain, private_key=bad.key),
        server_cfg(pki, verify_mode=tls.VerifyMode.REQUIRED, trust_store=make_test_pki(trust).trust_store()),
    )
    expect_alert(p, alert, side="server")


# ---------------------------------------------------------------------------
# sticky failure, peer alerts, usage errors


def test_sticky_failure(pki):
    p = Pair(client_cfg(pki), server_cfg(pki))
    err = expect_alert(p, AD.decrypt_error, edit(HT.FINISHED, flip_last), "client")
    c = p.client.engine
    for call in (lambda: c.receive(Level.HANDSHAKE, b"\x14\x00\x00\x20" + bytes(32)),
                 lambda: c.receive(Level.APPLICATION, b""),
                 lambda: c.export_keying_material("x", b"", 8),
                 lambda: c.key_update(False)):
        with pytest.raises(tls.AlertError) as info:
            call()
        assert info.value is err


def test_peer_alert_is_sticky(pki):
    client = tls.Engine(client_cfg(pki), True, tls.TCP, now=NOW)
    client.start()
    with pytest.raises(tls.PeerAlert) as info:
        client.receive_alert(AD.handshake_failure)
    assert info.value.description == AD.handshake_failure
    with pytest.raises(tls.PeerAlert):
        client.receive(Level.INITIAL, b"\x02")


def test_usage_errors(pki):
    with pytest.raises(tls.UsageError):
        tls.Engine(tls.Config(), False)  # a server without credentials
    with pytest.raises(tls.UsageError):
        tls.Engine(client_cfg(pki), True, tls.QUIC)  # QUIC needs transport parameters
    with pytest.raises(tls.UsageError):
        tls.Engine(client_cfg(pki), True, tls.TCP, b"tp")
    with pytest.raises(tls.UsageError):
        tls.Engine(tls.Config(), True)  # verification needs a server name
    for bad in (dict(cipher_suites=[0x1304]), dict(groups=[0x0019]), dict(key_share_groups=[Group.SECP384R1], groups=[Group.X25519]),
                dict(signature_schemes=[0x0401]), dict(alpn_protocols=[""]), dict(ticket_lifetime=10**7),
                dict(verify_mode=7), dict(max_early_data=-1), dict(private_key=b"x"), dict(certificate_chain=b"junk"),
                dict(psk_modes=[3]), dict(cafile="/nonexistent"), dict(server_name="héllo")):
        with pytest.raises(tls.UsageError):
            tls.Config(**bad)
    with pytest.raises(tls.UsageError):
        tls.Config(certificate_chain=pki.server.chain, private_key=pki.client.key)  # key does not match
    started = tls.Engine(client_cfg(pki), True, tls.TCP, now=NOW)
    started.start()
    with pytest.raises(tls.UsageError):
        started.start()


def test_time_is_needed_only_when_used(pki):
    # a client that verifies certificates needs the time at the Certificate
    p = Pair(client_cfg(pki), server_cfg(pki))
    p.client.engine._now_source = None
    with pytest.raises(tls.UsageError):
        p.handshake()
    assert isinstance(p.client.engine.failure, tls.UsageError)


# ---------------------------------------------------------------------------
# hypothesis: every state, random and mutated input -> only AlertError


_SCRIPTS: dict[bool, tuple] = {}
P256_CLIENT = (7).to_bytes(32, "big")
P256_SERVER = (11).to_bytes(32, "big")


def _det_entropy(seed: int):
    counter = [0]

    def entropy(n: int) -> bytes:
        import hashlib

        counter[0] += 1
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{seed}/{counter[0]}/{len(out)}".encode()).digest()
        return out[:n]

    return entropy


def _script(hrr: bool):
    """One deterministic handshake (Ed25519 signatures are deterministic), with
    client auth (and a HelloRetryRequest if `hrr`), recorded message by
    message: [(to_server, level, raw)]."""
    if hrr in _SCRIPTS:
        return _SCRIPTS[hrr]
    pki = make_test_pki("ed25519")
    ccfg, scfg = _fuzz_configs(pki, hrr)
    p = Pair(ccfg, scfg, client_kw=_client_kw(), server_kw=_server_kw())
    log = []

    def record(to_server, level, data):
        for raw in split(data):
            log.append((to_server, level, raw))
        return data

    p.handshake(record)
    _SCRIPTS[hrr] = (pki, log)
    return _SCRIPTS[hrr]


def _fuzz_configs(pki, hrr: bool):
    ccfg = tls.Config(server_name="localhost", trust_store=pki.trust_store(), certificate_chain=pki.client.chain,
                      private_key=pki.client.key, key_share_groups=[Group.X25519], ticket_store=tls.TicketStore())
    scfg = tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key, verify_mode=tls.VerifyMode.REQUIRED,
                      trust_store=pki.trust_store(), ticket_sealer=tls.TicketSealer(NOW, rng=_det_entropy(9)),
                      groups=[Group.SECP256R1] if hrr else tls.config.DEFAULT_GROUPS, hrr_cookie_length=8 if hrr else 0)
    return ccfg, scfg


def _client_kw():
    return dict(entropy=_det_entropy(1), key_share_private_keys={Group.X25519: b"\x01" * 32, Group.SECP256R1: P256_CLIENT})


def _server_kw():
    return dict(entropy=_det_entropy(2), key_share_private_keys={Group.X25519: b"\x02" * 32, Group.SECP256R1: P256_SERVER})


def _engine_at(role: str, steps: int, hrr: bool = False):
    """A fresh engine fed the first `steps` messages addressed to it."""
    pki, log = _script(hrr)
    ccfg, scfg = _fuzz_configs(pki, hrr)
    if role == "client":
        e = tls.Engine(ccfg, True, tls.TCP, now=NOW, **_client_kw())
        e.start()
        mine = [(lvl, raw) for to_server, lvl, raw in log if not to_server]
    else:
        e = tls.Engine(scfg, False, tls.TCP, now=NOW, **_server_kw())
        mine = [(lvl, raw) for to_server, lvl, raw in log if to_server]
    for level, raw in mine[:steps]:
        e.receive(level, raw)
    nxt = mine[steps] if steps < len(mine) else (Level.APPLICATION, b"\x18\x00\x00\x01\x00")
    return e, nxt


# (role, messages already delivered, with HRR) -> the state reached
STATES = (
    [("client", n, False) for n in range(7)]
    + [("server", n, False) for n in range(5)]
    + [("client", 1, True), ("server", 1, True)]
)


def test_script_reaches_every_state():
    names = {(r, n, h): _engine_at(r, n, h)[0].state_name for r, n, h in STATES}
    assert names[("client", 0, False)] == "ExpectServerHello"
    assert names[("client", 2, False)] == "ExpectCertificateOrCertRequest"
    assert names[("client", 5, False)] == "ExpectFinished"
    assert names[("client", 6, False)] == "ClientConnected"
    assert names[("server", 0, False)] == "ExpectClientHello"
    assert names[("server", 1, False)] == "ExpectClientCertificate"
    assert names[("server", 3, False)] == "ExpectClientFinished"
    assert names[("server", 4, False)] == "ServerConnected"
    assert names[("client", 1, True)] == "ExpectServerHello" and names[("server", 1, True)] == "ExpectClientHelloAfterHrr"
    assert _engine_at("client", 6)[1][1][0] == HT.NEW_SESSION_TICKET
    e, _ = _engine_at("client", 7, True)
    assert e.handshake_complete and e.negotiated.hello_retry


mutations = st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=4)


def _mutate(raw: bytes, edits, cut) -> bytes:
    data = bytearray(raw)
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    return bytes(data)


def _feed(role: str, steps: int, hrr: bool, data: bytes, level=None) -> None:
    e, (nlevel, _) = _engine_at(role, steps, hrr)
    try:
        e.receive(level if level is not None else nlevel, data)
    except tls.AlertError as exc:
        assert exc.description != AD.internal_error, exc
        with pytest.raises(tls.AlertError):
            e.receive(nlevel, b"")  # sticky


@pytest.mark.parametrize("role, steps, hrr", STATES, ids=lambda x: str(x))
@settings(max_examples=int(os.environ.get("PYQUIC_FUZZ_EXAMPLES", "120")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=mutations, cut=st.one_of(st.none(), st.integers(0, 5000)), extra=st.binary(max_size=8))
def test_fuzz_mutated_messages(role, steps, hrr, edits, cut, extra):
    e, (level, raw) = _engine_at(role, steps, hrr)
    _feed(role, steps, hrr, _mutate(raw, edits, cut) + extra)


@pytest.mark.parametrize("role, steps, hrr", [("client", 0, False), ("client", 1, False), ("server", 0, False), ("server", 3, False), ("server", 1, True)], ids=lambda x: str(x))
@settings(max_examples=int(os.environ.get("PYQUIC_FUZZ_EXAMPLES", "120")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg_type=st.sampled_from([1, 2, 4, 5, 8, 11, 13, 15, 20, 24, 254, 0, 99]), body=st.binary(max_size=200))
def test_fuzz_random_messages(role, steps, hrr, msg_type, body):
    _feed(role, steps, hrr, handshake_header(msg_type, len(body)) + body)


def test_skipped_level_leftovers(pki):
    """0-RTT bytes buffered at EARLY_DATA (TCP server) while the handshake
    goes straight to HANDSHAKE: left over at a level the engine moved past."""
    server = fresh_server(pki)
    raw = hello_with(lambda e: e)
    assert server.receive(Level.EARLY_DATA, b"\x05\x00") == []  # buffered: no keys yet
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, raw)
    assert info.value.description == AD.unexpected_message


def test_stray_exception_becomes_internal_error(pki, monkeypatch):
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", False)

    def broken_signer(scheme, content):
        raise RuntimeError("HSM unplugged")

    server = tls.Engine(server_cfg(pki), False, tls.TCP, now=NOW, signer=broken_signer)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, hello_with(lambda e: e))
    assert info.value.description == AD.internal_error
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(tls.AlertError) as again:
        server.receive(Level.INITIAL, b"")
    assert again.value is info.value
    # and with the flag on (as in every other test), the bug shows as itself
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", True)
    server = tls.Engine(server_cfg(pki), False, tls.TCP, now=NOW, signer=broken_signer)
    with pytest.raises(RuntimeError):
        server.receive(Level.INITIAL, hello_with(lambda e: e))


def test_failure_carries_partial_events(pki):
    p = Pair(client_cfg(pki), server_cfg(pki))
    err = expect_alert(p, AD.decrypt_error, edit(HT.FINISHED, flip_last), "client")
    assert isinstance(err.events, list)  # what was produced before the failure, for the carrier
