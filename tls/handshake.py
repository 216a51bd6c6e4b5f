# What client and server handshake states share: the State base class (one
# small object per state, handle() returns the next state), the negotiated
# parameters record, certificate-chain checks and CertificateVerify signing /
# verification on top of tls.certificates, and the post-handshake KeyUpdate
# logic (RFC 8446 §4.6.3).  No I/O, no clock: states ask the engine for time
# and randomness.
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography import x509

from . import certificates as _certs
from .config import VerifyMode
from .enums import AlertDescription, Direction, HandshakeType, Level
from .errors import AlertError
from .extensions import check_allowed
from .key_schedule import CIPHER_SUITES, next_traffic_secret
from .messages import Certificate, CertificateEntry, CertificateVerify, KeyUpdate

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

HT = HandshakeType
AD = AlertDescription
# Successful chain verifications remembered per Config (0 disables).
VERIFY_CACHE_SIZE = 256


def alert(description: AlertDescription, reason: str) -> AlertError:
    return AlertError(description, reason)


@dataclass(frozen=True)
class Negotiated:
    """What the handshake settled (fields are None until known)."""

    version: int | None = None
    cipher_suite: int | None = None
    group: int | None = None  # None for psk_ke
    signature_scheme: int | None = None  # the server's CertificateVerify scheme
    client_signature_scheme: int | None = None  # the client's, with client auth
    alpn: str | None = None
    server_name: str | None = None
    resumed: bool = False  # a PSK (ticket or external) authenticated the handshake
    external_psk: bytes | None = None  # identity of the external PSK used
    psk_mode: int | None = None
    early_data_accepted: bool = False
    hello_retry: bool = False

    def with_(self, **changes: Any) -> Negotiated:
        # dataclasses.replace() re-walks fields() and re-runs __init__ on every
        # call; a handshake makes several updates, so copy the attribute dict
        # instead (unknown names are still a TypeError, as with replace()).
        if not _NEGOTIATED_FIELDS.issuperset(changes):
            unknown = sorted(changes.keys() - _NEGOTIATED_FIELDS)
            raise TypeError(f"Negotiated has no field(s) {unknown}")
        new = object.__new__(Negotiated)
        d = new.__dict__
        d.update(self.__dict__)
        d.update(changes)
        return new


_NEGOTIATED_FIELDS = frozenset(f.name for f in fields(Negotiated))


def alpn_str(protocol: bytes | None) -> str | None:
    return None if protocol is None else protocol.decode("utf-8", "surrogateescape")


class State:
    """One handshake state.  `expects` lists the message types it accepts;
    anything else is unexpected_message (checked by the engine before parsing)."""

    expects: ClassVar[frozenset[int]] = frozenset()
    # Post-handshake states: the engine may call the post-handshake API.
    connected: ClassVar[bool] = False

    def __init__(self, s: Any = None) -> None:
        self.s = s  # the handshake's session: what this state and its successors share

    def handle(self, eng: Engine, msg: Any, raw: bytes) -> State:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


# ---------------------------------------------------------------------------
# Certificates


def parse_chain(entries: list[CertificateEntry]) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(e.data) for e in entries]
    except ValueError as exc:
        raise alert(AD.bad_certificate, f"unparsable certificate: {exc}") from None


def _san_subject(leaf: x509.Certificate) -> str | None:
    """A name from the leaf's subjectAltName, for path checks without a hostname."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    for ip in san.get_values_for_type(x509.IPAddress):
        return str(ip)
    for name in san.get_values_for_type(x509.DNSName):
        if "*" not in name:
            return name
        return "x" + name.lstrip("*")
    return None


def check_peer_chain(eng: Engine, message: Certificate) -> list[x509.Certificate]:
    """The peer's chain, verified when the verify mode asks for it (RFC 8446
    §4.4.2.4: each failure aborts with the alert tls.certificates maps).
    Returns the validated path (leaf first), or the presented chain when not
    verifying."""
    entries = message.entries
    # Certificate entry extensions answer our ClientHello / CertificateRequest;
    # we request none, so any recognized one is unsolicited (§4.4.2).
    for entry in entries:
        if entry.extensions:
            check_allowed(HT.CERTIFICATE, entry.extensions, offered=())
    if eng.verify_mode == VerifyMode.NONE:
        return parse_chain(entries)
    chain_der = [e.data for e in entries]
    is_server_cert = eng.is_client
    cfg = eng.config
    if cfg.certificate_verifier is not None:
        name = cfg.server_name if is_server_cert and cfg.check_hostname else None
        chain = list(cfg.certificate_verifier(chain_der, name, is_server_cert, eng.now()))
        if not chain:
            raise alert(AD.bad_certificate, "certificate_verifier returned no chain")
        return chain
    name = None
    if is_server_cert:
        if cfg.check_hostname and cfg.server_name:
            name = cfg.server_name
        else:
            leaf = parse_chain(entries[:1])[0]
            name = _san_subject(leaf)
            if name is None:
                raise alert(AD.bad_certificate, "certificate has no subjectAltName")
    now = eng.now()
    key = (tuple(chain_der), name, is_server_cert)
    cache = cfg._cache.setdefault("verified", OrderedDict())
    hit = cache.get(key)
    if hit is not None and hit[1] <= now <= hit[2]:
        cache.move_to_end(key)
        return list(hit[0])
    chain = _certs.verify_chain(chain_der, cfg.trust(), name, is_server_cert, now)
    # A successful verification depends only on the chain, the name, the
    # trust anchors (fixed per Config) and the time: it is remembered for the
    # window in which every certificate of the validated path is valid.
    if VERIFY_CACHE_SIZE:
        lo = max(c.not_valid_before_utc.timestamp() for c in chain)
        hi = min(c.not_valid_after_utc.timestamp() for c in chain)
        cache[key] = (tuple(chain), lo, hi)
        while len(cache) > VERIFY_CACHE_SIZE:
            cache.popitem(last=False)
    return chain


def certificate_message(eng: Engine, context: bytes) -> bytes:
    """Our Certificate message (cached per Config for the empty context)."""
    cfg = eng.config
    if context == b"":
        cached = cfg._cache.get("certificate_message")
        if cached is not None:
            return cached
    msg = Certificate(context, [CertificateEntry(der) for der in cfg.chain_der]).encode()
    if context == b"":
        cfg._cache["certificate_message"] = msg
    return msg


def our_scheme(eng: Engine, peer_schemes: list[int]) -> int:
    """The CertificateVerify scheme we sign with: our preference order, the
    first the peer offered and our key can make (handshake_failure if none)."""
    cfg = eng.config
    if cfg.certified_key is not None:
        usable = cfg.certified_key.supported_schemes()
    else:
        usable = _certs.schemes_for_key(cfg.certificate_chain[0].public_key(), cfg.certificate_chain[0])
    peer = set(peer_schemes)
    for scheme in cfg.signature_schemes:
        if scheme in peer and scheme in usable:
            return scheme
    raise alert(AD.handshake_failure, "no signature scheme in common with the peer")


def sign_certificate_verify(eng: Engine, scheme: int, transcript_hash: bytes, is_server: bool) -> bytes:
    content = _certs.certificate_verify_content(is_server, transcript_hash)
    if eng.signer is not None:
        signature = eng.signer(scheme, content)
    else:
        signature = eng.config.certified_key.sign(scheme, content)
    return CertificateVerify(scheme, signature).encode()


def check_certificate_verify(
    eng: Engine, leaf: x509.Certificate, msg: CertificateVerify, transcript_hash: bytes, from_server: bool
) -> None:
    """RFC 8446 §4.4.3: the scheme must be one we offered and fit the key
    (illegal_parameter); a bad signature is decrypt_error."""
    content = _certs.certificate_verify_content(from_server, transcript_hash)
    _certs.verify_certificate_verify(leaf, msg.algorithm, msg.signature, content, eng.config.signature_schemes)


def can_authenticate(eng: Engine) -> bool:
    cfg = eng.config
    return bool(cfg.chain_der) and (cfg.certified_key is not None or eng.signer is not None)


# ---------------------------------------------------------------------------
# Post-handshake: KeyUpdate (RFC 8446 §4.6.3), shared by both roles


class Connected(State):
    connected = True
    expects = frozenset({HT.KEY_UPDATE})

    def handle(self, eng: Engine, msg: Any, raw: bytes) -> State:
        if isinstance(msg, KeyUpdate):
            receive_key_update(eng, msg)
            return self
        raise alert(AD.unexpected_message, f"{type(msg).__name__} after the handshake")  # pragma: no cover


def receive_key_update(eng: Engine, msg: KeyUpdate) -> None:
    # RFC 9001 §6: QUIC endpoints MUST treat a KeyUpdate message as
    # unexpected_message.
    if not eng.profile.key_update:
        raise alert(AD.unexpected_message, "KeyUpdate is not allowed with this carrier")
    suite = CIPHER_SUITES[eng.negotiated.cipher_suite]
    secret = next_traffic_secret(suite, eng.secret(Level.APPLICATION, Direction.READ))
    # §5.1: KeyUpdate must be the last message before the key change.
    eng.key_boundary()
    eng.install_key(Level.APPLICATION, Direction.READ, secret, suite.code)
    if msg.request_update == 1:
        send_key_update(eng, request_peer=False)


def send_key_update(eng: Engine, request_peer: bool) -> None:
    suite = CIPHER_SUITES[eng.negotiated.cipher_suite]
    eng.send(Level.APPLICATION, KeyUpdate(1 if request_peer else 0).encode())
    secret = next_traffic_secret(suite, eng.secret(Level.APPLICATION, Direction.WRITE))
    eng.install_key(Level.APPLICATION, Direction.WRITE, secret, suite.code)
