# TLS over TCP: our carrier (tls.tcp.TLSSocket: engine + user-space record
# layer) against Python's ssl (OpenSSL in C) in the same run, over loopback.
#
#   python bench/bench_tls_tcp.py [--quick] [--json]
#
# Handshakes: the measured server runs in this process; a client process
# (Python's ssl, the same for both servers) makes N sequential connections
# (full handshake, x25519, ECDSA P-256 certificate, no tickets, 1 byte each
# way).  Reported: handshakes per second (wall clock) and the server
# thread's CPU time per handshake (time.thread_time), ratio ours / ssl.
# The client side the same way: our client / ssl's client against one
# `openssl s_server` process.
# Bulk: N MB one way between this process and a peer process (ssl), with
# this side sending and then receiving, through our TLSSocket or ssl.
# Reported: MB/s and ratio ours / ssl (>= 0.5 is the target).
from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tls.config import Config, VerifyMode  # noqa: E402
from tls.tcp import wrap_socket  # noqa: E402
from tls.tools.server import self_signed_credentials  # noqa: E402

BLOCK = 1 << 20


# ---------------------------------------------------------------------------
# The peer process (python bench/bench_tls_tcp.py --peer MODE PORT ARG)


def peer_main(mode: str, port: int, arg: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if mode == "handshakes":
        t0 = time.perf_counter()
        for _ in range(arg):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with ctx.wrap_socket(sock) as s:
                s.sendall(b"x")
                s.recv(1)
        print(time.perf_counter() - t0, flush=True)  # the loop's wall time, without process start-up
    elif mode == "sink":  # receive arg bytes, answer 1 byte
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60)) as s:
            n, buf = 0, bytearray(BLOCK)
            while n < arg:
                k = s.recv_into(buf)
                if not k:
                    break
                n += k
            s.sendall(b"k")
    elif mode == "source":  # send arg bytes, wait for 1 byte
        block = os.urandom(BLOCK)
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60)) as s:
            for _ in range(arg // BLOCK):
                s.sendall(block)
            s.recv(1)


def spawn_peer(mode: str, port: int, arg: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--peer", mode, str(port), str(arg)],
                            stdout=subprocess.PIPE, text=True)


# ---------------------------------------------------------------------------
# Servers under test (this process)


class Servers:
    def __init__(self) -> None:
        chain, key = self_signed_credentials()
        self.ours = Config(certificate_chain=chain, private_key=key, session_tickets=0)
        from cryptography.hazmat.primitives import serialization

        self.tmp = tempfile.mkdtemp(prefix="bench_tls_tcp_")
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        with open(self.cert, "wb") as f:
            f.write(chain[0].public_bytes(serialization.Encoding.PEM))
        with open(self.key, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl.load_cert_chain(self.cert, self.key)
        self.ssl.num_tickets = 0

    def wrap(self, kind: str, sock: socket.socket):
        if kind == "ours":
            return wrap_socket(sock, self.ours, server_side=True)
        return self.ssl.wrap_socket(sock, server_side=True)


def serve(servers: Servers, kind: str, count: int, work):
    """Accept `count` connections in a thread and run work(tls) on each.
    result["cpu"]: the thread's CPU seconds (handshakes included);
    result["work_wall"]: wall seconds inside work() only."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result = {"cpu": 0.0, "work_wall": 0.0}

    def run() -> None:
        for _ in range(count):
            sock, _ = listener.accept()
            sock.settimeout(60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.thread_time()
            with servers.wrap(kind, sock) as tls:
                w0 = time.perf_counter()
                work(tls)
                result["work_wall"] += time.perf_counter() - w0
            result["cpu"] += time.thread_time() - t0

    thread = threading.Thread(target=run)
    thread.start()
    return port, thread, result, listener


def bench_server_handshakes(servers: Servers, kind: str, n: int) -> dict:
    def work(tls) -> None:
        tls.recv(1)
        tls.sendall(b"y")

    port, thread, result, listener = serve(servers, kind, n, work)
    peer = spawn_peer("handshakes", port, n)
    out, _ = peer.communicate(timeout=300)
    thread.join(300)
    wall = float(out.strip())
    listener.close()
    return {"handshakes_per_s": n / wall, "server_cpu_ms": 1000 * result["cpu"] / n}


def bench_client_handshakes(servers: Servers, kind: str, n: int) -> dict:
    proc = subprocess.Popen(["openssl", "s_server", "-accept", "0", "-cert", servers.cert, "-key", servers.key,
                             "-num_tickets", "0", "-quiet", "-naccept", str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
    # -quiet hides the ACCEPT line: find the port from /proc instead of parsing.
    port = _listening_port(proc.pid)
    client_cfg = Config(verify_mode=VerifyMode.NONE, session_tickets=0)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kind == "ours":
            tls = wrap_socket(sock, client_cfg)
        else:
            tls = ctx.wrap_socket(sock)
        tls.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    proc.wait(30)
    return {"handshakes_per_s": n / wall, "client_cpu_ms": 1000 * cpu / n}


def _listening_port(pid: int, timeout: float = 10.0) -> int:
    import re

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                m = re.match(r"socket:\[(\d+)\]", target)
                if m:
                    inodes.add(m.group(1))
        except OSError:
            pass
        for table in ("/proc/net/tcp6", "/proc/net/tcp"):
            try:
                lines = open(table).read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    return int(fields[1].rsplit(":", 1)[1], 16)
        time.sleep(0.02)
    raise RuntimeError("openssl s_server did not start listening")


def bench_bulk(servers: Servers, kind: str, nbytes: int, direction: str) -> dict:
    block = os.urandom(BLOCK)

    def send(tls) -> None:
        for _ in range(nbytes // BLOCK):
            tls.sendall(block)
        tls.recv(1)

    def receive(tls) -> None:
        n, buf = 0, bytearray(BLOCK)
        while n < nbytes:
            k = tls.recv_into(buf)
            if not k:
                break
            n += k
        tls.sendall(b"k")

    port, thread, result, listener = serve(servers, kind, 1, send if direction == "send" else receive)
    peer = spawn_peer("sink" if direction == "send" else "source", port, nbytes)
    thread.join(600)
    peer.communicate(timeout=60)
    listener.close()
    return {"MB_per_s": nbytes / result["work_wall"] / 1e6, "cpu_s": result["cpu"]}


def run(quick: bool = False) -> list[dict]:
    servers = Servers()
    n_hs = 40 if quick else 300
    nbytes = (32 if quick else 256) * BLOCK
    rows = []

    def pair(name: str, fn, key: str, higher_is_better: bool) -> None:
        theirs = fn("ssl")
        ours = fn("ours")
        ratio = ours[key] / theirs[key]
        rows.append({"test": name, "metric": key, "ours": ours[key], "ssl": theirs[key],
                     "ratio_ours_over_ssl": ratio, "higher_is_better": higher_is_better,
                     "details": {"ours": ours, "ssl": theirs}})

    pair(f"server handshakes (n={n_hs})", lambda k: bench_server_handshakes(servers, k, n_hs), "server_cpu_ms", False)
    rows.append(dict(rows[-1], metric="handshakes_per_s",
                     ours=rows[-1]["details"]["ours"]["handshakes_per_s"],
                     ssl=rows[-1]["details"]["ssl"]["handshakes_per_s"],
                     ratio_ours_over_ssl=rows[-1]["details"]["ours"]["handshakes_per_s"]
                     / rows[-1]["details"]["ssl"]["handshakes_per_s"], higher_is_better=True))
    pair(f"client handshakes vs s_server (n={n_hs})", lambda k: bench_client_handshakes(servers, k, n_hs),
         "client_cpu_ms", False)
    mb = nbytes // BLOCK
    pair(f"bulk send {mb} MB", lambda k: bench_bulk(servers, k, nbytes, "send"), "MB_per_s", True)
    pair(f"bulk receive {mb} MB", lambda k: bench_bulk(servers, k, nbytes, "receive"), "MB_per_s", True)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        peer_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer handshakes, 32 MB bulk")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'test':42} {'metric':18} {'ours':>10} {'ssl':>10} {'ours/ssl':>9}")
    for row in rows:
        print(f"{row['test']:42} {row['metric']:18} {row['ours']:10.2f} {row['ssl']:10.2f} "
              f"{row['ratio_ours_over_ssl']:9.2f}")
    print("targets (issue 4): server handshake CPU ratio <= 2.5; bulk MB/s ratio >= 0.5")


if __name__ == "__main__":
    main()
