# ONC RPC with TLS (RFC 9289): a threaded server and a client in one process.
# The client probes with AUTH_TLS, the server answers "STARTTLS", and both
# switch to TLS 1.3 (ALPN "sunrpc") on the same TCP connection.
# Reads cert.pem, key.pem (the server's) and ca.pem from the current directory.
import tls
from tls.rpc_tls import XdrReader, xdr_opaque
from tls.tools.rpc import CallContext, RpcClient, RpcServer

PROGRAM, VERSION, ECHO = 0x20000777, 1, 1  # a program number from the user-defined range


def echo(args: bytes, ctx: CallContext) -> bytes:
    text = XdrReader(args).opaque(1024)
    return xdr_opaque(text.upper() + (b" (over TLS)" if ctx.tls else b" (plain)"))


server_config = tls.Config(certificate_chain="cert.pem", private_key="key.pem")
client_config = tls.Config(server_name="localhost", cafile="ca.pem")

with RpcServer(("127.0.0.1", 0), {(PROGRAM, VERSION): {ECHO: echo}}, config=server_config,
               require_tls=True).start() as server:
    with RpcClient(server.address, PROGRAM, VERSION, policy="required", config=client_config) as client:
        client.null()  # procedure 0
        results = client.call(ECHO, xdr_opaque(b"hello"))
        print(XdrReader(results).opaque(1024), "- ALPN", client.tls.selected_alpn_protocol())
