# A QUIC echo server and a client on asyncio, in one process over loopback.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import asyncio

from pyquic.asyncio import connect, serve
from pyquic.config import QuicConfiguration


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Called for each stream a client opens: send back what it sends."""
    data = await reader.read()  # until the client's FIN
    writer.write(data[::-1])
    writer.write_eof()  # FIN
    await writer.drain()


async def main() -> None:
    server_config = QuicConfiguration(is_client=False, alpn_protocols=["echo"])
    server_config.load_cert_chain("cert.pem", "key.pem")
    server = await serve("127.0.0.1", 0, configuration=server_config, stream_handler=echo)
    host, port = server.local_address[:2]

    # server_name (SNI, and the name the certificate must carry) defaults to host.
    client_config = QuicConfiguration(is_client=True, alpn_protocols=["echo"], server_name="localhost")
    client_config.load_verify_locations(cafile="ca.pem")
    async with connect(host, port, configuration=client_config) as client:
        reader, writer = await client.create_stream()
        writer.write(b"hello, QUIC")
        writer.write_eof()
        print(await reader.read())  # b'CIUQ ,olleh'
        await client.ping()  # one round trip, acknowledged
        print("ALPN:", client.quic.alpn_protocol)

    server.close()
    await server.wait_closed()


asyncio.run(main())
