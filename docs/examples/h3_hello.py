# An HTTP/3 server (serve_h3) and client (connect_h3) in one process.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import asyncio
import hashlib

from pyquic.asyncio.h3 import connect_h3, serve_h3
from pyquic.config import QuicConfiguration


async def handler(request):
    """Called for every request, with an H3Request."""
    if request.method == "POST":
        body = await request.read()  # the whole request body
        await request.respond(200, [("content-type", "text/plain")], body=body.upper())
    elif request.path == "/numbers":
        # A streamed response: headers, body chunks (each send_data waits
        # while the stream's send buffer is full), then trailers.
        await request.send_response(200, [("content-type", "text/plain")])
        digest = hashlib.sha256()
        for i in range(1000):
            chunk = f"{i}\n".encode()
            digest.update(chunk)
            await request.send_data(chunk)
        await request.send_trailers([("x-sha256", digest.hexdigest())])
    elif request.path.startswith("/hello/"):
        await request.respond(200, {"content-type": "text/plain"}, body=f"hello, {request.path[7:]}".encode())
    else:
        await request.respond(404, body=b"not found: " + request.path.encode())


async def main():
    server_config = QuicConfiguration(is_client=False)  # ALPN defaults to ["h3"]
    server_config.load_cert_chain("cert.pem", "key.pem")
    server = await serve_h3("127.0.0.1", 0, configuration=server_config, handler=handler)
    port = server.local_address[1]

    client_config = QuicConfiguration(is_client=True, server_name="localhost")
    client_config.load_verify_locations(cafile="ca.pem")
    async with connect_h3("127.0.0.1", port, configuration=client_config) as client:
        response = await client.get("/missing")
        print(response.status, response.content)  # 404 b'not found: /missing'

        response = await client.request("POST", "/upper", body=b"hello")
        print(response.status, response.header("content-type"), response.content)

        # Read a body as it arrives; credit goes back to the server as we read.
        async with client.stream("GET", "/numbers") as response:
            lines = 0
            async for chunk in response.iter_bytes():
                lines += chunk.count(b"\n")
            print(response.status, lines, "lines, trailers:", response.trailers)

        # Requests on one connection run concurrently, each on its own stream.
        responses = await asyncio.gather(*(client.get(f"/hello/{n}") for n in range(5)))
        print([r.content for r in responses])

    server.close()
    await server.wait_closed()


asyncio.run(main())
