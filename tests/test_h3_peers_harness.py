# The HTTP/3 peer harness (tests/h3_peers.py, tests/peers/h3_peer.py) proved
# against itself, with no pyquic in the path: the pyquic HTTP/3 interop tests
# and the benchmark trust these peers, so each pairing they use is shown to
# work here first -- aioquic client <-> qh3 server, qh3 client <-> aioquic
# server, ngtcp2's gtlsclient -> aioquic server, aioquic client -> ngtcp2's
# gtlsserver, headless Chromium -> aioquic server (page, image, script and a
# fetch, all over h3) -- and a failure is shown to be seen as one (gtlsclient
# exits 0 even when it never connected, Chromium when the page failed).
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.h3_peers import (
    run_chromium,
    run_h3_client,
    run_h3_rps,
    spki_pin,
    start_h3_server,
    write_h3_site,
)
from tests.peers.pattern import sha256_of
from tests.quic_peers import pki_files

BIG = 2_000_000  # many packets and several flow-control updates on every stack's defaults


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The document root every server serves, with what a client must get."""
    return write_h3_site(tmp_path_factory.mktemp("www"), BIG)


def _servers(impl):
    @pytest.fixture(scope="module")
    def server(files, site):
        srv = start_h3_server(impl, site["root"], files)
        yield srv
        srv.stop()

    return server


aioquic_server = _servers("aioquic")
qh3_server = _servers("qh3")
ngtcp2_server = _servers("ngtcp2")


def check_downloads(results: list[dict], site: dict, names: list[str]) -> None:
    """Every file arrived whole, with 200 (and the missing one 404)."""
    by_url = {r["url"].rsplit("/", 1)[1]: r for r in results}
    for name in names:
        r = by_url[name]
        assert r["ok"] and r["status"] == 200, r
        assert r["sha256"] == site["sha256"][name], r
        assert r["bytes"] == (site["root"] / name).stat().st_size
        if r.get("file"):
            assert hashlib.sha256(Path(r["file"]).read_bytes()).hexdigest() == site["sha256"][name]
    missing = by_url["missing.bin"]
    assert missing["status"] == 404 and not missing["ok"], missing


def download(impl: str, server, site, files, outdir: Path, concurrency: int = 4) -> list[dict]:
    names = ["small.txt", "big.bin", "kb.bin"]
    urls = [server.url(f"/{n}") for n in [*names, "missing.bin"]]
    results = run_h3_client(impl, urls, outdir, files, concurrency=concurrency, timeout=30)
    check_downloads(results, site, names)
    return results


@pytest.mark.parametrize("client, server_fixture", [("aioquic", "qh3_server"), ("qh3", "aioquic_server")])
def test_python_client_to_python_server(client, server_fixture, request, site, files, tmp_path):
    server = request.getfixturevalue(server_fixture)
    mark = server.mark()
    download(client, server, site, files, tmp_path / "dl")
    seen = {(r["path"], r["status"]) for r in server.wait_requests(4, since=mark)}
    assert seen == {("/small.txt", 200), ("/big.bin", 200), ("/kb.bin", 200), ("/missing.bin", 404)}
    # POST /echo: the body comes back whole, then a trailer with its SHA-256.
    (echo,) = run_h3_client(client, server.url("/echo"), None, files, method="POST", body_size=BIG, timeout=30)
    assert echo["ok"] and echo["status"] == 200, echo
    assert echo["bytes"] == BIG and echo["sha256"] == sha256_of(BIG), echo
    assert echo["trailers"] == {"x-sha256": sha256_of(BIG)}, echo


def test_rps_mode(aioquic_server, site, files):
    res = run_h3_rps("qh3", aioquic_server.url("/kb.bin"), files, requests=300, concurrency=16, timeout=30)
    assert res["errors"] == 0 and res["bytes"] == 1024, res
    assert res["requests"] == 300 and res["rps"] > 0, res


def test_gtlsclient_to_aioquic(aioquic_server, site, files, tmp_path):
    mark = aioquic_server.mark()
    download("ngtcp2", aioquic_server, site, files, tmp_path / "dl")
    assert {r["path"] for r in aioquic_server.wait_requests(4, since=mark)} == {
        "/small.txt", "/big.bin", "/kb.bin", "/missing.bin"}
    # POST with a body; the trailer is read from gtlsclient's log.
    (echo,) = run_h3_client("ngtcp2", aioquic_server.url("/echo"), tmp_path / "post", files, method="POST",
                            body_size=300_000, timeout=30)
    assert echo["ok"] and echo["sha256"] == sha256_of(300_000), echo
    assert echo["trailers"] == {"x-sha256": sha256_of(300_000)}, echo


def test_gtlsclient_failure_is_seen(files, tmp_path):
    """Nothing listens: gtlsclient still exits 0, the harness must say "failed"."""
    from tests.h3_peers import free_udp_port

    port = free_udp_port()
    (res,) = run_h3_client("ngtcp2", f"https://localhost:{port}/small.txt", tmp_path / "dl", files,
                           timeout=10, extra_args=["--handshake-timeout=1s"])
    assert not res["ok"] and res["file"] is None and res["status"] is None, res


@pytest.mark.parametrize("client", ["aioquic", "qh3"])
def test_python_client_to_gtlsserver(client, ngtcp2_server, site, files, tmp_path):
    download(client, ngtcp2_server, site, files, tmp_path / "dl")


def test_chromium_to_aioquic(aioquic_server, site, files, tmp_path):
    """The page, its image and script, and the script's fetch all over h3: the
    page reports each resource's nextHopProtocol and what it received, the
    server (UDP only) logs each request, the net log shows the QUIC session."""
    mark = aioquic_server.mark()
    res = run_chromium(aioquic_server.url("/"), spki_pin(files["server_cert"]), tmp_path / "chromium", timeout=45)
    assert res.returncode == 0 and res.result is not None, res.describe()
    page = site["page"]
    assert "error" not in res.result, res.describe()
    assert res.result["script"] is True
    assert res.result["img"] == page["img"], res.describe()
    assert res.result["data"] == page["data"], res.describe()
    assert res.result["page"] == "h3", res.describe()
    protocols = {r["path"]: r["protocol"] for r in res.result["resources"]}
    for path in ("/img.png", "/app.js", "/data.bin"):
        assert protocols.get(path) == "h3", res.describe()
    served = {(r["path"], r["status"]) for r in aioquic_server.wait_requests(4, since=mark)}
    assert {("/", 200), ("/img.png", 200), ("/app.js", 200), ("/data.bin", 200)} <= served
    sessions = [s for s in res.net_log["quic_sessions"] if s["port"] == aioquic_server.port]
    assert sessions and all(s["handshake_complete"] for s in sessions), res.describe()
    assert sessions[0]["certificate_subjects"] == ["localhost"]
    assert {"/", "/img.png", "/app.js", "/data.bin"} <= {p for s in sessions for p in s["paths"]}
    assert res.load_error is None


def test_chromium_wrong_pin_fails(aioquic_server, files, tmp_path):
    """The SPKI pin is what makes Chromium accept the test certificate (the CA's
    key pinned instead fails the handshake), and a failed load is seen as one
    although Chromium exits 0."""
    res = run_chromium(aioquic_server.url("/"), spki_pin(files["ca"]), tmp_path / "chromium", timeout=45)
    assert res.result is None and res.load_error is not None, res.describe()
    sessions = [s for s in res.net_log["quic_sessions"] if s["port"] == aioquic_server.port]
    assert sessions and not any(s["handshake_complete"] for s in sessions), res.describe()
