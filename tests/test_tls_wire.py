# tls.codec / tls.messages / tls.extensions: every RFC 8448 handshake message
# parsed and re-encoded byte for byte with selected fields checked, the PSK
# binder truncation against RFC 8448 §4, round trips of every extension
# codec, every RFC 8446 vector bound as an alert, and the extension table.
from __future__ import annotations

from contextlib import contextmanager

import pytest

from tls import extensions as ext
from tls.codec import Reader, Writer
from tls.enums import AlertDescription as AD
from tls.enums import ExtensionType as ET
from tls.enums import Group, HandshakeType, SignatureScheme
from tls.errors import AlertError, UsageError
from tls.messages import (
    HRR_RANDOM,
    MESSAGE_CLASSES,
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    KeyUpdate,
    NewSessionTicket,
    ServerHello,
    build_client_hello_with_binders,
    handshake_header,
    parse_message,
    replace_binders,
    split_handshake_messages,
    truncated_client_hello,
)

from .vectors import h, load

SECTIONS = ["3", "4", "5", "6", "7"]


def section(name: str) -> dict:
    return load("rfc8448.json")["sections"][name]


def messages(name: str) -> list[dict]:
    return section(name)["summary"]["handshake_messages"]


def parsed(name: str, index: int):
    raw = h(messages(name)[index]["hex"])
    return parse_message(raw[0], raw[4:])


ALL_MESSAGES = [(s, i) for s in SECTIONS for i in range(len(messages(s)))]

TYPE_NAMES = {
    "ClientHello": HandshakeType.CLIENT_HELLO,
    "ServerHello": HandshakeType.SERVER_HELLO,
    "HelloRetryRequest": HandshakeType.SERVER_HELLO,
    "EncryptedExtensions": HandshakeType.ENCRYPTED_EXTENSIONS,
    "Certificate": HandshakeType.CERTIFICATE,
    "CertificateRequest": HandshakeType.CERTIFICATE_REQUEST,
    "CertificateVerify": HandshakeType.CERTIFICATE_VERIFY,
    "Finished": HandshakeType.FINISHED,
    "NewSessionTicket": HandshakeType.NEW_SESSION_TICKET,
    "EndOfEarlyData": HandshakeType.END_OF_EARLY_DATA,
}


@contextmanager
def alert(description: AD):
    """pytest.raises(AlertError) that also checks the alert description."""
    with pytest.raises(AlertError) as info:
        yield info
    assert info.value.description == description, info.value


# ---------------------------------------------------------------------------
# RFC 8448: parse and re-encode every message
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,index", ALL_MESSAGES, ids=[f"s{s}-{i}" for s, i in ALL_MESSAGES])
def test_rfc8448_roundtrip(name, index):
    m = messages(name)[index]
    raw = h(m["hex"])
    # The summary hex includes the 4-byte header: type and u24 length.
    assert raw[0] == TYPE_NAMES[m["type"]]
    assert int.from_bytes(raw[1:4], "big") == len(raw) - 4
    msg = parse_message(raw[0], raw[4:])
    assert type(msg) is MESSAGE_CLASSES[raw[0]]
    assert msg.encode() == raw
    assert msg.encode_body() == raw[4:]
    if "random" in m:
        assert msg.random == h(m["random"])
    if isinstance(msg, ServerHello):
        assert msg.is_hello_retry_request == (m["type"] == "HelloRetryRequest")
    # Every extension in the traces is allowed where it appears.
    if isinstance(msg, ClientHello):
        ext.check_allowed(HandshakeType.CLIENT_HELLO, msg.extensions)
    elif isinstance(msg, ServerHello):
        ext.check_allowed(msg.msg_type, msg.extensions, hello_retry_request=msg.is_hello_retry_request)
    elif isinstance(msg, (EncryptedExtensions, CertificateRequest, NewSessionTicket)):
        ext.check_allowed(msg.msg_type, msg.extensions)


@pytest.mark.parametrize("name", SECTIONS)
def test_rfc8448_split_stream(name):
    raws = [h(m["hex"]) for m in messages(name)]
    stream = b"".join(raws)
    frames, rest = split_handshake_messages(stream, 1 << 16)
    assert rest == b""
    assert [f.raw for f in frames] == raws
    assert [f.body for f in frames] == [r[4:] for r in raws]
    assert [f.msg_type for f in frames] == [r[0] for r in raws]
    # Byte-at-a-time-ish delivery (chunks of 7) yields the same messages.
    got, buf = [], b""
    for i in range(0, len(stream), 7):
        frames, buf = split_handshake_messages(buf + stream[i : i + 7], 1 << 16)
        got += [f.raw for f in frames]
    assert got == raws and buf == b""


def test_split_partial_and_too_large():
    raw = h(messages("3")[0]["hex"])
    frames, rest = split_handshake_messages(raw[:3], 100)
    assert frames == [] and rest == raw[:3]
    frames, rest = split_handshake_messages(raw + raw[:10], 1000)
    assert [f.raw for f in frames] == [raw] and rest == raw[:10]
    # The cap applies as soon as the header is visible, before the body arrives.
    with alert(AD.decode_error) as info:
        split_handshake_messages(raw[:4], len(raw) - 5)
    assert "too large" in info.value.reason
    frames, _ = split_handshake_messages(raw, len(raw) - 4)  # exactly at the cap is fine
    assert len(frames) == 1
    frames, rest = split_handshake_messages(memoryview(b"\x05\x00\x00\x00"), 0)
    assert frames[0].msg_type == 5 and frames[0].body == b"" and rest == b""


# ---------------------------------------------------------------------------
# RFC 8448: selected field values
# ---------------------------------------------------------------------------
def test_s3_client_hello_fields():
    ch = parsed("3", 0)
    kx = section("3")["summary"]["key_exchange"]
    assert ch.legacy_version == 0x0303
    assert ch.legacy_session_id == b""
    assert ch.cipher_suites == [0x1301, 0x1303, 0x1302]
    assert ch.legacy_compression_methods == b"\x00"
    assert ext.parse_server_name(ch.extension(ET.SERVER_NAME)) == "server"
    assert ext.parse_supported_versions_client(ch.extension(ET.SUPPORTED_VERSIONS)) == [0x0304]
    assert ext.parse_key_share_client(ch.extension(ET.KEY_SHARE)) == [(Group.X25519, h(kx["client"][0]["public_key"]))]
    groups = ext.parse_supported_groups(ch.extension(ET.SUPPORTED_GROUPS))
    assert groups[:3] == [Group.X25519, Group.SECP256R1, Group.SECP384R1] and 0x0100 in groups  # ffdhe2048
    schemes = ext.parse_signature_algorithms(ch.extension(ET.SIGNATURE_ALGORITHMS))
    assert schemes[0] == SignatureScheme.ECDSA_SECP256R1_SHA256 and SignatureScheme.RSA_PSS_RSAE_SHA256 in schemes
    assert ext.parse_psk_key_exchange_modes(ch.extension(ET.PSK_KEY_EXCHANGE_MODES)) == [1]
    assert ext.parse_record_size_limit(ch.extension(ET.RECORD_SIZE_LIMIT)) == 0x4001
    assert ch.extension(ET.SESSION_TICKET) == b""  # TLS 1.2 extension: unknown to the table, ignored in CH
    assert ch.extension(ET.PRE_SHARED_KEY) is None
    with alert(AD.missing_extension):
        truncated_client_hello(ch.encode())


def test_s3_server_flight_fields():
    s = section("3")["summary"]
    sh = parsed("3", 1)
    assert not sh.is_hello_retry_request
    assert sh.cipher_suite == 0x1301 and sh.legacy_session_id_echo == b"" and sh.legacy_compression_method == 0
    assert ext.parse_key_share_server(sh.extension(ET.KEY_SHARE)) == (Group.X25519, h(s["key_exchange"]["server"][0]["public_key"]))
    assert ext.parse_supported_versions_server(sh.extension(ET.SUPPORTED_VERSIONS)) == 0x0304
    ee = parsed("3", 2)
    assert ee.extension_types() == [ET.SUPPORTED_GROUPS, ET.RECORD_SIZE_LIMIT, ET.SERVER_NAME]
    ext.expect_empty(ee.extension(ET.SERVER_NAME), "server_name")
    cert = parsed("3", 3)
    assert cert.request_context == b"" and len(cert.entries) == 1
    assert cert.entries[0].data[:2] == b"\x30\x82" and cert.entries[0].extensions == []
    cv = parsed("3", 4)
    assert cv.algorithm == SignatureScheme.RSA_PSS_RSAE_SHA256 and len(cv.signature) == 128
    assert parsed("3", 5).verify_data == h(s["finished"]["server"]["verify_data"])
    assert parsed("3", 6).verify_data == h(s["finished"]["client"]["verify_data"])
    nst = parsed("3", 7)
    assert nst.lifetime == 30 and nst.nonce == h(s["secrets"]["ticket_nonce"]) and len(nst.ticket) == 178
    assert ext.parse_max_early_data_size(nst.extension(ET.EARLY_DATA)) == 1024
    assert Finished.parse(h(messages("3")[5]["hex"])[4:], hash_length=32).verify_data == parsed("3", 5).verify_data


def test_s4_pre_shared_key_and_binders():
    s = section("4")["summary"]
    raw = h(messages("4")[0]["hex"])
    ch = parsed("4", 0)
    assert ch.extension_types()[-1] == ET.PRE_SHARED_KEY
    identities, binders = ext.parse_pre_shared_key_client(ch.extension(ET.PRE_SHARED_KEY))
    nst = parsed("3", 7)
    assert len(identities) == 1 and identities[0][0] == nst.ticket  # the §3 ticket is the identity
    # obfuscated_ticket_age = (age in ms + ticket_age_add) mod 2^32
    assert (identities[0][1] - nst.age_add) % (1 << 32) < 10_000
    assert binders == [h(s["psk_binder"]["binder"])]
    ext.parse_early_data(ch.extension(ET.EARLY_DATA))
    assert ext.parse_padding(ch.extension(ET.PADDING)) == len(ch.extension(ET.PADDING))
    # Truncate(ClientHello): up to the binders list; RFC 8448 prints it (477 bytes).
    prefix = truncated_client_hello(raw)
    assert prefix == h(s["psk_binder"]["client_hello_prefix"])
    assert len(raw) - len(prefix) == 2 + 1 + 32
    assert ext.truncated_client_hello(raw) == prefix
    assert ext.binders_length(ch.extension(ET.PRE_SHARED_KEY)) == 35
    # Client side: placeholder binders, then patch.
    zeroed = replace_binders(raw, [bytes(32)])
    assert zeroed[:-32] == raw[:-32] and zeroed[-32:] == bytes(32)
    assert truncated_client_hello(zeroed) == prefix
    assert replace_binders(zeroed, binders) == raw
    placeholder = ClientHello(
        ch.random,
        ch.legacy_session_id,
        ch.cipher_suites,
        ch.extensions[:-1] + [(ET.PRE_SHARED_KEY, ext.encode_pre_shared_key_client(identities, [bytes(32)]))],
    )
    seen = []

    def compute(p: bytes):
        seen.append(p)
        return binders

    assert build_client_hello_with_binders(placeholder, compute) == raw
    assert seen == [prefix]
    with pytest.raises(UsageError):
        replace_binders(raw, [bytes(48)])
    with pytest.raises(UsageError):
        replace_binders(raw, [bytes(32), bytes(32)])
    with pytest.raises(UsageError):
        build_client_hello_with_binders(parsed("3", 0), compute)
    sh = parsed("4", 1)
    assert ext.parse_pre_shared_key_server(sh.extension(ET.PRE_SHARED_KEY)) == 0
    ee = parsed("4", 2)
    ext.parse_early_data(ee.extension(ET.EARLY_DATA))
    assert isinstance(parsed("4", 4), EndOfEarlyData)


def test_s5_hello_retry_request():
    s = section("5")["summary"]
    ch1, hrr, ch2, sh = (parsed("5", i) for i in range(4))
    assert hrr.is_hello_retry_request and hrr.random == HRR_RANDOM
    assert not sh.is_hello_retry_request
    assert ext.parse_key_share_hrr(hrr.extension(ET.KEY_SHARE)) == Group.SECP256R1
    assert ext.parse_supported_versions_server(hrr.extension(ET.SUPPORTED_VERSIONS)) == 0x0304
    cookie = ext.parse_cookie(hrr.extension(ET.COOKIE))
    assert len(cookie) == 114 and cookie[:4] == h("71dcd04b")
    assert ext.parse_cookie(ch2.extension(ET.COOKIE)) == cookie
    assert ch1.extension(ET.COOKIE) is None
    p256 = [k for k in s["key_exchange"]["client"] if k["group"] == "secp256r1"][0]
    assert ext.parse_key_share_client(ch2.extension(ET.KEY_SHARE)) == [(Group.SECP256R1, h(p256["public_key"]))]
    assert ext.parse_key_share_server(sh.extension(ET.KEY_SHARE))[0] == Group.SECP256R1
    assert ch2.random == ch1.random
    # The server only answers what the client offered; cookie is HRR's exception.
    ext.check_allowed(HandshakeType.SERVER_HELLO, hrr.extensions, hello_retry_request=True, offered=ch1.extension_types())
    with alert(AD.illegal_parameter):  # a cookie in a real ServerHello
        ext.check_allowed(HandshakeType.SERVER_HELLO, hrr.extensions)
    with alert(AD.unsupported_extension):
        ext.check_allowed(HandshakeType.SERVER_HELLO, sh.extensions, offered=[ET.SUPPORTED_VERSIONS])


def test_s6_client_authentication():
    cr = parsed("6", 3)
    assert isinstance(cr, CertificateRequest) and cr.request_context == b""
    assert SignatureScheme.RSA_PSS_RSAE_SHA256 in ext.parse_signature_algorithms(cr.extension(ET.SIGNATURE_ALGORITHMS))
    server_cert, server_cv, client_cert, client_cv = parsed("6", 4), parsed("6", 5), parsed("6", 7), parsed("6", 8)
    assert isinstance(server_cert, Certificate) and isinstance(client_cert, Certificate)
    assert server_cv.algorithm == SignatureScheme.ECDSA_SECP256R1_SHA256
    assert client_cv.algorithm == SignatureScheme.RSA_PSS_RSAE_SHA256
    ext.check_allowed(HandshakeType.CERTIFICATE_REQUEST, cr.extensions)


def test_s7_compatibility_mode_session_id():
    ch, sh = parsed("7", 0), parsed("7", 1)
    assert len(ch.legacy_session_id) == 32
    assert sh.legacy_session_id_echo == ch.legacy_session_id


# ---------------------------------------------------------------------------
# Message bounds (RFC 8446 §4)
# ---------------------------------------------------------------------------
def _ch_body(
    session_id=b"",
    suites=b"\x00\x02\x13\x01",
    compression=b"\x01\x00",
    extensions=None,
    random=bytes(32),
    version=b"\x03\x03",
):
    if extensions is None:
        sv = ext.encode_supported_versions_client([0x0304])
        extensions = [(ET.SUPPORTED_VERSIONS, sv), (ET.SUPPORTED_GROUPS, ext.encode_supported_groups([29]))]
    w = Writer()
    write = ext.write_extensions
    body = version + random + bytes([len(session_id)]) + session_id + suites + compression
    if extensions is not False:
        write(w, extensions)
        body += w.getvalue()
    return body


def test_client_hello_bounds():
    ok = ClientHello.parse(_ch_body())
    assert ok.cipher_suites == [0x1301] and ok.encode()[4:] == _ch_body()
    assert ClientHello.parse(_ch_body(session_id=bytes(32))).legacy_session_id == bytes(32)
    assert ClientHello.parse(_ch_body(version=b"\x03\x01")).legacy_version == 0x0301  # the engine says protocol_version
    cases = {
        "session id 33": _ch_body(session_id=bytes(33)),
        "no suites": _ch_body(suites=b"\x00\x00"),
        "odd suites": _ch_body(suites=b"\x00\x03\x13\x01\x13"),
        "suites 0xffff": _ch_body(suites=b"\xff\xff" + bytes(0xFFFF)),
        "suites overrun": _ch_body(suites=b"\x00\x04\x13\x01"),
        "no compression": _ch_body(compression=b"\x00"),
        "short random": _ch_body(random=bytes(31))[:34],
        "trailing byte": _ch_body() + b"\x00",
        "TLS 1.3 extensions < 8": _ch_body(extensions=[(ET.SUPPORTED_VERSIONS, b"\x02\x03\x04")]),
        "extension block overrun": _ch_body()[:-1],
    }
    for what, body in cases.items():
        with alert(AD.decode_error):
            ClientHello.parse(body)
        assert what
    # RFC 8446 §4.1.2: a TLS 1.3 ClientHello's compression methods are exactly [null].
    with alert(AD.illegal_parameter):
        ClientHello.parse(_ch_body(compression=b"\x02\x01\x00"))
    with alert(AD.illegal_parameter):
        ClientHello.parse(_ch_body(compression=b"\x01\x01"))
    # A legacy ClientHello (no supported_versions) still parses, so the engine can say protocol_version.
    legacy = ClientHello.parse(_ch_body(compression=b"\x02\x01\x00", extensions=False))
    assert legacy.extensions == [] and legacy.legacy_compression_methods == b"\x01\x00"
    assert ClientHello.parse(_ch_body(extensions=[])).extensions == []
    dup = [(ET.SUPPORTED_VERSIONS, b"\x02\x03\x04"), (ET.SUPPORTED_VERSIONS, b"\x02\x03\x04")]
    with alert(AD.illegal_parameter):
        ClientHello.parse(_ch_body(extensions=dup))


def test_server_hello_bounds():
    sh = parsed("3", 1)
    body = sh.encode_body()
    with alert(AD.decode_error):
        ServerHello.parse(body[:2] + body[2:34] + b"\x21" + bytes(33) + body[35:])
    with alert(AD.decode_error):
        ServerHello.parse(body + b"\x00")
    with alert(AD.decode_error):  # supported_versions with a 1-byte body: TLS 1.3 floor <6..>
        ServerHello.parse(body[:38] + b"\x00\x05\x00\x2b\x00\x01\x03")
    legacy = ServerHello.parse(body[:38])  # TLS 1.2 hello without extensions
    assert legacy.extensions == [] and legacy.cipher_suite == 0x1301
    hrr = ServerHello(HRR_RANDOM, b"", 0x1301, [(ET.KEY_SHARE, ext.encode_key_share_hrr(23))])
    assert ServerHello.parse(hrr.encode_body()).is_hello_retry_request


def test_other_message_bounds():
    with alert(AD.decode_error):
        EncryptedExtensions.parse(b"\x00")
    with alert(AD.decode_error):
        EncryptedExtensions.parse(b"\x00\x04\x00\x00\x00\x01")
    assert EncryptedExtensions.parse(b"\x00\x00") == EncryptedExtensions([])
    with alert(AD.decode_error):  # extensions <2..2^16-1>
        CertificateRequest.parse(b"\x00\x00\x00")
    with alert(AD.decode_error):  # cert_data <1..2^24-1>
        Certificate.parse(b"\x00\x00\x00\x05\x00\x00\x00\x00\x00")
    with alert(AD.decode_error):
        Certificate.parse(b"\x00\x00\x00\x02\x00\x00")
    assert Certificate.parse(b"\x00\x00\x00\x00") == Certificate(b"", [])
    with alert(AD.illegal_parameter):
        Certificate.parse(b"\x00\x00\x00\x0e\x00\x00\x01\xaa\x00\x08\x00\x05\x00\x00\x00\x05\x00\x00")
    c = Certificate(b"\x01", [CertificateEntry(b"\x30\x00", [(ET.STATUS_REQUEST, b"x")]), CertificateEntry(b"\x30\x01")])
    assert Certificate.parse(c.encode_body()) == c
    with alert(AD.decode_error):
        CertificateVerify.parse(b"\x08\x04\x00\x02\x00")
    with alert(AD.decode_error):
        CertificateVerify.parse(b"\x08")
    assert CertificateVerify.parse(b"\x08\x04\x00\x00") == CertificateVerify(0x0804, b"")
    with alert(AD.decode_error):
        Finished.parse(b"")
    with alert(AD.decode_error):
        Finished.parse(bytes(48), hash_length=32)
    nst = NewSessionTicket(7, 9, b"\x00\x01", b"t", [(ET.EARLY_DATA, ext.encode_max_early_data_size(0xFFFFFFFF))])
    assert NewSessionTicket.parse(nst.encode_body()) == nst
    with alert(AD.decode_error):  # ticket <1..2^16-1>
        NewSessionTicket.parse(bytes(8) + b"\x00" + b"\x00\x00" + b"\x00\x00")
    with alert(AD.decode_error):  # extensions <0..2^16-2>
        NewSessionTicket.parse(bytes(8) + b"\x00\x00\x01t\xff\xff" + bytes(0xFFFF))
    with alert(AD.decode_error):
        EndOfEarlyData.parse(b"\x00")
    assert EndOfEarlyData.parse(b"").encode() == b"\x05\x00\x00\x00"
    assert KeyUpdate.parse(b"\x01") == KeyUpdate(1)
    with alert(AD.illegal_parameter):  # RFC 8446 §4.6.3
        KeyUpdate.parse(b"\x02")
    with alert(AD.decode_error):
        KeyUpdate.parse(b"\x00\x00")
    with alert(AD.decode_error):
        KeyUpdate.parse(b"")
    for t in (0, 3, 6, 12, 254, 255):
        with alert(AD.unexpected_message):
            parse_message(t, b"")


def test_encode_misuse_is_usage_error():
    with pytest.raises(UsageError):
        ClientHello(bytes(31), b"", [0x1301], []).encode()
    with pytest.raises(UsageError):
        ServerHello(bytes(32), bytes(33), 0x1301, []).encode()
    with pytest.raises(UsageError):
        handshake_header(1, 1 << 24)
    with pytest.raises(UsageError):
        NewSessionTicket(1, 1, b"", b"").encode()
    with pytest.raises(UsageError):
        Certificate(b"", [CertificateEntry(b"")]).encode()


# ---------------------------------------------------------------------------
# Extension codecs: round trips and bounds
# ---------------------------------------------------------------------------
ROUND_TRIPS = [
    (ext.encode_server_name, ext.parse_server_name, "example.com"),
    (ext.encode_alpn, ext.parse_alpn, [b"h3", b"hq-interop"]),
    (ext.encode_alpn_selected, ext.parse_alpn_selected, b"h3"),
    (ext.encode_supported_groups, ext.parse_supported_groups, [0x11EC, 29, 23, 24]),
    (ext.encode_signature_algorithms, ext.parse_signature_algorithms, [0x0403, 0x0804, 0x0807]),
    (ext.encode_signature_algorithms_cert, ext.parse_signature_algorithms_cert, [0x0401]),
    (ext.encode_supported_versions_client, ext.parse_supported_versions_client, [0x0304, 0x0303]),
    (ext.encode_supported_versions_server, ext.parse_supported_versions_server, 0x0304),
    (ext.encode_key_share_client, ext.parse_key_share_client, [(29, bytes(32)), (0x11EC, bytes(1216))]),
    (ext.encode_key_share_client, ext.parse_key_share_client, []),
    (ext.encode_key_share_server, ext.parse_key_share_server, (23, b"\x04" + bytes(64))),
    (ext.encode_key_share_hrr, ext.parse_key_share_hrr, 23),
    (ext.encode_psk_key_exchange_modes, ext.parse_psk_key_exchange_modes, [1, 0]),
    (ext.encode_pre_shared_key_server, ext.parse_pre_shared_key_server, 3),
    (ext.encode_max_early_data_size, ext.parse_max_early_data_size, 0xFFFFFFFF),
    (ext.encode_cookie, ext.parse_cookie, b"c" * 300),
    (ext.encode_quic_transport_parameters, ext.parse_quic_transport_parameters, b"\x01\x02\x03"),
    (ext.encode_padding, ext.parse_padding, 100),
    (ext.encode_certificate_authorities, ext.parse_certificate_authorities, [b"\x30\x00", b"\x30\x03abc"]),
    (ext.encode_oid_filters, ext.parse_oid_filters, [(b"\x55\x1d\x25", b""), (b"\x55", b"v")]),
    (ext.encode_record_size_limit, ext.parse_record_size_limit, 16385),
]


@pytest.mark.parametrize("encode,parse,value", ROUND_TRIPS, ids=[r[0].__name__ for r in ROUND_TRIPS])
def test_extension_round_trip(encode, parse, value):
    data = encode(value)
    assert parse(data) == value
    assert encode(parse(data)) == data


def test_extension_round_trip_empty_bodies():
    assert ext.encode_early_data() == b"" and ext.parse_early_data(b"") is None
    assert ext.encode_post_handshake_auth() == b"" and ext.parse_post_handshake_auth(b"") is None
    identities = [(b"id-1", 5), (b"\x00" * 300, 0xFFFFFFFF)]
    binders = [bytes(32), b"\x01" * 48]
    data = ext.encode_pre_shared_key_client(identities, binders)
    assert ext.parse_pre_shared_key_client(data) == (identities, binders)
    assert ext.binders_length(data) == 2 + 33 + 49
    assert ext.parse_status_request(b"\x01\x00\x00\x00\x00") == b"\x01\x00\x00\x00\x00"


def _psk(identities: bytes, binders: bytes) -> bytes:
    return len(identities).to_bytes(2, "big") + identities + len(binders).to_bytes(2, "big") + binders


# (parser, data, expected alert)
BOUND_VIOLATIONS = [
    (ext.parse_server_name, b"", AD.decode_error),
    (ext.parse_server_name, b"\x00\x00", AD.decode_error),  # server_name_list<1..2^16-1>
    (ext.parse_server_name, b"\x00\x03\x00\x00\x00", AD.decode_error),  # HostName<1..2^16-1>
    (ext.parse_server_name, b"\x00\x04\x01\x00\x01a", AD.decode_error),  # unknown name type
    (ext.parse_server_name, b"\x00\x08\x00\x00\x01a\x00\x00\x01b", AD.illegal_parameter),  # two host_names
    (ext.parse_server_name, b"\x00\x04\x00\x00\x01\xff", AD.decode_error),  # not ASCII
    (ext.parse_server_name, b"\x00\x04\x00\x00\x01a\x00", AD.decode_error),  # trailing
    (ext.parse_alpn, b"\x00\x00", AD.decode_error),  # protocol_name_list<2..2^16-1>
    (ext.parse_alpn, b"\x00\x01\x00", AD.decode_error),
    (ext.parse_alpn, b"\x00\x02\x00\x00", AD.decode_error),  # ProtocolName<1..2^8-1>
    (ext.parse_alpn, b"\x00\x03\x03h3", AD.decode_error),
    (ext.parse_alpn_selected, b"\x00\x06\x02h3\x02h2", AD.decode_error),  # server selects exactly one
    (ext.parse_supported_groups, b"\x00\x00", AD.decode_error),
    (ext.parse_supported_groups, b"\x00\x03\x00\x1d\x00", AD.decode_error),
    (ext.parse_signature_algorithms, b"\x00\x00", AD.decode_error),
    (ext.parse_signature_algorithms, b"\xff\xff" + bytes(0xFFFF), AD.decode_error),  # <2..2^16-2>
    (ext.parse_signature_algorithms, b"\x00\x01\x04", AD.decode_error),
    (ext.parse_supported_versions_client, b"\x00", AD.decode_error),  # versions<2..254>
    (ext.parse_supported_versions_client, b"\x03\x03\x04\x03", AD.decode_error),
    (ext.parse_supported_versions_client, b"\xff" + bytes(255), AD.decode_error),
    (ext.parse_supported_versions_server, b"\x03", AD.decode_error),
    (ext.parse_supported_versions_server, b"\x03\x04\x00", AD.decode_error),
    (ext.parse_key_share_client, b"", AD.decode_error),
    (ext.parse_key_share_client, b"\x00\x04\x00\x1d\x00\x00", AD.decode_error),  # key_exchange<1..2^16-1>
    (ext.parse_key_share_client, b"\x00\x0a\x00\x1d\x00\x01a\x00\x1d\x00\x01b", AD.illegal_parameter),
    (ext.parse_key_share_client, b"\x00\x05\x00\x1d\x00\x01a\x00", AD.decode_error),
    (ext.parse_key_share_server, b"\x00\x1d\x00\x02a", AD.decode_error),
    (ext.parse_key_share_server, b"\x00\x1d\x00\x01ab", AD.decode_error),
    (ext.parse_key_share_hrr, b"\x00", AD.decode_error),
    (ext.parse_key_share_hrr, b"\x00\x17\x00", AD.decode_error),
    (ext.parse_psk_key_exchange_modes, b"\x00", AD.decode_error),  # ke_modes<1..255>
    (ext.parse_psk_key_exchange_modes, b"\x02\x01", AD.decode_error),
    (ext.parse_pre_shared_key_client, _psk(b"", b"\x20" + bytes(32)), AD.decode_error),  # identities<7..>
    (ext.parse_pre_shared_key_client, _psk(b"\x00\x00" + bytes(4), b"\x20" + bytes(32)), AD.decode_error),
    (ext.parse_pre_shared_key_client, _psk(b"\x00\x01a" + bytes(4), b""), AD.decode_error),  # binders<33..>
    (ext.parse_pre_shared_key_client, _psk(b"\x00\x01a" + bytes(4), b"\x1f" + bytes(31) + b"\x00"), AD.decode_error),
    (ext.parse_pre_shared_key_client, _psk(b"\x00\x01a" + bytes(4), (b"\x20" + bytes(32)) * 2), AD.illegal_parameter),
    (ext.parse_pre_shared_key_client, _psk(b"\x00\x01a" + bytes(4) + b"\x00\x01b" + bytes(4), b"\x20" + bytes(32)), AD.illegal_parameter),
    (ext.parse_pre_shared_key_client, _psk(b"\x00\x01a" + bytes(4), b"\x20" + bytes(32)) + b"\x00", AD.decode_error),
    (ext.parse_pre_shared_key_server, b"\x00", AD.decode_error),
    (ext.parse_early_data, b"\x00", AD.decode_error),
    (ext.parse_max_early_data_size, b"\x00\x00\x00", AD.decode_error),
    (ext.parse_max_early_data_size, b"\x00\x00\x00\x00\x00", AD.decode_error),
    (ext.parse_cookie, b"\x00\x00", AD.decode_error),  # cookie<1..2^16-1>
    (ext.parse_cookie, b"\x00\x02c", AD.decode_error),
    (ext.parse_post_handshake_auth, b"\x00", AD.decode_error),
    (ext.parse_padding, b"\x00\x00\x01", AD.illegal_parameter),
    (ext.parse_certificate_authorities, b"\x00\x02\x00\x00", AD.decode_error),  # authorities<3..>
    (ext.parse_certificate_authorities, b"\x00\x03\x00\x00\x00", AD.decode_error),  # DistinguishedName<1..>
    (ext.parse_oid_filters, b"\x00\x03\x00\x00\x00", AD.decode_error),  # OID<1..2^8-1>
    (ext.parse_record_size_limit, b"\x00\x3f", AD.illegal_parameter),  # RFC 8449 §4
    (ext.parse_record_size_limit, b"\x40", AD.decode_error),
]


@pytest.mark.parametrize(
    "parse,data,description", BOUND_VIOLATIONS, ids=[f"{p.__name__}-{i}" for i, (p, _, _) in enumerate(BOUND_VIOLATIONS)]
)
def test_extension_bound_violations(parse, data, description):
    with alert(description):
        parse(data)


def test_extension_encode_misuse():
    for call in (
        lambda: ext.encode_server_name(""),
        lambda: ext.encode_alpn([]),
        lambda: ext.encode_alpn([b""]),
        lambda: ext.encode_alpn([b"x" * 256]),
        lambda: ext.encode_supported_groups([]),
        lambda: ext.encode_supported_versions_client([]),
        lambda: ext.encode_key_share_client([(29, b"")]),
        lambda: ext.encode_psk_key_exchange_modes([]),
        lambda: ext.encode_pre_shared_key_client([(b"id", 0)], []),
        lambda: ext.encode_pre_shared_key_client([(b"id", 0)], [bytes(31)]),
        lambda: ext.encode_cookie(b""),
        lambda: ext.encode_certificate_authorities([]),
        lambda: ext.encode_max_early_data_size(1 << 32),
    ):
        with pytest.raises(UsageError):
            call()


def test_extension_block_duplicates_and_find():
    w = Writer()
    ext.write_extensions(w, [(1, b"a"), (2, b""), (1, b"b")])
    with alert(AD.illegal_parameter):
        ext.read_extensions(Reader(w.getvalue()))
    exts = ext.read_extensions(Reader(b"\x00\x09\x00\x01\x00\x01a\x00\x02\x00\x00"))
    assert exts == [(1, b"a"), (2, b"")]
    assert ext.find_extension(exts, 2) == b"" and ext.find_extension(exts, 3) is None
    with alert(AD.decode_error):
        ext.read_extensions(Reader(b"\x00\x03\x00\x01\x00"))


# ---------------------------------------------------------------------------
# Which message may carry which extension (RFC 8446 §4.2), over every pair
# ---------------------------------------------------------------------------
WHERE = {
    ext.CH: (HandshakeType.CLIENT_HELLO, False),
    ext.SH: (HandshakeType.SERVER_HELLO, False),
    ext.HRR: (HandshakeType.SERVER_HELLO, True),
    ext.EE: (HandshakeType.ENCRYPTED_EXTENSIONS, False),
    ext.CT: (HandshakeType.CERTIFICATE, False),
    ext.CR: (HandshakeType.CERTIFICATE_REQUEST, False),
    ext.NST: (HandshakeType.NEW_SESSION_TICKET, False),
}


@pytest.mark.parametrize("where", list(WHERE))
def test_check_allowed_table(where):
    msg_type, hrr = WHERE[where]
    for ext_type, allowed in ext.ALLOWED_IN.items():
        if where in allowed:
            ext.check_allowed(msg_type, [(ext_type, b"")], hello_retry_request=hrr)
        else:
            with alert(AD.illegal_parameter):
                ext.check_allowed(msg_type, [(ext_type, b"")], hello_retry_request=hrr)
    for unknown in (ET.SESSION_TICKET, ET.RENEGOTIATION_INFO, ET.EXTENDED_MASTER_SECRET, 0x1A1A, 0xFFFF):
        if where in (ext.CH, ext.CR, ext.NST):
            ext.check_allowed(msg_type, [(unknown, b"")], hello_retry_request=hrr)
        else:
            with alert(AD.unsupported_extension):
                ext.check_allowed(msg_type, [(unknown, b"")], hello_retry_request=hrr)


def test_check_allowed_rfc_rows():
    table = ext.ALLOWED_IN
    assert table[ET.KEY_SHARE] == {ext.CH, ext.SH, ext.HRR}
    assert table[ET.PRE_SHARED_KEY] == {ext.CH, ext.SH}
    assert table[ET.EARLY_DATA] == {ext.CH, ext.EE, ext.NST}
    assert table[ET.COOKIE] == {ext.CH, ext.HRR}
    assert table[ET.QUIC_TRANSPORT_PARAMETERS] == {ext.CH, ext.EE}
    assert table[ET.STATUS_REQUEST] == {ext.CH, ext.CR, ext.CT}


def test_check_allowed_psk_last_and_offered():
    psk = (ET.PRE_SHARED_KEY, b"")
    ext.check_allowed(HandshakeType.CLIENT_HELLO, [(ET.SERVER_NAME, b""), psk])
    with alert(AD.illegal_parameter):  # RFC 8446 §4.2.11
        ext.check_allowed(HandshakeType.CLIENT_HELLO, [psk, (ET.SERVER_NAME, b"")])
    with alert(AD.illegal_parameter):
        ext.check_allowed(HandshakeType.CLIENT_HELLO, [psk, (0x1A1A, b"")])
    ee = [(ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, b""), (ET.EARLY_DATA, b"")]
    ext.check_allowed(HandshakeType.ENCRYPTED_EXTENSIONS, ee, offered={ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ET.EARLY_DATA})
    with alert(AD.unsupported_extension):
        ext.check_allowed(HandshakeType.ENCRYPTED_EXTENSIONS, ee, offered={ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION})
    with alert(AD.unsupported_extension):
        ext.check_allowed(HandshakeType.SERVER_HELLO, [(ET.KEY_SHARE, b"")], hello_retry_request=True, offered=())
    ext.check_allowed(HandshakeType.SERVER_HELLO, [(ET.COOKIE, b"x")], hello_retry_request=True, offered=())
    with pytest.raises(UsageError):
        ext.check_allowed(HandshakeType.FINISHED, [])
    with pytest.raises(UsageError):
        ext.check_allowed(HandshakeType.CLIENT_HELLO, [], hello_retry_request=True)


# ---------------------------------------------------------------------------
# Codec
# ---------------------------------------------------------------------------
def test_reader_and_writer():
    w = Writer()
    w.u8(1)
    w.u16(0x0203)
    w.u24(0x040506)
    w.u32(0x0708090A)
    w.vec8(b"a")
    w.vec16(b"bc")
    w.vec24(b"def")
    with w.block16():
        with w.block8():
            w.raw(b"xy")
        w.u16_list8([1, 2])
    w.u16_list16([0xFFFF])
    data = w.getvalue()
    assert len(w) == len(data)
    r = Reader(memoryview(bytearray(data)))
    assert (r.u8(), r.u16(), r.u24(), r.u32()) == (1, 0x0203, 0x040506, 0x0708090A)
    assert (r.vec8(), r.vec16(), r.vec24()) == (b"a", b"bc", b"def")
    block = r.sub16(what="block")
    inner = block.sub8()
    assert inner.rest() == b"xy" and inner.at_end()
    assert block.u16_list8(2, 254, "versions") == [1, 2]
    block.expect_end()
    assert r.u16_list16(2, 0xFFFE, "list") == [0xFFFF]
    r.expect_end()
    assert r.remaining() == 0 and r.position == len(data)
    for call in (lambda: Reader(b"\x00").u16(), lambda: Reader(b"\x02a").vec8(), lambda: Reader(b"\x00\x01").vec8(2)):
        with alert(AD.decode_error):
            call()
    with alert(AD.decode_error) as info:
        Reader(b"ab").expect_end("thing")
    assert "thing" in info.value.reason
    with pytest.raises(UsageError):
        Writer().u8(256)
    with pytest.raises(UsageError):
        Writer().vec8(bytes(256))
    with pytest.raises(UsageError):
        w = Writer()
        with w.block8():
            w.raw(bytes(256))
    with pytest.raises(UsageError):
        Writer().u16_list16([0x10000])
