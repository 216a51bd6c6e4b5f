# Property and fuzz tests for tls.codec / tls.messages / tls.extensions: on any
# input a parser either returns or raises AlertError -- any other exception is
# a bug.  Structured cases assert the alert: truncation and appended garbage
# are decode_error, a duplicated extension is illegal_parameter.  Mutations
# that still parse must re-encode to the very bytes received.
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tls import extensions as ext
from tls.codec import Reader
from tls.enums import AlertDescription as AD
from tls.enums import HandshakeType
from tls.errors import AlertError
from tls.messages import (
    MESSAGE_CLASSES,
    ClientHello,
    Finished,
    ServerHello,
    build_client_hello_with_binders,
    parse_message,
    split_handshake_messages,
    truncated_client_hello,
)

from .vectors import h, load

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALERTS = {
    AD.decode_error,
    AD.illegal_parameter,
    AD.unexpected_message,
    AD.unsupported_extension,
    AD.missing_extension,
}


def _vector_messages() -> list[bytes]:
    sections = load("rfc8448.json")["sections"]
    return [h(m["hex"]) for s in sections.values() for m in s["summary"]["handshake_messages"]]


MESSAGES = _vector_messages()
WITH_EXTENSIONS = [m for m in MESSAGES if m[0] in (1, 2, 4, 8, 13)]
MESSAGE_TYPES = sorted(MESSAGE_CLASSES)
EXTENSION_PARSERS = sorted(ext.PARSERS.items(), key=lambda kv: (kv[0][0], kv[0][1]))


def _where(msg) -> str:
    if isinstance(msg, ServerHello) and msg.is_hello_retry_request:
        return ext.HRR
    return {1: ext.CH, 2: ext.SH, 4: ext.NST, 8: ext.EE, 13: ext.CR}[msg.msg_type]


# Every extension body in the traces, with its parser key, to truncate and mutate.
EXTENSION_SAMPLES = [
    ((t, _where(msg)), data)
    for msg in (parse_message(raw[0], raw[4:]) for raw in WITH_EXTENSIONS)
    for t, data in msg.extensions
    if (t, _where(msg)) in ext.PARSERS
]
# Parsers whose body is opaque to TLS: every byte string is valid.
OPAQUE = {ext.parse_quic_transport_parameters, ext.parse_status_request}


def _parse(msg_type: int, body: bytes):
    if msg_type == HandshakeType.FINISHED:
        return Finished.parse(body, hash_length=32)
    return parse_message(msg_type, body)


def _only_alerts(call, *args):
    try:
        return call(*args)
    except AlertError as exc:
        assert exc.description in ALERTS, exc
        return None


def _hello_without_extensions(msg) -> bool:
    return isinstance(msg, (ClientHello, ServerHello)) and msg.extensions == []


# ---------------------------------------------------------------------------
# Random input
# ---------------------------------------------------------------------------
@FUZZ
@given(st.sampled_from(MESSAGE_TYPES + [0, 3, 254, 255]), st.binary(max_size=300))
def test_message_parsers_random_bytes(msg_type, body):
    msg = _only_alerts(_parse, msg_type, body)
    if msg is not None and not _hello_without_extensions(msg):
        assert msg.encode_body() == body


@FUZZ
@given(st.sampled_from(EXTENSION_PARSERS), st.binary(max_size=120))
def test_extension_parsers_random_bytes(item, data):
    _, parse = item
    _only_alerts(parse, data)


@FUZZ
@given(st.binary(max_size=200))
def test_pre_shared_key_helpers_random_bytes(data):
    _only_alerts(ext.binders_length, data)
    _only_alerts(ext.parse_pre_shared_key_client, data)
    _only_alerts(truncated_client_hello, data)
    _only_alerts(truncated_client_hello, b"\x01" + len(data).to_bytes(3, "big") + data)


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 300), st.integers(1, 50))
def test_split_random_bytes_any_chunking(data, cap, chunk):
    try:
        whole, rest = split_handshake_messages(data, cap)
    except AlertError as exc:
        assert exc.description == AD.decode_error
        return
    assert b"".join(f.raw for f in whole) + rest == data
    got, buf = [], b""
    for i in range(0, len(data), chunk):
        frames, buf = split_handshake_messages(buf + data[i : i + chunk], cap)
        got += frames
    assert got == whole and buf == rest


@FUZZ
@given(
    st.sampled_from([ext.CH, ext.SH, ext.HRR, ext.EE, ext.CT, ext.CR, ext.NST]),
    st.lists(st.tuples(st.sampled_from(sorted(ext.ALLOWED_IN) + [35, 0xFF01, 0x1A1A]), st.just(b"")), max_size=6),
    st.one_of(st.none(), st.sets(st.sampled_from(sorted(ext.ALLOWED_IN)))),
)
def test_check_allowed_any_list(where, extensions, offered):
    msg_type = {ext.CH: 1, ext.SH: 2, ext.HRR: 2, ext.EE: 8, ext.CT: 11, ext.CR: 13, ext.NST: 4}[where]
    try:
        ext.check_allowed(msg_type, extensions, hello_retry_request=where == ext.HRR, offered=offered)
    except AlertError as exc:
        assert exc.description in (AD.illegal_parameter, AD.unsupported_extension)
        return
    for ext_type, _ in extensions:  # what passed is either allowed there or an ignorable unknown
        assert where in ext.ALLOWED_IN.get(ext_type, {ext.CH, ext.CR, ext.NST})


# ---------------------------------------------------------------------------
# Structured damage to the RFC 8448 messages
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("index", range(len(MESSAGES)))
def test_every_truncation_is_decode_error(index):
    raw = MESSAGES[index]
    body = raw[4:]
    for cut in range(len(body)):
        try:
            msg = _parse(raw[0], body[:cut])
        except AlertError as exc:
            assert exc.description == AD.decode_error, (cut, exc)
            continue
        # The one legal prefix: a hello cut right before its extension block
        # is a pre-extension (legacy) hello.
        assert _hello_without_extensions(msg), cut
        assert msg.encode_body() == body[:cut] + b"\x00\x00"


@FUZZ
@given(st.sampled_from(MESSAGES), st.binary(min_size=1, max_size=40))
def test_appended_garbage_is_decode_error(raw, garbage):
    with pytest.raises(AlertError) as info:
        _parse(raw[0], raw[4:] + garbage)
    assert info.value.description == AD.decode_error


@FUZZ
@given(st.sampled_from([m for m in MESSAGES if len(m) > 4]), st.data())
def test_single_byte_mutations(raw, data):
    body = bytearray(raw[4:])
    pos = data.draw(st.integers(0, len(body) - 1))
    body[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != body[pos]))
    msg = _only_alerts(_parse, raw[0], bytes(body))
    if msg is None:
        return
    if _hello_without_extensions(msg):  # an empty block, or none (legacy hello)
        assert msg.encode_body() in (bytes(body), bytes(body) + b"\x00\x00")
    else:
        assert msg.encode_body() == bytes(body)
    if isinstance(msg, (ClientHello, ServerHello)):
        where = _where(msg)
        for t, d in msg.extensions:
            parser = ext.PARSERS.get((t, where))
            if parser is not None:
                _only_alerts(parser, d)
        _only_alerts(lambda: ext.check_allowed(raw[0], msg.extensions, hello_retry_request=where == ext.HRR))
    if isinstance(msg, ClientHello):
        _only_alerts(truncated_client_hello, msg.encode())


@FUZZ
@given(st.sampled_from(WITH_EXTENSIONS), st.data())
def test_duplicated_extension_is_illegal_parameter(raw, data):
    msg = parse_message(raw[0], raw[4:])
    extensions = list(msg.extensions)
    if not extensions:
        return
    copy = data.draw(st.sampled_from(extensions))
    extensions.insert(data.draw(st.integers(0, len(extensions))), copy)
    encoded = replace(msg, extensions=extensions).encode_body()
    with pytest.raises(AlertError) as info:
        parse_message(raw[0], encoded)
    assert info.value.description == AD.illegal_parameter


@pytest.mark.parametrize("item", EXTENSION_SAMPLES, ids=[f"{k[0]}-{k[1]}" for k, _ in EXTENSION_SAMPLES])
def test_extension_truncations(item):
    key, data = item
    parse = ext.PARSERS[key]
    parse(data)
    if parse in OPAQUE or parse is ext.parse_padding:
        return
    for cut in range(len(data)):
        with pytest.raises(AlertError) as info:
            parse(data[:cut])
        assert info.value.description == AD.decode_error, (cut, info.value)
    with pytest.raises(AlertError) as info:
        parse(data + b"\x00")
    assert info.value.description == AD.decode_error


@FUZZ
@given(st.sampled_from(EXTENSION_SAMPLES), st.data())
def test_extension_mutations(item, data):
    key, body = item
    if not body:
        return
    mutated = bytearray(body)
    pos = data.draw(st.integers(0, len(mutated) - 1))
    mutated[pos] ^= data.draw(st.integers(1, 255))
    _only_alerts(ext.PARSERS[key], bytes(mutated))


@FUZZ
@given(st.binary(max_size=64), st.lists(st.integers(0, 3), max_size=12))
def test_reader_operations_only_raise_alerts(data, ops):
    r = Reader(data)
    calls = [r.u16, r.u24, r.vec8, lambda: r.sub16().rest()]
    for op in ops:
        _only_alerts(calls[op])
        assert 0 <= r.remaining() <= len(data)
    _only_alerts(r.expect_end)


# ---------------------------------------------------------------------------
# Encoders and parsers agree on every value they accept
# ---------------------------------------------------------------------------
u16 = st.integers(0, 0xFFFF)
opaque8 = st.binary(min_size=1, max_size=255)
opaque16 = st.binary(min_size=1, max_size=300)
ROUND_TRIPS = [
    (ext.encode_server_name, ext.parse_server_name, st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=60)),
    (ext.encode_alpn, ext.parse_alpn, st.lists(opaque8, min_size=1, max_size=5)),
    (ext.encode_supported_groups, ext.parse_supported_groups, st.lists(u16, min_size=1, max_size=20)),
    (ext.encode_signature_algorithms, ext.parse_signature_algorithms, st.lists(u16, min_size=1, max_size=20)),
    (ext.encode_supported_versions_client, ext.parse_supported_versions_client, st.lists(u16, min_size=1, max_size=127)),
    (ext.encode_supported_versions_server, ext.parse_supported_versions_server, u16),
    (
        ext.encode_key_share_client,
        ext.parse_key_share_client,
        st.lists(st.tuples(u16, opaque16), max_size=4, unique_by=lambda e: e[0]),
    ),
    (ext.encode_key_share_server, ext.parse_key_share_server, st.tuples(u16, opaque16)),
    (ext.encode_key_share_hrr, ext.parse_key_share_hrr, u16),
    (ext.encode_psk_key_exchange_modes, ext.parse_psk_key_exchange_modes, st.lists(st.integers(0, 255), min_size=1, max_size=5)),
    (ext.encode_pre_shared_key_server, ext.parse_pre_shared_key_server, u16),
    (ext.encode_max_early_data_size, ext.parse_max_early_data_size, st.integers(0, 0xFFFFFFFF)),
    (ext.encode_cookie, ext.parse_cookie, opaque16),
    (ext.encode_padding, ext.parse_padding, st.integers(0, 600)),
    (ext.encode_certificate_authorities, ext.parse_certificate_authorities, st.lists(opaque16, min_size=1, max_size=4)),
    (ext.encode_oid_filters, ext.parse_oid_filters, st.lists(st.tuples(opaque8, st.binary(max_size=40)), max_size=4)),
    (ext.encode_record_size_limit, ext.parse_record_size_limit, st.integers(64, 0xFFFF)),
]


@pytest.mark.parametrize("encode,parse,values", ROUND_TRIPS, ids=[r[0].__name__ for r in ROUND_TRIPS])
def test_extension_encode_parse_agree(encode, parse, values):
    @settings(max_examples=100, deadline=None)
    @given(values)
    def check(value):
        data = encode(value)
        assert parse(data) == value
        assert encode(parse(data)) == data

    check()


@FUZZ
@given(
    st.lists(st.tuples(st.binary(min_size=1, max_size=80), st.integers(0, 0xFFFFFFFF)), min_size=1, max_size=4),
    st.sampled_from([32, 48]),
    st.data(),
)
def test_binders_patch_and_truncate(identities, hash_length, data):
    binders = [data.draw(st.binary(min_size=hash_length, max_size=hash_length)) for _ in identities]
    placeholder = [bytes(hash_length)] * len(identities)
    hello = ClientHello(
        bytes(32),
        b"",
        [0x1301],
        [
            (43, ext.encode_supported_versions_client([0x0304])),
            (41, ext.encode_pre_shared_key_client(identities, placeholder)),
        ],
    )
    wire = build_client_hello_with_binders(hello, lambda prefix: binders)
    parsed = parse_message(wire[0], wire[4:])
    assert ext.parse_pre_shared_key_client(parsed.extension(41)) == (identities, binders)
    prefix = truncated_client_hello(wire)
    assert wire.startswith(prefix) and prefix == truncated_client_hello(hello.encode())
    assert len(wire) - len(prefix) == 2 + len(binders) * (1 + hash_length)


# ---------------------------------------------------------------------------
# The fast paths (hot messages and extension bodies sliced directly when they
# are `bytes`) against the field-by-field Reader paths (taken for any other
# buffer type): the same value, or the same alert with the same reason.
# ---------------------------------------------------------------------------
def _outcome(call, *args):
    try:
        return ("value", call(*args))
    except AlertError as exc:
        return ("alert", exc.description, exc.reason)


def _mutated(data, raw: bytes) -> bytes:
    body = bytearray(raw)
    for _ in range(data.draw(st.integers(0, 3))):
        if body and data.draw(st.booleans()):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
        else:
            cut = data.draw(st.integers(0, len(body)))
            body[cut:cut] = data.draw(st.binary(min_size=1, max_size=4))
    return bytes(body)


@FUZZ
@given(st.sampled_from([m for m in MESSAGES if len(m) > 4]), st.data())
def test_fast_message_parsers_agree_with_the_reader(raw, data):
    body = _mutated(data, raw[4:])
    assert _outcome(_parse, raw[0], body) == _outcome(_parse, raw[0], bytearray(body))


# The traces carry no ALPN; add it (and a few more shapes) by hand.
FAST_PATH_SAMPLES = EXTENSION_SAMPLES + [
    ((ext.ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.CH), ext.encode_alpn([b"h3", b"http/1.1"])),
    ((ext.ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.EE), ext.encode_alpn([b"h3"])),
    ((ext.ET.SERVER_NAME, ext.CH), ext.encode_server_name("example.com")),
    ((ext.ET.KEY_SHARE, ext.CH), ext.encode_key_share_client([(0x1D, bytes(32)), (0x17, bytes(65))])),
    ((ext.ET.PSK_KEY_EXCHANGE_MODES, ext.CH), ext.encode_psk_key_exchange_modes([0, 1])),
]


@FUZZ
@given(st.sampled_from(FAST_PATH_SAMPLES), st.data())
def test_fast_extension_parsers_agree_with_the_reader(item, data):
    key, sample = item
    body = _mutated(data, sample)
    parser = ext.PARSERS[key]
    assert _outcome(parser, body) == _outcome(parser, bytearray(body))
