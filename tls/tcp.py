# The I/O drivers of TLS over TCP.  This module owns:
#   - TLSSocket: a blocking socket wrapper shaped like the standard library's
#     ssl.SSLSocket (wrap_socket, do_handshake, send/sendall/recv/recv_into,
#     makefile, unwrap, getpeercert, selected_alpn_protocol, version, cipher)
#     over the sans-I/O tls.connection.TLSConnection;
#   - the kTLS hand-off after the handshake when asked for (tls/ktls.py), with
#     record-exact reads during the handshake so nothing is left behind in
#     user space, and the user-space fallback with its reason;
#   - asyncio: open_connection / start_server returning the standard
#     StreamReader / StreamWriter pairs, through a Protocol that drives a
#     TLSConnection and a Transport the streams write to.
# Time is read here (time.time) and handed to the sans-I/O layers.
from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from collections import deque
from typing import Any

from . import ktls
from .config import Config
from .connection import (
    VERSION_NAME,
    ConnectionClosed,
    ConnectionLost,
    DataReceived,
    EarlyDataRejected,
    HandshakeCompleted,
    KeyUpdated,
    TicketReceived,
    TLSConnection,
    certificate_dict,
    cipher_tuple,
)
from .enums import ContentType
from .errors import TLSError, UsageError

logger = logging.getLogger("tls.tcp")

READ_SIZE = 1 << 16
SEND_CHUNK = 1 << 16  # app bytes sealed per sendall: small enough to pipeline with the peer


# ---------------------------------------------------------------------------
# The blocking socket


class _ReadBuffer:
    """Decrypted bytes waiting for recv(): the records' own buffers, in
    order, copied once, into what the reader hands us."""

    __slots__ = ("chunks", "offset", "size")

    def __init__(self) -> None:
        self.chunks: deque = deque()
        self.offset = 0  # bytes of chunks[0] already read
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, data) -> None:
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def read_into(self, view: memoryview, n: int) -> int:
        chunks = self.chunks
        done = 0
        while done < n and chunks:
            chunk = chunks[0]
            start = self.offset
            take = min(n - done, len(chunk) - start)
            with memoryview(chunk) as source:
                view[done : done + take] = source[start : start + take]
            done += take
            if start + take == len(chunk):
                chunks.popleft()
                self.offset = 0
            else:
                self.offset = start + take
        self.size -= done
        return done

    def read(self, n: int) -> bytes:
        chunks = self.chunks
        if self.offset == 0 and chunks and len(chunks[0]) <= n and type(chunks[0]) is bytes:
            self.size -= len(chunks[0])
            return chunks.popleft()
        out = bytearray(min(n, self.size))
        self.read_into(memoryview(out), len(out))
        return bytes(out)


class TLSSocket:
    """TLS 1.3 over a connected TCP socket, used like ssl.SSLSocket.

    Errors: a failed handshake or connection raises the TLSError that ended
    it (AlertError: we sent that alert; PeerAlert: the peer did;
    ConnectionLost: the transport ended during the handshake).  Timeouts
    come from the wrapped socket (settimeout) and raise socket.timeout.
    """

    def __init__(
        self,
        sock: socket.socket,
        config: Config,
        server_side: bool = False,
        *,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        ktls_enabled: bool = False,
        read_size: int = READ_SIZE,
        **connection_options: Any,
    ) -> None:
        self._sock: socket.socket | None = sock
        self.server_side = bool(server_side)
        self.config = config
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self.ktls_enabled = ktls_enabled
        self.ktls_reason: str | None = None  # why kTLS is (not) in use
        self._kernel: ktls.KernelTLS | None = None
        self._kernel_rx = False
        self.read_size = read_size
        self.conn = TLSConnection(config, not server_side, now=time.time, **connection_options)
        self._rbuf = _ReadBuffer()
        self._eof = False  # the peer's close_notify (or EOF after the handshake)
        self._handshake_started = False
        self.completed: HandshakeCompleted | None = None
        self.closed_event: ConnectionClosed | None = None
        self.tickets: list[Any] = []
        self.key_updates_received = 0
        self.early_data_rejected = False
        if do_handshake_on_connect:
            self.do_handshake()

    # -- handshake ----------------------------------------------------------

    def do_handshake(self) -> None:
        if self.completed is not None:
            return
        if not self._handshake_started:
            self._handshake_started = True
            self.conn.start(now=time.time())
            self._flush()
        while self.completed is None:
            self._raise_failure()
            if self._eof:
                raise ConnectionLost("peer closed during the handshake")
            self._read_more(exact=self.ktls_enabled)
        self._flush()
        if self.ktls_enabled:
            self._try_ktls()

    def send_early(self, data: bytes) -> int:
        """Client with a 0-RTT ticket: start the handshake and send `data` as
        early data (up to the ticket's limit; the rest after the handshake).
        Use with do_handshake_on_connect=False, then call do_handshake()."""
        if self._handshake_started:
            raise UsageError("send_early() must come before the handshake starts")
        self._handshake_started = True
        self.conn.start(now=time.time())
        self.conn.send(data)
        self._flush()
        return len(data)

    def _try_ktls(self) -> None:
        status = ktls.probe()
        if not status.available:
            self.ktls_reason = f"user-space records: {status.reason}"
            return
        try:
            tx, rx = self.conn.kernel_handoff_states()
        except UsageError as exc:
            self.ktls_reason = f"user-space records: {exc}"
            return
        result = ktls.hand_off(self._socket(), tx, rx)
        if result.kernel is None:
            self.ktls_reason = f"user-space records: {result.reason}"
            return
        self.conn.attach_kernel(result.kernel, tx=result.tx, rx=result.rx)
        self._kernel, self._kernel_rx = result.kernel, result.rx
        self.ktls_reason = result.reason

    @property
    def ktls_active(self) -> bool:
        return self._kernel is not None

    # -- reading ------------------------------------------------------------

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise OSError("socket is closed or detached")
        return self._sock

    def _recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self._socket().recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _read_more(self, exact: bool = False) -> None:
        """One read from the transport, fed to the connection; replies sent."""
        sock = self._socket()
        if self._kernel_rx and self._kernel is not None:
            try:
                ctype, data = self._kernel.recv_record(self.read_size)
            except ktls.KeyExpired:
                data, ctype = b"", None
            if ctype == ContentType.APPLICATION_DATA and not data:
                self.conn.receive_eof()
            elif ctype is not None:
                self.conn.receive_record(ctype, data, now=time.time())
        elif exact:
            # Record by record, so no byte after the handshake's last record
            # is taken from the socket before the kernel could take over.
            header = self._recv_exact(5)
            if len(header) == 5:
                self.conn.receive_data(header, now=time.time())
                if self.conn.failure is None:
                    body = self._recv_exact((header[3] << 8) | header[4])
                    self.conn.receive_data(body, now=time.time())
                    if len(body) < (header[3] << 8) | header[4]:
                        self.conn.receive_eof()
            else:
                if header:
                    self.conn.receive_data(header, now=time.time())
                self.conn.receive_eof()
        else:
            data = sock.recv(self.read_size)
            if data:
                self.conn.receive_data(data, now=time.time())
            else:
                self.conn.receive_eof()
        self._flush()
        self._process_events()

    def _process_events(self) -> None:
        while (event := self.conn.next_event()) is not None:
            kind = type(event)
            if kind is DataReceived:
                self._rbuf.append(event.data)
            elif kind is HandshakeCompleted:
                self.completed = event
            elif kind is TicketReceived:
                self.tickets.append(event.ticket)
            elif kind is KeyUpdated:
                if event.direction == 0:
                    self.key_updates_received += 1
            elif kind is EarlyDataRejected:
                self.early_data_rejected = True
            elif kind is ConnectionClosed:
                self.closed_event = event
                if event.by_peer:
                    self._eof = True

    def _raise_failure(self) -> None:
        failure = self.conn.failure
        if failure is not None:
            raise failure

    def _fill(self) -> bool:
        """Make sure _rbuf has bytes; False at end of stream."""
        while not self._rbuf:
            if self._eof:
                failure = self.conn.failure
                if failure is not None and not (
                    self.suppress_ragged_eofs and isinstance(failure, ConnectionLost)
                ):
                    raise failure
                if (
                    not self.suppress_ragged_eofs
                    and self.closed_event is not None
                    and self.closed_event.alert is None
                ):
                    raise ConnectionLost(self.closed_event.reason)
                return False
            self._raise_failure()
            self.do_handshake()
            if self._rbuf:
                break
            self._read_more()
        return True

    def recv(self, bufsize: int = READ_SIZE, flags: int = 0) -> bytes:
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        if bufsize <= 0 or not self._fill():
            return b""
        return self._rbuf.read(bufsize)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        view = memoryview(buffer).cast("B")
        n = nbytes or len(view)
        if n <= 0 or not self._fill():
            return 0
        return self._rbuf.read_into(view, n)

    def read(self, n: int = READ_SIZE) -> bytes:
        return self.recv(n)

    def pending(self) -> int:
        return len(self._rbuf)

    # -- writing ------------------------------------------------------------

    def _flush(self) -> None:
        records = self.conn.records_to_send()
        if records:
            self._socket().sendall(b"".join(records) if len(records) > 1 else records[0])

    def send(self, data, flags: int = 0) -> int:
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        self._raise_failure()
        self.do_handshake()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), SEND_CHUNK):
            self.conn.send(view[start : start + SEND_CHUNK])
            self._flush()
        return len(view)

    sendall = send
    write = send

    def key_update(self, request_peer: bool = False) -> None:
        """Send KeyUpdate (request_peer: ask the peer to update too)."""
        self.conn.key_update(request_peer)
        self._flush()

    def send_session_ticket(self) -> None:
        self.conn.send_session_ticket(now=time.time())
        self._flush()

    # -- closing ------------------------------------------------------------

    def unwrap(self) -> socket.socket:
        """close_notify both ways; returns the plain TCP socket (§6.1)."""
        if self._kernel is not None:
            raise UsageError("a kTLS socket cannot be unwrapped")
        self.conn.close()
        self._flush()
        while not self._eof:
            self._read_more()
        sock, self._sock = self._socket(), None
        return sock

    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and self.completed is not None:
            self._close_notify()
        self._socket().shutdown(how)

    def _close_notify(self) -> None:
        if self.conn.failure is None and not self.conn.record.write_closed:
            self.conn.close()
            try:
                self._flush()
            except OSError:
                pass

    def close(self) -> None:
        """Send close_notify when the connection is up, then close the socket."""
        if self._sock is None:
            return
        if self.completed is not None:
            self._close_notify()
        else:
            try:
                self._flush()  # a pending alert
            except OSError:
                pass
        self._sock.close()
        self._sock = None

    def detach(self) -> socket.socket:
        sock, self._sock = self._socket(), None
        return sock

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what was negotiated (ssl.SSLSocket names) ----------------------------

    def selected_alpn_protocol(self) -> str | None:
        return self.conn.alpn_protocol if self.completed else None

    def version(self) -> str | None:
        return VERSION_NAME if self.completed else None

    def cipher(self) -> tuple[str, str, int] | None:
        return cipher_tuple(self.conn.cipher_suite) if self.completed else None

    @property
    def session_reused(self) -> bool:
        return bool(self.completed and self.completed.resumed)

    @property
    def early_data_accepted(self) -> bool:
        return bool(self.completed and self.completed.early_data_accepted)

    def peer_certificates(self) -> list:
        """The peer's chain (cryptography x509 objects, leaf first): the
        verified path when the peer was verified."""
        return list(self.conn.peer_certificates)

    def getpeercert(self, binary_form: bool = False):
        if self.completed is None:
            raise ValueError("handshake not done yet")
        chain = self.conn.peer_certificates
        if not chain:
            return None
        if binary_form:
            from cryptography.hazmat.primitives.serialization import Encoding

            return chain[0].public_bytes(Encoding.DER)
        return certificate_dict(chain[0])

    def export_keying_material(self, label: bytes | str, context: bytes = b"", length: int = 32) -> bytes:
        return self.conn.export_keying_material(label, context, length)

    # -- socket plumbing ---------------------------------------------------------

    def fileno(self) -> int:
        return self._socket().fileno()

    def settimeout(self, value: float | None) -> None:
        self._socket().settimeout(value)

    def gettimeout(self) -> float | None:
        return self._socket().gettimeout()

    def setblocking(self, flag: bool) -> None:
        if not flag:
            raise UsageError("TLSSocket is blocking; use tls.tcp.open_connection for asyncio")
        self._socket().setblocking(True)

    def getpeername(self):
        return self._socket().getpeername()

    def getsockname(self):
        return self._socket().getsockname()

    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding=None, errors=None, newline=None):
        """A file object over the TLS stream, as socket.makefile()."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b)")
        reading, writing = "r" in mode, "w" in mode
        if not (reading or writing):
            raise ValueError("mode must include r or w")
        raw = _TLSRawIO(self, reading, writing)
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if "b" not in mode:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buffer: Any = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = io.BufferedWriter(raw, buffering)
        if "b" in mode:
            return buffer
        text = io.TextIOWrapper(buffer, encoding, errors, newline)
        text.mode = mode
        return text


class _TLSRawIO(io.RawIOBase):
    def __init__(self, tls: TLSSocket, reading: bool, writing: bool) -> None:
        self._tls, self._reading, self._writing = tls, reading, writing

    def readable(self) -> bool:
        return self._reading

    def writable(self) -> bool:
        return self._writing

    def readinto(self, b) -> int:
        return self._tls.recv_into(b)

    def write(self, b) -> int:
        return self._tls.send(b)


def wrap_socket(
    sock: socket.socket, config: Config, server_side: bool = False, *, do_handshake_on_connect: bool = True, **options: Any
) -> TLSSocket:
    """Wrap a connected TCP socket (ssl.SSLContext.wrap_socket's shape)."""
    return TLSSocket(sock, config, server_side, do_handshake_on_connect=do_handshake_on_connect, **options)


def create_connection(address, config: Config, timeout: float | None = 30.0, **options: Any) -> TLSSocket:
    sock = socket.create_connection(address, timeout=timeout)
    try:
        return wrap_socket(sock, config, **options)
    except BaseException:
        sock.close()
        raise


# ---------------------------------------------------------------------------
# asyncio


class _TLSTransport(asyncio.Transport):
    """What the application protocol (e.g. asyncio's StreamReaderProtocol)
    sees: writes go through TLS, flow control is the TCP transport's."""

    def __init__(self, proto: _TLSProtocol) -> None:
        super().__init__()
        self._proto = proto
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._proto.extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._proto.raw_closing()

    def close(self) -> None:
        self._closing = True
        self._proto.close_tls()

    def abort(self) -> None:
        self._closing = True
        self._proto.abort()

    def write(self, data) -> None:
        self._proto.write_app(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """close_notify: TLS 1.3 closes each direction on its own (§6.1)."""
        self._proto.close_notify()

    def pause_reading(self) -> None:
        self._proto.raw.pause_reading()

    def resume_reading(self) -> None:
        self._proto.raw.resume_reading()

    def is_reading(self) -> bool:
        return self._proto.raw.is_reading()

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self._proto.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._proto.raw.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._proto.raw.get_write_buffer_limits()

    def set_protocol(self, protocol) -> None:
        self._proto.app = protocol

    def get_protocol(self):
        return self._proto.app


class _TLSProtocol(asyncio.Protocol):
    """Drives a TLSConnection over an asyncio TCP transport."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: asyncio.Protocol,
        config: Config,
        server_side: bool,
        waiter: asyncio.Future | None,
        handshake_timeout: float,
        connection_options: dict,
    ) -> None:
        self.loop = loop
        self.app = app
        self.config = config
        self.server_side = server_side
        self.waiter = waiter
        self.handshake_timeout = handshake_timeout
        self.conn = TLSConnection(config, not server_side, now=time.time, **connection_options)
        self.raw: asyncio.Transport = None  # type: ignore[assignment]
        self.app_transport = _TLSTransport(self)
        self._app_connected = False
        self._eof_delivered = False
        self._timer: asyncio.TimerHandle | None = None
        self.completed: HandshakeCompleted | None = None
        self.tickets: list[Any] = []

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.raw = transport
        self._timer = self.loop.call_later(self.handshake_timeout, self._handshake_timed_out)
        if not self.server_side:
            self.conn.start(now=time.time())
        self._pump()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data, now=time.time())
        self._pump()

    def eof_received(self) -> bool:
        self.conn.receive_eof()
        self._pump()
        return True  # we decide when to close (after the app's own close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        failure = self.conn.failure
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(failure or exc or ConnectionResetError("connection lost during the TLS handshake"))
        if self._app_connected:
            self._app_connected = False
            self.app.connection_lost(exc or (failure if failure and not isinstance(failure, ConnectionLost) else None))

    def pause_writing(self) -> None:
        if self._app_connected:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self._app_connected:
            self.app.resume_writing()

    # -- the engine room ----------------------------------------------------------

    def _pump(self) -> None:
        out = self.conn.data_to_send()
        if out and not self.raw.is_closing():
            self.raw.write(out)
        while (event := self.conn.next_event()) is not None:
            kind = type(event)
            if kind is DataReceived:
                if self._app_connected:
                    self.app.data_received(event.data)
            elif kind is HandshakeCompleted:
                self._handshake_done(event)
            elif kind is TicketReceived:
                self.tickets.append(event.ticket)
            elif kind is ConnectionClosed:
                self._closed(event)
        out = self.conn.data_to_send()
        if out and not self.raw.is_closing():
            self.raw.write(out)

    def _handshake_done(self, event: HandshakeCompleted) -> None:
        self.completed = event
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._app_connected = True
        self.app.connection_made(self.app_transport)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _closed(self, event: ConnectionClosed) -> None:
        if event.clean and event.by_peer or (event.by_peer and event.alert is None and self.completed):
            # The peer finished sending: EOF for the application.
            if self._app_connected and not self._eof_delivered:
                self._eof_delivered = True
                keep_open = self.app.eof_received()
                if not keep_open:
                    self.close_tls()
            elif not self._app_connected:
                self.raw.close()
            return
        # An error alert, either way: the connection is over.
        if not self._app_connected:
            logger.debug("TLS handshake failed: %s", event.reason)
        out = self.conn.data_to_send()
        if out and not self.raw.is_closing():
            self.raw.write(out)
        self.raw.close()

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if self.completed is None:
            self.conn.abort(reason="TLS handshake timed out")
            self._pump()
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(TimeoutError("TLS handshake timed out"))
            self.raw.close()

    # -- for the transport -----------------------------------------------------

    def write_app(self, data) -> None:
        if self.conn.failure is not None:
            raise self.conn.failure
        self.conn.send(data)
        out = self.conn.data_to_send()
        if out:
            self.raw.write(out)

    def close_notify(self) -> None:
        self.conn.close()
        out = self.conn.data_to_send()
        if out and not self.raw.is_closing():
            self.raw.write(out)

    def close_tls(self) -> None:
        self.close_notify()
        if not self.raw.is_closing():
            self.raw.close()

    def abort(self) -> None:
        self.raw.abort()

    def raw_closing(self) -> bool:
        return self.raw is None or self.raw.is_closing()

    def extra_info(self, name: str, default: Any = None) -> Any:
        conn = self.conn
        if name == "tls_connection":
            return conn
        if name == "peercert":
            chain = conn.peer_certificates
            return certificate_dict(chain[0]) if chain else None
        if name == "peer_certificates":
            return list(conn.peer_certificates)
        if name == "cipher":
            return cipher_tuple(conn.cipher_suite) if self.completed else None
        if name in ("alpn_protocol", "selected_alpn_protocol"):
            return conn.alpn_protocol
        if name == "tls_version":
            return VERSION_NAME if self.completed else None
        if name == "tickets":
            return list(self.tickets)
        if self.raw is not None:
            return self.raw.get_extra_info(name, default)
        return default


async def open_connection(
    host: str | None = None,
    port: int | None = None,
    *,
    config: Config,
    limit: int = 2**16,
    handshake_timeout: float = 60.0,
    connection_options: dict | None = None,
    **kwargs: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio.open_connection over our TLS: returns once the handshake is
    complete (raising the TLSError if it fails)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    app = asyncio.StreamReaderProtocol(reader, loop=loop)
    waiter = loop.create_future()
    options = dict(connection_options or {})
    _raw, proto = await loop.create_connection(
        lambda: _TLSProtocol(loop, app, config, False, waiter, handshake_timeout, options), host, port, **kwargs
    )
    try:
        await waiter
    except BaseException:
        _raw.close()
        raise
    writer = asyncio.StreamWriter(proto.app_transport, app, reader, loop)
    return reader, writer


async def start_server(
    client_connected_cb,
    host: str | None = None,
    port: int | None = None,
    *,
    config: Config,
    limit: int = 2**16,
    handshake_timeout: float = 60.0,
    connection_options: dict | None = None,
    **kwargs: Any,
) -> asyncio.Server:
    """asyncio.start_server over our TLS: client_connected_cb(reader, writer)
    runs once a client's handshake is complete."""
    loop = asyncio.get_running_loop()
    options = dict(connection_options or {})

    def factory() -> _TLSProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        app = asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)
        return _TLSProtocol(loop, app, config, True, None, handshake_timeout, options)

    return await loop.create_server(factory, host, port, **kwargs)


__all__ = [
    "TLSSocket",
    "wrap_socket",
    "create_connection",
    "open_connection",
    "start_server",
    "certificate_dict",
    "TLSError",
]
