# Certificates and signatures for TLS 1.3 (RFC 8446 §4.2.3, §4.4.2, §4.4.3).
# This module owns:
#   - loading certificate chains and private keys (PEM or DER, bytes or path);
#   - CertifiedKey: a chain plus its private key, the signature schemes that
#     key can produce, and signing CertificateVerify content;
#   - the CertificateVerify content and its verification, including which
#     schemes are legal for which key (rsa_pkcs1_* and SHA-1 are not legal in
#     CertificateVerify, §4.2.3);
#   - chain verification through cryptography.x509.verification only (no
#     home-made path building), each failure mapped to its alert (§6.2);
#   - TrustStore: the trust anchors.
# Time is always a parameter (`now`); nothing here reads the clock.
from __future__ import annotations

import datetime as _dt
import functools
import ipaddress
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification as xv

from .enums import AlertDescription, SignatureScheme
from .errors import AlertError, UsageError

Source = Union[bytes, bytearray, memoryview, str, os.PathLike]
PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]
PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey]

S = SignatureScheme

# Schemes we can verify or produce in CertificateVerify, in our preference order.
DEFAULT_SIGNATURE_SCHEMES: tuple[int, ...] = (
    S.ECDSA_SECP256R1_SHA256,
    S.ED25519,
    S.ECDSA_SECP384R1_SHA384,
    S.RSA_PSS_RSAE_SHA256,
    S.RSA_PSS_PSS_SHA256,
    S.RSA_PSS_RSAE_SHA384,
    S.RSA_PSS_PSS_SHA384,
    S.RSA_PSS_RSAE_SHA512,
    S.RSA_PSS_PSS_SHA512,
)

# Schemes we accept in certificate chains (signature_algorithms_cert, §4.2.3):
# the above plus PKCS#1 v1.5, which is legal there but never in CertificateVerify.
DEFAULT_CERT_SIGNATURE_SCHEMES: tuple[int, ...] = DEFAULT_SIGNATURE_SCHEMES + (
    S.RSA_PKCS1_SHA256,
    S.RSA_PKCS1_SHA384,
    S.RSA_PKCS1_SHA512,
)

# §4.2.3: "RSASSA-PKCS1-v1_5 algorithms ... MUST NOT be used in signed TLS
# handshake messages"; SHA-1 (0x0201, 0x0203) and SHA-224 likewise.
_NOT_FOR_CERTIFICATE_VERIFY = frozenset(
    {0x0401, 0x0501, 0x0601, 0x0201, 0x0203, 0x0202, 0x0301, 0x0302, 0x0303}
)

_HASHES = {
    S.ECDSA_SECP256R1_SHA256: hashes.SHA256,
    S.ECDSA_SECP384R1_SHA384: hashes.SHA384,
    S.ECDSA_SECP521R1_SHA512: hashes.SHA512,
    S.RSA_PSS_RSAE_SHA256: hashes.SHA256,
    S.RSA_PSS_RSAE_SHA384: hashes.SHA384,
    S.RSA_PSS_RSAE_SHA512: hashes.SHA512,
    S.RSA_PSS_PSS_SHA256: hashes.SHA256,
    S.RSA_PSS_PSS_SHA384: hashes.SHA384,
    S.RSA_PSS_PSS_SHA512: hashes.SHA512,
}
_ECDSA_CURVE = {
    S.ECDSA_SECP256R1_SHA256: "secp256r1",
    S.ECDSA_SECP384R1_SHA384: "secp384r1",
    S.ECDSA_SECP521R1_SHA512: "secp521r1",
}
# The ECDSA signature algorithm objects are immutable: made once, not per
# signature (each construction runs isinstance checks against ABCs).
_ECDSA = {scheme: ec.ECDSA(_HASHES[scheme]()) for scheme in _ECDSA_CURVE}
_RSAE = (S.RSA_PSS_RSAE_SHA256, S.RSA_PSS_RSAE_SHA384, S.RSA_PSS_RSAE_SHA512)
_PSS = (S.RSA_PSS_PSS_SHA256, S.RSA_PSS_PSS_SHA384, S.RSA_PSS_PSS_SHA512)


def _illegal(reason: str) -> AlertError:
    return AlertError(AlertDescription.illegal_parameter, reason)


# ---------------------------------------------------------------------------
# Loading


def _read(source: Source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return Path(source).read_bytes()


def load_certificate_chain(source: Source) -> list[x509.Certificate]:
    """All certificates in a PEM file/bytes (leaf first, as written), or the
    single certificate of DER data.  A path may be str or PathLike; bytes are
    data, never a path."""
    data = _read(source)
    if b"-----BEGIN" in data:
        certs = x509.load_pem_x509_certificates(data)
    else:
        certs = [x509.load_der_x509_certificate(data)]
    if not certs:
        raise ValueError("no certificate found")
    return certs


def load_private_key(source: Source, password: bytes | str | None = None) -> PrivateKey:
    """A private key from PEM or DER (PKCS#8, traditional), optionally encrypted."""
    data = _read(source)
    if isinstance(password, str):
        password = password.encode()
    if b"-----BEGIN" in data:
        key = serialization.load_pem_private_key(data, password)
    else:
        key = serialization.load_der_private_key(data, password)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


# ---------------------------------------------------------------------------
# Which schemes fit which key (§4.2.3: ECDSA schemes name the curve; PSS keys
# use rsa_pss_pss_*, rsaEncryption keys rsa_pss_rsae_*)


def _is_pss_certificate(cert: x509.Certificate | None) -> bool:
    return cert is not None and cert.public_key_algorithm_oid == x509.PublicKeyAlgorithmOID.RSASSA_PSS


def schemes_for_key(key: PrivateKey | PublicKey, certificate: x509.Certificate | None = None) -> list[int]:
    """The CertificateVerify schemes usable with this key, preferred first.
    `certificate` (the leaf) tells an RSASSA-PSS key from an rsaEncryption key,
    since `cryptography` loads both as RSA keys."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        for scheme, curve in _ECDSA_CURVE.items():
            if key.curve.name == curve:
                return [scheme]
        return []
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return [S.ED25519]
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        # PSS with salt = hash length needs 2*hlen + 2 bytes of modulus.
        size = (key.key_size + 7) // 8
        table = _PSS if _is_pss_certificate(certificate) else _RSAE
        lengths = (32, 48, 64)
        return [s for s, h in zip(table, lengths) if size >= 2 * h + 2]
    return []


def _scheme_matches_key(scheme: int, key: PublicKey, certificate: x509.Certificate | None) -> bool:
    return scheme in schemes_for_key(key, certificate)


def choose_signature_scheme(
    key: "CertifiedKey | PrivateKey | PublicKey",
    peer_schemes: Iterable[int],
    our_schemes: Sequence[int] | None = None,
) -> int:
    """The scheme to sign with: in our preference order (our_schemes, else the
    key's own order), the first the peer offered and the key can make.
    None fits: AlertError(handshake_failure)."""
    if isinstance(key, CertifiedKey):
        usable = key.supported_schemes()
    else:
        usable = schemes_for_key(key)
    peer = set(peer_schemes)
    order = list(our_schemes) if our_schemes is not None else usable
    for scheme in order:
        if scheme in peer and scheme in usable and scheme not in _NOT_FOR_CERTIFICATE_VERIFY:
            return SignatureScheme(scheme)
    raise AlertError(AlertDescription.handshake_failure, "no common signature scheme")


# ---------------------------------------------------------------------------
# Signing and verifying


def _pss(hash_cls) -> padding.PSS:
    # RFC 8446 §4.2.3: MGF1 with the same hash; salt length = digest length.
    return padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)


def sign(private_key: PrivateKey, scheme: int, message: bytes) -> bytes:
    """Sign `message` with `scheme` (the caller checked the scheme fits the key)."""
    scheme = int(scheme)
    if scheme == S.ED25519:
        return private_key.sign(message)  # type: ignore[call-arg,union-attr]
    hash_cls = _HASHES.get(scheme)  # type: ignore[call-overload]
    if hash_cls is None:
        raise UsageError(f"cannot sign with scheme 0x{scheme:04x}")
    if scheme in _ECDSA_CURVE:
        return private_key.sign(message, _ECDSA[scheme])  # type: ignore[call-arg,union-attr]
    return private_key.sign(message, _pss(hash_cls), hash_cls())  # type: ignore[call-arg,union-attr]


def verify_signature(
    public_key: PublicKey,
    scheme: int,
    signature: bytes,
    message: bytes,
    certificate: x509.Certificate | None = None,
) -> None:
    """Verify a handshake signature (ECDSA signatures are DER, as in TLS).

    A scheme not allowed in TLS 1.3 handshake signatures, or not matching the
    key (e.g. ecdsa_secp384r1_sha384 with a P-256 key, rsa_pss_pss with an
    rsaEncryption key): AlertError(illegal_parameter).  A bad signature:
    AlertError(decrypt_error) (§4.4.3)."""
    scheme = int(scheme)
    if scheme in _NOT_FOR_CERTIFICATE_VERIFY:
        raise _illegal(f"signature scheme 0x{scheme:04x} not allowed in TLS 1.3 handshake")
    if not _scheme_matches_key(scheme, public_key, certificate):
        raise _illegal(f"signature scheme 0x{scheme:04x} does not match the key")
    signature, message = bytes(signature), bytes(message)
    try:
        if scheme == S.ED25519:
            public_key.verify(signature, message)  # type: ignore[call-arg,union-attr]
        elif scheme in _ECDSA_CURVE:
            public_key.verify(signature, message, _ECDSA[scheme])  # type: ignore
        else:
            hash_cls = _HASHES[scheme]  # type: ignore[index]
            public_key.verify(signature, message, _pss(hash_cls), hash_cls())  # type: ignore
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        raise AlertError(AlertDescription.decrypt_error, "bad signature") from None


_SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
_CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"


def certificate_verify_content(is_server: bool, transcript_hash: bytes) -> bytes:
    """64 spaces || context string || 0x00 || Transcript-Hash (RFC 8446 §4.4.3)."""
    return b" " * 64 + (_SERVER_CONTEXT if is_server else _CLIENT_CONTEXT) + b"\x00" + transcript_hash


def verify_certificate_verify(
    certificate: x509.Certificate,
    scheme: int,
    signature: bytes,
    content: bytes,
    offered_schemes: Iterable[int] | None = None,
) -> None:
    """Check a peer's CertificateVerify against its leaf certificate.
    offered_schemes: the schemes we sent in signature_algorithms; a scheme
    outside them is illegal_parameter (§4.4.3)."""
    if offered_schemes is not None and int(scheme) not in set(offered_schemes):
        raise _illegal(f"signature scheme 0x{int(scheme):04x} was not offered")
    try:
        public_key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise AlertError(AlertDescription.unsupported_certificate, "unsupported public key") from None
    if not isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise AlertError(AlertDescription.unsupported_certificate, "unsupported public key type")
    verify_signature(public_key, scheme, signature, content, certificate)  # type: ignore[arg-type]


class CertifiedKey:
    """A certificate chain (leaf first) and the leaf's private key."""

    def __init__(self, chain: Sequence[x509.Certificate], private_key: PrivateKey) -> None:
        if not chain:
            raise UsageError("empty certificate chain")
        self.chain = list(chain)
        self.private_key = private_key
        leaf_public = self.chain[0].public_key()
        ours = private_key.public_key()
        enc, fmt = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if leaf_public.public_bytes(enc, fmt) != ours.public_bytes(enc, fmt):
            raise UsageError("private key does not match the leaf certificate")
        self._schemes = schemes_for_key(private_key, self.chain[0])
        if not self._schemes:
            raise UsageError(f"unsupported key type {type(private_key).__name__}")

    @classmethod
    def load(
        cls, chain: Source, key: Source | None = None, password: bytes | str | None = None
    ) -> "CertifiedKey":
        """From files or bytes; key None means the key is in the chain's PEM."""
        return cls(load_certificate_chain(chain), load_private_key(chain if key is None else key, password))

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def chain_der(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in self.chain]

    def supported_schemes(self) -> list[int]:
        return list(self._schemes)

    def choose_scheme(self, peer_schemes: Iterable[int], our_schemes: Sequence[int] | None = None) -> int:
        return choose_signature_scheme(self, peer_schemes, our_schemes)

    def sign(self, scheme: int, content: bytes) -> bytes:
        if int(scheme) not in self._schemes:
            raise UsageError(f"key cannot sign with scheme 0x{int(scheme):04x}")
        return sign(self.private_key, scheme, content)

    def sign_certificate_verify(self, scheme: int, is_server: bool, transcript_hash: bytes) -> bytes:
        return self.sign(scheme, certificate_verify_content(is_server, transcript_hash))


# ---------------------------------------------------------------------------
# Trust anchors and chain verification


class TrustStore:
    """A set of trust anchors, wrapping cryptography.x509.verification.Store."""

    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        self.certificates = list(certificates)
        if not self.certificates:
            raise UsageError("a trust store needs at least one certificate")
        self.store = xv.Store(self.certificates)

    @classmethod
    def from_certs(cls, certificates: Iterable[x509.Certificate]) -> "TrustStore":
        return cls(certificates)

    @classmethod
    def from_pem(cls, data: bytes) -> "TrustStore":
        return cls(x509.load_pem_x509_certificates(data))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "TrustStore":
        return cls(load_certificate_chain(path))

    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> "TrustStore":
        """Every PEM/DER certificate file in a directory (unparsable files skipped)."""
        certs: list[x509.Certificate] = []
        for entry in sorted(Path(path).iterdir()):
            if not entry.is_file():
                continue
            try:
                certs.extend(load_certificate_chain(entry))
            except ValueError:
                continue
        return cls(certs)

    @classmethod
    def system(cls) -> "TrustStore":
        """The platform's default CA bundle (as found by OpenSSL, else certifi).
        Certificates `cryptography` cannot parse are skipped one by one, so a
        single odd root (e.g. a non-positive serial) does not lose the bundle."""
        import ssl

        paths = ssl.get_default_verify_paths()
        files = [p for p in (paths.cafile, paths.openssl_cafile) if p and os.path.isfile(p)]
        dirs = [p for p in (paths.capath, paths.openssl_capath) if p and os.path.isdir(p)]
        if not files and not dirs:
            try:
                import certifi  # type: ignore[import-not-found]

                files = [certifi.where()]
            except ImportError:
                raise UsageError("no system trust store found") from None
        certs: list[x509.Certificate] = []
        for f in files[:1]:
            certs.extend(_lenient_pem_certificates(Path(f).read_bytes()))
        if not certs:
            for d in dirs[:1]:
                for entry in sorted(Path(d).iterdir()):
                    if entry.is_file():
                        certs.extend(_lenient_pem_certificates(entry.read_bytes()))
        if not certs:
            raise UsageError("no system trust store found")
        return cls(certs)


def _lenient_pem_certificates(data: bytes) -> list[x509.Certificate]:
    out = []
    end = b"-----END CERTIFICATE-----"
    for block in data.split(end)[:-1]:
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start < 0:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                out.append(x509.load_pem_x509_certificate(block[start:] + end + b"\n"))
        except ValueError:
            continue
    return out


@functools.lru_cache(maxsize=256)  # a pure function of the name; trying it as an IP literal first is slow
def _subject(server_name: str) -> xv.DNSName | xv.IPAddress:
    try:
        return xv.IPAddress(ipaddress.ip_address(server_name.strip("[]")))
    except ValueError:
        return xv.DNSName(server_name)


def _as_datetime(now: float | _dt.datetime) -> _dt.datetime:
    if isinstance(now, _dt.datetime):
        return now if now.tzinfo else now.replace(tzinfo=_dt.timezone.utc)
    return _dt.datetime.fromtimestamp(now, _dt.timezone.utc)


def _verification_alert(message: str) -> AlertDescription:
    """Map cryptography's VerificationError text to our alert (RFC 8446 §6.2).
    "candidates exhausted: <reason>" carries the last interior failure met
    while building a path; with "no interior errors" no issuer was found."""
    # Drop the "(encountered processing <Certificate(subject=...)>)" tail: the
    # peer chooses subject names, so they must not steer the mapping.
    m = message.split("(encountered processing", 1)[0].lower()
    if "not valid at validation time" in m or "expired" in m or "not yet valid" in m:
        return AlertDescription.certificate_expired
    if "forbidden" in m and "algorithm" in m:
        # §4.4.2.2: a chain we cannot accept -> by default unsupported_certificate.
        return AlertDescription.unsupported_certificate
    if "eku" in m or "extendedkeyusage" in m or "key usage" in m or "keyusage" in m:
        return AlertDescription.unsupported_certificate
    if "subjectaltname" in m:  # name mismatch
        return AlertDescription.bad_certificate
    if "no interior errors" in m or "self-signed" in m or "issuer" in m:
        return AlertDescription.unknown_ca
    return AlertDescription.bad_certificate


def verify_chain(
    chain_der: Sequence[bytes],
    trust: TrustStore | xv.Store,
    server_name: str | None,
    is_server_cert: bool,
    now: float | _dt.datetime,
    max_chain_depth: int | None = None,
) -> list[x509.Certificate]:
    """Verify a peer's chain (leaf first, DER) and return the validated path
    (leaf first, ending at the trust anchor).

    A server certificate is checked against server_name (DNS name or IP
    address literal) with serverAuth; a client certificate with clientAuth
    (server_name ignored).  Failures raise AlertError: empty chain or
    unparsable -> bad_certificate (an empty client Certificate is the caller's
    certificate_required decision, §4.4.2.4); expired / not yet valid -> certificate_expired;
    unknown issuer -> unknown_ca; name mismatch -> bad_certificate; wrong key
    usage / EKU -> unsupported_certificate; anything else -> bad_certificate."""
    if not chain_der:
        raise AlertError(AlertDescription.bad_certificate, "empty certificate chain")
    try:
        with warnings.catch_warnings():
            # e.g. a non-positive serial (RFC 5280 §4.1.2.2): refused now rather
            # than when a later `cryptography` starts raising on it.
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            certs = [x509.load_der_x509_certificate(bytes(der)) for der in chain_der]
    except (ValueError, x509.InvalidVersion, CryptographyDeprecationWarning) as exc:
        raise AlertError(AlertDescription.bad_certificate, f"unparsable certificate: {exc}") from None
    store = trust.store if isinstance(trust, TrustStore) else trust
    builder = xv.PolicyBuilder().store(store).time(_as_datetime(now))
    if max_chain_depth is not None:
        builder = builder.max_chain_depth(max_chain_depth)
    try:
        if is_server_cert:
            if not server_name:
                raise UsageError("verifying a server certificate needs server_name")
            verifier = builder.build_server_verifier(_subject(server_name))
            result = verifier.verify(certs[0], certs[1:])
            return list(result)
        # Client certificates often carry no subjectAltName (an identity by
        # subject DN is enough for TLS client auth): SAN is optional for the
        # client leaf; every other web PKI rule (EKU clientAuth, ...) stays.
        ee_policy = xv.ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None
        )
        builder = builder.extension_policies(
            ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy
        )
        client_verifier = builder.build_client_verifier()
        verified = client_verifier.verify(certs[0], certs[1:])
        return list(verified.chain)
    except xv.VerificationError as exc:
        message = str(exc)
        raise AlertError(_verification_alert(message), message) from None
    except ValueError as exc:  # e.g. malformed extensions met during building
        raise AlertError(AlertDescription.bad_certificate, str(exc)) from None
