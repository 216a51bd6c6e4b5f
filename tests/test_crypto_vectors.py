# Known-answer tests for packet protection, run against both implementations
# (pyquic._crypto in C and pyquic._crypto_py): RFC 9001 Appendix A (QUIC v1)
# and RFC 9369 Appendix A (QUIC v2) packets byte for byte in both directions,
# Wycheproof AES-GCM and ChaCha20-Poly1305 through AEAD objects, and the RFC
# 9000 A.3 packet number decoding example.  Keys come from the JSON files, not
# from pyquic/crypto.py, so a key-schedule bug cannot hide a protection bug.
#
# Vectors: /work/shared/vectors (see its README.md), or $PYQUIC_VECTORS.
import importlib
import json
import os
from pathlib import Path

import pytest

IMPL_NAMES = {"c": "pyquic._crypto", "python": "pyquic._crypto_py"}


@pytest.fixture(params=sorted(IMPL_NAMES), scope="module")
def impl(request):
    # Imported here so that a missing or broken C extension fails every test
    # that needs it instead of being skipped.
    try:
        return importlib.import_module(IMPL_NAMES[request.param])
    except Exception as exc:  # noqa: BLE001 - any import problem is a failure
        pytest.fail(f"cannot import {IMPL_NAMES[request.param]}: {exc!r}")


def vectors_dir() -> Path:
    override = os.environ.get("PYQUIC_VECTORS")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "vectors"
    if not (path / "rfc9001_appendix_a.json").exists():
        pytest.fail(f"test vectors not found in {path} (set PYQUIC_VECTORS)")
    return path


def load(name: str) -> dict:
    return json.loads((vectors_dir() / name).read_text())


def h(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr)


def test_extension_is_the_expected_build():
    # scripts/asan.sh sets this so that the ASan run cannot silently test the normal build.
    expected = os.environ.get("PYQUIC_EXPECT_CRYPTO_FROM")
    if expected:
        module = importlib.import_module("pyquic._crypto")
        assert Path(module.__file__).resolve().is_relative_to(Path(expected).resolve()), module.__file__


# --------------------------------------------------- RFC 9001 / RFC 9369


RFCS = ["rfc9001_appendix_a.json", "rfc9369_appendix_a.json"]


def _initial_cases():
    for rfc in RFCS:
        for side in ("client", "server"):
            yield pytest.param(rfc, side, id=f"{rfc.split('_')[0]}-{side}")


INITIAL_CASES = list(_initial_cases())


def initial(rfc: str, side: str):
    data = load(rfc)
    keys, packet = data[side], data[f"{side}_initial"]
    if side == "client":
        # RFC 9001 A.2: the CRYPTO frame is padded with zeros to 1162 bytes.
        payload = h(packet["payload_frames"]).ljust(packet["payload_length"], b"\0")
    else:
        payload = h(packet["payload"])
    header = h(packet["unprotected_header"])
    pn_offset = len(header) - packet["packet_number_length"]
    return keys, packet, header, payload, pn_offset


@pytest.mark.parametrize("rfc,side", INITIAL_CASES)
def test_initial_protect(impl, rfc, side):
    keys, packet, header, payload, _ = initial(rfc, side)
    pp = impl.PacketProtection(impl.AES_128_GCM, h(keys["key"]), h(keys["iv"]), h(keys["hp"]))
    protected = pp.protect(header, payload, packet["packet_number"])
    assert protected.hex() == packet["protected_packet"]
    assert protected[: len(header)].hex() == packet["protected_header"]


@pytest.mark.parametrize("rfc,side", INITIAL_CASES)
def test_initial_unprotect(impl, rfc, side):
    keys, packet, header, payload, pn_offset = initial(rfc, side)
    pp = impl.PacketProtection(impl.AES_128_GCM, h(keys["key"]), h(keys["iv"]), h(keys["hp"]))
    got = pp.unprotect(h(packet["protected_packet"]), pn_offset, -1)
    assert got == (header, payload, packet["packet_number"])


@pytest.mark.parametrize("rfc,side", INITIAL_CASES)
def test_initial_parts(impl, rfc, side):
    """The same packet through AEAD and HeaderProtection separately: sample, mask, header."""
    keys, packet, header, payload, pn_offset = initial(rfc, side)
    hp = impl.HeaderProtection(impl.AES_128_GCM, h(keys["hp"]))
    assert hp.mask(h(packet["sample"])).hex() == packet["mask"]
    aead = impl.AEAD(impl.AES_128_GCM, h(keys["key"]), h(keys["iv"]))
    sealed = aead.seal(packet["packet_number"], header, payload)
    plain_packet = header + sealed
    sample_at = pn_offset + 4
    assert plain_packet[sample_at : sample_at + 16].hex() == packet["sample"]
    assert hp.apply(plain_packet, pn_offset).hex() == packet["protected_packet"]
    removed = hp.remove(h(packet["protected_packet"]), pn_offset)
    assert removed == (header, packet["packet_number"])
    assert aead.open(packet["packet_number"], header, sealed) == payload


@pytest.mark.parametrize("rfc", RFCS)
def test_chacha20_short_header(impl, rfc):
    v = load(rfc)["chacha20_poly1305_short_header"]
    pp = impl.PacketProtection(impl.CHACHA20_POLY1305, h(v["key"]), h(v["iv"]), h(v["hp"]))
    header, plaintext, pn = h(v["unprotected_header"]), h(v["payload_plaintext"]), v["packet_number"]
    protected = pp.protect(header, plaintext, pn)
    assert protected.hex() == v["protected_packet"]
    # Decoding the 3-byte truncated number needs a nearby largest_pn (RFC 9000 A.3).
    assert pp.unprotect(protected, 1, pn - 1) == (header, plaintext, pn)
    hp = impl.HeaderProtection(impl.CHACHA20_POLY1305, h(v["hp"]))
    assert hp.mask(h(v["sample"])).hex() == v["mask"]
    assert hp.remove(protected, 1) == (header, v["packet_number_encoded"])
    # The nonce: AEAD with iv=nonce and packet number 0 must seal identically.
    by_nonce = impl.AEAD(impl.CHACHA20_POLY1305, h(v["key"]), h(v["nonce"]))
    assert by_nonce.seal(0, header, plaintext).hex() == v["payload_ciphertext"]
    assert impl.AEAD(impl.CHACHA20_POLY1305, h(v["key"]), h(v["iv"])).seal(pn, header, plaintext) == by_nonce.seal(
        0, header, plaintext
    )


# -------------------------------------------------------------- Wycheproof


def wycheproof_cases(name: str, suites_by_key_size: dict):
    data = load(f"wycheproof/{name}")
    for group in data["testGroups"]:
        # The QUIC AEADs use 12-byte nonces and 16-byte tags only.
        if group["ivSize"] != 96 or group["tagSize"] != 128 or group["keySize"] not in suites_by_key_size:
            continue
        for test in group["tests"]:
            yield suites_by_key_size[group["keySize"]], test


def run_wycheproof(impl, cases):
    checked = {"valid": 0, "invalid": 0}
    failures = []
    for suite, t in cases:
        key, nonce, aad, msg = h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"])
        sealed = h(t["ct"]) + h(t["tag"])
        # nonce = iv XOR packet number, so iv=nonce with packet number 0 tests any nonce.
        aead = impl.AEAD(suite, key, nonce)
        if t["result"] == "valid":
            if aead.seal(0, aad, msg) != sealed or aead.open(0, aad, sealed) != msg:
                failures.append(t["tcId"])
        elif t["result"] == "invalid":
            try:
                aead.open(0, aad, sealed)
            except impl.CryptoError:
                pass
            else:
                failures.append(t["tcId"])
        else:  # "acceptable": either outcome, but an output must be the expected one
            try:
                assert aead.open(0, aad, sealed) == msg
            except impl.CryptoError:
                pass
        checked[t["result"]] = checked.get(t["result"], 0) + 1
    assert not failures, f"failed tcIds: {failures}"
    return checked


def test_wycheproof_aes_gcm(impl):
    checked = run_wycheproof(impl, wycheproof_cases("aes_gcm_test.json", {128: impl.AES_128_GCM, 256: impl.AES_256_GCM}))
    # Guards the filter above: the counts in the pinned Wycheproof copy.
    assert checked == {"valid": 79, "invalid": 54}


def test_wycheproof_chacha20_poly1305(impl):
    checked = run_wycheproof(impl, wycheproof_cases("chacha20_poly1305_test.json", {256: impl.CHACHA20_POLY1305}))
    assert checked == {"valid": 256, "invalid": 60}


# ----------------------------------------------------------------- RFC 9000


def test_rfc9000_packet_number_decoding(impl):
    examples = load("rfc9000_appendix_a.json")["packet_number_decoding_examples"]
    assert examples
    for ex in examples:
        got = impl.decode_packet_number(ex["truncated_pn"], ex["pn_nbits"] // 8, ex["largest_pn"])
        assert got == ex["decoded_pn"]


def test_rfc9000_packet_number_encoding_examples_round_trip(impl):
    # A.2's examples: the truncated number decodes back against the largest acked.
    for ex in load("rfc9000_appendix_a.json")["packet_number_encoding_examples"]:
        truncated = int(ex["truncated_pn_hex"], 16)
        assert impl.decode_packet_number(truncated, ex["encoded_bytes"], ex["largest_acked"]) == ex["full_pn"]
