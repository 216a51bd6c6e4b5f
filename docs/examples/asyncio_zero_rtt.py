# Session resumption and 0-RTT with the asyncio API: the first connection
# collects a session ticket; the second resumes with it and sends its request
# in 0-RTT packets, before its handshake completes.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import asyncio

from pyquic.asyncio import connect, serve
from pyquic.config import QuicConfiguration


async def echo(reader, writer):
    writer.write(await reader.read())
    writer.write_eof()


def client_configuration(**kwargs):
    config = QuicConfiguration(is_client=True, alpn_protocols=["echo"], server_name="localhost", **kwargs)
    config.load_verify_locations(cafile="ca.pem")
    return config


async def main():
    # max_early_data: nonzero lets the server accept 0-RTT from tickets it issued.
    server_config = QuicConfiguration(is_client=False, alpn_protocols=["echo"], max_early_data=0xFFFFFFFF)
    server_config.load_cert_chain("cert.pem", "key.pem")
    server = await serve("127.0.0.1", 0, configuration=server_config, stream_handler=echo)
    port = server.local_address[1]

    tickets = []
    async with connect("127.0.0.1", port, configuration=client_configuration(),
                       session_ticket_handler=tickets.append) as client:
        await client.ping()  # the ticket arrives after the handshake

    config = client_configuration(session_ticket=tickets[-1], enable_early_data=True)
    async with connect("127.0.0.1", port, configuration=config, wait_connected=False) as client:
        reader, writer = await client.create_stream()
        writer.write(b"sent in 0-RTT")
        writer.write_eof()
        print(await reader.read())
        negotiated = client.quic.tls.negotiated  # what the TLS handshake settled
        print("resumed:", negotiated.resumed, "0-RTT accepted:", negotiated.early_data_accepted)

    server.close()
    await server.wait_closed()


asyncio.run(main())
