# The certificates a test's server presents, written where run_endpoint.sh
# looks for them (CERTS/cert.pem with the chain, CERTS/priv.key), as the
# reference runner's certs.sh does: a fresh CA per run, a leaf for the
# names "server", "server4", "server6" and "localhost" plus the server's
# addresses, and, for the amplificationlimit case, a chain long enough
# that a server obeying the 3x limit cannot send it in one flight.
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAMES = ("server", "server4", "server6", "localhost")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_certs(directory: Path, addresses: Iterable[str] = (), chain_length: int = 1) -> Path:
    """CA -> (chain_length - 1 intermediates) -> leaf; writes cert.pem (leaf
    first, then the intermediates), priv.key and ca.pem.  Returns directory."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(not_valid_before=now - datetime.timedelta(hours=1), not_valid_after=now + datetime.timedelta(days=10))

    def issue(subject: str, key, issuer_name: x509.Name, issuer_key, ca: bool, sans=None) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("interop CA", ca_key, _name("interop CA"), ca_key, True)
    issuer, issuer_key, intermediates = ca, ca_key, []
    for i in range(max(chain_length, 1) - 1):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(f"interop intermediate {i}", key, issuer.subject, issuer_key, True)
        intermediates.insert(0, cert)
        issuer, issuer_key = cert, key
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses if a]
    leaf = issue("server", leaf_key, issuer.subject, issuer_key, False, sans)
    pem = serialization.Encoding.PEM
    (directory / "cert.pem").write_bytes(b"".join(c.public_bytes(pem) for c in [leaf, *intermediates]))
    (directory / "priv.key").write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    return directory
