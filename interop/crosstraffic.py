# Cross traffic for the crosstraffic measurement: a TCP bulk flow from the
# server's namespace to the client's, through the same simulated link as
# the QUIC transfer, as the reference's iperf pair does.  Owns the two ends:
#   python -m interop.crosstraffic recv PORT        (client namespace; discards)
#   python -m interop.crosstraffic send HOST PORT   (server namespace; until killed)
from __future__ import annotations

import socket
import sys
import time

CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10.0


def receive(port: int) -> None:
    with socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True) as server:
        conn, _ = server.accept()
        with conn:
            while conn.recv(CHUNK):
                pass


def send(host: str, port: int) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    block = bytes(CHUNK)
    with conn:
        conn.settimeout(None)
        while True:
            conn.sendall(block)


if __name__ == "__main__":
    if sys.argv[1:2] == ["recv"]:
        receive(int(sys.argv[2]))
    elif sys.argv[1:2] == ["send"]:
        send(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m interop.crosstraffic recv PORT | send HOST PORT")
