# A private Samba file server for the example, the tests and the benchmark:
# Debian's smbd started with an smb.conf of its own in a work directory, every
# path Samba writes (state, locks, cache, private passdb, pid, sockets, logs)
# inside that directory, one writable share, one user with a password, smbd
# listening on a loopback TCP port only.  No system service, system config or
# system account is touched: the SMB user is the current Unix user (Samba
# maps SMB users onto Unix accounts), added to the private tdbsam only.
# Owns that directory and the smbd process group; stop() ends both.
#
#   with PrivateSamba(files={"a.txt": b"hi"}) as samba:
#       subprocess.run(samba.smbclient_cmd("ls"))
#   python -m examples.smb_quic.samba [--port N] [--dir D]
from __future__ import annotations

import argparse
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

__all__ = ["PrivateSamba"]

START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateSamba:
    """smbd on 127.0.0.1:``port`` serving ``share`` to ``user``/``password``."""

    def __init__(self, workdir: Optional[str] = None, port: int = 0, share: str = "share",
                 user: Optional[str] = None, password: str = "pyquic-smb-pass",
                 files: Optional[dict[str, bytes]] = None, extra_conf: Optional[dict[str, str]] = None) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pyquic-samba-"))
        self.host = "127.0.0.1"
        self.port = port or _free_port()
        self.share = share
        self.user = user or getpass.getuser()
        self.password = password
        self.files = dict(files or {})
        self.extra_conf = dict(extra_conf or {})
        self.share_dir = self.workdir / "share"
        self.conf = self.workdir / "smb.conf"
        self.log_file = self.workdir / "log" / "smbd.log"
        self.process: Optional[subprocess.Popen] = None

    @property
    def unc(self) -> str:
        return f"//{self.host}/{self.share}"

    def _write_conf(self) -> None:
        w = self.workdir
        for sub in ("share", "private", "lock", "state", "cache", "pid", "ncalrpc", "log"):
            (w / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(w / "private", 0o700)
        settings = {
            "workgroup": "PYQUIC",
            "server role": "standalone server",
            "netbios name": "PYQUICSMB",
            "smb ports": str(self.port),
            "interfaces": "127.0.0.1",
            "bind interfaces only": "yes",
            "disable netbios": "yes",
            "server min protocol": "SMB2_10",
            "server max protocol": "SMB3_11",
            "private dir": str(w / "private"),
            "lock directory": str(w / "lock"),
            "state directory": str(w / "state"),
            "cache directory": str(w / "cache"),
            "pid directory": str(w / "pid"),
            "ncalrpc dir": str(w / "ncalrpc"),
            "passdb backend": f"tdbsam:{w / 'private' / 'passdb.tdb'}",
            "log file": str(self.log_file),
            "log level": "1",
            "max log size": "10000",
            "load printers": "no",
            "printing": "bsd",
            "printcap name": "/dev/null",
            "disable spoolss": "yes",
            "map to guest": "never",
            "usershare path": "",
            "rpc_server:epmapper": "disabled",
            **self.extra_conf,
        }
        lines = ["[global]"] + [f"  {k} = {v}" for k, v in settings.items()]
        lines += [f"[{self.share}]", f"  path = {self.share_dir}", "  read only = no", "  browseable = yes",
                  f"  valid users = {self.user}", f"  force user = {self.user}",
                  "  create mask = 0644", "  directory mask = 0755"]
        self.conf.write_text("\n".join(lines) + "\n")
        for name, data in self.files.items():
            path = self.share_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def start(self) -> "PrivateSamba":
        self._write_conf()
        secret = f"{self.password}\n{self.password}\n"
        added = subprocess.run(["smbpasswd", "-c", str(self.conf), "-a", "-s", self.user], input=secret,
                               capture_output=True, text=True, timeout=30)
        if added.returncode != 0:
            raise RuntimeError(f"smbpasswd -a {self.user} failed: {added.stdout}{added.stderr}")
        self.process = subprocess.Popen(
            ["smbd", "--foreground", "--no-process-group", f"--configfile={self.conf}", "--debuglevel=1"],
            # stdin from /dev/null: smbd ends itself when a pipe on its stdin closes
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self._fail(f"smbd exited with status {self.process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self._fail(f"smbd did not listen on {self.host}:{self.port} within {START_TIMEOUT:.0f} s")
                time.sleep(0.1)

    def _fail(self, what: str) -> None:
        tail = ""
        if self.log_file.exists():
            tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        self.stop()
        raise RuntimeError(f"{what}; the end of {self.log_file}:\n{tail}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            # smbd forks a child per client, all in the session started for it.
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            try:
                os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent
            except ProcessLookupError:
                pass
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "PrivateSamba":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- smbclient, non-interactively --------------------------------------------------------------

    def smbclient_cmd(self, *commands: str, port: Optional[int] = None, user: Optional[str] = None,
                      password: Optional[str] = None, extra: tuple = ()) -> list[str]:
        """argv for Debian's smbclient running ``commands`` (joined by ';')
        against this share, on ``port`` (default: smbd's own)."""
        return ["smbclient", f"//{self.host}/{self.share}", "-p", str(port or self.port),
                "-U", f"{user or self.user}%{self.password if password is None else password}",
                "--option=client min protocol=SMB2_10", "--option=client max protocol=SMB3_11",
                "-c", "; ".join(commands), *extra]

    def run_smbclient(self, *commands: str, timeout: float = 120.0, **kw: object) -> subprocess.CompletedProcess:
        return subprocess.run(self.smbclient_cmd(*commands, **kw), capture_output=True, text=True,  # type: ignore[arg-type]
                              timeout=timeout)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.smb_quic.samba",
                                     description="Start a private Samba (smbd) on a loopback port until Ctrl-C.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed at the end)")
    parser.add_argument("--password", default="pyquic-smb-pass")
    args = parser.parse_args(argv)
    with PrivateSamba(workdir=args.dir, port=args.port, password=args.password) as samba:
        print(f"Samba {samba.unc} on tcp {samba.host}:{samba.port}: user {samba.user}, password "
              f"{samba.password}, share directory {samba.share_dir}", flush=True)
        stop = [False]
        signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
        try:
            while not stop[0]:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
