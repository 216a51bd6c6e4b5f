# A QUIC client (QuicConnection) and server (QuicEndpoint) driven by hand, in
# memory: no sockets, no event loop.  Time is a number we advance ourselves
# and randomness is a seeded generator, so every run is the same.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import random

from pyquic.config import QuicConfiguration
from pyquic.connection import QuicConnection
from pyquic.endpoint import QuicEndpoint
from pyquic.events import HandshakeCompleted, StreamDataReceived

CLIENT_ADDR, SERVER_ADDR = ("192.0.2.1", 50000), ("192.0.2.2", 4433)
WALL_CLOCK = 1_900_000_000.0  # epoch seconds: certificate validity is checked against it


def seeded(seed):
    rng = random.Random(seed)
    return rng.randbytes  # entropy(n) -> n bytes


client_config = QuicConfiguration(is_client=True, alpn_protocols=["echo"], server_name="localhost")
client_config.load_verify_locations(cafile="ca.pem")
client_config.wall_clock = lambda: WALL_CLOCK

server_config = QuicConfiguration(is_client=False, alpn_protocols=["echo"])
server_config.load_cert_chain("cert.pem", "key.pem")
server_config.wall_clock = lambda: WALL_CLOCK

client = QuicConnection(configuration=client_config, entropy=seeded(1))
server = QuicEndpoint(server_config, entropy=seeded(2), retry="never")

now = 0.0  # seconds on our own clock
client.connect(SERVER_ADDR, now=now)


def exchange(now):
    """Deliver everything each side has to send (a loss-free link, no delay)."""
    moved = True
    while moved:
        moved = False
        for data, addr in client.datagrams_to_send(now=now):
            assert addr == SERVER_ADDR
            server.receive_datagram(data, CLIENT_ADDR, now=now)
            moved = True
        for data, addr in server.datagrams_to_send(now=now):
            assert addr == CLIENT_ADDR
            client.receive_datagram(data, SERVER_ADDR, now=now)
            moved = True


exchange(now)
server_conn = server.accept()  # the connection the endpoint created
for event in iter(client.next_event, None):  # ProtocolNegotiated, HandshakeCompleted, ...
    if isinstance(event, HandshakeCompleted):
        print("handshake complete, ALPN", event.alpn_protocol)

# The client opens a bidirectional stream and sends a message with FIN.
stream_id = client.get_next_available_stream_id()
client.send_stream_data(stream_id, b"hello", end_stream=True)
exchange(now)

# The server reads its events and echoes what came on the stream.
while (event := server_conn.next_event()) is not None:
    if isinstance(event, StreamDataReceived):
        server_conn.send_stream_data(event.stream_id, event.data.upper(), end_stream=event.end_stream)
exchange(now)

reply = b""
while (event := client.next_event()) is not None:
    if isinstance(event, StreamDataReceived) and event.stream_id == stream_id:
        reply += event.data
print("reply:", reply)

# Timers: get_timer() says when handle_timer() must run (ACK delay, loss
# detection, idle timeout, the end of the closing period, ...).  Closing
# takes three PTOs of the clock; ConnectionTerminated comes at their end.
client.close(error_code=0, reason_phrase="done")
exchange(now)
while True:
    timers = [t for t in (client.get_timer(), server.get_timer()) if t is not None]
    if not timers:
        break
    now = max(now, min(timers))
    client.handle_timer(now=now)
    server.handle_timer(now=now)
    exchange(now)
print("client:", [type(e).__name__ for e in iter(client.next_event, None)])
print("server:", [type(e).__name__ for e in iter(server_conn.next_event, None)], f"at t={now:.3f}")
