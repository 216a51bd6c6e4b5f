# pyquic.asyncio.h3 end to end, pyquic on both sides over loopback UDP:
# connect_h3()/serve_h3(), GET and POST with bodies streamed both ways,
# trailers, many requests in flight, flow control held by an unread body
# (memory bounded by the window, not by the upload), a handler that fails
# (500), a handler that never reads the body, GOAWAY with a graceful
# shutdown (the request in progress completes, a new one is refused),
# extended CONNECT with HTTP datagrams, and h3 beside another ALPN on one
# port.  Interop with other stacks lives in test_h3_interop.py.
from __future__ import annotations

import asyncio
import hashlib

import pytest

from pyquic.asyncio import ConnectionTerminatedError
from pyquic.asyncio.h3 import H3Request, H3StreamError, connect_h3, serve_h3, shutdown_h3
from pyquic.config import QuicConfiguration
from pyquic.h3.errors import H3ErrorCode
from tests.peers.pattern import chunks
from tests.quic_peers import pki_files

TIMEOUT = 30.0
WINDOW = 256 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


def client_config(files, **kwargs) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost", **kwargs)
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


def server_config(files, alpn=("h3",), **kwargs) -> QuicConfiguration:
    config = QuicConfiguration(is_client=False, alpn_protocols=list(alpn), **kwargs)
    config.load_cert_chain(files["server_chain"], files["server_key"])
    return config


def pattern(n: int) -> bytes:
    return b"".join(chunks(n))


class App:
    """A small application: /bytes/N, /echo (streams the body back with a
    sha256 trailer), /hold (never reads the body), /fail, /slow (waits for
    `release`), /tunnel (extended CONNECT: echoes datagrams)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held: list[H3Request] = []
        self.seen: list[str] = []

    async def __call__(self, request: H3Request) -> None:
        self.seen.append(f"{request.method} {request.path}")
        if request.method == "CONNECT":
            assert request.protocol == "echo-datagrams"
            await request.send_response(200)
            for _ in range(3):
                request.send_datagram(b"echo:" + await request.receive_datagram())
            await request.read()
            await request.send_data(b"", end_stream=True)
        elif request.path.startswith("/bytes/"):
            size = int(request.path.rsplit("/", 1)[1])
            await request.send_response(200, {"content-length": str(size)})
            sent = 0
            for chunk in chunks(size):
                await request.send_data(chunk)
                sent += len(chunk)
            await request.send_data(b"", end_stream=True)
        elif request.path == "/echo":
            digest = hashlib.sha256()
            await request.send_response(200, [("content-type", "application/octet-stream")])
            async for chunk in request.iter_bytes():
                digest.update(chunk)
                await request.send_data(chunk)
            assert dict(request.trailers).get(b"x-client-trailer") == b"yes"
            await request.send_trailers({"x-sha256": digest.hexdigest()})
        elif request.path == "/hold":
            self.held.append(request)
            await self.release.wait()
            await request.respond(200, body=b"held")
        elif request.path == "/slow":
            await self.release.wait()
            await request.respond(200, body=b"slow done")
        elif request.path == "/fail":
            raise RuntimeError("the handler fails on purpose")
        else:
            await request.respond(404, body=b"not found")


@pytest.fixture
async def app_server(files):
    app = App()
    server = await serve_h3("127.0.0.1", 0, configuration=server_config(
        files, max_stream_data=WINDOW, max_stream_data_window=WINDOW), handler=app)
    yield app, server.local_address[1], server
    app.release.set()
    server.close()
    await server.wait_closed()


async def test_get_post_trailers_and_many_requests(files, app_server):
    app, port, _ = app_server
    async with connect_h3("127.0.0.1", port, configuration=client_config(files)) as client:
        response = await asyncio.wait_for(client.get("/bytes/3000000"), TIMEOUT)
        assert response.status == 200 and response.content == pattern(3_000_000)
        assert response.header("content-length") == "3000000"

        async def body():
            for chunk in chunks(2_000_000):
                yield chunk

        async with client.stream("POST", "/echo", body=body(), trailers={"x-client-trailer": "yes"}) as response:
            assert response.status == 200
            echoed = await asyncio.wait_for(response.read(), TIMEOUT)
        assert echoed == pattern(2_000_000)
        assert dict(response.trailers)[b"x-sha256"] == hashlib.sha256(echoed).hexdigest().encode()

        missing = await client.get("/nothing")
        assert missing.status == 404 and missing.content == b"not found"

        answers = await asyncio.wait_for(
            asyncio.gather(*(client.get(f"/bytes/{1000 + i}") for i in range(100))), TIMEOUT)
        assert [a.content for a in answers] == [pattern(1000 + i) for i in range(100)]
        protocol = client.protocol
        await asyncio.sleep(0.1)
        assert protocol.active_requests == 0  # every finished stream forgotten
    assert len(app.seen) == 103


async def test_unread_body_holds_the_window_not_memory(files, app_server):
    # The handler never reads a 10 MB upload: the client must stall at the
    # stream window, and the server buffer at most that much.
    app, port, server = app_server
    async with connect_h3("127.0.0.1", port, configuration=client_config(files)) as client:
        sent = 0

        async def upload():
            nonlocal sent
            for chunk in chunks(10_000_000):
                sent += len(chunk)
                yield chunk

        task = asyncio.ensure_future(client.request("POST", "/hold", body=upload()))
        while not app.held:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        request = app.held[0]
        buffered = request._stream.body.received
        assert buffered <= WINDOW, buffered
        assert sent < 4 * 1024 * 1024, sent  # the writer paused: drain() waited
        app.release.set()
        response = await asyncio.wait_for(task, TIMEOUT)
        assert response.status == 200 and response.content == b"held"


async def test_handler_failure_is_a_500_and_the_connection_lives(files, app_server):
    _, port, _ = app_server
    async with connect_h3("127.0.0.1", port, configuration=client_config(files)) as client:
        response = await asyncio.wait_for(client.get("/fail"), TIMEOUT)
        assert response.status == 500
        again = await client.get("/bytes/10")
        assert again.status == 200 and again.content == pattern(10)


async def test_goaway_graceful_shutdown(files, app_server):
    app, port, server = app_server
    async with connect_h3("127.0.0.1", port, configuration=client_config(files)) as client:
        slow = asyncio.ensure_future(client.get("/slow"))
        while "GET /slow" not in app.seen:
            await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(shutdown_h3(server, timeout=10))
        while client.protocol.goaway_received is None:
            await asyncio.sleep(0.01)
        with pytest.raises(H3StreamError) as refused:
            await client.get("/bytes/10")
        assert refused.value.error_code == H3ErrorCode.H3_REQUEST_REJECTED
        app.release.set()
        response = await asyncio.wait_for(slow, TIMEOUT)
        assert response.status == 200 and response.content == b"slow done"
        await asyncio.wait_for(closing, TIMEOUT)
        await asyncio.wait_for(client.protocol.wait_closed(), TIMEOUT)
        terminated = client.protocol._terminated
        assert terminated.error_code == H3ErrorCode.H3_NO_ERROR


async def test_extended_connect_and_http_datagrams(files):
    options = {"enable_connect_protocol": True, "enable_datagram": True}
    app = App()
    server = await serve_h3("127.0.0.1", 0, configuration=server_config(files, max_datagram_frame_size=65536),
                            handler=app, h3_options=options)
    try:
        config = client_config(files, max_datagram_frame_size=65536)
        async with connect_h3("127.0.0.1", server.local_address[1], configuration=config,
                              h3_options=options) as client:
            async with client.stream("CONNECT", "/tunnel", protocol="echo-datagrams") as tunnel:
                assert tunnel.status == 200
                got = []
                for i in range(3):
                    # Datagrams may be lost even on loopback in principle; resend until echoed.
                    for _ in range(20):
                        tunnel.send_datagram(b"d%d" % i)
                        try:
                            got.append(await asyncio.wait_for(tunnel.receive_datagram(), 0.5))
                            break
                        except asyncio.TimeoutError:
                            continue
                assert got == [b"echo:d0", b"echo:d1", b"echo:d2"]
                await tunnel.send_data(b"", end_stream=True)
                assert await asyncio.wait_for(tunnel.read(), TIMEOUT) == b""
    finally:
        server.close()
        await server.wait_closed()


async def test_h3_and_another_alpn_share_a_port(files):
    async def raw_handler(reader, writer):
        data = await reader.read()
        writer.write(b"raw:" + data)
        writer.write_eof()

    app = App()
    server = await serve_h3("127.0.0.1", 0, configuration=server_config(files, alpn=("h3", "pyquic-test")),
                            handler=app, stream_handler=raw_handler)
    port = server.local_address[1]
    try:
        async with connect_h3("127.0.0.1", port, configuration=client_config(files)) as client:
            response = await client.get("/bytes/5")
            assert response.status == 200 and client.protocol.quic.alpn_protocol == "h3"
        from pyquic.asyncio import connect

        config = client_config(files)
        config.alpn_protocols = ["pyquic-test"]
        async with connect("127.0.0.1", port, configuration=config) as proto:
            reader, writer = await proto.create_stream()
            writer.write(b"hello")
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"raw:hello"
    finally:
        server.close()
        await server.wait_closed()


async def test_connection_loss_fails_requests_in_progress(files, app_server):
    _, port, server = app_server
    async with connect_h3("127.0.0.1", port, configuration=client_config(files)) as client:
        pending = asyncio.ensure_future(client.get("/slow"))
        await asyncio.sleep(0.2)
        for protocol in server.connections:
            protocol.close(error_code=H3ErrorCode.H3_INTERNAL_ERROR, reason_phrase="going")
        with pytest.raises(ConnectionTerminatedError):
            await asyncio.wait_for(pending, TIMEOUT)


async def test_cancelled_requests_leave_no_state(files, app_server):
    # Leaving client.stream() with the body unread cancels the request
    # (STOP_SENDING H3_REQUEST_CANCELLED); neither side keeps its state.
    _, port, server = app_server
    async with connect_h3("127.0.0.1", port, configuration=client_config(files)) as client:
        for _ in range(20):
            async with client.stream("GET", "/bytes/5000000") as response:
                assert response.status == 200
                first = await response._stream.body.read_chunk()
                assert first
        ok = await asyncio.wait_for(client.get("/bytes/10"), TIMEOUT)
        assert ok.content == pattern(10)
        await asyncio.sleep(0.3)
        assert client.protocol.active_requests == 0
        assert client.protocol.h3._requests == {}
        (server_side,) = server.connections
        assert server_side.active_requests == 0 and server_side.h3._requests == {}
