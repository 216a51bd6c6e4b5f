# The commands `python -m pyquic.server` and `python -m pyquic.client`, run
# as real processes over loopback: our client against our server over h3
# and hq-interop (several URLs on one connection, --output, 404 and
# traversal refused with exit status 1, --resume then --0rtt, --keylog,
# --version v2, --key-update, --cipher/--group, usage errors with status 2,
# a graceful stop on SIGTERM during a download), the self-signed mode and
# its printed SPKI pin, and our client against aioquic's HTTP/3 server
# (tests/peers/h3_peer.py).  The progress bar is checked on its own with a
# fake clock (a transfer over loopback is too quick to show one reliably).
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyquic.config import QuicConfiguration
from pyquic.connection import QuicConnection
from pyquic.tools.progress import Progress
from tests.peers.pattern import pattern
from tests.quic_peers import pki_files

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TIMEOUT = 60.0
BIG = 3_000_000
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The served directory, and a secret beside it (outside the root)."""
    base = tmp_path_factory.mktemp("site")
    root = base / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<html><body>pyquic index</body></html>\n")
    (root / "hello.txt").write_text("hello over QUIC\n")
    (root / "sub" / "index.html").write_text("sub index\n")
    (root / "sub" / "data.bin").write_bytes(pattern(100_000))
    (root / "big.bin").write_bytes(pattern(BIG))
    (root / "empty.txt").write_bytes(b"")
    (base / "secret.txt").write_text("do not serve me\n")
    (root / "escape").symlink_to(base / "secret.txt")
    return root


class Server:
    """A `python -m pyquic.server` process; its stdout lines are collected."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([PY, "-m", "pyquic.server", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for(r"listening on .*:(\d+) ")
        self.port = int(re.search(r"listening on .*:(\d+) ", line).group(1))

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern_: str, timeout: float = 20.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if re.search(pattern_, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and self.proc.stdout.closed):
                    break
                self.cond.wait(min(left, 0.2))
        err = self.proc.stderr.read() if self.proc.poll() is not None else ""
        raise AssertionError(f"server never printed {pattern_!r}; stdout: {self.lines!r}; stderr: {err}")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, self.proc.stderr.read()


@pytest.fixture(scope="module")
def server(pki, site):
    srv = Server("--root", str(site), "--host", "::", "--port", "0",
                 "--cert", str(pki["server_chain"]), "--key", str(pki["server_key"]))
    yield srv
    code, err = srv.stop()
    assert code == 0, err


def client(*args: str, cwd: Path = ROOT, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pyquic.client", *args], capture_output=True, timeout=timeout,
                          cwd=cwd, env=ENV)


def trusted(pki) -> list[str]:
    return ["--cafile", str(pki["ca"])]


def url(server: Server, path: str = "/") -> str:
    return f"https://localhost:{server.port}{path}"


def err(result: subprocess.CompletedProcess) -> str:
    return result.stderr.decode(errors="replace")


# -- our client, our server ------------------------------------------------------------------------


@pytest.mark.parametrize("alpn", ["h3", "hq-interop"])
def test_one_url_to_stdout(pki, site, server, alpn):
    result = client(url(server, "/hello.txt"), "--alpn", alpn, *trusted(pki))
    assert result.returncode == 0, err(result)
    assert result.stdout == (site / "hello.txt").read_bytes()
    stderr = err(result)
    assert f"ALPN {alpn}" in stderr and "full handshake" in stderr
    summary = "200 GET" if alpn == "h3" else "complete GET"
    assert re.search(rf"{summary} {re.escape(url(server, '/hello.txt'))} 16 bytes in [\d.]+ s \([\d.]+ MB/s\)", stderr), stderr
    assert "\r" not in stderr  # not a terminal: no progress bar


@pytest.mark.parametrize("alpn", ["h3", "hq-interop"])
def test_several_urls_on_one_connection_into_a_directory(pki, site, server, alpn, tmp_path):
    paths = ["/", "/hello.txt", "/big.bin", "/sub/", "/sub/data.bin", "/empty.txt"]
    start = len(server.lines)
    result = client(*(url(server, p) for p in paths), "--alpn", alpn, "--output", str(tmp_path / "out"),
                    *trusted(pki))
    assert result.returncode == 0, err(result)
    out = tmp_path / "out"
    # "/" and "/sub/" both end in a directory: index.html, then index.1.html
    assert (out / "index.html").read_bytes() == (site / "index.html").read_bytes()
    assert (out / "index.1.html").read_bytes() == (site / "sub" / "index.html").read_bytes()
    assert (out / "hello.txt").read_bytes() == (site / "hello.txt").read_bytes()
    assert (out / "data.bin").read_bytes() == (site / "sub" / "data.bin").read_bytes()
    assert hashlib.sha256((out / "big.bin").read_bytes()).digest() == hashlib.sha256(pattern(BIG)).digest()
    assert (out / "empty.txt").read_bytes() == b""
    assert result.stdout == b""
    stderr = err(result)
    assert stderr.count(f"ALPN {alpn}") == 1  # one connection for the six requests
    assert len(re.findall(r"^(200|complete) GET ", stderr, re.M)) == len(paths)
    # the server's access log: one line per request, with ALPN, status and bytes
    server.wait_for(rf" {alpn} GET /big.bin (200|complete) {BIG} ", start=start)
    line = server.wait_for(rf"connection .* {alpn} closed: {len(paths)} requests", start=start)
    assert "full handshake" in line


def test_a_404_makes_exit_status_1_but_the_rest_is_saved(pki, site, server, tmp_path):
    result = client(url(server, "/hello.txt"), url(server, "/missing.txt"), "--output", str(tmp_path),
                    *trusted(pki))
    assert result.returncode == 1
    assert (tmp_path / "hello.txt").read_bytes() == (site / "hello.txt").read_bytes()
    assert re.search(r"^404 GET \S+/missing.txt", err(result), re.M), err(result)


def test_hq_missing_file_is_a_failure(pki, server, tmp_path):
    result = client(url(server, "/missing.txt"), "--alpn", "hq-interop", "--output", str(tmp_path),
                    *trusted(pki))
    assert result.returncode == 1
    assert "error: GET" in err(result) and "reset" in err(result)
    assert not (tmp_path / "missing.txt").exists()


@pytest.mark.parametrize("path", ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/escape"])
def test_directory_traversal_is_refused(pki, server, path):
    h3 = client(url(server, path), *trusted(pki))
    assert h3.returncode == 1
    assert b"do not serve me" not in h3.stdout
    assert re.search(r"^403 GET ", err(h3), re.M), err(h3)
    hq = client(url(server, path), "--alpn", "hq-interop", *trusted(pki))
    assert hq.returncode == 1 and b"do not serve me" not in hq.stdout


def test_head_and_method_not_allowed(pki, server):
    head = client(url(server, "/big.bin"), "--method", "HEAD", *trusted(pki))
    assert head.returncode == 0 and head.stdout == b""
    assert re.search(r"^200 HEAD \S+ 0 bytes", err(head), re.M)
    post = client(url(server, "/hello.txt"), "--data", "x", *trusted(pki))
    assert post.returncode == 1 and re.search(r"^405 POST ", err(post), re.M)


def test_resume_keeps_the_servers_token_and_skips_its_retry(pki, site, tmp_path):
    # A server that validates every address (--retry always) gives a NEW_TOKEN
    # token; --resume keeps it beside the ticket, and the next run skips the Retry.
    srv = Server("--root", str(site), "--host", "::", "--port", "0", "--retry", "always",
                 "--cert", str(pki["server_chain"]), "--key", str(pki["server_key"]))
    try:
        tickets = tmp_path / "tickets.json"
        first = client(url(srv, "/hello.txt"), "--resume", str(tickets), *trusted(pki))
        assert first.returncode == 0 and "after a Retry" in err(first), err(first)
        assert json.loads(tickets.read_text())["tokens"][f"localhost:{srv.port}"]
        second = client(url(srv, "/hello.txt"), "--resume", str(tickets), *trusted(pki))
        assert second.returncode == 0 and "resumed" in err(second), err(second)
        assert "after a Retry" not in err(second)
    finally:
        code, error = srv.stop()
        assert code == 0, error


def test_resume_then_0rtt(pki, site, server, tmp_path):
    tickets = tmp_path / "tickets.json"
    first = client(url(server, "/hello.txt"), "--resume", str(tickets), *trusted(pki))
    assert first.returncode == 0, err(first)
    assert "full handshake" in err(first) and "no 0-RTT" in err(first)
    stored = json.loads(tickets.read_text())
    assert stored["tickets"][f"localhost:{server.port}"]["max_early_data"] == 0xFFFFFFFF
    start = len(server.lines)
    second = client(url(server, "/hello.txt"), url(server, "/sub/data.bin"), "--resume", str(tickets), "--0rtt",
                    "--output", str(tmp_path / "out"), *trusted(pki))
    assert second.returncode == 0, err(second)
    line = next(l for l in err(second).splitlines() if "connected" in l)
    assert "resumed" in line and "0-RTT accepted" in line, line
    assert (tmp_path / "out" / "data.bin").read_bytes() == (site / "sub" / "data.bin").read_bytes()
    server_line = server.wait_for(r"connection .* h3 closed: 2 requests", start=start)
    assert "resumed" in server_line and "0-RTT accepted" in server_line
    # the ticket used is gone, the new one replaced it
    assert json.loads(tickets.read_text())["tickets"] != stored["tickets"]
    # hq-interop resumes too (its own ticket: the ALPN is part of the session)
    hq_tickets = tmp_path / "hq.json"
    assert client(url(server, "/"), "--alpn", "hq-interop", "--resume", str(hq_tickets), *trusted(pki)).returncode == 0
    hq = client(url(server, "/hello.txt"), "--alpn", "hq-interop", "--resume", str(hq_tickets), "--0rtt", *trusted(pki))
    assert hq.returncode == 0, err(hq)
    assert hq.stdout == (site / "hello.txt").read_bytes()
    assert re.search(r"resumed, 0-RTT accepted", err(hq)), err(hq)


def test_keylog_lines(pki, server, tmp_path):
    keylog = tmp_path / "keys.log"
    result = client(url(server, "/hello.txt"), "--keylog", str(keylog), *trusted(pki))
    assert result.returncode == 0, err(result)
    labels = {line.split()[0] for line in keylog.read_text().splitlines()}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} <= labels
    for line in keylog.read_text().splitlines():
        label, client_random, secret = line.split()
        assert len(client_random) == 64 and len(secret) in (64, 96)


def test_version_2(pki, site):
    # A server preferring v2 keeps a client that starts in v2, and moves one
    # that starts in v1 but offers v2 to v2 without a round trip (RFC 9368).
    srv = Server("--root", str(site), "--host", "::", "--port", "0", "--prefer-version", "v2",
                 "--cert", str(pki["server_chain"]), "--key", str(pki["server_key"]))
    try:
        for args in (["--version", "v2"], ["--version", "v1", "--prefer-version", "v2"]):
            start = len(srv.lines)
            result = client(url(srv, "/hello.txt"), *args, *trusted(pki))
            assert result.returncode == 0, err(result)
            assert result.stdout == (site / "hello.txt").read_bytes()
            assert ", QUIC v2," in err(result)
            assert ", QUIC v2," in srv.wait_for(r"connection .* closed: 1 requests", start=start)
        # The default client starts in v1 and offers v2 second: the server's
        # preference decides.
        default = client(url(srv, "/hello.txt"), *trusted(pki))
        assert ", QUIC v2," in err(default)
    finally:
        code, error = srv.stop()
        assert code == 0, error


def test_a_server_preferring_v1_moves_a_v2_client_to_v1(pki, site, server):
    # The default server prefers v1: a client starting in v2 (offering v1 too)
    # is answered in v1, in the same round trip.
    result = client(url(server, "/hello.txt"), "--version", "v2", *trusted(pki))
    assert result.returncode == 0, err(result)
    assert ", QUIC v1," in err(result)


def test_key_update(pki, site, server, tmp_path):
    start = len(server.lines)
    result = client(url(server, "/big.bin"), "--key-update", "--output", str(tmp_path), *trusted(pki))
    assert result.returncode == 0, err(result)
    assert "key update requested (key phase 0 -> 1)" in err(result)
    assert (tmp_path / "big.bin").stat().st_size == BIG
    # the server read the request under the new keys and answered with its own updated ones
    assert "key phase 1" in server.wait_for(r"connection .* closed: 1 requests", start=start)


def test_cipher_and_group(pki, server):
    result = client(url(server, "/hello.txt"), "--cipher", "TLS_CHACHA20_POLY1305_SHA256",
                    "--group", "secp256r1", *trusted(pki))
    assert result.returncode == 0, err(result)
    assert "TLS_CHACHA20_POLY1305_SHA256, SECP256R1," in err(result)
    result = client(url(server, "/hello.txt"), "--group", "X25519MLKEM768", "--group", "x25519", *trusted(pki))
    assert result.returncode == 0 and "X25519MLKEM768" in err(result)


def test_verification(pki, server):
    unverified = client(url(server, "/hello.txt"))  # the test CA is not in the system store
    assert unverified.returncode == 1
    lines = err(unverified).strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err(unverified)
    assert client(url(server, "/hello.txt"), "--insecure").returncode == 0


@pytest.mark.parametrize("args", [
    ["http://localhost/"],
    ["https://localhost:4433/", "--cipher", "TLS_NOPE"],
    ["https://localhost:4433/", "--group", "curve9"],
    ["https://localhost:4433/", "-H", "no colon"],
    ["https://localhost:4433/", "--alpn", "hq-interop", "--method", "POST"],
    ["https://localhost:4433/", "--data", "@/nonexistent/file"],
    [],
])
def test_usage_errors(args):
    result = client(*args)
    assert result.returncode == 2
    assert "Traceback" not in err(result) and err(result).strip()


def test_server_handshake_timeout_option(pki, site):
    # A client that sends its first flight and is never heard again: with
    # --handshake-timeout 1 the server forgets it within about a second.
    srv = Server("--root", str(site), "--host", "127.0.0.1", "--port", "0", "--handshake-timeout", "1",
                 "--idle-timeout", "5", "--cert", str(pki["server_chain"]), "--key", str(pki["server_key"]))
    try:
        config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost",
                                   wall_clock=time.time)
        quic = QuicConnection(configuration=config, entropy=os.urandom)
        quic.connect(("127.0.0.1", srv.port), now=time.monotonic())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for data, _ in quic.datagrams_to_send(time.monotonic()):
                sock.sendto(data, ("127.0.0.1", srv.port))
            time.sleep(2.5)
    finally:
        code, stderr = srv.stop()
    assert code == 0, stderr
    assert re.search(r"half_open_expired 1\b", stderr), stderr
    bad = subprocess.run([PY, "-m", "pyquic.server", "--handshake-timeout", "0"], capture_output=True, text=True,
                         timeout=TIMEOUT, cwd=ROOT, env=ENV)
    assert bad.returncode == 2 and "must be positive" in bad.stderr and "Traceback" not in bad.stderr


def test_no_server_is_one_line_and_status_1():
    result = client("https://127.0.0.1:9/", "--timeout", "2")
    assert result.returncode == 1
    lines = err(result).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 127.0.0.1:9:"), lines


def test_server_retry_keylog_and_qlog(pki, site, tmp_path):
    srv = Server("--root", str(site), "--port", "0", "--host", "127.0.0.1", "--retry", "always",
                 "--cert", str(pki["server_chain"]), "--key", str(pki["server_key"]),
                 "--keylog", str(tmp_path / "server.keys"), "--qlog-dir", str(tmp_path / "server-qlog"))
    try:
        result = client(f"https://localhost:{srv.port}/hello.txt", "--qlog-dir", str(tmp_path / "client-qlog"),
                        *trusted(pki))
        assert result.returncode == 0, err(result)
        assert result.stdout == (site / "hello.txt").read_bytes()
    finally:
        code, stderr = srv.stop()
    assert code == 0, stderr
    # the client was sent a Retry (one per Initial datagram of its first flight: the
    # post-quantum ClientHello takes two)
    assert re.search(r"stopped; endpoint: .*\bretry [12]\b", stderr), stderr
    assert "SERVER_TRAFFIC_SECRET_0" in (tmp_path / "server.keys").read_text()
    (server_log,) = (tmp_path / "server-qlog").glob("*-server.sqlog")
    (client_log,) = (tmp_path / "client-qlog").glob("*-client.sqlog")
    assert "transport:packet_received" in server_log.read_text()
    assert "transport:packet_received" in client_log.read_text()


# -- the server on its own -----------------------------------------------------------------------------


def test_self_signed_certificate_and_its_pin(site, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    srv = Server("--root", str(site), "--port", "0", "--host", "127.0.0.1")
    try:
        line = srv.wait_for(r"SPKI SHA-256 pin")
        cert_path, pin = re.search(r"certificate (\S+) \(SPKI SHA-256 pin (\S+)\)", line).groups()
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        assert pin == base64.b64encode(hashlib.sha256(spki).digest()).decode()
        assert f"--ignore-certificate-errors-spki-list={pin}" in srv.wait_for("chromium:")
        ok = client(f"https://127.0.0.1:{srv.port}/hello.txt", "--cafile", cert_path)
        assert ok.returncode == 0, err(ok)
        assert ok.stdout == (site / "hello.txt").read_bytes()
    finally:
        code, stderr = srv.stop()
    assert code == 0, stderr
    assert not Path(cert_path).exists()  # the throwaway certificate went with the server


def test_sigterm_lets_a_download_finish(pki, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    size = 40_000_000
    (root / "large.bin").write_bytes(pattern(size))
    srv = Server("--root", str(root), "--port", "0", "--host", "127.0.0.1",
                 "--cert", str(pki["server_chain"]), "--key", str(pki["server_key"]))
    out = tmp_path / "out"
    proc = subprocess.Popen([PY, "-m", "pyquic.client", f"https://localhost:{srv.port}/large.bin", "--output",
                             str(out), *trusted(pki)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=ENV)
    try:
        deadline = time.monotonic() + 20
        while not (out / "large.bin").exists() and time.monotonic() < deadline:
            time.sleep(0.005)  # the client opens the file at the first body byte
        assert (out / "large.bin").exists()
        code, stderr = srv.stop()  # SIGTERM while the body is on its way
        client_code = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    client_err = proc.stderr.read().decode()
    assert code == 0, stderr
    assert "stopping" in stderr
    assert client_code == 0, client_err
    assert (out / "large.bin").stat().st_size == size
    # H3_NO_ERROR (0x100) closed the connection after the response
    assert "error 0x100" in srv.wait_for(r"connection .* h3 closed: 1 requests")
    srv.wait_for(r" h3 GET /large.bin 200 40000000 ")


def test_chromium_fetches_from_the_server(site):
    """The self-signed mode as documented: chromium pointed at the printed pin."""
    chromium = "/usr/bin/chromium"
    assert os.path.exists(chromium), "chromium is missing (scripts/setup.sh installs it)"
    srv = Server("--root", str(site), "--port", "0")  # on "::": chromium tries localhost as ::1 first
    try:
        flags = srv.wait_for("chromium:").split("chromium: ", 1)[1].split()
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-quic", *flags,
             "--user-data-dir=" + str(site.parent / "chromium-profile"),
             "--dump-dom", f"https://localhost:{srv.port}/"],
            capture_output=True, text=True, timeout=TIMEOUT)
        assert "pyquic index" in result.stdout, result.stderr[-2000:]
        srv.wait_for(r" h3 GET / 200 ")
    finally:
        code, stderr = srv.stop()
    assert code == 0, stderr


# -- our client, aioquic's server -------------------------------------------------------------------------


def test_our_client_against_aioquic_h3_server(pki, site, tmp_path):
    peer = subprocess.Popen(
        [PY, str(ROOT / "tests" / "peers" / "h3_peer.py"), "--impl", "aioquic", "--role", "server",
         "--port", "0", "--cert", str(pki["server_chain"]), "--key", str(pki["server_key"]), "--root", str(site)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    try:
        first = json.loads(peer.stdout.readline() or "{}")
        assert first.get("event") == "listening", peer.stderr.read() if peer.poll() is not None else first
        base = f"https://localhost:{first['port']}"
        result = client(f"{base}/", f"{base}/big.bin", f"{base}/sub/data.bin", f"{base}/nope",
                        "--output", str(tmp_path), *trusted(pki))
        assert result.returncode == 1  # the 404
        assert (tmp_path / "index.html").read_bytes() == (site / "index.html").read_bytes()
        assert hashlib.sha256((tmp_path / "big.bin").read_bytes()).digest() == hashlib.sha256(pattern(BIG)).digest()
        assert (tmp_path / "data.bin").read_bytes() == (site / "sub" / "data.bin").read_bytes()
        assert re.search(r"^404 GET \S+/nope", err(result), re.M), err(result)
        assert err(result).count("ALPN h3") == 1
        body = tmp_path / "upload.bin"
        body.write_bytes(pattern(200_000))
        echo = client(f"{base}/echo", "--data", f"@{body}", "-H", "x-test: 1", *trusted(pki))
        assert echo.returncode == 0, err(echo)
        assert echo.stdout == body.read_bytes()
    finally:
        peer.stdin.close()
        try:
            peer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            peer.kill()


# -- the progress bar --------------------------------------------------------------------------------------


def test_progress_bar_draws_only_when_enabled_and_after_a_while():
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, enabled=True, clock=lambda: now[0])
    transfer = progress.transfer(total=10_000_000)
    transfer.add(100_000)
    assert stream.getvalue() == ""  # too early: quick transfers never show a bar
    now[0] = 1.0
    transfer.add(4_900_000)
    drawn = stream.getvalue()
    assert drawn.startswith("\r[") and "50.0%" in drawn and "5.0 MB / 10.0 MB" in drawn and "MB/s" in drawn
    assert "5.0 MB/s" in drawn  # 5 MB in the first second
    progress.line("200 GET https://x/ ...")
    after = stream.getvalue()[len(drawn):]
    # the bar is erased, the line printed, the bar drawn again below it
    assert after.startswith("\r\x1b[K200 GET https://x/ ...\n\r[")
    transfer.finish()
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[K")
    quiet_stream = io.StringIO()
    quiet = Progress(quiet_stream, enabled=False, clock=lambda: now[0])
    t = quiet.transfer(total=None)
    now[0] = 5.0
    t.add(1_000_000)
    quiet.line("a line")
    assert quiet_stream.getvalue() == "a line\n"
    # a non-terminal stream is not enabled by default
    assert Progress(io.StringIO()).enabled is False
