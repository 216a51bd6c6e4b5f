# hq-interop (HTTP/0.9 over QUIC) on the event loop, both roles, on the
# plain stream API of protocol.py (a StreamReader/StreamWriter per stream).
# Owns:
#   - the server's stream handler (hq_stream_handler): read one request
#     (bounded by pyquic.hq.MAX_REQUEST_LINE), find the file under the
#     served root (a directory's index.html; refusing symbolic links that
#     lead out of it), stream it in
#     CHUNK_SIZE reads with writer.drain() between them (a slow client holds
#     one chunk of ours plus the stream's send buffer, never the whole file),
#     reset the stream when the file is missing or the request is bad, and
#     write one access-log record per request;
#   - serve_hq(): serve() with that handler and ALPN "hq-interop";
#   - the client (connect_hq() -> HqClient): get() into memory (capped),
#     download() to a file (streamed), any number at once;
#   - turning a reset stream into HqStreamError.
# The request codec and the path rules are pyquic/hq (sans-I/O).
from __future__ import annotations

import asyncio
import logging
import os
import stat
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, AsyncIterator, Callable, Optional, Union

from ..config import QuicConfiguration
from ..hq import (
    ALPN,
    HQ_ERROR,
    MAX_REQUEST_LINE,
    HqError,
    HqRequest,
    RequestParser,
    encode_request,
    resolve_path,
)
from .client import connect
from .protocol import ConnectionTerminatedError, QuicConnectionProtocol, StreamResetError
from .server import QuicServer, serve

__all__ = [
    "ALPN",
    "CHUNK_SIZE",
    "HqAccessRecord",
    "HqClient",
    "HqProtocolError",
    "HqResponseTooLarge",
    "HqStreamError",
    "connect_hq",
    "hq_stream_handler",
    "serve_hq",
]

logger = logging.getLogger("pyquic.asyncio.hq")

# File reads and stream reads, in bytes: one chunk is what a request holds
# in memory beyond the stream's send buffer (protocol.STREAM_WRITE_HIGH).
CHUNK_SIZE = 64 * 1024
# get() keeps the whole response in memory: past this it gives up (the
# server is told to stop); download() has no cap, it writes to a file.
MAX_GET_SIZE = 256 << 20

AccessLog = Callable[["HqAccessRecord"], Any]
Progress = Callable[[int], Any]


# --- errors seen by the client ----------------------------------------------------------------


class HqProtocolError(Exception):
    """Base of the hq client's errors."""


class HqStreamError(HqProtocolError, ConnectionResetError):
    """The server reset the request's stream: the file is missing, the path
    was refused or the request was malformed (hq-interop cannot say which)."""

    def __init__(self, path: str, error_code: int, stream_id: int) -> None:
        super().__init__(f"GET {path}: the server reset stream {stream_id} with error code {error_code:#x} "
                         "(missing file, refused path or bad request)")
        self.path = path
        self.error_code = error_code
        self.stream_id = stream_id


class HqResponseTooLarge(HqProtocolError):
    def __init__(self, path: str, limit: int) -> None:
        super().__init__(f"GET {path}: response larger than {limit} bytes (use download() for big files)")
        self.path = path
        self.limit = limit


# --- server ------------------------------------------------------------------------------------


@dataclass
class HqAccessRecord:
    """One served request, given to the access-log callback when it ends.
    status: "200" (file sent with FIN), "404" (no such file), "400" /
    "414" (bad or over-long request, stream reset), "499" (the client
    stopped the stream or the connection ended mid-file), "500" (reading
    the file failed)."""

    method: str
    path: str
    status: str
    bytes: int
    duration: float
    stream_id: int
    peer: Any = None
    error: Optional[str] = None


def _default_log(record: HqAccessRecord) -> None:
    logger.info("%s %s %s %s %d %.3fs%s", record.peer, record.method, record.path, record.status, record.bytes,
                record.duration, f" ({record.error})" if record.error else "")


class _Refused(Exception):
    """A request answered with a reset (status for the log, reason)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _inside(root_real: str, candidate: str) -> bool:
    return candidate == root_real or candidate.startswith(root_real.rstrip(os.sep) + os.sep)


def hq_stream_handler(
    root: Union[str, Path],
    *,
    log: Optional[AccessLog] = None,
    chunk_size: int = CHUNK_SIZE,
    max_request_line: int = MAX_REQUEST_LINE,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    """A stream_handler for pyquic.asyncio.serve() (or serve_h3()'s
    hq-interop fallback) that serves the files under ``root``.  ``log`` is
    called with an HqAccessRecord per request (default: the
    "pyquic.asyncio.hq" logger at INFO)."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise ValueError(f"hq root {root_path} is not a directory")
    root_real = os.path.realpath(root_path)
    access_log: AccessLog = log if log is not None else _default_log

    def open_file(request: HqRequest) -> IO[bytes]:
        target = resolve_path(Path(root_real), request.path)
        # The spelling stays under root (resolve_path); a symbolic link could
        # still lead out, so the real path must be under root's real path too.
        real = os.path.realpath(target)
        if os.path.isdir(real):  # a directory is served by its index.html
            real = os.path.realpath(os.path.join(real, "index.html"))
        if not _inside(root_real, real):
            raise _Refused("404", "path leads out of the root")
        try:
            # O_NONBLOCK: opening a FIFO someone put in the root must not hang the loop.
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _Refused("404", exc.strerror or "cannot open") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _Refused("404", "not a regular file")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        stream_id = writer.get_extra_info("stream_id")
        protocol: QuicConnectionProtocol = writer.get_extra_info("connection")
        peer = getattr(protocol.quic, "peer_address", None) if protocol is not None else None
        if stream_id & 3 != 0:
            # hq-interop uses client bidirectional streams only: refuse the
            # rest without reading them (reading would return their credit).
            if stream_id & 2:
                _stop(protocol, stream_id)
            return
        record = HqAccessRecord(method="-", path="-", status="400", bytes=0, duration=0.0,
                                stream_id=stream_id, peer=peer)
        try:
            request = await _read_request(reader, max_request_line)
            record.method, record.path = request.method, request.path
            with open_file(request) as f:
                record.status = "200"
                while chunk := f.read(chunk_size):
                    writer.write(chunk)
                    record.bytes += len(chunk)
                    await writer.drain()
            writer.write_eof()
        except (HqError, _Refused) as exc:
            record.status = exc.status
            record.error = str(exc)
            _refuse(writer, protocol, stream_id)
        except (StreamResetError, ConnectionError) as exc:
            # The client stopped us, reset its side, or the connection ended.
            record.status = "499"
            record.error = str(exc)
            _refuse(writer, protocol, stream_id)
        except OSError as exc:  # the file went bad while being read
            record.status = "500"
            record.error = exc.strerror or str(exc)
            _refuse(writer, protocol, stream_id)
        finally:
            record.duration = loop.time() - start
            try:
                access_log(record)
            except Exception:
                logger.exception("hq access log callback failed")

    return handler


async def _read_request(reader: asyncio.StreamReader, max_request_line: int) -> HqRequest:
    parser = RequestParser(max_request_line)
    while True:
        data = await reader.read(parser.wanted())
        request = parser.feed(data, end_stream=not data)
        if request is not None:
            return request


def _refuse(writer: asyncio.StreamWriter, protocol: Any, stream_id: int) -> None:
    """Reset our side and ask the client to stop sending (a long request
    must not keep coming); either may find the stream or the connection
    already gone, which is fine."""
    try:
        writer.transport.abort(HQ_ERROR)  # type: ignore[call-arg]  # QuicStreamAdapter.abort(code)
    except Exception:
        pass
    _stop(protocol, stream_id)


def _stop(protocol: Any, stream_id: int) -> None:
    if protocol is None:
        return
    try:
        protocol.stop_sending(stream_id, HQ_ERROR)
    except Exception:
        pass


async def serve_hq(
    host: str,
    port: int,
    *,
    configuration: QuicConfiguration,
    root: Union[str, Path],
    log: Optional[AccessLog] = None,
    chunk_size: int = CHUNK_SIZE,
    max_request_line: int = MAX_REQUEST_LINE,
    **serve_kwargs: Any,
) -> QuicServer:
    """Serve the files under ``root`` over hq-interop.  ALPN defaults to
    ["hq-interop"]; other keyword arguments go to pyquic.asyncio.serve."""
    _use_alpn(configuration)
    handler = hq_stream_handler(root, log=log, chunk_size=chunk_size, max_request_line=max_request_line)
    return await serve(host, port, configuration=configuration, stream_handler=handler, **serve_kwargs)


def _use_alpn(configuration: QuicConfiguration) -> None:
    if not configuration.alpn_protocols:
        configuration.alpn_protocols = [ALPN]
        if hasattr(configuration, "invalidate"):
            configuration.invalidate()
    elif ALPN not in configuration.alpn_protocols:
        raise ValueError(f"alpn_protocols {configuration.alpn_protocols} lack {ALPN!r}")


# --- client ------------------------------------------------------------------------------------


class HqClient:
    """Requests over one hq-interop connection; each runs on its own stream,
    so any number may run at once (asyncio.gather)."""

    def __init__(self, protocol: QuicConnectionProtocol, *, max_get_size: int = MAX_GET_SIZE,
                 chunk_size: int = CHUNK_SIZE) -> None:
        self.protocol = protocol
        self.max_get_size = max_get_size
        self.chunk_size = chunk_size

    async def get(self, path: str) -> bytes:
        """The file at ``path`` (at most max_get_size bytes). Raises
        HqStreamError if the server resets the stream."""
        parts: list[bytes] = []
        size = 0

        def keep(chunk: bytes) -> None:
            nonlocal size
            size += len(chunk)
            if size > self.max_get_size:
                raise HqResponseTooLarge(path, self.max_get_size)
            parts.append(chunk)

        await self._fetch(path, keep, None)
        return b"".join(parts)

    async def download(self, path: str, dest: Union[str, os.PathLike, IO[bytes]],
                       progress: Optional[Progress] = None) -> int:
        """Stream the file at ``path`` into ``dest`` (a path, created or
        truncated, or a binary file object); returns the byte count.
        ``progress(received_so_far)`` is called after every chunk.  A file
        this call created is removed if the transfer fails."""
        if hasattr(dest, "write"):
            return await self._fetch(path, dest.write, progress)  # type: ignore[union-attr]
        dest_path = Path(dest)  # type: ignore[arg-type]
        # Writes are plain blocking writes of CHUNK_SIZE: to a local file they
        # are short next to a chunk's network time, and a thread per chunk
        # would cost more than it saves.
        with open(dest_path, "wb") as f:
            try:
                return await self._fetch(path, f.write, progress)
            except BaseException:
                f.close()
                try:
                    dest_path.unlink()
                except OSError:
                    pass
                raise

    async def _fetch(self, path: str, sink: Callable[[bytes], Any], progress: Optional[Progress]) -> int:
        request = encode_request(path)  # HqUsageError before anything is sent
        reader, writer = await self.protocol.create_stream()
        stream_id = writer.get_extra_info("stream_id")
        writer.write(request)
        writer.write_eof()
        received = 0
        try:
            while chunk := await reader.read(self.chunk_size):
                sink(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(received)
        except StreamResetError as exc:
            raise HqStreamError(path, exc.error_code, stream_id) from None
        except ConnectionTerminatedError:
            raise
        except BaseException:
            # Cancelled, the sink failed, too large: the server need not go on.
            if not reader.at_eof():
                try:
                    self.protocol.stop_sending(stream_id, HQ_ERROR)
                except Exception:
                    pass
            raise
        return received

    async def close(self) -> None:
        self.protocol.close()
        await self.protocol.wait_closed()


@asynccontextmanager
async def connect_hq(
    host: str,
    port: int,
    *,
    configuration: Optional[QuicConfiguration] = None,
    max_get_size: int = MAX_GET_SIZE,
    **connect_kwargs: Any,
) -> AsyncIterator[HqClient]:
    """Open an hq-interop connection; yields an HqClient.  ALPN defaults to
    ["hq-interop"]; a configuration listing other protocols must list it
    too, and the connection fails unless the server picks it.  Other keyword
    arguments go to pyquic.asyncio.connect."""
    if configuration is None:
        configuration = QuicConfiguration(is_client=True)
    _use_alpn(configuration)
    async with connect(host, port, configuration=configuration, **connect_kwargs) as protocol:
        if connect_kwargs.get("wait_connected", True):
            negotiated = protocol.quic.alpn_protocol
            if negotiated != ALPN:
                protocol.close(error_code=0, reason_phrase="wrong ALPN")
                raise HqProtocolError(f"the server chose ALPN {negotiated!r}, not {ALPN!r}")
        yield HqClient(protocol, max_get_size=max_get_size)
