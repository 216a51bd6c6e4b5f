# HTTP/3 without I/O: an H3Connection on each side of a QuicConnection pair
# driven by hand in memory (as in sans_io_echo.py), one GET request.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import random

from pyquic.config import QuicConfiguration
from pyquic.connection import QuicConnection
from pyquic.endpoint import QuicEndpoint
from pyquic.h3.connection import H3Connection
from pyquic.h3.events import DataReceived, HeadersReceived

CLIENT_ADDR, SERVER_ADDR = ("192.0.2.1", 50000), ("192.0.2.2", 443)
WALL_CLOCK = 1_900_000_000.0

client_config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
client_config.load_verify_locations(cafile="ca.pem")
client_config.wall_clock = lambda: WALL_CLOCK
server_config = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
server_config.load_cert_chain("cert.pem", "key.pem")
server_config.wall_clock = lambda: WALL_CLOCK

client = QuicConnection(configuration=client_config, entropy=random.Random(1).randbytes)
endpoint = QuicEndpoint(server_config, entropy=random.Random(2).randbytes, retry="never")
now = 0.0


def exchange():
    moved = True
    while moved:
        moved = False
        for data, _ in client.datagrams_to_send(now=now):
            endpoint.receive_datagram(data, CLIENT_ADDR, now=now)
            moved = True
        for data, _ in endpoint.datagrams_to_send(now=now):
            client.receive_datagram(data, SERVER_ADDR, now=now)
            moved = True


client.connect(SERVER_ADDR, now=now)
exchange()
server = endpoint.accept()

# [h3 start]
# One H3Connection per QUIC connection: it opens its control and QPACK
# streams and sends SETTINGS at once; from then on, every QUIC event goes
# through handle_event(), which returns the HTTP/3 events it makes.
client_h3 = H3Connection(client)
server_h3 = H3Connection(server)


def h3_events(quic, h3):
    return [h3_event for event in iter(quic.next_event, None) for h3_event in h3.handle_event(event)]


stream_id = client.get_next_available_stream_id()
client_h3.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"),
                                   (b":authority", b"localhost"), (b":path", b"/hello")], end_stream=True)
exchange()

for event in h3_events(server, server_h3):
    if isinstance(event, HeadersReceived):
        path = dict(event.headers)[b":path"]
        server_h3.send_headers(event.stream_id, [(b":status", b"200"), (b"content-type", b"text/plain")])
        server_h3.send_data(event.stream_id, b"hello from " + path, end_stream=True)
exchange()

for event in h3_events(client, client_h3):
    if isinstance(event, HeadersReceived):
        print("status", dict(event.headers)[b":status"])
    elif isinstance(event, DataReceived):
        print("body", event.data, "ended" if event.stream_ended else "")
# [h3 end]
