# Two TLS 1.3 engines (client and server) talking at message level, in
# memory: handshake bytes are handed over with the level they belong to, and
# each call returns the events it caused.  No records, no sockets.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import time

import tls
from tls import events

tickets = tls.TicketStore()  # tickets the client receives land here; the next handshake resumes
client_config = tls.Config(server_name="localhost", cafile="ca.pem", alpn_protocols=["demo"], ticket_store=tickets)
server_config = tls.Config(certificate_chain="cert.pem", private_key="key.pem", alpn_protocols=["demo"])


def handshake(client_config, server_config, now, show=False):
    """Run one handshake; return the two engines.  The QUIC profile carries
    transport parameters (bytes the engine does not interpret); tls.TCP, the
    default profile, is TLS over TCP and carries none."""
    client = tls.Engine(client_config, is_client=True, profile=tls.QUIC, transport_parameters=b"client tp")
    server = tls.Engine(server_config, is_client=False, profile=tls.QUIC, transport_parameters=b"server tp")
    peer_of = {client: server, server: client}
    # Apply events in order.  Here the only thing to do is to hand handshake
    # bytes to the peer at their level; a real carrier would also install each
    # KeyReady's secret, read PeerTransportParameters, and so on.
    queue = [(client, event) for event in client.start(now=now)]
    while queue:
        source, event = queue.pop(0)
        if show:
            print("client" if source is client else "server", event)
        if isinstance(event, events.HandshakeDataReady):
            target = peer_of[source]
            queue += [(target, e) for e in target.receive(event.level, event.data, now=now)]
    return client, server


now = time.time()  # the engine reads no clock: certificates are checked against `now`
client, server = handshake(client_config, server_config, now, show=True)
assert client.handshake_complete and server.handshake_complete
print("ALPN:", client.negotiated.alpn, "- cipher suite:", tls.CipherSuite(client.negotiated.cipher_suite).name)
print("the server's transport parameters:", client.peer_transport_parameters)

# Secrets cross the seam, keys do not: each carrier derives its own keys.
for level in (tls.Level.HANDSHAKE, tls.Level.APPLICATION):
    assert client.secret(level, tls.Direction.WRITE) == server.secret(level, tls.Direction.READ)
assert client.export_keying_material("EXPORTER-demo") == server.export_keying_material("EXPORTER-demo")

# The server sent a NewSessionTicket after the handshake; the store has it,
# so the next handshake with this configuration resumes.
print("tickets stored:", len(tickets))
client, server = handshake(client_config, server_config, now)
print("resumed:", client.negotiated.resumed)

# A failure raises AlertError with the alert to send; the engine stays failed.
wrong_name = tls.Config(server_name="example.com", cafile="ca.pem", alpn_protocols=["demo"])
try:
    handshake(wrong_name, server_config, now)
except tls.AlertError as exc:
    print("handshake failed:", exc.description.name, "-", exc.reason)
