# The sans-I/O TLS 1.3 record layer (tls/record.py): the RFC 8448 traces
# replayed record by record (known answers, byte-exact in both directions),
# paired record layers over every suite and padding policy, each receive-side
# MUST of RFC 8446 §5 and §6 as a failing input with its alert, the 0-RTT
# skipping of §4.2.10, and a property test that arbitrary input only ever
# ends in our own errors.
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from tls.enums import AlertDescription, ContentType, Level
from tls.errors import AlertError, PeerAlert, UsageError
from tls.key_schedule import CIPHER_SUITES, traffic_key_iv
from tls.record import (
    MAX_CIPHERTEXT,
    MAX_PLAINTEXT,
    PadToMultiple,
    RecordCipher,
    RecordLayer,
    decode_alert,
    encode_alert,
)

from .vectors import h, load

SUITES = sorted(CIPHER_SUITES)
LEVEL_OF_KEY = {
    "client_early": Level.EARLY_DATA,
    "client_handshake": Level.HANDSHAKE,
    "server_handshake": Level.HANDSHAKE,
    "client_application": Level.APPLICATION,
    "server_application": Level.APPLICATION,
}
# Which traffic key protects each record of the RFC 8448 traces (None: plaintext).
KEY_SCHEDULES = {
    "3": [None, None, "server_handshake", "client_handshake", "server_application",
          "client_application", "server_application", "client_application", "server_application"],
    "4": [None, "client_early", None, "server_handshake", "client_early", "client_handshake",
          "client_application", "server_application", "client_application", "server_application"],
    "7": [None, None, None, "server_handshake", None, "client_handshake",
          "client_application", "server_application"],
}


def all_records(layer: RecordLayer) -> list:
    out = []
    while (record := layer.next_record()) is not None:
        out.append(record)
    return out


@pytest.mark.parametrize("section", sorted(KEY_SCHEDULES))
def test_rfc8448_trace_byte_exact(section):
    """Every record of the trace: what our writer seals is the RFC's record,
    and what our reader opens is the RFC's content."""
    summary = load("rfc8448.json")["sections"][section]["summary"]
    keys = summary["traffic_keys"]
    suite = 0x1301
    layers = {"client": RecordLayer(), "server": RecordLayer()}
    installed = {("client", "write"): None, ("client", "read"): None,
                 ("server", "write"): None, ("server", "read"): None}
    for record, key_name in zip(summary["records"], KEY_SCHEDULES[section], strict=True):
        sender = record["sender"]
        receiver = "server" if sender == "client" else "client"
        writer, reader = layers[sender], layers[receiver]
        ctype = ContentType[record["content_type"].upper()]
        payload = h(record["payload"])
        if key_name is not None:
            secret = h(keys[key_name]["secret"])
            assert traffic_key_iv(CIPHER_SUITES[suite], secret) == (
                h(keys[key_name]["key"]), h(keys[key_name]["iv"]))
            if installed[(sender, "write")] != key_name:
                writer.set_write_key(suite, secret, LEVEL_OF_KEY[key_name])
                installed[(sender, "write")] = key_name
            if installed[(receiver, "read")] != key_name:
                reader.set_read_key(suite, secret, LEVEL_OF_KEY[key_name])
                installed[(receiver, "read")] = key_name
        # The traces send the first ClientHello with legacy_record_version 0x0301.
        writer.plaintext_version = 0x0301 if (ctype, payload[:1]) == (ContentType.HANDSHAKE, b"\x01") else 0x0303
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            writer.write_change_cipher_spec()
        elif ctype == ContentType.ALERT:
            writer.write_alert(decode_alert(payload)[1])
        else:
            writer.write(ctype, payload)
        wire = writer.data_to_send()
        assert wire == h(record["record"])
        reader.receive_data(wire)
        got = all_records(reader)
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            assert got == []  # §5: dropped
        else:
            assert [(r.content_type, r.content) for r in got] == [(ctype, payload)]
            assert got[0].level == (LEVEL_OF_KEY[key_name] if key_name else Level.INITIAL)
        if ctype == ContentType.HANDSHAKE and payload[0] == 20 and sender == "server":
            reader.handshaking = False  # the client has the peer's Finished
    assert layers["client"].read_closed and layers["server"].read_closed


# ---------------------------------------------------------------------------
# Paired layers


def pair(suite=0x1301, level=Level.APPLICATION, **kwargs):
    a, b = RecordLayer(**kwargs), RecordLayer(**kwargs)
    secret_ab, secret_ba = os.urandom(CIPHER_SUITES[suite].hash_length), os.urandom(
        CIPHER_SUITES[suite].hash_length)
    a.set_write_key(suite, secret_ab, level)
    b.set_read_key(suite, secret_ab, level)
    b.set_write_key(suite, secret_ba, level)
    a.set_read_key(suite, secret_ba, level)
    a.handshaking = b.handshaking = False
    return a, b


def transfer(src: RecordLayer, dst: RecordLayer) -> list:
    dst.receive_data(src.data_to_send())
    return all_records(dst)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("padding", [None, PadToMultiple(1), PadToMultiple(256), PadToMultiple(MAX_PLAINTEXT)])
def test_round_trip_every_suite_and_padding(suite, padding):
    kwargs = {"padding": padding} if padding else {}
    a, b = pair(suite, **kwargs)
    data = os.urandom(3 * MAX_PLAINTEXT + 1234)
    a.write(ContentType.APPLICATION_DATA, data)
    wire = a.data_to_send()
    records = b.receive_data(wire) or all_records(b)
    assert b"".join(r.content for r in records) == data
    assert [len(r.content) for r in records] == [MAX_PLAINTEXT] * 3 + [1234]
    if padding and padding.block == MAX_PLAINTEXT:
        assert len(wire) == 4 * (5 + MAX_PLAINTEXT + 1 + 16)  # every record full size
    assert a.write_state().seq == b.read_state().seq == 4


def test_small_writes_coalesce_and_types_do_not_mix():
    a, b = pair()
    for i in range(100):
        a.write(ContentType.APPLICATION_DATA, bytes([i]) * 10)
    a.write(ContentType.HANDSHAKE, b"\x04\x00\x00\x00")
    a.write(ContentType.APPLICATION_DATA, b"tail")
    records = transfer(a, b)
    assert [(r.content_type, len(r.content)) for r in records] == [
        (ContentType.APPLICATION_DATA, 1000), (ContentType.HANDSHAKE, 4),
        (ContentType.APPLICATION_DATA, 4)]


def test_pending_bytes_fill_full_records_before_flush():
    a, b = pair()
    a.write(ContentType.APPLICATION_DATA, b"x" * 100)
    a.write(ContentType.APPLICATION_DATA, b"y" * (2 * MAX_PLAINTEXT))
    assert [len(r.content) for r in transfer(a, b)] == [MAX_PLAINTEXT, MAX_PLAINTEXT, 100]


def test_write_record_limit():
    a, b = pair()
    a.set_write_record_limit(1000)
    a.write(ContentType.APPLICATION_DATA, b"z" * 2500)
    assert [len(r.content) for r in transfer(a, b)] == [1000, 1000, 500]
    with pytest.raises(UsageError):
        a.set_write_record_limit(MAX_PLAINTEXT + 1)


def test_a_read_key_applies_from_the_very_next_record():
    """Two records in one read: the first makes the reader change keys (as a
    handshake message would), the second must open under the new key."""
    a, b = pair()
    new_secret = os.urandom(32)
    a.write(ContentType.HANDSHAKE, b"\x18\x00\x00\x01\x00")  # KeyUpdate
    a.update_write_key()
    a.write(ContentType.APPLICATION_DATA, b"after")
    b.receive_data(a.data_to_send())
    first = b.next_record()
    assert first.content_type == ContentType.HANDSHAKE
    b.update_read_key()
    assert b.next_record().content == b"after"
    # An explicit secret works the same way.
    a.set_write_key(0x1301, new_secret)
    a.write(ContentType.APPLICATION_DATA, b"again")
    b.set_read_key(0x1301, new_secret)
    assert transfer(a, b)[0].content == b"again"


def test_key_update_ratchet_both_sides_agree_over_many_updates():
    a, b = pair(0x1303)
    for i in range(20):
        a.update_write_key()
        b.update_read_key()
        a.write(ContentType.APPLICATION_DATA, b"%d" % i)
        assert transfer(a, b)[0].content == b"%d" % i


def test_nonce_is_iv_xor_sequence_number():
    secret = bytes(range(32))
    cipher = RecordCipher(0x1301, secret)
    key, iv = traffic_key_iv(CIPHER_SUITES[0x1301], secret)
    cipher.seq = 0x0102030405060708
    record = cipher.seal(ContentType.APPLICATION_DATA, b"hi", 0)
    nonce = (int.from_bytes(iv, "big") ^ 0x0102030405060708).to_bytes(12, "big")
    assert AESGCM(key).decrypt(nonce, record[5:], record[:5]) == b"hi\x17"
    assert record[:3] == b"\x17\x03\x03"


def test_sequence_number_never_wraps():
    a, b = pair()
    a._write.seq = (1 << 64) - 1
    a.write(ContentType.APPLICATION_DATA, b"last")
    b._read.seq = (1 << 64) - 1
    assert transfer(a, b)[0].content == b"last"
    with pytest.raises(AlertError) as err:
        a.write(ContentType.APPLICATION_DATA, b"one too many")
        a.data_to_send()
    assert err.value.description == AlertDescription.internal_error


def test_aes_gcm_asks_for_key_update_before_its_limit():
    a, _ = pair(0x1301)
    assert not a.write_key_update_due
    a._write.seq = 1 << 24
    assert a.write_key_update_due
    c, _ = pair(0x1303)
    c._write.seq = 1 << 40
    assert not c.write_key_update_due


def test_input_split_at_every_byte_gives_the_same_records():
    a, b = pair()
    a.write(ContentType.APPLICATION_DATA, b"one")
    a.write(ContentType.HANDSHAKE, b"\x04\x00\x00\x01\x00")
    a.write(ContentType.APPLICATION_DATA, b"three")
    wire = a.data_to_send()
    got = []
    for byte in wire:
        b.receive_data(bytes([byte]))
        got += all_records(b)
    assert [r.content for r in got] == [b"one", b"\x04\x00\x00\x01\x00", b"three"]


# ---------------------------------------------------------------------------
# What the receiver must refuse (RFC 8446 §5, §6), each with its alert


def expect_alert(layer: RecordLayer, wire: bytes, description: AlertDescription):
    layer.receive_data(wire)
    with pytest.raises(AlertError) as err:
        all_records(layer)
    assert err.value.description == description, err.value
    # sticky: the layer stays failed
    with pytest.raises(AlertError):
        layer.next_record()
    return err.value


def raw_seal(secret: bytes, inner: bytes, seq=0, suite=0x1301, outer_type=23) -> bytes:
    key, iv = traffic_key_iv(CIPHER_SUITES[suite], secret)
    length = len(inner) + 16
    header = bytes((outer_type, 3, 3, length >> 8, length & 0xFF))
    nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
    return header + AESGCM(key).encrypt(nonce, inner, header)


def reader_with_key(level=Level.APPLICATION, handshaking=False):
    secret = os.urandom(32)
    layer = RecordLayer()
    layer.set_read_key(0x1301, secret, level)
    layer.handshaking = handshaking
    return layer, secret


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n", b"\x00\x03\x03\x00\x01\x00", b"\xff" * 8,
                                     b"SSH-2.0-OpenSSH\r\n"])
def test_garbage_fails_at_the_header(garbage):
    expect_alert(RecordLayer(), garbage, AlertDescription.unexpected_message)


def test_oversized_plaintext_record_fails_from_its_header():
    expect_alert(RecordLayer(), b"\x16\x03\x03\x40\x01", AlertDescription.record_overflow)


def test_oversized_ciphertext_record_fails_from_its_header():
    layer, _ = reader_with_key()
    length = MAX_CIPHERTEXT + 1
    expect_alert(layer, bytes((23, 3, 3, length >> 8, length & 0xFF)), AlertDescription.record_overflow)


def test_largest_legal_ciphertext_with_padding_is_accepted():
    layer, secret = reader_with_key()
    inner = b"a" * 10 + b"\x17" + bytes(MAX_PLAINTEXT - 10)  # 2^14 + 1 bytes
    layer.receive_data(raw_seal(secret, inner))
    assert layer.next_record().content == b"a" * 10


def test_inner_plaintext_over_limit_is_record_overflow():
    layer, secret = reader_with_key()
    inner = b"a" * MAX_PLAINTEXT + b"\x17" + b"\x00"  # 2^14 + 2 bytes, still under 2^14+256
    expect_alert(layer, raw_seal(secret, inner), AlertDescription.record_overflow)


def test_bad_tag_is_bad_record_mac():
    layer, secret = reader_with_key()
    record = bytearray(raw_seal(secret, b"data\x17"))
    record[-1] ^= 1
    expect_alert(layer, bytes(record), AlertDescription.bad_record_mac)


def test_wrong_sequence_number_is_bad_record_mac():
    layer, secret = reader_with_key()
    expect_alert(layer, raw_seal(secret, b"data\x17", seq=1), AlertDescription.bad_record_mac)


def test_too_short_to_hold_a_tag_is_bad_record_mac():
    layer, _ = reader_with_key()
    expect_alert(layer, b"\x17\x03\x03\x00\x05hello", AlertDescription.bad_record_mac)


def test_all_padding_is_unexpected_message():
    layer, secret = reader_with_key()
    expect_alert(layer, raw_seal(secret, bytes(40)), AlertDescription.unexpected_message)  # §5.4


def test_zero_length_application_data_is_allowed():
    layer, secret = reader_with_key()
    layer.receive_data(raw_seal(secret, b"\x17\x00\x00"))
    record = layer.next_record()
    assert record.content_type == ContentType.APPLICATION_DATA and record.content == b""


def test_zero_length_handshake_is_unexpected_message():
    layer, secret = reader_with_key()
    expect_alert(layer, raw_seal(secret, b"\x16"), AlertDescription.unexpected_message)
    expect_alert(RecordLayer(), b"\x16\x03\x03\x00\x00", AlertDescription.unexpected_message)


def test_unknown_inner_type_is_unexpected_message():
    layer, secret = reader_with_key()
    expect_alert(layer, raw_seal(secret, b"x\x63"), AlertDescription.unexpected_message)


def test_protected_change_cipher_spec_is_unexpected_message():
    layer, secret = reader_with_key(handshaking=True)
    expect_alert(layer, raw_seal(secret, b"\x01\x14"), AlertDescription.unexpected_message)


def test_compat_ccs_is_dropped_during_the_handshake_even_when_keys_are_in_use():
    layer, secret = reader_with_key(Level.HANDSHAKE, handshaking=True)
    layer._hello_seen = True
    layer.receive_data(b"\x14\x03\x03\x00\x01\x01" + raw_seal(secret, b"\x08\x00\x00\x00\x16"))
    assert layer.next_record().content_type == ContentType.HANDSHAKE


@pytest.mark.parametrize("ccs", [b"\x14\x03\x03\x00\x01\x02", b"\x14\x03\x03\x00\x02\x01\x01",
                                 b"\x14\x03\x03\x00\x00"])
def test_any_other_ccs_is_unexpected_message(ccs):
    layer = RecordLayer()
    layer._hello_seen = True
    expect_alert(layer, ccs, AlertDescription.unexpected_message)


def test_ccs_before_the_first_client_hello_is_unexpected_message():
    expect_alert(RecordLayer(), b"\x14\x03\x03\x00\x01\x01", AlertDescription.unexpected_message)


def test_ccs_after_the_peers_finished_is_unexpected_message():
    layer, _ = reader_with_key(handshaking=False)
    layer._hello_seen = True
    expect_alert(layer, b"\x14\x03\x03\x00\x01\x01", AlertDescription.unexpected_message)


def test_client_hello_then_ccs_is_fine_for_a_server():
    server = RecordLayer()
    server.receive_data(b"\x16\x03\x01\x00\x04\x01\x00\x00\x00" + b"\x14\x03\x03\x00\x01\x01")
    assert server.next_record().content_type == ContentType.HANDSHAKE
    assert server.next_record() is None


def test_plaintext_handshake_after_keys_is_unexpected_message():
    layer, _ = reader_with_key(Level.HANDSHAKE, handshaking=True)
    expect_alert(layer, b"\x16\x03\x03\x00\x04\x14\x00\x00\x00", AlertDescription.unexpected_message)


def test_plaintext_alert_during_the_handshake_reports_the_peer_alert():
    layer, _ = reader_with_key(Level.HANDSHAKE, handshaking=True)
    layer.receive_data(b"\x15\x03\x03\x00\x02\x02\x28")
    with pytest.raises(PeerAlert) as err:
        layer.next_record()
    assert err.value.description == AlertDescription.handshake_failure


def test_plaintext_alert_after_the_handshake_is_unexpected_message():
    layer, _ = reader_with_key()
    expect_alert(layer, b"\x15\x03\x03\x00\x02\x02\x28", AlertDescription.unexpected_message)


def test_plaintext_application_data_is_unexpected_message():
    expect_alert(RecordLayer(), b"\x17\x03\x03\x00\x20" + bytes(32), AlertDescription.unexpected_message)


def test_application_data_at_handshake_level_is_unexpected_message():
    layer, secret = reader_with_key(Level.HANDSHAKE, handshaking=True)
    expect_alert(layer, raw_seal(secret, b"hi\x17"), AlertDescription.unexpected_message)


@pytest.mark.parametrize("payload", [b"\x02", b"\x02\x28\x02\x28"])
def test_alert_record_must_hold_exactly_one_alert(payload):
    layer, secret = reader_with_key()
    expect_alert(layer, raw_seal(secret, payload + b"\x15"), AlertDescription.decode_error)


@pytest.mark.parametrize("level_byte", [1, 2])
def test_error_alert_is_fatal_whatever_its_level(level_byte):
    layer, secret = reader_with_key()
    layer.receive_data(raw_seal(secret, bytes((level_byte, 20, 0x15))))
    with pytest.raises(PeerAlert) as err:
        layer.next_record()
    assert err.value.description == AlertDescription.bad_record_mac
    with pytest.raises(PeerAlert):  # sticky
        layer.next_record()


def test_unknown_alert_is_an_error_alert():
    layer, secret = reader_with_key()
    layer.receive_data(raw_seal(secret, b"\x01\xfe\x15"))
    with pytest.raises(PeerAlert) as err:
        layer.next_record()
    assert err.value.description == 0xFE


def test_close_notify_closes_reading_and_later_records_are_ignored():
    a, b = pair()
    a.write(ContentType.APPLICATION_DATA, b"before")
    a.write_alert(AlertDescription.close_notify)
    wire = a.data_to_send()
    b.receive_data(wire + b"\x17\x03\x03\x00\x30" + os.urandom(48) + b"garbage")
    records = all_records(b)
    assert [r.content_type for r in records] == [ContentType.APPLICATION_DATA, ContentType.ALERT]
    assert b.read_closed and b.next_record() is None
    b.receive_data(b"more garbage")  # §6.1: ignored
    assert b.next_record() is None
    assert a.write_closed
    with pytest.raises(UsageError):
        a.write(ContentType.APPLICATION_DATA, b"after close")
    # b may still write (TLS 1.3 closes each direction on its own).
    b.write(ContentType.APPLICATION_DATA, b"reply")
    assert transfer(b, a)[0].content == b"reply"


def test_user_canceled_is_not_fatal():
    a, b = pair()
    a.write_alert(AlertDescription.user_canceled)
    assert not a.write_closed
    a.write(ContentType.APPLICATION_DATA, b"still here")
    records = transfer(a, b)
    assert [r.content_type for r in records] == [ContentType.ALERT, ContentType.APPLICATION_DATA]


def test_alert_encoding():
    assert encode_alert(AlertDescription.close_notify) == b"\x01\x00"
    assert encode_alert(AlertDescription.decode_error) == b"\x02\x32"
    assert decode_alert(b"\x02\x28") == (2, 40)


def test_fatal_alert_sent_closes_writing_and_is_its_own_record():
    a, b = pair()
    a.write(ContentType.APPLICATION_DATA, b"pending")
    a.write_alert(AlertDescription.internal_error)
    a.write_alert(AlertDescription.close_notify)  # ignored: already closed
    b.receive_data(a.data_to_send())
    assert b.next_record().content == b"pending"
    with pytest.raises(PeerAlert):
        b.next_record()


def test_plaintext_alert_before_keys():
    layer = RecordLayer()
    layer.write_alert(AlertDescription.handshake_failure)
    assert layer.data_to_send() == b"\x15\x03\x03\x00\x02\x02\x28"


# ---------------------------------------------------------------------------
# Writer misuse and caps


def test_application_data_needs_an_application_or_early_key():
    layer = RecordLayer()
    with pytest.raises(UsageError):
        layer.write(ContentType.APPLICATION_DATA, b"x")
    layer.set_write_key(0x1301, bytes(32), Level.HANDSHAKE)
    with pytest.raises(UsageError):
        layer.write(ContentType.APPLICATION_DATA, b"x")
    layer.set_write_key(0x1301, bytes(32), Level.EARLY_DATA)
    layer.write(ContentType.APPLICATION_DATA, b"x")


def test_write_key_change_seals_pending_data_under_the_old_key():
    a, b = pair(level=Level.HANDSHAKE)
    a.write(ContentType.HANDSHAKE, b"\x14\x00\x00\x01\x00")
    new = os.urandom(32)
    a.set_write_key(0x1301, new, Level.APPLICATION)
    a.write(ContentType.APPLICATION_DATA, b"app")
    b.receive_data(a.data_to_send())
    assert b.next_record().level == Level.HANDSHAKE
    b.set_read_key(0x1301, new, Level.APPLICATION)
    assert b.next_record().content == b"app"


def test_plaintext_handshake_is_fragmented_at_2_14():
    layer = RecordLayer()
    layer.write(ContentType.HANDSHAKE, b"\x0b" + bytes(MAX_PLAINTEXT + 10))
    wire = layer.data_to_send()
    assert wire[3:5] == b"\x40\x00" and len(wire) == 2 * 5 + MAX_PLAINTEXT + 11
    peer = RecordLayer()
    peer.receive_data(wire)
    assert [len(r.content) for r in all_records(peer)] == [MAX_PLAINTEXT, 11]


def test_buffered_input_cap():
    layer = RecordLayer(max_buffered_input=100)
    layer.receive_data(b"\x16\x03\x03\x00\x60" + bytes(90))
    with pytest.raises(UsageError):
        layer.receive_data(bytes(10))


def test_usage_errors_for_alerts_and_ccs_through_write():
    layer = RecordLayer()
    with pytest.raises(UsageError):
        layer.write(ContentType.ALERT, b"\x02\x28")
    with pytest.raises(UsageError):
        layer.write(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    with pytest.raises(UsageError):
        RecordLayer().update_read_key()
    with pytest.raises(UsageError):
        PadToMultiple(0)
    with pytest.raises(UsageError):
        RecordCipher(0x1304, bytes(32))


# ---------------------------------------------------------------------------
# 0-RTT a server does not take (§4.2.10)


def early_records(n, size=100):
    secret = os.urandom(32)
    return b"".join(raw_seal(secret, b"e" * size + b"\x17", seq=i) for i in range(n))


def test_rejected_early_data_is_skipped_by_trial_decryption():
    server, hs_secret = reader_with_key(Level.HANDSHAKE, handshaking=True)
    server.skip_early_data(1000, trial_decrypt=True)
    server.receive_data(early_records(3) + raw_seal(hs_secret, b"\x14\x00\x00\x00\x16"))
    record = server.next_record()
    assert record.content_type == ContentType.HANDSHAKE and not server.skipping_early_data
    # After skipping ends, a bad record is bad_record_mac again.
    expect_alert(server, early_records(1), AlertDescription.bad_record_mac)


def test_rejected_early_data_beyond_the_budget_fails():
    server, _ = reader_with_key(Level.HANDSHAKE, handshaking=True)
    server.skip_early_data(250, trial_decrypt=True)
    expect_alert(server, early_records(3), AlertDescription.bad_record_mac)


def test_early_data_after_hello_retry_request_is_skipped_until_client_hello_2():
    server = RecordLayer()
    server._hello_seen = True
    server.skip_early_data(1000, trial_decrypt=False)
    server.receive_data(early_records(2) + b"\x14\x03\x03\x00\x01\x01" + b"\x16\x03\x03\x00\x04\x01\x00\x00\x00")
    assert server.next_record().content_type == ContentType.HANDSHAKE
    assert not server.skipping_early_data
    expect_alert(server, early_records(1), AlertDescription.unexpected_message)


def test_early_data_after_hello_retry_request_beyond_the_budget_fails():
    server = RecordLayer()
    server.skip_early_data(150, trial_decrypt=False)
    expect_alert(server, early_records(2), AlertDescription.unexpected_message)


# ---------------------------------------------------------------------------
# Property: arbitrary input ends in a record, None, or our own error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans(), st.booleans())
def test_arbitrary_input_raises_only_tls_errors(data, keyed, handshaking):
    layer = RecordLayer()
    if keyed:
        layer.set_read_key(0x1301, bytes(32), Level.HANDSHAKE)
    layer.handshaking = handshaking
    layer._hello_seen = True
    layer.receive_data(data)
    try:
        for _ in range(100):
            if layer.next_record() is None:
                break
    except (AlertError, PeerAlert):
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=6), st.sampled_from(SUITES),
       st.lists(st.integers(1, 5000), max_size=10))
def test_any_writes_any_cuts_same_bytes(chunks, suite, cuts):
    a, b = pair(suite)
    for chunk in chunks:
        a.write(ContentType.APPLICATION_DATA, chunk)
    wire = a.data_to_send()
    got, pos = [], 0
    for cut in cuts + [len(wire)]:
        b.receive_data(wire[pos:pos + cut])
        pos += cut
        got += all_records(b)
    b.receive_data(wire[pos:])
    got += all_records(b)
    assert b"".join(r.content for r in got) == b"".join(chunks)
