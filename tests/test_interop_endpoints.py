# Tests of interop/endpoints/*/run_endpoint.sh (the runner's endpoint
# contract) on loopback, without namespaces: for each pair of pyquic with
# pyquic, aioquic, qh3 and ngtcp2 (gtlsserver/gtlsclient), in both roles, the
# handshake and transfer cases run as the runner runs them (a server script
# in the background, a client script fetching REQUESTS into DOWNLOADS), and
# the files are compared byte for byte; a few more cases between pyquic and
# its peers; unsupported cases exit 127.  Real peers only, nothing skipped:
# a missing peer fails the test.  Owns only these tests.
from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ENDPOINTS = Path(__file__).resolve().parent.parent / "interop" / "endpoints"
SERVER_START = 15.0  # seconds for a server to bind its port
CLIENT_TIMEOUT = 45.0


def make_certs(d: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.DNSName(n) for n in ("server", "server4", "server6", "localhost")]
                                      + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2)).add_extension(san, critical=False)
            .sign(key, hashes.SHA256()))
    d.mkdir(parents=True, exist_ok=True)
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "priv.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    make_certs(d)
    return d


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_bound(port: int) -> bool:
    """Whether some socket listens on UDP `port` (IPv4 or IPv6), from /proc."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines):
            return True
    return False


def random_files(www: Path, sizes: list[int]) -> list[str]:
    www.mkdir(parents=True, exist_ok=True)
    names = []
    for size in sizes:
        name = "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))
        (www / name).write_bytes(os.urandom(size))
        names.append(name)
    return names


def base_env(tmp: Path, certs: Path, case: str, port: int) -> dict:
    return dict(os.environ, PYTHON=sys.executable, TESTCASE=case, WWW=str(tmp / "www"),
                DOWNLOADS=str(tmp / "downloads"), CERTS=str(certs), PORT=str(port))


def script(name: str) -> list[str]:
    return ["bash", str(ENDPOINTS / name / "run_endpoint.sh")]


def run_pair(tmp: Path, certs: Path, server: str, client: str, case: str, sizes: list[int],
             extra_client_env: dict | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    """One test the way the runner runs it: server script in the background
    until it binds the port, client script to completion, server stopped."""
    port = free_udp_port()
    names = random_files(tmp / "www", sizes)
    (tmp / "downloads").mkdir()
    env = base_env(tmp, certs, case, port)
    env["SSLKEYLOGFILE"] = str(tmp / "client.keys")
    server_env = dict(env, ROLE="server", SERVER="127.0.0.1", SSLKEYLOGFILE=str(tmp / "server.keys"))
    with open(tmp / "server.log", "wb") as slog:
        srv = subprocess.Popen(script(server), env=server_env, stdout=slog, stderr=subprocess.STDOUT,
                               cwd=tmp, start_new_session=True)
        try:
            deadline = time.monotonic() + SERVER_START
            while not udp_bound(port):
                assert srv.poll() is None, f"{server} server exited {srv.returncode}: {(tmp / 'server.log').read_text()}"
                assert time.monotonic() < deadline, f"{server} server did not bind UDP {port}"
                time.sleep(0.05)
            client_env = dict(env, ROLE="client",
                              REQUESTS=" ".join(f"https://127.0.0.1:{port}/{n}" for n in names),
                              **(extra_client_env or {}))
            proc = subprocess.run(script(client), env=client_env, capture_output=True, text=True,
                                  timeout=CLIENT_TIMEOUT, cwd=tmp)
        finally:
            os.killpg(srv.pid, 15)
            try:
                srv.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(srv.pid, 9)
                srv.wait()
    detail = (f"{client} client against {server} server, {case}: exit {proc.returncode}\n"
              f"client stdout:\n{proc.stdout[-3000:]}\nclient stderr:\n{proc.stderr[-3000:]}\n"
              f"server log:\n{(tmp / 'server.log').read_text(errors='replace')[-3000:]}")
    assert proc.returncode == 0, detail
    for n in names:
        got = tmp / "downloads" / n
        assert got.is_file(), f"{n} not downloaded\n{detail}"
        assert got.read_bytes() == (tmp / "www" / n).read_bytes(), f"{n} differs\n{detail}"
    return proc, tmp


def alpn_for(server: str) -> dict:
    # gtlsserver speaks only h3: a client must be told (the runner does the same).
    return {"ALPN": "h3"} if server == "ngtcp2" else {}


def test_peers_installed():
    for tool in ("gtlsclient", "gtlsserver"):
        assert shutil.which(tool), f"{tool} missing (Debian package ngtcp2-client / ngtcp2-server)"
    import aioquic  # noqa: F401
    import qh3  # noqa: F401


PAIRS = [("pyquic", "pyquic")] + [p for peer in ("aioquic", "qh3", "ngtcp2") for p in (("pyquic", peer), (peer, "pyquic"))]
CASES = {"handshake": [1024], "transfer": [2_000_000, 300_000, 5_000]}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("server,client", PAIRS, ids=[f"{s}-serves-{c}" for s, c in PAIRS])
def test_pair(tmp_path, certs, server, client, case):
    run_pair(tmp_path, certs, server, client, case, CASES[case], alpn_for(server))
    if client == "pyquic":  # SSLKEYLOGFILE honoured
        assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in (tmp_path / "client.keys").read_text()


# Cases beyond the two above, each once, with pyquic in one role: the options
# each script passes for them are accepted and the files still arrive.
MORE = [
    ("pyquic", "pyquic", "zerortt"),
    ("pyquic", "aioquic", "resumption"),
    ("aioquic", "pyquic", "zerortt"),
    ("qh3", "pyquic", "http3"),
    ("pyquic", "qh3", "retry"),
    ("aioquic", "pyquic", "keyupdate"),
    ("pyquic", "ngtcp2", "keyupdate"),
    ("ngtcp2", "pyquic", "chacha20"),
    ("pyquic", "ngtcp2", "handshakeloss"),
    ("ngtcp2", "pyquic", "handshakeloss"),  # pyquic's endpoint.py, over h3
    ("qh3", "pyquic", "handshakecorruption"),  # pyquic's endpoint.py, over hq-interop
]


@pytest.mark.parametrize("server,client,case", MORE, ids=[f"{s}-serves-{c}-{t}" for s, c, t in MORE])
def test_more_cases(tmp_path, certs, server, client, case):
    run_pair(tmp_path, certs, server, client, case, [3_000, 40_000, 700], alpn_for(server))


MUX = [("pyquic", "qh3"), ("aioquic", "pyquic"), ("pyquic", "ngtcp2")]


@pytest.mark.parametrize("server,client", MUX, ids=[f"{s}-serves-{c}" for s, c in MUX])
def test_multiplexing_beyond_stream_limits(tmp_path, certs, server, client):
    """More requests than the server's initial stream limit (128 for pyquic
    and aioquic, 100 for ngtcp2): the client must wait for MAX_STREAMS."""
    run_pair(tmp_path, certs, server, client, "multiplexing", [32] * 300, alpn_for(server))


UNSUPPORTED = [
    ("ngtcp2", "v2"), ("aioquic", "ecn"), ("qh3", "ecn"), ("qh3", "newtoken"),
    ("aioquic", "activemigration"), ("qh3", "activemigration"),
    ("pyquic", "no-such-case"), ("aioquic", "no-such-case"), ("ngtcp2", "no-such-case"),
]


@pytest.mark.parametrize("name,case", UNSUPPORTED)
@pytest.mark.parametrize("role", ["server", "client"])
def test_unsupported_exits_127(tmp_path, certs, name, case, role):
    env = dict(base_env(tmp_path, certs, case, free_udp_port()), ROLE=role, SERVER="127.0.0.1",
               REQUESTS="https://127.0.0.1:9/x")
    proc = subprocess.run(script(name), env=env, capture_output=True, text=True, timeout=20, cwd=tmp_path)
    assert proc.returncode == 127, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["ngtcp2", "pyquic"])
def test_a_server_asked_for_activemigration_declines(tmp_path, certs, name):
    # The harness gives the server "transfer" (the client migrates on its own).
    env = dict(base_env(tmp_path, certs, "activemigration", free_udp_port()), ROLE="server")
    assert subprocess.run(script(name), env=env, capture_output=True, timeout=20).returncode == 127


@pytest.mark.parametrize("name", ["aioquic", "qh3"])
def test_a_server_without_a_preferred_address_declines_connectionmigration(tmp_path, certs, name):
    env = dict(base_env(tmp_path, certs, "connectionmigration", free_udp_port()), ROLE="server")
    assert subprocess.run(script(name), env=env, capture_output=True, timeout=20).returncode == 127


def test_ngtcp2_client_fails_when_nothing_arrives(tmp_path, certs):
    """gtlsclient exits 0 even when it fetched nothing: the script must not."""
    (tmp_path / "downloads").mkdir()
    env = dict(base_env(tmp_path, certs, "transfer", free_udp_port()), ROLE="client",
               REQUESTS=f"https://127.0.0.1:{free_udp_port()}/nothing")
    proc = subprocess.run(script("ngtcp2"), env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
