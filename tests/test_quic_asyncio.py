# pyquic.asyncio end to end, pyquic on both sides over loopback: connect()
# and serve(), streams as StreamReader/StreamWriter (both directions, uni
# and bidi, resets), backpressure, closing with codes, idle timeout, Retry,
# IPv6, SSLKEYLOGFILE and qlog files, and proof that the UDP layer really
# batched (GSO sends, GRO segments) during a transfer.  Interop with other
# stacks lives in test_quic_interop_*.py.
from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest

from pyquic.asyncio import ConnectionTerminatedError, StreamResetError, connect, serve
from pyquic.asyncio.protocol import STREAM_WRITE_HIGH, STREAM_WRITE_LOW
from tests.peers.pattern import chunks
from tests.quic_interop_cases import (
    SMALL_WINDOWS,
    PyquicTestServer,
    client_config,
    expect,
    qlog_frame_types,
    request,
    request_text,
    server_config,
)
from tests.quic_peers import pki_files

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def ours(files):
    server = PyquicTestServer()
    server.port = await server.start(server_config(files))
    yield server
    await server.stop()


async def test_connect_serve_echo_and_transfers(files, ours):
    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        assert proto.quic.handshake_complete
        assert await request(proto, "echo", 100_000) == expect(100_000)
        assert await asyncio.wait_for(request(proto, "source 3000000"), TIMEOUT) == expect(3_000_000)
        assert await asyncio.wait_for(request_text(proto, "sink", 3_000_000), TIMEOUT) == "%d %s" % expect(3_000_000)
        answers = await asyncio.wait_for(asyncio.gather(*(request(proto, "echo", 1000 + i) for i in range(50))), TIMEOUT)
        assert answers == [expect(1000 + i) for i in range(50)]
        await asyncio.wait_for(proto.ping(), TIMEOUT)


async def test_the_udp_layer_batches_with_gso_and_gro(files, ours):
    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        assert await asyncio.wait_for(request(proto, "source 5000000"), TIMEOUT) == expect(5_000_000)
        assert await asyncio.wait_for(request_text(proto, "sink", 5_000_000), TIMEOUT) == "%d %s" % expect(5_000_000)
        client = proto._sender.stats
    server = ours.server.udp.stats
    # Both directions carried ~4000 full packets: most went out in GSO
    # writes and arrived as GRO super-datagrams.
    for stats in (client, server):
        assert stats.gso_sends > 0 and stats.gso_segments > stats.gso_sends * 4, stats
        assert stats.gro_batches > 0 and stats.gro_segments > stats.gro_batches * 4, stats
    assert client.datagrams_sent > 3000 and server.datagrams_sent > 3000


async def test_streams_opened_by_the_server_and_uni_streams(files, ours):
    got = {}

    async def on_stream(reader, writer):
        sid = writer.get_extra_info("stream_id")
        data = await reader.read()
        got[sid] = data
        if not sid & 2:
            writer.write(b"%d\n" % len(data))
            writer.write_eof()

    async with connect("127.0.0.1", ours.port, configuration=client_config(files), stream_handler=on_stream) as proto:
        sid = int(await request_text(proto, "push-uni 5000"))
        assert sid & 3 == 3
        assert await request_text(proto, "push-bidi 6000") == "push-bidi 6000"
        _, writer = await proto.create_stream(is_unidirectional=True)
        writer.write(b"u" * 7000)
        writer.write_eof()
        event = await ours.wait_event(event="uni_received", stream_id=writer.get_extra_info("stream_id"))
        assert event["bytes"] == 7000
    assert len(got[sid]) == 5000


async def test_resets_and_stop_sending(files, ours):
    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        reader, writer = await proto.create_stream()
        writer.write(b"reset 5\n")
        with pytest.raises(StreamResetError) as info:
            await asyncio.wait_for(reader.read(), TIMEOUT)
        assert info.value.error_code == 5
        reader, writer = await proto.create_stream()
        writer.write(b"stop 6\n")
        with pytest.raises(StreamResetError) as info:
            for _ in range(500):
                writer.write(b"x" * 100)
                await writer.drain()
                await asyncio.sleep(0.01)
        assert info.value.error_code == 6
        reader, writer = await proto.create_stream()
        writer.write(b"echo\nabc")
        await asyncio.sleep(0.05)
        writer.transport.abort(11)
        await ours.wait_event(event="stream_reset", stream_id=writer.get_extra_info("stream_id"), error_code=11)
        assert await request(proto, "echo", 10) == expect(10)


async def test_close_codes_both_ways(files, ours):
    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        proto.close(error_code=77, reason_phrase="bye")
        await asyncio.wait_for(proto.wait_closed(), TIMEOUT)
    event = await ours.wait_event(event="terminated", error_code=77)
    assert event["frame_type"] is None and event["reason"] == "bye"
    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        reader, writer = await proto.create_stream()
        writer.write(b"close 78\n")
        await asyncio.wait_for(proto.wait_closed(), TIMEOUT)
        assert proto._terminated.error_code == 78
        with pytest.raises(ConnectionTerminatedError):
            await reader.read()


async def test_idle_timeout_fires_on_the_loop_clock(files, ours):
    loop = asyncio.get_running_loop()
    async with connect("127.0.0.1", ours.port, configuration=client_config(files, idle_timeout=0.5)) as proto:
        t0 = loop.time()
        await asyncio.wait_for(proto.wait_closed(), 5)
        assert 0.45 <= loop.time() - t0 < 2.0
    await ours.wait_event(event="terminated", timeout=5)


async def test_handshake_failure_raises_from_connect(files, ours, tmp_path):
    from tests.pki import make_test_pki

    wrong = make_test_pki("p384").write_pem(tmp_path)  # a CA that did not sign the server
    config = client_config(files)
    config.load_verify_locations(cafile=str(wrong["ca"]))
    with pytest.raises(ConnectionError):
        async with connect("127.0.0.1", ours.port, configuration=config):
            pass


async def until(condition, what: str) -> None:
    """Wait for `condition` (the timeout only turns a hang into a failure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


async def test_reader_backpressure_returns_credit_as_the_application_reads(files, ours):
    window = SMALL_WINDOWS["max_stream_data"]
    size = 1_000_000
    config = client_config(files, **SMALL_WINDOWS)
    async with connect("127.0.0.1", ours.port, configuration=config) as proto:
        quic = proto.quic
        # The feature is on: credit goes back only through the reader.
        assert quic.auto_consume is False
        sent, received = quic.stats.frames_sent, quic.stats.frames_received

        def credit_updates() -> tuple[int, int]:
            return sent.get("max_stream_data", 0), sent.get("max_data", 0)

        before = credit_updates()
        reader, writer = await proto.create_stream()
        sid = writer.get_extra_info("stream_id")
        writer.write(b"source %d\n" % size)
        writer.write_eof()
        # Not reading: the server sends one stream window, no more, and says
        # it is blocked (STREAM_DATA_BLOCKED).
        await until(lambda: received.get("stream_data_blocked", 0) >= 1 and len(reader._buffer) >= window,
                    f"the server to fill the window and block ({received})")
        (server,) = [p.quic for p in ours.protocols]
        # Withheld while we do not read, however long we wait: a few round trips later
        # (acknowledged PINGs) nothing more has arrived and no credit went back,
        # and the server still holds all the rest.
        for _ in range(3):
            await asyncio.wait_for(proto.ping(), TIMEOUT)
        assert len(reader._buffer) == window
        assert credit_updates() == before
        assert server.stream_send_buffered(sid) >= size - window
        # Reading one window returns its credit: MAX_STREAM_DATA goes out and the
        # next bytes come.
        first = await asyncio.wait_for(reader.readexactly(window), TIMEOUT)
        await until(lambda: credit_updates()[0] > before[0] and len(reader._buffer) > 0,
                    "credit to go back and more data to come")
        total, digest = len(first), hashlib.sha256(first)
        while data := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            total += len(data)
            digest.update(data)
        assert (total, digest.hexdigest()) == expect(size)


async def test_readexactly_beyond_the_window_does_not_deadlock(files, ours):
    # An SMB READ response of 8 MiB over an 8 MiB window (examples/smb_quic):
    # a reader waiting for more than it holds gives the held bytes' credit
    # back, as asyncio resumes a paused transport, so the rest can come.
    window = SMALL_WINDOWS["max_stream_data"]
    size = 4 * window + 123
    config = client_config(files, **SMALL_WINDOWS)
    async with connect("127.0.0.1", ours.port, configuration=config) as proto:
        reader, writer = await proto.create_stream()
        writer.write(b"source %d\n" % size)
        writer.write_eof()
        data = await asyncio.wait_for(reader.readexactly(size), TIMEOUT)
        assert (len(data), hashlib.sha256(data).hexdigest()) == expect(size)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""


async def test_writer_drain_waits_for_the_peer(files, ours):
    size = 20_000_000
    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        reader, writer = await proto.create_stream()
        sid = writer.get_extra_info("stream_id")
        writer.write(b"sink\n")
        pieces = list(chunks(size, 1 << 20))
        for i in range(0, len(pieces), 2):
            batch = pieces[i:i + 2]  # two pieces: above the high mark on their own
            written = sum(map(len, batch))
            assert written > STREAM_WRITE_HIGH
            writer.writelines(batch)
            # The writer sees what the core holds unacknowledged, all of this
            # batch at least (nothing is acknowledged before the loop runs):
            # above the high mark, so drain() must wait ...
            buffered = writer.transport.get_write_buffer_size()
            assert buffered == proto.quic.stream_send_buffered(sid) >= written
            await asyncio.wait_for(writer.drain(), TIMEOUT)
            # ... until the peer acknowledged enough to bring it under the low mark.
            assert writer.transport.get_write_buffer_size() <= STREAM_WRITE_LOW
        writer.write_eof()
        assert (await asyncio.wait_for(reader.read(), TIMEOUT)).decode().split()[0] == str(size)


async def test_small_windows_make_us_send_blocked_frames(files, tmp_path):
    ours = PyquicTestServer()
    port = await ours.start(server_config(files, qlog_dir=str(tmp_path / "server"), **SMALL_WINDOWS))
    try:
        config = client_config(files, qlog_dir=str(tmp_path / "client"), **SMALL_WINDOWS)
        async with connect("127.0.0.1", port, configuration=config) as proto:
            assert await asyncio.wait_for(request(proto, "source 1000000"), TIMEOUT) == expect(1_000_000)
            text = await asyncio.wait_for(request_text(proto, "sink", 1_000_000), TIMEOUT)
            assert text == "%d %s" % expect(1_000_000)
    finally:
        await ours.stop()
    client, server = qlog_frame_types(tmp_path / "client"), qlog_frame_types(tmp_path / "server")
    for side in (client, server):
        assert side["sent"] & {"max_data", "max_stream_data"}, side
        assert side["sent"] & {"data_blocked", "stream_data_blocked"}, side
        assert side["received"] & {"data_blocked", "stream_data_blocked"}, side


async def test_qlog_files_and_sslkeylogfile(files, tmp_path, monkeypatch):
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    ours = PyquicTestServer()
    port = await ours.start(server_config(files, qlog_dir=str(tmp_path / "qlog")))
    try:
        config = client_config(files, qlog_dir=str(tmp_path / "qlog"))
        async with connect("127.0.0.1", port, configuration=config) as proto:
            assert await request(proto, "echo", 5000) == expect(5000)
            odcid = proto.quic.original_destination_connection_id.hex()
    finally:
        await ours.stop()
    names = sorted(p.name for p in (tmp_path / "qlog").glob("*.sqlog"))
    assert names == [f"{odcid}-client.sqlog", f"{odcid}-server.sqlog"]
    for name in names:
        records = [r for r in (tmp_path / "qlog" / name).read_text().split("\x1e") if r.strip()]
        header = json.loads(records[0])
        assert header["qlog_format"] == "JSON-SEQ"
        assert any(json.loads(r).get("name") == "transport:packet_sent" for r in records[1:])
    labels = {line.split()[0] for line in keylog.read_text().splitlines() if line.strip()}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} <= labels


async def test_ipv6(files):
    ours = PyquicTestServer()
    port = await ours.start(server_config(files), host="::1")
    try:
        config = client_config(files)
        async with connect("::1", port, configuration=config) as proto:
            assert await request(proto, "echo", 20_000) == expect(20_000)
    finally:
        await ours.stop()


async def test_retry_and_many_clients_then_server_close(files):
    server = PyquicTestServer()
    server.server = await serve("127.0.0.1", 0, configuration=server_config(files),
                                create_protocol=server.protocol_factory(), stream_handler=server.handle, retry=True)
    port = server.server.local_address[1]
    try:
        async def one(i: int):
            async with connect("127.0.0.1", port, configuration=client_config(files)) as proto:
                return await request(proto, "echo", 1000 + i)

        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(10))), TIMEOUT)
        assert results == [expect(1000 + i) for i in range(10)]
        assert server.server.endpoint.stats["retry"] >= 10
        # Close with live connections: clients see the server's close.
        config = client_config(files)
        async with connect("127.0.0.1", port, configuration=config) as proto:
            t0 = time.monotonic()
            server.server.close()
            await asyncio.wait_for(proto.wait_closed(), TIMEOUT)
            assert proto._terminated.error_code == 0
            assert time.monotonic() - t0 < 5
        await asyncio.wait_for(server.server.wait_closed(), TIMEOUT)
        assert server.server.udp.closed
    finally:
        server.server.close()


async def test_a_bug_fails_the_connection_loudly_instead_of_stalling(files, ours, caplog):
    class Broken(Exception):
        pass

    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        reader, writer = await proto.create_stream()
        original = proto._quic.receive_datagram

        def explode(*args, **kwargs):
            proto._quic.receive_datagram = original
            raise Broken("core bug")

        proto._quic.receive_datagram = explode
        writer.write(b"echo\nhello")
        with pytest.raises(ConnectionTerminatedError) as info:
            await asyncio.wait_for(reader.read(), TIMEOUT)
        assert info.value.error_code == 1 and "core bug" in info.value.reason_phrase
        await asyncio.wait_for(proto.wait_closed(), TIMEOUT)
    assert any("core bug" in r.getMessage() or r.exc_info for r in caplog.records)


async def test_streams_created_before_writing_get_distinct_ids(files, ours):
    async with connect("127.0.0.1", ours.port, configuration=client_config(files)) as proto:
        pairs = [await proto.create_stream() for _ in range(3)]
        ids = [w.get_extra_info("stream_id") for _, w in pairs]
        assert ids == [0, 4, 8]
        for i, (reader, writer) in enumerate(reversed(pairs)):
            writer.write(b"echo\n%d" % i)
            writer.write_eof()
        answers = [await asyncio.wait_for(r.read(), TIMEOUT) for r, _ in reversed(pairs)]
        assert answers == [b"0", b"1", b"2"]


async def test_subclass_attributes_do_not_clash_with_the_protocol(files, ours, caplog):
    # aioquic-style subclasses keep their own per-stream table, often named
    # _streams; the protocol's internals must not share such names.
    from pyquic.asyncio import QuicConnectionProtocol

    class Mine(QuicConnectionProtocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._streams = {"mine": object()}
            self._tasks_of_mine = []

    async with connect("127.0.0.1", ours.port, configuration=client_config(files), create_protocol=Mine) as proto:
        assert await request(proto, "echo", 1000) == expect(1000)
        proto.close()
        await asyncio.wait_for(proto.wait_closed(), TIMEOUT)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
