# serve(services=...): one UDP port, several applications chosen by ALPN and
# server name, each with its own certificate and handler (pyquic/asyncio/
# services.py).  pyquic on both sides over loopback UDP: an "smb"-style raw
# stream service and an h3 service side by side, each client sees its own
# certificate and its own service; a wildcard name; refusals (unknown name,
# unknown ALPN) are TLS alerts in CONNECTION_CLOSE; a service-specific client
# certificate policy.  The SMB gateway's own use is in test_smb_quic.py.
from __future__ import annotations

import asyncio
import ssl

import pytest

from pyquic.asyncio import ConnectionTerminatedError, Service, connect, serve
from pyquic.asyncio.h3 import connect_h3
from pyquic.config import QuicConfiguration
from pyquic.errors import UsageError
from tests.pki import make_test_pki
from tests.quic_peers import pki_files

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


def client(files, alpn, name, **kw) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=list(alpn), server_name=name, idle_timeout=10, **kw)
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


async def echo(reader, writer):
    data = await reader.read()
    writer.write(b"files:" + data)
    writer.write_eof()


async def web(request):
    await request.respond(200, [("content-type", "text/plain")], b"web:" + request.path.encode())


def services(files, **smb_kw):
    return [
        Service("smb", stream_handler=echo, server_names=["wrong.example"],
                certfile=files["wrong_host_chain"], keyfile=files["wrong_host_key"], **smb_kw),
        Service("h3", request_handler=web, server_names=["localhost"],
                certfile=files["server_chain"], keyfile=files["server_key"]),
    ]


async def start(files, svcs):
    return await serve("127.0.0.1", 0, configuration=QuicConfiguration(is_client=False, idle_timeout=10),
                       services=svcs)


async def smb_roundtrip(files, port, name="wrong.example", **kw):
    async with connect("127.0.0.1", port, configuration=client(files, ["smb"], name, **kw)) as proto:
        reader, writer = await proto.create_stream()
        writer.write(b"hello")
        writer.write_eof()
        return await reader.read(), proto.quic.tls.peer_certificates[0], proto.quic.alpn_protocol


async def test_smb_and_h3_share_one_port_each_with_its_certificate(files):
    pki = make_test_pki("p256")  # the PKI pki_files wrote
    server = await start(files, services(files))
    port = server.local_address[1]
    try:
        data, cert, alpn = await asyncio.wait_for(smb_roundtrip(files, port), TIMEOUT)
        assert (data, alpn) == (b"files:hello", "smb")
        assert cert == pki.wrong_host.cert

        async def h3_get():
            async with connect_h3("127.0.0.1", port, configuration=client(files, ["h3"], "localhost")) as h3:
                response = await h3.get("https://localhost/index")
                return response.status, response.content, h3.protocol.quic.tls.peer_certificates[0]

        status, body, cert = await asyncio.wait_for(h3_get(), TIMEOUT)
        assert (status, body) == (200, b"web:/index")
        assert cert == pki.server.cert
        routed = sorted(server.router.service_of(p.quic).alpn for p in server.connections)
        assert set(routed) <= {"smb", "h3"}
    finally:
        server.close()
        await server.wait_closed()


async def test_a_name_no_service_answers_is_refused_with_a_tls_alert(files):
    server = await start(files, services(files))
    port = server.local_address[1]
    try:
        # The right ALPN, a name no service has: unrecognized_name (0x100 + 112).
        with pytest.raises(ConnectionTerminatedError) as info:
            await asyncio.wait_for(smb_roundtrip(files, port, name="localhost"), TIMEOUT)
        assert info.value.error_code == 0x100 + 112
        assert "no service for server name" in info.value.reason_phrase
        # An ALPN no service speaks: no_application_protocol (0x100 + 120).
        config = client(files, ["hq-interop"], "localhost")
        with pytest.raises(ConnectionTerminatedError) as info:
            async with connect("127.0.0.1", port, configuration=config):
                pass
        assert info.value.error_code == 0x100 + 120
    finally:
        server.close()
        await server.wait_closed()


async def test_wildcard_names_and_any_name(files):
    pki = make_test_pki("p256")  # the PKI pki_files wrote
    svcs = [
        Service("smb", stream_handler=echo, server_names=["*.example"],
                certfile=files["wrong_host_chain"], keyfile=files["wrong_host_key"]),
        Service("smb", stream_handler=echo, certfile=files["server_chain"], keyfile=files["server_key"]),
    ]
    server = await start(files, svcs)
    port = server.local_address[1]
    try:
        # "wrong.example" is under *.example: that service's certificate.
        _, cert, _ = await asyncio.wait_for(smb_roundtrip(files, port), TIMEOUT)
        assert cert == pki.wrong_host.cert
        # "localhost" falls to the service that takes any name.
        _, cert, _ = await asyncio.wait_for(smb_roundtrip(files, port, name="localhost"), TIMEOUT)
        assert cert == pki.server.cert
    finally:
        server.close()
        await server.wait_closed()


async def test_a_service_of_its_own_asks_for_client_certificates(files):
    svcs = services(files, verify_mode=ssl.CERT_REQUIRED, cafile=str(files["ca"]))
    server = await start(files, svcs)
    port = server.local_address[1]
    try:
        # The smb service requires a client certificate: without one, certificate_required.
        with pytest.raises(ConnectionTerminatedError) as info:
            await asyncio.wait_for(smb_roundtrip(files, port), TIMEOUT)
        assert info.value.error_code == 0x100 + 116
        config = client(files, ["smb"], "wrong.example")
        config.load_cert_chain(files["client_chain"], files["client_key"])
        async with connect("127.0.0.1", port, configuration=config) as proto:
            reader, writer = await proto.create_stream()
            writer.write(b"x")
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"files:x"
    finally:
        server.close()
        await server.wait_closed()


def test_service_misuse_is_a_clear_error(files):
    with pytest.raises(UsageError):
        Service("h3", stream_handler=echo)  # h3 needs a request handler
    with pytest.raises(UsageError):
        Service("smb")  # no handler
    with pytest.raises(UsageError):
        Service("smb", stream_handler=echo, server_names=["a.*.example"])
    from pyquic.asyncio import ServiceRouter

    with pytest.raises(UsageError):
        ServiceRouter(QuicConfiguration(is_client=False), [Service("smb", stream_handler=echo)])  # no certificate anywhere
    twice = [Service("smb", stream_handler=echo, server_names=["a"], certfile=files["server_chain"], keyfile=files["server_key"])] * 2
    with pytest.raises(UsageError):
        ServiceRouter(QuicConfiguration(is_client=False), twice)
