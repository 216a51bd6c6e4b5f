# SMB over QUIC benchmark (examples/smb_quic): a --size MB get (default 100)
# from a private Samba by Debian's smbclient, over QUIC (smbclient -> TCP
# bridge -> QUIC -> gateway -> smbd, bridge and gateway each in a process of
# their own) against smbclient straight over TCP to the same smbd, in the
# same run, as a ratio (the target: at least 0.7).  Two more rows
# say where the time goes: smbclient through a plain Python TCP relay (the
# same relay loop as the gateway, no QUIC) and smbprotocol natively over
# QUIC through the gateway.  Rates are smbclient's own figure for the get
# ("average ... KiloBytes/sec": the transfer, not the process start or the
# session setup); smbprotocol's is its client's clock around the read.  CPU
# per MB of the gateway and the bridge processes from /proc (utime+stime).
# Rounds are interleaved, the starting row rotating; medians; every file is
# checked by SHA-256 and a round that fails is reported, never dropped.
#
# On loopback the link is a memory copy, so the ratio measures the QUIC
# stack's speed against the kernel's TCP.  --link RATE (root; tc's syntax,
# e.g. 1gbit) puts the clients across a real link instead: a network
# namespace joined to this one by a veth pair shaped by tbf at RATE in both
# directions.  smbd, the gateway and the TCP relay stay here; the bridge,
# smbclient and smbprotocol run in the namespace; only QUIC (or, for the TCP
# rows, SMB's TCP) crosses the link, as in a real deployment.
#
#   python bench/bench_smb_quic.py [--size MB] [--rounds N] [--link 1gbit] [--json out.json]
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.smb_quic.samba import PrivateSamba  # noqa: E402
from tests.quic_peers import proc_cpu_seconds  # noqa: E402

RATE = re.compile(r"average ([0-9.]+) KiloBytes/sec")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_line(proc: subprocess.Popen, needle: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"{proc.args!r} did not say {needle!r}")


class ShapedLink:
    """A network namespace for the clients, joined to this one by a veth pair
    with a tbf qdisc at ``rate`` on each end.  ``wrap`` runs a command in it."""

    SERVER, CLIENT = "10.213.0.1", "10.213.0.2"

    def __init__(self, rate: str) -> None:
        self.rate = rate
        tag = f"{os.getpid() % 100000}"
        self.ns, self.here, self.there = f"pqsmb{tag}", f"pqsmbs{tag}", f"pqsmbc{tag}"
        self.wrap = ["ip", "netns", "exec", self.ns]

    @staticmethod
    def _ip(*argv: str) -> None:
        out = subprocess.run(list(argv), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")

    def __enter__(self) -> "ShapedLink":
        if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
            raise SystemExit("--link needs root and iproute2 (ip, tc)")
        try:
            self._ip("ip", "netns", "add", self.ns)
            self._ip("ip", "link", "add", self.here, "type", "veth", "peer", "name", self.there, "netns", self.ns)
            self._ip("ip", "addr", "add", f"{self.SERVER}/30", "dev", self.here)
            self._ip("ip", "link", "set", self.here, "up")
            self._ip(*self.wrap, "ip", "addr", "add", f"{self.CLIENT}/30", "dev", self.there)
            self._ip(*self.wrap, "ip", "link", "set", self.there, "up")
            self._ip(*self.wrap, "ip", "link", "set", "lo", "up")
            for dev, prefix in ((self.here, []), (self.there, self.wrap)):
                # A burst of 512 KB holds a 64 KB GSO super-frame whole; 50 ms
                # of queue at most, like a router's buffer.
                self._ip(*prefix, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", self.rate,
                         "burst", "512kb", "latency", "50ms")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        pids = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)  # takes the veth pair with it
        subprocess.run(["ip", "link", "del", self.here], capture_output=True)


def _start(args: list[str], needle: str, wrap: list[str] = []) -> subprocess.Popen:
    proc = subprocess.Popen([*wrap, sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _wait_line(proc, needle)
    return proc


def smbclient_get(samba: PrivateSamba, port: int, name: str, dest: Path, wrap: list[str] = [],
                  address: str = "") -> float:
    """smbclient's own average rate for the get, in MB/s (10^6 bytes)."""
    dest.unlink(missing_ok=True)
    extra = ["-I", address] if address else []  # where to connect, whatever the share's name says
    out = subprocess.run([*wrap, *samba.smbclient_cmd(f"get {name} {dest}", port=port, extra=extra)],
                         capture_output=True, text=True, timeout=600)
    match = RATE.search(out.stdout + out.stderr)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"smbclient get via port {port} failed: {out.stdout[-300:]}{out.stderr[-300:]}")
    return float(match.group(1)) * 1024 / 1e6


def native_get(quic_host: str, quic_port: int, cafile: str, samba_info: dict, name: str,
               wrap: list[str] = []) -> tuple[float, str]:
    """smbprotocol over QUIC, in a process of its own: (MB/s, sha256)."""
    code = f"""
import hashlib, json, sys, time
sys.path.insert(0, {str(ROOT)!r})
import smbclient
from examples.smb_quic.bridge import client_configuration
from examples.smb_quic.client import register_session
s = {samba_info!r}
cache = {{}}
register_session(s["host"], s["user"], s["password"], port={quic_port}, address=({quic_host!r}, {quic_port}),
                 configuration=client_configuration("localhost", cafile={cafile!r}), connection_cache=cache)
t = time.perf_counter()
with smbclient.open_file(rf"\\\\{{s['host']}}\\{{s['share']}}\\{name}", mode="rb", port={quic_port}, connection_cache=cache) as f:
    data = f.read()
seconds = time.perf_counter() - t
smbclient.reset_connection_cache(connection_cache=cache)
print(json.dumps({{"mbps": len(data) / seconds / 1e6, "sha256": hashlib.sha256(data).hexdigest()}}))
"""
    out = subprocess.run([*wrap, sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"smbprotocol over QUIC failed: {out.stderr[-500:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["mbps"], result["sha256"]


TCP_RELAY = """
import asyncio, sys
sys.path.insert(0, {root!r})
from examples.smb_quic.gateway import relay
async def handle(r, w):
    sr, sw = await asyncio.open_connection({smb_host!r}, {smb_port})
    try:
        await relay((r, w), (sr, sw), [0, 0])
    except (ConnectionError, OSError):
        pass
    w.close(); sw.close()
async def main():
    server = await asyncio.start_server(handle, {host!r}, {port})
    print("tcp relay ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def run(size_mb: int = 100, rounds: int = 3, verbose: bool = False, link: str = "") -> dict:
    from contextlib import ExitStack

    results: dict = {"size_mb": size_mb, "rounds": rounds, "link": link or "loopback", "rows": {}, "failures": []}
    with ExitStack() as stack:
        shaped = stack.enter_context(ShapedLink(link)) if link else None
        return _run(stack, results, size_mb, rounds, verbose, shaped)


def _run(stack, results: dict, size_mb: int, rounds: int, verbose: bool, shaped: "ShapedLink | None") -> dict:
    from pyquic.tools.server import self_signed_files

    wrap = shaped.wrap if shaped else []
    server_ip = shaped.SERVER if shaped else "127.0.0.1"
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-smb-quic-"))
    samba = stack.enter_context(PrivateSamba(host=server_ip))
    work = Path(tmp)
    cert, key = self_signed_files(work)
    payload = os.urandom(size_mb * 1000 * 1000)
    (samba.share_dir / "big.bin").write_bytes(payload)
    want = hashlib.sha256(payload).hexdigest()
    del payload
    quic_port, bridge_port, relay_port = _free_port(), _free_port(), _free_port()
    gateway = _start(["examples.smb_quic.gateway", "--host", server_ip, "--port", str(quic_port),
                      "--smb", f"{samba.host}:{samba.port}", "--cert", str(cert), "--key", str(key),
                      "--quiet"], "smb-quic gateway on")
    bridge = _start(["examples.smb_quic.bridge", "--server", f"{server_ip}:{quic_port}", "--server-name",
                     "localhost", "--cafile", str(cert), "--listen", f"127.0.0.1:{bridge_port}", "--quiet"],
                    "smb-quic bridge on", wrap)
    relay = subprocess.Popen([sys.executable, "-c", TCP_RELAY.format(root=str(ROOT), smb_host=samba.host,
                                                                      smb_port=samba.port, host=server_ip,
                                                                      port=relay_port)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_line(relay, "tcp relay ready")
    info = dict(host=samba.host, user=samba.user, password=samba.password, share=samba.share)
    dest = work / "back.bin"

    def quic() -> float:  # to the bridge, on the client's own loopback
        return smbclient_get(samba, bridge_port, "big.bin", dest, wrap, "127.0.0.1")

    def tcp() -> float:
        return smbclient_get(samba, samba.port, "big.bin", dest, wrap)

    def tcp_relay() -> float:
        return smbclient_get(samba, relay_port, "big.bin", dest, wrap)

    rows = {"smbclient over QUIC (bridge, gateway)": quic, "smbclient over TCP": tcp,
            "smbclient over a Python TCP relay": tcp_relay}
    rates: dict[str, list[float]] = {name: [] for name in [*rows, "smbprotocol natively over QUIC"]}
    cpu: dict[str, list[float]] = {"gateway": [], "bridge": []}
    try:
        names = list(rows)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                before = (proc_cpu_seconds(gateway.pid), proc_cpu_seconds(bridge.pid))
                try:
                    rates[name].append(rows[name]())
                    if hashlib.sha256(dest.read_bytes()).hexdigest() != want:
                        raise RuntimeError("sha256 mismatch")
                except Exception as exc:  # counted and reported, never dropped
                    results["failures"].append(f"round {r} {name}: {exc}")
                    continue
                if name.endswith("(bridge, gateway)"):
                    cpu["gateway"].append((proc_cpu_seconds(gateway.pid) - before[0]) * 1000 / size_mb)
                    cpu["bridge"].append((proc_cpu_seconds(bridge.pid) - before[1]) * 1000 / size_mb)
                if verbose:
                    print(f"round {r}: {name}: {rates[name][-1]:.1f} MB/s", flush=True)
            try:
                mbps, digest = native_get(server_ip, quic_port, str(cert), info, "big.bin", wrap)
                if digest != want:
                    raise RuntimeError("sha256 mismatch")
                rates["smbprotocol natively over QUIC"].append(mbps)
            except Exception as exc:
                results["failures"].append(f"round {r} smbprotocol: {exc}")
    finally:
        for proc in (gateway, bridge, relay):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    for name, values in rates.items():
        results["rows"][name] = {"median_mbps": statistics.median(values) if values else None, "runs": values}
    results["cpu_ms_per_mb"] = {k: statistics.median(v) if v else None for k, v in cpu.items()}
    quic_rate = results["rows"]["smbclient over QUIC (bridge, gateway)"]["median_mbps"]
    tcp_rate = results["rows"]["smbclient over TCP"]["median_mbps"]
    results["ratio_quic_to_tcp"] = quic_rate / tcp_rate if quic_rate and tcp_rate else None
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100, help="MB (10^6 bytes) to get; default 100")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--link", default="", help="shape a link to the clients at this rate (tc syntax, e.g. "
                        "1gbit; needs root); default: loopback")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    results = run(args.size, args.rounds, args.verbose, args.link)
    print(f"SMB get of {args.size} MB from a private Samba over {results['link']}, "
          f"median of {args.rounds} interleaved rounds")
    for name, row in results["rows"].items():
        rate = row["median_mbps"]
        print(f"  {name:<42} {'failed' if rate is None else f'{rate:8.1f} MB/s'}")
    cpu = results["cpu_ms_per_mb"]
    if cpu["gateway"] is not None:
        print(f"  CPU per MB over QUIC: gateway {cpu['gateway']:.2f} ms, bridge {cpu['bridge']:.2f} ms")
    ratio = results["ratio_quic_to_tcp"]
    print(f"  ratio QUIC / TCP: {'n/a' if ratio is None else f'{ratio:.2f}'} (target: at least 0.7)")
    for failure in results["failures"]:
        print("  FAILED:", failure)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if any(row["median_mbps"] is None for row in results["rows"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
