# python -m interop: the matrix of clients x servers x test cases.  Owns the
# command line (which endpoints and cases, how many at once, where results
# go, the CI subset and the comparison with committed results), the order
# of the runs, and the exit status (1 when a run regressed against the
# baseline, or, without a baseline, when any run failed).
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .report import LiveTable, Result, regressions, write_results
from .run import ENDPOINTS, judge, run_test
from .testcases import BY_NAME, CASES, CI_CASES, FAILED

ROOT = Path(__file__).resolve().parent
COMMITTED = ROOT / "results"


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = [n for n in text.split(",") if n] if text else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m interop", description=(
        "Run the quic-interop-runner's test cases between pyquic, aioquic, qh3 and ngtcp2 over an emulated "
        "network (network namespaces and a user-space simulator), and print the matrix."))
    ap.add_argument("--servers", default="", help=f"comma-separated (default: {','.join(ENDPOINTS)})")
    ap.add_argument("--clients", default="", help="comma-separated (default: all)")
    ap.add_argument("--cases", default="", help="comma-separated test cases (default: all)")
    ap.add_argument("--all-pairs", action="store_true", help="also pairs without pyquic on either side")
    ap.add_argument("--ci", action="store_true", help=f"CI's subset: {','.join(CI_CASES)}; compared with the "
                                                      "committed results")
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="runs at once")
    ap.add_argument("--results", default="", help="results directory (default: a new one under /tmp)")
    ap.add_argument("--baseline", default="", help="results.json whose passes must still pass "
                                                   f"(--ci: {COMMITTED / 'results.json'})")
    ap.add_argument("--keep", action="store_true", help="keep every run's artefacts, not only failures'")
    ap.add_argument("--seed", type=int, default=1, help="file contents and names")
    ap.add_argument("--rejudge", metavar="RESULTS_DIR", help="judge the kept failed runs of a results directory "
                    "again with the current checks (their captures are kept), and rewrite its results")
    args = ap.parse_args(argv)
    if args.rejudge:
        return rejudge(Path(args.rejudge))

    servers = _names(args.servers, list(ENDPOINTS), "servers")
    clients = _names(args.clients, list(ENDPOINTS), "clients")
    cases = _names(args.cases or (",".join(CI_CASES) if args.ci else ""), [c.name for c in CASES], "cases")
    pairs = [(s, c) for s in servers for c in clients if args.all_pairs or "pyquic" in (s, c)]
    if not pairs:
        raise SystemExit("no pair to run (pyquic must be on one side unless --all-pairs)")
    results_dir = Path(args.results) if args.results else Path(f"/tmp/interop-{time.strftime('%Y%m%d-%H%M%S')}")
    baseline = Path(args.baseline) if args.baseline else (COMMITTED / "results.json" if args.ci else None)
    runs = [(BY_NAME[case], s, c) for case in cases for s, c in pairs]
    print(f"{len(runs)} runs: {len(pairs)} pairs x {len(cases)} cases, {args.jobs} at once; results in "
          f"{results_dir}", flush=True)

    live = LiveTable(servers, clients)
    results: list[Result] = []

    def one(i: int) -> Result:
        case, server, client = runs[i]
        directory = results_dir / "runs" / f"{server}_{client}_{case.name}"
        try:
            result = run_test(case, server, client, directory, seed=args.seed + i, keep=args.keep,
                              prefix=f"iq{os.getpid() % 1000}x{i}")
        except Exception as exc:  # a broken run is a failed cell with its reason, not a crashed matrix
            result = Result(server, client, case.name, FAILED, f"runner error: {type(exc).__name__}: {exc}")
        result.directory = str(directory.relative_to(results_dir))
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for result in pool.map(one, range(len(runs))):
            results.append(result)
            live.add(result)
    modes = sorted({r.mode for r in results if r.mode})
    mode = ", ".join(modes) or "not started"
    if "loopback-relay" in modes:
        print("NOTE: network namespaces were not available: a UDP relay on loopback stood in for the "
              "simulated network", flush=True)
    write_results(results_dir, results, servers, clients, mode)
    print(f"results: {results_dir / 'results.md'}, results.json, results.html", flush=True)
    if baseline is not None:
        worse = regressions(results, baseline)
        for line in worse:
            print(f"REGRESSION: {line}", flush=True)
        return 1 if worse else 0
    return 1 if any(r.result == FAILED for r in results) else 0


def rejudge(results_dir: Path) -> int:
    """Failed runs whose endpoints both finished (the verdict came from the
    evidence) are judged again on their kept captures and files."""
    saved = json.loads((results_dir / "results.json").read_text())
    results = [Result(**r) for r in saved["results"]]
    for r in results:
        run_dir = results_dir / r.directory
        if r.result != FAILED or not (run_dir / "net" / "sim_server_side.pcap").exists() or r.reason.startswith(
                ("client ", "server ", "runner error")):
            continue
        verdict = judge(BY_NAME[r.case], run_dir)  # the digests the run recorded (files.json)
        print(f"{r.case}, {r.client} -> {r.server}: {r.result} ({r.reason}) -> {verdict.result} ({verdict.reason})")
        r.result, r.reason, r.value = verdict.result, f"{verdict.reason} (judged again)".strip(), verdict.value
    write_results(results_dir, results, saved["servers"], saved["clients"], saved["mode"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
