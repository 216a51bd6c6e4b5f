# HTTP/3 benchmark over loopback: pyquic against ngtcp2, aioquic and qh3 in
# the same run, each stack's client fetching from its own stack's server,
# every server and client in its own process, server and client pinned to
# different cores when there are two.  Owns the pyquic peer processes (this
# file run with --peer server|client: serve_h3 / connect_h3, printing the same
# JSON lines as tests/peers/h3_peer.py, which runs aioquic and qh3; ngtcp2 is
# gtlsserver/gtlsclient; both through tests/h3_peers.py), the measurements
# and the table:
#   - bulk: one GET of --size MB (1 MB = 10^6 bytes; default 50) on one
#     connection.  A round counts only if the downloaded file has the served
#     file's size and SHA-256 (gtlsclient exits 0 even when it fails).
#     Goodput in MB/s: the Python clients' own clock from sending the request
#     to the last body byte (process start and handshake excluded).
#     gtlsclient prints no timings: its figure is its process's wall time
#     minus the median wall time of fetching a 1-byte file with it (process
#     start, handshake, close: ~50-60 ms here), measured in the same run.
#     Server CPU ms per MB: utime + stime of the server process from
#     /proc/PID/stat, read before the client starts and after it exits (the
#     server's handshake is included: ~ms against ~seconds; /proc ticks are
#     10 ms).
#   - small files: --requests GETs of a 1 KB file on one connection with
#     --concurrency (100) in flight (pyquic, aioquic, qh3): requests/s from
#     the client's clock, server CPU microseconds per request (the same /proc
#     delta).  qh3 2.1.0 fails at 100: its server grants 100 bidirectional
#     streams and raises the limit only as they close, and its client raises
#     ValueError ("stream limit exceeded") instead of waiting for MAX_STREAMS,
#     and gets no credit after that (found by trying: it sustains 50, not 64).
#     So when --concurrency is above QH3_MAX_CONCURRENCY, a second pass runs
#     pyquic, aioquic and qh3 at that level, and the ratio to qh3 is taken there.
#   - interleaved rounds: every server is started and warmed by one small
#     fetch first; then every round runs each peer once, the starting peer
#     rotating; medians over the rounds that succeeded.  A failed round is
#     reported (count and first error), never skipped silently; the exit
#     status is 1 when some stack had no successful round at all.
#
#   python bench/bench_h3.py [--quick] [--rounds N] [--size MB] [--requests N]
#       [--concurrency N] [--impl pyquic,ngtcp2,aioquic,qh3] [--json out.json] [-v]
#   from bench.bench_h3 import run; results = run(quick=True)
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_quic import CLIENT_CPU, SERVER_CPU  # noqa: E402
from tests.peers.peer_io import emit, measure_rps, until_stdin_closes  # noqa: E402
from tests.quic_peers import PYTHON, START_TIMEOUT, pki_files  # noqa: E402

IMPLS = ("pyquic", "ngtcp2", "aioquic", "qh3")
RPS_IMPLS = ("pyquic", "aioquic", "qh3")  # gtlsclient has no request-rate mode
# The client's receive windows, the same for every stack (bench_quic's):
# aioquic's 1 MB default would otherwise cap it; ngtcp2's client defaults to
# 15M/6M, close to these.
MAX_DATA, MAX_STREAM_DATA = 16 << 20, 8 << 20
SMALL_SIZE = 1024
CONCURRENCY = 100
QH3_MAX_CONCURRENCY = 50  # what qh3 2.1.0's client sustains against its own server (see above)
BULK_FILE, SMALL_FILE, TINY_FILE = "bulk.bin", "small.bin", "tiny.bin"  # gtlsserver treats "/<number>" specially
FILE_CHUNK = 1 << 20  # the pyquic server reads and sends the file 1 MiB at a time, as h3_peer.py does
BASELINE_FETCHES = 3


def _timeout(megabytes: float = 0.0, requests: int = 0) -> float:
    """A client's time limit: generous (>= 1 MB/s, >= 100 requests/s), yet a
    hung peer cannot stall a --quick run past its budget."""
    return 30.0 + megabytes + requests / 100


# ---------------------------------------------------------------------------------------------
# The pyquic peer processes: python bench/bench_h3.py --peer server|client [h3_peer.py's options]


def _pyquic_config(args, is_client: bool):
    from pyquic.config import QuicConfiguration

    kwargs = dict(is_client=is_client, alpn_protocols=["h3"], idle_timeout=args.idle_timeout)
    if args.max_data:
        kwargs["max_data"] = args.max_data
    if args.max_stream_data:
        kwargs["max_stream_data"] = args.max_stream_data
    config = QuicConfiguration(**kwargs)
    if is_client:
        config.server_name = args.server_name
        config.load_verify_locations(cafile=args.ca)
    else:
        config.load_cert_chain(args.cert, args.key)
    return config


async def _pyquic_server(args) -> None:
    """Serves --root as tests/peers/h3_peer.py does (GET/HEAD, 404, one
    "request" line per finished response), with send backpressure."""
    from pyquic.asyncio.h3 import H3Request, serve_h3
    from tests.peers.h3_peer import resolve

    root = Path(args.root).resolve()

    async def handler(request: H3Request) -> None:
        status, sent = 200, 0
        target = resolve(root, request.path) if request.method in ("GET", "HEAD") else None
        if request.method not in ("GET", "HEAD"):
            status = 405
            await request.send_response(405, end_stream=True)
        elif target is None:
            status = 404
            await request.respond(404, [("content-type", "text/plain")], b"not found\n")
            sent = len(b"not found\n")
        else:
            size = target.stat().st_size
            headers = [("content-type", "application/octet-stream"), ("content-length", str(size)),
                       ("cache-control", "no-store")]
            if request.method == "HEAD" or size == 0:
                await request.send_response(200, headers, end_stream=True)
            elif size <= FILE_CHUNK:
                await request.respond(200, headers, target.read_bytes())
                sent = size
            else:
                await request.send_response(200, headers)
                with open(target, "rb") as f:
                    while sent < size:
                        block = f.read(min(FILE_CHUNK, size - sent))
                        if not block:
                            raise RuntimeError(f"{target} shrank while being sent")
                        sent += len(block)
                        await request.send_data(block, end_stream=sent >= size)
        emit({"event": "request", "stream_id": request.stream_id, "method": request.method,
               "path": request.path, "status": status, "bytes": sent})

    server = await serve_h3(args.host or "127.0.0.1", args.port, configuration=_pyquic_config(args, False),
                            handler=handler)
    emit({"event": "listening", "port": server.local_address[1], "pid": os.getpid()})
    # Until stdin closes: the harness owns our lifetime.
    await until_stdin_closes()  # the harness owns our lifetime
    server.close()


async def _pyquic_get(client, url: str, outdir: Optional[Path]) -> dict:
    t0 = time.perf_counter()
    digest, n, status = hashlib.sha256(), 0, 0
    out = outdir / (os.path.basename(url.split("?", 1)[0]) or "index.html") if outdir is not None else None
    sink = open(out, "wb") if out is not None else None
    try:
        async with client.stream("GET", url) as response:
            status = response.status
            async for chunk in response.iter_bytes():
                digest.update(chunk)
                n += len(chunk)
                if sink is not None:
                    sink.write(chunk)
    finally:
        if sink is not None:
            sink.close()
    res = {"event": "response", "url": url, "method": "GET", "status": status, "bytes": n,
           "sha256": digest.hexdigest(), "seconds": time.perf_counter() - t0, "ok": 200 <= status < 300}
    if out is not None:
        res["file"] = str(out)
    return res


async def _pyquic_rps(client, url: str, total: int, inflight: int, timeout: float) -> dict:
    """`total` GETs of one URL with `inflight` at a time (h3_peer.py's rps mode)."""

    async def get_one() -> int:
        response = await client.get(url)
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        return len(response.content or b"")

    return await measure_rps(get_one, url, total, inflight, timeout)


async def _pyquic_client(args) -> bool:
    from urllib.parse import urlsplit

    from pyquic.asyncio.h3 import connect_h3

    u = urlsplit(args.urls[0])
    outdir = Path(args.out) if args.out else None
    try:
        async with connect_h3(args.host or u.hostname, args.port or u.port or 443,
                              configuration=_pyquic_config(args, True)) as client:
            if args.mode == "rps":
                res = await _pyquic_rps(client, args.urls[0], args.requests, args.concurrency, args.timeout)
                emit(res)
                return res["errors"] == 0
            ok = True
            for url in args.urls:
                try:
                    res = await asyncio.wait_for(_pyquic_get(client, url, outdir), args.timeout)
                except Exception as exc:
                    res = {"event": "response", "url": url, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
                ok &= res["ok"]
                emit(res)
            return ok
    except Exception as exc:
        emit({"event": "connect_failed", "error": f"{type(exc).__name__}: {exc}"})
        return False


def peer_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_h3.py --peer")
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--host", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--root", default=".")
    ap.add_argument("--ca")
    ap.add_argument("--server-name", default="localhost")
    ap.add_argument("--mode", default="get", choices=["get", "rps"])
    ap.add_argument("--out", default="")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    ap.add_argument("--max-data", type=int, default=0)
    ap.add_argument("--max-stream-data", type=int, default=0)
    ap.add_argument("urls", nargs="*")
    args = ap.parse_intermixed_args(argv)
    if args.role == "server":
        asyncio.run(_pyquic_server(args))
        return 0
    ok = asyncio.run(_pyquic_client(args))
    emit({"event": "done", "ok": ok})
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# Starting servers and running clients, pyquic here, the others through tests/h3_peers.py


def _pyquic_process(args: list[str], name: str, cpu: Optional[int]):
    from tests.h3_peers import CommandProcess

    return CommandProcess([PYTHON, str(Path(__file__).resolve()), "--peer", *args], name=name, cpu=cpu)


def start_server(impl: str, root: Path, files: dict):
    """A server of `impl` serving root (pinned to SERVER_CPU); .port, .pid, .cpu_seconds(), .stop()."""
    from tests.h3_peers import H3Server, start_h3_server

    if impl != "pyquic":
        return start_h3_server(impl, root, files, cpu=SERVER_CPU)
    proc = _pyquic_process(["server", "--root", str(root), "--cert", str(files["server_chain"]),
                            "--key", str(files["server_key"])], "pyquic h3 server", SERVER_CPU)
    try:
        line = proc.wait_for(lambda l: l.get("event") == "listening", START_TIMEOUT, "the server to listen")
    except BaseException:
        proc.stop()
        raise
    return H3Server(impl, proc, "127.0.0.1", int(line["port"]), root)


def _client_lines(proc, timeout: float, event: str) -> list[dict]:
    """Wait for a pyquic client process to finish; its `event` lines (or its connect error)."""
    try:
        proc.wait_for(lambda l: l.get("event") == "done", timeout + 30, "the client to finish")
        proc.wait_exit(10)
    finally:
        proc.stop()
    found = proc.events(event)
    if not found:
        failed = proc.events("connect_failed")
        raise AssertionError(failed[0]["error"] if failed else f"the client reported nothing\n{proc.describe()}")
    return found


def fetch(impl: str, url: str, outdir: Path, files: dict, timeout: float) -> dict:
    """One GET by impl's client on a fresh connection: {"ok", "bytes", "sha256", "seconds", "error"?}."""
    from tests.h3_peers import run_h3_client

    windows = ["--max-data", str(MAX_DATA), "--max-stream-data", str(MAX_STREAM_DATA)]
    if impl == "pyquic":
        proc = _pyquic_process(["client", "--ca", str(files["ca"]), "--host", "127.0.0.1", "--out", str(outdir),
                                "--timeout", str(timeout), *windows, url], "pyquic h3 client", CLIENT_CPU)
        return _client_lines(proc, timeout, "response")[0]
    if impl == "ngtcp2":
        windows = [f"--max-data={MAX_DATA}", f"--max-stream-data-bidi-local={MAX_STREAM_DATA}"]
    (res,) = run_h3_client(impl, url, outdir, files, quiet=True, timeout=timeout, cpu=CLIENT_CPU,
                           extra_args=windows)
    return res


def request_rate(impl: str, url: str, files: dict, requests: int, concurrency: int, timeout: float) -> dict:
    """`requests` GETs with `concurrency` in flight on one connection: {"rps", "errors", "bytes", ...}."""
    from tests.h3_peers import run_h3_rps

    if impl != "pyquic":
        return run_h3_rps(impl, url, files, requests=requests, concurrency=concurrency, timeout=timeout,
                          cpu=CLIENT_CPU)
    proc = _pyquic_process(["client", "--mode", "rps", "--ca", str(files["ca"]), "--host", "127.0.0.1",
                            "--requests", str(requests), "--concurrency", str(concurrency),
                            "--timeout", str(timeout), url], "pyquic h3 rps client", CLIENT_CPU)
    res = dict(_client_lines(proc, timeout, "rps")[0])
    res.pop("event", None)
    return res


# ---------------------------------------------------------------------------------------------
# The rounds


class Servers:
    """One server per stack for the whole run; one that died is restarted
    before its next round (the round it died in is already counted failed)."""

    def __init__(self, root: Path, files: dict) -> None:
        self.root, self.files = root, files
        self.running: dict = {}
        self.restarts: dict[str, int] = {}

    def get(self, impl: str):
        server = self.running.get(impl)
        if server is not None and server.process.proc.poll() is None:
            return server
        if server is not None:
            server.stop()
            self.restarts[impl] = self.restarts.get(impl, 0) + 1
        server = self.running[impl] = start_server(impl, self.root, self.files)
        return server

    def stop(self) -> None:
        for server in self.running.values():
            server.stop()


def _error(exc: BaseException) -> str:
    """One line: the exception's first, plus the peer's last stderr line if it quoted one (the cause)."""
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0][:200]
    if "--- stderr ---" in text:
        err = [line for line in text.split("--- stderr ---", 1)[1].splitlines() if line.strip()]
        if err:
            first += f" [{err[-1].strip()[:200]}]"
    return first


def _measured(servers: Servers, impl: str, work) -> tuple[dict, float]:
    """Run work(server) between two readings of the server's CPU time."""
    server = servers.get(impl)
    cpu0 = server.cpu_seconds()
    res = work(server)
    try:
        cpu = server.cpu_seconds() - cpu0
    except OSError:
        raise AssertionError("the server died during the round") from None
    return res, cpu


def bulk_round(servers: Servers, impl: str, files: dict, outdir: Path, size: int, digest: str,
               baseline: float) -> dict:
    timeout = _timeout(megabytes=size / 1e6)
    for f in outdir.iterdir():
        f.unlink()
    try:
        res, cpu = _measured(servers, impl, lambda s: fetch(impl, s.url("/" + BULK_FILE), outdir, files, timeout))
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    if not res.get("ok"):
        return {"ok": False, "error": str(res.get("error") or f"status {res.get('status')}")[:300]}
    if res.get("bytes") != size or res.get("sha256") != digest:
        return {"ok": False, "error": f"wrong body: {res.get('bytes')} bytes, sha256 {res.get('sha256')}"}
    seconds = res["seconds"] - (baseline if impl == "ngtcp2" else 0.0)
    if seconds <= 0:
        return {"ok": False, "error": f"transfer time {res['seconds']:.3f}s not above the fixed cost {baseline:.3f}s"}
    mb = size / 1e6
    return {"ok": True, "MBps": mb / seconds, "seconds": seconds, "server_cpu_ms_per_MB": 1000 * cpu / mb}


def rps_round(servers: Servers, impl: str, files: dict, requests: int, concurrency: int) -> dict:
    timeout = _timeout(requests=requests)
    try:
        res, cpu = _measured(servers, impl, lambda s: request_rate(
            impl, s.url("/" + SMALL_FILE), files, requests, concurrency, timeout))
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    if res.get("errors") or res.get("bytes") != SMALL_SIZE:
        return {"ok": False, "error": f"{res.get('errors')} errors, body {res.get('bytes')} bytes: "
                                      f"{res.get('error', '')}"[:300]}
    return {"ok": True, "rps": res["rps"], "seconds": res["seconds"],
            "server_cpu_us_per_request": 1e6 * cpu / requests}


def ngtcp2_fixed_cost(servers: Servers, files: dict, outdir: Path) -> float:
    """Median wall time of gtlsclient fetching a 1-byte file: what its bulk
    figure (the process's wall time) contains besides the transfer."""
    walls = []
    for _ in range(BASELINE_FETCHES):
        res = fetch("ngtcp2", servers.get("ngtcp2").url("/" + TINY_FILE), outdir, files, _timeout())
        if not res.get("ok") or res.get("bytes") != 1:
            raise AssertionError(f"gtlsclient could not fetch a 1-byte file: {res}")
        walls.append(res["seconds"])
    return statistics.median(walls)


def _rotated(impls: tuple, r: int) -> tuple:
    k = r % len(impls) if impls else 0
    return impls[k:] + impls[:k]


def _summary(rounds: list[dict], keys: tuple) -> dict:
    good = [r for r in rounds if r["ok"]]
    out: dict = {"rounds": rounds, "ok_rounds": len(good), "failed_rounds": len(rounds) - len(good)}
    for key in keys:
        out[key] = statistics.median(r[key] for r in good) if good else None
    errors = [r["error"] for r in rounds if not r["ok"]]
    if errors:
        out["first_error"] = errors[0]
    return out


def run(quick: bool = False, impls: tuple = IMPLS, size: int = 0, rounds: int = 0, requests: int = 0,
        concurrency: int = CONCURRENCY, log=None) -> dict:
    """Run the benchmark; returns {"bulk": {impl: ...}, "rps": [{"concurrency": n, "stacks": {impl: ...}}, ...],
    "params": ...} (medians)."""
    size = size or (10_000_000 if quick else 50_000_000)
    rounds = rounds or (2 if quick else 5)
    requests = requests or (1000 if quick else 5000)
    rps_impls = tuple(i for i in impls if i in RPS_IMPLS)
    bulk = {impl: [] for impl in impls}
    # Small-file passes: (in flight, stacks); the second at qh3's limit.
    passes = [(concurrency, rps_impls)]
    if "qh3" in rps_impls and concurrency > QH3_MAX_CONCURRENCY:
        passes.append((QH3_MAX_CONCURRENCY, rps_impls))
    rps: list[dict] = [{impl: [] for impl in stacks} for _, stacks in passes]
    params = {"size": size, "rounds": rounds, "requests": requests, "concurrency": concurrency,
              "small_size": SMALL_SIZE, "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU}
    with tempfile.TemporaryDirectory(prefix="bench_h3-") as tmp:
        tmp_path = Path(tmp)
        files = pki_files(tmp_path)
        root = tmp_path / "htdocs"
        root.mkdir()
        data = os.urandom(size)
        digest = hashlib.sha256(data).hexdigest()
        (root / BULK_FILE).write_bytes(data)
        del data
        (root / SMALL_FILE).write_bytes(os.urandom(SMALL_SIZE))
        (root / TINY_FILE).write_bytes(b"x")
        outdir = tmp_path / "downloads"
        outdir.mkdir()
        servers = Servers(root, files)
        try:
            # Every server started and warmed by one small fetch before any
            # round: a first connection's one-off costs (lazy imports, cold
            # caches) stay out of the figures.  A failure here is not
            # reported: the rounds that follow meet it and report it.
            for impl in impls:
                try:
                    fetch(impl, servers.get(impl).url("/" + TINY_FILE), outdir, files, _timeout())
                except Exception:
                    pass
            baseline = 0.0
            if "ngtcp2" in impls:
                try:
                    baseline = ngtcp2_fixed_cost(servers, files, outdir)
                except Exception as exc:  # every ngtcp2 round then fails with this reason
                    params["ngtcp2_error"] = _error(exc)
            params["ngtcp2_fixed_cost_s"] = baseline
            for r in range(rounds):
                for impl in _rotated(impls, r):
                    if impl == "ngtcp2" and "ngtcp2_error" in params:
                        res = {"ok": False, "error": params["ngtcp2_error"]}
                    else:
                        res = bulk_round(servers, impl, files, outdir, size, digest, baseline)
                    bulk[impl].append(res)
                    if log:
                        log(f"bulk round {r + 1}/{rounds} {impl}: " + (
                            f"{res['MBps']:.1f} MB/s, server {res['server_cpu_ms_per_MB']:.1f} ms/MB"
                            if res["ok"] else f"FAILED: {res['error']}"))
            for (inflight, stacks), found in zip(passes, rps):
                for r in range(rounds):
                    for impl in _rotated(stacks, r):
                        res = rps_round(servers, impl, files, requests, inflight)
                        found[impl].append(res)
                        if log:
                            log(f"small-file round {r + 1}/{rounds} {impl}, {inflight} in flight: " + (
                                f"{res['rps']:.0f} req/s, server {res['server_cpu_us_per_request']:.0f} us/req"
                                if res["ok"] else f"FAILED: {res['error']}"))
        finally:
            servers.stop()
        params["server_restarts"] = servers.restarts
    return {"params": params,
            "bulk": {impl: _summary(rs, ("MBps", "server_cpu_ms_per_MB")) for impl, rs in bulk.items()},
            "rps": [{"concurrency": inflight,
                     "stacks": {impl: _summary(rs, ("rps", "server_cpu_us_per_request")) for impl, rs in found.items()}}
                    for (inflight, _), found in zip(passes, rps)]}


# ---------------------------------------------------------------------------------------------
# The table


def _fmt(value: Optional[float], spec: str) -> str:
    return "failed" if value is None else format(value, spec)


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"x{a / b:.2f}"


def _ratio_lines(section: dict, others: tuple, metrics: tuple) -> list[str]:
    """One "pyquic / peer: metric xR, ..." line per peer present."""
    if "pyquic" not in section:
        return []
    ours = section["pyquic"]
    return [f"pyquic / {other}: " + ", ".join(f"{label} {_ratio(ours[key], section[other][key])}"
                                              for label, key in metrics)
            for other in others if other in section]


def _grid(rows: list[tuple]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in rows]


def _rows(stacks: dict, key: str, cpu_key: str, spec: str, headings: tuple) -> list[str]:
    """One table row per stack: the median, the server CPU, the good rounds and each round."""
    rows = [("",) + headings]
    for impl, r in stacks.items():
        per_round = " ".join(format(x[key], spec) if x["ok"] else "FAIL" for x in r["rounds"])
        rows.append((impl, _fmt(r[key], spec), _fmt(r[cpu_key], ".1f" if spec == ".1f" else ".0f"),
                     f"{r['ok_rounds']}/{len(r['rounds'])}", per_round))
    return _grid(rows)


def table(results: dict) -> str:
    p = results["params"]
    lines = [f"HTTP/3 GET of {p['size'] / 1e6:g} MB on one connection, each stack's client against its own "
             f"server; medians of {p['rounds']} interleaved rounds (1 MB = 10^6 bytes)"]
    lines += _rows(results["bulk"], "MBps", "server_cpu_ms_per_MB", ".1f",
                   ("MB/s", "server ms/MB", "ok rounds", "MB/s per round"))
    if "ngtcp2" in results["bulk"]:
        lines.append(f"(ngtcp2: gtlsclient's wall time minus its fixed cost of "
                     f"{1000 * p.get('ngtcp2_fixed_cost_s', 0.0):.0f} ms, the median 1-byte fetch)")
    lines += _ratio_lines(results["bulk"], ("ngtcp2", "qh3", "aioquic"), (("goodput", "MBps"),
                          ("server CPU per MB", "server_cpu_ms_per_MB")))
    for section in results["rps"]:
        lines += ["", f"{p['requests']} GETs of {p['small_size']} bytes on one connection, {section['concurrency']} "
                      f"streams in flight; medians of {p['rounds']} interleaved rounds"]
        lines += _rows(section["stacks"], "rps", "server_cpu_us_per_request", ".0f",
                       ("requests/s", "server us/req", "ok rounds", "req/s per round"))
        lines += _ratio_lines(section["stacks"], ("qh3", "aioquic"), (("requests/s", "rps"),
                              ("server CPU per request", "server_cpu_us_per_request")))
    sections = [("bulk", results["bulk"])] + [(f"rps at {x['concurrency']}", x["stacks"]) for x in results["rps"]]
    failures = [(kind, impl, r["failed_rounds"], r["first_error"])
                for kind, section in sections for impl, r in section.items() if r["failed_rounds"]]
    if failures:
        lines += ["", "FAILED ROUNDS:"]
        lines += [f"  {kind} {impl}: {n} failed; first error: {err}" for kind, impl, n, err in failures]
    if p.get("server_restarts"):
        lines.append(f"servers restarted after dying: {p['server_restarts']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description="HTTP/3 benchmark: pyquic vs ngtcp2, aioquic and qh3 over loopback")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 10 MB, 1,000 small requests, 2 rounds")
    ap.add_argument("--impl", default=",".join(IMPLS), help="comma-separated stacks")
    ap.add_argument("--size", type=float, default=0, help="MB per bulk transfer (default 50, --quick 10)")
    ap.add_argument("--rounds", type=int, default=0, help="rounds (default 5, --quick 2)")
    ap.add_argument("--requests", type=int, default=0, help="small-file requests per round (5000, --quick 1000)")
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY, help="small-file requests in flight (100)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each round as it finishes")
    args = ap.parse_args()
    impls = tuple(i for i in args.impl.split(",") if i)
    unknown = set(impls) - set(IMPLS)
    if unknown:
        ap.error(f"unknown stacks {sorted(unknown)}; known: {', '.join(IMPLS)}")
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.verbose else None
    results = run(args.quick, impls, int(args.size * 1e6), args.rounds, args.requests, args.concurrency, log=log)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    # A stack with no good round at all fails the run, except qh3 above the
    # concurrency it is known not to sustain (its second pass counts).
    stacks = list(results["bulk"].values()) + [
        r for x in results["rps"] for impl, r in x["stacks"].items()
        if not (impl == "qh3" and x["concurrency"] > QH3_MAX_CONCURRENCY)]
    return 1 if any(r["ok_rounds"] == 0 for r in stacks) else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        sys.exit(peer_main(sys.argv[2:]))
    sys.exit(main())
