# The server's handshake states (RFC 8446 §2, §4), one class per state:
#   ExpectClientHello (-> HelloRetryRequest -> ExpectClientHelloAfterHrr)
#   -> [ExpectEndOfEarlyData] (TCP profile, 0-RTT accepted)
#   -> [ExpectClientCertificate -> ExpectClientCertificateVerify] (client auth)
#   -> ExpectClientFinished -> ServerConnected (KeyUpdate, NewSessionTicket)
# The ClientHello is judged in _ClientHelloView (parsing and the §9.2
# mandatory-extension rules) and answered in respond(): PSK choice and binder
# check, group choice or HRR, 0-RTT decision, then the whole first flight.
from __future__ import annotations

import hmac
from typing import Any

from . import events as ev
from . import extensions as X
from .config import ClientHelloInfo, Config, VerifyMode
from .enums import SSL30, TLS13, AlertDescription, Direction, ExtensionType, HandshakeType, Level, PskKeyExchangeMode
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
from .keyshare import check_client_shares, select_group, server_exchange
from .messages import HRR_RANDOM, CertificateRequest, EncryptedExtensions, Finished, NewSessionTicket, ServerHello
from .tickets import TicketState, client_identity_hash, ticket_age_ok

AD = AlertDescription
HT = HandshakeType
ET = ExtensionType
_CERT_ONLY_SCHEMES = (0x0401, 0x0501, 0x0601)
_TLS13_SELECTED = X.encode_supported_versions_server(TLS13)


class _ClientHelloView:
    """The ClientHello's extensions, parsed (decode errors surface here)."""

    def __init__(self, eng: Any, ch: Any) -> None:
        # RFC 8446 Appendix D.5: "Any endpoint receiving a Hello message with
        # ClientHello.legacy_version ... set to 0x0300 MUST abort the handshake
        # with a "protocol_version" alert" (SSL 3.0 and below, before anything
        # else).  0x0301/0x0302 beside a supported_versions that offers 1.3
        # are let through: §4.2.1 forbids using legacy_version for version
        # negotiation when that extension is present (OpenSSL does the same);
        # without it, D.2 makes them protocol_version just below.
        if ch.legacy_version <= SSL30:
            raise alert(AD.protocol_version, f"ClientHello.legacy_version 0x{ch.legacy_version:04x} is SSL 3.0 or older")
        sv = ch.extension(ET.SUPPORTED_VERSIONS)
        # RFC 8446 §4.2.1: no supported_versions means TLS 1.2 or older.
        if sv is None or TLS13 not in X.parse_supported_versions_client(sv):
            raise alert(AD.protocol_version, "client does not offer TLS 1.3")
        if ch.legacy_compression_methods != b"\x00":
            raise alert(AD.illegal_parameter, "compression methods must be [null]")  # §4.1.2
        X.check_allowed(HT.CLIENT_HELLO, ch.extensions)
        if eng.profile.reject_legacy_session_id and ch.legacy_session_id:
            # RFC 9001 §8.4: QUIC clients MUST NOT request compatibility mode.
            raise alert(AD.illegal_parameter, "non-empty legacy_session_id")
        e = dict(ch.extensions)
        self.groups = X.parse_supported_groups(e[ET.SUPPORTED_GROUPS]) if ET.SUPPORTED_GROUPS in e else None
        self.shares = X.parse_key_share_client(e[ET.KEY_SHARE]) if ET.KEY_SHARE in e else None
        sa = e.get(ET.SIGNATURE_ALGORITHMS)
        self.schemes = X.parse_signature_algorithms(sa) if sa is not None else None
        if ET.SIGNATURE_ALGORITHMS_CERT in e:
            X.parse_signature_algorithms_cert(e[ET.SIGNATURE_ALGORITHMS_CERT])
        pm = e.get(ET.PSK_KEY_EXCHANGE_MODES)
        self.psk_modes = X.parse_psk_key_exchange_modes(pm) if pm is not None else None
        psk = e.get(ET.PRE_SHARED_KEY)
        self.psk = X.parse_pre_shared_key_client(psk) if psk is not None else None
        # What Truncate() removes for the binders (§4.2.11.2): pre_shared_key is
        # the last extension (check_allowed above), so its binders end the message.
        self.binders_length = X.binders_length(psk) if psk is not None else 0
        alpn = e.get(ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
        self.alpn = X.parse_alpn(alpn) if alpn is not None else None
        sni = e.get(ET.SERVER_NAME)
        self.server_name = X.parse_server_name(sni) if sni is not None else None
        cookie = e.get(ET.COOKIE)
        self.cookie = X.parse_cookie(cookie) if cookie is not None else None
        self.early_data = ET.EARLY_DATA in e
        if self.early_data:
            X.parse_early_data(e[ET.EARLY_DATA])
        if ET.PADDING in e:
            X.parse_padding(e[ET.PADDING])
        if ET.POST_HANDSHAKE_AUTH in e:
            X.parse_post_handshake_auth(e[ET.POST_HANDSHAKE_AUTH])  # offered; we never use it
        if ET.RECORD_SIZE_LIMIT in e:
            X.parse_record_size_limit(e[ET.RECORD_SIZE_LIMIT])
        self.transport_parameters = None
        if eng.profile.transport_parameters:
            tp = e.get(ET.QUIC_TRANSPORT_PARAMETERS)
            if tp is None:
                raise alert(AD.missing_extension, "no quic_transport_parameters")  # RFC 9001 §8.2
            self.transport_parameters = X.parse_quic_transport_parameters(tp)
        # RFC 8446 §9.2: mandatory-to-implement extension rules.
        if (self.groups is None) != (self.shares is None):
            raise alert(AD.missing_extension, "supported_groups and key_share go together")
        if self.psk is None and (self.schemes is None or self.groups is None):
            raise alert(AD.missing_extension, "no signature_algorithms / supported_groups without a PSK")
        if self.psk is not None and self.psk_modes is None:
            raise alert(AD.missing_extension, "pre_shared_key without psk_key_exchange_modes")  # §4.2.9
        if self.shares:
            check_client_shares(self.groups, [g for g, _ in self.shares])


class _Retry:
    """What the server remembers across its HelloRetryRequest."""

    __slots__ = ("suite", "group", "cookie", "transcript", "random", "session_id", "suites")

    def __init__(self, suite: int, group: int, cookie: bytes | None, transcript: Transcript, ch: Any) -> None:
        self.suite = suite
        self.group = group
        self.cookie = cookie
        self.transcript = transcript
        self.random = ch.random
        self.session_id = ch.legacy_session_id
        self.suites = list(ch.cipher_suites)


class _Chosen:
    __slots__ = ("index", "psk", "external", "state", "identity", "obfuscated_age")

    def __init__(self, index: int, psk: bytes, external: bool, state: TicketState | None, identity: bytes, age: int) -> None:
        self.index = index
        self.psk = psk
        self.external = external
        self.state = state
        self.identity = identity
        self.obfuscated_age = age


class ExpectClientHello(State):
    expects = frozenset({HT.CLIENT_HELLO})
    retry: _Retry | None = None

    def handle(self, eng: Any, ch: Any, raw: bytes) -> State:
        view = _ClientHelloView(eng, ch)
        if self.retry is None:
            eng.early_data_offered = view.early_data
            if eng.config.config_for_client is not None:
                _config_for_client(eng, ch, view)
        return respond(eng, ch, raw, view, self.retry)


def _config_for_client(eng: Any, ch: Any, view: _ClientHelloView) -> None:
    """Let the application pick this client's Config (SNI and ALPN routing)
    before anything is chosen; it holds through a HelloRetryRequest."""
    info = ClientHelloInfo(
        server_name=view.server_name,
        alpn_protocols=tuple(p.decode("utf-8", "surrogateescape") for p in view.alpn or ()),
        cipher_suites=tuple(ch.cipher_suites),
        groups=tuple(view.groups or ()),
        signature_schemes=tuple(view.schemes or ()),
    )
    try:
        chosen = eng.config.config_for_client(info)
    except AlertError:
        raise
    except Exception as exc:  # the application's bug: the client gets an alert, not a hang
        raise alert(AD.internal_error, f"config_for_client failed: {type(exc).__name__}: {exc}") from exc
    if chosen is None:
        return
    if not isinstance(chosen, Config):
        raise alert(AD.internal_error, "config_for_client returned something other than a tls.Config")
    eng.config = chosen
    eng.verify_mode = chosen.role_verify_mode(False)
    if eng.profile.alpn_required and not chosen.alpn_protocols:
        raise alert(AD.internal_error, "config_for_client chose a Config without alpn_protocols")
    if not chosen.psks and not can_authenticate(eng):
        raise alert(AD.internal_error, "config_for_client chose a Config without credentials")


def _answer_transport_parameters(eng: Any, theirs: bytes) -> None:
    """Our transport parameters, from the carrier, now that it can see the
    client's (Engine's transport_parameters as a callable)."""
    try:
        ours = eng.transport_parameters_for(theirs)
    except AlertError:
        raise
    except Exception as exc:  # the carrier's bug: an alert, not a stray exception
        raise alert(AD.internal_error, f"transport_parameters failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(ours, (bytes, bytearray, memoryview)):
        raise alert(AD.internal_error, "transport_parameters returned something other than bytes")
    eng.transport_parameters = bytes(ours)


class ExpectClientHelloAfterHrr(ExpectClientHello):
    def __init__(self, retry: _Retry) -> None:
        self.retry = retry


def _psk_candidates(eng: Any, view: _ClientHelloView) -> dict[str, _Chosen]:
    """The first acceptable offered PSK per hash (external PSKs and our tickets)."""
    cfg = eng.config
    sealer = cfg.ticket_sealer if cfg.ticket_sealer is not None else cfg._cache.get("sealer")
    identities, _binders = view.psk
    found: dict[str, _Chosen] = {}
    for index, (identity, age) in enumerate(identities):
        ext = cfg.psk_by_identity(identity)
        if ext is not None:
            found.setdefault(ext.hash, _Chosen(index, ext.secret, True, None, identity, age))
            continue
        if sealer is None:
            continue
        state = sealer.open(identity, eng.now())
        info = CIPHER_SUITES.get(state.cipher_suite) if state is not None else None
        if info is not None:
            found.setdefault(info.hash_name, _Chosen(index, state.psk, False, state, identity, age))
    return found


def respond(eng: Any, ch: Any, raw: bytes, view: _ClientHelloView, retry: _Retry | None) -> State:
    cfg = eng.config
    profile = eng.profile

    # -- PSK mode and candidates ---------------------------------------------
    mode = None
    candidates: dict[str, _Chosen] = {}
    if view.psk is not None:
        mode = next((m for m in cfg.psk_modes if m in view.psk_modes), None)
        if mode == PskKeyExchangeMode.PSK_DHE_KE and not view.shares:
            ke = PskKeyExchangeMode.PSK_KE
            mode = ke if ke in view.psk_modes and ke in cfg.psk_modes else None
        if mode is not None:
            candidates = _psk_candidates(eng, view)

    # -- cipher suite: our preference, a PSK-compatible one first (§4.2.11) -----
    if retry is not None:
        # §4.1.2: the second ClientHello repeats the first but for the
        # listed changes; the HRR's suite must still be offered.
        if ch.random != retry.random or ch.legacy_session_id != retry.session_id or list(ch.cipher_suites) != retry.suites:
            raise alert(AD.illegal_parameter, "second ClientHello changed random, session id or suites")
        if view.early_data:
            raise alert(AD.illegal_parameter, "early_data in the second ClientHello")  # §4.2.10
        if retry.cookie is not None and (view.cookie is None or not hmac.compare_digest(view.cookie, retry.cookie)):
            raise alert(AD.illegal_parameter, "cookie not echoed")  # §4.2.2
        suite_code = retry.suite
    else:
        mutual = [s for s in cfg.cipher_suites if s in ch.cipher_suites]
        if not mutual:
            raise alert(AD.handshake_failure, "no cipher suite in common")
        suite_code = next((s for s in mutual if CIPHER_SUITES[s].hash_name in candidates), mutual[0])
    suite = CIPHER_SUITES[suite_code]
    chosen = candidates.get(suite.hash_name)
    if chosen is None:
        mode = None
    if chosen is None and not cfg.chain_der:
        raise alert(AD.handshake_failure, "no acceptable PSK and no certificate")

    # -- ALPN (RFC 7301 §3.2, RFC 9001 §8.1) --------------------------------
    alpn = None
    if cfg.alpn_protocols:
        if view.alpn is not None:
            alpn = next((p for p in cfg.alpn_protocols if p in view.alpn), None)
            if alpn is None:
                raise alert(AD.no_application_protocol, "no application protocol in common")
        elif profile.alpn_required:
            raise alert(AD.no_application_protocol, "client offered no application protocol")

    # -- group / HelloRetryRequest ------------------------------------------
    group = None
    client_share = None
    if chosen is None or mode == PskKeyExchangeMode.PSK_DHE_KE:
        if view.groups is None:
            raise alert(AD.missing_extension, "no supported_groups / key_share")  # §9.2
        share_groups = [g for g, _ in view.shares]
        group, needs_hrr = select_group(view.groups, share_groups, cfg.groups)
        if retry is not None:
            # §4.2.8: ClientHello2 carries exactly one share, for the HRR's group.
            if share_groups != [retry.group]:
                raise alert(AD.illegal_parameter, "second ClientHello lacks the requested key share")
            group, needs_hrr = retry.group, False
        if needs_hrr:
            return _hello_retry(eng, ch, raw, view, suite_code, group)
        client_share = dict(view.shares)[group]

    # -- scheme choice before committing to anything ---------------------------
    scheme = None
    if chosen is None:
        if view.schemes is None:
            raise alert(AD.missing_extension, "no signature_algorithms and no usable PSK")  # §9.2
        scheme = our_scheme(eng, view.schemes)

    # -- transcript, binder -------------------------------------------------
    if retry is not None:
        transcript = retry.transcript
    else:
        transcript = Transcript(suite.hash_name)
    ks = KeySchedule(suite_code, chosen.psk if chosen is not None else None)
    if chosen is not None:
        th = transcript.digest_with(raw[: len(raw) - view.binders_length])  # Truncate(ClientHello)
        binder = view.psk[1][chosen.index]
        # §4.2.11: the binder MUST validate (constant-time compare).
        if not ks.verify_binder(ks.binder_key(chosen.external), th, binder):
            raise alert(AD.decrypt_error, "PSK binder does not verify")
    transcript.update(raw)

    if chosen is not None:
        eng.ticket_state = chosen.state

    # -- 0-RTT (§4.2.10, §8) ------------------------------------------------
    accept_early = False
    if view.early_data:
        st = chosen.state if chosen is not None else None
        accept_early = bool(
            retry is None
            and st is not None
            and chosen.index == 0
            and cfg.max_early_data > 0
            and st.max_early_data > 0
            and st.cipher_suite == suite_code
            and st.alpn == alpn
            and ticket_age_ok(st, chosen.obfuscated_age, eng.now(), cfg.early_data_window)
            and (cfg.accept_early_data is None or bool(cfg.accept_early_data(st)))
            and cfg.replay_guard().check_and_record(chosen.identity, eng.now())
        )
        if not accept_early:
            eng.emit(ev.EarlyDataRejected())
        else:
            eng.max_early_data = cfg.max_early_data
    if view.transport_parameters is not None:
        eng.peer_transport_parameters = view.transport_parameters
        if eng.transport_parameters_for is not None:
            _answer_transport_parameters(eng, view.transport_parameters)
        eng.emit(ev.PeerTransportParameters(view.transport_parameters))

    # -- ServerHello ----------------------------------------------------------
    shared = None
    exts: list[tuple[int, bytes]] = []
    if chosen is not None:
        exts.append((ET.PRE_SHARED_KEY, X.encode_pre_shared_key_server(chosen.index)))
    if group is not None:
        server_share, shared = server_exchange(group, client_share, eng.private_key_for(group))
        exts.append((ET.KEY_SHARE, X.encode_key_share_server((group, server_share))))
    exts.append((ET.SUPPORTED_VERSIONS, _TLS13_SELECTED))
    exts = eng.hook(HT.SERVER_HELLO, exts)
    eng.client_random = ch.random
    ch_hash = transcript.digest() if accept_early else b""  # only 0-RTT secrets use it
    sh = ServerHello(eng.random(32), ch.legacy_session_id, suite_code, exts).encode()
    eng.send(Level.INITIAL, sh)
    transcript.update(sh)

    tcp_early = accept_early and profile.end_of_early_data
    if accept_early:
        early = ks.client_early_traffic_secret(ch_hash)
        eng.keylog("CLIENT_EARLY_TRAFFIC_SECRET", early)
        eng.early_exporter_master_secret = ks.early_exporter_master_secret(ch_hash)
        eng.keylog("EARLY_EXPORTER_SECRET", eng.early_exporter_master_secret)
        eng.install_key(Level.EARLY_DATA, Direction.READ, early, suite_code)
    ks.derive_handshake_secret(shared)
    th = transcript.digest()
    c_hs = ks.client_handshake_traffic_secret(th)
    s_hs = ks.server_handshake_traffic_secret(th)
    eng.keylog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", c_hs)
    eng.keylog("SERVER_HANDSHAKE_TRAFFIC_SECRET", s_hs)
    eng.install_key(Level.HANDSHAKE, Direction.WRITE, s_hs, suite_code)
    if not tcp_early:
        eng.install_key(Level.HANDSHAKE, Direction.READ, c_hs, suite_code)

    # -- EncryptedExtensions ... Finished ---------------------------------------
    exts = []
    if view.server_name is not None:
        exts.append((ET.SERVER_NAME, b""))  # RFC 6066 §3: acknowledged, empty
    if alpn is not None:
        exts.append((ET.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, X.encode_alpn_selected(alpn)))
    if accept_early:
        exts.append((ET.EARLY_DATA, X.encode_early_data()))
    if profile.transport_parameters:
        exts.append((ET.QUIC_TRANSPORT_PARAMETERS, X.encode_quic_transport_parameters(eng.transport_parameters)))
    flight = EncryptedExtensions(eng.hook(HT.ENCRYPTED_EXTENSIONS, exts)).encode()
    eng.send(Level.HANDSHAKE, flight)
    transcript.update(flight)
    request_cert = chosen is None and eng.verify_mode != VerifyMode.NONE
    if request_cert:
        sa = X.encode_signature_algorithms(list(cfg.signature_schemes) + list(_CERT_ONLY_SCHEMES))
        cr = CertificateRequest(b"", eng.hook(HT.CERTIFICATE_REQUEST, [(ET.SIGNATURE_ALGORITHMS, sa)])).encode()
        eng.send(Level.HANDSHAKE, cr)
        transcript.update(cr)
    if chosen is None:
        cert = certificate_message(eng, b"")
        eng.send(Level.HANDSHAKE, cert)
        transcript.update(cert)
        cv = sign_certificate_verify(eng, scheme, transcript.digest(), is_server=True)
        eng.send(Level.HANDSHAKE, cv)
        transcript.update(cv)
    fin = Finished(ks.finished_verify_data(s_hs, transcript.digest())).encode()
    eng.send(Level.HANDSHAKE, fin)
    transcript.update(fin)
    ks.derive_master_secret()
    th = transcript.digest()
    c_ap = ks.client_application_traffic_secret_0(th)
    s_ap = ks.server_application_traffic_secret_0(th)
    eng.exporter_master_secret = ks.exporter_master_secret(th)
    eng.keylog("CLIENT_TRAFFIC_SECRET_0", c_ap)
    eng.keylog("SERVER_TRAFFIC_SECRET_0", s_ap)
    eng.keylog("EXPORTER_SECRET", eng.exporter_master_secret)
    eng.install_key(Level.APPLICATION, Direction.WRITE, s_ap, suite_code)

    eng.negotiated = eng.negotiated.with_(
        version=TLS13,
        cipher_suite=suite_code,
        group=group,
        signature_scheme=scheme,
        alpn=alpn_str(alpn),
        server_name=view.server_name,
        resumed=chosen is not None,
        external_psk=chosen.identity if chosen is not None and chosen.external else None,
        psk_mode=mode,
        early_data_accepted=accept_early,
        hello_retry=retry is not None,
    )
    s = _ServerSession(ks, transcript, c_hs, c_ap, alpn, view)
    nxt: State
    if request_cert:
        nxt = ExpectClientCertificate(s)
    else:
        nxt = ExpectClientFinished(s)
    if tcp_early:
        eng.set_read_level(Level.EARLY_DATA)
        return ExpectEndOfEarlyData(s, nxt)
    eng.set_read_level(Level.HANDSHAKE)
    return nxt


def _hello_retry(eng: Any, ch: Any, raw: bytes, view: _ClientHelloView, suite_code: int, group: int) -> State:
    cfg = eng.config
    if view.early_data:
        eng.emit(ev.EarlyDataRejected())
    cookie = eng.random(cfg.hrr_cookie_length) if cfg.hrr_cookie_length else None
    exts = [(ET.KEY_SHARE, X.encode_key_share_hrr(group))]
    if cookie is not None:
        exts.append((ET.COOKIE, X.encode_cookie(cookie)))
    exts.append((ET.SUPPORTED_VERSIONS, X.encode_supported_versions_server(TLS13)))
    hrr = ServerHello(HRR_RANDOM, ch.legacy_session_id, suite_code, eng.hook(HT.SERVER_HELLO, exts)).encode()
    transcript = Transcript(CIPHER_SUITES[suite_code].hash_name)
    transcript.update(raw)
    transcript.replace_with_message_hash()  # §4.4.1
    transcript.update(hrr)
    eng.send(Level.INITIAL, hrr)
    eng.key_boundary()
    eng.negotiated = eng.negotiated.with_(hello_retry=True)
    return ExpectClientHelloAfterHrr(_Retry(suite_code, group, cookie, transcript, ch))


class _ServerSession:
    __slots__ = ("ks", "transcript", "c_hs", "c_ap", "alpn", "view", "leaf", "client_identity")

    def __init__(self, ks: KeySchedule, transcript: Transcript, c_hs: bytes, c_ap: bytes, alpn: bytes | None, view: _ClientHelloView) -> None:
        self.ks = ks
        self.transcript = transcript
        self.c_hs = c_hs
        self.c_ap = c_ap
        self.alpn = alpn
        self.view = view
        self.leaf: Any = None
        self.client_identity = b""


class ExpectEndOfEarlyData(State):
    expects = frozenset({HT.END_OF_EARLY_DATA})

    def __init__(self, s: _ServerSession, nxt: State) -> None:
        self.s = s
        self.nxt = nxt

    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        self.s.transcript.update(raw)
        eng.install_key(Level.HANDSHAKE, Direction.READ, self.s.c_hs, self.s.ks.cipher_suite)
        eng.set_read_level(Level.HANDSHAKE)  # §4.5: then the handshake key
        return self.nxt


class ExpectClientCertificate(State):
    expects = frozenset({HT.CERTIFICATE})


    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        s = self.s
        if msg.request_context != b"":
            raise alert(AD.illegal_parameter, "Certificate context does not match the request")  # §4.4.2
        if not msg.entries:
            if eng.verify_mode == VerifyMode.REQUIRED:
                raise alert(AD.certificate_required, "client sent no certificate")  # §4.4.2.4
            s.transcript.update(raw)
            return ExpectClientFinished(s)
        chain = check_peer_chain(eng, msg)
        eng.peer_certificates = tuple(chain)
        s.leaf = chain[0]
        s.client_identity = client_identity_hash(msg.entries[0].data)
        s.transcript.update(raw)
        return ExpectClientCertificateVerify(s)


class ExpectClientCertificateVerify(State):
    expects = frozenset({HT.CERTIFICATE_VERIFY})


    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        s = self.s
        check_certificate_verify(eng, s.leaf, msg, s.transcript.digest(), from_server=False)
        eng.negotiated = eng.negotiated.with_(client_signature_scheme=msg.algorithm)
        s.transcript.update(raw)
        return ExpectClientFinished(s)


class ExpectClientFinished(State):
    expects = frozenset({HT.FINISHED})


    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        s = self.s
        ks, t = s.ks, s.transcript
        if len(msg.verify_data) != ks.hash_length:
            raise alert(AD.decode_error, "Finished has the wrong length")
        if not ks.verify_finished(s.c_hs, t.digest(), msg.verify_data):
            raise alert(AD.decrypt_error, "client Finished does not verify")  # §4.4.4
        t.update(raw)
        eng.install_key(Level.APPLICATION, Direction.READ, s.c_ap, ks.cipher_suite)
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
        modes = s.view.psk_modes or []
        connected = ServerConnected(s)
        cfg = eng.config
        # §4.6.1 / §4.2.9: tickets only to clients that can use them.
        if cfg.session_tickets and any(m in cfg.psk_modes for m in modes):
            for _ in range(cfg.session_tickets):
                connected.send_ticket(eng)
        return connected


class ServerConnected(Connected):
    expects = frozenset({HT.KEY_UPDATE})

    def __init__(self, s: _ServerSession) -> None:
        # What tickets need stays (the key schedule, ALPN, client identity);
        # the ClientHello, the transcript and the handshake secrets go: an
        # idle connection holds them for its whole life otherwise.
        s.view = s.transcript = s.leaf = None
        s.c_hs = s.c_ap = b""
        s.ks.forget_handshake_secrets()
        super().__init__(s)
        self.tickets_sent = 0

    def handle(self, eng: Any, msg: Any, raw: bytes) -> State:
        receive_key_update(eng, msg)
        return self

    def send_ticket(self, eng: Any) -> None:
        """One NewSessionTicket (RFC 8446 §4.6.1) sealed by the Config's sealer."""
        cfg = eng.config
        now = eng.now()
        n = eng.negotiated
        nonce = self.tickets_sent.to_bytes(2 if self.tickets_sent <= 0xFFFF else 8, "big")
        self.tickets_sent += 1
        age_add = int.from_bytes(eng.random(4), "big")
        psk = self.s.ks.resumption_psk(eng.resumption_master_secret, nonce)
        advertised = eng.profile.max_early_data_for_ticket(cfg.max_early_data)
        state = TicketState(
            cipher_suite=n.cipher_suite,
            psk=psk,
            age_add=age_add,
            issued_at=now,
            lifetime=cfg.ticket_lifetime,
            alpn=self.s.alpn,
            server_name=n.server_name,
            max_early_data=cfg.max_early_data,
            client_identity=self.s.client_identity,
            app_data=eng.ticket_app_data if eng.ticket_app_data is not None else (eng.transport_parameters or b""),
        )
        ticket = cfg.sealer(now).seal(state, now)
        exts = [(ET.EARLY_DATA, X.encode_max_early_data_size(advertised))] if advertised else []
        msg = NewSessionTicket(cfg.ticket_lifetime, age_add, nonce, ticket, eng.hook(HT.NEW_SESSION_TICKET, exts))
        eng.send(Level.APPLICATION, msg.encode())


__all__ = [
    "ExpectClientHello",
    "ExpectClientHelloAfterHrr",
    "ExpectEndOfEarlyData",
    "ExpectClientCertificate",
    "ExpectClientCertificateVerify",
    "ExpectClientFinished",
    "ServerConnected",
]
