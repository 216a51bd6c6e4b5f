# tls.certificates: Wycheproof ECDSA P-256/P-384, Ed25519 and RSA-PSS through
# verify_signature; RFC 8448's CertificateVerify signatures (§3, §5, §6, §7)
# and the §2 RSA key signing for the §3 certificate; scheme rules (§4.2.3);
# loading; chain verification through cryptography.x509.verification with the
# alert mapping, over the test PKI for every key type.
import datetime as dt
import hashlib
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tls.certificates import (
    DEFAULT_SIGNATURE_SCHEMES,
    CertifiedKey,
    TrustStore,
    certificate_verify_content,
    choose_signature_scheme,
    load_certificate_chain,
    load_private_key,
    schemes_for_key,
    verify_certificate_verify,
    verify_chain,
    verify_signature,
)
from tls.enums import AlertDescription as AD
from tls.enums import SignatureScheme as S
from tls.errors import AlertError, UsageError

from .pki import KEY_TYPES, VALID_NOW, make_test_pki
from .vectors import h, load


def _alert(expected, fn, *args, **kw):
    with pytest.raises(AlertError) as info:
        fn(*args, **kw)
    assert info.value.description == expected, info.value
    return info.value


# ---------------------------------------------------------------------------
# Wycheproof


@pytest.mark.parametrize("name,scheme,total", [
    ("ecdsa_secp256r1_sha256_test.json", S.ECDSA_SECP256R1_SHA256, 484),
    ("ecdsa_secp384r1_sha384_test.json", S.ECDSA_SECP384R1_SHA384, None),
    ("ed25519_test.json", S.ED25519, 151),
    ("rsa_pss_2048_sha256_mgf1_32_test.json", S.RSA_PSS_RSAE_SHA256, 108),
])
def test_wycheproof_signatures(name, scheme, total):
    seen = 0
    for g in load(f"wycheproof/{name}")["testGroups"]:
        key = serialization.load_der_public_key(h(g["publicKeyDer"]))
        for t in g["tests"]:
            seen += 1
            try:
                verify_signature(key, scheme, h(t["sig"]), h(t["msg"]))
                ok = True
            except AlertError as e:
                assert e.description == AD.decrypt_error, t["tcId"]
                ok = False
            if t["result"] == "valid":
                assert ok, (t["tcId"], t["comment"])
            elif t["result"] == "invalid":
                assert not ok, (t["tcId"], t["comment"])
    assert seen > 100
    if total:
        assert seen == total


# ---------------------------------------------------------------------------
# RFC 8448


def _summary(n):
    return load("rfc8448.json")["sections"][n]["summary"]


def _certificates(message: bytes) -> list[x509.Certificate]:
    """The certificate_list of a Certificate message (RFC 8446 §4.4.2)."""
    assert message[0] == 11
    body = message[4:]
    ctx_len = body[0]
    pos = 1 + ctx_len
    end = pos + 3 + int.from_bytes(body[pos : pos + 3], "big")
    pos += 3
    certs = []
    while pos < end:
        n = int.from_bytes(body[pos : pos + 3], "big")
        certs.append(x509.load_der_x509_certificate(body[pos + 3 : pos + 3 + n]))
        pos += 3 + n
        pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
    return certs


def _certificate_verifies(n):
    """(sender, cert, scheme, signature, content) for each CertificateVerify."""
    msgs = _summary(n)["handshake_messages"]
    transcript = b""
    cert = {}
    out = []
    for i, m in enumerate(msgs):
        data = h(m["hex"])
        if m["type"] == "HelloRetryRequest":
            transcript = b"\xfe\x00\x00\x20" + hashlib.sha256(transcript).digest()
        if m["type"] == "Certificate":
            cert[m["sender"]] = _certificates(data)[0]
        if m["type"] == "CertificateVerify":
            scheme = int.from_bytes(data[4:6], "big")
            sig = data[8 : 8 + int.from_bytes(data[6:8], "big")]
            content = certificate_verify_content(m["sender"] == "server", hashlib.sha256(transcript).digest())
            out.append((m["sender"], cert[m["sender"]], scheme, sig, content))
        transcript += data
    return out


def _rfc8448_rsa_key() -> rsa.RSAPrivateKey:
    k = load("rfc8448.json")["server_rsa_private_key"]
    n = lambda name: int(k[name], 16)  # noqa: E731
    public = rsa.RSAPublicNumbers(n("public_exponent"), n("modulus"))
    return rsa.RSAPrivateNumbers(n("prime1"), n("prime2"), n("private_exponent"), n("exponent1"),
                                 n("exponent2"), n("coefficient"), public).private_key()


@pytest.mark.parametrize("n", ["3", "5", "6", "7"])
def test_rfc8448_certificate_verify(n):
    found = _certificate_verifies(n)
    assert found
    for sender, cert, scheme, sig, content in found:
        verify_certificate_verify(cert, scheme, sig, content)
        verify_certificate_verify(cert, scheme, sig, content, offered_schemes=DEFAULT_SIGNATURE_SCHEMES)
        # the other side's context string does not verify
        other = certificate_verify_content(sender != "server", content[-32:])
        _alert(AD.decrypt_error, verify_certificate_verify, cert, scheme, sig, other)
    if n == "6":
        assert {(s, sc) for s, _, sc, _, _ in found} == {("server", S.ECDSA_SECP256R1_SHA256),
                                                          ("client", S.RSA_PSS_RSAE_SHA256)}


def test_rfc8448_rsa_key_signs_for_s3_certificate():
    key = _rfc8448_rsa_key()
    cert = _certificates(h(_summary("3")["handshake_messages"][3]["hex"]))[0]
    ck = CertifiedKey([cert], key)
    # a 1024-bit key: too small for PSS with SHA-512 and a 64-byte salt (needs 130 bytes)
    assert key.key_size == 1024
    assert ck.supported_schemes() == [S.RSA_PSS_RSAE_SHA256, S.RSA_PSS_RSAE_SHA384]
    content = certificate_verify_content(True, bytes(32))
    for scheme in ck.supported_schemes():
        sig = ck.sign(scheme, content)
        verify_certificate_verify(cert, scheme, sig, content)
    # RSA-PSS is randomised: two signatures differ, both verify
    assert ck.sign(S.RSA_PSS_RSAE_SHA256, content) != ck.sign(S.RSA_PSS_RSAE_SHA256, content)
    assert ck.sign_certificate_verify(S.RSA_PSS_RSAE_SHA256, True, bytes(32))
    with pytest.raises(UsageError):
        ck.sign(S.RSA_PKCS1_SHA256, content)


# ---------------------------------------------------------------------------
# Scheme rules (RFC 8446 §4.2.3, §4.4.3)


def test_certificate_verify_content_layout():
    c = certificate_verify_content(True, b"\xaa" * 32)
    assert c == b" " * 64 + b"TLS 1.3, server CertificateVerify\x00" + b"\xaa" * 32
    assert certificate_verify_content(False, b"")[64:] == b"TLS 1.3, client CertificateVerify\x00"


def test_pkcs1_and_sha1_refused_in_certificate_verify():
    key = _rfc8448_rsa_key()
    cert = _certificates(h(_summary("3")["handshake_messages"][3]["hex"]))[0]
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    msg = b"content"
    pkcs1 = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    for scheme in (S.RSA_PKCS1_SHA256, S.RSA_PKCS1_SHA384, S.RSA_PKCS1_SHA512, 0x0201, 0x0203):
        _alert(AD.illegal_parameter, verify_certificate_verify, cert, scheme, pkcs1, msg)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_sign_verify_and_mismatched_schemes(key_type):
    pki = make_test_pki(key_type)
    ck = pki.server.certified_key()
    content = certificate_verify_content(True, b"\x01" * 32)
    for scheme in ck.supported_schemes():
        sig = ck.sign(scheme, content)
        verify_certificate_verify(pki.server.cert, scheme, sig, content)
        bad = bytearray(sig)
        bad[len(bad) // 2] ^= 0x40
        _alert(AD.decrypt_error, verify_certificate_verify, pki.server.cert, scheme, bytes(bad), content)
        _alert(AD.decrypt_error, verify_certificate_verify, pki.server.cert, scheme, sig, content + b"x")
        _alert(AD.illegal_parameter, verify_certificate_verify, pki.server.cert, scheme, sig, content,
               offered_schemes=[s for s in DEFAULT_SIGNATURE_SCHEMES if s != scheme])
    usable = set(ck.supported_schemes())
    for scheme in DEFAULT_SIGNATURE_SCHEMES:
        if scheme not in usable:  # e.g. ecdsa_secp384r1_sha384 with a P-256 key, rsa_pss_pss with rsaEncryption
            _alert(AD.illegal_parameter, verify_certificate_verify, pki.server.cert, scheme, b"\x00" * 64, content)


def test_schemes_by_key_type():
    expected = {"p256": [S.ECDSA_SECP256R1_SHA256], "p384": [S.ECDSA_SECP384R1_SHA384],
                "ed25519": [S.ED25519],
                "rsa2048": [S.RSA_PSS_RSAE_SHA256, S.RSA_PSS_RSAE_SHA384, S.RSA_PSS_RSAE_SHA512]}
    for key_type, schemes in expected.items():
        pki = make_test_pki(key_type)
        assert pki.server.certified_key().supported_schemes() == schemes
        assert schemes_for_key(pki.server.cert.public_key()) == schemes
    assert schemes_for_key(ec.generate_private_key(ec.SECP521R1())) == [S.ECDSA_SECP521R1_SHA512]


def test_choose_signature_scheme():
    rsa_ck = make_test_pki("rsa2048").server.certified_key()
    assert choose_signature_scheme(rsa_ck, [S.RSA_PSS_RSAE_SHA512, S.RSA_PSS_RSAE_SHA256]) == S.RSA_PSS_RSAE_SHA256
    assert rsa_ck.choose_scheme([S.RSA_PSS_RSAE_SHA512, S.RSA_PSS_RSAE_SHA256],
                                our_schemes=[S.RSA_PSS_RSAE_SHA512, S.RSA_PSS_RSAE_SHA256]) == S.RSA_PSS_RSAE_SHA512
    _alert(AD.handshake_failure, choose_signature_scheme, rsa_ck, [S.RSA_PKCS1_SHA256, S.ED25519])
    p256 = make_test_pki().server.certified_key()
    _alert(AD.handshake_failure, choose_signature_scheme, p256, [S.ECDSA_SECP384R1_SHA384])
    assert choose_signature_scheme(p256.private_key, [S.ECDSA_SECP256R1_SHA256]) == S.ECDSA_SECP256R1_SHA256


def test_rsassa_pss_key_uses_rsa_pss_pss(tmp_path):
    key_path, cert_path = tmp_path / "pss.key", tmp_path / "pss.crt"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key_path)], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(key_path), "-subj", "/CN=pss",
                    "-days", "2", "-out", str(cert_path)], check=True, capture_output=True)
    ck = CertifiedKey.load(str(cert_path), str(key_path))
    assert ck.supported_schemes() == [S.RSA_PSS_PSS_SHA256, S.RSA_PSS_PSS_SHA384, S.RSA_PSS_PSS_SHA512]
    content = certificate_verify_content(False, bytes(48))
    sig = ck.sign(S.RSA_PSS_PSS_SHA384, content)
    verify_certificate_verify(ck.leaf, S.RSA_PSS_PSS_SHA384, sig, content)
    _alert(AD.illegal_parameter, verify_certificate_verify, ck.leaf, S.RSA_PSS_RSAE_SHA384, sig, content)


# ---------------------------------------------------------------------------
# Loading


def test_load_pem_der_paths_and_passwords(tmp_path):
    pki = make_test_pki()
    files = pki.write_pem(tmp_path)
    chain = load_certificate_chain(files["server_chain"])
    assert chain == pki.server.chain
    assert load_certificate_chain(str(files["server_chain"])) == chain
    assert load_certificate_chain(files["server_chain"].read_bytes()) == chain
    der = pki.server.cert.public_bytes(serialization.Encoding.DER)
    assert load_certificate_chain(der) == [pki.server.cert]
    key = load_private_key(files["server_key"])
    ck = CertifiedKey(chain, key)
    assert ck.chain_der[0] == der
    encrypted = pki.server.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(b"secret"))
    assert isinstance(load_private_key(encrypted, "secret"), ec.EllipticCurvePrivateKey)
    with pytest.raises((TypeError, ValueError)):
        load_private_key(encrypted, b"wrong")
    key_der = pki.server.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
    assert isinstance(load_private_key(key_der), ec.EllipticCurvePrivateKey)
    # key and chain in one PEM
    both = files["server_chain"].read_bytes() + files["server_key"].read_bytes()
    assert CertifiedKey.load(both).leaf == pki.server.cert
    with pytest.raises(UsageError):  # key does not match the leaf
        CertifiedKey(chain, pki.client.key)
    with pytest.raises(UsageError):
        CertifiedKey([], key)
    with pytest.raises(ValueError):
        load_certificate_chain(b"-----BEGIN NOTHING-----\n-----END NOTHING-----\n")


def test_trust_store_constructors(tmp_path):
    pki = make_test_pki()
    files = pki.write_pem(tmp_path / "all")
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    (trust_dir / "ca.pem").write_bytes(files["ca"].read_bytes())
    (trust_dir / "junk.txt").write_text("not a certificate")
    for store in (TrustStore.from_file(files["ca"]), TrustStore.from_dir(trust_dir),
                  TrustStore.from_pem(files["ca"].read_bytes()), pki.trust_store()):
        assert verify_chain(pki.server.chain_der, store, "localhost", True, VALID_NOW)[-1] == pki.ca
    assert verify_chain(pki.server.chain_der, pki.trust_store().store, "localhost", True, VALID_NOW)
    with pytest.raises(UsageError):
        TrustStore([])


def test_system_trust_store_loads_or_reports():
    # scripts/setup.sh installs ca-certificates, so the system store must load.
    store = TrustStore.system()
    assert store.certificates


# ---------------------------------------------------------------------------
# Chain verification and its alerts


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_verify_chain_mapping(key_type):
    pki = make_test_pki(key_type)
    trust = pki.trust_store()
    path = verify_chain(pki.server.chain_der, trust, "localhost", True, VALID_NOW)
    assert path == [pki.server.cert, pki.intermediate, pki.ca]
    assert verify_chain(pki.server.chain_der, trust, "127.0.0.1", True, VALID_NOW.timestamp())[0] == pki.server.cert
    assert verify_chain(pki.client.chain_der, trust, None, False, VALID_NOW)[0] == pki.client.cert
    assert verify_chain(pki.client_no_san.chain_der, trust, None, False, VALID_NOW)[0] == pki.client_no_san.cert
    _alert(AD.bad_certificate, verify_chain, pki.client_no_san.chain_der, trust, "localhost", True, VALID_NOW)
    cases = [
        (pki.expired, "localhost", True, AD.certificate_expired),
        (pki.not_yet_valid, "localhost", True, AD.certificate_expired),
        (pki.wrong_host, "localhost", True, AD.bad_certificate),
        (pki.server, "other.example", True, AD.bad_certificate),
        (pki.server, "127.0.0.2", True, AD.bad_certificate),
        (pki.unknown_ca, "localhost", True, AD.unknown_ca),
        (pki.bad_usage, "localhost", True, AD.unsupported_certificate),
        (pki.client, "client.pyquic.test", True, AD.unsupported_certificate),  # clientAuth only
        (pki.server, None, False, AD.unsupported_certificate),  # serverAuth only
    ]
    for leaf, name, is_server, expected in cases:
        e = _alert(expected, verify_chain, leaf.chain_der, trust, name, is_server, VALID_NOW)
        assert e.reason
    # a self-signed leaf: unknown_ca (or unsupported_certificate for Ed25519 self-signatures)
    with pytest.raises(AlertError) as info:
        verify_chain(pki.self_signed.chain_der, trust, "localhost", True, VALID_NOW)
    assert info.value.description in (AD.unknown_ca, AD.unsupported_certificate)
    # missing intermediate
    _alert(AD.unknown_ca, verify_chain, pki.server.chain_der[:1], trust, "localhost", True, VALID_NOW)
    # the good chain far in the future
    _alert(AD.certificate_expired, verify_chain, pki.server.chain_der, trust, "localhost", True,
           dt.datetime(2051, 1, 1, tzinfo=dt.timezone.utc))


def test_verify_chain_malformed_and_misuse():
    pki = make_test_pki()
    trust = pki.trust_store()
    _alert(AD.bad_certificate, verify_chain, [], trust, "localhost", True, VALID_NOW)
    _alert(AD.bad_certificate, verify_chain, [b"\x30\x03\x02\x01\x00"], trust, "localhost", True, VALID_NOW)
    _alert(AD.bad_certificate, verify_chain, [pki.server.chain_der[0][:-5]], trust, "localhost", True, VALID_NOW)
    with pytest.raises(UsageError):
        verify_chain(pki.server.chain_der, trust, None, True, VALID_NOW)
    # naive datetimes are taken as UTC
    assert verify_chain(pki.server.chain_der, trust, "localhost", True, VALID_NOW.replace(tzinfo=None))
    # an untrusted intermediate sent as the only CA does not help
    other = make_test_pki("p384").trust_store()
    _alert(AD.unknown_ca, verify_chain, pki.server.chain_der, other, "localhost", True, VALID_NOW)


def test_pki_write_pem_files(tmp_path):
    files = make_test_pki("rsa2048").write_pem(tmp_path)
    for name in ("ca", "intermediate", "server_cert", "server_key", "server_chain", "client_chain",
                 "client_key", "expired_chain", "self_signed_key"):
        assert files[name].exists() and files[name].read_bytes().startswith(b"-----BEGIN")
    assert len(load_certificate_chain(files["server_chain"])) == 2


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_mutated_chains_raise_only_alerts(key_type):
    import random

    rnd = random.Random(key_type)
    pki = make_test_pki(key_type)
    trust = pki.trust_store()
    leaf_der, inter_der = pki.server.chain_der
    seen = set()
    for _ in range(120):
        leaf = bytearray(leaf_der)
        for _ in range(rnd.randint(1, 3)):
            leaf[rnd.randrange(len(leaf))] = rnd.getrandbits(8)
        try:
            verify_chain([bytes(leaf), inter_der], trust, "localhost", True, VALID_NOW)
            seen.add("accepted")  # a flip in an unsigned/ignored spot is possible in theory
        except AlertError as e:
            seen.add(e.description)
    assert AD.bad_certificate in seen


def test_alert_mapping_ignores_subject_names():
    from tls.certificates import _verification_alert

    tail = " (encountered processing <Certificate(subject=<Name(CN=expired eku issuer,O=x)>, ...)>)"
    assert _verification_alert("validation failed: leaf certificate has no matching subjectAltName" + tail) \
        == AD.bad_certificate
    assert _verification_alert("validation failed: required EKU not found" + tail) == AD.unsupported_certificate
    assert _verification_alert("validation failed: cert is not valid at validation time" + tail) \
        == AD.certificate_expired
    assert _verification_alert("validation failed: candidates exhausted: all candidates exhausted with no "
                               "interior errors") == AD.unknown_ca
    assert _verification_alert("validation failed: something new" + tail) == AD.bad_certificate


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_pki_files_work_with_python_ssl(tmp_path, key_type):
    """The written PEM files are usable by OpenSSL (through Python's ssl):
    an in-memory TLS 1.3 handshake with client auth verifies both chains."""
    import ssl

    files = make_test_pki(key_type).write_pem(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(files["server_chain"], files["server_key"])
    server.load_verify_locations(files["ca"])
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(files["ca"])
    client.load_cert_chain(files["client_chain"], files["client_key"])
    bios = [ssl.MemoryBIO() for _ in range(4)]
    c = client.wrap_bio(bios[0], bios[1], server_hostname="localhost")
    s = server.wrap_bio(bios[2], bios[3], server_side=True)
    done = [False, False]
    for _ in range(10):
        for i, (conn, out_bio, peer_in) in enumerate(((c, bios[1], bios[2]), (s, bios[3], bios[0]))):
            if not done[i]:
                try:
                    conn.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            data = out_bio.read()
            if data:
                peer_in.write(data)
        if all(done):
            break
    assert all(done)
    c.write(b"ping")  # the server reads after the client's Finished arrives
    bios[2].write(bios[1].read())
    assert s.read(4) == b"ping"
    assert s.getpeercert()["subject"]
    assert c.version() == "TLSv1.3"
