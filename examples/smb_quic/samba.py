# A private Samba file server for the examples, the tests and the benchmark.
# It runs Debian's smbd with an smb.conf of its own, in a work directory.
# Every path Samba writes is inside that directory: state, locks, cache, the
# passdb, the pid file, sockets and logs. There is one writable share and one
# user with a password. smbd listens on one TCP port of one address, loopback
# unless told otherwise.
# No system service, system config or system account is touched. The SMB user
# is the current Unix user, because Samba maps SMB users onto Unix accounts.
# That user is added to the private passdb only.
# This module owns the work directory (when it made it) and smbd's session:
# smbd, its children, and anything else run with this smb.conf. stop() ends
# them all. smbd also ends by itself when the process that started it dies.
#
#   with PrivateSamba(files={"a.txt": b"hi"}) as samba:
#       samba.run_smbclient("ls")
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
from typing import Optional, Sequence

__all__ = ["PrivateSamba", "main"]

START_TIMEOUT = 20.0  # seconds for smbd to accept TCP connections
STOP_TIMEOUT = 5.0  # seconds for smbd to end after SIGTERM, before SIGKILL
SMBCLIENT_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(what: str, value: str) -> str:
    # smb.conf has one setting a line, and smbpasswd reads one password a line.
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"{what} must be one line: {value!r}")
    return value


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _ours(group: int, conf: Path) -> list[int]:
    """Live processes of this server: those in smbd's process group, and any
    whose command line names our smb.conf (helpers that left the group)."""
    needle = str(conf).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            state, _ppid, pgrp = stat[stat.rindex(b")") + 2:].split()[:3]
            if state == b"Z":  # dead, only waiting to be reaped
                continue
            if int(pgrp) != group:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if not any(arg == needle or arg.endswith(b"=" + needle) for arg in argv):
                    continue
        except (OSError, ValueError):
            continue
        pids.append(int(entry))
    return pids


def _listens(pid: int, host: str, port: int) -> Optional[bool]:
    """Whether process ``pid`` holds a socket listening on ``host``:``port``
    (None: /proc cannot tell). A port picked free can be taken by another
    program before smbd binds it; then smbd exits, and our connection test
    alone would have reached the other program."""
    local = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"  # /proc's byte order
    try:
        with open(f"/proc/{pid}/net/tcp") as f:  # the table of pid's network namespace
            inodes = {fields[9] for fields in (line.split() for line in f.readlines()[1:])
                      if fields[1] == local and fields[3] == "0A"}  # 0A: LISTEN
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


class PrivateSamba:
    """smbd on ``host``:``port`` serving ``share`` (``share_dir``) to
    ``user``/``password``. A context manager; or call start() and stop()."""

    def __init__(self, workdir: Optional[str] = None, port: int = 0, share: str = "share",
                 user: Optional[str] = None, password: str = "pyquic-smb-pass",
                 files: Optional[dict[str, bytes]] = None,
                 extra_conf: Optional[dict[str, str]] = None, host: str = "127.0.0.1") -> None:
        if not share or any(c in share for c in "[]/\\\n\r"):
            raise ValueError(f"bad share name: {share!r}")
        self._own_dir = workdir is None
        self.workdir = Path(workdir).absolute() if workdir else Path(tempfile.mkdtemp(prefix="pyquic-samba-"))
        socket.inet_aton(host)  # an IPv4 address of this host (the benchmark's shaped link uses one)
        self.host = host
        self._auto_port = port == 0
        self.port = port or _free_port()
        self.share = share
        self.user = _one_line("user", user or getpass.getuser())
        self.password = _one_line("password", password)
        self.files = dict(files or {})
        self.extra_conf = {_one_line("extra_conf key", k): _one_line("extra_conf value", str(v))
                           for k, v in (extra_conf or {}).items()}
        self.process: Optional[subprocess.Popen] = None
        self._set_paths()

    def _set_paths(self) -> None:
        self.share_dir = self.workdir / "share"
        self.conf = self.workdir / "smb.conf"
        self.log_dir = self.workdir / "log"
        self.log_file = self.log_dir / "log.smbd"
        self.stdout_file = self.log_dir / "smbd.stdout"

    @property
    def unc(self) -> str:
        return f"//{self.host}/{self.share}"

    def __repr__(self) -> str:
        state = "running" if self.process is not None else "stopped"
        return f"<PrivateSamba {self.unc} port {self.port} user {self.user} {state}>"

    # -- start ---------------------------------------------------------------------------------------

    def _write_conf(self) -> None:
        w = self.workdir
        for sub in ("share", "private", "lock", "state", "cache", "pid", "ncalrpc", "winbindd", "log"):
            (w / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(w / "private", 0o700)
        settings = {
            "server role": "standalone server",
            "workgroup": "PYQUIC",
            "netbios name": "PYQUICSMB",
            # One TCP address only (loopback unless told otherwise); no NetBIOS (nmbd is never started either).
            "smb ports": str(self.port),
            "interfaces": self.host,
            "bind interfaces only": "yes",
            "disable netbios": "yes",
            "server min protocol": "SMB2_10",
            "server max protocol": "SMB3_11",
            # "server signing" and "server smb encrypt" stay at their defaults:
            # offered, not required.
            "private dir": str(w / "private"),
            "lock directory": str(w / "lock"),
            "state directory": str(w / "state"),
            "cache directory": str(w / "cache"),
            "pid directory": str(w / "pid"),
            "ncalrpc dir": str(w / "ncalrpc"),
            "winbindd socket directory": str(w / "winbindd"),
            "passdb backend": f"tdbsam:{w / 'private' / 'passdb.tdb'}",
            "smb passwd file": str(w / "private" / "smbpasswd"),
            "usershare path": "",
            # smbpasswd must not change the Unix account's password.
            "unix password sync": "no",
            "pam password change": "no",
            # A wrong password is refused, never mapped to a guest.
            "map to guest": "never",
            # smbd would start samba-dcerpcd for named pipes (smbclient -L).
            # That helper leaves smbd's session and logs to /var/log/samba.
            # Shares work without it.
            "rpc start on demand helpers": "no",
            "load printers": "no",
            "printing": "bsd",
            "printcap name": "/dev/null",
            "disable spoolss": "yes",
            "log file": str(self.log_file),
            "log level": "1",
            "max log size": "10000",
            **self.extra_conf,
        }
        lines = ["[global]"] + [f"    {k} = {v}" for k, v in settings.items()]
        lines += [
            f"[{self.share}]",
            f"    path = {self.share_dir}",
            "    read only = no",
            "    browseable = yes",
            "    guest ok = no",
            f"    valid users = {self.user}",
            f"    force user = {self.user}",
            "    create mask = 0644",
            "    directory mask = 0755",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        root = self.share_dir.resolve()
        for name, data in self.files.items():
            path = (root / name).resolve()
            if root not in path.parents:
                raise ValueError(f"file name outside the share: {name!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def _add_user(self) -> None:
        secret = f"{self.password}\n{self.password}\n"
        added = subprocess.run(["smbpasswd", "-c", str(self.conf), "-a", "-s", self.user], input=secret,
                               capture_output=True, text=True, timeout=30)
        if added.returncode != 0:
            raise RuntimeError(f"smbpasswd -a {self.user} failed ({added.returncode}): "
                               f"{added.stdout}{added.stderr}")
        # pdbedit's -c is --account-control; its smb.conf option is -s.
        listed = subprocess.run(["pdbedit", f"--configfile={self.conf}", "-L"],
                                capture_output=True, text=True, timeout=30)
        if listed.returncode != 0 or not any(line.split(":")[0] == self.user
                                             for line in listed.stdout.splitlines()):
            raise RuntimeError(f"{self.user} is not in the private passdb after smbpasswd: "
                               f"{listed.stdout}{listed.stderr}")

    def start(self) -> "PrivateSamba":
        if self.process is not None:
            raise RuntimeError("this PrivateSamba is already running")
        if self._own_dir and not self.workdir.exists():  # started again after stop()
            self.workdir = Path(tempfile.mkdtemp(prefix="pyquic-samba-"))
            self._set_paths()
        try:
            for attempt in range(3):
                if attempt and self._auto_port:
                    self.port = _free_port()
                self._write_conf()
                if attempt == 0:
                    self._add_user()
                if self._launch():
                    return self
            raise RuntimeError("smbd found no free port in 3 tries")
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> bool:
        """Run smbd and wait for its port. False: the chosen port was taken."""
        self.log_file.unlink(missing_ok=True)
        with open(self.stdout_file, "wb") as out:
            self.process = subprocess.Popen(
                # --log-basename: smbd opens a log before it reads smb.conf;
                # without it, that is /var/log/samba/log.smbd.
                ["smbd", "--foreground", "--no-process-group", f"--configfile={self.conf}",
                 f"--log-basename={self.log_dir}"],
                # smbd ends by itself at EOF on a pipe on its stdin. We hold the
                # other end, so smbd ends when we do, even if we are killed.
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                # A session of its own: smbd and its per-client children form
                # one process group that stop() signals. It also keeps smbd's
                # signals to its own group away from ours.
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                logs = _tail(self.log_file) + _tail(self.stdout_file)
                if self._auto_port and "Address already in use" in logs:
                    self._end_processes()
                    return False
                self._fail(f"smbd exited with status {self.process.returncode}")
            if _listens(self.process.pid, self.host, self.port) is not False:
                try:
                    with socket.create_connection((self.host, self.port), timeout=1):
                        return True
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self._fail(f"smbd did not accept connections on {self.host}:{self.port} "
                           f"within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def _fail(self, what: str) -> None:
        details = []
        for path in (self.log_file, self.stdout_file):
            tail = _tail(path)
            if tail:
                details.append(f"the end of {path.name}:\n{tail}")
        raise RuntimeError("; ".join([what] + details) if details else f"{what} (no log written)")

    # -- stop ----------------------------------------------------------------------------------------

    def _end_processes(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        group = process.pid  # smbd leads its own session; its pid is the group's id
        if process.stdin is not None:
            try:
                process.stdin.close()  # EOF: smbd begins its own shutdown
            except OSError:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children that outlived smbd (it does not wait for them), and helpers
        # that left its group.
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            left = _ours(group, self.conf)
            if not left:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of the private Samba did not end: {left}")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        if process.returncode is None:
            process.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """End smbd and everything it started; remove the work directory if
        this object made it. Safe to call more than once."""
        try:
            self._end_processes()
        finally:
            if self._own_dir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "PrivateSamba":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- smbclient, non-interactively ----------------------------------------------------------------

    def smbclient_cmd(self, *commands: str, port: Optional[int] = None, user: Optional[str] = None,
                      password: Optional[str] = None, extra: Sequence[str] = ()) -> list[str]:
        """argv for Debian's smbclient running ``commands`` (joined by ';')
        on this share, at ``port`` (default: smbd's own)."""
        return [
            "smbclient", f"//{self.host}/{self.share}", "-p", str(port or self.port),
            "-U", f"{user or self.user}%{self.password if password is None else password}",
            # smbclient reads an smb.conf and keeps caches under its dirs: ours,
            # not /etc/samba/smb.conf and /var/cache/samba.
            f"--configfile={self.conf}",
            "--option=client min protocol=SMB2_10", "--option=client max protocol=SMB3_11",
            "-c", "; ".join(commands), *extra,
        ]

    def run_smbclient(self, *commands: str, port: Optional[int] = None, user: Optional[str] = None,
                      password: Optional[str] = None, extra: Sequence[str] = (),
                      timeout: float = SMBCLIENT_TIMEOUT) -> subprocess.CompletedProcess:
        """Run smbclient_cmd(...) to the end; stdout and stderr as text."""
        argv = self.smbclient_cmd(*commands, port=port, user=user, password=password, extra=extra)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.smb_quic.samba",
                                     description="Run a private Samba (smbd) on a loopback port until Ctrl-C.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed at the end)")
    parser.add_argument("--share", default="share")
    parser.add_argument("--password", default="pyquic-smb-pass")
    args = parser.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with PrivateSamba(workdir=args.dir, port=args.port, share=args.share, password=args.password) as samba:
        print(f"host {samba.host}\nport {samba.port}\nshare {samba.share}\nuser {samba.user}\n"
              f"password {samba.password}\nunc {samba.unc}\nshare directory {samba.share_dir}\n"
              f"smbclient {samba.unc} -p {samba.port} -U {samba.user}%{samba.password}", flush=True)
        try:
            while not stop and samba.process is not None and samba.process.poll() is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        if samba.process is not None and samba.process.poll() is not None:
            print(f"smbd ended by itself with status {samba.process.returncode}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
