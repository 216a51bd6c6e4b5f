#!/usr/bin/env python3
# The main job, part one: serve a directory over HTTP/3 and hq-interop with
# `python -m pyquic.server`, then fetch from it with real clients, each in
# its own process -- our `python -m pyquic.client` (h3 and hq-interop),
# aioquic's and qh3's HTTP/3 clients and ngtcp2's gtlsclient -- check every
# file by SHA-256 and print the rates measured now.  Then (part two, unless
# --only-h3) the original demo: examples/quic_demo.py.
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.h3_peers import free_udp_port, probe_quic, run_h3_client  # noqa: E402
from tests.quic_peers import pki_files  # noqa: E402

PYTHON = sys.executable


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def row(who: str, alpn: str, size: int, seconds: float, ok: bool, detail: str = "") -> None:
    rate = f"{size / seconds / 1e6:8.1f} MB/s" if ok and seconds > 0 else "       -    "
    print(f"  {who:<28} {alpn:<11} {size / 1e6:6.1f} MB  {seconds:6.2f} s  {rate}  "
          f"{'OK, SHA-256 matches' if ok else 'FAILED'} {detail}", flush=True)


def fetch_with_pyquic(alpn: str, port: int, files: dict, out: Path, name: str) -> tuple[bool, float]:
    """Our command-line client in its own process: exit status 0 and the time."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [PYTHON, "-m", "pyquic.client", "--quiet", "--cafile", str(files["ca"]), "--output", str(out),
           "--alpn", alpn, f"https://localhost:{port}/{name}", f"https://localhost:{port}/index.html"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr.strip(), file=sys.stderr)
    return proc.returncode == 0, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=20, help="MB in the big file (default 20)")
    parser.add_argument("--only-h3", action="store_true", help="skip part two (examples/quic_demo.py)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pyquic-demo-") as tmp:
        tmp_path = Path(tmp)
        files = pki_files(tmp_path / "pki")
        www = tmp_path / "www"
        www.mkdir()
        (www / "index.html").write_text("<!doctype html><title>pyquic</title><p>served by pyquic over HTTP/3\n")
        big = www / "big.bin"
        big.write_bytes(os.urandom(args.size * 1_000_000))
        want = sha256(big)
        port = free_udp_port()
        server = subprocess.Popen(
            [PYTHON, "-m", "pyquic.server", "--root", str(www), "--host", "127.0.0.1", "--port", str(port),
             "--cert", str(files["server_chain"]), "--key", str(files["server_key"]), "--quiet"],
            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 20
            while not probe_quic("127.0.0.1", port):
                if server.poll() is not None or time.monotonic() > deadline:
                    print(server.stdout.read() if server.stdout else "", file=sys.stderr)
                    print("the pyquic server did not start", file=sys.stderr)
                    return 1
            print(f"== Part one: python -m pyquic.server on 127.0.0.1:{port} (h3 and hq-interop), "
                  f"{args.size} MB file, each client in its own process", flush=True)
            failures = 0
            for alpn in ("h3", "hq-interop"):
                out = tmp_path / f"pyquic-{alpn}"
                ok, seconds = fetch_with_pyquic(alpn, port, files, out, "big.bin")
                ok = ok and (out / "big.bin").exists() and sha256(out / "big.bin") == want
                failures += not ok
                row("pyquic.client", alpn, big.stat().st_size, seconds, ok)
            url = f"https://localhost:{port}/big.bin"
            for impl in ("aioquic", "qh3", "ngtcp2"):
                out = tmp_path / f"{impl}-dl"
                start = time.perf_counter()
                try:
                    (result,) = run_h3_client(impl, [url], out, files, quiet=True, timeout=120)
                    ok = bool(result["ok"]) and result["sha256"] == want
                    seconds = time.perf_counter() - start  # wall clock, as for ours
                except AssertionError as exc:  # the peer could not run: a failure, said as one
                    ok, seconds = False, time.perf_counter() - start
                    print(f"  {impl}: {exc}", file=sys.stderr)
                failures += not ok
                name = {"aioquic": "aioquic HTTP/3 client", "qh3": "qh3 HTTP/3 client",
                        "ngtcp2": "ngtcp2 gtlsclient"}[impl]
                row(name, "h3", big.stat().st_size, seconds, ok)
            print("  (rates include each client's process start-up, handshake and writing the file)")
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    if failures:
        print(f"part one: {failures} fetch(es) FAILED", file=sys.stderr)
        return 1
    if args.only_h3:
        return 0
    print("\n== Part two: examples/quic_demo.py", flush=True)
    return subprocess.call([PYTHON, str(ROOT / "examples" / "quic_demo.py")])


if __name__ == "__main__":
    sys.exit(main())
