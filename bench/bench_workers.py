# Several worker processes on one port (`python -m pyquic.server --workers
# N`: SO_REUSEPORT, steered in the kernel by connection ID).  For 1 and 2
# workers, in interleaved rounds: --connections connections from our client,
# one after another, each fetching a small file, then moving to a spare
# connection ID and to a new local address (active migration) and fetching
# it again.  Reports the connections per second, the server's CPU per
# connection (all workers; a full handshake, two requests, a path
# validation), the client's CPU share beside it, how the connections spread
# over the workers, and the datagrams that reached a worker that did not hold
# their connection (the workers' stateless resets and drops: must be 0).  The
# machine's cores are shared by the client and the server, so the point is
# correctness and cost, not a speed-up.
#
#   python bench/bench_workers.py [--connections 1000] [--rounds 2] [--json out.json]
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyquic.asyncio.h3 import connect_h3  # noqa: E402
from pyquic.config import QuicConfiguration  # noqa: E402
from tests.h3_peers import free_udp_port, write_h3_site  # noqa: E402
from tests.quic_peers import pki_files, proc_cpu_seconds  # noqa: E402


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


async def clients(port: int, ca: Path, count: int) -> list[int]:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
    config.load_verify_locations(cafile=str(ca))
    landed = []
    for _ in range(count):
        async with connect_h3("127.0.0.1", port, configuration=config) as client:
            client.authority = f"localhost:{port}"
            assert (await client.get("/small.txt")).status == 200
            for _ in range(200):
                if client.protocol.change_connection_id():
                    break
                await asyncio.sleep(0.002)
            await client.protocol.change_local_address()
            assert (await client.get("/small.txt")).status == 200
            quic = client.protocol._quic
            assert quic.stats.path_migrations == 1 and quic.stats.paths_validated == 1
            landed.append(quic.peer_cid[0] & 0x1F)
    return landed


def one_round(files: dict, site: dict, workers: int, connections: int) -> dict:
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyquic.server", "-q", "--root", str(site["root"]), "--host", "127.0.0.1",
         "--port", str(port), "--cert", str(files["server_chain"]), "--key", str(files["server_key"]),
         "--retry", "never", "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "listening on" not in (line := proc.stdout.readline()):
            if not line:
                raise RuntimeError(proc.stderr.read())
        time.sleep(0.3)
        pids = children(proc.pid) if workers > 1 else [proc.pid]
        server_before = sum(proc_cpu_seconds(p) for p in pids)
        client_before = time.process_time()
        start = time.perf_counter()
        landed = asyncio.run(clients(port, files["ca"], connections))
        seconds = time.perf_counter() - start
        client_cpu = time.process_time() - client_before
        server_cpu = sum(proc_cpu_seconds(p) for p in pids) - server_before
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    stray = 0
    for counts in re.findall(r"stopped; endpoint: (.*)", err):
        found = dict((name, int(n)) for name, n in re.findall(r"(\w+) (\d+)", counts))
        stray += found.get("stateless_reset", 0) + found.get("datagrams_dropped", 0)
    return {"workers": workers, "connections_per_s": connections / seconds,
            "server_ms_per_connection": 1000 * server_cpu / connections,
            "client_ms_per_connection": 1000 * client_cpu / connections,
            "client_cpu_share": client_cpu / (client_cpu + server_cpu),
            "spread": {w: landed.count(w) for w in sorted(set(landed))} if workers > 1 else {0: len(landed)},
            "stray": stray}


def main() -> int:
    p = argparse.ArgumentParser(description="pyquic.server --workers: cost and correctness")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        files = pki_files(Path(tmp) / "pki")
        site = write_h3_site(Path(tmp) / "www", 10_000)
        runs: dict[int, list] = {1: [], 2: []}
        for r in range(args.rounds):
            for workers in (1, 2):
                run = one_round(files, site, workers, args.connections)
                runs[workers].append(run)
                print(f"round {r + 1}, {workers} worker(s): {run['connections_per_s']:.1f} conn/s, server "
                      f"{run['server_ms_per_connection']:.2f} ms/conn, client {run['client_ms_per_connection']:.2f}"
                      f" ms/conn (share {run['client_cpu_share']:.0%}), spread {run['spread']},"
                      f" stray datagrams {run['stray']}", flush=True)
    print(f"\n{args.connections} connections each (handshake, request, rotation, migration, request), "
          f"medians of {args.rounds} rounds:")
    summary = {}
    for workers, rs in runs.items():
        summary[workers] = {key: statistics.median(r[key] for r in rs) for key in
                            ("connections_per_s", "server_ms_per_connection", "client_cpu_share")}
        summary[workers]["stray"] = sum(r["stray"] for r in rs)
        s = summary[workers]
        print(f"  {workers} worker(s): {s['connections_per_s']:.1f} conn/s, server {s['server_ms_per_connection']:.2f}"
              f" ms/conn, client CPU share {s['client_cpu_share']:.0%}, stray datagrams {s['stray']}")
    ratio = summary[2]["server_ms_per_connection"] / summary[1]["server_ms_per_connection"]
    print(f"  server CPU per connection, 2 workers / 1: {ratio:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
