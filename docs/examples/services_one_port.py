# Two services on one UDP port, chosen per connection by ALPN and server
# name: a raw-stream "files" service with the CA-issued certificate
# (cert.pem, for "localhost") and an HTTP/3 service for any name with a
# self-signed certificate of its own.  Each client sees its own certificate.
# Reads cert.pem, key.pem and ca.pem from the current directory.
import asyncio

from pyquic.asyncio import ConnectionTerminatedError, Service, connect, serve
from pyquic.asyncio.h3 import connect_h3
from pyquic.config import QuicConfiguration
from tls.tools.server import self_signed_credentials


async def files(reader, writer):
    name = (await reader.read()).decode()
    writer.write(f"contents of {name}".encode())
    writer.write_eof()


async def web(request):
    await request.respond(200, [("content-type", "text/plain")], b"web page " + request.path.encode())


async def main():
    (web_cert,), web_key = self_signed_credentials()
    services = [
        Service("smb", stream_handler=files, server_names=["localhost"], certfile="cert.pem", keyfile="key.pem"),
        # No names: any name, and clients that send none (an IP address is never sent as SNI).
        Service("h3", request_handler=web, certificate=web_cert, private_key=web_key),
    ]
    config = QuicConfiguration(is_client=False, idle_timeout=30.0)  # transport settings shared by both
    async with await serve("127.0.0.1", 0, configuration=config, services=services) as server:
        port = server.local_address[1]

        files_client = QuicConfiguration(is_client=True, alpn_protocols=["smb"], server_name="localhost")
        files_client.load_verify_locations(cafile="ca.pem")
        async with connect("127.0.0.1", port, configuration=files_client) as client:
            reader, writer = await client.create_stream()
            writer.write(b"report.txt")
            writer.write_eof()
            print((await reader.read()).decode(), "- certificate:", client.quic.tls.peer_certificates[0].subject.rfc4514_string())

        web_client = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="127.0.0.1",
                                       certificate_verifier=lambda chain, *_: [web_cert])  # pin it
        async with connect_h3("127.0.0.1", port, configuration=web_client) as h3:
            response = await h3.get("https://127.0.0.1/index.html")
            print(response.status, response.content.decode(), "- certificate:",
                  h3.protocol.quic.tls.peer_certificates[0].subject.rfc4514_string())

        # No service answers this name: the handshake ends in unrecognized_name.
        stranger = QuicConfiguration(is_client=True, alpn_protocols=["smb"], server_name="other.example")
        stranger.load_verify_locations(cafile="ca.pem")
        try:
            async with connect("127.0.0.1", port, configuration=stranger):
                pass
        except ConnectionTerminatedError as exc:
            print("other.example refused:", exc.reason_phrase)


asyncio.run(main())
