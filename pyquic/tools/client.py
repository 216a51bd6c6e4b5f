# `python -m pyquic.client URL...`: fetch URLs over HTTP/3 (default) or
# hq-interop (--alpn hq-interop), in the manner of curl.  This module owns
# the command: its options, turning URLs into requests grouped by authority
# (one QUIC connection per host:port, its requests concurrent), where bodies
# go (stdout for one URL, files under --output DIR), the summary lines on
# stderr (the connection: ALPN, version, suite, group, resumption, 0-RTT;
# each request: status, bytes, seconds, MB/s), the session-ticket file of
# --resume, and the exit status (0: every request succeeded, 1: some did
# not, 2: usage).  The protocols themselves are pyquic.asyncio.h3 and
# pyquic.asyncio.hq; this file only drives them.
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Optional
from urllib.parse import unquote, urlsplit

from tls.enums import CipherSuite, Group

from ..config import QuicConfiguration
from ..versions import QUIC_V1, QUIC_V2
from .progress import Progress, Transfer

H3 = "h3"
HQ = "hq-interop"
DEFAULT_TIMEOUT = 30.0
# Requests in flight on one connection at once (the rest wait their turn);
# below the stream limit servers commonly grant (100+).
MAX_CONCURRENT_REQUESTS = 64
MIGRATE_AFTER_BYTES = 64 << 10  # --migrate moves once this much has arrived (or the requests are done)
TICKET_FILE_VERSION = 1


class UsageProblem(Exception):
    """Bad command line: one line on stderr, exit status 2."""


# -- the requests --------------------------------------------------------------------------------


@dataclass
class Request:
    url: str
    host: str
    port: int
    path: str  # path and query, as sent
    method: str = "GET"
    output: Optional[Path] = None  # None: stdout (one URL) or discarded
    to_stdout: bool = False
    # results
    status: Optional[int] = None
    received: int = 0
    seconds: float = 0.0
    ok: bool = False
    error: Optional[str] = None

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> Request:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise UsageProblem(f"{url}: only https:// URLs (QUIC is always TLS)")
    try:
        host, port = parts.hostname, parts.port or 443
    except ValueError as exc:
        raise UsageProblem(f"{url}: {exc}") from None
    if not host:
        raise UsageProblem(f"{url}: no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Request(url=url, host=host, port=port, path=path)


def output_name(path: str) -> str:
    """The file a URL's body is saved as: its path's last segment
    (index.html for a directory), never able to leave the output directory."""
    bare = path.split("?", 1)[0]
    name = unquote(bare.rsplit("/", 1)[-1]) if not bare.endswith("/") else ""
    name = name.replace("/", "_").replace("\\", "_").replace("\x00", "_")
    if name in ("", ".", ".."):
        name = "index.html"
    return name


def plan(args: argparse.Namespace) -> dict[tuple[str, int], list[Request]]:
    """URLs -> requests grouped by authority (insertion order kept)."""
    requests = [parse_url(url) for url in args.urls]
    method = (args.method or ("POST" if args.data is not None else "GET")).upper()
    if not re.fullmatch(r"[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*", method):
        raise UsageProblem(f"--method {args.method!r} is not an HTTP method token")
    if args.alpn == HQ and method != "GET":
        raise UsageProblem("hq-interop has only GET")
    used: dict[str, int] = {}
    for req in requests:
        req.method = method
        if args.output:
            name = output_name(req.path)
            if name in used:  # two URLs ending alike: keep both
                used[name] += 1
                stem, dot, ext = name.partition(".")
                name = f"{stem}.{used[name]}{dot}{ext}"
            else:
                used[name] = 0
            req.output = Path(args.output) / name
        elif len(requests) == 1:
            req.to_stdout = True
    groups: dict[tuple[str, int], list[Request]] = {}
    for req in requests:
        groups.setdefault((req.host, req.port), []).append(req)
    return groups


def parse_headers(items: list[str]) -> list[tuple[str, str]]:
    headers = []
    for item in items:
        name, sep, value = item.partition(":")
        name = name.strip().lower()
        if not sep or not re.fullmatch(r"[a-z0-9!#$%&'*+.^_`|~-]+", name):
            raise UsageProblem(f"-H {item!r}: expected 'name: value'")
        headers.append((name, value.strip()))
    return headers


def read_data(data: Optional[str]) -> Optional[bytes]:
    if data is None:
        return None
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise UsageProblem(f"--data {data}: {exc.strerror or exc}") from None
    return data.encode()


def parse_names(values: list[str], enum: Any, what: str) -> Optional[list[int]]:
    """Names as the TLS tools take them (x25519, secp256r1 / P-256,
    X25519MLKEM768, TLS_AES_128_GCM_SHA256 ...) or numbers."""
    if not values:
        return None
    aliases = {"P_256": "SECP256R1", "P_384": "SECP384R1"}
    out = []
    for value in values:
        for item in value.replace(",", ":").split(":"):
            key = item.strip().upper().replace("-", "_")
            key = aliases.get(key, key)
            if key.startswith("TLS_") and key[4:] in enum.__members__:
                key = key[4:]
            if key in enum.__members__:
                out.append(int(enum[key]))
                continue
            try:
                out.append(int(item, 0))
            except ValueError:
                names = ", ".join(("TLS_" if enum is CipherSuite else "") + n for n in enum.__members__)
                raise UsageProblem(f"unknown {what} {item!r} (known: {names})") from None
    return out


# -- session tickets on disk (--resume) -------------------------------------------------------------
# tls.Ticket has no serialized form of its own: these two functions store
# its public fields as JSON (bytes as hex), keyed by authority in the file.


def ticket_to_json(ticket: Any) -> dict:
    def hx(value: Optional[bytes]) -> Optional[str]:
        return None if value is None else bytes(value).hex()

    return {
        "server_name": ticket.server_name,
        "cipher_suite": ticket.cipher_suite,
        "psk": hx(ticket.psk),
        "ticket": hx(ticket.ticket),
        "age_add": ticket.age_add,
        "lifetime": ticket.lifetime,
        "received_at": ticket.received_at,
        "alpn": hx(ticket.alpn),
        "max_early_data": ticket.max_early_data,
        "transport_parameters": hx(ticket.transport_parameters),
        "extensions": [[int(t), bytes(d).hex()] for t, d in ticket.extensions],
    }


def ticket_from_json(data: dict) -> Any:
    from tls.tickets import Ticket

    def bx(value: Optional[str]) -> Optional[bytes]:
        return None if value is None else bytes.fromhex(value)

    return Ticket(
        server_name=data["server_name"],
        cipher_suite=int(data["cipher_suite"]),
        psk=bytes.fromhex(data["psk"]),
        ticket=bytes.fromhex(data["ticket"]),
        age_add=int(data["age_add"]),
        lifetime=int(data["lifetime"]),
        received_at=float(data["received_at"]),
        alpn=bx(data.get("alpn")),
        max_early_data=int(data.get("max_early_data", 0)),
        transport_parameters=bx(data.get("transport_parameters")),
        extensions=[(int(t), bytes.fromhex(d)) for t, d in data.get("extensions", [])],
    )


class TicketFile:
    """--resume FILE: {"version": 1, "tickets": {authority: ticket}, "tokens":
    {authority: hex}}.  A ticket is used once (RFC 8446 §C.4), so using one
    removes it; the newest one received replaces it.  A token (NEW_TOKEN,
    RFC 9000 §8.1.3) lets the next connection skip the server's Retry; it too
    is replaced by the newest."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = Path(path) if path else None
        self.tickets: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}
        self.problem: Optional[str] = None
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") != TICKET_FILE_VERSION:
                    raise ValueError("unknown version")
                self.tickets = dict(data["tickets"])
                self.tokens = {str(k): str(v) for k, v in dict(data.get("tokens", {})).items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                self.problem = f"--resume {self.path}: unreadable ({exc}); starting without a ticket"

    def take(self, authority: str, now: float) -> Any:
        entry = self.tickets.pop(authority, None)
        if entry is None:
            return None
        try:
            ticket = ticket_from_json(entry)
        except (KeyError, ValueError, TypeError):
            return None
        return ticket if ticket.is_valid(now) else None

    def put(self, authority: str, ticket: Any) -> None:
        self.tickets[authority] = ticket_to_json(ticket)

    def token(self, authority: str) -> bytes:
        try:
            return bytes.fromhex(self.tokens.get(authority, ""))
        except ValueError:
            return b""

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"version": TICKET_FILE_VERSION, "tickets": self.tickets, "tokens": self.tokens},
                                  indent=1))
        os.chmod(tmp, 0o600)  # a ticket's PSK resumes the session: keep it private
        os.replace(tmp, self.path)


# -- configuration -------------------------------------------------------------------------------------


def make_configuration(args: argparse.Namespace, host: str) -> QuicConfiguration:
    # Offered in order of preference (RFC 9368); the first packet in --version.
    preferred = args.prefer_version or args.version
    versions = [QUIC_V2, QUIC_V1] if preferred == "v2" else [QUIC_V1, QUIC_V2]
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=[args.alpn],
        server_name=host,
        supported_versions=versions,
        original_version=QUIC_V2 if args.version == "v2" else QUIC_V1,
        idle_timeout=max(args.timeout, 1.0),
        handshake_timeout=max(args.timeout, 1.0),
        max_datagram_frame_size=None,
        follow_preferred_address=args.follow_preferred_address,
    )
    if args.cafile:
        config.load_verify_locations(cafile=args.cafile)
    if args.insecure:
        config.verify_mode = ssl.CERT_NONE
    config.cipher_suites = parse_names(args.cipher, CipherSuite, "cipher suite")
    groups = parse_names(args.group, Group, "group")
    if groups:
        config.groups = groups
        config.key_share_groups = groups[:1]
    if args.keylog:
        config.secrets_log_file = args.keylog_file
    if args.qlog_dir:
        Path(args.qlog_dir).mkdir(parents=True, exist_ok=True)
        config.qlog_dir = args.qlog_dir
    return config


# -- output ---------------------------------------------------------------------------------------------


class Sink:
    """Where one body goes: stdout, a file (opened on the first byte, so a
    request that fails before its body leaves no empty file), or nowhere."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.file: Optional[BinaryIO] = None

    def write(self, data: bytes) -> None:
        if self.req.to_stdout:
            sys.stdout.buffer.write(data)
        elif self.req.output is not None:
            if self.file is None:
                self.file = open(self.req.output, "wb")
            self.file.write(data)

    def close(self) -> None:
        """The end of the body: a request that failed on the way leaves no
        partial file behind (a complete error page is kept, as curl does)."""
        req = self.req
        if req.to_stdout:
            sys.stdout.buffer.flush()
        elif req.output is not None:
            if req.error is not None:
                if self.file is not None:
                    self.file.close()
                    req.output.unlink(missing_ok=True)
                return
            if self.file is None:  # an empty body is still a file
                self.file = open(req.output, "wb")
            self.file.close()


def rate_text(received: int, seconds: float) -> str:
    return f"{received / seconds / 1e6:.2f} MB/s" if seconds > 0 else "- MB/s"


def _enum_name(enum: Any, value: Optional[int], prefix: str = "") -> str:
    if value is None:
        return "none"
    try:
        return prefix + enum(value).name
    except ValueError:
        return f"0x{value:04x}"


# -- one connection ------------------------------------------------------------------------------------


class Connection:
    """One authority: its connection, its requests, what it prints."""

    def __init__(self, args: argparse.Namespace, host: str, port: int, requests: list[Request],
                 progress: Progress, tickets: TicketFile) -> None:
        self.args = args
        self.host = host
        self.port = port
        self.requests = requests
        self.progress = progress
        self.tickets = tickets
        self.authority = requests[0].authority
        self.received_tickets: list = []
        self.received_tokens: list = []
        self.handshake: Any = None  # the HandshakeCompleted event
        self.protocol: Any = None
        self.early = False  # requests go before the handshake completes (0-RTT)
        self.failure: Optional[str] = None
        self.headers = parse_headers(args.header)
        self.body = args.body
        self.limit = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

    def say(self, text: str) -> None:
        if not self.args.quiet:
            self.progress.line(text)

    def warn(self, text: str) -> None:
        self.progress.line(text)

    def configuration(self) -> QuicConfiguration:
        config = make_configuration(self.args, self.host)
        if self.tickets.path is not None:
            config.token = self.tickets.token(self.authority)
            ticket = self.tickets.take(self.authority, time.time())
            if ticket is not None:
                config.session_ticket = ticket
                if self.args.zero_rtt:
                    alpn_ok = ticket.alpn is None or ticket.alpn == self.args.alpn.encode()
                    if ticket.max_early_data and alpn_ok:
                        config.enable_early_data = True
                        self.early = True
                    else:
                        self.say(f"{self.authority}: the session ticket does not allow 0-RTT")
            elif self.args.zero_rtt:
                self.say(f"{self.authority}: no session ticket in {self.tickets.path}: no 0-RTT this time")
        elif self.args.zero_rtt:
            self.say("--0rtt without --resume FILE: there is no ticket to send early data with")
        return config

    def watch(self, protocol: Any) -> None:
        """See the HandshakeCompleted event as it passes (the protocol is
        built inside connect_h3/connect: we wrap the instance's handler)."""
        self.protocol = protocol
        inner = protocol.quic_event_received

        def quic_event_received(event: Any) -> None:
            from ..events import HandshakeCompleted

            if isinstance(event, HandshakeCompleted) and self.handshake is None:
                self.handshake = event
                self.say(self.connection_line())
            inner(event)

        protocol.quic_event_received = quic_event_received

    def connection_line(self) -> str:
        quic = self.protocol.quic
        event = self.handshake
        negotiated = quic.tls.negotiated
        version = {QUIC_V1: "QUIC v1", QUIC_V2: "QUIC v2"}.get(quic.version, f"QUIC 0x{quic.version:08x}")
        resumed = "resumed" if event.session_resumed else "full handshake"
        if event.early_data_accepted:
            zero = f"0-RTT accepted ({quic.stats.zero_rtt_packets_sent} packets)"
        elif self.early:
            zero = "0-RTT rejected (requests sent again in 1-RTT)"
        else:
            zero = "no 0-RTT"
        group = _enum_name(Group, negotiated.group) if negotiated.group is not None else "psk_ke"
        retry = ", after a Retry" if quic.stats.retries_received else ""
        return (f"{self.authority}: connected, ALPN {event.alpn_protocol}, {version}, "
                f"{_enum_name(CipherSuite, negotiated.cipher_suite, 'TLS_')}, {group}, {resumed}, {zero}{retry}")

    async def wait_connected(self) -> None:
        async with asyncio.timeout(self.args.timeout):
            await self.protocol.wait_connected()

    async def key_update(self) -> None:
        """--key-update: RFC 9001 §6.1 allows it once the handshake is
        confirmed (HANDSHAKE_DONE received) and a packet sent with the
        current keys is acknowledged: ping (an acknowledged PING is such a
        packet) until both hold."""
        quic = self.protocol.quic
        async with asyncio.timeout(self.args.timeout):
            await self.protocol.ping()
            while not quic.handshake_confirmed:
                await self.protocol.ping()
        before = quic.key_phase
        self.protocol.request_key_update()
        self.say(f"{self.authority}: key update requested (key phase {before} -> {quic.key_phase})")

    async def run(self) -> None:
        config = self.configuration()
        kwargs = dict(configuration=config, wait_connected=False,
                      session_ticket_handler=self.received_tickets.append, token_handler=self.received_tokens.append)
        try:
            async with contextlib.AsyncExitStack() as stack:
                # wait_connected=False: the protocol comes back before any
                # packet is processed, so watch() sees the HandshakeCompleted
                # event, and requests can go in 0-RTT.
                async with asyncio.timeout(self.args.timeout):  # name resolution
                    if self.args.alpn == H3:
                        from ..asyncio.h3 import connect_h3

                        client = await stack.enter_async_context(connect_h3(self.host, self.port, **kwargs))
                        self.watch(client.protocol)
                        fetch = functools.partial(self.fetch_h3, client)
                    else:
                        from ..asyncio.hq import connect_hq

                        client = await stack.enter_async_context(connect_hq(self.host, self.port, **kwargs))
                        self.watch(client.protocol)
                        fetch = functools.partial(self.fetch_hq, client)
                await self.run_requests(fetch)
        except Exception as exc:  # network, TLS, QUIC: one line, no traceback
            self.failure = describe(exc, self.args.timeout)
        if self.failure is not None:
            for req in self.requests:
                if req.error is None and not req.ok:
                    req.error = self.failure
            self.warn(f"error: {self.authority}: {self.failure}")
        if self.received_tokens:
            self.tickets.tokens[self.authority] = self.received_tokens[-1].hex()
        if self.received_tickets:
            self.tickets.put(self.authority, self.received_tickets[-1])
        elif self.tickets.path is not None and self.failure is None:
            self.say(f"{self.authority}: no session ticket received")

    async def migrate(self, requests: Any) -> None:
        """--migrate: once the handshake is confirmed and the responses are
        under way, move to a new local address (active migration, RFC 9000
        §9.2) and wait until the server answered on it."""
        quic = self.protocol.quic
        async with asyncio.timeout(self.args.timeout):
            while not quic.handshake_confirmed:
                await self.protocol.ping()
            while quic.stats.bytes_received < MIGRATE_AFTER_BYTES and not requests.done():
                await asyncio.sleep(0.005)
            before = self.protocol.local_address
            after = await self.protocol.change_local_address()
        self.say(f"{self.authority}: migrated from local port {before[1]} to {after[1]}, path validated")

    async def run_requests(self, fetch: Any) -> None:
        if not self.early:
            await self.wait_connected()
            if self.args.key_update:
                await self.key_update()
            requests = asyncio.gather(*(self.one(req, fetch) for req in self.requests))
            if self.args.migrate:
                await self.migrate(requests)
            await requests
        else:
            # 0-RTT: every request leaves now; the handshake completes meanwhile.
            tasks = [asyncio.ensure_future(self.one(req, fetch)) for req in self.requests]
            try:
                await self.wait_connected()
                if self.args.key_update:
                    await self.key_update()
            finally:
                await asyncio.gather(*tasks)
        if self.args.key_update:
            self.say(f"{self.authority}: key phase {self.protocol.quic.key_phase} after the requests")

    async def one(self, req: Request, fetch: Any) -> None:
        async with self.limit:
            sink = Sink(req)
            transfer = self.progress.transfer()
            start = time.monotonic()
            try:
                await fetch(req, sink, transfer)
            except Exception as exc:
                req.error = describe(exc, self.args.timeout)
            finally:
                req.seconds = time.monotonic() - start
                transfer.finish()
                try:
                    sink.close()
                except OSError as exc:
                    req.error = req.error or f"{req.output}: {exc.strerror or exc}"
                    req.ok = False
            self.report(req)

    def report(self, req: Request) -> None:
        if req.error is not None:
            self.warn(f"error: {req.method} {req.url}: {req.error}")
            return
        status = str(req.status) if req.status is not None else "complete"
        line = (f"{status} {req.method} {req.url} {req.received} bytes in {req.seconds:.3f} s "
                f"({rate_text(req.received, req.seconds)})")
        if req.output is not None:
            line += f" -> {req.output}"
        if req.ok:
            self.say(line)
        else:
            self.warn(line)

    async def fetch_h3(self, client: Any, req: Request, sink: Sink, transfer: Transfer) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.args.timeout
        # --timeout bounds the wait for the response headers, then for each chunk.
        async with asyncio.timeout(timeout) as deadline:
            async with client.stream(req.method, req.url, headers=self.headers, body=self.body) as response:
                req.status = response.status
                length = response.header("content-length")
                if length is not None and length.isdigit() and req.method != "HEAD":
                    transfer.set_total(int(length))
                async for chunk in response.iter_bytes():
                    sink.write(chunk)
                    req.received += len(chunk)
                    transfer.add(len(chunk))
                    deadline.reschedule(loop.time() + timeout)
        req.ok = 200 <= req.status < 300

    async def fetch_hq(self, client: Any, req: Request, sink: Sink, transfer: Transfer) -> None:
        """hq-interop: complete means the file up to the server's FIN (a
        reset stream is the only failure it can say)."""
        loop = asyncio.get_running_loop()
        timeout = self.args.timeout
        async with asyncio.timeout(timeout) as deadline:
            def progress(received: int) -> None:
                transfer.add(received - req.received)
                req.received = received
                deadline.reschedule(loop.time() + timeout)

            await client.download(req.path, sink, progress)
        req.ok = True


def describe(exc: BaseException, timeout: float) -> str:
    """One line for what went wrong (no traceback)."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"timed out (nothing for {timeout:g} s)"
    if type(exc).__name__ == "HqStreamError":  # its message repeats the request
        return f"the server reset the stream (error 0x{exc.error_code:x}: missing file, refused path or bad request)"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text


# -- the command ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyquic.client",
        description="Fetch URLs over HTTP/3 or hq-interop (one QUIC connection per host:port, "
                    "its requests concurrent).  Exit status: 0 all succeeded, 1 some failed, 2 usage.")
    p.add_argument("urls", nargs="+", metavar="URL", help="https://host[:port]/path")
    p.add_argument("--alpn", choices=[H3, HQ], default=H3, help="application protocol (default h3)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="save each body in DIR, named after the URL's last path segment "
                        "(default: one URL's body to stdout; several URLs' bodies are not kept)")
    p.add_argument("-X", "--method", help="HTTP method (default GET, or POST with --data; h3 only)")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="extra request header (repeatable; h3 only)")
    p.add_argument("-d", "--data", metavar="DATA|@FILE", help="request body (h3 only)")
    p.add_argument("--resume", metavar="FILE",
                   help="resume with the session ticket stored in FILE, store the one received in it")
    p.add_argument("--0rtt", dest="zero_rtt", action="store_true",
                   help="send the requests as early data (0-RTT) when the --resume ticket allows it")
    p.add_argument("--cafile", help="trust anchors (PEM); default: the system store")
    p.add_argument("-k", "--insecure", action="store_true", help="do not verify the server's certificate")
    p.add_argument("--cipher", action="append", default=[], metavar="SUITE",
                   help="offer this cipher suite, e.g. TLS_AES_128_GCM_SHA256 (repeatable, in order)")
    p.add_argument("--group", action="append", default=[], metavar="GROUP",
                   help="offer this key exchange group: x25519, secp256r1, secp384r1, X25519MLKEM768 "
                        "(repeatable, in order; the first gets a key share)")
    p.add_argument("--version", choices=["v1", "v2"], default="v1",
                   help="QUIC version of the first packet (v2: RFC 9369; default v1)")
    p.add_argument("--prefer-version", choices=["v1", "v2"],
                   help="the version to offer first (default: --version's); a server may switch to it "
                        "without a round trip (compatible version negotiation, RFC 9368)")
    p.add_argument("--no-preferred-address", dest="follow_preferred_address", action="store_false",
                   help="stay on the server's address, never move to its preferred address (RFC 9000 §9.6)")
    p.add_argument("--migrate", action="store_true",
                   help="move to a new local address while the responses arrive (active migration)")
    p.add_argument("--key-update", action="store_true",
                   help="update the 1-RTT keys once the handshake is confirmed, before the requests")
    p.add_argument("--keylog", metavar="FILE", help="append NSS key log lines (SSLKEYLOGFILE format) to FILE")
    p.add_argument("--qlog-dir", metavar="DIR", help="write a qlog file per connection in DIR")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"give up after this long without progress (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only (no summaries, no progress)")
    return p


async def amain(args: argparse.Namespace) -> int:
    groups = plan(args)
    tickets = TicketFile(args.resume)
    progress = Progress(sys.stderr, enabled=None if not args.quiet else False)
    if tickets.problem:
        progress.line(f"warning: {tickets.problem}")
    if len(args.urls) > 1 and not args.output and not args.quiet:
        progress.line("note: several URLs and no --output DIR: bodies are not kept")
    connections = [Connection(args, host, port, reqs, progress, tickets) for (host, port), reqs in groups.items()]
    results = await asyncio.gather(*(c.run() for c in connections), return_exceptions=True)
    for result in results:
        if isinstance(result, UsageProblem):
            raise result
        if isinstance(result, BaseException):
            raise result
    progress.clear()
    if tickets.path is not None:
        try:
            tickets.save()
        except OSError as exc:
            print(f"error: --resume {tickets.path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    every = [req for c in connections for req in c.requests]
    return 0 if all(req.ok for req in every) else 1


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        args.body = read_data(args.data)
        if args.alpn == HQ and (args.header or args.body is not None):
            raise UsageProblem("hq-interop has no headers and no request body (-H, --data are h3 only)")
        if args.output:
            try:
                Path(args.output).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageProblem(f"--output {args.output}: {exc.strerror or exc}") from None
        args.keylog_file = None
        try:  # the settings the TLS layer would refuse, refused now
            make_configuration(args, parse_url(args.urls[0]).host).tls_config()
        except UsageProblem:
            raise
        except Exception as exc:
            raise UsageProblem(str(exc)) from None
        if args.keylog:
            try:
                args.keylog_file = open(args.keylog, "a", buffering=1)
            except OSError as exc:
                raise UsageProblem(f"--keylog {args.keylog}: {exc.strerror or exc}") from None
        try:
            return asyncio.run(amain(args))
        finally:
            if args.keylog_file is not None:
                args.keylog_file.close()
    except UsageProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # stdout's reader went away (e.g. `| head`): not worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
