# Four defects an outside review found, each pinned by tests against the
# engine and against real peers (openssl s_server / s_client, Python ssl,
# raw crafted bytes over TCP, the `python -m tls server` process):
#   1. legacy_version: a hello at or below SSL 3.0 (0x0300) gets
#      protocol_version (RFC 8446 Appendix D.5), ClientHello and ServerHello;
#      TLS 1.0 / 1.1 legacy_version beside supported_versions(1.3) is let
#      through as §4.2.1 demands (and as OpenSSL does).
#   2. a zero-length alert record gets unexpected_message (§5.4), not
#      decode_error.
#   3. ClientHello size: every legal ClientHello (up to 131,396 body bytes)
#      is accepted, e.g. one of 65,609 bytes with 32,715 signature schemes,
#      as OpenSSL accepts it; a configured smaller cap (Config /
#      --max-client-hello) answers decode_error; other messages keep the
#      tight max_handshake_buffer.
#   4. `python -m tls server --www`: one HTTP/1.0 answer per connection,
#      then close_notify, checked with s_client and Python's ssl/http.client.
from __future__ import annotations

import dataclasses
import http.client
import re
import socket
import ssl
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import tls
import tls.engine
from tls import AlertDescription as AD
from tls import Level
from tls import events as ev
from tls import extensions as X
from tls.config import MAX_CLIENT_HELLO_BODY
from tls.enums import ExtensionType as ET
from tls.enums import HandshakeType as HT
from tls.key_schedule import CIPHER_SUITES, traffic_key_iv
from tls.messages import HRR_RANDOM, ClientHello, ServerHello, handshake_header
from tls.record import RecordLayer

from .pki import make_test_pki
from .tls_engine_driver import NOW, Pair
from .tls_peers import TIMEOUT, read_all, s_client, s_server

PY = sys.executable


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(tls.engine, "RAISE_INTERNAL_ERRORS", True)


@pytest.fixture(scope="module")
def pki():
    return make_test_pki()


@pytest.fixture(scope="module")
def files(pki, tmp_path_factory):
    return pki.write_pem(tmp_path_factory.mktemp("pki"))


def server_engine(pki, **kw) -> tls.Engine:
    cfg = tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key, **kw)
    return tls.Engine(cfg, False, tls.TCP, now=NOW)


def client_cfg(pki, **kw) -> tls.Config:
    return tls.Config(server_name="localhost", trust_store=pki.trust_store(), **kw)


# ---------------------------------------------------------------------------
# crafted ClientHellos (our own message codec)


def crafted_hello(
    *,
    version: int = 0x0303,
    schemes: list[int] | None = None,
    suites: list[int] | None = None,
    session_id: bytes = b"",
    total: int | None = None,
    compression: bytes = b"\x00",
) -> bytes:
    """A TLS 1.3 ClientHello (handshake message, header included) offering
    X25519 and ecdsa_secp256r1_sha256 (what the test PKI's server key signs
    with, and what openssl s_server's P-256 key needs).  `total` pads it to
    exactly that many bytes with a padding extension (RFC 7685)."""
    share = X25519PrivateKey.generate().public_key().public_bytes_raw()
    exts = [
        (ET.SUPPORTED_VERSIONS, X.encode_supported_versions_client([0x0304])),
        (ET.SUPPORTED_GROUPS, X.encode_supported_groups([0x001D])),
        (ET.KEY_SHARE, X.encode_key_share_client([(0x001D, share)])),
        (ET.SIGNATURE_ALGORITHMS, X.encode_signature_algorithms(schemes or [0x0403, 0x0804])),
    ]
    ch = ClientHello(b"\x5a" * 32, session_id, suites or [0x1301], exts, version, compression)
    raw = ch.encode()
    if total is not None:
        pad = total - len(raw) - 4  # the padding extension's own header is 4 bytes
        assert pad >= 0, (total, len(raw))
        raw = dataclasses.replace(ch, extensions=exts + [(ET.PADDING, bytes(pad))]).encode()
        assert len(raw) == total
    return raw


# The reported case: 32,715 signature schemes make a 65,609-byte ClientHello
# (a full 32-byte session id, three suites and RFC 7685 padding fill it out).
BIG_SCHEMES = [0x0403] + list(range(0x8000, 0x8000 + 32714))
BIG_TOTAL = 65_609


def big_hello() -> bytes:
    return crafted_hello(schemes=BIG_SCHEMES, suites=[0x1301, 0x1302, 0x1303], session_id=b"\x11" * 32,
                         total=BIG_TOTAL)


def largest_tls13_hello() -> bytes:
    """The largest ClientHello a TLS 1.3 server can accept: 32,767 cipher
    suites (cipher_suites<2..2^16-2> full), a 32-byte session id and a full
    extensions block (only compression is held to its one null byte):
    131,146 bytes, over 128 KiB."""
    suites = [0x1301] + list(range(0x8000, 0x8000 + 32766))
    total = 4 + MAX_CLIENT_HELLO_BODY - 254
    raw = crafted_hello(schemes=BIG_SCHEMES[:1000], suites=suites, session_id=b"\x22" * 32, total=total)
    assert int.from_bytes(raw[-65535 - 2 : -65535], "big") == 65535  # the extensions block is full
    return raw


def records(message: bytes, ctype: int = 22) -> bytes:
    """A handshake message cut into plaintext records of at most 2^14 bytes."""
    out = bytearray()
    for i in range(0, len(message), 16384):
        chunk = message[i : i + 16384]
        out += bytes((ctype, 3, 1)) + len(chunk).to_bytes(2, "big") + chunk
    return bytes(out)


def first_record(sock: socket.socket) -> tuple[int, bytes]:
    """(content type, content) of the first record the peer sends."""
    sock.settimeout(TIMEOUT)
    buf = bytearray()
    while len(buf) < 5 or len(buf) < 5 + int.from_bytes(buf[3:5], "big"):
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed after {bytes(buf)!r}")
        buf += data
    return buf[0], bytes(buf[5 : 5 + int.from_bytes(buf[3:5], "big")])


def exchange(port: int, data: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        return first_record(sock)


def assert_server_hello(answer: tuple[int, bytes]) -> None:
    ctype, content = answer
    assert ctype == 22 and content[0] == HT.SERVER_HELLO, answer[:2]
    sh = ServerHello.parse(content[4 : 4 + int.from_bytes(content[1:4], "big")])
    assert sh.random != HRR_RANDOM


def assert_alert(answer: tuple[int, bytes], description: int) -> None:
    assert answer == (21, bytes((2, description))), answer


class OurServer:
    """`python -m tls server` as a process (ACCEPT line parsed)."""

    def __init__(self, files, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "tls", "server", "--port", "0", "--cert", str(files["server_chain"]),
             "--key", str(files["server_key"]), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        match = re.match(r"ACCEPT .*:(\d+)", line)
        assert match, line + self.proc.stderr.read()
        self.port = int(match.group(1))

    def finish(self) -> str:
        """Wait for the process (it was given --count) and return its stderr."""
        try:
            self.proc.wait(TIMEOUT * 3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
            raise
        finally:
            err = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()
        assert self.proc.returncode == 0, err
        return err

    def __enter__(self) -> OurServer:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        for f in (self.proc.stdout, self.proc.stderr):
            if not f.closed:
                f.close()


# ---------------------------------------------------------------------------
# 1. legacy_version (RFC 8446 Appendix D.5, §4.2.1, Appendix D.2)


@pytest.mark.parametrize("version", [0x0300, 0x0200, 0x0002, 0x0000])
def test_ssl3_or_older_client_hello_is_protocol_version(pki, version):
    server = server_engine(pki)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, crafted_hello(version=version))
    assert info.value.description == AD.protocol_version


def test_ssl3_client_hello_protocol_version_wins_over_compression(pki):
    # Appendix D.5's protocol_version comes before §4.1.2's illegal_parameter.
    server = server_engine(pki)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, crafted_hello(version=0x0300, compression=b"\x01\x00"))
    assert info.value.description == AD.protocol_version


@pytest.mark.parametrize("version", [0x0301, 0x0302, 0x0303])
def test_tls1x_legacy_version_beside_supported_versions_is_accepted(pki, version):
    # §4.2.1: with supported_versions present, legacy_version is not used for
    # version negotiation (OpenSSL agrees: see the s_server test below).
    events = server_engine(pki).receive(Level.INITIAL, crafted_hello(version=version))
    hdr = [e for e in events if isinstance(e, ev.HandshakeDataReady) and e.level == Level.INITIAL]
    assert hdr and hdr[0].data[0] == HT.SERVER_HELLO


def test_ssl3_server_hello_is_protocol_version(pki):
    def ssl3(to_server, level, data):
        if not to_server and level == Level.INITIAL and data[0] == HT.SERVER_HELLO:
            n = int.from_bytes(data[1:4], "big")
            sh = dataclasses.replace(ServerHello.parse(data[4 : 4 + n]), legacy_version=0x0300)
            return sh.encode() + data[4 + n :]
        return data

    p = Pair(client_cfg(pki), tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key))
    with pytest.raises(tls.AlertError) as info:
        p.handshake(ssl3)
    assert info.value.description == AD.protocol_version
    assert p.client.engine.failure is info.value


def test_ssl3_client_hello_over_tcp_our_server_and_s_server(files):
    """The same crafted bytes to `python -m tls server` and to openssl
    s_server: both refuse 0x0300 and answer 0x0301 with a ServerHello.
    OpenSSL 3.0 says handshake_failure ("bad legacy version") where
    Appendix D.5 asks for protocol_version, which we send."""
    ssl3 = records(crafted_hello(version=0x0300))
    tls10 = records(crafted_hello(version=0x0301))
    with OurServer(files, "--count", "2") as ours:
        assert_alert(exchange(ours.port, ssl3), AD.protocol_version)
        assert_server_hello(exchange(ours.port, tls10))
        err = ours.finish()
    assert "protocol_version" in err
    server, port = s_server(files, "-naccept", "2")
    with server:
        ctype, content = exchange(port, ssl3)
        assert ctype == 21 and content[0] == 2 and content[1] in (AD.protocol_version, AD.handshake_failure)
        assert_server_hello(exchange(port, tls10))


# ---------------------------------------------------------------------------
# 2. zero-length alert records (RFC 8446 §5.4)


def test_zero_length_plaintext_alert_is_unexpected_message():
    layer = RecordLayer()
    layer.receive_data(b"\x15\x03\x03\x00\x00")
    with pytest.raises(tls.AlertError) as info:
        layer.next_record()
    assert info.value.description == AD.unexpected_message


def test_zero_length_protected_alert_is_unexpected_message():
    secret = bytes(range(32))
    reader = RecordLayer()
    reader.set_read_key(0x1301, secret, Level.APPLICATION)
    reader.handshaking = False
    # TLSInnerPlaintext with empty content and type alert: just the type byte,
    # sealed with AES-128-GCM by hand (our writer refuses to send it).
    key, iv = traffic_key_iv(CIPHER_SUITES[0x1301], secret)
    header = bytes((23, 3, 3, 0, 17))
    reader.receive_data(header + AESGCM(key).encrypt(iv, b"\x15", header))
    with pytest.raises(tls.AlertError) as info:
        reader.next_record()
    assert info.value.description == AD.unexpected_message


def test_zero_length_alert_over_tcp(files):
    """A raw client sends an empty alert record first: `python -m tls server`
    answers unexpected_message on the wire."""
    with OurServer(files, "--count", "1") as ours:
        with socket.create_connection(("127.0.0.1", ours.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"\x15\x03\x03\x00\x00")
            sock.shutdown(socket.SHUT_WR)
            answer = read_all(sock)
        err = ours.finish()
    assert answer == bytes((21, 3, 3, 0, 2, 2, AD.unexpected_message)), answer
    assert "unexpected_message" in err


# ---------------------------------------------------------------------------
# 3. ClientHello size caps


def test_65609_byte_client_hello_gets_a_server_hello(pki):
    raw = big_hello()
    assert len(X.parse_signature_algorithms(dict(ClientHello.parse(raw[4:]).extensions)[ET.SIGNATURE_ALGORITHMS])) == 32_715
    server = server_engine(pki)
    events = []
    for i in range(0, len(raw), 16384):  # as the record layer delivers it
        events += server.receive(Level.INITIAL, raw[i : i + 16384])
    hdr = [e for e in events if isinstance(e, ev.HandshakeDataReady)]
    assert hdr[0].level == Level.INITIAL and hdr[0].data[0] == HT.SERVER_HELLO
    assert server.negotiated.signature_scheme == 0x0403


def test_largest_tls13_client_hello_gets_a_server_hello(pki):
    raw = largest_tls13_hello()
    events = server_engine(pki).receive(Level.INITIAL, raw)
    assert any(isinstance(e, ev.HandshakeDataReady) and e.data[0] == HT.SERVER_HELLO for e in events)


def test_client_hello_over_the_caps_is_decode_error(pki):
    # past the largest legal ClientHello: judged from the header alone
    server = server_engine(pki)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, handshake_header(HT.CLIENT_HELLO, MAX_CLIENT_HELLO_BODY + 1))
    assert info.value.description == AD.decode_error
    assert server_engine(pki).receive(Level.INITIAL, handshake_header(HT.CLIENT_HELLO, MAX_CLIENT_HELLO_BODY)) == []
    # a configured smaller cap
    server = server_engine(pki, max_client_hello=65536)
    with pytest.raises(tls.AlertError) as info:
        server.receive(Level.INITIAL, big_hello())
    assert info.value.description == AD.decode_error
    # the big ClientHello cap is the server's: other messages keep the tight one
    client = tls.Engine(client_cfg(pki), True, tls.TCP, now=NOW)
    client.start()
    with pytest.raises(tls.AlertError) as info:
        client.receive(Level.INITIAL, handshake_header(HT.SERVER_HELLO, 65537))
    assert info.value.description == AD.decode_error


def test_cap_settings_are_checked():
    for kw in ({"max_client_hello": 100}, {"max_client_hello": 1 << 24}, {"max_handshake_buffer": 100}):
        with pytest.raises(tls.UsageError):
            tls.Config(**kw)
    assert tls.Config().max_client_hello == MAX_CLIENT_HELLO_BODY == 131_396


def test_big_client_hello_over_tcp_our_server_and_s_server(files):
    """The 65,609-byte ClientHello in records: openssl s_server and
    `python -m tls server` both answer with a ServerHello; with
    --max-client-hello 65536 ours answers decode_error."""
    wire = records(big_hello())
    largest = records(largest_tls13_hello())
    server, port = s_server(files, "-naccept", "2")
    with server:
        assert_server_hello(exchange(port, wire))
        assert_server_hello(exchange(port, largest))
    with OurServer(files, "--count", "2") as ours:
        assert_server_hello(exchange(ours.port, wire))
        assert_server_hello(exchange(ours.port, largest))
        ours.finish()
    with OurServer(files, "--count", "1", "--max-client-hello", "65536") as ours:
        assert_alert(exchange(ours.port, wire), AD.decode_error)
        assert "decode_error" in ours.finish()


# ---------------------------------------------------------------------------
# 4. python -m tls server --www


def test_www_mode_with_s_client_and_python_ssl(files):
    with OurServer(files, "--www", "--count", "4") as ours:
        # openssl s_client -quiet: the request from stdin, the page on stdout;
        # s_client ends by itself when the server closes.  Had the server
        # closed TCP without close_notify, s_client would exit 1 printing
        # "error:0A000126:...:unexpected eof while reading".
        client = s_client(files, ours.port, "-quiet", "-verify_return_error")
        with client:
            client.write(b"GET / HTTP/1.0\r\n\r\n")
            client.wait_for(r"HTTP/1\.0 200 OK[\s\S]*Protocol version: TLSv1\.3[\s\S]*Ciphersuite: TLS_")
            assert client.wait() == 0, client.output
            assert "error" not in client.output.lower(), client.output
        # Python's http.client over ssl
        ctx = ssl.create_default_context(cafile=str(files["ca"]))
        conn = http.client.HTTPSConnection("localhost", ours.port, context=ctx, timeout=TIMEOUT)
        conn.request("GET", "/index.html")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200 and response.version == 10
        assert response.getheader("Content-Type").startswith("text/plain")
        assert int(response.getheader("Content-Length")) == len(body.encode())
        assert "Your request: GET /index.html HTTP/1.1" in body
        assert "Protocol version: TLSv1.3" in body and "Ciphersuite: TLS_" in body
        conn.close()
        # ssl directly: the stream ends with close_notify (no SSLEOFError with
        # ragged EOFs not suppressed), and unwrap() completes the closure.
        with socket.create_connection(("127.0.0.1", ours.port), timeout=TIMEOUT) as raw:
            s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = bytearray()
            while chunk := s.recv(65536):  # SSLEOFError here would mean no close_notify
                data += chunk
            cipher = s.cipher()[0]
            s.unwrap()
        head, _, page = bytes(data).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK\r\n")
        assert f"Ciphersuite: {cipher}".encode() in page
        # a method we do not serve still gets an answer and a clean close
        with socket.create_connection(("127.0.0.1", ours.port), timeout=TIMEOUT) as raw:
            s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
            s.sendall(b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
            data = bytearray()
            while chunk := s.recv(65536):
                data += chunk
            s.unwrap()
        assert data.startswith(b"HTTP/1.0 501 ")
        err = ours.finish()
    assert err.count("CONNECTION ESTABLISHED") == 4 and "ended:" not in err, err


def test_www_and_file_are_exclusive(files, tmp_path):
    result = subprocess.run([PY, "-m", "tls", "server", "--self-signed", "--www", "--file", str(tmp_path / "x")],
                            capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert result.returncode == 2 and "not allowed with" in result.stderr
