# pyquic.crypto against RFC 9001 and RFC 9369 Appendix A: Initial secrets,
# key/iv/hp, key update ("ku"), and the Retry integrity tag, for whichever
# packet-protection backend is active and for both explicitly.
import pytest

from pyquic import _crypto, _crypto_py, crypto
from pyquic.versions import QUIC_V1, QUIC_V2
from tls.key_schedule import hkdf_label

from .vectors import h, load

CASES = [(QUIC_V1, "rfc9001_appendix_a.json"), (QUIC_V2, "rfc9369_appendix_a.json")]


@pytest.fixture(params=[_crypto, _crypto_py], ids=["c", "python"])
def backend(request, monkeypatch):
    monkeypatch.setattr(crypto, "backend", request.param)
    return request.param


def test_c_extension_is_the_default_backend():
    assert crypto.backend is _crypto
    assert _crypto.IMPLEMENTATION == "c"


@pytest.mark.parametrize("version,name", CASES)
def test_initial_secrets_and_keys(version, name, backend):
    v = load(name)
    dcid = h(v["client_destination_connection_id"])
    client, server = crypto.initial_secrets(version, dcid)
    assert client == h(v["client"]["client_initial_secret"])
    assert server == h(v["server"]["server_initial_secret"])
    send, recv = crypto.initial_keys(version, dcid, is_client=True)
    assert send.secret == client and recv.secret == server
    assert send.hp_key == h(v["client"]["hp"])
    assert recv.hp_key == h(v["server"]["hp"])
    s_send, s_recv = crypto.initial_keys(version, dcid, is_client=False)
    assert s_send.secret == server and s_recv.secret == client


@pytest.mark.parametrize("version,name", CASES)
def test_client_initial_protects_byte_for_byte(version, name, backend):
    v = load(name)
    ci = v["client_initial"]
    send, _ = crypto.initial_keys(version, h(v["client_destination_connection_id"]), is_client=True)
    payload = h(ci["payload_frames"]).ljust(ci["payload_length"], b"\x00")
    packet = send.protection.protect(h(ci["unprotected_header"]), payload, ci["packet_number"])
    assert packet == h(ci["protected_packet"])
    # The server opens it with its receive keys.
    _, s_recv = crypto.initial_keys(version, h(v["client_destination_connection_id"]), is_client=False)
    pn_offset = len(h(ci["unprotected_header"])) - ci["packet_number_length"]
    header, plain, pn = s_recv.protection.unprotect(packet, pn_offset, -1)
    assert (header, plain, pn) == (h(ci["unprotected_header"]), payload, ci["packet_number"])


@pytest.mark.parametrize("version,name", CASES)
def test_server_initial_protects_byte_for_byte(version, name, backend):
    v = load(name)
    si = v["server_initial"]
    send, _ = crypto.initial_keys(version, h(v["client_destination_connection_id"]), is_client=False)
    packet = send.protection.protect(h(si["unprotected_header"]), h(si["payload"]), si["packet_number"])
    assert packet == h(si["protected_packet"])


@pytest.mark.parametrize("version,name", CASES)
def test_chacha20_short_header_and_key_update(version, name, backend):
    v = load(name)["chacha20_poly1305_short_header"]
    keys = crypto.derive_packet_keys(version, 0x1303, h(v["secret"]))
    assert keys.hp_key == h(v["hp"])
    packet = keys.protection.protect(h(v["unprotected_header"]), h(v["payload_plaintext"]), v["packet_number"])
    assert packet == h(v["protected_packet"])
    # Receiver side: the largest packet number received so far is just below.
    header, plain, pn = keys.protection.unprotect(packet, 1, v["packet_number"] - 1)
    assert pn == v["packet_number"] and plain == h(v["payload_plaintext"])
    # RFC 9001 §6.1 / A.5: the next phase's secret is HKDF-Expand-Label(secret, "quic ku").
    nxt = keys.next_phase()
    assert nxt.secret == h(v["ku"])
    assert nxt.hp_key == keys.hp_key  # header protection keys are not updated
    assert nxt.protection.protect(h(v["unprotected_header"]), b"\x01", 1) != keys.protection.protect(
        h(v["unprotected_header"]), b"\x01", 1
    )


@pytest.mark.parametrize("version,name", CASES)
def test_retry_integrity_tag(version, name, backend):
    v = load(name)
    retry = v["retry"]
    odcid = h(retry["original_destination_connection_id"])
    packet = h(retry["packet"])
    assert crypto.retry_integrity_tag(version, odcid, packet[:-16]) == packet[-16:]
    assert crypto.verify_retry_integrity(version, odcid, packet)
    tampered = bytearray(packet)
    tampered[10] ^= 1
    assert not crypto.verify_retry_integrity(version, odcid, bytes(tampered))
    assert not crypto.verify_retry_integrity(version, odcid + b"\x00", packet)
    assert not crypto.verify_retry_integrity(version, odcid, packet[:10])


def test_retry_key_and_nonce_derive_from_the_published_secret():
    for version, name in CASES:
        ri = load(name)["retry_integrity"]
        info = crypto.version_info(version)
        prefix = info.label_prefix
        from tls.key_schedule import hkdf_expand_label

        assert hkdf_expand_label("sha256", h(ri["secret"]), prefix + b"key", b"", 16) == info.retry_key
        assert hkdf_expand_label("sha256", h(ri["secret"]), prefix + b"iv", b"", 12) == info.retry_nonce


def test_hkdf_label_encodings():
    v = load("rfc9001_appendix_a.json")
    lengths = {"client in": 32, "server in": 32, "quic key": 16, "quic iv": 12, "quic hp": 16}
    for label, encoded in v["hkdf_label_encodings"].items():
        assert hkdf_label(label.encode(), b"", lengths[label]) == h(encoded)


def test_unknown_version_is_a_clear_error():
    with pytest.raises(ValueError, match="unsupported QUIC version"):
        crypto.initial_secrets(0x0A0A0A0A, b"\x01" * 8)
