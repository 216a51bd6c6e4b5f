# What a server connection costs in memory while it sits idle, and whether
# memory comes back when connections are gone: pyquic against aioquic and
# qh3 (whose TLS and crypto are Rust, so the process's resident set is
# measured, not Python's allocations).  In memory, sans-I/O, the same driver
# for all three (bench_quic_memory.py's factories):
#   - idle: --idle pairs complete their handshake (and a stream each way);
#     the clients are dropped; the resident set with the servers alive, less
#     the set before, per server connection;
#   - churn: --churn connections in turn, each handshaked, used and closed
#     and dropped; the resident set after each tenth, so growth shows.
# Each contender runs in a process of its own: memory one freed would
# otherwise be reused by the next and hide its growth.
#
#   python bench/bench_connection_memory.py [--idle 1000] [--churn 10000] [--only pyquic|aioquic|qh3]
from __future__ import annotations

import argparse
import gc
import heapq
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_quic_memory import aioquic_factories, fire_timers, pyquic_factories  # noqa: E402
from tests.quic_pair import CLIENT_ADDR, SERVER_ADDR  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def handshake(make_client, make_server, now: float = 0.0):
    """A client and its server connection, handshake complete and a small
    exchange done; returns (client, server, now)."""
    client = make_client()
    server = None
    queue: list = []
    seq = 0
    client.connect(SERVER_ADDR, now=now)

    def pump(conn, dst):
        nonlocal seq
        for data, _ in conn.datagrams_to_send(now=now):
            seq += 1
            heapq.heappush(queue, (now + 0.001, seq, dst, data))

    pump(client, "s")
    sent = answered = False
    for _ in range(1000):
        if answered and not queue:
            break
        times = [queue[0][0]] if queue else []
        times += [t for t in (client.get_timer(), server.get_timer() if server else None) if t is not None]
        if not times:
            break
        now = max(now, min(times))
        while queue and queue[0][0] <= now:
            _, _, dst, data = heapq.heappop(queue)
            if dst == "s":
                if server is None:
                    server = make_server(data)
                server.receive_datagram(data, CLIENT_ADDR, now=now)
            else:
                client.receive_datagram(data, SERVER_ADDR, now=now)
        for conn in (client, server):
            while conn is not None and (event := conn.next_event()) is not None:
                kind = type(event).__name__
                if kind == "HandshakeCompleted" and conn is client and not sent:
                    sid = client.get_next_available_stream_id()
                    client.send_stream_data(sid, b"x" * 1000, end_stream=True)
                    sent = True
                elif kind == "StreamDataReceived" and conn is server and event.end_stream:
                    server.send_stream_data(event.stream_id, b"y" * 1000, end_stream=True)
                elif kind == "StreamDataReceived" and conn is client and event.end_stream:
                    answered = True
        fire_timers(now, client, server)
        pump(client, "s")
        if server is not None:
            pump(server, "c")
    assert answered, "the exchange did not complete"
    return client, server, now


def idle_cost(factories, count: int) -> float:
    make_client, make_server = factories
    handshake(make_client, make_server)  # warm up: imports, caches, first-use allocations
    gc.collect()
    before = rss()
    servers = []
    for _ in range(count):
        client, server, _ = handshake(make_client, make_server)
        servers.append(server)
        del client
    gc.collect()
    return (rss() - before) / count


def churn(factories, count: int) -> list[int]:
    make_client, make_server = factories
    samples = []
    for i in range(count):
        client, server, now = handshake(make_client, make_server)
        client.close()
        del client, server
        if (i + 1) % max(1, count // 10) == 0:
            gc.collect()
            samples.append(rss())
    return samples


def main() -> int:
    p = argparse.ArgumentParser(description="memory per idle server connection, and after churn")
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--churn", type=int, default=10000)
    p.add_argument("--only", choices=["pyquic", "aioquic", "qh3"])
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    # One server configuration for all of a contender's server connections,
    # as a server has: what is counted is what each connection adds.
    contenders = {"pyquic": lambda: pyquic_factories(1200, shared_server_config=True),
                  "aioquic": lambda: aioquic_factories(1200, shared_server_config=True),
                  "qh3": lambda: aioquic_factories(1200, "qh3", shared_server_config=True)}
    out = {}
    if not args.only:  # one process each
        import subprocess
        import tempfile

        for name in contenders:
            with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
                subprocess.run([sys.executable, __file__, "--only", name, "--idle", str(args.idle), "--churn",
                                str(args.churn), "--json", tmp.name], check=True)
                out.update(json.loads(Path(tmp.name).read_text()))
        ratio = out["pyquic"]["idle_bytes_per_connection"] / out["qh3"]["idle_bytes_per_connection"]
        print(f"pyquic / qh3 per idle connection: x{ratio:.2f}; pyquic / aioquic: "
              f"x{out['pyquic']['idle_bytes_per_connection'] / out['aioquic']['idle_bytes_per_connection']:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        return 0
    for name, make in contenders.items():
        if args.only != name:
            continue
        per_conn = idle_cost(make(), args.idle)
        samples = churn(make(), args.churn) if args.churn else []
        out[name] = {"idle_bytes_per_connection": per_conn, "churn_rss": samples}
        growth = (samples[-1] - samples[1]) / 1024 if len(samples) > 2 else 0.0
        print(f"{name:8s} idle: {per_conn / 1024:6.1f} KB per server connection ({args.idle} alive); "
              f"churn of {args.churn}: RSS {', '.join(f'{s / 2**20:.1f}' for s in samples)} MB "
              f"(from the second sample to the last: {growth:+.0f} KB)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
