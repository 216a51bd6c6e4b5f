# hq-interop: HTTP/0.9 over QUIC as the QUIC interop runner uses it, sans-I/O.
# This package owns the request codec and the path rules, nothing else:
#   - the request: "GET /path\r\n" on a client-opened bidirectional stream,
#     then FIN; the answer is the file's bytes then FIN, or a reset stream
#     (hq-interop has no status line and no error codes of its own);
#   - encoding a request (client side) and parsing one incrementally
#     (server side) with a cap on its length (MAX_REQUEST_LINE), so a peer
#     that never ends its line cannot make us buffer without bound;
#   - turning a request path into path segments under a served root,
#     refusing what could escape it ("..").
# Reading files, streams, the event loop: pyquic/asyncio/hq.py.  Following
# symbolic links out of the root is checked there (it needs the file system).
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Optional

__all__ = [
    "ALPN",
    "MAX_REQUEST_LINE",
    "HQ_ERROR",
    "HqError",
    "HqRequestError",
    "HqRequestTooLong",
    "HqPathError",
    "HqUsageError",
    "HqRequest",
    "RequestParser",
    "encode_request",
    "parse_request_line",
    "path_segments",
    "resolve_path",
]

ALPN = "hq-interop"
# The longest request line accepted, its line ending included.  The server
# buffers at most this much of a request; a stream that sends more without
# ending its line is reset.
MAX_REQUEST_LINE = 8192
# The application error code of every stream reset / STOP_SENDING here:
# hq-interop defines no codes, so one generic code serves (missing file,
# malformed request, refused path, cancelled download).
HQ_ERROR = 0x1
METHODS = ("GET",)


class HqError(Exception):
    """Something the peer did wrong on one request stream: the stream is
    reset with ``error_code`` (the connection lives on)."""

    error_code = HQ_ERROR
    status = "400"  # for access logs: what an HTTP server would have answered

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HqRequestError(HqError):
    """A malformed request line (bad method, bad framing, not UTF-8, ...)."""


class HqRequestTooLong(HqRequestError):
    """More than the cap arrived without the request line ending."""

    status = "414"


class HqPathError(HqRequestError):
    """A request path that is not absolute or could leave the served root."""


class HqUsageError(ValueError):
    """The caller asked for something hq-interop cannot carry (a client-side
    mistake, not the peer's)."""


@dataclass(frozen=True)
class HqRequest:
    method: str
    path: str


def _check_text(text: str, what: str) -> None:
    # Control characters (NUL, CR, LF, DEL, ...) and spaces would change the
    # framing of the line or smuggle something past a file system call.
    for ch in text:
        if ch <= " " or ch == "\x7f":
            raise HqRequestError(f"{what} contains a control character or a space: {text!r}")


def encode_request(path: str, method: str = "GET") -> bytes:
    """The request bytes a client sends before its FIN."""
    if method not in METHODS:
        raise HqUsageError(f"hq-interop has only GET, not {method!r}")
    if not path.startswith("/"):
        raise HqUsageError(f"an hq-interop path starts with '/': {path!r}")
    try:
        _check_text(path, "path")
    except HqRequestError as exc:
        raise HqUsageError(str(exc)) from None
    line = f"{method} {path}\r\n".encode("utf-8")
    if len(line) > MAX_REQUEST_LINE:
        raise HqUsageError(f"request line of {len(line)} bytes is over MAX_REQUEST_LINE ({MAX_REQUEST_LINE})")
    return line


def parse_request_line(line: bytes) -> HqRequest:
    """One request line, its ending ("\\r\\n" or "\\n") already removed.
    Raises HqRequestError (the server then resets the stream)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise HqRequestError("request line is not UTF-8") from None
    parts = text.split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise HqRequestError(f"request line is not 'METHOD /path': {text[:200]!r}")
    method, path = parts
    if method not in METHODS:
        raise HqRequestError(f"method {method[:20]!r} is not supported")
    _check_text(path, "path")
    if not path.startswith("/"):
        raise HqPathError(f"path does not start with '/': {path[:200]!r}")
    return HqRequest(method, path)


class RequestParser:
    """Incremental parser of one request stream's bytes.

    ``feed(data, end_stream)`` returns the HqRequest once the line has ended
    (at its line ending, or at FIN for a client that sends no line ending),
    None while more is needed, and raises HqRequestError / HqRequestTooLong.
    Bytes after the line ending are not part of any request and are ignored.
    At most ``max_request_line`` + 1 bytes are ever held.
    """

    __slots__ = ("max_request_line", "_buf", "request")

    def __init__(self, max_request_line: int = MAX_REQUEST_LINE) -> None:
        if max_request_line < len("GET /\n"):
            raise ValueError("max_request_line too small for any request")
        self.max_request_line = max_request_line
        self._buf = bytearray()
        self.request: Optional[HqRequest] = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def wanted(self) -> int:
        """How many more bytes could still complete the line (a reader's read
        size: never more than the cap plus the one that proves it exceeded)."""
        return max(1, self.max_request_line + 1 - len(self._buf))

    def feed(self, data: bytes, end_stream: bool = False) -> Optional[HqRequest]:
        if self.request is not None:
            return self.request
        cap = self.max_request_line
        start = len(self._buf)
        # What lies past cap + 1 cannot hold a line ending that keeps the line
        # within the cap: never keep it.
        self._buf += data[: cap + 1 - start]
        newline = self._buf.find(b"\n", max(0, start))
        if newline >= 0:
            if newline + 1 > cap:
                raise HqRequestTooLong(f"request line longer than {cap} bytes")
            line = bytes(self._buf[:newline])
            if line.endswith(b"\r"):
                line = line[:-1]
            self._buf.clear()
            self.request = parse_request_line(line)
            return self.request
        if len(self._buf) > cap:
            raise HqRequestTooLong(f"request line longer than {cap} bytes without an end")
        if end_stream:
            if not self._buf:
                raise HqRequestError("stream ended without a request")
            line = bytes(self._buf)
            self._buf.clear()
            self.request = parse_request_line(line)
            return self.request
        return None


def path_segments(path: str) -> tuple[str, ...]:
    """The request path as file-system segments below the root.  Empty and
    "." segments are dropped; ".." anywhere is refused (HqPathError) rather
    than resolved, so no request names anything outside the root by its
    spelling.  The path is taken as it is: no percent-decoding (so "%2e%2e"
    is a file of that name, not a parent)."""
    if not path.startswith("/"):
        raise HqPathError(f"path does not start with '/': {path[:200]!r}")
    segments = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise HqPathError(f"'..' in path {path[:200]!r}")
        if "\\" in segment or "\x00" in segment:
            raise HqPathError(f"path segment {segment[:100]!r} has a backslash or NUL")
        segments.append(segment)
    return tuple(segments)


def resolve_path(root: PurePath, path: str) -> PurePath:
    """The file a request path names below ``root`` (lexically: no ".." and
    no absolute segment can take it out of root).  Raises HqPathError."""
    return root.joinpath(*path_segments(path))
