# A QUIC peer process for interop tests and the benchmark: the same code runs
# on aioquic, qh3 or pyquic (their asyncio APIs share aioquic's names), as a
# server or a client of the "pyquic-test" raw-stream protocol.  It uses each
# library's raw event API (a QuicConnectionProtocol subclass), so what is
# measured and tested is the library's QUIC, not a stream wrapper.
#
# The protocol (ALPN "pyquic-test"): the client opens a bidirectional stream
# and starts it with one request line; the server answers on the same stream.
#   echo              everything after the line comes back; FIN when the client's FIN arrives
#   sink              the server reads to FIN, answers "<bytes> <sha256>\n" + FIN
#   source N          the server sends N pattern bytes (tests/peers/pattern.py) + FIN
#   reset C           the server resets its sending side with code C
#   stop C            the server sends STOP_SENDING with code C
#   close C           the server closes the connection with application code C
#   push-uni N        the server opens a uni stream with N pattern bytes + FIN and
#                     answers "<stream id>\n" + FIN
#   push-bidi N       the server opens a bidi stream with N pattern bytes + FIN; the
#                     client answers there "<bytes> <sha256>\n" + FIN, which the
#                     server relays on the request stream as "push-bidi <bytes> <sha256>\n"
#   cpu               the server answers "<its CPU seconds so far>\n" + FIN (the benchmark)
# Client-opened uni streams are read to FIN and logged ("uni_received").
# Servers issue session tickets and take 0-RTT (aioquic and qh3 with a ticket
# store, pyquic with max_early_data); the client's "zero_rtt" operation gets a
# ticket on a first connection, then sends an echo request in 0-RTT on a second.
#
# Output: one JSON object per line on stdout.  A server prints
# {"event": "listening", "port": P} first, then what it sees (handshake,
# stream_reset, stop_sending, uni_received, terminated).  A client runs the
# operations given with --ops (a JSON list, see Client.run_op) and prints one
# result per operation, then {"event": "done", "ok": bool}.
from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pattern import chunks, sha256_of  # noqa: E402
from peer_io import emit, until_stdin_closes  # noqa: E402

X25519 = 0x001D  # RFC 8446 §4.2.7

ALPN = "pyquic-test"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- the three libraries behind one set of names -------------------------------------------


class Lib:
    def __init__(self, impl: str) -> None:
        self.impl = impl
        if impl == "aioquic":
            import aioquic.asyncio as aio
            from aioquic.quic import events
            from aioquic.quic.configuration import QuicConfiguration
        elif impl == "qh3":
            import qh3.asyncio as aio
            from qh3.quic import events
            from qh3.quic.configuration import QuicConfiguration
        elif impl == "pyquic":
            import pyquic.asyncio as aio
            from pyquic import events
            from pyquic.config import QuicConfiguration
        else:
            raise SystemExit(f"unknown implementation {impl!r}")
        self.aio = aio
        self.events = events
        self.QuicConfiguration = QuicConfiguration

    def only_x25519(self) -> None:
        """Key exchange with X25519 alone, in both roles (the handshake
        benchmark's setting: RFC 8446's common group, no ML-KEM).  pyquic
        takes it as configuration (groups); aioquic and qh3 have no setting
        for it, so the list their TLS context offers from is narrowed when
        one is made.  A client then sends one key share, X25519 (plus qh3's
        GREASE one), and each server answers the share it is given."""
        if self.impl == "pyquic":
            return  # configuration() sets QuicConfiguration.groups
        tls = importlib.import_module(f"{self.impl}.tls")
        x25519, known = tls.Group.X25519, {int(g) for g in tls.Group}
        init = tls.Context.__init__

        def narrowed(ctx, *args, **kwargs) -> None:
            init(ctx, *args, **kwargs)
            ctx._supported_groups = [g for g in ctx._supported_groups if g == x25519 or int(g) not in known]

        tls.Context.__init__ = narrowed

    def configuration(self, args, is_client: bool):
        kwargs = dict(is_client=is_client, alpn_protocols=[ALPN], idle_timeout=args.idle_timeout)
        if args.max_data:
            kwargs["max_data"] = args.max_data
        if args.max_stream_data:
            kwargs["max_stream_data"] = args.max_stream_data
        config = self.QuicConfiguration(**kwargs)
        if args.cipher_suites:
            config.cipher_suites = [int(s, 0) for s in args.cipher_suites.split(",")]
        if is_client:
            config.server_name = "localhost"
            config.load_verify_locations(cafile=args.ca)
        else:
            config.load_cert_chain(args.cert, args.key)
        if args.groups == "x25519" and self.impl == "pyquic":
            config.groups = [X25519]
        if args.offer_ec_key_shares:
            # qh3 offers key shares for X25519MLKEM768 and X25519 only and its
            # client cannot parse a HelloRetryRequest: a server limited to a
            # P-curve needs the share in the first ClientHello.
            config.offer_ec_key_shares = True
        if args.keylog:
            config.secrets_log_file = open(args.keylog, "a")
        if not is_client and self.impl == "pyquic":
            config.max_early_data = 0xFFFFFFFF  # 0-RTT accepted (aioquic and qh3 always do)
        if args.versions:
            # QUIC versions in preference order; the client starts with the first.
            config.supported_versions = [int(v, 0) for v in args.versions.split(",")]
            if is_client and self.impl == "pyquic":
                config.original_version = config.supported_versions[0]
        if args.original_version and is_client:
            # The version of the first Initial; the others may be negotiated (RFC 9368).
            config.original_version = int(args.original_version, 0)
        return config


def stop_sending(quic, sid: int, code: int) -> None:
    # aioquic and qh3 call it stop_stream; the brief's name is stop_sending.
    (getattr(quic, "stop_stream", None) or quic.stop_sending)(sid, code)


def stream_is_uni(sid: int) -> bool:
    return bool(sid & 2)


def locally_initiated(sid: int, is_client: bool) -> bool:
    return (sid & 1) == (0 if is_client else 1)


def send_pattern(quic, sid: int, size: int, end: bool = True) -> None:
    # Everything at once (no library here has write backpressure in its raw API).
    if size == 0:
        if end:
            quic.send_stream_data(sid, b"", end_stream=True)
        return
    parts = list(chunks(size))
    for i, part in enumerate(parts):
        quic.send_stream_data(sid, bytes(part), end_stream=end and i == len(parts) - 1)


class Digest:
    __slots__ = ("sha", "n")

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.n = 0

    def update(self, data: bytes) -> None:
        self.sha.update(data)
        self.n += len(data)

    def line(self) -> bytes:
        return f"{self.n} {self.sha.hexdigest()}\n".encode()


# --- server --------------------------------------------------------------------------------


def server_protocol(lib: Lib):
    ev = lib.events

    class RawServer(lib.aio.QuicConnectionProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._streams: dict[int, dict] = {}
            self._push_replies: dict[int, int] = {}  # pushed bidi stream -> request stream

        def quic_event_received(self, event) -> None:
            quic = self._quic
            if isinstance(event, ev.StreamDataReceived):
                self._on_data(event.stream_id, event.data, event.end_stream)
            elif isinstance(event, ev.HandshakeCompleted):
                info = {"event": "handshake", "alpn": event.alpn_protocol,
                        "early_data_accepted": bool(event.early_data_accepted),
                        "session_resumed": bool(event.session_resumed)}
                # pyquic: .version; aioquic and qh3 keep it in ._version.
                info["version"] = getattr(quic, "version", None) or getattr(quic, "_version", None)
                try:
                    info["cipher_suite"] = int(quic.tls.key_schedule.cipher_suite)
                except Exception:
                    pass
                negotiated = getattr(getattr(quic, "tls", None), "negotiated", None)  # pyquic's TLS engine
                if negotiated is not None:
                    info["group"] = negotiated.group
                emit(info)
            elif isinstance(event, ev.StreamReset):
                emit({"event": "stream_reset", "stream_id": event.stream_id, "error_code": event.error_code})
            elif isinstance(event, getattr(ev, "StopSendingReceived", ())):
                emit({"event": "stop_sending", "stream_id": event.stream_id, "error_code": event.error_code})
            elif isinstance(event, ev.ConnectionTerminated):
                emit({"event": "terminated", "error_code": event.error_code,
                      "frame_type": event.frame_type, "reason": event.reason_phrase})

        def _on_data(self, sid: int, data: bytes, end: bool) -> None:
            quic = self._quic
            st = self._streams.get(sid)
            if st is None:
                st = self._streams[sid] = {"mode": None, "line": b"", "digest": Digest()}
            if sid in self._push_replies:  # the client's answer to push-bidi
                st["line"] += data
                if end:
                    reply = self._push_replies.pop(sid)
                    quic.send_stream_data(reply, b"push-bidi " + st["line"], end_stream=True)
                return
            if stream_is_uni(sid):
                st["digest"].update(data)
                if end:
                    d = st["digest"]
                    emit({"event": "uni_received", "stream_id": sid, "bytes": d.n, "sha256": d.sha.hexdigest()})
                return
            if st["mode"] is None:
                st["line"] += data
                if b"\n" not in st["line"]:
                    if end:
                        quic.send_stream_data(sid, b"error no request\n", end_stream=True)
                    return
                line, data = st["line"].split(b"\n", 1)
                st["line"] = b""
                self._start(sid, st, line.decode().split())
            mode = st["mode"]
            if mode == "echo":
                if data or end:
                    quic.send_stream_data(sid, data, end_stream=end)
            elif mode == "sink":
                st["digest"].update(data)
                if end:
                    quic.send_stream_data(sid, st["digest"].line(), end_stream=True)
            # No transmit() here: every library transmits after handling what
            # it received (aioquic per datagram, qh3 and pyquic per batch), and
            # one transmit per stream event would defeat batching.

        def _start(self, sid: int, st: dict, words: list[str]) -> None:
            quic = self._quic
            cmd, arg = words[0], (int(words[1]) if len(words) > 1 else 0)
            st["mode"] = cmd
            if cmd == "source":
                send_pattern(quic, sid, arg)
            elif cmd == "reset":
                quic.reset_stream(sid, arg)
            elif cmd == "stop":
                stop_sending(quic, sid, arg)
            elif cmd == "close":
                quic.close(error_code=arg, reason_phrase="requested")
            elif cmd == "push-uni":
                new = quic.get_next_available_stream_id(is_unidirectional=True)
                send_pattern(quic, new, arg)
                quic.send_stream_data(sid, f"{new}\n".encode(), end_stream=True)
            elif cmd == "push-bidi":
                new = quic.get_next_available_stream_id(is_unidirectional=False)
                self._push_replies[new] = sid
                send_pattern(quic, new, arg)
            elif cmd == "cpu":
                quic.send_stream_data(sid, f"{cpu_seconds():.6f}\n".encode(), end_stream=True)
            elif cmd not in ("echo", "sink"):
                quic.send_stream_data(sid, f"error unknown {cmd}\n".encode(), end_stream=True)

    return RawServer


async def run_server(lib: Lib, args) -> None:
    config = lib.configuration(args, is_client=False)
    tickets: dict = {}  # aioquic and qh3 servers keep their tickets here (pyquic's are stateless)
    extra = {} if lib.impl == "pyquic" else {
        "session_ticket_handler": lambda t: tickets.__setitem__(t.ticket, t),
        "session_ticket_fetcher": lambda label: tickets.pop(label, None),
    }
    if args.retry:
        extra["retry"] = True
    server = await lib.aio.serve(args.host, args.port, configuration=config, create_protocol=server_protocol(lib),
                                 **extra)
    port = args.port
    if not port:
        transport = getattr(server, "_transport", None)
        if transport is not None:
            port = transport.get_extra_info("sockname")[1]
        else:  # pyquic's server object
            port = server.local_address[1]
    emit({"event": "listening", "port": port, "pid": os.getpid()})
    await until_stdin_closes()  # the harness owns our lifetime
    server.close()


# --- client --------------------------------------------------------------------------------


class OpFailed(Exception):
    pass


def client_protocol(lib: Lib):
    ev = lib.events

    class RawClient(lib.aio.QuicConnectionProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.loop = asyncio.get_running_loop()
            self.waiters: dict[int, dict] = {}  # our streams: digest, collected text, future
            self.pushed: dict[int, dict] = {}  # server-initiated streams
            self.pushed_changed = asyncio.Event()
            self.terminated = self.loop.create_future()
            self.stop_sending: dict[int, int] = {}
            self.handshake_done = False

        def open(self, line: str, body_size: int = 0, end: bool = True, uni: bool = False, keep: bool = False) -> int:
            quic = self._quic
            sid = quic.get_next_available_stream_id(is_unidirectional=uni)
            self.waiters[sid] = {"digest": Digest(), "text": bytearray(), "keep": keep,
                                 "done": self.loop.create_future()}
            head = (line + "\n").encode() if line else b""
            if body_size:
                quic.send_stream_data(sid, head, end_stream=False)
                send_pattern(quic, sid, body_size, end)
            else:
                quic.send_stream_data(sid, head, end_stream=end)
            self.transmit()
            return sid

        def quic_event_received(self, event) -> None:
            if isinstance(event, ev.StreamDataReceived):
                sid = event.stream_id
                w = self.waiters.get(sid)
                if w is not None:
                    w["digest"].update(event.data)
                    if w["keep"]:
                        w["text"] += event.data
                    if event.end_stream and not w["done"].done():
                        w["done"].set_result(("fin", None))
                elif not locally_initiated(sid, True):
                    p = self.pushed.setdefault(sid, {"digest": Digest(), "done": False})
                    p["digest"].update(event.data)
                    if event.end_stream:
                        p["done"] = True
                        if not stream_is_uni(sid):  # push-bidi: answer with what we got
                            self._quic.send_stream_data(sid, p["digest"].line(), end_stream=True)
                            self.transmit()
                        self.pushed_changed.set()
            elif isinstance(event, ev.StreamReset):
                w = self.waiters.get(event.stream_id)
                if w is not None and not w["done"].done():
                    w["done"].set_result(("reset", event.error_code))
            elif isinstance(event, getattr(ev, "StopSendingReceived", ())):
                self.stop_sending[event.stream_id] = event.error_code
                w = self.waiters.get(event.stream_id)
                if w is not None and not w["done"].done():
                    w["done"].set_result(("stop_sending", event.error_code))
            elif isinstance(event, ev.HandshakeCompleted):
                self.handshake_done = True
                self.early_data_accepted = bool(event.early_data_accepted)
                self.session_resumed = bool(event.session_resumed)
            elif isinstance(event, ev.ConnectionTerminated):
                info = {"error_code": event.error_code, "frame_type": event.frame_type,
                        "reason": event.reason_phrase, "at": time.monotonic()}
                if not self.handshake_done:  # e.g. refused: the harness wants the code
                    emit({"event": "terminated_in_handshake", **info})
                if not self.terminated.done():
                    self.terminated.set_result(info)
                for w in self.waiters.values():
                    if not w["done"].done():
                        w["done"].set_result(("terminated", event.error_code))

        async def wait(self, sid: int, timeout: float):
            return await asyncio.wait_for(asyncio.shield(self.waiters[sid]["done"]), timeout)

    return RawClient


class Client:
    def __init__(self, lib: Lib, args) -> None:
        self.lib = lib
        self.args = args
        self.config = lib.configuration(args, is_client=True)

    def connect(self):
        return self.lib.aio.connect(self.args.host, self.args.port, configuration=self.config,
                                    create_protocol=client_protocol(self.lib))

    async def run(self, ops: list[dict]) -> bool:
        ok = True
        try:
            async with self.connect() as proto:
                for op in ops:
                    if op["op"] == "handshakes":
                        continue
                    res = await self._timed(self.run_op(proto, op), op)
                    ok &= res.get("ok", False)
                    emit(res)
        except ConnectionError as exc:  # e.g. the server refused us: reported, not a traceback
            emit({"event": "connect_failed", "error": f"{type(exc).__name__}: {exc}"})
            return False
        for op in ops:
            if op["op"] == "handshakes":
                res = await self._timed(self.handshakes(op["count"], op.get("resumed", False)), op)
                ok &= res.get("ok", False)
                emit(res)
        return ok

    async def _timed(self, coro, op: dict) -> dict:
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            res = await asyncio.wait_for(coro, op.get("timeout", self.args.timeout))
        except Exception as exc:  # reported, so the harness shows what broke
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        res = {"op": op["op"], **res}
        res.setdefault("seconds", time.perf_counter() - t0)
        res.setdefault("cpu", cpu_seconds() - c0)
        return res

    async def handshakes(self, count: int, resumed: bool = False) -> dict:
        # The server's CPU is asked over a connection of its own before and
        # after; the delta covers the `count` handshakes plus the second
        # query's handshake, hence count + 1 below.  With `resumed`, every
        # one of those resumes a session (RFC 8446 §2.2, PSK with (EC)DHE):
        # the first query's connection brings the first ticket, each
        # connection the ticket for the next one (servers may take a ticket
        # once); how many did resume is reported.
        config, tickets = self.config, []
        arrived = asyncio.Event()
        kwargs: dict = {}
        if resumed:
            config = self.lib.configuration(self.args, is_client=True)

            def on_ticket(ticket) -> None:
                tickets.append(ticket)
                arrived.set()

            kwargs["session_ticket_handler"] = on_ticket

        async def next_ticket() -> None:
            await asyncio.wait_for(arrived.wait(), self.args.timeout)
            arrived.clear()
            config.session_ticket = tickets[-1]
            if hasattr(config, "invalidate"):  # pyquic caches its TLS configuration
                config.invalidate()

        def connect():
            return self.lib.aio.connect(self.args.host, self.args.port, configuration=config,
                                        create_protocol=client_protocol(self.lib), **kwargs)

        async with connect() as proto:
            server0 = await self.server_cpu(proto, self.args.timeout)
            if resumed:
                await next_ticket()
        # "seconds" is the handshake time only (connect until the handshake
        # completed), not the closing period each connection then waits out.
        seconds, c0, resumptions = 0.0, cpu_seconds(), 0
        for _ in range(count):
            t0 = time.perf_counter()
            async with connect() as proto:
                seconds += time.perf_counter() - t0
                if resumed:
                    resumptions += bool(getattr(proto, "session_resumed", False))
                    await next_ticket()
        cpu = cpu_seconds() - c0
        async with connect() as proto:
            server = await self.server_cpu(proto, self.args.timeout) - server0
        res = {"ok": True, "count": count, "seconds": seconds, "cpu": cpu,
               "server_cpu_per_handshake": server / (count + 1)}
        if resumed:
            res["resumed"] = resumptions
            res["ok"] = resumptions == count
            if not res["ok"]:
                res["error"] = f"{count - resumptions} of {count} handshakes did not resume"
        return res

    @staticmethod
    async def server_cpu(proto, timeout: float) -> float:
        sid = proto.open("cpu", keep=True)
        how, _ = await proto.wait(sid, timeout)
        if how != "fin":
            raise OpFailed(f"cpu query ended with {how}")
        return float(proto.waiters[sid]["text"].decode())

    async def zero_rtt(self, size: int, timeout: float) -> dict:
        """A ticket from a first connection, then an echo of `size` bytes sent
        before the second one's handshake completes (0-RTT if the server takes it)."""
        tickets: list = []
        async with self.lib.aio.connect(self.args.host, self.args.port, configuration=self.config,
                                        create_protocol=client_protocol(self.lib),
                                        session_ticket_handler=tickets.append) as proto:
            sid = proto.open("echo", 10)
            await proto.wait(sid, timeout)
        if not tickets:
            raise OpFailed("no session ticket from the first connection")
        config = self.lib.configuration(self.args, is_client=True)
        config.session_ticket = tickets[-1]
        if self.lib.impl == "pyquic":
            config.enable_early_data = True
        async with self.lib.aio.connect(self.args.host, self.args.port, configuration=config,
                                        create_protocol=client_protocol(self.lib), wait_connected=False) as proto:
            sid = proto.open("echo", size)
            how, _ = await proto.wait(sid, timeout)  # the handshake completed before the echo ended
            digest = proto.waiters[sid]["digest"]
            ok = how == "fin" and f"{digest.n} {digest.sha.hexdigest()}" == f"{size} {sha256_of(size)}"
            return {"ok": ok, "early_data_accepted": getattr(proto, "early_data_accepted", None),
                    "session_resumed": getattr(proto, "session_resumed", None)}

    async def run_op(self, proto, op: dict) -> dict:
        kind = op["op"]
        if kind == "zero_rtt":
            return await self.zero_rtt(op.get("size", 1000), op.get("timeout", self.args.timeout))
        size = op.get("size", 0)
        streams = op.get("streams", 1)
        quic = proto._quic
        to = op.get("timeout", self.args.timeout)
        if kind in ("echo", "source", "sink"):
            cpu0 = await self.server_cpu(proto, to) if op.get("server_cpu") else None
            t0 = time.perf_counter()
            if kind == "echo":
                sids = [proto.open("echo", size) for _ in range(streams)]
            elif kind == "source":
                sids = [proto.open(f"source {size}") for _ in range(streams)]
            else:
                sids = [proto.open("sink", size, keep=True) for _ in range(streams)]
            results = await asyncio.gather(*(proto.wait(s, to) for s in sids))
            seconds = time.perf_counter() - t0
            bad = [r for r in results if r[0] != "fin"]
            if bad:
                raise OpFailed(f"streams ended with {bad[:3]}")
            expected = f"{size} {sha256_of(size)}"
            for s in sids:
                w = proto.waiters[s]
                got = w["text"].decode().strip() if kind == "sink" else f"{w['digest'].n} {w['digest'].sha.hexdigest()}"
                if got != expected:
                    raise OpFailed(f"stream {s}: got {got!r}, expected {expected!r}")
            res = {"ok": True, "bytes": size * streams, "seconds": seconds}
            if cpu0 is not None:
                res["server_cpu"] = await self.server_cpu(proto, to) - cpu0
            return res
        if kind == "uni":
            sid = proto.open("", size, uni=True)
            return {"ok": True, "stream_id": sid, "bytes": size, "sha256": sha256_of(size)}
        if kind in ("request_reset", "request_stop"):
            # The server resets its side / sends STOP_SENDING; we keep sending
            # (request_stop) so our library has something to stop.
            word = "reset" if kind == "request_reset" else "stop"
            sid = proto.open(f"{word} {op['code']}", 0, end=False)
            if kind == "request_stop":
                quic.send_stream_data(sid, b"x" * 1000)
                proto.transmit()
            how, code = await proto.wait(sid, to)
            want = "reset" if kind == "request_reset" else "stop_sending"
            ok = how == want and code == op["code"]
            return {"ok": ok, "stream_id": sid, "seen": how, "error_code": code}
        if kind == "request_close":
            proto.open(f"close {op['code']}", 0)
            info = await asyncio.wait_for(asyncio.shield(proto.terminated), to)
            return {"ok": info["error_code"] == op["code"], **info}
        if kind == "reset":  # we reset our sending side of a stream the server echoes
            sid = proto.open("echo", 1000, end=False)
            await asyncio.sleep(0.05)
            quic.reset_stream(sid, op["code"])
            proto.transmit()
            return {"ok": True, "stream_id": sid}
        if kind == "stop":  # we ask the server to stop sending a big source
            sid = proto.open(f"source {op.get('size', 50_000_000)}")
            await asyncio.sleep(0.05)
            stop_sending(quic, sid, op["code"])
            proto.transmit()
            how, code = await proto.wait(sid, to)
            return {"ok": how == "reset", "stream_id": sid, "seen": how, "error_code": code}
        if kind in ("push_uni", "push_bidi"):
            word = "push-uni" if kind == "push_uni" else "push-bidi"
            sid = proto.open(f"{word} {size}", keep=True)
            how, _ = await proto.wait(sid, to)
            reply = proto.waiters[sid]["text"].decode().strip()
            if kind == "push_uni":
                pushed = int(reply)
                while not proto.pushed.get(pushed, {}).get("done"):
                    proto.pushed_changed.clear()
                    await proto.pushed_changed.wait()
                d = proto.pushed[pushed]["digest"]
                got = f"{d.n} {d.sha.hexdigest()}"
            else:
                got = reply.removeprefix("push-bidi ")
            expected = f"{size} {sha256_of(size)}"
            return {"ok": how == "fin" and got == expected, "got": got, "expected": expected}
        if kind == "close":
            # qh3's protocol.close() takes no code: close the connection itself.
            quic.close(error_code=op["code"], reason_phrase=op.get("reason", "bye"))
            proto.transmit()
            await asyncio.wait_for(proto.wait_closed(), to)
            return {"ok": True}
        if kind == "wait_terminated":
            t0 = time.monotonic()
            info = await asyncio.wait_for(asyncio.shield(proto.terminated), to)
            return {"ok": True, **info, "after": info["at"] - t0}
        if kind == "sleep":
            await asyncio.sleep(op["seconds"])
            return {"ok": True}
        raise OpFailed(f"unknown op {kind!r}")


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, choices=["aioquic", "qh3", "pyquic"])
    ap.add_argument("--role", required=True, choices=["server", "client"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--ops", default="[]", help="client: JSON list of operations")
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    ap.add_argument("--max-data", type=int, default=0)
    ap.add_argument("--max-stream-data", type=int, default=0)
    ap.add_argument("--cipher-suites", default="")
    ap.add_argument("--groups", default="", choices=["", "x25519"],
                    help="key exchange: x25519 alone (default: each library's own; pyquic and qh3 prefer X25519MLKEM768)")
    ap.add_argument("--offer-ec-key-shares", action="store_true", help="qh3 client: also P-256/P-384 shares")
    ap.add_argument("--keylog", default=os.environ.get("SSLKEYLOGFILE", ""))
    ap.add_argument("--timeout", type=float, default=60.0, help="per client operation")
    ap.add_argument("--retry", action="store_true", help="server: address validation with Retry for every client")
    ap.add_argument("--versions", default="", help="QUIC versions in preference order, e.g. 0x6b3343cf,0x1")
    ap.add_argument("--original-version", default="", help="client: the version of its first Initial, e.g. 0x1")
    args = ap.parse_args()
    lib = Lib(args.impl)
    if args.groups == "x25519":
        lib.only_x25519()
    if args.role == "server":
        asyncio.run(run_server(lib, args))
        return 0
    ok = asyncio.run(Client(lib, args).run(json.loads(args.ops)))
    emit({"event": "done", "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
