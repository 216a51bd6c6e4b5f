# Client access control for the SMB over QUIC gateway, as Windows file
# servers do it: allow or block a client by the SHA-256 thumbprint of its
# certificate or by the issuer named in it.  It is a TLS certificate
# verifier (tls.Config.certificate_verifier), so a refused client is refused
# inside the handshake: it gets a TLS alert -- access_denied, or
# certificate_required when it sent no certificate -- in CONNECTION_CLOSE
# with the reason, and no stream ever reaches the SMB server.
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import tls
from tls.certificates import TrustStore, verify_chain

__all__ = ["ClientAccessControl", "thumbprint", "normal_thumbprint"]


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-256 over the DER certificate, lower-case hex (no colons)."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def normal_thumbprint(text: str) -> str:
    """Accept 'AB:CD:...', 'abcd...' or with spaces; refuse what is not 32 bytes of hex."""
    hexdigits = "".join(ch for ch in text if ch not in ": \t").lower()
    if len(hexdigits) != 64 or any(ch not in "0123456789abcdef" for ch in hexdigits):
        raise ValueError(f"not a SHA-256 thumbprint: {text!r}")
    return hexdigits


def _names(issuers: Iterable[Any]) -> list[x509.Name]:
    return [i if isinstance(i, x509.Name) else x509.Name.from_rfc4514_string(str(i)) for i in issuers]


@dataclass
class ClientAccessControl:
    """Who may use the gateway.  Blocks win over allows.  With ``trust`` (a
    CA file or TrustStore), the client's chain must verify against it
    (clientAuth); without, certificates are judged by the lists alone, so a
    self-signed client certificate can be allowed by its thumbprint.  With no
    allow list at all, every certificate that is not blocked (and verifies,
    when ``trust`` is set) is allowed."""

    allow_thumbprints: Sequence[str] = ()
    block_thumbprints: Sequence[str] = ()
    allow_issuers: Sequence[Any] = ()  # RFC 4514 strings ("CN=Example CA,O=Example") or x509.Name
    block_issuers: Sequence[Any] = ()
    trust: Any = None  # path to PEM CA file, or a tls TrustStore
    refused: int = field(default=0, init=False)  # counters for the gateway's log
    allowed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._allow = {normal_thumbprint(t) for t in self.allow_thumbprints}
        self._block = {normal_thumbprint(t) for t in self.block_thumbprints}
        self._allow_issuers = _names(self.allow_issuers)
        self._block_issuers = _names(self.block_issuers)
        if self.trust is not None and not isinstance(self.trust, TrustStore):
            self.trust = TrustStore.from_file(self.trust)

    def _refuse(self, reason: str) -> tls.AlertError:
        self.refused += 1
        return tls.AlertError(tls.AlertDescription.access_denied, reason)

    def __call__(self, chain_der: Sequence[bytes], server_name: Optional[str], is_server_cert: bool,
                 now: float) -> list[x509.Certificate]:
        if is_server_cert:
            raise tls.UsageError("ClientAccessControl judges client certificates (a server's verifier)")
        if not chain_der:
            raise tls.AlertError(tls.AlertDescription.bad_certificate, "empty certificate chain")
        try:
            chain = [x509.load_der_x509_certificate(bytes(der)) for der in chain_der]
        except ValueError as exc:
            raise tls.AlertError(tls.AlertDescription.bad_certificate, f"unparsable certificate: {exc}") from None
        leaf = chain[0]
        digest = thumbprint(leaf)
        if digest in self._block:
            raise self._refuse(f"client certificate {digest[:16]}... is blocked")
        if any(leaf.issuer == name for name in self._block_issuers):
            raise self._refuse(f"client certificates issued by {leaf.issuer.rfc4514_string()} are blocked")
        if self.trust is not None:
            try:
                chain = verify_chain(chain_der, self.trust, None, False, now)
            except tls.AlertError:
                self.refused += 1
                raise
        if self._allow or self._allow_issuers:
            if digest not in self._allow and not any(leaf.issuer == name for name in self._allow_issuers):
                raise self._refuse(f"client certificate {digest[:16]}... is not on the allow list")
        self.allowed += 1
        return chain
