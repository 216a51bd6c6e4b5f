# Cross traffic for the crosstraffic measurement: a TCP bulk flow from the
# server's namespace to the client's, through the same simulated link as
# the QUIC transfer, as the reference's iperf pair does (its sender runs
# with IPERF_CONGESTION=cubic).  Owns the two ends:
#   python -m interop.crosstraffic recv PORT        (client namespace; discards,
#                                                    prints its rate every 5 s)
#   python -m interop.crosstraffic send HOST PORT   (server namespace; until killed)
# The sender sets CUBIC on its socket: a new network namespace takes the
# host's default congestion control, which may be BBR (it is on this
# project's machines), and BBR in a one-BDP queue starves any CUBIC flow.
from __future__ import annotations

import socket
import sys
import time

CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10.0
CONGESTION_CONTROL = b"cubic"
REPORT_EVERY = 5.0


def receive(port: int) -> None:
    with socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True) as server:
        conn, _ = server.accept()
        with conn:
            start = mark = time.monotonic()
            total = since = 0
            while data := conn.recv(CHUNK):
                total += len(data)
                since += len(data)
                now = time.monotonic()
                if now - mark >= REPORT_EVERY:
                    print(f"{now - start:7.1f} s  {since * 8 / (now - mark) / 1000:8.0f} kbit/s", flush=True)
                    mark, since = now, 0
            print(f"total {total} bytes in {time.monotonic() - start:.1f} s", flush=True)


def send(host: str, port: int) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        conn = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        # Before connect(), so the handshake and slow start already run CUBIC.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CONGESTION_CONTROL)
        conn.settimeout(CONNECT_TIMEOUT)
        try:
            conn.connect((host, port))
            break
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    used = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0")
    if used != CONGESTION_CONTROL:
        sys.exit(f"cross traffic: TCP congestion control is {used.decode()}, not {CONGESTION_CONTROL.decode()}")
    print(f"cross traffic to {host}:{port}, congestion control {used.decode()}", flush=True)
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
