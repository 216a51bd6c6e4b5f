# hq-interop (HTTP/0.9 over QUIC, ALPN "hq-interop"): the sans-I/O codec
# (pyquic/hq), then pyquic.asyncio.hq against real peers over loopback UDP --
# aioquic 1.7.2 (its own H0Connection) and qh3 in separate processes
# (tests/peers/aioquic_hq.py), in both roles -- and against itself.  Files
# are random (1 KiB, 1 MiB, 10 MiB) and checked by SHA-256.  A peer that
# does not start fails the test (tests/quic_peers.py raises); nothing skips.
from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path

import pytest

from pyquic.asyncio import protocol as protocol_mod
from pyquic.asyncio.hq import (
    CHUNK_SIZE,
    HqAccessRecord,
    HqResponseTooLarge,
    HqStreamError,
    connect_hq,
    serve_hq,
)
from pyquic.config import QuicConfiguration
from pyquic.hq import (
    ALPN,
    HQ_ERROR,
    MAX_REQUEST_LINE,
    HqPathError,
    HqRequest,
    HqRequestError,
    HqRequestTooLong,
    HqUsageError,
    RequestParser,
    encode_request,
    parse_request_line,
    path_segments,
    resolve_path,
)
from tests.quic_peers import ROOT, PeerProcess, START_TIMEOUT, pki_files

HQ_PEER = ROOT / "tests" / "peers" / "aioquic_hq.py"
PEERS = ("aioquic", "qh3")
TIMEOUT = 60.0
SIZES = {"small.bin": 1024, "medium.bin": 1 << 20, "large.bin": 10 << 20}
MISSING = "/no-such-file.bin"
TRAVERSAL = "/../secret.txt"  # the file exists, one level above the root


# --- the sans-I/O codec ------------------------------------------------------------------------


def test_alpn_and_encode_request():
    assert ALPN == "hq-interop"
    assert encode_request("/a/b.txt") == b"GET /a/b.txt\r\n"
    for bad in ("a.txt", "", "/a b", "/a\r\n", "/a\x00"):
        with pytest.raises(HqUsageError):
            encode_request(bad)
    with pytest.raises(HqUsageError):
        encode_request("/x", method="POST")
    with pytest.raises(HqUsageError):
        encode_request("/" + "a" * MAX_REQUEST_LINE)
    # ".." is the server's business: the client sends it as given.
    assert encode_request("/../etc/passwd") == b"GET /../etc/passwd\r\n"


def test_parse_request_line():
    assert parse_request_line(b"GET /x") == HqRequest("GET", "/x")
    assert parse_request_line("GET /caf\u00e9".encode()) == HqRequest("GET", "/caf\u00e9")
    with pytest.raises(HqPathError):
        parse_request_line(b"GET x")
    for bad in (b"", b"GET", b"GET  /x", b"GET /x HTTP/1.0", b"POST /x", b"get /x", b"GET /\xff", b"GET /a\tb",
                b"GET /a\x7f", b" GET /x"):
        with pytest.raises(HqRequestError):
            parse_request_line(bad)


@pytest.mark.parametrize("wire", [b"GET /index.html\r\n", b"GET /index.html\n"])
def test_parser_byte_by_byte(wire):
    parser = RequestParser()
    results = [parser.feed(wire[i:i + 1]) for i in range(len(wire))]
    assert results[:-1] == [None] * (len(wire) - 1)
    assert results[-1] == HqRequest("GET", "/index.html")
    # What follows the line is not a request: ignored.
    assert parser.feed(b"junk", end_stream=True) == HqRequest("GET", "/index.html")


def test_parser_fin_ends_a_line_without_ending():
    parser = RequestParser()
    assert parser.feed(b"GET /a") is None
    assert parser.feed(b"", end_stream=True) == HqRequest("GET", "/a")
    with pytest.raises(HqRequestError, match="without a request"):
        RequestParser().feed(b"", end_stream=True)


def test_parser_caps_the_line():
    cap = 64
    exact = b"GET /" + b"a" * (cap - 7) + b"\r\n"
    assert len(exact) == cap
    assert RequestParser(cap).feed(exact) is not None
    over = b"GET /" + b"a" * (cap - 6) + b"\r\n"
    with pytest.raises(HqRequestTooLong):
        RequestParser(cap).feed(over)
    # Without a line ending: refused once more than the cap arrived, and the
    # parser never holds more than cap + 1 bytes whatever one feed brings.
    parser = RequestParser(cap)
    assert parser.feed(b"GET /" + b"a" * (cap - 5)) is None
    assert parser.buffered == cap
    with pytest.raises(HqRequestTooLong):
        parser.feed(b"b" * 1_000_000)
    assert parser.buffered == cap + 1
    assert RequestParser().max_request_line == MAX_REQUEST_LINE == 8192
    assert RequestParser(cap).wanted() == cap + 1


def test_path_segments_refuse_escapes():
    assert path_segments("/a/./b//c") == ("a", "b", "c")
    assert path_segments("/") == ()
    assert path_segments("/%2e%2e/x") == ("%2e%2e", "x")  # no percent-decoding: a literal name
    assert path_segments("/...") == ("...",)
    for bad in ("/../etc/passwd", "/a/../../b", "/a/..", "relative", "/a\\..\\b"):
        with pytest.raises(HqPathError):
            path_segments(bad)
    root = Path("/srv/www")
    assert resolve_path(root, "/a/b") == root / "a" / "b"
    with pytest.raises(HqPathError):
        resolve_path(root, "/x/../../etc/passwd")


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def www(tmp_path_factory) -> Path:
    """The served root: three random files; beside it (outside the root) a
    secret, and inside it a symbolic link pointing at the secret."""
    base = tmp_path_factory.mktemp("hq")
    root = base / "www"
    root.mkdir()
    for name, size in SIZES.items():
        (root / name).write_bytes(os.urandom(size))
    (root / "sub").mkdir()
    (root / "sub" / "nested.txt").write_bytes(b"nested file\n")
    (base / "secret.txt").write_bytes(b"not for you\n")
    (root / "link-out").symlink_to(base / "secret.txt")
    return root


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests(root: Path) -> dict[str, str]:
    return {name: sha((root / name).read_bytes()) for name in SIZES}


def client_config(files: dict) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name="localhost")
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


def server_config(files: dict) -> QuicConfiguration:
    config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    config.load_cert_chain(files["server_chain"], files["server_key"])
    return config


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / max(seconds, 1e-9) / 1e6:.1f} MB/s"


# --- peer processes ------------------------------------------------------------------------------------


def start_peer_server(impl: str, files: dict, root: Path) -> PeerProcess:
    args = ["--impl", impl, "--role", "server", "--port", "0", "--root", str(root),
            "--cert", str(files["server_chain"]), "--key", str(files["server_key"])]
    server = PeerProcess(args, name=f"{impl} hq server", script=HQ_PEER)
    try:
        line = server.wait_for(lambda l: l.get("event") == "listening", START_TIMEOUT, "the server to listen")
    except BaseException:
        server.stop()
        raise
    server.port = int(line["port"])  # type: ignore[attr-defined]
    return server


def run_peer_client(impl: str, port: int, files: dict, output: Path, paths: list[str]) -> dict[str, dict]:
    args = ["--impl", impl, "--role", "client", "--port", str(port), "--ca", str(files["ca"]),
            "--output", str(output), "--timeout", str(TIMEOUT), *paths]
    client = PeerProcess(args, name=f"{impl} hq client", script=HQ_PEER)
    try:
        client.wait_for(lambda l: l.get("event") == "done", TIMEOUT + 10, "the client to finish")
        assert client.wait_exit(10) == 0, client.describe()
        return {line["path"]: line for line in client.lines if line.get("op") == "get"}
    finally:
        client.stop()


def in_thread(fn, *args):
    return asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args))


# --- our client against the peers' servers ----------------------------------------------------------------


@pytest.mark.parametrize("impl", PEERS)
async def test_our_client_downloads_from_peer_server(impl, files, www, tmp_path):
    server = start_peer_server(impl, files, www)
    try:
        want = digests(www)
        progress: list[int] = []
        async with connect_hq("127.0.0.1", server.port, configuration=client_config(files)) as client:
            assert client.protocol.quic.alpn_protocol == "hq-interop"
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            small, n_medium, n_large = await asyncio.wait_for(asyncio.gather(
                client.get("/small.bin"),
                client.download("/medium.bin", tmp_path / "medium.bin"),
                client.download("/large.bin", tmp_path / "large.bin", progress=progress.append),
            ), TIMEOUT)
            seconds = loop.time() - t0
            assert sha(small) == want["small.bin"]
            assert n_medium == SIZES["medium.bin"] and sha((tmp_path / "medium.bin").read_bytes()) == want["medium.bin"]
            assert n_large == SIZES["large.bin"] and sha((tmp_path / "large.bin").read_bytes()) == want["large.bin"]
            assert progress == sorted(progress) and progress[-1] == SIZES["large.bin"] and len(progress) > 1
            # A missing file: the server resets the stream; the connection lives on.
            with pytest.raises(HqStreamError) as info:
                await asyncio.wait_for(client.get(MISSING), TIMEOUT)
            assert info.value.error_code == 1 and info.value.path == MISSING
            assert not (tmp_path / "missing.bin").exists()
            with pytest.raises(HqStreamError):
                await asyncio.wait_for(client.download(MISSING, tmp_path / "missing.bin"), TIMEOUT)
            assert not (tmp_path / "missing.bin").exists()  # the partial file went away
            assert await asyncio.wait_for(client.get("/sub/nested.txt"), TIMEOUT) == b"nested file\n"
        total = sum(SIZES.values())
        print(f"\nour client <- {impl} server: {total} bytes in 3 parallel streams, {seconds:.3f} s ({rate(total, seconds)})")
        requests = server.events("request")
        assert {(r["path"], r["status"]) for r in requests} >= {
            ("/small.bin", "200"), ("/medium.bin", "200"), ("/large.bin", "200"), (MISSING, "reset")}
        assert {e["alpn"] for e in server.events("handshake")} == {"hq-interop"}
    finally:
        server.stop()


# --- the peers' clients against our server ------------------------------------------------------------------


@pytest.mark.parametrize("impl", PEERS)
async def test_peer_client_downloads_from_our_server(impl, files, www, tmp_path):
    records: list[HqAccessRecord] = []
    server = await serve_hq("127.0.0.1", 0, configuration=server_config(files), root=www, log=records.append)
    try:
        port = server.local_address[1]
        paths = ["/small.bin", "/medium.bin", "/large.bin", MISSING, TRAVERSAL, "/../etc/passwd", "/link-out"]
        out = tmp_path / "out"
        results = await in_thread(run_peer_client, impl, port, files, out, paths)
        want = digests(www)
        for name in SIZES:
            res = results[f"/{name}"]
            assert res["ok"] and res["alpn"] == "hq-interop", res
            assert res["bytes"] == SIZES[name] and res["sha256"] == want[name], res
            assert sha((out / name).read_bytes()) == want[name]
        for refused in (MISSING, TRAVERSAL, "/../etc/passwd", "/link-out"):
            res = results[refused]
            assert res["ended"] == "reset" and res["reset"] == HQ_ERROR and res["bytes"] == 0, res
        large = results["/large.bin"]
        print(f"\n{impl} client <- our server: large.bin {large['bytes']} bytes in {large['seconds']:.3f} s "
              f"({rate(large['bytes'], large['seconds'])}, all 7 requests in parallel)")
        # The access log: one record per request, with what was sent.
        await asyncio.sleep(0.05)
        by_path = {r.path: r for r in records}
        assert set(by_path) == set(paths), records
        for name, size in SIZES.items():
            r = by_path[f"/{name}"]
            assert (r.method, r.status, r.bytes) == ("GET", "200", size) and r.duration > 0
        assert by_path[MISSING].status == "404"
        assert by_path[TRAVERSAL].status == by_path["/../etc/passwd"].status == "400"
        assert by_path["/link-out"].status == "404"  # a symbolic link out of the root
        assert all(r.bytes == 0 for r in records if r.status != "200")
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)


# --- ours against ours ---------------------------------------------------------------------------------------


@pytest.fixture
async def our_server(files, www):
    records: list[HqAccessRecord] = []
    server = await serve_hq("127.0.0.1", 0, configuration=server_config(files), root=www, log=records.append)
    server.records = records  # type: ignore[attr-defined]
    yield server
    server.close()
    await asyncio.wait_for(server.wait_closed(), 10)


async def raw_request(client, data: bytes, fin: bool = True) -> tuple[str, object]:
    """Send raw bytes as a request; returns ("fin", body) or ("reset", code)."""
    reader, writer = await client.protocol.create_stream()
    writer.write(data)
    if fin:
        writer.write_eof()
    try:
        return "fin", await asyncio.wait_for(reader.read(), TIMEOUT)
    except protocol_mod.StreamResetError as exc:
        return "reset", exc.error_code


async def test_our_client_against_our_server(files, www, tmp_path, our_server):
    want = digests(www)
    port = our_server.local_address[1]
    async with connect_hq("127.0.0.1", port, configuration=client_config(files)) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sink = io.BytesIO()
        small, n_medium, n_large = await asyncio.wait_for(asyncio.gather(
            client.get("/small.bin"),
            client.download("/medium.bin", sink),
            client.download("/large.bin", str(tmp_path / "large.bin")),
        ), TIMEOUT)
        seconds = loop.time() - t0
        assert sha(small) == want["small.bin"]
        assert n_medium == SIZES["medium.bin"] and sha(sink.getvalue()) == want["medium.bin"]
        assert n_large == SIZES["large.bin"] and sha((tmp_path / "large.bin").read_bytes()) == want["large.bin"]
        total = sum(SIZES.values())
        print(f"\nour client <- our server: {total} bytes in 3 parallel streams, {seconds:.3f} s ({rate(total, seconds)})")
        # Many at once: 40 requests in parallel on one connection.
        bodies = await asyncio.wait_for(asyncio.gather(*(client.get("/small.bin") for _ in range(40))), TIMEOUT)
        assert all(sha(b) == want["small.bin"] for b in bodies)
        # Missing, traversal, symbolic link out, a directory: each a reset with HQ_ERROR.
        for path in (MISSING, TRAVERSAL, "/../etc/passwd", "/sub/../../secret.txt", "/link-out", "/sub", "/"):
            with pytest.raises(HqStreamError) as info:
                await asyncio.wait_for(client.get(path), TIMEOUT)
            assert info.value.error_code == HQ_ERROR, path
        # The connection is still good after all that.
        assert await asyncio.wait_for(client.get("/sub/nested.txt"), TIMEOUT) == b"nested file\n"
    statuses = {(r.path, r.status) for r in our_server.records}
    assert {(MISSING, "404"), (TRAVERSAL, "400"), ("/../etc/passwd", "400"), ("/link-out", "404"),
            ("/sub", "404"), ("/large.bin", "200")} <= statuses


async def test_malformed_requests_are_reset(files, our_server):
    port = our_server.local_address[1]
    async with connect_hq("127.0.0.1", port, configuration=client_config(files)) as client:
        # Accepted: a bare "\n", no line ending before FIN, and no FIN at all
        # (answered at the line's end).
        assert await raw_request(client, b"GET /sub/nested.txt\n") == ("fin", b"nested file\n")
        assert await raw_request(client, b"GET /sub/nested.txt") == ("fin", b"nested file\n")
        assert await raw_request(client, b"GET /sub/nested.txt\r\n", fin=False) == ("fin", b"nested file\n")
        for bad in (b"", b"\r\n", b"POST /small.bin\r\n", b"GET small.bin\r\n", b"GET /small.bin HTTP/1.1\r\n",
                    b"GET  /small.bin\r\n", b"GET /\xff\xfe\r\n", b"GET /a\x00b\r\n"):
            assert await raw_request(client, bad) == ("reset", HQ_ERROR), bad
        # Over the cap: with FIN, and without a FIN (the server must not wait for one).
        long_line = b"GET /" + b"a" * MAX_REQUEST_LINE + b"\r\n"
        assert await raw_request(client, long_line) == ("reset", HQ_ERROR)
        assert await raw_request(client, b"GET /" + b"a" * (2 * MAX_REQUEST_LINE), fin=False) == ("reset", HQ_ERROR)
        # A client unidirectional stream is not an hq request: STOP_SENDING.
        _, writer = await client.protocol.create_stream(is_unidirectional=True)
        writer.write(b"GET /small.bin\r\n")
        with pytest.raises(protocol_mod.StreamResetError) as info:
            for _ in range(200):
                await asyncio.sleep(0.01)
                writer.write(b"x")
        assert info.value.error_code == HQ_ERROR
    statuses = [r.status for r in our_server.records]
    assert statuses.count("414") == 2 and statuses.count("400") == 8 and statuses.count("200") == 3, statuses


async def test_server_streams_with_backpressure(files, our_server):
    """A client that does not read: the server has at most the stream's send
    buffer cap plus one chunk of the 10 MiB file queued -- it reads the
    file as the client takes it, not all at once."""
    port = our_server.local_address[1]
    async with connect_hq("127.0.0.1", port, configuration=client_config(files)) as client:
        reader, writer = await client.protocol.create_stream()
        sid = writer.get_extra_info("stream_id")
        writer.write(encode_request("/large.bin"))
        writer.write_eof()
        await asyncio.sleep(0.5)  # the server fills the client's window, then waits
        (server_proto,) = our_server.connections
        buffered = server_proto.quic.stream_send_buffered(sid)
        assert 0 < buffered <= protocol_mod.STREAM_WRITE_HIGH + CHUNK_SIZE, buffered
        assert not our_server.records  # still in progress
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert len(data) == SIZES["large.bin"]


async def test_cancelled_and_oversized_gets_stop_the_server(files, our_server, www):
    port = our_server.local_address[1]
    async with connect_hq("127.0.0.1", port, configuration=client_config(files)) as client:
        started = asyncio.Event()
        task = asyncio.ensure_future(client.download("/large.bin", io.BytesIO(), progress=lambda n: started.set()))
        await asyncio.wait_for(started.wait(), TIMEOUT)  # the first chunk is in
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        client.max_get_size = 100_000
        with pytest.raises(HqResponseTooLarge):
            await asyncio.wait_for(client.get("/large.bin"), TIMEOUT)
        client.max_get_size = 1 << 30
        assert sha(await asyncio.wait_for(client.get("/small.bin"), TIMEOUT)) == digests(www)["small.bin"]
        for _ in range(200):
            if len([r for r in our_server.records if r.status == "499"]) == 2:
                break
            await asyncio.sleep(0.01)
    # Both stopped mid-file (STOP_SENDING reached the server's writer).
    aborted = [r for r in our_server.records if r.status == "499"]
    assert [r.path for r in aborted] == ["/large.bin", "/large.bin"], our_server.records
    assert all(r.bytes < SIZES["large.bin"] for r in aborted)


async def test_alpn_must_be_hq_interop(files, www):
    config = server_config(files)
    config.alpn_protocols = ["h3", ALPN]
    server = await serve_hq("127.0.0.1", 0, configuration=config, root=www)
    try:
        wrong = client_config(files)
        wrong.alpn_protocols = ["h3"]
        with pytest.raises(ValueError, match="hq-interop"):
            async with connect_hq("127.0.0.1", server.local_address[1], configuration=wrong):
                pass
        async with connect_hq("127.0.0.1", server.local_address[1],
                              configuration=QuicConfiguration(is_client=True, server_name="localhost",
                                                              cafile=str(files["ca"]))) as client:
            assert client.protocol.quic.alpn_protocol == ALPN
            assert await asyncio.wait_for(client.get("/sub/nested.txt"), TIMEOUT) == b"nested file\n"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)
    with pytest.raises(ValueError, match="not a directory"):
        await serve_hq("127.0.0.1", 0, configuration=server_config(files), root=www / "small.bin")
