# The interop suite run against each real peer (tests/test_quic_interop_aioquic.py
# and _qh3.py subclass InteropSuite with `peer = "..."`).  Two halves:
#   - our client (pyquic.asyncio.connect, in this process, StreamReader/
#     StreamWriter API) against the peer's server process;
#   - the peer's client process against our server (pyquic.asyncio.serve in
#     this process, PyquicTestServer below speaks the "pyquic-test"
#     protocol of tests/peers/raw_peer.py with our streams API);
# then the same transfers through tests/udp_relay.py (loss, reordering,
# duplication, a 2-second blackhole).  A peer that does not start fails the
# test (tests/quic_peers.py raises); nothing here skips.
from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import pytest

from pyquic import events
from pyquic.asyncio import ConnectionTerminatedError, QuicConnectionProtocol, StreamResetError, connect, serve
from pyquic.config import QuicConfiguration
from tests.peers.pattern import chunks, sha256_of
from tests.quic_peers import ALPN, assert_all_ok, pki_files, run_client, start_client, start_server
from tests.udp_relay import Impairment, UdpRelay

TIMEOUT = 60.0
BIG = 50_000_000  # the byte-for-byte transfer of the issue
RELAYED = 5_000_000  # transfers through the impairing relay
SMALL_WINDOWS = dict(max_data=32768, max_stream_data=16384)
SUITES = {"AES_128_GCM_SHA256": 0x1301, "AES_256_GCM_SHA384": 0x1302, "CHACHA20_POLY1305_SHA256": 0x1303}
GROUPS = {"x25519": 0x001D, "secp256r1": 0x0017, "secp384r1": 0x0018, "X25519MLKEM768": 0x11EC}
# What each peer offers and accepts besides the three suites (read from their tls.py).
PEER_GROUPS = {"aioquic": ["x25519", "secp256r1", "secp384r1"],
               "qh3": ["x25519", "secp256r1", "secp384r1", "X25519MLKEM768"]}


# --- configurations ------------------------------------------------------------------------


def client_config(files: dict, **kwargs: Any) -> QuicConfiguration:
    windows = _fixed_windows(kwargs)
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name="localhost", **windows, **kwargs)
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


def server_config(files: dict, **kwargs: Any) -> QuicConfiguration:
    windows = _fixed_windows(kwargs)
    config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN], **windows, **kwargs)
    config.load_cert_chain(files["server_chain"], files["server_key"])
    return config


def _fixed_windows(kwargs: dict) -> dict:
    # Small windows must stay small: no auto-tuning growth past them.
    out = {}
    if "max_data" in kwargs:
        out["max_data_window"] = kwargs["max_data"]
    if "max_stream_data" in kwargs:
        out["max_stream_data_window"] = kwargs["max_stream_data"]
    return out


# --- the protocol with our streams API -------------------------------------------------------


async def write_pattern(writer: asyncio.StreamWriter, size: int, eof: bool = True) -> None:
    for chunk in chunks(size, 1 << 16):
        writer.write(chunk)
        await writer.drain()
    if eof:
        writer.write_eof()


async def read_digest(reader: asyncio.StreamReader) -> tuple[int, str]:
    sha, n = hashlib.sha256(), 0
    while True:
        data = await reader.read(1 << 16)
        if not data:
            return n, sha.hexdigest()
        sha.update(data)
        n += len(data)


async def request(proto: QuicConnectionProtocol, line: str, body: int = 0) -> tuple[int, str]:
    """One request stream: the line, `body` pattern bytes, FIN; returns the
    (length, sha256) of the answer (read while writing: no flow-control deadlock)."""
    reader, writer = await proto.create_stream()
    writer.write(line.encode() + b"\n")

    async def send() -> None:
        await write_pattern(writer, body)

    _, answer = await asyncio.gather(send(), read_digest(reader))
    return answer


async def request_text(proto: QuicConnectionProtocol, line: str, body: int = 0) -> str:
    reader, writer = await proto.create_stream()
    writer.write(line.encode() + b"\n")
    await write_pattern(writer, body)
    return (await reader.read()).decode().strip()


def expect(size: int) -> tuple[int, str]:
    return size, sha256_of(size)


class PyquicTestServer:
    """Our side of "pyquic-test" as a server, on pyquic.asyncio.serve; records
    what it sees (events) for the tests to check."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.changed = asyncio.Event()
        self.protocols: list[QuicConnectionProtocol] = []
        self.server: Any = None

    def record(self, **event: Any) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_event(self, timeout: float = TIMEOUT, **match: Any) -> dict:
        async def find() -> dict:
            while True:
                for event in self.events:
                    if all(event.get(k) == v for k, v in match.items()):
                        return event
                self.changed.clear()
                await self.changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"server never saw {match}; saw {self.events}") from None

    def protocol_factory(self):
        outer = self

        class Recording(QuicConnectionProtocol):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                outer.protocols.append(self)

            def quic_event_received(self, event: Any) -> None:
                if isinstance(event, events.HandshakeCompleted):
                    neg = self._quic.tls.negotiated
                    outer.record(event="handshake", alpn=event.alpn_protocol, cipher_suite=neg.cipher_suite,
                                 group=neg.group, hello_retry=neg.hello_retry,
                                 early_data_accepted=event.early_data_accepted,
                                 zero_rtt_packets=self._quic.stats.zero_rtt_packets_received)
                elif isinstance(event, events.StreamReset):
                    outer.record(event="stream_reset", stream_id=event.stream_id, error_code=event.error_code)
                elif isinstance(event, events.StopSendingReceived):
                    outer.record(event="stop_sending", stream_id=event.stream_id, error_code=event.error_code)
                elif isinstance(event, events.ConnectionTerminated):
                    outer.record(event="terminated", error_code=event.error_code,
                                 frame_type=event.frame_type, reason=event.reason_phrase)
                super().quic_event_received(event)

        return Recording

    async def start(self, config: QuicConfiguration, host: str = "127.0.0.1", **endpoint_kwargs: Any) -> int:
        self.server = await serve(host, 0, configuration=config, create_protocol=self.protocol_factory(),
                                  stream_handler=self.handle, **endpoint_kwargs)
        return self.server.local_address[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await asyncio.wait_for(self.server.wait_closed(), 10)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sid = writer.get_extra_info("stream_id")
        proto = writer.get_extra_info("connection")
        try:
            if sid & 2:  # a client's uni stream: read it all
                n, sha = await read_digest(reader)
                self.record(event="uni_received", stream_id=sid, bytes=n, sha256=sha)
                return
            words = (await reader.readline()).decode().split()
            cmd, arg = (words[0], int(words[1]) if len(words) > 1 else 0) if words else ("", 0)
            if cmd == "echo":
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
                writer.write_eof()
            elif cmd == "sink":
                n, sha = await read_digest(reader)
                writer.write(f"{n} {sha}\n".encode())
                writer.write_eof()
            elif cmd == "source":
                await write_pattern(writer, arg)
            elif cmd == "reset":
                writer.transport.abort(arg)
            elif cmd == "stop":
                proto.stop_sending(sid, arg)
            elif cmd == "close":
                proto.close(error_code=arg, reason_phrase="requested")
            elif cmd == "push-uni":
                _, w2 = await proto.create_stream(is_unidirectional=True)
                await write_pattern(w2, arg)
                writer.write(f"{w2.get_extra_info('stream_id')}\n".encode())
                writer.write_eof()
            elif cmd == "push-bidi":
                r2, w2 = await proto.create_stream()
                await write_pattern(w2, arg)
                reply = await r2.read()
                writer.write(b"push-bidi " + reply)
                writer.write_eof()
            elif cmd == "cpu":
                writer.write(b"0\n")
                writer.write_eof()
            else:
                writer.write(f"error unknown {cmd}\n".encode())
                writer.write_eof()
        except (StreamResetError, ConnectionError) as exc:
            self.record(event="handler_error", stream_id=sid, error=repr(exc),
                        error_code=getattr(exc, "error_code", None))


# --- qlog: did the flow-control dance happen? -----------------------------------------------------


def qlog_frame_types(directory: Path) -> dict[str, set]:
    """{"sent": {...}, "received": {...}} frame types over every trace in `directory`."""
    seen: dict[str, set] = {"sent": set(), "received": set()}
    for path in Path(directory).glob("*.sqlog"):
        for record in path.read_text().split("\x1e"):
            record = record.strip()
            if not record:
                continue
            try:
                obj = json.loads(record)
            except ValueError:
                continue
            name = obj.get("name", "")
            if name in ("transport:packet_sent", "transport:packet_received"):
                kind = "sent" if name.endswith("sent") else "received"
                for frame in obj.get("data", {}).get("frames", []):
                    seen[kind].add(frame.get("frame_type"))
    return seen


def assert_flow_control_dance(directory: Path) -> dict:
    """Both sides had small windows: each raised its own (MAX_DATA /
    MAX_STREAM_DATA both ways, seen in our qlog).  aioquic and qh3 never send
    *_BLOCKED themselves; ours are checked from the connection's counters
    where we are the one blocked (and against our own server, where it is
    deterministic, in tests/test_quic_asyncio.py)."""
    seen = qlog_frame_types(directory)
    assert seen["sent"] & {"max_stream_data", "max_data"}, seen
    assert seen["received"] & {"max_stream_data", "max_data"}, seen
    return seen


# --- the suite ------------------------------------------------------------------------------------


def _in_executor(fn, *args: Any, **kwargs: Any):
    return asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


async def peer_event(peer, predicate, timeout: float, what: str, since: int) -> dict:
    """PeerProcess.wait_for off the event loop (blocking the loop would stop
    our own side from sending what the peer waits for), looking only at
    what the peer printed after `since` (the server serves the whole class)."""
    return await _in_executor(peer.wait_for, predicate, timeout, what, since)


# Fixtures (sync: peer processes do not need the event loop); one peer
# server per test class, i.e. per peer implementation.
@pytest.fixture(scope="class")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="class")
def peer_server(request, files):
    server = start_server(request.cls.peer, files)
    yield server
    server.stop()


@pytest.fixture(scope="class")
def small_window_server(request, files):
    server = start_server(request.cls.peer, files, **SMALL_WINDOWS)
    yield server
    server.stop()


class InteropSuite:
    peer: str = ""

    def client_groups(self) -> list[str]:
        return PEER_GROUPS[self.peer]

    # -- our client against their server ---------------------------------------------------------

    async def test_handshake_every_suite_and_group(self, files, peer_server):
        seen = []
        for suite_name, suite in SUITES.items():
            for group_name in self.client_groups():
                group = GROUPS[group_name]
                config = client_config(files, cipher_suites=[suite], groups=[group], key_share_groups=[group])
                async with connect("127.0.0.1", peer_server.port, configuration=config) as proto:
                    neg = proto.quic.tls.negotiated
                    assert (neg.cipher_suite, neg.group) == (suite, group), (suite_name, group_name)
                    assert proto.quic.alpn_protocol == ALPN
                    assert await request(proto, "echo", 1000) == expect(1000)
                seen.append((suite_name, group_name))
        handshakes = [e for e in peer_server.events("handshake")]
        assert {e.get("cipher_suite") for e in handshakes} >= set(SUITES.values())
        assert len(seen) == len(SUITES) * len(self.client_groups())

    async def test_one_and_a_hundred_concurrent_streams(self, files, peer_server):
        async with connect("127.0.0.1", peer_server.port, configuration=client_config(files)) as proto:
            assert await request(proto, "echo", 200_000) == expect(200_000)
            answers = await asyncio.wait_for(
                asyncio.gather(*(request(proto, "echo", 10_000 + i) for i in range(100))), TIMEOUT)
            assert answers == [expect(10_000 + i) for i in range(100)]

    async def test_small_flow_control_windows_both_ways(self, files, small_window_server, tmp_path):
        # Our windows small: the peer's download blocks on them; theirs small: our upload does.
        config = client_config(files, qlog_dir=str(tmp_path), **SMALL_WINDOWS)
        async with connect("127.0.0.1", small_window_server.port, configuration=config) as proto:
            assert await request(proto, "source 1000000") == expect(1_000_000)
            assert await request_text(proto, "sink", 1_000_000) == "%d %s" % expect(1_000_000)
            sent, received = proto.quic.stats.frames_sent, proto.quic.stats.frames_received
        assert_flow_control_dance(tmp_path)
        # Their 16 KB stream window held our upload back: we said so.
        assert sent.get("data_blocked", 0) + sent.get("stream_data_blocked", 0) > 0, sent
        assert received.get("max_data", 0) and received.get("max_stream_data", 0), received
        assert sent.get("max_data", 0) and sent.get("max_stream_data", 0), sent

    async def test_50mb_download_and_upload_byte_for_byte(self, files, peer_server):
        async with connect("127.0.0.1", peer_server.port, configuration=client_config(files)) as proto:
            assert await asyncio.wait_for(request(proto, f"source {BIG}"), 120) == expect(BIG)
            text = await asyncio.wait_for(request_text(proto, "sink", BIG), 120)
            assert text == "%d %s" % expect(BIG)

    async def test_uni_and_bidi_streams_opened_by_either_side(self, files, peer_server):
        pushed: dict[int, tuple] = {}
        arrived = asyncio.Event()

        async def on_stream(reader, writer):
            sid = writer.get_extra_info("stream_id")
            digest = await read_digest(reader)
            pushed[sid] = digest
            if not sid & 2:  # a bidi push: answer with what we got
                writer.write(("%d %s\n" % digest).encode())
                writer.write_eof()
            arrived.set()

        async with connect("127.0.0.1", peer_server.port, configuration=client_config(files),
                           stream_handler=on_stream) as proto:
            sid_text = await request_text(proto, "push-uni 70000")
            await asyncio.wait_for(arrived.wait(), TIMEOUT)
            assert pushed[int(sid_text)] == expect(70000)
            assert int(sid_text) & 3 == 3  # server-initiated uni
            assert await request_text(proto, "push-bidi 80000") == "push-bidi %d %s" % expect(80000)
            assert any(sid & 3 == 1 for sid in pushed)  # server-initiated bidi
            mark = peer_server.mark()
            _, writer = await proto.create_stream(is_unidirectional=True)
            await write_pattern(writer, 90000)
            uni_sid = writer.get_extra_info("stream_id")
            line = await peer_event(peer_server, lambda l: l.get("event") == "uni_received" and l["stream_id"] == uni_sid,
                                    TIMEOUT, "our uni stream", mark)
            assert (line["bytes"], line["sha256"]) == expect(90000)

    async def test_reset_stream_and_stop_sending_both_ways(self, files, peer_server):
        mark = peer_server.mark()
        async with connect("127.0.0.1", peer_server.port, configuration=client_config(files)) as proto:
            # They reset: our reader raises with their code.
            reader, writer = await proto.create_stream()
            writer.write(b"reset 7\n")
            with pytest.raises(StreamResetError) as info:
                await asyncio.wait_for(reader.read(), TIMEOUT)
            assert info.value.error_code == 7
            # They send STOP_SENDING: our writes fail with their code.
            reader, writer = await proto.create_stream()
            writer.write(b"stop 8\n")
            with pytest.raises(StreamResetError) as info:
                for _ in range(1000):
                    writer.write(b"x" * 1000)
                    await writer.drain()
                    await asyncio.sleep(0.01)
            assert info.value.error_code == 8
            # We reset our sending side: they see RESET_STREAM with our code.
            reader, writer = await proto.create_stream()
            writer.write(b"echo\n" + b"y" * 1000)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.transport.abort(10)
            sid = writer.get_extra_info("stream_id")
            await peer_event(peer_server, lambda l: l.get("event") == "stream_reset" and l["stream_id"] == sid
                             and l["error_code"] == 10, TIMEOUT, "our RESET_STREAM", mark)
            # We send STOP_SENDING on a big download: they see it and reset.
            reader, writer = await proto.create_stream()
            writer.write(b"source 50000000\n")
            writer.write_eof()
            await reader.readexactly(1000)
            sid = writer.get_extra_info("stream_id")
            proto.stop_sending(sid, 9)
            await peer_event(peer_server, lambda l: l.get("event") == "stop_sending" and l["stream_id"] == sid
                             and l["error_code"] == 9, TIMEOUT, "our STOP_SENDING", mark)
            with pytest.raises(StreamResetError) as info:
                await asyncio.wait_for(read_digest(reader), TIMEOUT)
            assert info.value.error_code == 9
            # The connection is still fine.
            assert await request(proto, "echo", 5000) == expect(5000)

    async def test_application_close_codes_seen_by_the_peer(self, files, peer_server):
        mark = peer_server.mark()
        async with connect("127.0.0.1", peer_server.port, configuration=client_config(files)) as proto:
            proto.close(error_code=42, reason_phrase="done here")
            await asyncio.wait_for(proto.wait_closed(), TIMEOUT)
        line = await peer_event(peer_server, lambda l: l.get("event") == "terminated" and l["error_code"] == 42,
                                TIMEOUT, "our application close", mark)
        assert line["frame_type"] is None and line["reason"] == "done here"
        async with connect("127.0.0.1", peer_server.port, configuration=client_config(files)) as proto:
            reader, writer = await proto.create_stream()
            writer.write(b"close 43\n")
            await asyncio.wait_for(proto.wait_closed(), TIMEOUT)
            assert proto._terminated.error_code == 43 and proto._terminated.frame_type is None
            with pytest.raises(ConnectionError):
                await reader.read()

    async def test_idle_timeout(self, files, peer_server):
        loop = asyncio.get_running_loop()
        config = client_config(files, idle_timeout=1.0)
        mark = peer_server.mark()
        async with connect("127.0.0.1", peer_server.port, configuration=config) as proto:
            assert await request(proto, "echo", 100) == expect(100)
            t0 = loop.time()
            await asyncio.wait_for(proto.wait_closed(), 10)
            assert 0.9 <= loop.time() - t0 <= 4.0
        # The peer applies min(ours, theirs) = 1 s too.
        await peer_event(peer_server, lambda l: l.get("event") == "terminated", 10, "the peer's idle timeout", mark)

    # -- their client against our server ----------------------------------------------------------

    async def test_their_client_every_suite_and_group(self, files):
        for suite_name, suite in SUITES.items():
            ours = PyquicTestServer()
            port = await ours.start(server_config(files))
            try:
                results = await _in_executor(run_client, self.peer, port, files, [{"op": "echo", "size": 1000}],
                                             cipher_suites=[suite], timeout=TIMEOUT)
                assert_all_ok(results)
                assert (await ours.wait_event(event="handshake"))["cipher_suite"] == suite, suite_name
            finally:
                await ours.stop()
        # qh3's client cannot parse a HelloRetryRequest: it must offer the share.
        extra = ("--offer-ec-key-shares",) if self.peer == "qh3" else ()
        for group_name in self.client_groups():
            ours = PyquicTestServer()
            port = await ours.start(server_config(files, groups=[GROUPS[group_name]]))
            try:
                results = await _in_executor(run_client, self.peer, port, files, [{"op": "echo", "size": 1000}],
                                             timeout=TIMEOUT, extra_args=extra)
                assert_all_ok(results)
                assert (await ours.wait_event(event="handshake"))["group"] == GROUPS[group_name], group_name
            finally:
                await ours.stop()

    async def test_their_client_key_exchange_as_the_benchmark_sets_it(self, files):
        # bench/bench_quic.py measures handshakes with raw_peer --groups
        # x25519: the peer's client must then offer X25519 alone, or our
        # server (which prefers X25519MLKEM768) would pick the hybrid.
        ours = PyquicTestServer()
        port = await ours.start(server_config(files))
        try:
            for extra, group in (((), GROUPS["X25519MLKEM768"] if self.peer == "qh3" else GROUPS["x25519"]),
                                 (("--groups", "x25519"), GROUPS["x25519"])):
                ours.events.clear()
                results = await _in_executor(run_client, self.peer, port, files, [{"op": "echo", "size": 10}],
                                             timeout=TIMEOUT, extra_args=extra)
                assert_all_ok(results)
                assert (await ours.wait_event(event="handshake"))["group"] == group, extra
        finally:
            await ours.stop()

    async def test_their_client_streams_transfers_resets_and_close(self, files):
        ours = PyquicTestServer()
        port = await ours.start(server_config(files))
        ops = [
            {"op": "echo", "size": 10_000, "streams": 100},
            {"op": "echo", "size": 200_000},
            {"op": "source", "size": BIG, "timeout": 120},
            {"op": "sink", "size": BIG, "timeout": 120},
            {"op": "push_uni", "size": 70_000},
            {"op": "push_bidi", "size": 80_000},
            {"op": "uni", "size": 90_000},
            {"op": "request_reset", "code": 7},
            {"op": "request_stop", "code": 8},
            {"op": "stop", "code": 9},
            {"op": "reset", "code": 10},
            {"op": "request_close", "code": 43},
        ]
        try:
            results = await _in_executor(run_client, self.peer, port, files, ops, timeout=240)
            assert_all_ok(results)
            by_op = {r["op"]: r for r in results}
            uni = await ours.wait_event(event="uni_received", stream_id=by_op["uni"]["stream_id"])
            assert (uni["bytes"], uni["sha256"]) == expect(90_000)
            await ours.wait_event(event="stream_reset", error_code=10)
            await ours.wait_event(event="stop_sending", error_code=9)
            await ours.wait_event(event="terminated", error_code=43)
        finally:
            await ours.stop()

    async def test_their_client_small_windows_and_application_close(self, files, tmp_path):
        ours = PyquicTestServer()
        port = await ours.start(server_config(files, qlog_dir=str(tmp_path), **SMALL_WINDOWS))
        ops = [{"op": "source", "size": 1_000_000}, {"op": "sink", "size": 1_000_000},
               {"op": "close", "code": 44}]
        try:
            results = await _in_executor(run_client, self.peer, port, files, ops, timeout=TIMEOUT,
                                         **SMALL_WINDOWS)
            assert_all_ok(results)
            event = await ours.wait_event(event="terminated", error_code=44)
            assert event["frame_type"] is None
        finally:
            await ours.stop()
        assert_flow_control_dance(tmp_path)

    async def test_their_client_refused_past_max_connections(self, files):
        # One connection slot, held by our own client: the peer's client gets
        # an Initial with CONNECTION_CLOSE(CONNECTION_REFUSED) and says so.
        ours = PyquicTestServer()
        port = await ours.start(server_config(files), max_connections=1)
        try:
            async with connect("127.0.0.1", port, configuration=client_config(files)) as proto:
                assert await request(proto, "echo", 100) == expect(100)
                client = start_client(self.peer, port, files, [{"op": "echo", "size": 100}], op_timeout=TIMEOUT)
                try:
                    await _in_executor(client.wait_for, lambda l: l.get("event") == "done", TIMEOUT,
                                       "the refused client to finish")
                    refused = client.events("terminated_in_handshake")
                    assert refused and refused[0]["error_code"] == 0x02, client.describe()
                    assert client.events("connect_failed") and client.events("done")[0]["ok"] is False
                finally:
                    client.stop()
                assert ours.server._endpoint.stats["refused"] >= 1
                # The slot's holder is untouched.
                assert await request(proto, "echo", 200) == expect(200)
        finally:
            await ours.stop()

    async def test_our_client_sends_0rtt_to_their_server(self, files, peer_server):
        tickets: list = []
        async with connect("127.0.0.1", peer_server.port, configuration=client_config(files),
                           session_ticket_handler=tickets.append) as proto:
            assert await request(proto, "echo", 10) == expect(10)
        assert tickets, "the peer's server sent no session ticket"
        mark = peer_server.mark()
        config = client_config(files, session_ticket=tickets[-1], enable_early_data=True)
        async with connect("127.0.0.1", peer_server.port, configuration=config, wait_connected=False) as proto:
            # Written and sent before this task yields, so before any answer
            # from the server is read: it can only leave in 0-RTT packets.
            reader, writer = await proto.create_stream()
            writer.write(b"echo\n")
            for chunk in chunks(20_000):
                writer.write(chunk)
            writer.write_eof()
            proto.transmit()
            assert await asyncio.wait_for(read_digest(reader), TIMEOUT) == expect(20_000)
            stats = proto._quic.stats
            assert stats.zero_rtt_packets_sent >= 1 and not stats.zero_rtt_rejected, stats.as_dict()
            negotiated = proto._quic.tls.negotiated
            assert negotiated.early_data_accepted and negotiated.resumed
        line = await peer_event(peer_server, lambda l: l.get("event") == "handshake" and l.get("session_resumed"),
                                TIMEOUT, "the resumed handshake", mark)
        assert line["early_data_accepted"]

    async def test_their_client_sends_0rtt_to_our_server(self, files):
        ours = PyquicTestServer()
        port = await ours.start(server_config(files, max_early_data=0xFFFFFFFF))
        try:
            results = await _in_executor(run_client, self.peer, port, files,
                                         [{"op": "zero_rtt", "size": 20_000}], timeout=TIMEOUT)
            assert_all_ok(results)
            assert results[0]["early_data_accepted"] and results[0]["session_resumed"], results
            event = await ours.wait_event(event="handshake", early_data_accepted=True)
            assert event["zero_rtt_packets"] >= 1
        finally:
            await ours.stop()

    async def test_their_client_idle_timeout(self, files):
        ours = PyquicTestServer()
        port = await ours.start(server_config(files, idle_timeout=1.0))
        try:
            results = await _in_executor(run_client, self.peer, port, files,
                                         [{"op": "echo", "size": 100}, {"op": "wait_terminated", "timeout": 10}],
                                         timeout=TIMEOUT)
            assert_all_ok(results)
            assert 0.5 <= results[1]["after"] <= 4.0
            await ours.wait_event(event="terminated", timeout=10)
        finally:
            await ours.stop()

    # -- through the impairing relay ------------------------------------------------------------------

    IMPAIRED = Impairment(loss=0.05, reorder=0.05, reorder_gap=3, duplicate=0.02)

    async def _blackhole_when_busy(self, relay: UdpRelay, after_packets: int = 400, blackhole: float = 2.0) -> None:
        async def busy() -> None:
            while relay.stats["to_client"].received + relay.stats["to_server"].received < after_packets:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(busy(), TIMEOUT)
        if blackhole:
            relay.blackhole(blackhole)

    async def _our_client_through(self, files: dict, relay: UdpRelay, disturb) -> Any:
        """Our client downloads and uploads RELAYED bytes through `relay`
        while disturb(relay) runs; returns the connection's stats."""
        host, port = await relay.start()
        async with connect(host, port, configuration=client_config(files)) as proto:
            disturbing = asyncio.ensure_future(disturb(relay))
            assert await asyncio.wait_for(request(proto, f"source {RELAYED}"), 90) == expect(RELAYED)
            await disturbing
            text = await asyncio.wait_for(request_text(proto, "sink", RELAYED), 90)
            assert text == "%d %s" % expect(RELAYED)
            return proto._quic.stats

    async def test_our_client_through_loss_reordering_duplication_and_blackhole(self, files, peer_server):
        relay = UdpRelay(("127.0.0.1", peer_server.port), to_server=self.IMPAIRED, to_client=self.IMPAIRED, seed=5)
        try:
            await self._our_client_through(files, relay, self._blackhole_when_busy)
            st = relay.stats
            assert st["to_client"].dropped_loss and st["to_client"].duplicated and st["to_client"].reordered
            assert st["to_client"].dropped_blackhole + st["to_server"].dropped_blackhole > 0
        finally:
            relay.close()

    async def _rebind_when_busy(self, relay: UdpRelay) -> None:
        await self._blackhole_when_busy(relay, blackhole=0)
        await relay.rebind()

    async def test_our_client_through_a_nat_rebinding(self, files, peer_server):
        # The peer's server sees our client move to a new port mid-transfer.
        relay = UdpRelay(("127.0.0.1", peer_server.port), seed=7)
        try:
            stats = await self._our_client_through(files, relay, self._rebind_when_busy)
            # The peer's server checked the new path: we answered its PATH_CHALLENGE.
            sent = stats.frames_sent
            assert relay.rebinds == 1 and sent.get("path_response", 0) >= 1, sent
        finally:
            relay.close()

    async def test_their_client_through_a_nat_rebinding(self, files):
        # Our server follows the peer's client to its new port and validates it.
        ours = PyquicTestServer()
        port = await ours.start(server_config(files))
        relay = UdpRelay(("127.0.0.1", port), seed=8)
        rhost, rport = await relay.start()
        try:
            ops = [{"op": "source", "size": RELAYED, "timeout": 90}, {"op": "sink", "size": RELAYED, "timeout": 90}]
            job = _in_executor(run_client, self.peer, rport, files, ops, timeout=150)
            await self._blackhole_when_busy(relay, blackhole=0)
            (conn,) = ours.server._endpoint.connections
            before = conn._path.addr
            await relay.rebind()
            results = await asyncio.wait_for(job, 160)
            assert_all_ok(results)
            stats = conn.stats
            assert relay.rebinds == 1 and stats.path_migrations == 1 and stats.paths_validated == 1, stats.as_dict()
            assert conn._path.addr != before and stats.path_validation_failures == 0
        finally:
            relay.close()
            await ours.stop()

    async def test_their_client_through_loss_reordering_duplication_and_blackhole(self, files):
        ours = PyquicTestServer()
        port = await ours.start(server_config(files))
        relay = UdpRelay(("127.0.0.1", port), to_server=self.IMPAIRED, to_client=self.IMPAIRED, seed=6)
        rhost, rport = await relay.start()
        try:
            ops = [{"op": "source", "size": RELAYED, "timeout": 90}, {"op": "sink", "size": RELAYED, "timeout": 90}]
            job = _in_executor(run_client, self.peer, rport, files, ops, timeout=150)
            await self._blackhole_when_busy(relay)
            results = await asyncio.wait_for(job, 160)
            assert_all_ok(results)
            st = relay.stats
            assert st["to_server"].dropped_loss and st["to_client"].dropped_loss
            assert st["to_client"].dropped_blackhole + st["to_server"].dropped_blackhole > 0
        finally:
            relay.close()
            await ours.stop()
