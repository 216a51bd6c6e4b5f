# Recovery on a bad path, on the simulated clock (tests/quic_pair.py): a
# --size MB upload from our client to our server over a 20 ms RTT path with
# 2 % random loss each way and 5 % of packets held back up to 10 ms
# (reordering), CUBIC with HyStart++ and spurious-loss undo (RFC 9406,
# RFC 9438 §4.9) against CUBIC without them, the same seeds (the same losses
# and reorderings) for both.  Reports goodput in simulated time (so the
# numbers repeat exactly and the machine's speed does not enter), the
# congestion events, the spurious losses seen and the reductions undone,
# and the ratio of the medians.
#
#   python bench/bench_recovery.py [--size MB] [--seeds N] [--loss 0.02] [--reorder 0.05] [--json out.json]
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyquic.connection import QuicConnection  # noqa: E402
from tests.quic_pair import Pair, client_configuration, seeded_entropy, server_configuration  # noqa: E402


def lossy_transfer(seed: int, smart: bool, size: int = 5_000_000, rtt: float = 0.020, loss: float = 0.02,
                   reorder: float = 0.05, reorder_delay: float = 0.010):
    """(goodput in MB/s of simulated time, the client's LossRecovery)."""
    config = dict(congestion_control_algorithm="cubic", hystart=smart, undo_spurious_loss=smart)
    pair = Pair(rtt=rtt, seed=seed, server_config=server_configuration(**config),
                client=QuicConnection(configuration=client_configuration(**config), entropy=seeded_entropy(seed)))
    for link in (pair.client_to_server, pair.server_to_client):
        link.loss = loss
        link.reorder = reorder
        link.reorder_delay = reorder_delay
    pair.record_events = False
    pair.handshake()
    start = pair.now
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"r" * size, end_stream=True)
    if not pair.drive_until(lambda: len(pair.received("server", sid)) == size, duration=3600):
        raise RuntimeError(f"seed {seed}: the transfer did not finish")
    return size / (pair.now - start) / 1e6, pair.client.loss


def run(size_mb: float = 5, seeds: int = 5, loss: float = 0.02, reorder: float = 0.05) -> dict:
    results: dict = {"size_mb": size_mb, "seeds": seeds, "loss": loss, "reorder": reorder, "rows": {}}
    for name, smart in (("cubic + HyStart++ + undo", True), ("cubic", False)):
        runs = []
        for seed in range(1, seeds + 1):
            mbps, rec = lossy_transfer(seed, smart, int(size_mb * 1e6), loss=loss, reorder=reorder)
            runs.append({"seed": seed, "mbps": mbps, "congestion_events": rec.cc.congestion_events,
                         "spurious_losses": rec.spurious_losses, "undone": rec.cc.undone_events,
                         "css_entries": rec.cc.hystart.css_entries})
        results["rows"][name] = {"median_mbps": statistics.median(r["mbps"] for r in runs), "runs": runs}
    smart, plain = (results["rows"][n]["median_mbps"] for n in ("cubic + HyStart++ + undo", "cubic"))
    results["ratio"] = smart / plain
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=float, default=5, help="MB to upload per run (default 5)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--loss", type=float, default=0.02)
    p.add_argument("--reorder", type=float, default=0.05)
    p.add_argument("--json")
    args = p.parse_args()
    results = run(args.size, args.seeds, args.loss, args.reorder)
    print(f"{args.size:g} MB up a 20 ms path, {args.loss:.0%} loss, {args.reorder:.0%} reordered, "
          f"{args.seeds} seeds (simulated time)")
    for name, row in results["rows"].items():
        runs = row["runs"]
        print(f"  {name:<26} median {row['median_mbps']:6.2f} MB/s  congestion events "
              f"{sum(r['congestion_events'] for r in runs):4d}  spurious losses "
              f"{sum(r['spurious_losses'] for r in runs):4d}  undone {sum(r['undone'] for r in runs):3d}  "
              f"CSS entries {sum(r['css_entries'] for r in runs):2d}")
    print(f"  ratio {results['ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
