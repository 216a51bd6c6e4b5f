# The TLS-over-TCP drivers (tls/tcp.py) on real loopback sockets: the
# blocking TLSSocket (ssl.SSLSocket's shape, checked against ssl's own
# answers), the kTLS attempt and its fallback reason, 0-RTT through the
# socket API, timeouts, and the asyncio open_connection / start_server
# helpers with our own and Python's ssl peers.
import asyncio
import socket
import ssl

import pytest

from tls import ktls
from tls.config import Config, VerifyMode
from tls.enums import AlertDescription
from tls.errors import AlertError, PeerAlert, UsageError
from tls.tcp import certificate_dict, create_connection, open_connection, start_server, wrap_socket
from tls.tickets import TicketStore

from .pki import make_test_pki
from .tls_peers import TIMEOUT, ThreadServer


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_test_pki().write_pem(tmp_path_factory.mktemp("pki"))


def client_config(files, **kw):
    kw.setdefault("server_name", "localhost")
    return Config(cafile=str(files["ca"]), **kw)


def server_config(files, **kw):
    return Config(certificate_chain=str(files["server_chain"]), private_key=str(files["server_key"]), **kw)


def echo_server(config, count=1, **options):
    def handler(sock):
        tls = wrap_socket(sock, config, server_side=True, **options)
        while data := tls.recv(65536):
            tls.sendall(data)
        info = (tls.early_data_accepted, tls.ktls_reason)
        tls.close()
        return info

    return ThreadServer(handler, count)


def test_ssl_shaped_api(files):
    with echo_server(server_config(files, alpn_protocols=["h2", "x-echo"])) as srv:
        with create_connection(srv.address, client_config(files, alpn_protocols=["x-echo"]), timeout=TIMEOUT) as tls:
            assert tls.version() == "TLSv1.3"
            assert tls.cipher() == ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)
            assert tls.selected_alpn_protocol() == "x-echo"
            assert not tls.session_reused
            assert tls.sendall(b"abc") == 3
            buf = bytearray(10)
            assert tls.recv_into(buf) == 3 and buf[:3] == b"abc"
            tls.send(b"12345")
            assert tls.recv(2) == b"12" and tls.pending() == 3 and tls.recv(10) == b"345"
            assert isinstance(tls.getpeercert(binary_form=True), bytes)
            assert tls.getpeername() == srv.address and tls.fileno() >= 0
            assert len(tls.export_keying_material("EXPORTER-test", b"", 32)) == 32
            with pytest.raises(UsageError):
                tls.setblocking(False)


def test_getpeercert_matches_python_ssl(files):
    """Our dict for the server certificate equals the one ssl builds."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["server_chain"], files["server_key"])

    def handler(sock):
        with ctx.wrap_socket(sock, server_side=True) as s:
            s.recv(1)

    with ThreadServer(handler, count=2) as srv:
        cctx = ssl.create_default_context(cafile=str(files["ca"]))
        with cctx.wrap_socket(socket.create_connection(srv.address, timeout=TIMEOUT), server_hostname="localhost") as s:
            theirs = s.getpeercert()
            s.sendall(b"x")
        with create_connection(srv.address, client_config(files), timeout=TIMEOUT) as tls:
            ours = tls.getpeercert()
            tls.sendall(b"x")
    assert ours == theirs


def test_certificate_dict_of_a_cert_without_san():
    pki = make_test_pki()
    d = certificate_dict(pki.client_no_san.cert)
    assert "subjectAltName" not in d and d["version"] == 3


def test_unwrap_then_plaintext(files):
    def handler(sock):
        tls = wrap_socket(sock, server_config(files), server_side=True)
        assert tls.recv(10) == b"tls"
        plain = tls.unwrap()
        return plain.recv(100)

    with ThreadServer(handler) as srv:
        tls = create_connection(srv.address, client_config(files), timeout=TIMEOUT)
        tls.sendall(b"tls")
        plain = tls.unwrap()
        plain.sendall(b"plain")
        plain.close()
    assert srv.results == [b"plain"]


def test_makefile_binary_and_unbuffered(files):
    with echo_server(server_config(files)) as srv:
        with create_connection(srv.address, client_config(files), timeout=TIMEOUT) as tls:
            f = tls.makefile("rwb")
            f.write(b"binary line\n")
            f.flush()
            assert f.readline() == b"binary line\n"
            raw = tls.makefile("rb", buffering=0)
            tls.sendall(b"raw")
            assert raw.read(3) == b"raw"
            with pytest.raises(ValueError):
                tls.makefile("r", buffering=0)


def test_wrong_hostname_fails_with_bad_certificate(files):
    def handler(sock):
        wrap_socket(sock, server_config(files), server_side=True)

    with ThreadServer(handler) as srv:
        with pytest.raises(AlertError) as err:
            create_connection(srv.address, client_config(files, server_name="other.example"), timeout=TIMEOUT)
    assert err.value.description == AlertDescription.bad_certificate
    assert isinstance(srv.errors[0], PeerAlert)
    assert srv.errors[0].description == AlertDescription.bad_certificate


def test_a_silent_server_times_out(files):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        sock = socket.create_connection(listener.getsockname(), timeout=0.3)
        with pytest.raises(socket.timeout):
            wrap_socket(sock, client_config(files))
        sock.close()


def test_ktls_is_attempted_and_falls_back_with_the_reason(files):
    with echo_server(server_config(files), ktls_enabled=True) as srv:
        with create_connection(srv.address, client_config(files), timeout=TIMEOUT, ktls_enabled=True) as tls:
            tls.sendall(b"records in user space?")
            assert tls.recv(100) == b"records in user space?"
            status = ktls.probe()
            if status.available:
                assert tls.ktls_active, tls.ktls_reason
            else:
                assert not tls.ktls_active
                assert ktls.UNAVAILABLE_REASON in tls.ktls_reason
                print(tls.ktls_reason)
    assert not srv.errors, srv.errors


def test_zero_rtt_through_the_socket_api(files):
    scfg = server_config(files, max_early_data=4096)
    store = TicketStore()
    ccfg = client_config(files, ticket_store=store, enable_early_data=True)
    with echo_server(scfg, count=2) as srv:
        with create_connection(srv.address, ccfg, timeout=TIMEOUT) as tls:
            tls.sendall(b"get a ticket")
            assert tls.recv(100) == b"get a ticket"
        tls = wrap_socket(socket.create_connection(srv.address, timeout=TIMEOUT), ccfg, do_handshake_on_connect=False)
        with tls:
            tls.send_early(b"early")
            tls.do_handshake()
            assert tls.early_data_accepted
            assert tls.recv(100) == b"early"
    assert not srv.errors, srv.errors
    assert [r[0] for r in srv.results] == [False, True]


def test_client_certificate_between_our_own(files):
    pki = make_test_pki()
    scfg = server_config(files, verify_mode=VerifyMode.REQUIRED, cafile=str(files["ca"]))

    def handler(sock):
        tls = wrap_socket(sock, scfg, server_side=True)
        tls.recv(1)
        return tls.getpeercert()["subject"]

    with ThreadServer(handler) as srv:
        ccfg = client_config(files, certificate_chain=pki.client.chain, private_key=pki.client.key)
        with create_connection(srv.address, ccfg, timeout=TIMEOUT) as tls:
            tls.sendall(b"x")
    assert dict(x[0] for x in srv.results[0])["commonName"] == "pyquic test client"


# ---------------------------------------------------------------------------
# asyncio


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.asyncio
async def test_asyncio_both_sides_ours(files):
    server = await start_server(echo, "127.0.0.1", 0, config=server_config(files, alpn_protocols=["x"]))
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(
            open_connection("127.0.0.1", port, config=client_config(files, alpn_protocols=["x"])), TIMEOUT)
        assert writer.get_extra_info("alpn_protocol") == "x"
        assert writer.get_extra_info("tls_version") == "TLSv1.3"
        assert writer.get_extra_info("peercert")["subject"][-1] == (("commonName", "localhost"),)
        payload = bytes(range(256)) * 8192
        writer.write(payload)
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT) == payload
        writer.write_eof()  # close_notify: the server sees EOF and closes
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_asyncio_python_ssl_client_to_our_server(files):
    server = await start_server(echo, "127.0.0.1", 0, config=server_config(files))
    async with server:
        port = server.sockets[0].getsockname()[1]
        ctx = ssl.create_default_context(cafile=str(files["ca"]))
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), TIMEOUT)
        writer.write(b"from asyncio ssl")
        assert await asyncio.wait_for(reader.readexactly(16), TIMEOUT) == b"from asyncio ssl"
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_asyncio_our_client_to_python_ssl_server(files):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["server_chain"], files["server_key"])
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(open_connection("127.0.0.1", port, config=client_config(files)), TIMEOUT)
        writer.write(b"to asyncio ssl")
        assert await asyncio.wait_for(reader.readexactly(14), TIMEOUT) == b"to asyncio ssl"
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_asyncio_handshake_failure_raises(files):
    server = await start_server(echo, "127.0.0.1", 0, config=server_config(files))
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(AlertError) as err:
            await asyncio.wait_for(
                open_connection("127.0.0.1", port, config=client_config(files, server_name="nope.example")), TIMEOUT)
        assert err.value.description == AlertDescription.bad_certificate


@pytest.mark.asyncio
async def test_asyncio_handshake_timeout(files):
    async def silent(reader, writer):
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(TimeoutError):
            await open_connection("127.0.0.1", port, config=client_config(files), handshake_timeout=0.2)
        server.close()
