# hq-interop (HTTP/0.9 over QUIC, the QUIC interop runner's protocol): a
# file server and a client, then HTTP/3 and hq-interop on one port.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import asyncio
import tempfile
from pathlib import Path

from pyquic.asyncio.h3 import connect_h3, serve_h3
from pyquic.asyncio.hq import connect_hq, hq_stream_handler, serve_hq
from pyquic.config import QuicConfiguration


def server_configuration(alpn):
    config = QuicConfiguration(is_client=False, alpn_protocols=alpn)
    config.load_cert_chain("cert.pem", "key.pem")
    return config


def client_configuration():
    config = QuicConfiguration(is_client=True, server_name="localhost")
    config.load_verify_locations(cafile="ca.pem")
    return config


async def main(root: Path):
    (root / "index.html").write_bytes(b"<h1>hello</h1>\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB

    # hq-interop only: ALPN "hq-interop", files under root, streamed with backpressure.
    server = await serve_hq("127.0.0.1", 0, configuration=server_configuration(None), root=root)
    port = server.local_address[1]
    async with connect_hq("127.0.0.1", port, configuration=client_configuration()) as client:
        print(await client.get("/index.html"))
        size = await client.download("/big.bin", root / "copy.bin")  # streamed to the file
        print("downloaded", size, "bytes, same:", (root / "copy.bin").read_bytes() == (root / "big.bin").read_bytes())
    server.close()
    await server.wait_closed()

    # HTTP/3 and hq-interop on one port: each connection speaks what its ALPN
    # chose; h3 requests go to the handler, hq-interop streams to stream_handler.
    async def handler(request):
        await request.respond(200, body=b"HTTP/3 says hello")

    server = await serve_h3("127.0.0.1", 0, configuration=server_configuration(["h3", "hq-interop"]),
                            handler=handler, stream_handler=hq_stream_handler(root))
    port = server.local_address[1]
    async with connect_h3("127.0.0.1", port, configuration=client_configuration()) as client:
        print((await client.get("/")).content)
    async with connect_hq("127.0.0.1", port, configuration=client_configuration()) as client:
        print(await client.get("/index.html"))
    server.close()
    await server.wait_closed()


with tempfile.TemporaryDirectory() as directory:
    asyncio.run(main(Path(directory)))
