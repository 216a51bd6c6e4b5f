# pyquic's HTTP/3 against real peers over loopback UDP, both roles, each
# peer in its own process (tests/h3_peers.py, whose pairings are proved
# without pyquic in test_h3_peers_harness.py):
#   - our client (pyquic.asyncio.h3.connect_h3) against aioquic's, qh3's and
#     ngtcp2's (gtlsserver) servers: files by SHA-256, a 404, and a POST
#     whose body is streamed up and echoed back with a trailer;
#   - aioquic's, qh3's and ngtcp2's (gtlsclient) clients against our server
#     (serve_h3 with the `python -m pyquic.server` file handler, plus /echo);
#   - headless Chromium loading a page, its image, script and a fetch from
#     our server, all over h3 (the page reports nextHopProtocol; the net log
#     shows the QUIC session).
from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from pyquic.asyncio.h3 import H3Request, connect_h3, serve_h3
from pyquic.config import QuicConfiguration
from pyquic.tools.server import FileServer
from tests.h3_peers import run_chromium, run_h3_client, spki_pin, start_h3_server, write_h3_site
from tests.peers.pattern import chunks, sha256_of
from tests.quic_peers import pki_files

BIG = 5_000_000
TIMEOUT = 60.0
NAMES = ["small.txt", "big.bin", "kb.bin"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_h3_site(tmp_path_factory.mktemp("www"), BIG)


def client_config(files, **kwargs) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost", **kwargs)
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


# --- our client against their servers -------------------------------------------------------------


@pytest.mark.parametrize("impl", ["aioquic", "qh3", "ngtcp2"])
async def test_our_client_against_their_server(impl, files, site):
    server = start_h3_server(impl, site["root"], files)
    try:
        # qh3's HTTP/3 always announces HTTP datagrams (its peer script
        # pairs that with the transport parameter); accepting them costs us
        # nothing, so the client offers the parameter too.
        config = client_config(files, max_datagram_frame_size=65536)
        async with connect_h3("127.0.0.1", server.port, configuration=config) as client:
            client.authority = f"localhost:{server.port}"
            responses = await asyncio.wait_for(
                asyncio.gather(*(client.get(f"/{name}") for name in NAMES)), TIMEOUT)
            for name, response in zip(NAMES, responses):
                assert response.status == 200, (name, response.status)
                assert hashlib.sha256(response.content).hexdigest() == site["sha256"][name], name
            missing = await asyncio.wait_for(client.get("/missing.bin"), TIMEOUT)
            assert missing.status == 404
            # Path MTU discovery: their stack took our 1452-byte probe and datagrams (RFC 9000 §14.3).
            assert client.protocol.quic.path_mtu.size == 1452
            if impl != "ngtcp2":  # gtlsserver serves files only
                async def body():
                    for chunk in chunks(BIG):
                        yield chunk

                echo = await asyncio.wait_for(client.post("/echo", body()), TIMEOUT)
                assert echo.status == 200 and hashlib.sha256(echo.content).hexdigest() == sha256_of(BIG)
                assert dict(echo.trailers) == {b"x-sha256": sha256_of(BIG).encode()}
        if impl != "ngtcp2":
            seen = {(r["path"], r["status"]) for r in server.wait_requests(5)}
            assert {("/big.bin", 200), ("/missing.bin", 404), ("/echo", 200)} <= seen
    finally:
        server.stop()


# --- their clients against our server ---------------------------------------------------------------


class OurSite:
    """The command's file handler, plus POST /echo (body back, SHA-256 trailer)."""

    def __init__(self, root: Path) -> None:
        self.files = FileServer(root, quiet=True)
        self.requests: list[tuple[str, str, int]] = []
        self.path_mtus: list[tuple[str, int]] = []  # (path, the connection's datagram size when it was served)

    async def __call__(self, request: H3Request) -> None:
        if request.method == "POST" and request.path == "/echo":
            digest = hashlib.sha256()
            await request.send_response(200)
            async for chunk in request.iter_bytes():
                digest.update(chunk)
                await request.send_data(chunk)
            await request.send_trailers({"x-sha256": digest.hexdigest()})
        else:
            await self.files.handle_h3(request)
        self.requests.append((request.method, request.path, request.status))
        self.path_mtus.append((request.path, request._proto.quic.path_mtu.size))


@pytest.fixture
async def our_server(files, site):
    config = QuicConfiguration(is_client=False, alpn_protocols=["h3"], max_datagram_frame_size=65536)
    config.load_cert_chain(files["server_chain"], files["server_key"])
    app = OurSite(site["root"])
    server = await serve_h3("127.0.0.1", 0, configuration=config, handler=app)
    server.app = app
    server.port = server.local_address[1]
    yield server
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("impl", ["aioquic", "qh3", "ngtcp2"])
async def test_their_client_against_our_server(impl, files, site, our_server, tmp_path):
    urls = [f"https://localhost:{our_server.port}/{name}" for name in [*NAMES, "missing.bin"]]
    results = await asyncio.to_thread(run_h3_client, impl, urls, tmp_path / "dl", files, concurrency=4,
                                      timeout=TIMEOUT)
    by_name = {r["url"].rsplit("/", 1)[1]: r for r in results}
    for name in NAMES:
        r = by_name[name]
        assert r["ok"] and r["sha256"] == site["sha256"][name], r
        if impl != "ngtcp2" or r["status"] is not None:
            assert r["status"] == 200, r
    missing = by_name["missing.bin"]
    assert not missing["ok"], missing
    (echo,) = await asyncio.to_thread(run_h3_client, impl, f"https://localhost:{our_server.port}/echo",
                                      tmp_path / "post", files, method="POST", body_size=300_000, timeout=TIMEOUT)
    assert echo["ok"] and echo["sha256"] == sha256_of(300_000), echo
    assert echo["trailers"] == {"x-sha256": sha256_of(300_000)}, echo
    big = [size for path, size in our_server.app.path_mtus if path == "/big.bin"]
    assert big == [1452], big  # their client took our PMTU probe, and big.bin went in 1452-byte datagrams
    served = {(m, p, s) for m, p, s in our_server.app.requests}
    assert {("GET", "/big.bin", 200), ("GET", "/missing.bin", 404), ("POST", "/echo", 200)} <= served


async def test_chromium_loads_a_page_and_its_resources_over_h3(files, site, our_server, tmp_path):
    res = await asyncio.to_thread(run_chromium, f"https://localhost:{our_server.port}/",
                                  spki_pin(files["server_cert"]), tmp_path / "chromium", timeout=60)
    assert res.returncode == 0 and res.result is not None, res.describe()
    assert "error" not in res.result, res.describe()
    page = site["page"]
    assert res.result["script"] is True
    assert res.result["img"] == page["img"], res.describe()
    assert res.result["data"] == page["data"], res.describe()
    assert res.result["page"] == "h3", res.describe()
    protocols = {r["path"]: r["protocol"] for r in res.result["resources"]}
    for path in ("/img.png", "/app.js", "/data.bin"):
        assert protocols.get(path) == "h3", res.describe()
    served = {(p, s) for _, p, s in our_server.app.requests}
    assert {("/", 200), ("/img.png", 200), ("/app.js", 200), ("/data.bin", 200)} <= served
    sessions = [s for s in res.net_log["quic_sessions"] if s["port"] == our_server.port]
    assert sessions and all(s["handshake_complete"] for s in sessions), res.describe()
    assert res.load_error is None
