# A throwaway PKI for trying the example: a CA, a server certificate for
# localhost / 127.0.0.1, and a client certificate that carries an NFS-style
# user name ("alice@example.org") in a subjectAltName otherName, the way
# FreeBSD's rpctlssd expects it.  Writes PEM files into a directory.
from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from tls.rpc_tls import NFS_USER_OTHERNAME_OID  # noqa: E402


def _utf8_string(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes((0x0C, len(raw))) + raw


def _cert(subject_cn, key, issuer_name, issuer_key, *, ca=False, san=None, eku=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_demo_pki(directory: str | Path, user: str = "alice@example.org") -> dict[str, Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("rpc_tls demo CA", ca_key, None, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("localhost", server_key, ca.subject, ca_key,
                   san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                   eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("rpc_tls demo client", client_key, ca.subject, ca_key,
                   san=[x509.OtherName(x509.ObjectIdentifier(NFS_USER_OTHERNAME_OID), _utf8_string(user))],
                   eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    pem = serialization.Encoding.PEM

    def key_pem(key):
        return key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    files = {
        "ca": (d / "ca.pem", ca.public_bytes(pem)),
        "server_cert": (d / "server.pem", server.public_bytes(pem)),
        "server_key": (d / "server.key", key_pem(server_key)),
        "client_cert": (d / "client.pem", client.public_bytes(pem)),
        "client_key": (d / "client.key", key_pem(client_key)),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}


if __name__ == "__main__":
    for name, path in write_demo_pki(sys.argv[1] if len(sys.argv) > 1 else "rpc_tls_pki").items():
        print(f"{name}: {path}")
