# ONC RPC with TLS (RFC 9289) over RFC 5531 record marking, sans-I/O.  This
# module owns:
#   - the RPC message codec of RFC 5531 §9 (call and reply headers,
#     opaque_auth, accepted / denied replies) in XDR (RFC 4506);
#   - record marking (RFC 5531 §11): the last-fragment bit, reassembly with a
#     cap on message size and fragment count;
#   - the AUTH_TLS probe (RFC 9289 §4.1): a NULL call with credential flavor
#     AUTH_TLS, answered by an AUTH_NONE verifier holding "STARTTLS"; the
#     client-side decision under a policy (none / auto / required, like the
#     Linux NFS client's xprtsec= mount option);
#   - the peer identity a server maps to a user (FreeBSD rpctlssd style):
#     from the verified certificate chain.
# The sockets that carry this live in tls/tcp.py; nothing here does I/O.
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from enum import Enum, IntEnum

RPC_VERSION = 2
ALPN_SUNRPC = b"sunrpc"  # RFC 9289 §5.1 / IANA ALPN registry
STARTTLS_VERIFIER = b"STARTTLS"  # RFC 9289 §4.1
MAX_AUTH_BYTES = 400  # RFC 5531 §8.2: opaque body<MAX_AUTH_BYTES>
LAST_FRAGMENT = 0x80000000
MAX_MESSAGE_SIZE = 1 << 20  # our cap on one reassembled RPC message
MAX_FRAGMENTS = 1024  # and on the fragments it may come in
DEFAULT_FRAGMENT_SIZE = 1 << 16
NULL_PROCEDURE = 0


class MsgType(IntEnum):
    CALL = 0
    REPLY = 1


class ReplyStat(IntEnum):
    MSG_ACCEPTED = 0
    MSG_DENIED = 1


class AcceptStat(IntEnum):
    SUCCESS = 0
    PROG_UNAVAIL = 1
    PROG_MISMATCH = 2
    PROC_UNAVAIL = 3
    GARBAGE_ARGS = 4
    SYSTEM_ERR = 5


class RejectStat(IntEnum):
    RPC_MISMATCH = 0
    AUTH_ERROR = 1


class AuthStat(IntEnum):
    AUTH_OK = 0
    AUTH_BADCRED = 1
    AUTH_REJECTEDCRED = 2
    AUTH_BADVERF = 3
    AUTH_REJECTEDVERF = 4
    AUTH_TOOWEAK = 5
    AUTH_INVALIDRESP = 6
    AUTH_FAILED = 7


class AuthFlavor(IntEnum):
    AUTH_NONE = 0
    AUTH_SYS = 1
    AUTH_SHORT = 2
    AUTH_DH = 3
    RPCSEC_GSS = 6
    AUTH_TLS = 7  # RFC 9289 §8.1


class RpcError(Exception):
    """Malformed RPC input or an RPC-level refusal; the connection is dropped."""


class RpcTLSRequired(RpcError):
    """Policy `required`, but the server does not offer RPC-with-TLS."""


# ---------------------------------------------------------------------------
# XDR (RFC 4506): big-endian 32-bit units, opaque data padded to 4 bytes


class XdrReader:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def u32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise RpcError("truncated XDR")
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return value

    def opaque(self, limit: int) -> bytes:
        length = self.u32()
        if length > limit:
            raise RpcError(f"opaque of {length} bytes exceeds {limit}")
        padded = length + (-length % 4)
        if self.pos + padded > len(self.data):
            raise RpcError("truncated XDR opaque")
        value = self.data[self.pos : self.pos + length]
        self.pos += padded
        return value

    def rest(self) -> bytes:
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise RpcError("trailing bytes in RPC message")


def xdr_u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def xdr_opaque(data: bytes) -> bytes:
    return xdr_u32(len(data)) + data + bytes(-len(data) % 4)


# ---------------------------------------------------------------------------
# Messages (RFC 5531 §9)


@dataclass(frozen=True)
class OpaqueAuth:
    flavor: int = AuthFlavor.AUTH_NONE
    body: bytes = b""

    def encode(self) -> bytes:
        if len(self.body) > MAX_AUTH_BYTES:
            raise RpcError("opaque_auth body over 400 bytes")
        return xdr_u32(self.flavor) + xdr_opaque(self.body)

    @classmethod
    def parse(cls, reader: XdrReader) -> OpaqueAuth:
        flavor = reader.u32()
        return cls(flavor, reader.opaque(MAX_AUTH_BYTES))


AUTH_NONE = OpaqueAuth()


@dataclass(frozen=True)
class Call:
    xid: int
    prog: int
    vers: int
    proc: int
    cred: OpaqueAuth = AUTH_NONE
    verf: OpaqueAuth = AUTH_NONE
    args: bytes = b""
    rpcvers: int = RPC_VERSION

    def encode(self) -> bytes:
        return (
            xdr_u32(self.xid, MsgType.CALL, self.rpcvers, self.prog, self.vers, self.proc)
            + self.cred.encode()
            + self.verf.encode()
            + self.args
        )


@dataclass(frozen=True)
class AcceptedReply:
    xid: int
    verf: OpaqueAuth = AUTH_NONE
    stat: int = AcceptStat.SUCCESS
    results: bytes = b""  # SUCCESS: the procedure's results
    mismatch: tuple[int, int] | None = None  # PROG_MISMATCH: (low, high)

    def encode(self) -> bytes:
        out = xdr_u32(self.xid, MsgType.REPLY, ReplyStat.MSG_ACCEPTED) + self.verf.encode()
        out += xdr_u32(self.stat)
        if self.stat == AcceptStat.SUCCESS:
            out += self.results
        elif self.stat == AcceptStat.PROG_MISMATCH:
            out += xdr_u32(*(self.mismatch or (0, 0)))
        return out


@dataclass(frozen=True)
class DeniedReply:
    xid: int
    stat: int = RejectStat.AUTH_ERROR
    auth_stat: int = AuthStat.AUTH_BADCRED  # AUTH_ERROR
    mismatch: tuple[int, int] | None = None  # RPC_MISMATCH: (low, high)

    def encode(self) -> bytes:
        out = xdr_u32(self.xid, MsgType.REPLY, ReplyStat.MSG_DENIED, self.stat)
        if self.stat == RejectStat.RPC_MISMATCH:
            return out + xdr_u32(*(self.mismatch or (RPC_VERSION, RPC_VERSION)))
        return out + xdr_u32(self.auth_stat)


Message = Call | AcceptedReply | DeniedReply


def parse_message(data: bytes) -> Message:
    """One RPC message (record marking already removed)."""
    reader = XdrReader(data)
    xid = reader.u32()
    mtype = reader.u32()
    if mtype == MsgType.CALL:
        rpcvers, prog, vers, proc = reader.u32(), reader.u32(), reader.u32(), reader.u32()
        cred = OpaqueAuth.parse(reader)
        verf = OpaqueAuth.parse(reader)
        return Call(xid, prog, vers, proc, cred, verf, reader.rest(), rpcvers)
    if mtype != MsgType.REPLY:
        raise RpcError(f"unknown msg_type {mtype}")
    stat = reader.u32()
    if stat == ReplyStat.MSG_ACCEPTED:
        verf = OpaqueAuth.parse(reader)
        astat = reader.u32()
        if astat == AcceptStat.SUCCESS:
            return AcceptedReply(xid, verf, astat, reader.rest())
        mismatch = None
        if astat == AcceptStat.PROG_MISMATCH:
            mismatch = (reader.u32(), reader.u32())
        reader.expect_end()
        return AcceptedReply(xid, verf, astat, b"", mismatch)
    if stat == ReplyStat.MSG_DENIED:
        rstat = reader.u32()
        if rstat == RejectStat.RPC_MISMATCH:
            reply = DeniedReply(xid, rstat, 0, (reader.u32(), reader.u32()))
        elif rstat == RejectStat.AUTH_ERROR:
            reply = DeniedReply(xid, rstat, reader.u32())
        else:
            raise RpcError(f"unknown reject_stat {rstat}")
        reader.expect_end()
        return reply
    raise RpcError(f"unknown reply_stat {stat}")


# ---------------------------------------------------------------------------
# Record marking (RFC 5531 §11)


def encode_record(message: bytes, fragment_size: int = DEFAULT_FRAGMENT_SIZE) -> bytes:
    """A message as record-marked fragments, the last one flagged."""
    if not 1 <= fragment_size < LAST_FRAGMENT:
        raise ValueError("fragment size out of range")
    out = bytearray()
    view = memoryview(message)
    while True:
        chunk, view = view[:fragment_size], view[fragment_size:]
        out += xdr_u32(len(chunk) | (0 if view else LAST_FRAGMENT))
        out += chunk
        if not view:
            return bytes(out)


class RecordMarkingDecoder:
    """Reassembles record-marked messages from a byte stream.

    feed(data) -> the complete messages it finished.  A message over
    max_message bytes or in more than max_fragments fragments is an RpcError
    (and the decoder stays failed): the sender must not make us buffer
    without bound.
    """

    def __init__(self, max_message: int = MAX_MESSAGE_SIZE, max_fragments: int = MAX_FRAGMENTS) -> None:
        self.max_message = max_message
        self.max_fragments = max_fragments
        self._buffer = bytearray()
        self._message = bytearray()
        self._fragments = 0
        self._failed: RpcError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed:
            raise self._failed
        self._buffer += data
        messages = []
        try:
            while len(self._buffer) >= 4:
                (mark,) = struct.unpack_from(">I", self._buffer)
                length, last = mark & ~LAST_FRAGMENT, bool(mark & LAST_FRAGMENT)
                if len(self._message) + length > self.max_message:
                    raise RpcError(f"RPC message over {self.max_message} bytes")
                if len(self._buffer) < 4 + length:
                    break
                self._fragments += 1
                if self._fragments > self.max_fragments:
                    raise RpcError(f"RPC message in more than {self.max_fragments} fragments")
                self._message += self._buffer[4 : 4 + length]
                del self._buffer[: 4 + length]
                if last:
                    messages.append(bytes(self._message))
                    self._message.clear()
                    self._fragments = 0
        except RpcError as exc:
            self._failed = exc
            raise
        return messages

    @property
    def idle(self) -> bool:
        """No partial message or fragment is buffered."""
        return not self._buffer and not self._message

    def take_buffered(self) -> bytes:
        """Bytes read past the last complete message (e.g. a ClientHello that
        followed the probe reply)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


# ---------------------------------------------------------------------------
# The AUTH_TLS probe (RFC 9289 §4.1)


def probe_call(xid: int, prog: int, vers: int) -> Call:
    """NULL procedure, credential AUTH_TLS with an empty body, verifier
    AUTH_NONE of length zero (both MUSTs of §4.1)."""
    return Call(xid, prog, vers, NULL_PROCEDURE, OpaqueAuth(AuthFlavor.AUTH_TLS, b""), AUTH_NONE)


def is_tls_probe(call: Call) -> bool:
    return call.cred.flavor == AuthFlavor.AUTH_TLS and call.proc == NULL_PROCEDURE


def starttls_reply(xid: int) -> AcceptedReply:
    """The server's "yes": MSG_ACCEPTED with an AUTH_NONE verifier whose
    eight-byte body is "STARTTLS"."""
    return AcceptedReply(xid, OpaqueAuth(AuthFlavor.AUTH_NONE, STARTTLS_VERIFIER), AcceptStat.SUCCESS)


def bad_credential_reply(xid: int) -> DeniedReply:
    """What a server without RPC-with-TLS (or one refusing AUTH_TLS on a
    procedure other than NULL) answers: AUTH_ERROR / AUTH_BADCRED."""
    return DeniedReply(xid, RejectStat.AUTH_ERROR, AuthStat.AUTH_BADCRED)


def server_offers_tls(reply: Message) -> bool:
    """§4.1: support is MSG_ACCEPTED with an AUTH_NONE verifier holding
    "STARTTLS"; the client proceeds even if accept_stat is not SUCCESS."""
    return (
        isinstance(reply, AcceptedReply)
        and reply.verf.flavor == AuthFlavor.AUTH_NONE
        and reply.verf.body == STARTTLS_VERIFIER
    )


class TLSPolicy(Enum):
    """Client policy, after the Linux NFS client's xprtsec= option."""

    NONE = "none"  # never probe; plain RPC
    AUTO = "auto"  # probe; TLS if the server offers it, else plain RPC
    REQUIRED = "required"  # probe; refuse to go on without TLS


class ProbeOutcome(Enum):
    PENDING = "pending"
    USE_TLS = "tls"
    PLAIN = "plain"


class StartTLSClient:
    """The client side of the probe as a sans-I/O state machine.

    data_to_send() gives the probe (record-marked) unless the policy is NONE;
    receive_data() takes the server's bytes until `outcome` is decided.
    Under REQUIRED, a server without TLS raises RpcTLSRequired.
    """

    def __init__(self, policy: TLSPolicy, xid: int, prog: int, vers: int) -> None:
        self.policy = TLSPolicy(policy)
        self.xid = xid
        self._decoder = RecordMarkingDecoder(max_message=4096)
        self._out = b""
        self.reply: Message | None = None
        if self.policy == TLSPolicy.NONE:
            self.outcome = ProbeOutcome.PLAIN
        else:
            self.outcome = ProbeOutcome.PENDING
            self._out = encode_record(probe_call(xid, prog, vers).encode())

    def data_to_send(self) -> bytes:
        out, self._out = self._out, b""
        return out

    def receive_data(self, data: bytes) -> ProbeOutcome:
        if self.outcome != ProbeOutcome.PENDING:
            raise RpcError("probe already decided")
        for message in self._decoder.feed(data):
            reply = parse_message(message)
            if isinstance(reply, Call) or reply.xid != self.xid:
                continue  # not the answer to our probe
            self.reply = reply
            if server_offers_tls(reply):
                self.outcome = ProbeOutcome.USE_TLS
            elif self.policy == TLSPolicy.REQUIRED:
                raise RpcTLSRequired("server does not offer RPC-with-TLS (policy: required)")
            else:
                self.outcome = ProbeOutcome.PLAIN
            if not self._decoder.idle:
                # §4.1: after the reply the next bytes are the TLS handshake,
                # which the client starts; a server must not send first.
                raise RpcError("unexpected bytes after the AUTH_TLS probe reply")
            break
        return self.outcome

    def server_closed(self) -> ProbeOutcome:
        """The server closed the connection instead of answering (some old
        servers drop unknown flavors)."""
        if self.policy == TLSPolicy.REQUIRED:
            raise RpcTLSRequired("server closed the connection on the AUTH_TLS probe")
        self.outcome = ProbeOutcome.PLAIN
        return self.outcome


# ---------------------------------------------------------------------------
# Peer identity for user mapping

# FreeBSD's rpctlssd maps a client certificate to a user through a
# subjectAltName otherName with this OID holding "user@domain".
NFS_USER_OTHERNAME_OID = "1.3.6.1.4.1.2238.1.1.1"


@dataclass(frozen=True)
class PeerIdentity:
    """What a server may map to a local user, from the verified chain's leaf."""

    common_name: str | None = None
    dns_names: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    nfs_users: tuple[str, ...] = ()  # otherName 1.3.6.1.4.1.2238.1.1.1
    fingerprint_sha256: str = ""
    subject: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def candidates(self) -> list[str]:
        """Names to look up, most specific first."""
        out = list(self.nfs_users) + list(self.emails) + list(self.dns_names)
        if self.common_name:
            out.append(self.common_name)
        return out


def peer_identity(chain) -> PeerIdentity | None:
    """The identity in a verified chain (list of cryptography x509
    certificates, leaf first), or None when the peer sent no certificate."""
    if not chain:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    leaf = chain[0]
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    dns: list[str] = []
    emails: list[str] = []
    users: list[str] = []
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        emails = san.get_values_for_type(x509.RFC822Name)
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id.dotted_string == NFS_USER_OTHERNAME_OID:
                users.append(_der_string(other.value))
    except x509.ExtensionNotFound:
        pass
    der = leaf.public_bytes(serialization.Encoding.DER)
    return PeerIdentity(
        common_name=str(cns[0].value) if cns else None,
        dns_names=tuple(dns),
        emails=tuple(emails),
        nfs_users=tuple(u for u in users if u),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        subject=leaf.subject.rfc4514_string(),
    )


def _der_string(value: bytes) -> str:
    """The text of a DER UTF8String / IA5String / PrintableString, or ""."""
    if len(value) < 2 or value[0] not in (0x0C, 0x16, 0x13):
        return ""
    length, pos = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or len(value) < 2 + count:
            return ""
        length = int.from_bytes(value[2 : 2 + count], "big")
        pos = 2 + count
    if pos + length != len(value):
        return ""
    try:
        return value[pos:].decode("utf-8")
    except UnicodeDecodeError:
        return ""


class IdentityMap:
    """Maps a peer identity to a local user: first candidate name found in
    `users` wins (FreeBSD rpctlssd -u style), else `default` (None: refuse)."""

    def __init__(self, users: dict[str, str], default: str | None = None) -> None:
        self.users = dict(users)
        self.default = default

    def user_for(self, identity: PeerIdentity | None) -> str | None:
        if identity is not None:
            for name in identity.candidates():
                if name in self.users:
                    return self.users[name]
            if identity.fingerprint_sha256 in self.users:
                return self.users[identity.fingerprint_sha256]
        return self.default
