# QuicEndpoint: the sans-I/O server side of a UDP socket (RFC 9000 §5.2,
# §6, §8.1, §10.3).  Owns
#   - routing datagrams to connections by Destination Connection ID: the
#     client's original DCID, the connection's own CIDs as it issues and
#     retires them (a listener on the connection), until it terminates;
#   - accepting new connections: an Initial of a version we support in a
#     datagram of at least 1200 bytes (§14.1) with a DCID of at least 8 bytes
#     (§7.2);
#   - the caps a flood of Initials meets: at most `max_connections` live
#     (or accepted but not yet taken) connections; past it a new client
#     gets an Initial with CONNECTION_CLOSE(CONNECTION_REFUSED) (§5.2.2),
#     built from its own Initial keys without a connection; stateless
#     replies waiting to be sent are capped at `max_pending_replies`;
#   - the answers no connection owns: Version Negotiation for unknown
#     versions (§6.1), Retry with address-validation tokens (§8.1.2, AEAD-
#     sealed with their issue time, checked against `now` and the address),
#     stateless reset for short-header packets of unknown CIDs (§10.3, always
#     smaller than the packet that triggered it, so two endpoints cannot
#     loop); everything else is dropped;
#   - collecting what every connection wants to send and the earliest timer.
# Time (`now`) and randomness (`entropy`) come in; nothing here does I/O.
from __future__ import annotations

import os
import struct
from typing import Any, Callable, Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .config import QuicConfiguration
from .connection import QuicConnection, QuicConnectionState
from .connection_ids import stateless_reset_token
from .crypto import initial_keys
from .errors import ErrorCode
from .frames import ConnectionClose
from .packet import (
    PacketDecodeError,
    PacketType,
    decode_header,
    encode_long_header,
    encode_retry,
    encode_version_negotiation,
)

MIN_INITIAL_DATAGRAM = 1200  # RFC 9000 §14.1
MIN_CLIENT_DCID_LENGTH = 8  # RFC 9000 §7.2
MIN_STATELESS_RESET = 21  # RFC 9000 §10.3: 5 unpredictable bytes + 16-byte token
MAX_STATELESS_RESET = 43  # §10.3: no reason to be longer
RETRY_TOKEN_LIFETIME = 10.0  # seconds a Retry token is accepted
TOKEN_NONCE_LENGTH = 12
DEFAULT_MAX_CONNECTIONS = 4096  # live plus accepted-but-not-taken connections
DEFAULT_MAX_PENDING_REPLIES = 1024  # stateless datagrams waiting to be sent


class RetryTokens:
    """Address-validation tokens for Retry (RFC 9000 §8.1.2): AES-GCM over
    (issue time, original DCID, Retry SCID), bound to the client's address."""

    def __init__(self, key: bytes, entropy: Callable[[int], bytes], lifetime: float = RETRY_TOKEN_LIFETIME) -> None:
        self._aead = AESGCM(key)
        self._entropy = entropy
        self.lifetime = lifetime

    def seal(self, addr: Any, odcid: bytes, retry_scid: bytes, now: float) -> bytes:
        nonce = self._entropy(TOKEN_NONCE_LENGTH)
        plain = struct.pack("!d", now) + bytes((len(odcid),)) + odcid + bytes((len(retry_scid),)) + retry_scid
        return nonce + self._aead.encrypt(nonce, plain, _address_bytes(addr))

    def open(self, token: bytes, addr: Any, now: float) -> Optional[tuple[bytes, bytes]]:
        """(original DCID, Retry SCID) from a valid fresh token, else None."""
        if len(token) < TOKEN_NONCE_LENGTH + 16 + 10:
            return None
        try:
            plain = self._aead.decrypt(token[:TOKEN_NONCE_LENGTH], token[TOKEN_NONCE_LENGTH:], _address_bytes(addr))
        except InvalidTag:
            return None
        try:
            (issued,) = struct.unpack_from("!d", plain)
            n = plain[8]
            odcid = plain[9 : 9 + n]
            m = plain[9 + n]
            retry_scid = plain[10 + n : 10 + n + m]
        except (struct.error, IndexError):
            return None
        if not issued - 1.0 <= now <= issued + self.lifetime:
            return None
        return odcid, retry_scid


def _address_bytes(addr: Any) -> bytes:
    return repr(tuple(addr)[:2]).encode()


class QuicEndpoint:
    """The server side of one UDP socket; see the module header."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        retry: bool = False,
        stateless_reset_key: Optional[bytes] = None,
        token_key: Optional[bytes] = None,
        entropy: Optional[Callable[[int], bytes]] = None,
        stateless_reset: bool = True,
        session_ticket_handler: Optional[Callable[[Any], None]] = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_pending_replies: int = DEFAULT_MAX_PENDING_REPLIES,
    ) -> None:
        if configuration.is_client:
            raise ValueError("QuicEndpoint serves: give it a server configuration")
        if max_connections < 1 or max_pending_replies < 1:
            raise ValueError("max_connections and max_pending_replies must be at least 1")
        self.max_connections = max_connections
        self.max_pending_replies = max_pending_replies
        self.configuration = configuration
        self._entropy = entropy or os.urandom
        self.reset_key = stateless_reset_key or self._entropy(32)
        self.retry = retry
        self.stateless_reset = stateless_reset
        self._tokens = RetryTokens(token_key or self._entropy(16), self._entropy)
        self._session_ticket_handler = session_ticket_handler
        self._routes: dict[bytes, QuicConnection] = {}
        self._cids: dict[QuicConnection, set[bytes]] = {}
        self._accepted: list[QuicConnection] = []
        self._replies: list[tuple[bytes, Any]] = []
        self.stats = {
            "datagrams_dropped": 0,
            "version_negotiation": 0,
            "retry": 0,
            "stateless_reset": 0,
            "refused": 0,
            "replies_dropped": 0,
        }

    # -- receiving -----------------------------------------------------------------
    def receive_datagram(self, data: bytes, addr: Any, now: float) -> Optional[QuicConnection]:
        """Route one datagram; returns the connection it went to (None: answered or dropped)."""
        if not data:
            return self._dropped()
        cid_length = self.configuration.connection_id_length
        first = data[0]
        if not first & 0x80:
            conn = self._routes.get(bytes(data[1 : 1 + cid_length]))
            if conn is None:
                self._maybe_reset(data, addr, cid_length)
                return None
        else:
            try:
                header = decode_header(data, 0, short_dcid_length=cid_length)
            except PacketDecodeError:
                return self._dropped()
            conn = self._routes.get(header.destination_cid)
            if conn is None:
                conn = self._new_connection(header, data, addr, now)
                if conn is None:
                    return None
        conn.receive_datagram(data, addr, now)
        self._after(conn)
        return conn

    def receive_datagrams(self, data: bytes, segment_size: int, addr: Any, now: float) -> list[QuicConnection]:
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
            if not data[start] & 0x80:
                dcid = data[start + 1 : start + 1 + cid_length]
                conn = routes.get(dcid)
            if conn is None:
                conn = self.receive_datagram(data[start:stop], addr, now)
            else:
                # Extend the run over the following datagrams for the same CID.
                while stop < size and not data[stop] & 0x80 and data[stop + 1 : stop + 1 + cid_length] == dcid:
                    stop = min(stop + segment_size, size)
                # The whole batch (the usual case) goes without another copy.
                run = data if start == 0 and stop == size else data[start:stop]
                conn.receive_datagrams(run, segment_size, addr, now)
                self._after(conn)
            if conn is not None and (not touched or touched[-1] is not conn):
                touched.append(conn)
            start = stop
        return touched

    def _dropped(self) -> None:
        self.stats["datagrams_dropped"] += 1
        return None

    def _new_connection(self, header: Any, data: bytes, addr: Any, now: float) -> Optional[QuicConnection]:
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
        odcid = header.destination_cid
        retry_scid = None
        if self.retry:
            if not header.token:
                retry_scid = self._entropy(config.connection_id_length)
                token = self._tokens.seal(addr, header.destination_cid, retry_scid, now)
                self._reply(
                    encode_retry(header.version, header.source_cid, retry_scid, token, header.destination_cid), addr
                )
                self.stats["retry"] += 1
                return None
            opened = self._tokens.open(header.token, addr, now)
            if opened is None or opened[1] != header.destination_cid:
                return self._dropped()  # RFC 9000 §8.1.3: an invalid token may be ignored
            odcid, retry_scid = opened
        if len(self._cids) >= self.max_connections or len(self._accepted) >= self.max_connections:
            self._refuse(header, addr)
            return None
        conn = QuicConnection(
            configuration=config,
            original_destination_connection_id=odcid,
            retry_source_connection_id=retry_scid,
            stateless_reset_key=self.reset_key,
            session_ticket_handler=self._session_ticket_handler,
            entropy=self._entropy,
        )
        conn.cid_listener = lambda issued, cid, conn=conn: self._on_cid(conn, issued, cid)
        self._cids[conn] = set()
        self._route(conn, header.destination_cid)
        for cid in conn.host_cids:
            self._route(conn, cid)
        self._accepted.append(conn)
        return conn

    def _refuse(self, header: Any, addr: Any) -> None:
        """RFC 9000 §5.2.2: an Initial carrying CONNECTION_CLOSE(CONNECTION_REFUSED),
        protected with the Initial keys the client's DCID gives (§17.2.2)."""
        self.stats["refused"] += 1
        send, _ = initial_keys(header.version, header.destination_cid, is_client=False)
        payload = bytearray()
        # Long enough for the header protection sample (RFC 9001 §5.4.2):
        # packet number and payload are well over 4 bytes.
        ConnectionClose(ErrorCode.CONNECTION_REFUSED, 0, "server busy").encode(payload)
        pn_length = 1
        scid = self._entropy(self.configuration.connection_id_length)
        head = encode_long_header(
            header.version, PacketType.INITIAL, header.source_cid, scid, 0, pn_length, payload_length=len(payload) + 16
        )
        self._reply(send.protection.protect(head, payload, 0), addr)

    def _reply(self, data: bytes, addr: Any) -> None:
        if len(self._replies) >= self.max_pending_replies:
            self.stats["replies_dropped"] += 1
            return
        self._replies.append((data, addr))

    def _route(self, conn: QuicConnection, cid: bytes) -> None:
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
        """RFC 9000 §10.3: a stateless reset for a short-header packet nobody owns."""
        if not self.stateless_reset or len(data) <= MIN_STATELESS_RESET:
            self._dropped()
            return
        # §10.3.3: smaller than what triggered it, so resets cannot loop.
        size = min(len(data) - 1, MAX_STATELESS_RESET)
        token = stateless_reset_token(self.reset_key, bytes(data[1 : 1 + cid_length]))
        unpredictable = bytearray(self._entropy(size - 16))
        unpredictable[0] = 0x40 | (unpredictable[0] & 0x3F)  # looks like a short header
        self._reply(bytes(unpredictable) + token, addr)
        self.stats["stateless_reset"] += 1

    def _after(self, conn: QuicConnection) -> None:
        if conn.state == QuicConnectionState.TERMINATED:
            self._forget(conn)

    def _forget(self, conn: QuicConnection) -> None:
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
        replies, self._replies = self._replies, []
        return replies

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        out = self.stateless_datagrams()
        for conn in list(self._cids):
            out.extend(conn.datagrams_to_send(now))
            self._after(conn)
        return out

    def datagram_batches_to_send(self, now: float) -> list[tuple[bytes, int, Any]]:
        out = [(data, len(data), addr) for data, addr in self.stateless_datagrams()]
        for conn in list(self._cids):
            out.extend(conn.datagram_batches_to_send(now))
            self._after(conn)
        return out

    def get_timer(self) -> Optional[float]:
        timers = [t for t in (conn.get_timer() for conn in self._cids) if t is not None]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        for conn in list(self._cids):
            timer = conn.get_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now)
            self._after(conn)


def _grease_version(entropy: Callable[[int], bytes]) -> int:
    """A reserved version 0x?a?a?a?a (RFC 9000 §15) to exercise clients."""
    value = int.from_bytes(entropy(4), "big")
    return (value & 0xF0F0F0F0) | 0x0A0A0A0A


__all__ = ["QuicEndpoint", "RetryTokens"]
