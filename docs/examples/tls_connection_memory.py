# tls.TLSConnection, the sans-I/O TLS-over-TCP connection (engine + record
# layer), driven by hand: bytes in with receive_data(), bytes out with
# data_to_send(), events with next_event().  Any byte stream can carry it.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import time

import tls
from tls.connection import ConnectionClosed, DataReceived

client = tls.TLSConnection(tls.Config(server_name="localhost", cafile="ca.pem"), is_client=True, now=time.time)
server = tls.TLSConnection(tls.Config(certificate_chain="cert.pem", private_key="key.pem"), is_client=False,
                           now=time.time)


def pump():
    """Move bytes both ways until neither side has anything to send."""
    while True:
        to_server, to_client = client.data_to_send(), server.data_to_send()
        if not (to_server or to_client):
            return
        if to_server:
            server.receive_data(to_server)
        if to_client:
            client.receive_data(to_client)


def events(conn):
    return list(iter(conn.next_event, None))


client.start()  # the ClientHello
client.send(b"GET / HTTP/1.0\r\n\r\n")  # queued until a write key exists
pump()
print("server:", events(server))  # HandshakeCompleted(...), DataReceived(18 bytes)
server.send(b"HTTP/1.0 200 OK\r\n\r\nhello")
server.close()  # close_notify
pump()
for event in events(client):
    if isinstance(event, DataReceived):
        print("client got", event.data)
    elif isinstance(event, ConnectionClosed):
        print("closed by peer:", event.by_peer, "clean:", event.clean)
