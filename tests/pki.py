# A throw-away PKI for tests, generated in memory with `cryptography`:
# root CA -> intermediate -> leaves (server, client, and deliberately broken
# ones), for ECDSA P-256 (default), P-384, Ed25519 and RSA-2048.  Keys and
# certificates are cached per process (RSA generation is slow).  write_pem()
# puts them in a directory for tests against openssl s_server or Python's ssl.
#
#   pki = make_test_pki()                 # or make_test_pki("rsa2048")
#   pki.server.chain / .key / .certified_key()
#   pki.trust_store()                     # tls.certificates.TrustStore with the root
#   files = pki.write_pem(tmp_path)       # {"ca": path, "server_cert": path, ...}
from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_TYPES = ("p256", "p384", "ed25519", "rsa2048")

# Validity of the good certificates: wide, so real-time tests (openssl, ssl)
# work, and fixed, so the certificates are reproducible in shape.
NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2049, 12, 31, tzinfo=dt.timezone.utc)
# A time inside every good certificate's validity, for tests that pass `now`.
VALID_NOW = dt.datetime(2030, 6, 1, tzinfo=dt.timezone.utc)


@functools.lru_cache(maxsize=None)
def _key(key_type: str, slot: str):
    """One private key per (type, role); cached for the whole test process."""
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}")


def _hash_for(key):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pyquic test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


_serial = iter(range(1000, 10**9))


def _cert(
    subject: str,
    public_key,
    issuer_name: x509.Name | None,
    issuer_key,
    *,
    ca: bool,
    san: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    key_usage: dict | None = None,
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
    issuer_public=None,
) -> x509.Certificate:
    name = _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(public_key)
        .serial_number(next(_serial))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public or public_key),
            critical=False,
        )
    )
    usage = dict(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )
    usage.update(key_usage or {})
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, _hash_for(issuer_key))


@dataclass
class Leaf:
    cert: x509.Certificate
    key: object
    chain: list[x509.Certificate]  # leaf first, then intermediates (no root)

    def certified_key(self):
        from tls.certificates import CertifiedKey

        return CertifiedKey(self.chain, self.key)

    @property
    def chain_der(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in self.chain]


@dataclass
class TestPKI:
    key_type: str
    ca: x509.Certificate
    ca_key: object
    intermediate: x509.Certificate
    intermediate_key: object
    server: Leaf  # SAN DNS:localhost, IP:127.0.0.1, EKU serverAuth
    client: Leaf  # EKU clientAuth
    client_no_san: Leaf  # EKU clientAuth, no subjectAltName (common for client certs)
    expired: Leaf  # server cert valid 2020-01-01 .. 2021-01-01
    not_yet_valid: Leaf  # server cert valid from 2049-01-01
    wrong_host: Leaf  # SAN DNS:wrong.example
    unknown_ca: Leaf  # chain to a root nobody trusts
    bad_usage: Leaf  # EKU codeSigning only, KeyUsage keyAgreement only
    self_signed: Leaf  # self-signed server leaf (SAN localhost)
    unknown_root: x509.Certificate = field(repr=False, default=None)  # type: ignore[assignment]

    __test__ = False  # not a pytest class

    def trust_store(self):
        from tls.certificates import TrustStore

        return TrustStore.from_certs([self.ca])

    def write_pem(self, directory: str | Path) -> dict[str, Path]:
        """Write every certificate and key as PEM; chains are leaf + intermediate.
        Returns {"ca": ..., "<leaf>_cert": ..., "<leaf>_key": ..., "<leaf>_chain": ...}."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        paths: dict[str, Path] = {}

        def put(name: str, data: bytes) -> None:
            p = d / name
            p.write_bytes(data)
            paths[name.rsplit(".", 1)[0]] = p

        put("ca.pem", self.ca.public_bytes(pem))
        put("intermediate.pem", self.intermediate.public_bytes(pem))
        for name in ("server", "client", "client_no_san", "expired", "not_yet_valid", "wrong_host",
                     "unknown_ca", "bad_usage", "self_signed"):
            leaf: Leaf = getattr(self, name)
            put(f"{name}_cert.pem", leaf.cert.public_bytes(pem))
            put(f"{name}_chain.pem", b"".join(c.public_bytes(pem) for c in leaf.chain))
            put(f"{name}_key.pem", leaf.key.private_bytes(  # type: ignore[attr-defined]
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return paths


@functools.lru_cache(maxsize=None)
def make_test_pki(key_type: str = "p256") -> TestPKI:
    # cryptography's verifier (web PKI policy) forbids Ed25519 *signatures* on
    # certificates, though an Ed25519 leaf key is fine: Ed25519 leaves are
    # therefore issued by P-256 CAs.
    ca_type = "p256" if key_type == "ed25519" else key_type
    ca_key = _key(ca_type, "ca")
    ca = _cert(f"pyquic test root {key_type}", ca_key.public_key(), None, ca_key, ca=True)
    inter_key = _key(ca_type, "intermediate")
    inter = _cert(f"pyquic test intermediate {key_type}", inter_key.public_key(), ca.subject,
                  ca_key, ca=True, issuer_public=ca_key.public_key())

    def leaf(slot: str, cn: str, **kw) -> Leaf:
        key = _key(key_type, slot)
        cert = _cert(cn, key.public_key(), inter.subject, inter_key, ca=False,
                     issuer_public=inter_key.public_key(), **kw)
        return Leaf(cert, key, [cert, inter])

    localhost = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_auth = [ExtendedKeyUsageOID.SERVER_AUTH]
    server = leaf("server", "localhost", san=localhost, eku=server_auth)
    client = leaf("client", "pyquic test client", san=[x509.DNSName("client.pyquic.test")],
                  eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    client_no_san = leaf("client", "pyquic test client without SAN",
                         eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    expired = leaf("other", "expired", san=localhost, eku=server_auth,
                   not_before=NOT_BEFORE, not_after=dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc))
    not_yet = leaf("other", "not yet valid", san=localhost, eku=server_auth,
                   not_before=dt.datetime(2049, 1, 1, tzinfo=dt.timezone.utc))
    wrong_host = leaf("other", "wrong.example", san=[x509.DNSName("wrong.example")], eku=server_auth)
    bad_usage = leaf("other", "bad usage", san=localhost, eku=[ExtendedKeyUsageOID.CODE_SIGNING],
                     key_usage=dict(digital_signature=False, key_agreement=True))

    other_root_key = _key(ca_type, "unknown_root")
    other_root = _cert(f"pyquic unknown root {key_type}", other_root_key.public_key(), None,
                       other_root_key, ca=True)
    other_key = _key(key_type, "other")
    unknown_cert = _cert("localhost", other_key.public_key(), other_root.subject, other_root_key,
                         ca=False, san=localhost, eku=server_auth,
                         issuer_public=other_root_key.public_key())
    unknown = Leaf(unknown_cert, other_key, [unknown_cert])

    # (For Ed25519 this leaf's self-signature is itself a forbidden algorithm.)
    self_cert = _cert("localhost", other_key.public_key(), None, other_key, ca=False,
                      san=localhost, eku=server_auth)
    self_signed = Leaf(self_cert, other_key, [self_cert])

    return TestPKI(key_type, ca, ca_key, inter, inter_key, server, client, client_no_san, expired, not_yet,
                   wrong_host, unknown, bad_usage, self_signed, other_root)
