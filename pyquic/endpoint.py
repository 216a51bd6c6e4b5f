# QuicEndpoint: the sans-I/O server side of a UDP socket (RFC 9000 §5.2,
# §6, §8.1, §10.3).  Owns
#   - routing datagrams to connections by Destination Connection ID: the
#     client's original DCID, the connection's own CIDs as it issues and
#     retires them (a listener on the connection), until it terminates;
#     with zero-length connection IDs (connection_id_length 0, RFC 9000
#     §5.1) by the client's address and the local address instead, which
#     rules out migration (a client that moves is a stranger);
#   - accepting new connections, and keeping no state for what is not one:
#     an Initial of a version we support in a datagram of at least 1200
#     bytes (§14.1) with a DCID of at least 8 bytes (§7.2) is opened first
#     with the Initial keys its DCID gives (RFC 9001 §5.2) and must hold a
#     CRYPTO frame; only then is a QuicConnection (routes, TLS engine, a slot
#     under the caps) created and handed the datagram together with the
#     Initial keys and the opened first packet (QuicConnection.
#     receive_first_initial), so neither is derived nor opened twice.  What
#     does not open is dropped and counted ("initial_undecryptable"),
#     nothing remembered, nothing answered -- except a Retry: when the
#     policy answers a client without a token with Retry, it does so before
#     opening (stateless, smaller than the Initial, and half the work under
#     a flood);
#   - address validation (pyquic/address_validation.py: Retry tokens and the
#     "never" / "always" / "auto" policy): Retry (§8.1.2) when the policy
#     wants it; a token of ours that is expired or for another address gets
#     an Initial with CONNECTION_CLOSE(INVALID_TOKEN) (§8.1.3); a NEW_TOKEN
#     token of ours validates the address as a Retry would (one is given to
#     each client whose handshake completes); any other token is as good as
#     none (Retry if the policy wants one);
#   - the caps a flood of Initials meets: connections whose handshake is not
#     complete (half-open; each also ends at QuicConfiguration.
#     handshake_timeout) are counted together; a client whose address is
#     not validated gets one while fewer than `max_half_open` are, one whose
#     Retry token validated it while fewer than `max_half_open +
#     max_validated_half_open` are (a reserve unvalidated floods cannot take,
#     and still a bound: an attacker with real addresses can pass Retry);
#     at most `max_connections` live (or accepted but not yet taken)
#     connections.  Past a cap a new unvalidated client gets Retry when the
#     policy allows it, else (and a validated one always: §17.2.5.2, no
#     second Retry) an Initial with CONNECTION_CLOSE(CONNECTION_REFUSED)
#     (§5.2.2), both built without a connection; stateless replies waiting
#     to be sent are capped at `max_pending_replies`;
#   - the answers no connection owns: Version Negotiation for unknown
#     versions (§6.1), Retry, stateless reset for short-header packets of
#     unknown CIDs (§10.3, always smaller than the packet that triggered it,
#     so two endpoints cannot loop); everything else is dropped;
#   - collecting what every connection wants to send and the earliest timer.
# Time (`now`) and randomness (`entropy`) come in; nothing here does I/O.
from __future__ import annotations

from typing import Any, Callable, Optional

from tls.key_schedule import hkdf_expand_label, hkdf_extract

from .address_validation import (
    DEFAULT_RETRY_THRESHOLD,
    NEW_TOKEN_LIFETIME,
    RETRY_AUTO,
    TOKEN_VALID,
    NewTokens,
    RetryPolicy,
    RetryTokens,
)
from .config import QuicConfiguration
from .connection import QuicConnection, QuicConnectionState
from .connection_ids import stateless_reset_token
from .crypto import INITIAL_CIPHER_SUITE, CryptoError, PacketKeys, derive_packet_keys
from .errors import ErrorCode, TransportError
from .frames import ConnectionClose, Crypto, parse_frames
from .packet import (
    PacketDecodeError,
    PacketType,
    decode_header,
    encode_long_header,
    encode_retry,
    encode_version_negotiation,
)
from .versions import version_info

MIN_INITIAL_DATAGRAM = 1200  # RFC 9000 §14.1
MIN_CLIENT_DCID_LENGTH = 8  # RFC 9000 §7.2
MIN_STATELESS_RESET = 21  # RFC 9000 §10.3: 5 unpredictable bytes + 16-byte token
MAX_STATELESS_RESET = 43  # §10.3: no reason to be longer
DEFAULT_MAX_CONNECTIONS = 4096  # live plus accepted-but-not-taken connections
DEFAULT_MAX_HALF_OPEN = 256  # connections whose handshake is not complete (unvalidated addresses)
DEFAULT_MAX_VALIDATED_HALF_OPEN = 256  # more of them, for addresses a Retry token validated
DEFAULT_MAX_PENDING_REPLIES = 1024  # stateless datagrams waiting to be sent
PRUNE_INTERVAL = 0.05  # seconds between sweeps of the half-open set under load


class QuicEndpoint:
    """The server side of one UDP socket; see the module header."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        retry: Any = RETRY_AUTO,
        stateless_reset_key: Optional[bytes] = None,
        token_key: Optional[bytes] = None,
        entropy: Optional[Callable[[int], bytes]] = None,
        stateless_reset: bool = True,
        session_ticket_handler: Optional[Callable[[Any], None]] = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_pending_replies: int = DEFAULT_MAX_PENDING_REPLIES,
        max_half_open: int = DEFAULT_MAX_HALF_OPEN,
        max_validated_half_open: int = DEFAULT_MAX_VALIDATED_HALF_OPEN,
        retry_threshold: int = DEFAULT_RETRY_THRESHOLD,
        retry_release: Optional[int] = None,
        new_token_lifetime: float = NEW_TOKEN_LIFETIME,
    ) -> None:
        """`retry`: "never", "always" or "auto" (True and False mean "always"
        and "never"); "auto" sends Retry while `retry_threshold` or more
        connections are half-open (handshake not complete) and stops once
        they fall below `retry_release` (default: half the threshold).
        Half-open caps: `max_half_open` for unvalidated addresses, and up to
        `max_validated_half_open` more for token-validated ones.  Each
        client gets a NEW_TOKEN token once its handshake completes, good for
        `new_token_lifetime` seconds (0: none given): with it, its next
        connection from the same IP address skips Retry (RFC 9000 §8.1.3)."""
        if configuration.is_client:
            raise ValueError("QuicEndpoint serves: give it a server configuration")
        if max_connections < 1 or max_pending_replies < 1 or max_half_open < 1:
            raise ValueError("max_connections, max_half_open and max_pending_replies must be at least 1")
        if max_validated_half_open < 0:
            raise ValueError("max_validated_half_open must be at least 0")
        self.max_connections = max_connections
        self.max_half_open = max_half_open
        self.max_validated_half_open = max_validated_half_open
        self.max_pending_replies = max_pending_replies
        self.configuration = configuration
        self._entropy = configuration.require_inputs(entropy, "QuicEndpoint")  # no default: sans-I/O
        self.reset_key = stateless_reset_key or self._entropy(32)
        self.retry_policy = RetryPolicy(retry, retry_threshold, retry_release)
        self.stateless_reset = stateless_reset
        token_key = token_key or self._entropy(16)
        self._tokens = RetryTokens(token_key, self._entropy)
        self._new_tokens = NewTokens(token_key, self._entropy, new_token_lifetime) if new_token_lifetime > 0 else None
        self._session_ticket_handler = session_ticket_handler
        self._last_now = 0.0
        self._routes: dict[bytes, QuicConnection] = {}
        self._cids: dict[QuicConnection, set[bytes]] = {}
        self._accepted: list[QuicConnection] = []
        self._replies: list[tuple[bytes, Any, Any]] = []  # (datagram, addr, local)
        self._local: Any = None  # which of our addresses the datagram being routed came to
        # Connections whose handshake is not complete, oldest first (a dict
        # keeps the order); those of token-validated addresses are in it too.
        self._half_open: dict[QuicConnection, None] = {}
        self._pruned_at = float("-inf")
        self.stats = {
            "datagrams_dropped": 0,
            "initial_undecryptable": 0,  # Initial-shaped, but did not open: no state kept
            "version_negotiation": 0,
            "retry": 0,
            "invalid_token": 0,  # ours, but expired or for another address: INVALID_TOKEN sent
            "new_token_sent": 0,  # NEW_TOKEN frames given to clients whose handshake completed
            "new_token_accepted": 0,  # Initials whose NEW_TOKEN token validated the address
            "stateless_reset": 0,
            "refused": 0,
            "replies_dropped": 0,
            "half_open_peak": 0,
            "half_open_expired": 0,  # ended before their handshake completed
        }

    @property
    def retry(self) -> str:
        """The address-validation mode: "never", "always" or "auto"."""
        return self.retry_policy.mode

    @retry.setter
    def retry(self, value: Any) -> None:
        policy = self.retry_policy
        self.retry_policy = RetryPolicy(value, policy.threshold, policy.release)

    @property
    def half_open(self) -> int:
        """Connections created whose handshake is not complete yet."""
        self._prune_half_open(self._last_now)
        return len(self._half_open)

    # -- receiving -----------------------------------------------------------------
    def receive_datagram(self, data: bytes, addr: Any, now: float, ecn: int = 0,
                         local: Any = None) -> Optional[QuicConnection]:
        """Route one datagram; returns the connection it went to (None: answered
        or dropped).  `ecn`: the ECN codepoint of its IP header (0-3);
        `local`: which of our addresses it came to, for a server on more than
        one (its preferred address): answers leave from there (see
        path_datagram_batches)."""
        self._local = local
        if not data:
            return self._dropped()
        cid_length = self.configuration.connection_id_length
        first = data[0]
        if not first & 0x80:
            conn = self._routes.get(bytes(data[1 : 1 + cid_length]) if cid_length else (addr, local))
            if conn is None:
                self._maybe_reset(data, addr, cid_length)
                return None
        else:
            try:
                header = decode_header(data, 0, short_dcid_length=cid_length)
            except PacketDecodeError:
                return self._dropped()
            conn = self._routes.get(header.destination_cid or (addr, local))  # (zero-length: by address)
            if conn is None:
                return self._new_connection(header, data, addr, now, ecn)  # it got the datagram
        conn.receive_datagram(data, addr, now, ecn, local)
        self._after(conn, now)
        return conn

    def receive_datagrams(self, data: bytes, segment_size: int, addr: Any, now: float,
                          ecn: int = 0, local: Any = None) -> list[QuicConnection]:
        """Route the datagrams of one GRO batch from `addr` (back to back,
        `segment_size` bytes each, the last may be shorter).  A run of
        short-header datagrams for one connection goes to it in one call.
        Returns the connections that got datagrams, in order."""
        if segment_size <= 0:
            raise ValueError("segment_size must be positive")
        touched: list[QuicConnection] = []
        cid_length = self.configuration.connection_id_length
        routes = self._routes
        size = len(data)
        start = 0
        while start < size:
            stop = min(start + segment_size, size)
            conn = None
            if not data[start] & 0x80 and cid_length:
                dcid = data[start + 1 : start + 1 + cid_length]
                conn = routes.get(dcid)
            if conn is None:
                conn = self.receive_datagram(data[start:stop], addr, now, ecn, local)
            else:
                # Extend the run over the following datagrams for the same CID.
                while stop < size and not data[stop] & 0x80 and data[stop + 1 : stop + 1 + cid_length] == dcid:
                    stop = min(stop + segment_size, size)
                # The whole batch (the usual case) goes without another copy.
                run = data if start == 0 and stop == size else data[start:stop]
                conn.receive_datagrams(run, segment_size, addr, now, ecn, local)
                self._after(conn, now)
            if conn is not None and (not touched or touched[-1] is not conn):
                touched.append(conn)
            start = stop
        return touched

    def _dropped(self) -> None:
        self.stats["datagrams_dropped"] += 1
        return None

    def _new_connection(self, header: Any, data: bytes, addr: Any, now: float, ecn: int) -> Optional[QuicConnection]:
        config = self.configuration
        if header.packet_type is PacketType.VERSION_NEGOTIATION:
            return self._dropped()
        if header.version not in config.supported_versions:
            # RFC 9000 §6.1: Version Negotiation, only for datagrams a client's Initial could fill.
            if len(data) >= MIN_INITIAL_DATAGRAM:
                versions = list(config.supported_versions)
                versions.append(_grease_version(self._entropy))  # RFC 9000 §6.3
                self._reply(
                    encode_version_negotiation(
                        header.source_cid, header.destination_cid, versions, self._entropy(1)[0]
                    ),
                    addr,
                )
                self.stats["version_negotiation"] += 1
                return None
            return self._dropped()
        if header.packet_type is not PacketType.INITIAL:
            return self._dropped()
        if len(data) < MIN_INITIAL_DATAGRAM or len(header.destination_cid) < MIN_CLIENT_DCID_LENGTH:
            return self._dropped()  # RFC 9000 §14.1, §7.2
        checked = self._tokens.check(header.token, addr, now) if header.token else None
        # A NEW_TOKEN token of ours validates the address as a Retry would;
        # one that does not check out is as good as none (§8.1.3).
        known = checked is None and header.token and self._new_tokens is not None and \
            self._new_tokens.valid(header.token, addr, now)
        if known:
            self.stats["new_token_accepted"] += 1
        over_cap = False
        if checked is None and not known:
            # Not validated (no token, or one not ours): the policy and the half-open cap.
            policy = self.retry_policy
            half_open = self._count_half_open(now)
            over_cap = half_open >= self.max_half_open
            if policy.wants_retry(half_open) or (over_cap and policy.allows_retry):
                # Stateless and smaller than the Initial, so sent without
                # opening it: under a flood Retry is the cheapest answer.
                self._send_retry(header, addr, now)
                return None
        # Nothing more happens for a datagram that does not open (RFC 9001
        # §5.2: anyone can derive these keys, but junk cannot): no state, no answer.
        first = self._open_first_initial(header, data)
        if first is None:
            self.stats["initial_undecryptable"] += 1
            return self._dropped()
        initial_secret, recv_keys, opened = first
        odcid, retry_scid = header.destination_cid, None
        if checked is not None:
            if checked.retry_scid != header.destination_cid:
                return self._dropped()  # ours, but not the Retry this Initial follows
            if checked.status != TOKEN_VALID:
                # RFC 9000 §8.1.3 (§8.1.2): the client cannot take another Retry; tell it now.
                self.stats["invalid_token"] += 1
                self._close_stateless(header, initial_secret, addr, ErrorCode.INVALID_TOKEN, "invalid token")
                return None
            odcid, retry_scid = checked.original_dcid, checked.retry_scid
            # Validated, yet still a bound (see the module header); past it no
            # Retry (the client took one already, RFC 9000 §17.2.5.2): refused.
            over_cap = self._count_half_open(now) >= self.max_half_open + self.max_validated_half_open
        elif known:
            over_cap = self._count_half_open(now) >= self.max_half_open + self.max_validated_half_open
        if over_cap or len(self._cids) >= self.max_connections or len(self._accepted) >= self.max_connections:
            self._close_stateless(header, initial_secret, addr, ErrorCode.CONNECTION_REFUSED, "server busy")
            self.stats["refused"] += 1
            return None
        conn = QuicConnection(
            configuration=config,
            original_destination_connection_id=odcid,
            retry_source_connection_id=retry_scid,
            address_validated=bool(known),
            stateless_reset_key=self.reset_key,
            session_ticket_handler=self._session_ticket_handler,
            entropy=self._entropy,
        )
        conn.cid_listener = lambda issued, cid, conn=conn: self._on_cid(conn, issued, cid)
        self._cids[conn] = set()
        self._route(conn, header.destination_cid)
        for cid in conn.host_cids:
            self._route(conn, cid or (addr, self._local))  # a zero-length ID: the client's address
        self._accepted.append(conn)
        self._half_open[conn] = None
        if len(self._half_open) > self.stats["half_open_peak"]:
            self.stats["half_open_peak"] = len(self._half_open)
        # The keys and the packet were derived and opened above: handed over, not redone.
        conn.receive_first_initial(data, addr, now, (_server_keys(header.version, initial_secret), recv_keys), opened,
                                   ecn, self._local)
        self._after(conn, now)
        return conn

    def _open_first_initial(self, header: Any, data: bytes) -> Optional[tuple[bytes, PacketKeys, tuple]]:
        """Open the datagram's first packet (an Initial) with the client Initial
        keys of its DCID; it must hold a CRYPTO frame (only a ClientHello starts
        a connection).  Returns the initial secret (RFC 9001 §5.2, for the
        server's keys), the client's keys and the opened packet (plain header,
        payload, packet number), or None.  Costs five HMACs and one AEAD open."""
        initial_secret = hkdf_extract("sha256", version_info(header.version).initial_salt, header.destination_cid)
        client_secret = hkdf_expand_label("sha256", initial_secret, b"client in", b"", 32)
        keys = derive_packet_keys(header.version, INITIAL_CIPHER_SUITE, client_secret)
        try:
            opened = keys.protection.unprotect(memoryview(data)[: header.length], header.pn_offset, -1)
            frames = parse_frames(opened[1], PacketType.INITIAL, from_server=False).frames
        except (CryptoError, TransportError):
            return None
        return (initial_secret, keys, opened) if any(type(frame) is Crypto for frame in frames) else None

    def _send_retry(self, header: Any, addr: Any, now: float) -> None:
        """RFC 9000 §8.1.2: the token carries what the connection will need."""
        config = self.configuration  # a routable ID (QUIC-LB) brings the client's next Initial back here
        generate = config.connection_id_generator
        # (Zero-length IDs: 8 octets still, a client's next Initial needs a DCID of 8 or more, §7.2.)
        retry_scid = generate() if generate is not None else self._entropy(config.connection_id_length or 8)
        token = self._tokens.seal(addr, header.destination_cid, retry_scid, now)
        self._reply(encode_retry(header.version, header.source_cid, retry_scid, token, header.destination_cid), addr)
        self.stats["retry"] += 1

    def _close_stateless(self, header: Any, initial_secret: bytes, addr: Any, code: int, reason: str) -> None:
        """An Initial carrying CONNECTION_CLOSE(code), no connection behind it:
        CONNECTION_REFUSED (RFC 9000 §5.2.2) or INVALID_TOKEN (§8.1.3), protected
        with the server Initial keys the client's DCID gives (§17.2.2)."""
        send = _server_keys(header.version, initial_secret)
        payload = bytearray()
        # Long enough for the header protection sample (RFC 9001 §5.4.2):
        # packet number and payload are well over 4 bytes.
        ConnectionClose(code, 0, reason).encode(payload)
        pn_length = 1
        scid = self._entropy(self.configuration.connection_id_length)
        head = encode_long_header(
            header.version, PacketType.INITIAL, header.source_cid, scid, 0, pn_length, payload_length=len(payload) + 16
        )
        self._reply(send.protection.protect(head, payload, 0), addr)

    def _count_half_open(self, now: float) -> int:
        # Connections leave the set as they complete or end (_after, forget);
        # near the limits, sweep for any that did so unseen (driven directly),
        # at most every PRUNE_INTERVAL (a flood calls this per datagram).
        if len(self._half_open) >= min(self.max_half_open, self.retry_policy.release):
            if not self._pruned_at <= now < self._pruned_at + PRUNE_INTERVAL:
                self._pruned_at = now
                self._prune_half_open(now)
        return len(self._half_open)

    def _prune_half_open(self, now: float) -> None:
        for conn in [c for c in self._half_open if c.handshake_complete or c.state == QuicConnectionState.TERMINATED]:
            self._after(conn, now)

    def _reply(self, data: bytes, addr: Any) -> None:
        if len(self._replies) >= self.max_pending_replies:
            self.stats["replies_dropped"] += 1
            return
        self._replies.append((data, addr, self._local))

    def _route(self, conn: QuicConnection, cid: Any) -> None:
        self._routes[cid] = conn
        self._cids[conn].add(cid)

    def _on_cid(self, conn: QuicConnection, issued: bool, cid: bytes) -> None:
        if conn not in self._cids:
            return
        if issued:
            self._route(conn, cid)
        elif self._routes.get(cid) is conn:
            del self._routes[cid]
            self._cids[conn].discard(cid)

    def _maybe_reset(self, data: bytes, addr: Any, cid_length: int) -> None:
        """RFC 9000 §10.3: a stateless reset for a short-header packet nobody owns
        (none with zero-length IDs: our connections announced no token)."""
        if not self.stateless_reset or not cid_length or len(data) <= MIN_STATELESS_RESET:
            self._dropped()
            return
        # §10.3.3: smaller than what triggered it, so resets cannot loop.
        size = min(len(data) - 1, MAX_STATELESS_RESET)
        token = stateless_reset_token(self.reset_key, bytes(data[1 : 1 + cid_length]))
        unpredictable = bytearray(self._entropy(size - 16))
        unpredictable[0] = 0x40 | (unpredictable[0] & 0x3F)  # looks like a short header
        self._reply(bytes(unpredictable) + token, addr)
        self.stats["stateless_reset"] += 1

    def _after(self, conn: QuicConnection, now: float) -> None:
        self._last_now = now  # the latest time we were given (for half_open, which has none)
        if conn.state == QuicConnectionState.TERMINATED:
            self.forget(conn)
        elif conn.handshake_complete and conn in self._half_open:
            del self._half_open[conn]
            if self._new_tokens is not None and conn.peer_address is not None:
                # RFC 9000 §8.1.3: for the client's next connection.
                conn.send_new_token(self._new_tokens.seal(conn.peer_address, now))
                self.stats["new_token_sent"] += 1

    def forget(self, conn: QuicConnection) -> None:
        """Drop a terminated connection's routes and its place under the caps
        (the asyncio server calls this as soon as a connection terminates)."""
        if conn in self._half_open:
            del self._half_open[conn]
            if not conn.handshake_complete:
                self.stats["half_open_expired"] += 1
        for cid in self._cids.pop(conn, ()):
            if self._routes.get(cid) is conn:
                del self._routes[cid]

    # -- the application's side ------------------------------------------------------
    def accept(self) -> Optional[QuicConnection]:
        """The next connection created since the last call, or None."""
        return self._accepted.pop(0) if self._accepted else None

    @property
    def connections(self) -> list[QuicConnection]:
        return list(self._cids)

    def stateless_datagrams(self) -> list[tuple[bytes, Any]]:
        """The endpoint's own answers (Version Negotiation, Retry, stateless
        reset, refusals) as (datagram, addr)."""
        return [(data, addr) for data, addr, _ in self.stateless_path_datagrams()]

    def stateless_path_datagrams(self) -> list[tuple[bytes, Any, Any]]:
        """The same as (datagram, addr, local): each leaves from the local
        address its cause came to."""
        replies, self._replies = self._replies, []
        return replies

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        out = self.stateless_datagrams()
        for conn in list(self._cids):
            out.extend(conn.datagrams_to_send(now))
            self._after(conn, now)
        return out

    def datagram_batches_to_send(self, now: float) -> list[tuple[bytes, int, Any]]:
        return [batch[:3] for batch in self.path_datagram_batches(now)]

    def path_datagram_batches(self, now: float) -> list[tuple[bytes, int, Any, Any]]:
        """Every connection's batches and the endpoint's answers as
        (buffer, segment_size, addr, local): QuicConnection.path_datagram_batches."""
        out = [(data, len(data), addr, local) for data, addr, local in self.stateless_path_datagrams()]
        for conn in list(self._cids):
            out.extend(conn.path_datagram_batches(now))
            self._after(conn, now)
        return out

    def get_timer(self) -> Optional[float]:
        timers = [t for t in (conn.get_timer() for conn in self._cids) if t is not None]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        for conn in list(self._cids):
            timer = conn.get_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now)
            self._after(conn, now)


def _server_keys(version: int, initial_secret: bytes) -> PacketKeys:
    """The server's Initial keys (RFC 9001 §5.2) from the initial secret."""
    server_secret = hkdf_expand_label("sha256", initial_secret, b"server in", b"", 32)
    return derive_packet_keys(version, INITIAL_CIPHER_SUITE, server_secret)


def _grease_version(entropy: Callable[[int], bytes]) -> int:
    """A reserved version 0x?a?a?a?a (RFC 9000 §15) to exercise clients."""
    value = int.from_bytes(entropy(4), "big")
    return (value & 0xF0F0F0F0) | 0x0A0A0A0A


__all__ = ["QuicEndpoint", "RetryTokens"]
