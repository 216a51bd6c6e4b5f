# TLS over TCP against OpenSSL, over loopback sockets: Python's ssl module
# (OpenSSL in-process) and the openssl s_client / s_server commands, in both
# roles.  Every suite and every group both sides support (OpenSSL 3.0 here:
# x25519, P-256, P-384; it has no X25519MLKEM768, and we have no x448 /
# P-521 / ffdhe), HelloRetryRequest forced by group preferences, client
# certificates, resumption and 0-RTT, KeyUpdate from either side, 100 MB
# byte-exact, close_notify, and bad input from a peer ending in the right
# alert.  Every socket and process has a timeout.
import hashlib
import os
import socket
import ssl
import time

import pytest

from tls.config import Config, VerifyMode
from tls.enums import AlertDescription, Group
from tls.errors import AlertError, PeerAlert
from tls.tcp import create_connection, wrap_socket
from tls.tickets import TicketStore

from .pki import make_test_pki
from .tls_peers import TIMEOUT, CorruptingProxy, ThreadServer, alert_record, read_all, s_client, s_server

SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}
GROUPS = {Group.X25519: "X25519", Group.SECP256R1: "P-256", Group.SECP384R1: "P-384"}


@pytest.fixture(scope="module")
def pki():
    return make_test_pki()


@pytest.fixture(scope="module")
def files(pki, tmp_path_factory):
    return pki.write_pem(tmp_path_factory.mktemp("pki"))


def client_config(files, **kw):
    kw.setdefault("server_name", "localhost")
    return Config(cafile=str(files["ca"]), **kw)


def server_config(files, **kw):
    return Config(certificate_chain=str(files["server_chain"]), private_key=str(files["server_key"]), **kw)


def ssl_server_context(files, **kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(files["server_chain"], files["server_key"])
    return ctx


def ssl_client_context(files):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(files["ca"])
    return ctx


def echoed(text):
    """s_client's output: the received echo after the handshake summary."""
    return r"Verify return code: 0 \(ok\)\n---\n[\s\S]*" + text


def our_echo_server(config, count=1, **options):
    """A ThreadServer running our TLS server that echoes until EOF."""

    def handler(sock):
        tls = wrap_socket(sock, config, server_side=True, **options)
        received = bytearray()
        while True:
            data = tls.recv(65536)
            if not data:
                break
            received += data
            tls.sendall(data)
        info = {"data": bytes(received), "resumed": tls.session_reused, "early": tls.early_data_accepted,
                "key_updates": tls.key_updates_received, "cipher": tls.cipher(), "group": tls.conn.negotiated.group,
                "hrr": tls.conn.negotiated.hello_retry, "peer": tls.peer_certificates()}
        tls.close()
        return info

    return ThreadServer(handler, count)


# ---------------------------------------------------------------------------
# Suites and groups, both roles, with the openssl commands


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_our_client_every_suite_against_s_server(files, suite):
    server, port = s_server(files, "-ciphersuites", SUITES[suite], "-naccept", "1")
    with server:
        with create_connection(("127.0.0.1", port), client_config(files), timeout=TIMEOUT) as tls:
            assert tls.cipher()[0] == SUITES[suite]
            tls.sendall(b"hello s_server\n")
            server.wait_for("hello s_server")


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_our_server_every_suite_against_s_client(files, suite):
    with our_echo_server(server_config(files)) as srv:
        client = s_client(files, srv.port, "-ciphersuites", SUITES[suite], "-verify_return_error")
        with client:
            client.wait_for(f"Cipher is {SUITES[suite]}")
            client.write(b"echo me\n")
            client.wait_for("echo me")
            client.close_stdin()
            client.wait()
    assert not srv.errors, srv.errors
    assert srv.results[0]["cipher"][0] == SUITES[suite]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_our_client_every_group_against_s_server(files, group):
    server, port = s_server(files, "-groups", GROUPS[group], "-naccept", "1")
    with server:
        config = client_config(files, groups=[group], key_share_groups=[group])
        with create_connection(("127.0.0.1", port), config, timeout=TIMEOUT) as tls:
            assert tls.conn.negotiated.group == group and not tls.conn.negotiated.hello_retry
            tls.sendall(b"group ok\n")
            server.wait_for("group ok")


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_our_server_every_group_against_s_client(files, group):
    with our_echo_server(server_config(files, groups=[group])) as srv:
        client = s_client(files, srv.port, "-groups", GROUPS[group])
        with client:
            client.write(b"ping\n")
            client.wait_for(echoed("ping"))
            client.close_stdin()
            client.wait()
    assert not srv.errors, srv.errors
    assert srv.results[0]["group"] == group


def test_hello_retry_request_from_s_server(files):
    # Our first flight offers shares for X25519MLKEM768 and x25519; s_server
    # only takes P-384, so it must ask again.
    server, port = s_server(files, "-groups", "P-384", "-naccept", "1")
    with server:
        with create_connection(("127.0.0.1", port), client_config(files), timeout=TIMEOUT) as tls:
            assert tls.conn.negotiated.hello_retry and tls.conn.negotiated.group == Group.SECP384R1
            tls.sendall(b"after hrr\n")
            server.wait_for("after hrr")


def test_hello_retry_request_to_s_client(files):
    # s_client sends an x25519 share first; we only take P-256.
    with our_echo_server(server_config(files, groups=[Group.SECP256R1])) as srv:
        client = s_client(files, srv.port)
        with client:
            client.write(b"retry\n")
            client.wait_for(echoed("retry"))
            client.close_stdin()
            client.wait()
    assert not srv.errors, srv.errors
    assert srv.results[0]["hrr"] and srv.results[0]["group"] == Group.SECP256R1


def test_hello_retry_request_from_our_server_to_python_ssl(files):
    with our_echo_server(server_config(files, groups=[Group.SECP384R1])) as srv:
        with ssl_client_context(files).wrap_socket(
                socket.create_connection(srv.address, timeout=TIMEOUT), server_hostname="localhost") as s:
            s.sendall(b"hrr via ssl")
            assert s.recv(100) == b"hrr via ssl"
    assert srv.results[0]["hrr"]


# ---------------------------------------------------------------------------
# Client certificates both ways


def test_our_client_certificate_to_python_ssl(files, pki):
    ctx = ssl_server_context(files)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(files["ca"])
    seen = {}

    def handler(sock):
        with ctx.wrap_socket(sock, server_side=True) as s:
            seen["cert"] = s.getpeercert()
            s.sendall(s.recv(100))

    with ThreadServer(handler) as srv:
        config = client_config(files, certificate_chain=str(files["client_chain"]), private_key=str(files["client_key"]))
        with create_connection(srv.address, config, timeout=TIMEOUT) as tls:
            tls.sendall(b"with a cert")
            assert tls.recv(100) == b"with a cert"
    assert not srv.errors, srv.errors
    assert dict(x[0] for x in seen["cert"]["subject"])["commonName"] == "pyquic test client"


def test_python_ssl_client_certificate_to_our_server(files, pki):
    config = server_config(files, verify_mode=VerifyMode.REQUIRED, cafile=str(files["ca"]))
    with our_echo_server(config) as srv:
        ctx = ssl_client_context(files)
        ctx.load_cert_chain(files["client_chain"], files["client_key"])
        with ctx.wrap_socket(socket.create_connection(srv.address, timeout=TIMEOUT), server_hostname="localhost") as s:
            s.sendall(b"cert")
            assert s.recv(100) == b"cert"
    assert not srv.errors, srv.errors
    assert srv.results[0]["peer"][0] == pki.client.cert


def test_missing_client_certificate_is_certificate_required(files):
    config = server_config(files, verify_mode=VerifyMode.REQUIRED, cafile=str(files["ca"]))
    with our_echo_server(config) as srv:
        with ssl_client_context(files).wrap_socket(
                socket.create_connection(srv.address, timeout=TIMEOUT), server_hostname="localhost") as s:
            with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED|certificate required"):
                s.sendall(b"x")
                s.recv(100)
    assert isinstance(srv.errors[0], AlertError)
    assert srv.errors[0].description == AlertDescription.certificate_required


def test_s_client_certificate_to_our_server(files, pki):
    config = server_config(files, verify_mode=VerifyMode.REQUIRED, cafile=str(files["ca"]))
    with our_echo_server(config) as srv:
        client = s_client(files, srv.port, "-cert", str(files["client_cert"]), "-cert_chain",
                          str(files["intermediate"]), "-key", str(files["client_key"]))
        with client:
            client.write(b"mutual\n")
            client.wait_for(echoed("mutual"))
            client.close_stdin()
            client.wait()
    assert not srv.errors, srv.errors
    assert srv.results[0]["peer"][0] == pki.client.cert


# ---------------------------------------------------------------------------
# Resumption and 0-RTT


def test_our_client_resumes_with_python_ssl(files):
    ctx = ssl_server_context(files)

    def handler(sock):
        with ctx.wrap_socket(sock, server_side=True) as s:
            data = s.recv(100)
            s.sendall(data)
            return s.session_reused

    store = TicketStore()
    config = client_config(files, ticket_store=store)
    with ThreadServer(handler, count=2) as srv:
        for _ in range(2):
            with create_connection(srv.address, config, timeout=TIMEOUT) as tls:
                tls.sendall(b"hi")
                assert tls.recv(10) == b"hi"
                resumed = tls.session_reused
    assert not srv.errors, srv.errors
    assert srv.results == [False, True] and resumed


def test_python_ssl_resumes_with_our_server(files):
    ctx = ssl_client_context(files)
    with our_echo_server(server_config(files), count=2) as srv:
        with ctx.wrap_socket(socket.create_connection(srv.address, timeout=TIMEOUT), server_hostname="localhost") as s:
            s.sendall(b"first")
            assert s.recv(100) == b"first"
            session = s.session
        with ctx.wrap_socket(socket.create_connection(srv.address, timeout=TIMEOUT), server_hostname="localhost",
                             session=session) as s:
            s.sendall(b"second")
            assert s.recv(100) == b"second"
            assert s.session_reused
    assert [r["resumed"] for r in srv.results] == [False, True]


def test_our_client_0rtt_and_key_update_with_s_server(files):
    server, port = s_server(files, "-early_data")
    with server:
        config = client_config(files, ticket_store=TicketStore(), enable_early_data=True)
        with create_connection(("127.0.0.1", port), config, timeout=TIMEOUT) as tls:
            tls.sendall(b"first connection\n")
            server.wait_for("first connection")
            # KeyUpdate with update_requested from s_server ('K'), then data.
            server.write(b"K\n")
            wait_until(tls, lambda: tls.key_updates_received == 1)
            server.write(b"from s_server\n")
            assert tls.recv(100) == b"from s_server\n"
            assert tls.key_updates_received == 1
            tls.sendall(b"after its key update\n")
            server.wait_for("after its key update")
            # Our own KeyUpdate, asking s_server to update too.
            tls.key_update(request_peer=True)
            tls.sendall(b"after our key update\n")
            server.wait_for("after our key update")
            server.write(b"still readable\n")
            assert tls.recv(100) == b"still readable\n"
            assert tls.key_updates_received == 2
            while len(tls.tickets) < 2:
                tls.recv(1)  # pragma: no cover - tickets come with the data above
        tls = wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT), config,
                          do_handshake_on_connect=False)
        with tls:
            tls.send_early(b"zero round trips\n")
            tls.do_handshake()
            assert tls.session_reused and tls.early_data_accepted
            server.wait_for(r"zero round trips[\s\S]*Early data received|Early data received:[\s\S]*zero round trips")
            tls.sendall(b"then 1-RTT\n")
            server.wait_for("then 1-RTT")


def wait_until(tls, condition, timeout=TIMEOUT):
    """Read (and process) from a TLSSocket until condition() holds; for
    records that carry no application data, such as KeyUpdate."""
    saved = tls.gettimeout()
    deadline = time.monotonic() + timeout
    tls.settimeout(0.1)
    try:
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            try:
                tls._read_more()
            except socket.timeout:
                pass
    finally:
        tls.settimeout(saved)


def test_s_client_resumes_and_sends_0rtt_to_our_server(files, tmp_path):
    session = tmp_path / "session.pem"
    early = tmp_path / "early.txt"
    early.write_bytes(b"early from s_client\n")
    config = server_config(files, max_early_data=16384)
    with our_echo_server(config, count=2) as srv:
        first = s_client(files, srv.port, "-sess_out", str(session))
        with first:
            first.write(b"one\n")
            first.wait_for(echoed("one"))
            deadline = time.monotonic() + TIMEOUT
            while not (session.exists() and session.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.05)
            first.close_stdin()
            first.wait()
        second = s_client(files, srv.port, "-sess_in", str(session), "-early_data", str(early))
        with second:
            second.wait_for("Reused, TLSv1.3")
            second.wait_for("Early data was accepted")
            second.write(b"two\n")
            second.wait_for(echoed("early from s_client\n[\\s\\S]*two"))
            second.close_stdin()
            second.wait()
    assert not srv.errors, srv.errors
    assert srv.results[1]["resumed"] and srv.results[1]["early"]
    assert srv.results[1]["data"].startswith(b"early from s_client\n")


def test_s_client_key_updates_to_our_server(files):
    with our_echo_server(server_config(files)) as srv:
        client = s_client(files, srv.port)
        with client:
            client.write(b"before\n")
            client.wait_for(echoed("before"))
            client.write(b"k\n")
            client.wait_for("KEYUPDATE")
            client.write(b"after k\n")
            client.wait_for(echoed("after k"))
            client.write(b"K\n")
            client.wait_for("KEYUPDATE[\\s\\S]*KEYUPDATE")
            client.write(b"after K\n")
            client.wait_for(echoed("after K"))
            client.close_stdin()
            client.wait()
    assert not srv.errors, srv.errors
    assert srv.results[0]["key_updates"] == 2


def test_our_server_key_update_to_python_ssl(files):
    def handler(sock):
        tls = wrap_socket(sock, server_config(files), server_side=True)
        tls.recv(100)
        tls.key_update(request_peer=True)
        tls.sendall(b"new keys")
        assert tls.recv(100) == b"answer"
        updates = tls.key_updates_received
        tls.close()
        return updates

    with ThreadServer(handler) as srv:
        with ssl_client_context(files).wrap_socket(
                socket.create_connection(srv.address, timeout=TIMEOUT), server_hostname="localhost") as s:
            s.sendall(b"go")
            assert s.recv(100) == b"new keys"
            s.sendall(b"answer")
    assert not srv.errors, srv.errors
    assert srv.results == [1]  # ssl answered update_requested with its own KeyUpdate


# ---------------------------------------------------------------------------
# Bulk, byte-exact, and close_notify


BULK = 100 * 1024 * 1024
BLOCK = os.urandom(1 << 20)


def test_100_megabytes_each_way_with_python_ssl(files):
    ctx = ssl_server_context(files)
    digest = hashlib.sha256(BLOCK * (BULK // len(BLOCK))).hexdigest()

    def handler(sock):
        with ctx.wrap_socket(sock, server_side=True) as s:
            h, n = hashlib.sha256(), 0
            while n < BULK:
                data = s.recv(1 << 20)
                assert data, "early EOF"
                h.update(data)
                n += len(data)
            for _ in range(BULK // len(BLOCK)):
                s.sendall(BLOCK)
            return h.hexdigest()

    with ThreadServer(handler, timeout=60) as srv:
        with create_connection(srv.address, client_config(files), timeout=60) as tls:
            t0 = time.perf_counter()
            for _ in range(BULK // len(BLOCK)):
                tls.sendall(BLOCK)
            h, n, buf = hashlib.sha256(), 0, bytearray(1 << 20)
            while n < BULK:
                k = tls.recv_into(buf)
                assert k
                h.update(memoryview(buf)[:k])
                n += k
            elapsed = time.perf_counter() - t0
    assert not srv.errors, srv.errors
    assert srv.results == [digest] and h.hexdigest() == digest
    print(f"200 MB through our TLS client <-> ssl in {elapsed:.2f} s")


def test_close_notify_exchange_with_python_ssl(files):
    ctx = ssl_server_context(files)

    def handler(sock):
        s = ctx.wrap_socket(sock, server_side=True)
        assert s.recv(100) == b"bye"
        plain = s.unwrap()  # waits for our close_notify, sends its own
        return plain.recv(100)  # the TCP stream goes on in the clear

    with ThreadServer(handler) as srv:
        tls = create_connection(srv.address, client_config(files), timeout=TIMEOUT)
        tls.sendall(b"bye")
        plain = tls.unwrap()
        assert tls.closed_event.clean and tls.closed_event.by_peer
        plain.sendall(b"cleartext after TLS")
        plain.close()
    assert srv.results == [b"cleartext after TLS"]


def test_python_ssl_unwraps_from_our_server(files):
    def handler(sock):
        tls = wrap_socket(sock, server_config(files), server_side=True)
        assert tls.recv(100) == b"data"
        assert tls.recv(100) == b""  # close_notify
        tls.unwrap()
        return tls.closed_event.clean

    with ThreadServer(handler) as srv:
        s = ssl_client_context(files).wrap_socket(socket.create_connection(srv.address, timeout=TIMEOUT),
                                                   server_hostname="localhost")
        s.sendall(b"data")
        s.unwrap().close()
    assert not srv.errors, srv.errors
    assert srv.results == [True]


def test_makefile_lines(files):
    with our_echo_server(server_config(files)) as srv:
        with create_connection(srv.address, client_config(files), timeout=TIMEOUT) as tls:
            f = tls.makefile("rw", encoding="ascii", newline="\n")
            f.write("line one\nline two\n")
            f.flush()
            assert f.readline() == "line one\n" and f.readline() == "line two\n"
            f.close()
    assert not srv.errors


# ---------------------------------------------------------------------------
# Bad input from a peer: the right alert, a clean close, no hang


def failing_server(config):
    def handler(sock):
        tls = wrap_socket(sock, config, server_side=True)
        return tls.recv(100)

    return ThreadServer(handler)


@pytest.mark.parametrize("garbage,alert", [
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", AlertDescription.unexpected_message),
    (b"\x16\x03\x01\x40\x01" + bytes(64), AlertDescription.record_overflow),
    (b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", AlertDescription.decode_error),
])
def test_garbage_to_our_server(files, garbage, alert):
    with failing_server(server_config(files)) as srv:
        raw = socket.create_connection(srv.address, timeout=TIMEOUT)
        raw.sendall(garbage)
        answer = read_all(raw)
        raw.close()
    assert answer == alert_record(alert)
    assert isinstance(srv.errors[0], AlertError) and srv.errors[0].description == alert


def test_truncated_record_to_our_server(files):
    with failing_server(server_config(files)) as srv:
        raw = socket.create_connection(srv.address, timeout=TIMEOUT)
        raw.sendall(b"\x16\x03\x01\x01\x00" + bytes(100))  # promises 256 bytes, sends 100
        raw.shutdown(socket.SHUT_WR)
        answer = read_all(raw)
        raw.close()
    assert answer == alert_record(AlertDescription.decode_error)
    assert srv.errors[0].description == AlertDescription.decode_error


def test_tls12_client_hello_from_s_client(files):
    with failing_server(server_config(files)) as srv:
        client = s_client(files, srv.port, "-tls1_2")
        with client:
            client.wait_for("alert protocol version")
            client.wait()
    assert srv.errors[0].description == AlertDescription.protocol_version


def test_tls12_server_hello_from_s_server(files):
    server, port = s_server(files, "-tls1_2", "-naccept", "1")
    with server:
        with pytest.raises(PeerAlert) as err:
            create_connection(("127.0.0.1", port), client_config(files), timeout=TIMEOUT)
    assert err.value.description == AlertDescription.protocol_version


def test_tls12_server_hello_from_a_raw_server(files):
    """A server that answers with a TLS 1.2 ServerHello (no supported_versions)."""

    def handler(sock):
        sock.recv(65536)
        body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\xc0\x2f" + b"\x00" + b"\x00\x05\xff\x01\x00\x01\x00"
        sh = b"\x02" + len(body).to_bytes(3, "big") + body
        sock.sendall(b"\x16\x03\x03" + len(sh).to_bytes(2, "big") + sh)
        return read_all(sock)

    with ThreadServer(handler) as srv:
        with pytest.raises(AlertError) as err:
            create_connection(srv.address, client_config(files), timeout=TIMEOUT)
    assert err.value.description == AlertDescription.protocol_version
    assert srv.results[0].endswith(alert_record(AlertDescription.protocol_version))


def test_bad_tag_from_python_ssl_to_our_client(files):
    """A proxy flips one bit of a protected record from the ssl server after
    the handshake: our client sends bad_record_mac, ssl reports it."""
    ctx = ssl_server_context(files)

    def handler(sock):
        with ctx.wrap_socket(sock, server_side=True) as s:
            assert s.recv(10) == b"go"
            s.sendall(b"will be corrupted")
            with pytest.raises(ssl.SSLError) as exc:
                s.recv(100)
            return str(exc.value)

    with ThreadServer(handler) as srv:
        proxy = CorruptingProxy(srv.address, "to_client")
        with socket.create_connection(proxy.address, timeout=TIMEOUT) as raw:
            tls = wrap_socket(raw, client_config(files))
            proxy.armed.set()
            tls.sendall(b"go")
            with pytest.raises(AlertError) as err:
                while tls.recv(100):
                    pass
            tls.close()
        proxy.thread.join(TIMEOUT)
    assert not srv.errors, srv.errors
    assert err.value.description == AlertDescription.bad_record_mac
    assert "BAD_RECORD_MAC" in srv.results[0].upper().replace(" ", "_")


def test_bad_tag_from_python_ssl_to_our_server(files):
    with failing_server(server_config(files)) as srv:
        proxy = CorruptingProxy(srv.address, "to_server")
        s = ssl_client_context(files).wrap_socket(socket.create_connection(proxy.address, timeout=TIMEOUT),
                                                   server_hostname="localhost")
        proxy.armed.set()
        s.sendall(b"will be corrupted")
        with pytest.raises(ssl.SSLError, match="(?i)bad.record.mac"):
            s.recv(100)
        s.close()
        proxy.thread.join(TIMEOUT)
    assert srv.errors[0].description == AlertDescription.bad_record_mac


def test_record_after_close_notify_is_ignored(files):
    """OpenSSL's close_notify (ssl.SSLObject, so we hold the bytes) followed
    in the same TCP segment by one more record: our server must take the
    close_notify as the end, ignore the record (RFC 8446 §6.1) and answer
    with its own close_notify, not an error alert."""
    def handler(sock):
        tls = wrap_socket(sock, server_config(files), server_side=True)
        data = tls.recv(100)
        eof = tls.recv(100)
        failure = tls.conn.failure
        tls.close()
        return data, eof, failure

    with ThreadServer(handler) as srv:
        raw = socket.create_connection(srv.address, timeout=TIMEOUT)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ssl_client_context(files).wrap_bio(incoming, outgoing, server_hostname="localhost")
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                incoming.write(raw.recv(65536))
        obj.write(b"payload")
        try:
            obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        raw.sendall(outgoing.read() + b"\x17\x03\x03\x00\x20" + os.urandom(32))
        incoming.write(read_all(raw))
        obj.unwrap()  # raises SSLError if what came back was an error alert
        raw.close()
    assert not srv.errors, srv.errors
    assert srv.results == [(b"payload", b"", None)]


def test_peer_abort_during_handshake_does_not_hang(files):
    with failing_server(server_config(files)) as srv:
        raw = socket.create_connection(srv.address, timeout=TIMEOUT)
        raw.close()
    assert srv.errors and not isinstance(srv.errors[0], socket.timeout)
