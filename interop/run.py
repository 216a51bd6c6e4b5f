# One test: a test case between one server and one client, over the
# emulated network.  Owns the run's directory (www, downloads, certs, key
# logs, qlogs, endpoint logs, the sim's captures), starting each endpoint's
# run_endpoint.sh in its namespace with the environment the reference
# runner gives its images, waiting for the server to listen, the time
# limit, stopping both, reading the captures back with the key logs, the
# verdict from the case's check, and what is kept afterwards (everything on
# a failure, a summary on a pass unless asked).
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from .certs import write_certs
from .network import Network, Scenario
from .report import Result
from .testcases import FAILED, PASSED, UNSUPPORTED, Case, Evidence, Verdict, write_files
from .trace import TraceError, merge_keylogs, read_trace

ROOT = Path(__file__).resolve().parent
ENDPOINTS = ("pyquic", "aioquic", "qh3", "ngtcp2")
PORT = 443
SERVER_START_TIMEOUT = 20.0
STOP_GRACE = 5.0
H3_ONLY = {"ngtcp2"}  # Debian's gtlsserver/gtlsclient speak HTTP/3 only
CROSS_TRAFFIC_PORT = 5201
AMPLIFICATION_CHAIN = 9  # certificates in the chain of the amplificationlimit case (as the reference's)


def endpoint_script(name: str) -> Path:
    script = ROOT / "endpoints" / name / "run_endpoint.sh"
    if not script.is_file():
        raise ValueError(f"no endpoint {name!r} (expected {script})")
    return script


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _udp_listening(net: Network, port: int) -> bool:
    argv = ["ss", "-Hlun", f"sport = :{port}"]
    if net.server_ns:
        argv = ["ip", "netns", "exec", net.server_ns] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return bool(out.stdout.strip())


def _stop(proc: Optional[subprocess.Popen]) -> Optional[int]:
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(STOP_GRACE)
    return proc.returncode


def _start_cross_traffic(net: Network, logs: Path, env: dict) -> list[subprocess.Popen]:
    """A TCP bulk flow server -> client through the sim for the whole run."""
    env = dict(env, PYTHONPATH=str(ROOT.parent))
    procs = []
    with open(logs / "cross_recv.log", "wb") as out:
        procs.append(net.run_in(net.client_ns, [sys.executable, "-m", "interop.crosstraffic", "recv",
                                                str(CROSS_TRAFFIC_PORT)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True))
    time.sleep(0.3)
    with open(logs / "cross_send.log", "wb") as out:
        procs.append(net.run_in(net.server_ns, [sys.executable, "-m", "interop.crosstraffic", "send",
                                                net.client_ip4, str(CROSS_TRAFFIC_PORT)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])[-400:]


def run_test(case: Case, server: str, client: str, workdir: Path, *, seed: int = 0, keep: bool = False,
             prefix: str = "iq", log: Callable[[str], None] = lambda _m: None) -> Result:
    """Run one test and judge it; workdir receives the artefacts."""
    start = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    dirs = {name: workdir / name for name in ("www", "downloads", "certs", "logs", "qlog_client", "qlog_server")}
    for d in dirs.values():
        d.mkdir(parents=True)
    rng = random.Random(seed)
    files = write_files(dirs["www"], case.files(rng), seed)
    (workdir / "files.json").write_text(json.dumps(files))
    result = Result(server, client, case.name, FAILED)
    server_proc = client_proc = None
    cross: list[subprocess.Popen] = []
    with Network(scenario=Scenario.parse(case.scenario), workdir=workdir / "net", name_prefix=prefix,
                 seed=seed, port=PORT) as net:
        result.mode = net.mode
        address = net.server_ip6 if case.ipv6 else net.server_ip4
        port, url_port = net.server_port, net.client_port  # url_port: the relay's, in the fallback
        write_certs(dirs["certs"], [net.server_ip4, net.server_ip6],
                    chain_length=AMPLIFICATION_CHAIN if case.name == "amplificationlimit" else 1)
        base = dict(os.environ, PYTHON=sys.executable, WWW=str(dirs["www"]), DOWNLOADS=str(dirs["downloads"]),
                    CERTS=str(dirs["certs"]), PORT=str(port))
        server_env = dict(base, ROLE="server", TESTCASE=case.testcase("server"),
                          SSLKEYLOGFILE=str(workdir / "keys_server.log"), QLOGDIR=str(dirs["qlog_server"]),
                          SERVER=net.server_bind, SERVER_IP4=net.server_ip4, SERVER_IP6=net.server_ip6)
        requests = " ".join(f"https://{_url_host(address)}:{url_port}/{name}" for name in files)
        client_env = dict(base, ROLE="client", TESTCASE=case.testcase("client"), REQUESTS=requests,
                          SSLKEYLOGFILE=str(workdir / "keys_client.log"), QLOGDIR=str(dirs["qlog_client"]))
        if server in H3_ONLY:  # every case is fetched over HTTP/3 from a server that speaks nothing else
            client_env["ALPN"] = "h3"
        server_log = dirs["logs"] / "server.log"
        client_log = dirs["logs"] / "client.log"
        try:
            with open(server_log, "wb") as out:
                server_proc = net.run_in(net.server_ns, ["bash", str(endpoint_script(server))], env=server_env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=str(workdir),
                                         start_new_session=True)
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while not _udp_listening(net, port):
                if server_proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if server_proc.poll() == 127:
                result.result, result.reason = UNSUPPORTED, f"server {server} does not support {case.name}"
                return _finish(result, workdir, keep, start)
            if server_proc.poll() is not None:
                result.reason = f"server exited {server_proc.returncode} before listening: {_tail(server_log)}"
                return _finish(result, workdir, keep, start)
            if not _udp_listening(net, port):
                result.reason = f"server did not listen on UDP {port} within {SERVER_START_TIMEOUT:.0f} s"
                return _finish(result, workdir, keep, start)
            log(f"{case.name}: {client} -> {server} ({net.mode})")
            if case.cross_traffic:
                cross = _start_cross_traffic(net, dirs["logs"], base)
            with open(client_log, "wb") as out:
                client_proc = net.run_in(net.client_ns, ["bash", str(endpoint_script(client))], env=client_env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=str(workdir),
                                         start_new_session=True)
            try:
                code = client_proc.wait(case.timeout)
            except subprocess.TimeoutExpired:
                _stop(client_proc)
                result.reason = f"client did not finish within {case.timeout:.0f} s: {_tail(client_log)}"
                return _finish(result, workdir, keep, start)
            if code == 127:
                result.result, result.reason = UNSUPPORTED, f"client {client} does not support {case.name}"
                return _finish(result, workdir, keep, start)
            if code != 0:
                result.reason = f"client exited {code}: {_tail(client_log)}"
                return _finish(result, workdir, keep, start)
        finally:
            _stop(client_proc)
            _stop(server_proc)
            for proc in cross:
                _stop(proc)
    # The network is down: the sim has written its captures.
    verdict = judge(case, workdir, port, files)
    result.result, result.reason, result.value = verdict.result, verdict.reason, verdict.value
    return _finish(result, workdir, keep, start)


def judge(case: Case, workdir: Path, port: int = PORT, files: Optional[dict] = None) -> Verdict:
    """The case's verdict on a finished run's artefacts (also later, on a
    kept failed run, when a check has been corrected: --rejudge)."""
    if files is None:
        files = json.loads((workdir / "files.json").read_text())
    keylog = _merged_keylog(workdir)
    net = workdir / "net"
    try:
        evidence = Evidence(case, workdir / "www", workdir / "downloads", files,
                            read_trace(net / "sim_client_side.pcap", port, keylog),
                            read_trace(net / "sim_server_side.pcap", port, keylog))
        return case.check(evidence)
    except (TraceError, OSError, KeyError, ValueError) as exc:
        return Verdict(FAILED, f"evidence unreadable: {exc}")


def _merged_keylog(workdir: Path) -> Optional[Path]:
    """keys.log: both endpoints' key logs in one, for tshark (and for whoever
    opens a failed run's capture)."""
    return merge_keylogs([workdir / "keys_client.log", workdir / "keys_server.log"], workdir / "keys.log")


def _finish(result: Result, workdir: Path, keep: bool, start: float) -> Result:
    result.seconds = round(time.monotonic() - start, 2)
    if not (workdir / "keys.log").exists():
        _merged_keylog(workdir)
    if result.result != FAILED and not keep:
        # A pass (or unsupported) keeps its logs and verdict, not the bulk.
        for name in ("www", "downloads", "net", "qlog_client", "qlog_server"):
            shutil.rmtree(workdir / name, ignore_errors=True)
        for pcap in workdir.glob("**/*.pcap*"):
            pcap.unlink(missing_ok=True)
    result.artefacts = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())[:200]
    (workdir / "result.json").write_text(json.dumps(result.to_json(), indent=2))
    return result


__all__ = ["ENDPOINTS", "PASSED", "FAILED", "UNSUPPORTED", "Result", "run_test", "endpoint_script"]
