# Real QUIC peers for interop tests and the benchmark: aioquic, qh3 (and
# pyquic itself) running tests/peers/raw_peer.py in SEPARATE PROCESSES over
# loopback UDP.  Owns starting them, reading their JSON-line output in a
# thread, waiting for what they print (always with a timeout), reading their
# CPU time from /proc, and stopping them.  A peer that cannot start is an
# AssertionError with its stderr -- never a skip: a missing peer must fail.
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
PEER_SCRIPT = ROOT / "tests" / "peers" / "raw_peer.py"
PYTHON = sys.executable
START_TIMEOUT = 20.0
ALPN = "pyquic-test"
IMPLS = ("aioquic", "qh3", "pyquic")


def pki_files(directory: Path, key_type: str = "p256") -> dict[str, Path]:
    """The test PKI as PEM files: server chain + key, and the CA."""
    from tests.pki import make_test_pki

    return make_test_pki(key_type).write_pem(directory)


def pin(pid: int, cpu: int) -> None:
    """Keep a process on one core (the benchmark puts server and client on
    different cores of this 2-core machine); a no-op where that fails."""
    try:
        if (os.cpu_count() or 1) > cpu:
            os.sched_setaffinity(pid, {cpu})
    except OSError:
        pass


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (fields 14 and 15 of /proc/pid/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class PeerProcess:
    """One raw_peer.py process; its stdout JSON lines are collected as they come."""

    def __init__(self, args: list[str], env: Optional[dict] = None, name: str = "peer",
                 cpu: Optional[int] = None, script: Path = PEER_SCRIPT, prefix: Sequence[str] = ()) -> None:
        self.name = name
        # `prefix` runs it through another command (e.g. `ip netns exec NS`, which execs it)
        self.args = [*prefix, PYTHON, str(script), *args]
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=ROOT, env=full_env,
        )
        if cpu is not None:
            pin(self.proc.pid, cpu)
        self.lines: list[dict] = []
        self.raw: list[str] = []
        self.stderr = bytearray()
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:  # type: ignore[union-attr]
            text = raw.decode(errors="replace").strip()
            with self._cond:
                self.raw.append(text)
                try:
                    self.lines.append(json.loads(text))
                except ValueError:
                    pass
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:  # type: ignore[union-attr]
            with self._cond:
                self.stderr += raw

    def describe(self) -> str:
        with self._cond:
            out = "\n".join(self.raw[-40:])
            err = self.stderr[-4000:].decode(errors="replace")
        return f"{self.name}: {' '.join(self.args[1:])}\nexit={self.proc.poll()}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def mark(self) -> int:
        """A position in the output: wait_for(..., since=mark) ignores older lines."""
        with self._cond:
            return len(self.lines)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float, what: str = "", since: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        seen = since
        with self._cond:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}\n{self.describe()}")
                if self.proc.poll() is not None and not self._threads[0].is_alive():
                    raise AssertionError(f"{self.name} exited while waiting for {what or predicate}\n{self.describe()}")
                self._cond.wait(min(left, 0.1))

    def events(self, name: str) -> list[dict]:
        with self._cond:
            return [line for line in self.lines if line.get("event") == name]

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.name} did not finish within {timeout}s\n{self.describe()}") from None

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        """Close stdin (a server's cue to exit), then terminate, then kill."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(3)
        for t in self._threads:
            t.join(2)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass


def _common_args(idle_timeout: float, max_data: int, max_stream_data: int, cipher_suites) -> list[str]:
    args = ["--idle-timeout", str(idle_timeout)]
    if max_data:
        args += ["--max-data", str(max_data)]
    if max_stream_data:
        args += ["--max-stream-data", str(max_stream_data)]
    if cipher_suites:
        args += ["--cipher-suites", ",".join(hex(int(s)) for s in cipher_suites)]
    return args


class PeerServer(PeerProcess):
    port: int


def start_server(
    impl: str,
    files: dict[str, Path],
    *,
    host: str = "127.0.0.1",
    idle_timeout: float = 30.0,
    max_data: int = 0,
    max_stream_data: int = 0,
    cipher_suites=None,
    env: Optional[dict] = None,
    cpu: Optional[int] = None,
    extra_args: tuple = (),
    prefix: Sequence[str] = (),
) -> PeerServer:
    """A raw_peer server; returns once it printed its port (or fails loudly)."""
    args = ["--impl", impl, "--role", "server", "--host", host, "--port", "0",
            "--cert", str(files["server_chain"]), "--key", str(files["server_key"]),
            *_common_args(idle_timeout, max_data, max_stream_data, cipher_suites), *extra_args]
    server = PeerProcess(args, env=env, name=f"{impl} server", cpu=cpu, prefix=prefix)
    server.__class__ = PeerServer
    try:
        line = server.wait_for(lambda l: l.get("event") == "listening", START_TIMEOUT, "the server to listen")
    except BaseException:
        server.stop()
        raise
    server.port = int(line["port"])  # type: ignore[attr-defined]
    return server  # type: ignore[return-value]


def start_client(
    impl: str,
    port: int,
    files: dict[str, Path],
    ops: list[dict],
    *,
    host: str = "127.0.0.1",
    idle_timeout: float = 30.0,
    max_data: int = 0,
    max_stream_data: int = 0,
    cipher_suites=None,
    op_timeout: float = 60.0,
    env: Optional[dict] = None,
    extra_args: tuple = (),
    cpu: Optional[int] = None,
    prefix: Sequence[str] = (),
) -> PeerProcess:
    args = ["--impl", impl, "--role", "client", "--host", host, "--port", str(port),
            "--ca", str(files["ca"]), "--ops", json.dumps(ops), "--timeout", str(op_timeout),
            *_common_args(idle_timeout, max_data, max_stream_data, cipher_suites), *extra_args]
    return PeerProcess(args, env=env, name=f"{impl} client", cpu=cpu, prefix=prefix)


def run_client(impl: str, port: int, files: dict[str, Path], ops: list[dict], *, timeout: float = 90.0,
               **kwargs) -> list[dict]:
    """Run a raw_peer client to completion; returns its per-operation results.
    Raises AssertionError (with its output) if it fails to finish."""
    client = start_client(impl, port, files, ops, op_timeout=kwargs.pop("op_timeout", timeout), **kwargs)
    try:
        client.wait_for(lambda l: l.get("event") == "done", timeout, "the client to finish")
        client.wait_exit(10)
        return [line for line in client.lines if "op" in line]
    finally:
        client.stop()


def assert_all_ok(results: list[dict], peer: Optional[PeerProcess] = None) -> None:
    bad = [r for r in results if not r.get("ok")]
    if bad:
        extra = f"\n{peer.describe()}" if peer is not None else ""
        raise AssertionError(f"failed operations: {bad}{extra}")
