# tls.Config: everything a TLS 1.3 endpoint is configured with, for both
# roles, validated once at construction (nonsense -> UsageError), plus the
# expensive objects derived from it and shared by every connection that uses
# it (the loaded certificate chain and key, the trust store, the default
# ticket sealer and anti-replay state).  A Config is immutable: change it with
# dataclasses.replace(), which validates again -- and starts with empty caches,
# so configs whose tickets must interoperate share an explicit ticket_sealer.
#
# This module reads no clock: time comes from the carrier (Engine's `now`) or
# from the optional `clock` callable given here.
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from cryptography import x509

from . import certificates as _certs
from .enums import CipherSuite, Group, PskKeyExchangeMode, SignatureScheme
from .errors import UsageError
from .key_schedule import CIPHER_SUITES
from .keyshare import SUPPORTED_GROUPS

DEFAULT_CIPHER_SUITES: tuple[int, ...] = (
    CipherSuite.AES_128_GCM_SHA256,
    CipherSuite.AES_256_GCM_SHA384,
    CipherSuite.CHACHA20_POLY1305_SHA256,
)
DEFAULT_GROUPS: tuple[int, ...] = (Group.X25519MLKEM768, Group.X25519, Group.SECP256R1, Group.SECP384R1)
# The client's default first flight: the hybrid and x25519 shares.
DEFAULT_KEY_SHARE_GROUPS: tuple[int, ...] = (Group.X25519MLKEM768, Group.X25519)
DEFAULT_SIGNATURE_SCHEMES: tuple[int, ...] = tuple(_certs.DEFAULT_SIGNATURE_SCHEMES)
# Accepted in certificates only (signature_algorithms_cert is not sent; a
# verifier accepting these is cryptography.x509.verification's business).
CERTIFICATE_ONLY_SCHEMES = frozenset(
    {SignatureScheme.RSA_PKCS1_SHA256, SignatureScheme.RSA_PKCS1_SHA384, SignatureScheme.RSA_PKCS1_SHA512}
)
_CV_SCHEMES = frozenset(
    {
        SignatureScheme.ECDSA_SECP256R1_SHA256,
        SignatureScheme.ECDSA_SECP384R1_SHA384,
        SignatureScheme.RSA_PSS_RSAE_SHA256,
        SignatureScheme.RSA_PSS_RSAE_SHA384,
        SignatureScheme.RSA_PSS_RSAE_SHA512,
        SignatureScheme.RSA_PSS_PSS_SHA256,
        SignatureScheme.RSA_PSS_PSS_SHA384,
        SignatureScheme.RSA_PSS_PSS_SHA512,
        SignatureScheme.ED25519,
    }
)
MAX_TICKET_LIFETIME = 604800  # RFC 8446 §4.6.1: 7 days
# The largest ClientHello body the §4.1.2 syntax allows: legacy_version (2),
# random (32), legacy_session_id<0..32> (1 + 32), cipher_suites<2..2^16-2>
# (2 + 65534), legacy_compression_methods<1..2^8-1> (1 + 255),
# extensions<8..2^16-1> (2 + 65535).  OpenSSL's server limit is the same.
MAX_CLIENT_HELLO_BODY = 2 + 32 + (1 + 32) + (2 + 65534) + (1 + 255) + (2 + 65535)  # 131396
MAX_HANDSHAKE_MESSAGE = (1 << 24) - 1  # Handshake.length is a uint24 (§4)
DEFAULT_MAX_HANDSHAKE_MESSAGE = 65536  # every message but ClientHello; bytes buffered ahead of the read level
_HASH_LENGTHS = {"sha256": 32, "sha384": 48}


class VerifyMode(IntEnum):
    """Peer certificate policy; the values match ssl.CERT_NONE/OPTIONAL/REQUIRED."""

    NONE = 0  # client: do not verify; server: do not ask for a certificate
    OPTIONAL = 1  # server: ask, accept an empty Certificate; client: same as REQUIRED
    REQUIRED = 2  # server: ask, certificate_required without one; client: verify


@dataclass(frozen=True)
class ExternalPsk:
    """An out-of-band PSK (RFC 8446 §4.2.11): identity, secret and its hash."""

    identity: bytes
    secret: bytes
    hash: str = "sha256"  # "sha256" or "sha384": which cipher suites it can use

    def __post_init__(self) -> None:
        if not isinstance(self.identity, (bytes, bytearray)) or not 1 <= len(self.identity) <= 0xFFFF:
            raise UsageError("PSK identity must be 1..65535 bytes")
        if not isinstance(self.secret, (bytes, bytearray)) or not self.secret:
            raise UsageError("PSK secret must be non-empty bytes")
        if self.hash not in _HASH_LENGTHS:
            raise UsageError("PSK hash must be 'sha256' or 'sha384'")
        object.__setattr__(self, "identity", bytes(self.identity))
        object.__setattr__(self, "secret", bytes(self.secret))


@dataclass(frozen=True)
class ClientHelloInfo:
    """What a server's config_for_client sees of the first ClientHello."""

    server_name: str | None  # SNI host name, None when the client sent none
    alpn_protocols: tuple[str, ...]  # in the client's order; () when it offered none
    cipher_suites: tuple[int, ...]
    groups: tuple[int, ...]
    signature_schemes: tuple[int, ...]


KeylogSink = Callable[[str], Any]


@dataclass(frozen=True, kw_only=True, eq=False)
class Config:
    # -- our credentials (server: required unless PSK only; client: for client auth)
    certificate_chain: Sequence[x509.Certificate] | bytes | str | os.PathLike | None = None
    private_key: Any = None  # a cryptography private key, PEM/DER bytes, or a path
    private_key_password: bytes | str | None = None
    # -- trust anchors for the peer's chain (none given: the system store)
    cafile: str | os.PathLike | None = None
    capath: str | os.PathLike | None = None
    cadata: bytes | None = None  # PEM (one or more) or one DER certificate
    ca_certificates: Sequence[x509.Certificate] = ()
    trust_store: _certs.TrustStore | None = None
    verify_mode: VerifyMode | int | None = None  # None: client REQUIRED, server NONE
    server_name: str | None = None  # client: SNI and the name checked
    # Replaces chain verification (pinning, private PKIs, tests):
    # verifier(chain_der, server_name, is_server_cert, now) -> validated chain
    # (x509 certificates, leaf first); reject by raising AlertError.
    certificate_verifier: Callable[[list[bytes], str | None, bool, float], Sequence[x509.Certificate]] | None = None
    check_hostname: bool = True
    # -- negotiation
    alpn_protocols: Sequence[str | bytes] = ()
    cipher_suites: Sequence[int] = DEFAULT_CIPHER_SUITES
    groups: Sequence[int] = DEFAULT_GROUPS  # preference order
    key_share_groups: Sequence[int] | None = None  # client shares in ClientHello1
    signature_schemes: Sequence[int] = DEFAULT_SIGNATURE_SCHEMES
    # -- PSKs, tickets, 0-RTT
    psks: Sequence[ExternalPsk] = ()
    psk_modes: Sequence[int] = (PskKeyExchangeMode.PSK_DHE_KE,)  # client: offered; server: accepted, preferred first
    ticket_store: Any = None  # client: tls.tickets.TicketStore
    ticket_sealer: Any = None  # server: tls.tickets.TicketSealer (None: one per Config, made on first use)
    session_tickets: int = 1  # server: tickets sent when the handshake completes
    ticket_lifetime: int = 7200  # seconds, <= 604800
    max_early_data: int = 0  # server: 0-RTT bytes accepted (0: no 0-RTT); tickets advertise it
    enable_early_data: bool = False  # client: send 0-RTT when a ticket allows it
    anti_replay: Any = None  # server: tls.tickets.AntiReplay (None: one per Config)
    early_data_window: float = 10.0  # server: ticket age tolerance for 0-RTT (RFC 8446 §8.3)
    # server: a last say on 0-RTT, e.g. QUIC comparing the transport parameters
    # remembered in the ticket (TicketState.app_data, RFC 9000 §7.4.1):
    # accept_early_data(ticket_state) -> bool
    accept_early_data: Callable[[Any], bool] | None = None
    # -- per-client configuration (server): config_for_client(hello) -> Config
    # or None, called once with a ClientHelloInfo (the first ClientHello's
    # SNI, ALPN list, suites, groups, schemes) before anything is chosen; a
    # Config returned replaces this one for the rest of the handshake (its
    # credentials, ALPN, client verification, tickets).  Refuse a client by
    # raising tls.AlertError (e.g. unrecognized_name).  One port serving
    # several names and protocols, each with its own certificate, is built on it.
    config_for_client: Callable[[Any], Config | None] | None = None
    # -- HelloRetryRequest and hello shaping
    hrr_cookie_length: int = 0  # server: bytes of random cookie in a HelloRetryRequest (0: none)
    pad_client_hello: bool = False  # client: RFC 7685 padding of 256..511-byte hellos to 512
    # -- limits, logging, time
    # Handshake size caps (the engine answers a message over its cap with
    # decode_error, and more than max_handshake_buffer bytes buffered for a
    # level not yet read with unexpected_message).  ClientHello gets its own,
    # roomy cap: a legal one can reach MAX_CLIENT_HELLO_BODY bytes (e.g. tens
    # of thousands of signature schemes), and OpenSSL accepts that much;
    # every other message, and bytes buffered ahead of the read level, keep
    # the tight general cap.
    max_handshake_buffer: int = DEFAULT_MAX_HANDSHAKE_MESSAGE  # per level: bytes buffered ahead; largest other message
    max_client_hello: int = MAX_CLIENT_HELLO_BODY  # server: largest ClientHello body accepted
    keylog: KeylogSink | Any = None  # callable(line), a file object, or a path (appended)
    clock: Callable[[], float] | None = None  # fallback time source when the carrier passes none

    # caches (shared by every engine using this Config)
    _certified_key: Any = field(default=None, init=False, repr=False)
    _chain_der: tuple[bytes, ...] = field(default=(), init=False, repr=False)
    _first_flight: tuple[int, ...] = field(default=(), init=False, repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        # verify mode
        if self.verify_mode is not None:
            try:
                set_(self, "verify_mode", VerifyMode(int(self.verify_mode)))
            except (ValueError, TypeError):
                raise UsageError(f"verify_mode must be NONE, OPTIONAL or REQUIRED, not {self.verify_mode!r}") from None
        # lists of code points
        set_(self, "cipher_suites", _code_points(self.cipher_suites, CIPHER_SUITES, "cipher suite"))
        set_(self, "groups", _code_points(self.groups, SUPPORTED_GROUPS, "group"))
        ksg = DEFAULT_KEY_SHARE_GROUPS if self.key_share_groups is None else self.key_share_groups
        if self.key_share_groups is None:
            ksg = tuple(g for g in ksg if g in self.groups) or self.groups[:1]
        ksg = _code_points(ksg, SUPPORTED_GROUPS, "key share group", allow_empty=True)
        for g in ksg:
            if g not in self.groups:
                raise UsageError(f"key share group 0x{g:04x} is not in groups")
        if self.key_share_groups is not None:
            set_(self, "key_share_groups", ksg)
        set_(self, "_first_flight", ksg)
        set_(self, "signature_schemes", _code_points(self.signature_schemes, _CV_SCHEMES, "signature scheme"))
        modes = tuple(int(m) for m in self.psk_modes)
        if any(m not in (0, 1) for m in modes) or len(set(modes)) != len(modes):
            raise UsageError("psk_modes must be distinct PskKeyExchangeMode values")
        set_(self, "psk_modes", modes)
        # ALPN
        alpn = []
        for p in self.alpn_protocols:
            b = p.encode("utf-8", "surrogateescape") if isinstance(p, str) else bytes(p)
            if not 1 <= len(b) <= 255:
                raise UsageError("ALPN protocol names are 1..255 bytes")
            alpn.append(b)
        if len(set(alpn)) != len(alpn):
            raise UsageError("duplicate ALPN protocol")
        set_(self, "alpn_protocols", tuple(alpn))
        # PSKs
        psks = tuple(self.psks)
        for psk in psks:
            if not isinstance(psk, ExternalPsk):
                raise UsageError("psks must be ExternalPsk objects")
        if len({p.identity for p in psks}) != len(psks):
            raise UsageError("duplicate PSK identity")
        set_(self, "psks", psks)
        # numbers
        if not 0 <= self.ticket_lifetime <= MAX_TICKET_LIFETIME:
            raise UsageError("ticket_lifetime must be 0..604800 seconds")
        if not 0 <= self.max_early_data <= 0xFFFFFFFF:
            raise UsageError("max_early_data must fit in 32 bits")
        if self.session_tickets < 0:
            raise UsageError("session_tickets must be >= 0")
        if not 0 <= self.hrr_cookie_length <= 0xFFFF - 2:
            raise UsageError("hrr_cookie_length must be 0..65533")
        if self.max_handshake_buffer < 1024:
            raise UsageError("max_handshake_buffer must be at least 1024 bytes")
        if not 1024 <= self.max_client_hello <= MAX_HANDSHAKE_MESSAGE:
            raise UsageError(f"max_client_hello must be 1024..{MAX_HANDSHAKE_MESSAGE} bytes")
        if self.early_data_window < 0:
            raise UsageError("early_data_window must be >= 0")
        if self.server_name is not None:
            if not isinstance(self.server_name, str) or not self.server_name or len(self.server_name) > 255:
                raise UsageError("server_name must be a non-empty string")
            try:
                self.server_name.encode("ascii")
            except UnicodeEncodeError:
                raise UsageError("server_name must be ASCII (use IDNA A-labels)") from None
        if self.keylog is not None and not (
            callable(self.keylog) or hasattr(self.keylog, "write") or isinstance(self.keylog, (str, os.PathLike))
        ):
            raise UsageError("keylog must be a callable, a file object or a path")
        if self.accept_early_data is not None and not callable(self.accept_early_data):
            raise UsageError("accept_early_data must be callable")
        if self.config_for_client is not None and not callable(self.config_for_client):
            raise UsageError("config_for_client must be callable")
        if self.certificate_verifier is not None and not callable(self.certificate_verifier):
            raise UsageError("certificate_verifier must be callable")
        if self.clock is not None and not callable(self.clock):
            raise UsageError("clock must be a callable returning seconds")
        # credentials
        self._load_credentials()
        # trust sources are loaded lazily (the system store is slow), but
        # paths are checked now
        for path in (self.cafile,):
            if path is not None and not os.path.isfile(path):
                raise UsageError(f"cafile {path!r} not found")
        if self.capath is not None and not os.path.isdir(self.capath):
            raise UsageError(f"capath {self.capath!r} not found")

    def _load_credentials(self) -> None:
        set_ = object.__setattr__
        chain_src, key_src = self.certificate_chain, self.private_key
        if chain_src is None:
            if key_src is not None:
                raise UsageError("private_key given without certificate_chain")
            return
        try:
            if isinstance(chain_src, (bytes, bytearray, memoryview, str, os.PathLike)):
                chain = _certs.load_certificate_chain(chain_src)
            else:
                chain = list(chain_src)
                if not all(isinstance(c, x509.Certificate) for c in chain):
                    raise UsageError("certificate_chain must hold x509.Certificate objects")
        except (ValueError, OSError) as exc:
            raise UsageError(f"cannot load certificate_chain: {exc}") from None
        if not chain:
            raise UsageError("certificate_chain is empty")
        from cryptography.hazmat.primitives.serialization import Encoding

        set_(self, "certificate_chain", tuple(chain))
        set_(self, "_chain_der", tuple(c.public_bytes(Encoding.DER) for c in chain))
        if key_src is None:
            return  # signing must then come from the Engine's `signer`
        try:
            if isinstance(key_src, (bytes, bytearray, memoryview, str, os.PathLike)):
                key = _certs.load_private_key(key_src, self.private_key_password)
            else:
                key = key_src
            certified = _certs.CertifiedKey(chain, key)
        except UsageError:
            raise
        except (ValueError, TypeError, OSError) as exc:
            raise UsageError(f"cannot load private_key: {exc}") from None
        set_(self, "private_key", key)
        set_(self, "_certified_key", certified)

    # -- derived objects ---------------------------------------------------
    @property
    def certified_key(self) -> _certs.CertifiedKey | None:
        return self._certified_key

    @property
    def first_flight_groups(self) -> tuple[int, ...]:
        """The groups the client sends key shares for in its first ClientHello."""
        return self._first_flight

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        return self._chain_der

    def role_verify_mode(self, is_client: bool) -> VerifyMode:
        if self.verify_mode is None:
            return VerifyMode.REQUIRED if is_client else VerifyMode.NONE
        return VerifyMode(self.verify_mode)

    def trust(self) -> _certs.TrustStore:
        """The trust anchors (loaded once per Config)."""
        store = self._cache.get("trust")
        if store is not None:
            return store
        if self.trust_store is not None:
            store = self.trust_store
        else:
            certs: list[x509.Certificate] = list(self.ca_certificates)
            try:
                if self.cadata is not None:
                    certs += _certs.load_certificate_chain(bytes(self.cadata))
                if self.cafile is not None:
                    certs += _certs.load_certificate_chain(self.cafile)
                if self.capath is not None:
                    certs += _certs.TrustStore.from_dir(self.capath).certificates
            except (ValueError, OSError) as exc:
                raise UsageError(f"cannot load trust anchors: {exc}") from None
            store = _certs.TrustStore(certs) if certs else _certs.TrustStore.system()
        self._cache["trust"] = store
        return store

    def sealer(self, now: float) -> Any:
        """The server's ticket sealer: the configured one, or one per Config."""
        if self.ticket_sealer is not None:
            return self.ticket_sealer
        sealer = self._cache.get("sealer")
        if sealer is None:
            from .tickets import TicketSealer

            sealer = TicketSealer(now, key_lifetime=3600.0 + 2 * max(self.ticket_lifetime, 1))
            self._cache["sealer"] = sealer
        return sealer

    def replay_guard(self) -> Any:
        if self.anti_replay is not None:
            return self.anti_replay
        guard = self._cache.get("anti_replay")
        if guard is None:
            from .tickets import AntiReplay

            guard = AntiReplay(window=max(self.early_data_window, 1.0))
            self._cache["anti_replay"] = guard
        return guard

    def write_keylog(self, line: str) -> None:
        sink = self.keylog
        if sink is None:
            return
        if hasattr(sink, "write"):
            sink.write(line + "\n")
            flush = getattr(sink, "flush", None)
            if flush is not None:
                flush()
        elif callable(sink):
            sink(line)
        else:
            with open(sink, "a", encoding="ascii") as f:
                f.write(line + "\n")

    def psk_by_identity(self, identity: bytes) -> ExternalPsk | None:
        for psk in self.psks:
            if psk.identity == identity:
                return psk
        return None


def _code_points(values: Sequence[int], known, what: str, allow_empty: bool = False) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise UsageError(f"{what}s must be integers") from None
    if not out and not allow_empty:
        raise UsageError(f"at least one {what} is needed")
    for v in out:
        if v not in known:
            raise UsageError(f"unsupported {what} 0x{v:04x}")
    if len(set(out)) != len(out):
        raise UsageError(f"duplicate {what}")
    return out


__all__ = [
    "Config",
    "ClientHelloInfo",
    "ExternalPsk",
    "VerifyMode",
    "DEFAULT_CIPHER_SUITES",
    "DEFAULT_GROUPS",
    "DEFAULT_KEY_SHARE_GROUPS",
    "DEFAULT_SIGNATURE_SCHEMES",
    "DEFAULT_MAX_HANDSHAKE_MESSAGE",
    "MAX_CLIENT_HELLO_BODY",
]
