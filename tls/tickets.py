# Session tickets and 0-RTT bookkeeping (RFC 8446 §4.6.1, §4.2.11, §8).
# This module owns:
#   - Ticket: what a client remembers from a NewSessionTicket, and the
#     obfuscated ticket age it sends back (§4.2.11.1);
#   - TicketStore: the client's tickets by server name, single use, capped;
#   - TicketState + TicketSealer: the server's stateless tickets, the state
#     sealed with AES-GCM under a rotating key set (key id in clear);
#   - AntiReplay: single-use tickets / ClientHello recording for 0-RTT
#     (§8.1, §8.2) with a bounded memory, and the freshness check (§8.3).
# Time is always a parameter (`now`: float seconds, any epoch the caller
# keeps consistent); randomness is an injectable `rng(n) -> bytes`.
from __future__ import annotations

import hashlib
import heapq
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Rng = Callable[[int], bytes]

# §4.6.1: servers MUST NOT use a lifetime above 7 days; clients MUST NOT
# cache a ticket longer than that whatever the server says.
MAX_TICKET_LIFETIME = 7 * 24 * 3600


def obfuscate_age(age_ms: int, age_add: int) -> int:
    """obfuscated_ticket_age = (age in ms + ticket_age_add) mod 2^32 (§4.2.11.1)."""
    return (int(age_ms) + age_add) & 0xFFFFFFFF


def deobfuscate_age(obfuscated_age: int, age_add: int) -> int:
    """The client's view of the ticket age in milliseconds."""
    return (obfuscated_age - age_add) & 0xFFFFFFFF


def client_identity_hash(leaf_certificate_der: bytes | None) -> bytes:
    """What a ticket remembers of an authenticated client: SHA-256 of its leaf."""
    return hashlib.sha256(leaf_certificate_der).digest() if leaf_certificate_der else b""


# ---------------------------------------------------------------------------
# Client side


@dataclass
class Ticket:
    """A session a client can resume (from one NewSessionTicket)."""

    server_name: str | None
    cipher_suite: int
    psk: bytes  # the resumption PSK (HKDF-Expand-Label(rms, "resumption", nonce))
    ticket: bytes  # opaque identity sent in pre_shared_key
    age_add: int
    lifetime: int  # seconds, as sent by the server
    received_at: float
    alpn: bytes | None = None
    max_early_data: int = 0  # 0: no 0-RTT with this ticket
    transport_parameters: bytes | None = None  # QUIC: the server's, for 0-RTT (RFC 9000 §7.4.1)
    extensions: list = field(default_factory=list)  # NewSessionTicket extensions as received

    def expires_at(self) -> float:
        return self.received_at + min(self.lifetime, MAX_TICKET_LIFETIME)

    def is_valid(self, now: float) -> bool:
        return self.lifetime > 0 and self.received_at <= now + 1.0 and now < self.expires_at()

    def age_ms(self, now: float) -> int:
        return max(0, int((now - self.received_at) * 1000))

    def obfuscated_age(self, now: float) -> int:
        return obfuscate_age(self.age_ms(now), self.age_add)


class TicketStore:
    """The client's tickets, newest last, per server name; each is used once
    (RFC 8446 §C.4: clients SHOULD NOT reuse a ticket).  Memory is bounded by
    max_per_server and max_servers (oldest names evicted first)."""

    def __init__(self, max_per_server: int = 8, max_servers: int = 256) -> None:
        self.max_per_server = max_per_server
        self.max_servers = max_servers
        self._by_name: OrderedDict[str | None, list[Ticket]] = OrderedDict()

    def add(self, ticket: Ticket) -> None:
        if ticket.lifetime <= 0:
            return  # §4.6.1: a zero lifetime means "discard"
        bucket = self._by_name.pop(ticket.server_name, [])
        bucket.append(ticket)
        del bucket[: -self.max_per_server]
        self._by_name[ticket.server_name] = bucket
        while len(self._by_name) > self.max_servers:
            self._by_name.popitem(last=False)

    def pop(self, server_name: str | None, now: float) -> Ticket | None:
        """The newest valid ticket for server_name, removed from the store."""
        bucket = self._by_name.get(server_name)
        if not bucket:
            return None
        bucket[:] = [t for t in bucket if t.is_valid(now)]
        ticket = bucket.pop() if bucket else None
        if not bucket:
            del self._by_name[server_name]
        return ticket

    def peek(self, server_name: str | None, now: float) -> Ticket | None:
        for ticket in reversed(self._by_name.get(server_name, [])):
            if ticket.is_valid(now):
                return ticket
        return None

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_name.values())


# ---------------------------------------------------------------------------
# Server side: the sealed state


@dataclass(frozen=True)
class TicketState:
    """What a server needs to resume a session, sealed inside the ticket."""

    cipher_suite: int
    psk: bytes
    age_add: int
    issued_at: float
    lifetime: int = 7200
    alpn: bytes | None = None
    server_name: str | None = None
    max_early_data: int = 0
    client_identity: bytes = b""  # client_identity_hash() if client auth was used
    app_data: bytes = b""  # carrier data, e.g. QUIC transport parameters for 0-RTT

    _VERSION = 1

    def encode(self) -> bytes:
        def vec(b: bytes) -> bytes:
            return struct.pack("!H", len(b)) + b

        alpn = self.alpn
        # UTF-8, not the idna codec: the name round-trips exactly (idna
        # decodes an SNI's A-label "xn--..." to its Unicode form) and costs
        # no codec machinery on every ticket a server issues.
        sni = self.server_name.encode() if self.server_name else None
        return b"".join((
            struct.pack("!BHIdII", self._VERSION, self.cipher_suite, self.age_add,
                        self.issued_at, self.lifetime, self.max_early_data),
            vec(self.psk),
            b"\x00" if alpn is None else b"\x01" + vec(alpn),
            b"\x00" if sni is None else b"\x01" + vec(sni),
            vec(self.client_identity),
            struct.pack("!I", len(self.app_data)) + self.app_data,
        ))

    @classmethod
    def decode(cls, data: bytes) -> "TicketState":
        """Inverse of encode(); any malformation raises ValueError."""
        pos = 0

        def take(n: int) -> bytes:
            nonlocal pos
            if n < 0 or pos + n > len(data):
                raise ValueError("truncated ticket state")
            out = data[pos : pos + n]
            pos += n
            return out

        def vec() -> bytes:
            return take(struct.unpack("!H", take(2))[0])

        def optional() -> bytes | None:
            flag = take(1)[0]
            if flag > 1:
                raise ValueError("bad optional flag")
            return vec() if flag else None

        version, suite, age_add, issued_at, lifetime, max_early = struct.unpack(
            "!BHIdII", take(struct.calcsize("!BHIdII")))
        if version != cls._VERSION:
            raise ValueError("unknown ticket state version")
        psk = vec()
        alpn = optional()
        sni = optional()
        identity = vec()
        app = take(struct.unpack("!I", take(4))[0])
        if pos != len(data):
            raise ValueError("trailing bytes in ticket state")
        return cls(suite, psk, age_add, issued_at, lifetime, alpn,
                   sni.decode() if sni is not None else None, max_early, identity, app)

    def expires_at(self) -> float:
        return self.issued_at + min(self.lifetime, MAX_TICKET_LIFETIME)


class TicketSealer:
    """Seal/open stateless tickets: key_id (8) || nonce (12) || AES-256-GCM(state).

    The current key seals; previous keys still open.  A key becomes current
    when created and seals for rotation_interval seconds; it is dropped
    key_lifetime seconds after creation (keep key_lifetime >= rotation_interval
    + the ticket lifetime, or tickets die with their key).  open() returns
    None on any failure: unknown key id, bad tag, malformed state, expired
    ticket, ticket from the future."""

    KEY_ID_LENGTH = 8
    NONCE_LENGTH = 12
    OVERHEAD = KEY_ID_LENGTH + NONCE_LENGTH + 16

    def __init__(
        self,
        now: float,
        *,
        rotation_interval: float = 3600.0,
        key_lifetime: float = 3600.0 + 2 * 7200.0,
        rng: Rng = os.urandom,
        keys: list[tuple[bytes, bytes, float]] | None = None,
    ) -> None:
        if key_lifetime < rotation_interval:
            raise ValueError("key_lifetime must be at least rotation_interval")
        self.rotation_interval = rotation_interval
        self.key_lifetime = key_lifetime
        self._rng = rng
        # (key_id, key, created_at), newest first; keys[0] seals.
        self._keys: list[tuple[bytes, AESGCM, float]] = []
        if keys:
            for key_id, key, created in sorted(keys, key=lambda k: -k[2]):
                self._keys.append((bytes(key_id), AESGCM(key), created))
        else:
            self.rotate(now)

    def rotate(self, now: float) -> bytes:
        """Make a new current key (previous keys still open); returns its id."""
        key_id = self._rng(self.KEY_ID_LENGTH)
        self._keys.insert(0, (key_id, AESGCM(self._rng(32)), now))
        self._prune(now)
        return key_id

    def _prune(self, now: float) -> None:
        current = self._keys[:1]
        rest = [k for k in self._keys[1:] if now - k[2] < self.key_lifetime]
        self._keys = current + rest

    @property
    def key_ids(self) -> list[bytes]:
        return [k[0] for k in self._keys]

    def seal(self, state: TicketState, now: float) -> bytes:
        if not self._keys or now - self._keys[0][2] >= self.rotation_interval:
            self.rotate(now)
        self._prune(now)
        key_id, aead, _ = self._keys[0]
        nonce = self._rng(self.NONCE_LENGTH)
        return key_id + nonce + aead.encrypt(nonce, state.encode(), key_id)

    def open(self, ticket: bytes, now: float) -> TicketState | None:
        try:
            ticket = bytes(ticket)
            if len(ticket) < self.OVERHEAD:
                return None
            key_id = ticket[: self.KEY_ID_LENGTH]
            for kid, aead, created in self._keys:
                if kid == key_id:
                    if now - created >= self.key_lifetime:
                        return None
                    break
            else:
                return None
            nonce = ticket[self.KEY_ID_LENGTH : self.KEY_ID_LENGTH + self.NONCE_LENGTH]
            plain = aead.decrypt(nonce, ticket[self.KEY_ID_LENGTH + self.NONCE_LENGTH :], key_id)
            state = TicketState.decode(plain)
            if not (state.issued_at - 1.0 <= now < state.expires_at()):
                return None
            return state
        except (InvalidTag, ValueError, TypeError, struct.error, UnicodeError, OverflowError):
            return None


def ticket_age_ok(
    state: TicketState, obfuscated_age: int, now: float, window: float = 10.0
) -> bool:
    """§8.3 freshness: the client's ticket age (de-obfuscated) must match the
    age the server sees within `window` seconds; only then may 0-RTT be
    accepted (the handshake itself may still resume)."""
    client_age = deobfuscate_age(obfuscated_age, state.age_add) / 1000.0
    server_age = now - state.issued_at
    return abs(server_age - client_age) <= window


# ---------------------------------------------------------------------------
# Anti-replay for 0-RTT (§8)


class AntiReplay:
    """Remembers ticket ids (or binders / ClientHello hashes) already used for
    0-RTT.  check_and_record() says True the first time an id is seen and
    False on a replay.  An entry is kept until its `expires_at` (default now +
    window): with the §8.3 freshness check, a replay outside the window is
    refused anyway.  At most max_entries are kept; when full, 0-RTT is refused
    (False) rather than forgetting a live entry, so memory stays bounded and
    no replay slips through (§8.2)."""

    def __init__(self, window: float = 10.0, max_entries: int = 100_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: dict[bytes, float] = {}
        self._order: list[tuple[float, bytes]] = []  # heap by expiry

    @staticmethod
    def _digest(key: bytes) -> bytes:
        return hashlib.sha256(key).digest()[:16]  # bounded size per entry

    def _expire(self, now: float) -> None:
        order = self._order
        while order and order[0][0] <= now:
            expiry, digest = heapq.heappop(order)
            if self._seen.get(digest) == expiry:
                del self._seen[digest]

    def check_and_record(self, key: bytes, now: float, expires_at: float | None = None) -> bool:
        self._expire(now)
        digest = self._digest(bytes(key))
        if digest in self._seen:
            return False
        if len(self._seen) >= self.max_entries:
            return False
        expiry = now + self.window if expires_at is None else expires_at
        if expiry <= now:
            return False
        self._seen[digest] = expiry
        heapq.heappush(self._order, (expiry, digest))
        return True

    def __len__(self) -> int:
        return len(self._seen)


def new_age_add(rng: Rng = os.urandom) -> int:
    """A fresh ticket_age_add (§4.6.1: securely generated random 32 bits)."""
    return int.from_bytes(rng(4), "big")


__all__ = [
    "MAX_TICKET_LIFETIME", "obfuscate_age", "deobfuscate_age", "client_identity_hash",
    "Ticket", "TicketStore", "TicketState", "TicketSealer", "ticket_age_ok",
    "AntiReplay", "new_age_add",
]
