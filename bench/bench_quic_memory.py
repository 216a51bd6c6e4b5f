# In-memory bulk transfer between two sans-I/O QUIC connections, no sockets:
# what the protocol core costs per byte, pyquic against aioquic's
# QuicConnection (and qh3's, its fork with a Rust TLS/crypto core) on the
# same simulated link and the same driver.
#
#   python bench/bench_quic_memory.py [--mb 50] [--mds 1200] [--rounds 3] [--only pyquic|aioquic|qh3]
#
# The driver delivers datagrams after a fixed one-way delay on a simulated
# clock and lets each side process everything that arrived before it sends
# (as an event loop would after a batch of reads).  Goodput is megabytes of
# stream data per second of wall time spent in both connections (driver
# included); the median of the rounds is printed.
from __future__ import annotations

import argparse
import heapq
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.quic_pair import CLIENT_ADDR, SERVER_ADDR, client_configuration, server_configuration  # noqa: E402


def run_pair(make_client, make_server, size: int, one_way: float = 0.005) -> float:
    """Seconds of wall time to move `size` bytes client -> server once connected."""
    client = make_client()
    server = None
    now = 0.0
    queue: list = []
    seq = 0
    received = 0
    done = False
    started = None
    stream_id = None
    client.connect(SERVER_ADDR, now=now)

    def pump(conn, dst):
        nonlocal seq
        for data, _ in conn.datagrams_to_send(now=now):
            seq += 1
            heapq.heappush(queue, (now + one_way, seq, dst, data))

    pump(client, "s")
    while not done:
        times = [queue[0][0]] if queue else []
        for conn in (client, server):
            if conn is not None:
                timer = conn.get_timer()
                if timer is not None:
                    times.append(timer)
        now = max(now, min(times))
        arrived: dict[str, list] = {"s": [], "c": []}
        while queue and queue[0][0] <= now:
            _, _, dst, data = heapq.heappop(queue)
            arrived[dst].append(data)
        if arrived["s"]:
            if server is None:
                server = make_server(arrived["s"][0])
            for data in arrived["s"]:
                server.receive_datagram(data, CLIENT_ADDR, now=now)
            while (event := server.next_event()) is not None:
                if type(event).__name__ == "StreamDataReceived":
                    received += len(event.data)
                    done = done or event.end_stream
        for data in arrived["c"]:
            client.receive_datagram(data, SERVER_ADDR, now=now)
        while (event := client.next_event()) is not None:
            if type(event).__name__ == "HandshakeCompleted" and stream_id is None:
                stream_id = client.get_next_available_stream_id()
                started = time.perf_counter()
                client.send_stream_data(stream_id, bytes(size), end_stream=True)
        fire_timers(now, client, server)
        pump(client, "s")
        if server is not None:
            pump(server, "c")
    elapsed = time.perf_counter() - started
    assert received == size, (received, size)
    return elapsed


def fire_timers(now: float, *conns) -> None:
    """Run the timers due at `now` (a None connection is skipped)."""
    for conn in conns:
        if conn is not None:
            timer = conn.get_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now=now)


def pyquic_factories(mds: int, shared_server_config: bool = False):
    """(make_client, make_server).  With shared_server_config, every server
    connection gets one configuration, as a server's connections do."""
    from pyquic.connection import QuicConnection
    from pyquic.packet import split_datagram

    shared = server_configuration(max_datagram_size=mds) if shared_server_config else None

    def make_client():
        return QuicConnection(configuration=client_configuration(max_datagram_size=mds), entropy=os.urandom)

    def make_server(first_datagram: bytes):
        odcid = split_datagram(first_datagram, 8).packets[0][0].destination_cid
        return QuicConnection(
            configuration=shared or server_configuration(max_datagram_size=mds),
            original_destination_connection_id=odcid, entropy=os.urandom,
        )

    return make_client, make_server


def aioquic_factories(mds: int, package: str = "aioquic", shared_server_config: bool = False):
    import importlib

    Buffer = importlib.import_module(f"{package}.quic.packet").Buffer
    QuicConfiguration = importlib.import_module(f"{package}.quic.configuration").QuicConfiguration
    QuicConnection = importlib.import_module(f"{package}.quic.connection").QuicConnection
    pull_quic_header = importlib.import_module(f"{package}.quic.packet").pull_quic_header

    from tests.pki import make_test_pki

    files = make_test_pki().write_pem(tempfile.mkdtemp())

    class Wrapped:
        def __init__(self, conn):
            self.conn = conn

        def __getattr__(self, name):
            return getattr(self.conn, name)

        def connect(self, addr, now):
            self.conn.connect(addr, now=now)

        def receive_datagram(self, data, addr, now):
            self.conn.receive_datagram(data, addr, now=now)

        def datagrams_to_send(self, now):
            return self.conn.datagrams_to_send(now=now)

        def handle_timer(self, now):
            self.conn.handle_timer(now=now)

    def make_client():
        config = QuicConfiguration(is_client=True, alpn_protocols=["hq-test"], server_name="localhost",
                                   max_datagram_size=mds)
        config.load_verify_locations(str(files["ca"]))
        return Wrapped(QuicConnection(configuration=config))

    def server_config():
        config = QuicConfiguration(is_client=False, alpn_protocols=["hq-test"], max_datagram_size=mds)
        config.load_cert_chain(str(files["server_chain"]), str(files["server_key"]))
        return config

    shared = server_config() if shared_server_config else None

    def make_server(first_datagram: bytes):
        config = shared or server_config()
        header = pull_quic_header(Buffer(data=first_datagram), host_cid_length=8)
        return Wrapped(QuicConnection(configuration=config, original_destination_connection_id=header.destination_cid))

    return make_client, make_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--mds", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["pyquic", "aioquic", "qh3"])
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    contenders = (
        ("pyquic", pyquic_factories),
        ("aioquic", aioquic_factories),
        ("qh3", lambda mds: aioquic_factories(mds, "qh3")),
    )
    for name, factories in contenders:
        if args.only and args.only != name:
            continue
        make_client, make_server = factories(args.mds)
        rates = [size / 1e6 / run_pair(make_client, make_server, size) for _ in range(args.rounds)]
        print(f"{name:8s} {args.mb:.0f} MB, datagrams of {args.mds}: median {statistics.median(rates):6.1f} MB/s "
              f"(rounds: {', '.join(f'{r:.1f}' for r in rates)})")


if __name__ == "__main__":
    main()
