# Command-line tools and socket-level helpers built on tls.tcp: the
# s_client / s_server-like debugging commands (python -m tls.tools.client,
# python -m tls.tools.server) and RPC-with-TLS over TCP sockets (rpc.py).
# Like tls/tcp.py, everything here does I/O by design.
