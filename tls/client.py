# The client's handshake states (RFC 8446 §2, §4), one class per state:
#   ClientStart -> ExpectServerHello (-> ExpectServerHello after an HRR)
#   -> ExpectEncryptedExtensions -> ExpectCertificateOrCertRequest
#   -> ExpectCertificate -> ExpectCertificateVerify -> ExpectFinished
#   -> ClientConnected (NewSessionTicket, KeyUpdate)
# With a PSK the server skips the certificate states.  The ClientHello (first
# and second) is built by _Hello, which remembers what was offered so the
# answers can be checked against it.
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Any

from . import events as ev
from . import extensions as X
from .enums import SSL30, TLS12, TLS13, AlertDescription, Direction, ExtensionType, HandshakeType, Level, PskKeyExchangeMode
from .errors import AlertError
from .handshake import (
    Connected,
    State,
    alert,
    alpn_str,
    can_authenticate,
    certificate_message,
    check_certificate_verify,
    check_peer_chain,
    our_scheme,
    receive_key_update,
    sign_certificate_verify,
)
from .key_schedule import CIPHER_SUITES, KeySchedule, Transcript
from .keyshare import KeyShare
from .messages import Certificate, ClientHello, EndOfEarlyData, Finished, build_client_hello_with_binders
from .tickets import MAX_TICKET_LIFETIME, Ticket

AD = AlertDescription
HT = HandshakeType
ET = ExtensionType
_SUITE_FOR_HASH = {"sha256": 0x1301, "sha384": 0x1302}
# Accepted in certificates only; offered at the end of signature_algorithms
# for compatibility (RFC 8446 §4.2.3), never accepted in CertificateVerify.
_CERT_ONLY_SCHEMES = (0x0401, 0x0501, 0x0601)


class _PskOffer:
    __slots__ = ("identity", "psk", "hash_name", "external", "ticket")

    def __init__(self, identity: bytes, psk: bytes, hash_name: str, external: bool, ticket: Ticket | None) -> None:
        self.identity = identity
        self.psk = psk
        self.hash_name = hash_name
        self.external = external
        self.ticket = ticket

    def obfuscated_age(self, now: float) -> int:
        # RFC 8446 §4.2.11: external PSKs use an obfuscated age of 0.
        return 0 if self.ticket is None else self.ticket.obfuscated_age(now)


class _Hello:
    """The ClientHello's content, kept to build ClientHello2 and check replies."""

    def __init__(self, eng: Any) -> None:
        cfg = eng.config
        self.random = eng.random(32)
        # RFC 8446 Appendix D.4 (compatibility mode) vs RFC 9001 §8.4 (none in QUIC).
        self.session_id = eng.random(32) if eng.profile.middlebox_compat else b""
        self.suites = list(cfg.cipher_suites)
        self.shares = {g: KeyShare.generate(g, eng.private_key_for(g)) for g in cfg.first_flight_groups}
        self.cookie: bytes | None = None
        self.offers = self._psk_offers(eng)
        first = self.offers[0] if self.offers else None
        self.early = bool(
            cfg.enable_early_data
            and first is not None
            and first.ticket is not None
            and first.ticket.max_early_data > 0
            and (first.ticket.alpn is None or first.ticket.alpn in cfg.alpn_protocols)
        )
        self.sent_types: set[int] = set()
        self.raw = b""

    def _psk_offers(self, eng: Any) -> list[_PskOffer]:
        cfg = eng.config
        offers: list[_PskOffer] = []
        if cfg.ticket_store is not None and cfg.psk_modes:
            ticket = cfg.ticket_store.pop(cfg.server_name, eng.now())
            if ticket is not None and ticket.cipher_suite in cfg.cipher_suites:
                offers.append(
                    _PskOffer(ticket.ticket, ticket.psk, CIPHER_SUITES[ticket.cipher_suite].hash_name, False, ticket)
                )
        if cfg.psk_modes and cfg.psks:
            usable_hashes = {CIPHER_SUITES[s].hash_name for s in cfg.cipher_suites}
            for psk in cfg.psks:
                if psk.hash in usable_hashes:
                    offers.append(_PskOffer(psk.identity, psk.secret, psk.hash, True, None))
        return offers

    def build(self, eng: Any, prior: Transcript | None) -> bytes:
        """Encode the ClientHello (binders computed over `prior` + the
        truncated hello, RFC 8446 §4.2.11.2)."""
        cfg = eng.config
        head, tail, psk_modes = _config_extensions(cfg)
        exts: list[tuple[int, bytes]] = list(head)
        exts.append((ET.KEY_SHARE, X.encode_key_share_client([(g, s.public) for g, s in self.shares.items()])))
        if self.early:
            exts.append((ET.EARLY_DATA, X.encode_early_data()))
        exts += tail
        if self.cookie is not None:
            exts.append((ET.COOKIE, X.encode_cookie(self.cookie)))
        if psk_modes is not None and (self.offers or cfg.ticket_store is not None):
            exts.append(psk_modes)
        if eng.profile.transport_parameters:
            exts.append((ET.QUIC_TRANSPORT_PARAMETERS, X.encode_quic_transport_parameters(eng.transport_parameters)))
        exts = eng.hook(HT.CLIENT_HELLO, exts)

        psk_ext: tuple[int, bytes] | None = None
        if self.offers:
            now = eng.now() if any(o.ticket is not None for o in self.offers) else 0.0
            identities = [(o.identity, o.obfuscated_age(now)) for o in self.offers]
            placeholders = [bytes(CIPHER_SUITES[_SUITE_FOR_HASH[o.hash_name]].hash_length) for o in self.offers]
            psk_ext = (ET.PRE_SHARED_KEY, X.encode_pre_shared_key_client(identities, placeholders))
        if cfg.pad_client_hello:
            probe = ClientHello(self.random, self.session_id, self.suites, exts + ([psk_ext] if psk_ext else []))
            length = len(probe.encode())
            # RFC 7685 / the F5 workaround: hellos of 256..511 bytes go to 512.
            if 256 <= length < 512:
                pad = 512 - length
                pad = pad - 4 if pad >= 5 else 1
                exts.append((ET.PADDING, X.encode_padding(pad)))
        if psk_ext is not None:
            exts.append(psk_ext)
        hello = ClientHello(self.random, self.session_id, self.suites, exts)
        self.sent_types = {t for t, _ in exts}
        if psk_ext is None:
            self.raw = hello.encode()
            return self.raw

        def binders(prefix: bytes) -> list[bytes]:
            out = []
            for o in self.offers:
                th = prior.digest_with(prefix) if prior is not None else _hash(o.hash_name, prefix)
                ks = KeySchedule(_SUITE_FOR_HASH[o.hash_name], o.psk)
                out.append(ks.compute_binder(ks.binder_key(o.external), th))
            return out

        self.raw = build_client_hello_with_binders(hello, binders)
        return self.raw


def _config_extensions(cfg: Any) -> tuple[tuple, tuple, tuple[int, bytes] | None]:
    """The ClientHello extensions that only the Config decides, encoded once
    per Config (Configs are immutable): those before key_share
    (server_name, supported_groups, ALPN), those after it (supported_versions,
    signature_algorithms), and psk_key_exchange_modes (None without modes)."""
    cached = cfg._cache.get("client_hello_extensions")
    if cached is None:
        head = []
        name = cfg.server_name
        if name is not None and not _is_ip(name):
            head.append((ET.SERVER_NAME, X.encode_server_name(name)))
        head.append((ET.SUPPORTED_GROUPS, X.encode_supported_groups(cfg.groups)))
        if cfg.alpn_protocols:
            head.append((ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, X.encode_alpn(cfg.alpn_protocols)))
        schemes = list(cfg.signature_schemes) + list(_CERT_ONLY_SCHEMES)
        tail = (
            (ET.SUPPORTED_VERSIONS, X.encode_supported_versions_client([TLS13])),
            (ET.SIGNATURE_ALGORITHMS, X.encode_signature_algorithms(schemes)),
        )
        modes = (ET.PSK_KEY_EXCHANGE_MODES, X.encode_psk_key_exchange_modes(cfg.psk_modes)) if cfg.psk_modes else None
        cached = (tuple(head), tail, modes)
        cfg._cache["client_hello_extensions"] = cached
    return cached


def _hash(hash_name: str, data: bytes) -> bytes:
    return hashlib.new(hash_name, data).digest()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class _Session:
    """What the states after ServerHello share (rustls passes the same bag)."""

    __slots__ = (
        "hello", "transcript", "ks", "suite", "c_hs", "s_hs", "offer",
        "hs_write_pending", "early_accepted", "cert_schemes", "cert_context", "leaf",
    )

    def __init__(self, hello: _Hello, transcript: Transcript, ks: KeySchedule, offer: _PskOffer | None) -> None:
        self.hello = hello
        self.transcript = transcript
        self.ks = ks
        self.suite = ks.cipher_suite
        self.offer = offer
        self.c_hs = b""
        self.s_hs = b""
        self.hs_write_pending = False
        self.early_accepted = False
        self.cert_schemes: list[int] | None = None  # CertificateRequest's signature_algorithms
        self.cert_context = b""
        self.leaf: Any = None


# ---------------------------------------------------------------------------


class ClientStart(State):
    def start(self, eng: Any) -> State:
        hello = _Hello(eng)
        eng.client_random = hello.random
        raw = hello.build(eng, None)
        eng.send(Level.INITIAL, raw)
        if hello.early:
            ticket = hello.offers[0].ticket
            eng.early_data_offered = True
            eng.early_data_ticket = ticket
            eng.max_early_data = ticket.max_early_data
            ks = KeySchedule(ticket.cipher_suite, ticket.psk)
            th = _hash(ks.hash_name, raw)
            secret = ks.client_early_traffic_secret(th)
            eng.keylog("CLIENT_EARLY_TRAFFIC_SECRET", secret)
            eng.early_exporter_master_secret = ks.early_exporter_master_secret(th)
            eng.keylog("EARLY_EXPORTER_SECRET", eng.early_exporter_master_secret)
            eng.install_key(Level.EARLY_DATA, Direction.WRITE, secret, ticket.cipher_suite)
        return ExpectServerHello(hello, None, None)


class ExpectServerHello(State):
    expects = frozenset({HT.SERVER_HELLO})

    def __init__(self, hello: _Hello, transcript: Transcript | None, hrr_suite: int | None) -> None:
        self.hello = hello
        self.transcript = transcript  # set after an HRR
        self.hrr_suite = hrr_suite

    def handle(self, eng: Any, sh: Any, raw: bytes) -> State:
        h = self.hello
        if sh.legacy_version <= SSL30:
            # RFC 8446 Appendix D.5: a ServerHello.legacy_version of 0x0300 MUST
            # be answered with protocol_version (not §4.1.3's illegal_parameter).
            raise alert(AD.protocol_version, f"ServerHello.legacy_version 0x{sh.legacy_version:04x} is SSL 3.0 or older")
        sv = sh.extension(ET.SUPPORTED_VERSIONS)
        if sv is None:
            # RFC 8446 §4.1.3: without supported_versions the server chose
            # TLS 1.2 or older; we speak only 1.3.
            raise alert(AD.protocol_version, "server did not select TLS 1.3")
        if X.parse_supported_versions_server(sv) != TLS13:
            raise alert(AD.illegal_parameter, "server selected a version we did not offer")  # §4.2.1
        if sh.legacy_version != TLS12:
            raise alert(AD.illegal_parameter, "ServerHello.legacy_version must be 0x0303")  # §4.1.3
        is_hrr = sh.is_hello_retry_request
        X.check_allowed(HT.SERVER_HELLO, sh.extensions, hello_retry_request=is_hrr, offered=h.sent_types)
        # RFC 8446 §4.1.3: echo of our session id, null compression, an offered suite.
        if sh.legacy_session_id_echo != h.session_id:
            raise alert(AD.illegal_parameter, "legacy_session_id_echo does not match")
        if sh.legacy_compression_method != 0:
            raise alert(AD.illegal_parameter, "non-null compression method")
        if sh.cipher_suite not in h.suites:
            raise alert(AD.illegal_parameter, "server selected a cipher suite we did not offer")
        if is_hrr:
            return self._retry(eng, sh, raw)
        if self.hrr_suite is not None and sh.cipher_suite != self.hrr_suite:
            # §4.1.4: the ServerHello must repeat the HRR's cipher suite.
            raise alert(AD.illegal_parameter, "cipher suite differs from the HelloRetryRequest's")
        suite = CIPHER_SUITES[sh.cipher_suite]
        cfg = eng.config

        offer: _PskOffer | None = None
        mode = None
        psk_data = sh.extension(ET.PRE_SHARED_KEY)
        share_data = sh.extension(ET.KEY_SHARE)
        if psk_data is not None:
            index = X.parse_pre_shared_key_server(psk_data)
            # §4.2.11: the index must be in range and the suite's hash the PSK's.
            if index >= len(h.offers):
                raise alert(AD.illegal_parameter, "selected_identity out of range")
            offer = h.offers[index]
            if offer.hash_name != suite.hash_name:
                raise alert(AD.illegal_parameter, "cipher suite hash does not match the PSK")
            mode = PskKeyExchangeMode.PSK_DHE_KE if share_data is not None else PskKeyExchangeMode.PSK_KE
            if mode not in cfg.psk_modes:
                if mode == PskKeyExchangeMode.PSK_KE:
                    raise alert(AD.missing_extension, "psk_ke was not offered: key_share required")
                raise alert(AD.illegal_parameter, "psk_dhe_ke was not offered")
        elif share_data is None:
            # §4.2.8 / §9.2: without a PSK the server must send a key share.
            raise alert(AD.missing_extension, "ServerHello has neither key_share nor pre_shared_key")
        group = None
        shared = None
        if share_data is not None:
            group, share = X.parse_key_share_server(share_data)
            if group not in h.shares:
                # §4.2.8: the server's share must be in a group we sent a share for.
                raise alert(AD.illegal_parameter, "server key share for a group we did not send")
            shared = h.shares[group].exchange(share)

        transcript = self.transcript
        if transcript is None:
            transcript = Transcript(suite.hash_name)
            transcript.update(h.raw)
        transcript.update(raw)
        ks = KeySchedule(suite.code, offer.psk if offer else None)
        ks.derive_handshake_secret(shared)
        th = transcript.digest()
        s = _Session(h, transcript, ks, offer)
        s.c_hs = ks.client_handshake_traffic_secret(th)
        s.s_hs = ks.server_handshake_traffic_secret(th)
        eng.keylog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", s.c_hs)
        eng.keylog("SERVER_HANDSHAKE_TRAFFIC_SECRET", s.s_hs)
        eng.install_key(Level.HANDSHAKE, Direction.READ, s.s_hs, suite.code)
        if h.early and eng.profile.end_of_early_data:
            s.hs_write_pending = True  # 0-RTT records go on until our last flight
        else:
            eng.install_key(Level.HANDSHAKE, Direction.WRITE, s.c_hs, suite.code)
        eng.negotiated = eng.negotiated.with_(
            version=TLS13,
            cipher_suite=suite.code,
            group=group,
            resumed=offer is not None,
            psk_mode=mode,
            external_psk=offer.identity if offer is not None and offer.external else None,
            hello_retry=self.hrr_suite is not None,
            server_name=cfg.server_name,
        )
        eng.set_read_level(Level.HANDSHAKE)
        return ExpectEncryptedExtensions(s)

    def _retry(self, eng: Any, hrr: Any, raw: bytes) -> State:
        h = self.hello
        cfg = eng.config
        if self.hrr_suite is not None:
            raise alert(AD.unexpected_message, "second HelloRetryRequest")  # §4.1.4
        group_data = hrr.extension(ET.KEY_SHARE)
        cookie_data = hrr.extension(ET.COOKIE)
        if group_data is None and cookie_data is None:
            # §4.1.4: an HRR that would not change the ClientHello.
            raise alert(AD.illegal_parameter, "HelloRetryRequest asks for no change")
        new_group = None
        if group_data is not None:
            new_group = X.parse_key_share_hrr(group_data)
            # §4.2.8: the group must be offered and not already have a share.
            if new_group not in cfg.groups or new_group in h.shares:
                raise alert(AD.illegal_parameter, "HelloRetryRequest selected an unusable group")
        h.cookie = X.parse_cookie(cookie_data) if cookie_data is not None else None
        suite = CIPHER_SUITES[hrr.cipher_suite]
        transcript = Transcript(suite.hash_name)
        transcript.update(h.raw)
        transcript.replace_with_message_hash()  # §4.4.1
        transcript.update(raw)
        if h.early:
            # §4.2.10: no early_data in the second ClientHello; 0-RTT is lost.
            h.early = False
            eng.max_early_data = 0
            eng.emit(ev.EarlyDataRejected())
        if new_group is not None:
            h.shares = {new_group: KeyShare.generate(new_group, eng.private_key_for(new_group))}
        # §4.1.4: the client SHOULD NOT offer PSKs whose hash is not the suite's.
        h.offers = [o for o in h.offers if o.hash_name == suite.hash_name]
        ch2 = h.build(eng, transcript)
        transcript.update(ch2)
        eng.send(Level.INITIAL, ch2)
        eng.negotiated = eng.negotiated.with_(hello_retry=True)
        eng.key_boundary()
        return ExpectServerHello(h, transcript, suite.code)


class ExpectEncryptedExtensions(State):
    expects = frozenset({HT.ENCRYPTED_EXTENSIONS})


    def handle(self, eng: Any, ee: Any, raw: bytes) -> State:
        s = self.s
        h = s.hello
        cfg = eng.config
        X.check_allowed(HT.ENCRYPTED_EXTENSIONS, ee.extensions, offered=h.sent_types)
        alpn = None
        data = ee.extension(ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
        if data is not None:
            alpn = X.parse_alpn_selected(data)
            if alpn not in cfg.alpn_protocols:
                raise alert(AD.no_application_protocol, "server selected a protocol we did not offer")
        elif eng.profile.alpn_required:
            raise alert(AD.no_application_protocol, "no application protocol negotiated")  # RFC 9001 §8.1
        data = ee.extension(ET.SERVER_NAME)
        if data is not None:
            X.expect_empty(data, "server_name")
        data = ee.extension(ET.SUPPORTED_GROUPS)
        if data is not None:
            X.parse_supported_groups(data)  # the server's preference: informational
        accepted = False
        data = ee.extension(ET.EARLY_DATA)
        if data is not None:
            X.parse_early_data(data)
            ticket = h.offers[0].ticket if h.offers else None
            # §4.2.10: early data is only for the first PSK, with the ticket's
            # cipher suite and ALPN.
            if s.offer is None or s.offer is not h.offers[0] or ticket is None:
                raise alert(AD.illegal_parameter, "early data accepted without the first PSK")
            if s.suite != ticket.cipher_suite or alpn != ticket.alpn:
                raise alert(AD.illegal_parameter, "early data accepted with another suite or ALPN")
            accepted = True
        if eng.profile.transport_parameters:
            data = ee.extension(ET.QUIC_TRANSPORT_PARAMETERS)
            if data is None:
                raise alert(AD.missing_extension, "no quic_transport_parameters")  # RFC 9001 §8.2
            eng.peer_transport_parameters = X.parse_quic_transport_parameters(data)
            eng.emit(ev.PeerTransportParameters(eng.peer_transport_parameters))
        if h.early and not accepted:
            eng.max_early_data = 0
            eng.emit(ev.EarlyDataRejected())
        s.early_accepted = accepted
        eng.negotiated = eng.negotiated.with_(alpn=alpn_str(alpn), early_data_accepted=accepted)
        s.transcript.update(raw)
        if s.offer is not None:
            return ExpectFinished(s)
        return ExpectCertificateOrCertRequest(s)


class ExpectCertificateOrCertRequest(State):
    expects = frozenset({HT.CERTIFICATE, HT.CERTIFICATE_REQUEST})


    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        if msg.msg_type == HT.CERTIFICATE:
            return ExpectCertificate(self.s).handle(eng, msg, raw)
        s = self.s
        # §4.3.2: the context is empty during the handshake.
        if msg.request_context:
            raise alert(AD.illegal_parameter, "CertificateRequest context must be empty in the handshake")
        X.check_allowed(HT.CERTIFICATE_REQUEST, msg.extensions)
        data = msg.extension(ET.SIGNATURE_ALGORITHMS)
        if data is None:
            raise alert(AD.missing_extension, "CertificateRequest without signature_algorithms")  # §4.3.2
        s.cert_schemes = X.parse_signature_algorithms(data)
        s.cert_context = msg.request_context
        s.transcript.update(raw)
        return ExpectCertificate(s)


class ExpectCertificate(State):
    expects = frozenset({HT.CERTIFICATE})


    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        s = self.s
        if msg.request_context:
            raise alert(AD.illegal_parameter, "server Certificate context must be empty")  # §4.4.2
        if not msg.entries:
            raise alert(AD.decode_error, "server sent no certificate")  # §4.4.2.4
        chain = check_peer_chain(eng, msg)
        s.leaf = chain[0]
        eng.peer_certificates = tuple(chain)
        s.transcript.update(raw)
        return ExpectCertificateVerify(s)


class ExpectCertificateVerify(State):
    expects = frozenset({HT.CERTIFICATE_VERIFY})


    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        s = self.s
        check_certificate_verify(eng, s.leaf, msg, s.transcript.digest(), from_server=True)
        eng.negotiated = eng.negotiated.with_(signature_scheme=msg.algorithm)
        s.transcript.update(raw)
        return ExpectFinished(s)


class ExpectFinished(State):
    expects = frozenset({HT.FINISHED})


    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        s = self.s
        ks, t = s.ks, s.transcript
        if len(msg.verify_data) != ks.hash_length:
            raise alert(AD.decode_error, "Finished has the wrong length")
        expected = ks.finished_verify_data(s.s_hs, t.digest())
        if not hmac.compare_digest(expected, msg.verify_data):
            raise alert(AD.decrypt_error, "server Finished does not verify")  # §4.4.4
        t.update(raw)
        ks.derive_master_secret()
        th = t.digest()
        c_ap = ks.client_application_traffic_secret_0(th)
        s_ap = ks.server_application_traffic_secret_0(th)
        eng.exporter_master_secret = ks.exporter_master_secret(th)
        eng.keylog("CLIENT_TRAFFIC_SECRET_0", c_ap)
        eng.keylog("SERVER_TRAFFIC_SECRET_0", s_ap)
        eng.keylog("EXPORTER_SECRET", eng.exporter_master_secret)

        # our last flight
        if s.hs_write_pending:
            if s.early_accepted:
                # §4.5: EndOfEarlyData under the 0-RTT key, then switch keys.
                eoed = EndOfEarlyData().encode()
                eng.send(Level.EARLY_DATA, eoed)
                t.update(eoed)
            eng.install_key(Level.HANDSHAKE, Direction.WRITE, s.c_hs, s.suite)
        if s.cert_schemes is not None:
            scheme = None
            if can_authenticate(eng):
                try:
                    scheme = our_scheme(eng, s.cert_schemes)
                except AlertError:
                    scheme = None  # no usable scheme: answer with no certificate
            if scheme is not None:
                cert = certificate_message(eng, s.cert_context)
                eng.send(Level.HANDSHAKE, cert)
                t.update(cert)
                cv = sign_certificate_verify(eng, scheme, t.digest(), is_server=False)
                eng.send(Level.HANDSHAKE, cv)
                t.update(cv)
                eng.negotiated = eng.negotiated.with_(client_signature_scheme=scheme)
            else:
                empty = Certificate(s.cert_context, []).encode()  # §4.4.2.4
                eng.send(Level.HANDSHAKE, empty)
                t.update(empty)
        fin = Finished(ks.finished_verify_data(s.c_hs, t.digest())).encode()
        eng.send(Level.HANDSHAKE, fin)
        t.update(fin)
        eng.install_key(Level.APPLICATION, Direction.WRITE, c_ap, s.suite)
        eng.install_key(Level.APPLICATION, Direction.READ, s_ap, s.suite)
        eng.set_resumption_source(ks, t.digest())
        eng.set_read_level(Level.APPLICATION)
        eng.handshake_complete = True
        n = eng.negotiated
        eng.emit(
            ev.HandshakeCompleted(
                alpn=n.alpn,
                resumed=n.resumed,
                early_data_accepted=n.early_data_accepted,
                cipher_suite=n.cipher_suite,
                group=n.group,
                signature_scheme=n.signature_scheme,
                server_name=n.server_name,
                peer_certificates=eng.peer_certificates,
            )
        )
        return ClientConnected(ks)


class ClientConnected(Connected):
    expects = frozenset({HT.NEW_SESSION_TICKET, HT.KEY_UPDATE})

    def __init__(self, ks: KeySchedule) -> None:
        ks.forget_handshake_secrets()  # tickets need only the hash and the resumption master secret
        self.ks = ks

    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        if msg.msg_type == HT.KEY_UPDATE:
            receive_key_update(eng, msg)
            return self
        return self._ticket(eng, msg)

    def _ticket(self, eng: Any, nst: Any) -> State:
        cfg = eng.config
        X.check_allowed(HT.NEW_SESSION_TICKET, nst.extensions)
        max_early = 0
        data = nst.extension(ET.EARLY_DATA)
        if data is not None:
            max_early = X.parse_max_early_data_size(data)
            wanted = eng.profile.ticket_max_early_data
            if wanted is not None and max_early != wanted:
                # RFC 9001 §4.6.1: in QUIC the only legal value is 0xffffffff.
                raise alert(AD.illegal_parameter, f"max_early_data_size must be 0x{wanted:08x}")
        if nst.lifetime == 0:
            return self  # §4.6.1: discard immediately
        n = eng.negotiated
        ticket = Ticket(
            server_name=cfg.server_name,
            cipher_suite=n.cipher_suite,
            psk=self.ks.resumption_psk(eng.resumption_master_secret, nst.nonce),
            ticket=nst.ticket,
            age_add=nst.age_add,
            lifetime=min(nst.lifetime, MAX_TICKET_LIFETIME),
            received_at=eng.now(),
            alpn=None if n.alpn is None else n.alpn.encode("utf-8", "surrogateescape"),
            max_early_data=max_early,
            transport_parameters=getattr(eng, "peer_transport_parameters", None),
            extensions=list(nst.extensions),
        )
        if cfg.ticket_store is not None:
            cfg.ticket_store.add(ticket)
        eng.emit(ev.TicketReceived(ticket))
        return self
