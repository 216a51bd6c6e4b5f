# A QUIC server with its limits spelled out: address validation (Retry),
# connection caps, timeouts, flow control, 0-RTT; one client visits, then the
# endpoint's counters are printed.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import asyncio

from pyquic.asyncio import connect, serve
from pyquic.config import QuicConfiguration


async def handle(reader, writer):
    request = await reader.read()  # up to the FIN
    writer.write(b"you sent %d bytes" % len(request))
    writer.write_eof()


async def main():
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=["demo"],
        idle_timeout=30.0,  # seconds without a packet before the connection ends
        handshake_timeout=5.0,  # an unconfirmed handshake 5 s without a packet from the peer ends silently
        max_data=4 << 20,  # connection flow-control window (bytes)
        max_stream_data=1 << 20,  # per stream
        max_streams_bidi=100,  # streams a client may open at once
        max_early_data=0xFFFFFFFF,  # accept 0-RTT from resumed sessions
    )
    config.load_cert_chain("cert.pem", "key.pem")
    async with await serve(
        "127.0.0.1", 0,
        configuration=config,
        stream_handler=handle,
        retry="auto",  # Retry only while many handshakes are half-open...
        retry_threshold=64,  # ...from 64 of them on
        max_connections=1000,  # past it, CONNECTION_REFUSED
        max_half_open=200,  # handshakes in progress from unvalidated addresses
    ) as server:
        client_config = QuicConfiguration(is_client=True, alpn_protocols=["demo"], server_name="localhost")
        client_config.load_verify_locations(cafile="ca.pem")
        async with connect("127.0.0.1", server.local_address[1], configuration=client_config) as client:
            reader, writer = await client.create_stream()
            writer.write(b"x" * 5000)
            writer.write_eof()
            print((await reader.read()).decode())
        print("retry mode:", server.endpoint.retry, "- stats:", server.endpoint.stats)


asyncio.run(main())
