# TLS 1.3 over TCP: an asyncio echo server (tls.tcp.start_server), an
# asyncio client (tls.tcp.open_connection) and a blocking client
# (tls.tcp.create_connection, used like ssl.SSLSocket) asking for kTLS.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import asyncio

import tls
from tls.tcp import create_connection, open_connection, start_server

server_config = tls.Config(certificate_chain="cert.pem", private_key="key.pem", alpn_protocols=["echo"])
client_config = tls.Config(server_name="localhost", cafile="ca.pem", alpn_protocols=["echo"])


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Runs once the client's handshake is complete.
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()  # close_notify, then the TCP connection


def blocking_client(port: int) -> None:
    with create_connection(("127.0.0.1", port), client_config, ktls_enabled=True) as sock:
        print("blocking:", sock.version(), sock.cipher(), sock.selected_alpn_protocol())
        print("blocking: kTLS active:", sock.ktls_active, "-", sock.ktls_reason)
        sock.sendall(b"hello from a blocking socket\n")
        print("blocking:", sock.recv(1024))


async def main() -> None:
    server = await start_server(echo, "127.0.0.1", 0, config=server_config)
    port = server.sockets[0].getsockname()[1]

    reader, writer = await open_connection("127.0.0.1", port, config=client_config)
    print("asyncio: ALPN", writer.get_extra_info("alpn_protocol"),
          "peer", writer.get_extra_info("peercert")["subject"])
    writer.write(b"hello from asyncio\n")
    print("asyncio:", await reader.readline())
    writer.close()
    await writer.wait_closed()

    await asyncio.to_thread(blocking_client, port)  # the blocking API in a thread
    server.close()
    await server.wait_closed()


asyncio.run(main())
