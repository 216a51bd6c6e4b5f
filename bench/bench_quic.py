# QUIC benchmark over loopback: pyquic against aioquic and qh3 in the same
# run, each as server AND client of itself (raw streams, tests/peers/
# raw_peer.py), every server and client in its own process, pinned to its
# own core when there are two.  Owns the measurements and the table:
#   - bulk download (server sends) and upload (client sends) of one stream:
#     goodput in MB/s (1 MB = 10^6 bytes) from the client's clock, after the
#     SHA-256 of the data matched; CPU milliseconds per MB on each side (the
#     client's from getrusage around the transfer, the server's by asking it
#     over the connection before and after: handshake excluded);
#   - handshake rate: sequential connections from one client, and the
#     server's CPU milliseconds per handshake; full handshakes, then resumed
#     ones (each with the ticket the previous connection brought: PSK with
#     (EC)DHE; a round fails unless every one of them resumed), both with
#     X25519 alone (raw_peer --groups x25519: the setting issue 14's targets
#     name); then full handshakes with each library's default key exchange
#     ("hybrid": X25519MLKEM768 for pyquic and qh3), which shows ML-KEM's
#     share; the rounds of every implementation and kind are interleaved;
#   - medians of >= 5 rounds (--quick: 2 rounds of 10 MB).
#
#   python bench/bench_quic.py [--quick] [--impl pyquic,aioquic,qh3] [--json out.json]
#   from bench.bench_quic import run; results = run(quick=True)
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.quic_peers import pki_files, run_client, start_server  # noqa: E402

IMPLS = ("pyquic", "aioquic", "qh3")
# The same flow-control windows for every implementation (aioquic's default
# 1 MB would otherwise cap it, qh3's defaults are larger).
WINDOWS = dict(max_data=16 << 20, max_stream_data=8 << 20)
OP_TIMEOUT = 180.0


# Server and client on different cores: on a 2-core machine this keeps them
# from competing for one and makes the figures steadier.
SERVER_CPU, CLIENT_CPU = (0, 1) if (os.cpu_count() or 1) >= 2 else (None, None)


def _client(impl: str, port: int, files, ops: list[dict], extra_args: tuple = ()) -> list[dict]:
    results = run_client(impl, port, files, ops, timeout=OP_TIMEOUT, op_timeout=OP_TIMEOUT, cpu=CLIENT_CPU,
                         extra_args=extra_args, **WINDOWS)
    bad = [r for r in results if not r.get("ok")]
    if bad:
        raise RuntimeError(f"{impl}: failed operations {bad}")
    return results


def _bulk(impl: str, files, *, size: int, rounds: int) -> dict:
    server = start_server(impl, files, cpu=SERVER_CPU, **WINDOWS)
    try:
        out: dict = {"impl": impl, "size": size, "rounds": rounds}
        for direction, op in (("download", "source"), ("upload", "sink")):
            goodput, client_ms, server_ms = [], [], []
            for _ in range(rounds):
                (res,) = _client(impl, server.port, files, [{"op": op, "size": size, "server_cpu": True}])
                mb = res["bytes"] / 1e6
                goodput.append(mb / res["seconds"])
                client_ms.append(1000 * res["cpu"] / mb)
                server_ms.append(1000 * res["server_cpu"] / mb)
            out[direction] = {
                "goodput_MBps": statistics.median(goodput),
                "client_cpu_ms_per_MB": statistics.median(client_ms),
                "server_cpu_ms_per_MB": statistics.median(server_ms),
                "goodput_all": goodput,
            }
        return out
    finally:
        server.stop()


# The handshake kinds: (result key, raw_peer --groups, resumed).  Issue 14's
# targets are for X25519 (with the ECDSA P-256 certificate of pki_files);
# "hybrid" is each library's default key exchange (X25519MLKEM768 for pyquic
# and qh3; X25519 for aioquic, which has no ML-KEM), to show ML-KEM's share.
HANDSHAKES = (("handshake", "x25519", False), ("resumed", "x25519", True), ("hybrid", "", False))


def _handshakes(impls, files, *, rounds: int, handshakes: int) -> dict:
    """Every kind of every implementation, one round of each in turn, so a
    machine that drifts during the run moves every figure alike rather than
    one implementation's."""
    servers: dict = {}
    try:
        for impl in impls:
            for _, groups, _ in HANDSHAKES:
                if (impl, groups) not in servers:
                    servers[impl, groups] = start_server(impl, files, cpu=SERVER_CPU,
                                                         extra_args=("--groups", groups) if groups else (), **WINDOWS)
        samples: dict = {}
        for _ in range(rounds):
            for impl in impls:
                for key, groups, resumed in HANDSHAKES:
                    (res,) = _client(impl, servers[impl, groups].port, files,
                                     [{"op": "handshakes", "count": handshakes, "resumed": resumed}],
                                     extra_args=("--groups", groups) if groups else ())
                    rates, server_ms, client_ms = samples.setdefault((impl, key), ([], [], []))
                    rates.append(res["count"] / res["seconds"])
                    server_ms.append(1000 * res["server_cpu_per_handshake"])
                    client_ms.append(1000 * res["cpu"] / res["count"])
        return {
            impl: {
                key: {
                    "per_second": statistics.median(samples[impl, key][0]),
                    "server_cpu_ms": statistics.median(samples[impl, key][1]),
                    "client_cpu_ms": statistics.median(samples[impl, key][2]),
                    "server_cpu_ms_all": samples[impl, key][1],
                }
                for key, _, _ in HANDSHAKES
            }
            for impl in impls
        }
    finally:
        for server in servers.values():
            server.stop()


def run(quick: bool = False, impls=IMPLS, size: int = 0, rounds: int = 0, handshakes: int = 0) -> dict:
    """Run the benchmark; returns {impl: {download, upload, handshake, resumed, hybrid}} (medians)."""
    size = size or (10_000_000 if quick else 50_000_000)
    rounds = rounds or (2 if quick else 5)
    handshakes = handshakes or (20 if quick else 100)
    with tempfile.TemporaryDirectory() as tmp:
        files = pki_files(Path(tmp))
        results = {impl: _bulk(impl, files, size=size, rounds=rounds) for impl in impls}
        for impl, kinds in _handshakes(impls, files, rounds=rounds, handshakes=handshakes).items():
            results[impl].update(kinds)
        return results


def table(results: dict) -> str:
    rows = [("", "down MB/s", "up MB/s", "srv ms/MB down", "cli ms/MB down", "srv ms/MB up", "cli ms/MB up",
             "handshakes/s", "srv ms/hs", "cli ms/hs", "resumed/s", "srv ms/resumed", "hybrid/s", "srv ms/hybrid")]
    for impl, r in results.items():
        d, u, h, res, hy = r["download"], r["upload"], r["handshake"], r["resumed"], r["hybrid"]
        rows.append((impl, f"{d['goodput_MBps']:.1f}", f"{u['goodput_MBps']:.1f}",
                     f"{d['server_cpu_ms_per_MB']:.1f}", f"{d['client_cpu_ms_per_MB']:.1f}",
                     f"{u['server_cpu_ms_per_MB']:.1f}", f"{u['client_cpu_ms_per_MB']:.1f}",
                     f"{h['per_second']:.0f}", f"{h['server_cpu_ms']:.2f}", f"{h['client_cpu_ms']:.2f}",
                     f"{res['per_second']:.0f}", f"{res['server_cpu_ms']:.2f}",
                     f"{hy['per_second']:.0f}", f"{hy['server_cpu_ms']:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append("handshakes and resumed: X25519; hybrid: each library's default (X25519MLKEM768 for pyquic "
                 "and qh3, X25519 for aioquic)")
    for impl, r in results.items():
        full, hybrid = r["handshake"]["server_cpu_ms"], r["hybrid"]["server_cpu_ms"]
        lines.append(f"{impl}: server CPU of a hybrid handshake over an X25519 one x{hybrid / full:.2f}")
    if "pyquic" in results:
        p = results["pyquic"]
        for other in ("aioquic", "qh3"):
            if other not in results:
                continue
            o = results[other]
            lines.append(
                f"pyquic / {other}: download goodput x{p['download']['goodput_MBps'] / o['download']['goodput_MBps']:.2f}, "
                f"upload goodput x{p['upload']['goodput_MBps'] / o['upload']['goodput_MBps']:.2f}, "
                f"server CPU/MB (down) x{p['download']['server_cpu_ms_per_MB'] / o['download']['server_cpu_ms_per_MB']:.2f}, "
                f"handshakes/s x{p['handshake']['per_second'] / o['handshake']['per_second']:.2f}, "
                f"server CPU/handshake x{p['handshake']['server_cpu_ms'] / o['handshake']['server_cpu_ms']:.2f}, "
                f"resumed x{p['resumed']['server_cpu_ms'] / o['resumed']['server_cpu_ms']:.2f}, "
                f"hybrid x{p['hybrid']['server_cpu_ms'] / o['hybrid']['server_cpu_ms']:.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 10 MB")
    ap.add_argument("--impl", default=",".join(IMPLS))
    ap.add_argument("--size", type=int, default=0, help="bytes per transfer")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--handshakes", type=int, default=0, help="per round")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = run(args.quick, tuple(args.impl.split(",")), args.size, args.rounds, args.handshakes)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
