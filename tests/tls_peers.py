# Helpers for tests against real TLS peers over loopback TCP: openssl
# s_client / s_server as subprocesses with their output collected, our
# TLSSocket servers in threads, a corrupting TCP proxy, and raw sockets.
# Every wait has a timeout; every process and thread is cleaned up.
from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

TIMEOUT = 10.0


class OpenSSL:
    """openssl s_server or s_client with stdin open and stdout collected."""

    def __init__(self, args: list[str], cwd: Path | None = None) -> None:
        self.args = ["openssl", *args]
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, bufsize=0
        )
        self._out = bytearray()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            chunk = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(4096)
            with self._cond:
                if not chunk:
                    self._cond.notify_all()
                    return
                self._out += chunk
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return self._out.decode("latin-1")

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self._cond:
            while True:
                match = regex.search(self._out.decode("latin-1"))
                if match:
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"{pattern!r} not seen from {' '.join(self.args)}:\n{self._out.decode('latin-1')}")
                self._cond.wait(min(left, 0.2))

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)
        self.close_stdin()
        self._reader.join(3)

    def __enter__(self) -> OpenSSL:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def s_server(files: dict, *extra: str, cert: str = "server") -> tuple[OpenSSL, int]:
    server = OpenSSL(["s_server", "-accept", "0", "-cert", str(files[f"{cert}_cert"]),
                      "-cert_chain", str(files["intermediate"]), "-key", str(files[f"{cert}_key"]), *extra])
    port = int(server.wait_for(r"ACCEPT \S*:(\d+)").group(1))
    return server, port


def s_client(files: dict, port: int, *extra: str) -> OpenSSL:
    return OpenSSL(["s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(files["ca"]),
                    "-servername", "localhost", *extra])


class ThreadServer:
    """Accepts `count` connections on 127.0.0.1 and runs handler(sock) for
    each in this thread; exceptions are kept for the test to inspect."""

    def __init__(self, handler, count: int = 1, timeout: float = TIMEOUT) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(timeout)
        self.port = self.listener.getsockname()[1]
        self.address = ("127.0.0.1", self.port)
        self.handler = handler
        self.count = count
        self.timeout = timeout
        self.errors: list[BaseException] = []
        self.results: list = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for _ in range(self.count):
                sock, _ = self.listener.accept()
                sock.settimeout(self.timeout)
                try:
                    self.results.append(self.handler(sock))
                except BaseException as exc:  # kept for the test
                    self.errors.append(exc)
                finally:
                    sock.close()
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.listener.close()

    def join(self, timeout: float = TIMEOUT) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "server thread hung"

    def __enter__(self) -> ThreadServer:
        return self

    def __exit__(self, *exc) -> None:
        self.join()


class CorruptingProxy:
    """TCP proxy that, once armed, flips one bit in the next protected record
    (outer type application_data) travelling in `direction` ("to_server" or
    "to_client"); everything else passes unchanged."""

    def __init__(self, upstream: tuple, direction: str, timeout: float = TIMEOUT) -> None:
        self.upstream = upstream
        self.direction = direction
        self.timeout = timeout
        self.armed = threading.Event()
        self.corrupted = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(timeout)
        self.address = self.listener.getsockname()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pipe(self, src: socket.socket, dst: socket.socket, corrupt: bool) -> None:
        buf = bytearray()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not corrupt:
                    dst.sendall(data)
                    continue
                buf += data
                while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
                    end = 5 + int.from_bytes(buf[3:5], "big")
                    record = bytearray(buf[:end])
                    del buf[:end]
                    if record[0] == 23 and self.armed.is_set() and not self.corrupted.is_set():
                        record[-1] ^= 0x01
                        self.corrupted.set()
                    dst.sendall(record)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _run(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(self.upstream, timeout=self.timeout)
        client.settimeout(self.timeout)
        a = threading.Thread(target=self._pipe, args=(client, server, self.direction == "to_server"), daemon=True)
        b = threading.Thread(target=self._pipe, args=(server, client, self.direction == "to_client"), daemon=True)
        a.start()
        b.start()
        a.join(self.timeout)
        b.join(self.timeout)
        client.close()
        server.close()
        self.listener.close()


def read_all(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Everything a raw socket receives until EOF (or the timeout)."""
    sock.settimeout(timeout)
    out = bytearray()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    except (socket.timeout, ConnectionResetError):
        pass
    return bytes(out)


def alert_record(description: int, level: int = 2) -> bytes:
    return bytes((21, 3, 3, 0, 2, level, description))
