# ONC RPC with TLS over TCP sockets (RFC 9289 + RFC 5531 record marking):
# the blocking client and a small threaded server around the sans-I/O pieces
# of tls/rpc_tls.py.  This module owns:
#   - RpcClient: connect, the AUTH_TLS probe under a policy (none / auto /
#     required), the TLS handshake on the same connection with ALPN "sunrpc",
#     then calls (NULL and any procedure) with record marking inside TLS;
#   - RpcServer: answers the probe ("STARTTLS"), upgrades the connection,
#     exposes the peer certificate's identity (and the user it maps to) to
#     procedure handlers, and dispatches calls (PROG_UNAVAIL, PROG_MISMATCH,
#     PROC_UNAVAIL, GARBAGE_ARGS as RFC 5531 says).
# Reads are message-exact before TLS starts, so no byte of the ClientHello is
# consumed by the plaintext RPC layer.
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Callable

from ..config import Config
from ..errors import TLSError
from ..rpc_tls import (
    ALPN_SUNRPC,
    LAST_FRAGMENT,
    MAX_MESSAGE_SIZE,
    AcceptedReply,
    AcceptStat,
    AuthFlavor,
    AuthStat,
    Call,
    DeniedReply,
    IdentityMap,
    OpaqueAuth,
    PeerIdentity,
    ProbeOutcome,
    RejectStat,
    RpcError,
    RpcTLSRequired,
    StartTLSClient,
    TLSPolicy,
    bad_credential_reply,
    encode_record,
    is_tls_probe,
    parse_message,
    peer_identity,
    starttls_reply,
)
from ..tcp import TLSSocket, wrap_socket

logger = logging.getLogger("tls.rpc")


def with_sunrpc_alpn(config: Config) -> Config:
    """RFC 9289 §5.1.1: RPC-with-TLS over TCP negotiates ALPN "sunrpc"."""
    if ALPN_SUNRPC in config.alpn_protocols:
        return config
    return dataclasses.replace(config, alpn_protocols=(ALPN_SUNRPC,))


def _recv_exact(stream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = stream.recv(n - len(out))
        if not chunk:
            raise EOFError("connection closed inside an RPC record")
        out += chunk
    return bytes(out)


def read_message(stream, max_message: int = MAX_MESSAGE_SIZE) -> bytes | None:
    """One record-marked message, read exactly (None at a clean EOF)."""
    message = bytearray()
    while True:
        mark = stream.recv(4)
        if not mark and not message:
            return None
        if not mark:
            raise EOFError("connection closed between RPC fragments")
        if len(mark) < 4:
            mark += _recv_exact(stream, 4 - len(mark))
        (value,) = struct.unpack(">I", mark)
        length = value & ~LAST_FRAGMENT
        if len(message) + length > max_message:
            raise RpcError(f"RPC message over {max_message} bytes")
        message += _recv_exact(stream, length)
        if value & LAST_FRAGMENT:
            return bytes(message)


# ---------------------------------------------------------------------------
# Client


class RpcClient:
    """An RPC client on one TCP connection, with TLS as the policy says."""

    def __init__(
        self,
        address: tuple[str, int],
        prog: int,
        vers: int,
        *,
        policy: TLSPolicy | str = TLSPolicy.AUTO,
        config: Config | None = None,
        timeout: float = 30.0,
        credential: OpaqueAuth = OpaqueAuth(),
    ) -> None:
        self.address = address
        self.prog, self.vers = prog, vers
        self.policy = TLSPolicy(policy)
        self.credential = credential
        self.timeout = timeout
        self._xids = itertools.count(int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF)
        if self.policy != TLSPolicy.NONE and config is None:
            raise ValueError("a TLS config is needed unless policy is none")
        self.config = with_sunrpc_alpn(config) if config is not None else None
        self.stream: socket.socket | TLSSocket = self._connect_and_probe()

    @property
    def tls(self) -> TLSSocket | None:
        return self.stream if isinstance(self.stream, TLSSocket) else None

    def _connect_and_probe(self):
        sock = socket.create_connection(self.address, timeout=self.timeout)
        probe = StartTLSClient(self.policy, next(self._xids), self.prog, self.vers)
        try:
            if probe.outcome == ProbeOutcome.PENDING:
                sock.sendall(probe.data_to_send())
                while probe.outcome == ProbeOutcome.PENDING:
                    try:
                        message = read_message(sock)
                    except EOFError:
                        message = None
                    if message is None:
                        probe.server_closed()
                        sock.close()  # the server hung up on the probe: plain RPC needs a new connection
                        return socket.create_connection(self.address, timeout=self.timeout)
                    probe.receive_data(encode_record(message))
            if probe.outcome == ProbeOutcome.USE_TLS:
                assert self.config is not None
                tls = wrap_socket(sock, self.config)
                if tls.selected_alpn_protocol() != ALPN_SUNRPC.decode():
                    tls.close()
                    raise RpcError("server did not negotiate ALPN sunrpc")
                return tls
            return sock
        except BaseException:
            sock.close()
            raise

    def call(self, proc: int, args: bytes = b"") -> bytes:
        """Call a procedure; returns its XDR results (SUCCESS) or raises RpcError."""
        xid = next(self._xids)
        message = Call(xid, self.prog, self.vers, proc, self.credential, OpaqueAuth(), args)
        self.stream.sendall(encode_record(message.encode()))
        while True:
            data = read_message(self.stream)
            if data is None:
                raise RpcError("server closed the connection")
            reply = parse_message(data)
            if isinstance(reply, Call) or reply.xid != xid:
                continue
            if isinstance(reply, DeniedReply):
                if reply.stat == RejectStat.AUTH_ERROR:
                    try:
                        why = AuthStat(reply.auth_stat).name
                    except ValueError:
                        why = str(reply.auth_stat)
                    raise RpcError(f"call denied: AUTH_ERROR {why}")
                raise RpcError(f"call denied: RPC_MISMATCH {reply.mismatch}")
            if reply.stat != AcceptStat.SUCCESS:
                raise RpcError(f"call failed: {AcceptStat(reply.stat).name}")
            return reply.results

    def null(self) -> None:
        self.call(0)

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------
# Server


@dataclass
class CallContext:
    """What a procedure handler knows about its caller."""

    call: Call
    tls: bool
    identity: PeerIdentity | None
    user: str | None
    peer: tuple


Handler = Callable[[bytes, CallContext], bytes]


class GarbageArgs(Exception):
    """Raise from a handler when the arguments do not decode."""


class RpcServer:
    """A threaded RPC server; one thread per connection.

    programs: {(prog, vers): {proc: handler(args, ctx) -> results}}; the
    NULL procedure (0) is answered for every program.  With a TLS config the
    AUTH_TLS probe is answered and the connection upgraded; require_tls
    refuses other calls on plaintext connections (AUTH_TOOWEAK).
    """

    def __init__(
        self,
        address: tuple[str, int],
        programs: dict[tuple[int, int], dict[int, Handler]],
        *,
        config: Config | None = None,
        require_tls: bool = False,
        identity_map: IdentityMap | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.programs = programs
        self.config = with_sunrpc_alpn(config) if config is not None else None
        self.require_tls = require_tls
        self.identity_map = identity_map
        self.timeout = timeout
        self.listener = socket.create_server(address)
        self.address = self.listener.getsockname()[:2]
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def serve_forever(self) -> None:
        while not self._stopping:
            try:
                sock, peer = self.listener.accept()
            except OSError:
                break
            thread = threading.Thread(target=self._serve_connection, args=(sock, peer), daemon=True)
            self._threads.append(thread)
            thread.start()

    def start(self) -> RpcServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self._stopping = True
        self.listener.close()
        for thread in self._threads:
            thread.join(self.timeout)

    def __enter__(self) -> RpcServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve_connection(self, sock: socket.socket, peer: tuple) -> None:
        sock.settimeout(self.timeout)
        stream: socket.socket | TLSSocket = sock
        identity = user = None
        try:
            while True:
                data = read_message(stream)
                if data is None:
                    break
                message = parse_message(data)
                if not isinstance(message, Call):
                    continue
                if is_tls_probe(message) and self.config is not None and not isinstance(stream, TLSSocket):
                    stream.sendall(encode_record(starttls_reply(message.xid).encode()))
                    stream = wrap_socket(sock, self.config, server_side=True)
                    identity = peer_identity(stream.peer_certificates())
                    user = self.identity_map.user_for(identity) if self.identity_map else None
                    continue
                ctx = CallContext(message, isinstance(stream, TLSSocket), identity, user, peer)
                stream.sendall(encode_record(self._dispatch(message, ctx).encode()))
        except (RpcError, TLSError, EOFError, OSError) as exc:
            logger.debug("RPC connection from %s ended: %s", peer, exc)
            self.errors.append(exc)
        finally:
            stream.close()

    def _dispatch(self, call: Call, ctx: CallContext) -> AcceptedReply | DeniedReply:
        if call.rpcvers != 2:
            return DeniedReply(call.xid, RejectStat.RPC_MISMATCH, 0, (2, 2))
        if call.cred.flavor == AuthFlavor.AUTH_TLS:
            # RFC 9289 §4.1: AUTH_TLS is only for probing with NULL.
            return bad_credential_reply(call.xid)
        if self.require_tls and not ctx.tls:
            return DeniedReply(call.xid, RejectStat.AUTH_ERROR, AuthStat.AUTH_TOOWEAK)
        versions = [v for (p, v) in self.programs if p == call.prog]
        if not versions:
            return AcceptedReply(call.xid, stat=AcceptStat.PROG_UNAVAIL)
        procedures = self.programs.get((call.prog, call.vers))
        if procedures is None:
            return AcceptedReply(call.xid, stat=AcceptStat.PROG_MISMATCH, mismatch=(min(versions), max(versions)))
        if call.proc == 0:
            return AcceptedReply(call.xid)
        handler = procedures.get(call.proc)
        if handler is None:
            return AcceptedReply(call.xid, stat=AcceptStat.PROC_UNAVAIL)
        try:
            return AcceptedReply(call.xid, results=handler(call.args, ctx))
        except (GarbageArgs, RpcError):
            return AcceptedReply(call.xid, stat=AcceptStat.GARBAGE_ARGS)
        except Exception:
            logger.exception("RPC procedure %d failed", call.proc)
            return AcceptedReply(call.xid, stat=AcceptStat.SYSTEM_ERR)


__all__ = ["RpcClient", "RpcServer", "CallContext", "GarbageArgs", "read_message", "RpcTLSRequired", "TLSPolicy"]
