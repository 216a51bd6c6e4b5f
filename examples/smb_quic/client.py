# smbprotocol straight over QUIC: no TCP anywhere on the client.  smbprotocol
# is a threaded, blocking client whose Direct-TCP transport (smbprotocol.
# transport.Tcp) has a small interface -- connect(), send(message),
# recv(timeout) -> message, close(), `connected` -- and whose Connection
# builds it in connect() with `self.transport = Tcp(server, port, timeout)`.
# Owns QuicTransport, that interface on one pyquic stream (a private event
# loop in a thread drives the QUIC connection; the caller's threads block on
# it), SmbQuicConnection, a Connection subclass whose `transport` attribute
# puts a QuicTransport where smbprotocol assigns its Tcp, and
# register_session(), which puts such a connection in smbclient's pool so
# that smbclient.open_file, listdir, mkdir, remove... run over QUIC.
#
#   cache = {}
#   register_session("files.example.com", "alice", "pw", port=443,
#                    configuration=client_configuration("files.example.com", cafile="ca.pem"),
#                    connection_cache=cache)
#   with smbclient.open_file(r"\\files.example.com\share\a.txt", port=443, connection_cache=cache) as f: ...
from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from typing import Any, Optional

import smbclient
from smbclient._pool import ClientConfig
from smbprotocol.connection import Connection
from smbprotocol.transport import Tcp

from pyquic.asyncio import connect
from pyquic.config import QuicConfiguration

__all__ = ["QuicTransport", "SmbQuicConnection", "register_session"]

MAX_MESSAGE = 0xFFFFFF  # the Direct-TCP length field is 24 bits (MS-SMB2 §2.1)
CONNECT_TIMEOUT = 30.0


class QuicTransport:
    """smbprotocol's transport interface on one bidirectional QUIC stream to
    ``address`` (host, port), with the same framing as Direct TCP."""

    MAX_SIZE = MAX_MESSAGE

    def __init__(self, address: tuple[str, int], configuration: QuicConfiguration,
                 timeout: Optional[float] = None, keepalive: Optional[float] = 15.0) -> None:
        self.address = address
        self.configuration = configuration
        self.timeout = timeout or CONNECT_TIMEOUT
        self.keepalive = keepalive
        self.connected = False
        self.protocol: Any = None  # the pyquic connection, for those who want to look (peer certificate...)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stack: Optional[contextlib.AsyncExitStack] = None
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._send_lock = threading.Lock()
        self._close_lock = threading.Lock()

    def _run(self, coro: Any, timeout: Optional[float] = None) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def connect(self) -> None:
        if self.connected:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"smb-quic {self.address[0]}",
                                        daemon=True)
        self._thread.start()
        try:
            self._run(self._open(), self.timeout + 5)
        except BaseException as exc:
            self._stop_loop()
            raise ValueError(f"Failed to connect to '{self.address[0]}:{self.address[1]}' over QUIC: {exc!r}") from exc
        self.connected = True

    async def _open(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self.protocol = await asyncio.wait_for(
            self._stack.enter_async_context(connect(*self.address, configuration=self.configuration)), self.timeout)
        if self.keepalive:
            self.protocol.keep_alive(self.keepalive)
        self._reader, self._writer = await self.protocol.create_stream()

    def send(self, message: bytes) -> None:
        if len(message) > MAX_MESSAGE:
            raise ValueError(f"SMB message of {len(message)} bytes exceeds the {MAX_MESSAGE}-byte frame limit")
        with self._send_lock:
            if not self.connected:
                raise ConnectionError("the SMB over QUIC connection is closed")
            self._run(self._send(struct.pack(">L", len(message)) + message))

    async def _send(self, frame: bytes) -> None:
        assert self._writer is not None
        self._writer.write(frame)
        await self._writer.drain()

    def recv(self, timeout: float) -> bytes:
        """The next SMB message; b"" once the connection is gone (as Tcp
        does); TimeoutError when nothing came for ``timeout`` seconds."""
        if not self.connected:
            return b""
        try:
            return self._run(self._recv(timeout))
        except asyncio.TimeoutError:
            raise TimeoutError(f"recv idle for {timeout:.1f}s") from None
        except (ConnectionError, asyncio.IncompleteReadError, RuntimeError):
            self.close()
            return b""

    async def _recv(self, timeout: float) -> bytes:
        assert self._reader is not None
        # Cancelling readexactly while it waits consumes nothing: safe to time out.
        header = await asyncio.wait_for(self._reader.readexactly(4), max(timeout, 1))
        (length,) = struct.unpack(">L", header)
        if length > MAX_MESSAGE:  # the first byte of Direct-TCP framing is zero
            raise ConnectionError(f"bad SMB frame header {header.hex()}")
        return await self._reader.readexactly(length)

    def close(self) -> None:
        with self._close_lock:
            if not self.connected:
                return
            self.connected = False
            try:
                self._run(self._close(), CONNECT_TIMEOUT)
            except Exception:
                pass  # closing a connection that already died
            self._stop_loop()

    async def _close(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write_eof()
        if self._stack is not None:
            await self._stack.aclose()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
            loop.close()


class SmbQuicConnection(Connection):
    """smbprotocol's Connection over QUIC.  smbprotocol's connect() assigns
    ``self.transport = Tcp(...)``; the property below takes that assignment
    and installs a QuicTransport to ``address`` instead -- the one place
    smbprotocol had to be adapted."""

    def __init__(self, guid: Any, server_name: str, port: int = 443, require_signing: bool = True, *,
                 configuration: QuicConfiguration, address: Optional[tuple[str, int]] = None) -> None:
        self._quic_configuration = configuration
        self._quic_address = address or (server_name, port)
        self._transport: Any = None
        super().__init__(guid, server_name, port, require_signing)

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        if isinstance(value, Tcp):
            value = QuicTransport(self._quic_address, self._quic_configuration, timeout=value.timeout)
        self._transport = value


def register_session(server: str, username: Optional[str] = None, password: Optional[str] = None, *,
                     port: int = 443, configuration: QuicConfiguration, address: Optional[tuple[str, int]] = None,
                     connection_cache: Optional[dict] = None, connection_timeout: float = 60,
                     encrypt: Optional[bool] = None, require_signing: bool = True, **kwargs: Any) -> Any:
    """smbclient.register_session over QUIC: the connection for
    ``server``:``port`` in ``connection_cache`` (smbclient's pool key) is an
    SmbQuicConnection, so every smbclient call given the same ``port`` and
    ``connection_cache`` goes over QUIC.  ``address`` is where to send the
    QUIC packets when it is not ``server``:``port``."""
    cache = smbclient._pool._SMB_CONNECTIONS if connection_cache is None else connection_cache
    key = f"{server.lower()}:{port}"
    connection = cache.get(key)
    if connection is None or not connection.transport.connected:
        connection = SmbQuicConnection(ClientConfig().client_guid, server, port, require_signing,
                                       configuration=configuration, address=address)
        connection.connect(timeout=connection_timeout)
        cache[key] = connection
    return smbclient.register_session(server, username, password, port=port, encrypt=encrypt,
                                      connection_cache=cache, require_signing=require_signing, **kwargs)
