# Slow start into a real bottleneck queue: HyStart++ (RFC 9406) against
# plain slow start.  Our server sends a --size MB file to our client across
# the interop network (interop/network.py: three network namespaces and the
# user-space simulator, the reference's default link: 10 Mbit/s, 15 ms each
# way, a 25-packet drop-tail queue).  For each congestion controller, with
# and without HyStart++, in interleaved rounds, it reports the packets the
# queue dropped on their way to the client (the simulator's own count), how
# many of them fell in the first burst of drops (the slow-start overshoot:
# datagrams in the simulator's server-side capture missing from its
# client-side one, sent within two RTTs of the first), when the first drop
# came, the client's download time, and the medians' ratios.  Needs root
# (namespaces) and tshark.
#
#   sudo python bench/bench_hystart.py [--size MB] [--rounds N] [--json out.json]
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from interop.certs import write_certs  # noqa: E402
from interop.network import Network, Scenario  # noqa: E402

SCENARIO = "simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25"
PORT = 443


def sim_stats(log: Path) -> dict:
    for line in reversed(log.read_text().splitlines()):
        if "STATS " in line:
            return json.loads(line.split("STATS ", 1)[1])
    raise RuntimeError(f"no STATS line in {log}")


RTT = 0.030


def _server_datagrams(pcap: Path) -> list[tuple[float, str]]:
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", f"udp.srcport=={PORT}", "-T", "fields",
                          "-e", "frame.time_epoch", "-e", "udp.payload"], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        when, _, payload = line.partition("\t")
        rows.append((float(when), payload))
    return rows


def first_burst(net_dir: Path) -> tuple[int, float]:
    """(drops within two RTTs of the first one, seconds from the first
    server datagram to the first drop; 0, nan without drops)."""
    sent = _server_datagrams(net_dir / "sim_server_side.pcap")
    arrived = {payload for _, payload in _server_datagrams(net_dir / "sim_client_side.pcap")}
    dropped = [when for when, payload in sent if payload not in arrived]
    if not dropped:
        return 0, float("nan")
    first = dropped[0]
    return sum(1 for when in dropped if when < first + 2 * RTT), first - sent[0][0]


def one_run(workdir: Path, size: int, congestion: str, hystart: bool, seed: int) -> dict:
    www, downloads, certs = workdir / "www", workdir / "downloads", workdir / "certs"
    for d in (www, downloads, certs):
        d.mkdir(parents=True)
    (www / "file").write_bytes(os.urandom(size))
    with Network(scenario=Scenario.parse(SCENARIO), workdir=workdir / "net", name_prefix=f"hs{seed % 1000}",
                 seed=seed, port=PORT) as net:
        write_certs(certs, [net.server_ip4, net.server_ip6])
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        server_argv = [sys.executable, "-m", "pyquic.server", "-q", "--root", str(www), "--host", net.server_bind,
                       "--port", str(net.server_port), "--cert", str(certs / "cert.pem"),
                       "--key", str(certs / "priv.key"), "--retry", "never", "--congestion", congestion]
        if not hystart:
            server_argv.append("--no-hystart")
        server = net.run_in(net.server_ns, server_argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)  # the server binds well within this (a busy machine: more)
            url = f"https://{net.server_ip4}:{net.client_port}/file"
            client_argv = [sys.executable, "-m", "pyquic.client", "-k", "--alpn", "hq-interop", "-o",
                           str(downloads), url]
            start = time.monotonic()
            client = net.run_in(net.client_ns, client_argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
            _, err = client.communicate(timeout=300)
            seconds = time.monotonic() - start
            if client.returncode != 0:
                raise RuntimeError(f"client failed: {err.decode(errors='replace')[-500:]}")
        finally:
            server.terminate()
            server.wait(10)
    got = (downloads / "file").stat().st_size
    if got != size:
        raise RuntimeError(f"downloaded {got} of {size} bytes")
    to_client = sim_stats(workdir / "net" / "sim.log")["to_client"]
    burst, first_drop = first_burst(workdir / "net")
    return {"seconds": seconds, "queue_drops": to_client["dropped_queue"], "forwarded": to_client["forwarded"],
            "first_burst": burst, "first_drop_after": first_drop}


def main() -> int:
    p = argparse.ArgumentParser(description="HyStart++ against plain slow start into a bottleneck queue")
    p.add_argument("--size", type=float, default=5.0, help="MB to download (default 5)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root: network namespaces", file=sys.stderr)
        return 2
    size = int(args.size * 1_000_000)
    configs = [(cc, hs) for cc in ("cubic", "reno") for hs in (True, False)]
    runs: dict[str, list[dict]] = {f"{cc}{'+hystart' if hs else ''}": [] for cc, hs in configs}
    with tempfile.TemporaryDirectory(prefix="bench-hystart-") as tmp:
        for r in range(args.rounds):
            for cc, hs in configs:
                name = f"{cc}{'+hystart' if hs else ''}"
                run = one_run(Path(tmp) / f"{r}-{name}", size, cc, hs, seed=r + 1)
                runs[name].append(run)
                print(f"round {r + 1} {name:14} {run['seconds']:6.2f} s  queue drops {run['queue_drops']:4}"
                      f" of {run['forwarded'] + run['queue_drops']}, first burst {run['first_burst']:3}"
                      f" at {run['first_drop_after']:.2f} s", flush=True)
    print(f"\n{args.size:g} MB over {SCENARIO}, medians of {args.rounds} rounds:")
    summary = {}
    for name, rs in runs.items():
        keys = ("seconds", "queue_drops", "first_burst")
        summary[name] = {key: statistics.median(r[key] for r in rs) for key in keys}
        summary[name]["runs"] = rs
        print(f"  {name:14} {summary[name]['seconds']:6.2f} s  {summary[name]['queue_drops']:6.0f} drops,"
              f" {summary[name]['first_burst']:4.0f} in the first burst")
    for cc in ("cubic", "reno"):
        on, off = summary[f"{cc}+hystart"], summary[cc]
        ratio = on["queue_drops"] / off["queue_drops"] if off["queue_drops"] else float("nan")
        burst = on["first_burst"] / off["first_burst"] if off["first_burst"] else float("nan")
        print(f"  {cc}: with HyStart++ {ratio:.2f}x the drops, {burst:.2f}x the first burst,"
              f" {on['seconds'] / off['seconds']:.2f}x the time")
    if args.json:
        Path(args.json).write_text(json.dumps({"scenario": SCENARIO, "size": size, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
