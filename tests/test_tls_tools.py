# The debugging commands (tls/tools/client.py, tls/tools/server.py and the
# `python -m tls client|server` entry point) run as real processes against
# each other and against openssl s_server / s_client.
import re
import subprocess
import sys

import pytest

from .pki import make_test_pki
from .tls_peers import TIMEOUT, OpenSSL, s_server

PY = sys.executable


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_test_pki().write_pem(tmp_path_factory.mktemp("pki"))


def run_client(*args, timeout=TIMEOUT * 3):
    return subprocess.run([PY, "-m", "tls.tools.client", *args], capture_output=True, text=True, timeout=timeout)


def test_our_client_command_against_our_server_command(files, tmp_path):
    served = tmp_path / "served.txt"
    served.write_text("the file's contents\n")
    proc = subprocess.Popen([PY, "-m", "tls", "server", "--port", "0", "--cert", str(files["server_chain"]),
                             "--key", str(files["server_key"]), "--alpn", "x-test", "--count", "2",
                             "--file", str(served)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = re.match(r"ACCEPT .*:(\d+)", proc.stdout.readline()).group(1)
        result = run_client("127.0.0.1", port, "--cafile", str(files["ca"]), "--servername", "localhost",
                            "--alpn", "x-test", "--send", "ignored")
        assert result.returncode == 0, result.stderr
        assert "Protocol version: TLSv1.3" in result.stdout
        assert "ALPN protocol: x-test" in result.stdout
        assert "Group: X25519MLKEM768" in result.stdout
        assert "the file's contents" in result.stdout
        failed = run_client("127.0.0.1", port, "--cafile", str(files["ca"]), "--servername", "wrong.example",
                            "--send", "x")
        assert failed.returncode == 1 and "bad_certificate" in failed.stderr
    finally:
        stop(proc)
        err = proc.stderr.read()
    assert "CONNECTION ESTABLISHED" in err and "handshake failed" in err


def test_our_client_command_against_s_server(files):
    server, port = s_server(files, "-groups", "P-384", "-naccept", "1", "-rev")
    with server:
        result = run_client("127.0.0.1", str(port), "--cafile", str(files["ca"]), "--servername", "localhost",
                            "--send", "reverse me")
    assert result.returncode == 0, result.stderr
    assert "Group: SECP384R1 (after HelloRetryRequest)" in result.stdout
    assert "em esrever" in result.stdout


def test_our_server_command_against_s_client(files):
    proc = subprocess.Popen([PY, "-m", "tls.tools.server", "--port", "0", "--cert", str(files["server_chain"]),
                             "--key", str(files["server_key"]), "--count", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = re.match(r"ACCEPT .*:(\d+)", proc.stdout.readline()).group(1)
        client = OpenSSL(["s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(files["ca"]),
                          "-servername", "localhost", "-verify_return_error"])
        with client:
            client.write(b"echo from s_client\n")
            client.wait_for(r"Verify return code: 0 \(ok\)[\s\S]*echo from s_client")
            client.close_stdin()
            client.wait()
    finally:
        stop(proc)


def stop(proc):
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(TIMEOUT)
        raise


def test_usage_errors_exit_2():
    result = subprocess.run([PY, "-m", "tls.tools.server", "--port", "0"], capture_output=True, text=True,
                            timeout=TIMEOUT * 3)
    assert result.returncode == 2 and "--self-signed" in result.stderr
    result = subprocess.run([PY, "-m", "tls"], capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert result.returncode == 2
