# The private Samba of examples/smb_quic/samba.py, with real programs: Debian's
# smbd, smbclient and testparm, and smbprotocol's smbclient API, all straight
# over TCP (no QUIC here). The share lists, a 2 MB file goes up and comes back
# byte for byte, a wrong password is refused, smbprotocol reads a file, every
# path in the smb.conf is private, `python -m examples.smb_quic.samba` serves
# until SIGTERM, a taken port is a clear error, and stop() leaves no process,
# port or directory behind. A missing smbd or smbclient fails; nothing skips.
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import smbclient
from smbprotocol.exceptions import SMBOSError

from examples.smb_quic.samba import PrivateSamba

ROOT = Path(__file__).resolve().parent.parent
HELLO = b"hello from the private samba\n"
INNER = bytes(range(256)) * 64


@pytest.fixture(scope="module")
def samba():
    with PrivateSamba(files={"hello.txt": HELLO, "sub/inner.bin": INNER}) as server:
        yield server


def live_processes_in_group(group: int) -> list[int]:
    """Processes in process group ``group`` that still run (zombies, which
    only wait for init to reap them, are not counted)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(b")") + 2:].split()[:3]
        if int(pgrp) == group and state != b"Z":
            pids.append(int(entry))
    return pids


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_samba_and_smbclient_are_installed():
    for program in ("smbd", "smbclient", "smbpasswd", "pdbedit", "testparm"):
        assert subprocess.run(["which", program], capture_output=True).returncode == 0, f"{program} is missing"


def test_smbclient_lists_the_share_over_tcp(samba):
    assert samba.host == "127.0.0.1" and samba.unc == f"//127.0.0.1/{samba.share}"
    done = samba.run_smbclient("ls", "ls sub\\*")
    assert done.returncode == 0, done.stdout + done.stderr
    names = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert {"hello.txt", "sub", "inner.bin"} <= names, done.stdout
    assert (samba.share_dir / "hello.txt").read_bytes() == HELLO


def test_put_and_get_2_mb_byte_for_byte(samba, tmp_path):
    data = os.urandom(2 * 1024 * 1024)
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    source.write_bytes(data)
    done = samba.run_smbclient(f'put "{source}" random.bin', f'get random.bin "{back}"')
    assert done.returncode == 0, done.stdout + done.stderr
    assert (samba.share_dir / "random.bin").read_bytes() == data
    assert back.read_bytes() == data


def test_a_wrong_password_is_refused(samba):
    done = samba.run_smbclient("ls", password="not-the-password")
    assert done.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in done.stdout + done.stderr


def test_smbprotocol_reads_a_file_over_tcp(samba):
    # Nothing special was needed: smbprotocol's defaults (require_signing=True,
    # encryption only if the server demands it) meet Samba's defaults ("server
    # signing" and "server smb encrypt" left alone). The session is SMB 3.1.1,
    # signed, not encrypted; encrypt=False below only says so. What does NOT
    # work is require_signing=False without encryption: for SMB 3.1.1 Samba
    # refuses an unsigned, unencrypted tree connect with STATUS_ACCESS_DENIED
    # ("reject request to share ... without encryption or signing").
    cache: dict = {}
    try:
        smbclient.register_session(samba.host, username=samba.user, password=samba.password, port=samba.port,
                                   require_signing=True, encrypt=False, connection_cache=cache)
        with smbclient.open_file(rf"\\{samba.host}\{samba.share}\hello.txt", mode="rb", port=samba.port,
                                 connection_cache=cache) as f:
            assert f.read() == HELLO
        with smbclient.open_file(rf"\\{samba.host}\{samba.share}\sub\inner.bin", mode="rb", port=samba.port,
                                 connection_cache=cache) as f:
            assert f.read() == INNER
        (connection,) = cache.values()
        assert connection.dialect == 0x0311
    finally:
        smbclient.reset_connection_cache(connection_cache=cache)

    cache = {}
    try:
        smbclient.register_session(samba.host, username=samba.user, password=samba.password, port=samba.port,
                                   require_signing=False, encrypt=False, connection_cache=cache)
        with pytest.raises(SMBOSError, match="ACCESS_DENIED"):
            smbclient.open_file(rf"\\{samba.host}\{samba.share}\hello.txt", mode="rb", port=samba.port,
                                connection_cache=cache)
    finally:
        smbclient.reset_connection_cache(connection_cache=cache)


def test_every_path_in_the_smb_conf_is_private(samba):
    done = subprocess.run(["testparm", "-s", "-v", str(samba.conf)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    settings = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep:
            settings.setdefault(key, value)
    work = str(samba.workdir)
    for key in ("private dir", "lock directory", "state directory", "cache directory", "pid directory",
                "ncalrpc dir", "log file", "smb passwd file", "winbindd socket directory", "path"):
        assert settings[key].startswith(work + "/"), (key, settings[key])
    assert settings["passdb backend"] == f"tdbsam:{work}/private/passdb.tdb"
    assert settings["smb ports"] == str(samba.port)
    assert settings["interfaces"] == "127.0.0.1" and settings["bind interfaces only"] == "Yes"
    assert settings["unix password sync"] == "No"
    assert samba.log_file.parent == samba.workdir / "log" and "smbd version" in samba.log_file.read_text()
    listed = subprocess.run(["pdbedit", f"--configfile={samba.conf}", "-L"], capture_output=True, text=True)
    assert [line.split(":")[0] for line in listed.stdout.splitlines()] == [samba.user]


def test_stop_leaves_no_process_port_or_directory():
    server = PrivateSamba(files={"a.txt": b"a"})
    server.start()
    pid, port, workdir = server.process.pid, server.port, server.workdir
    # A connection still open, so that smbd has forked a child for it.
    client = socket.create_connection((server.host, port))
    try:
        done = server.run_smbclient("ls")
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(live_processes_in_group(pid)) >= 2  # smbd and its children
        started = time.monotonic()
        server.stop()
        stopped = time.monotonic() - started
    finally:
        client.close()
    assert not Path(f"/proc/{pid}").exists()  # smbd itself, reaped
    assert live_processes_in_group(pid) == []
    assert not workdir.exists()
    assert not accepts(port)
    assert stopped < 3.0
    server.stop()  # twice is fine


def test_a_given_workdir_is_kept_and_the_server_restarts(tmp_path):
    with PrivateSamba(workdir=str(tmp_path / "samba"), files={"a.txt": b"first"}) as server:
        first_pid = server.process.pid
    assert (tmp_path / "samba" / "share" / "a.txt").read_bytes() == b"first"
    assert live_processes_in_group(first_pid) == []
    with PrivateSamba(workdir=str(tmp_path / "samba"), password="another one") as server:
        done = server.run_smbclient("get a.txt -")  # the passdb is rewritten with the new password
        assert done.returncode == 0 and "first" in done.stdout, done.stdout + done.stderr


def test_a_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = PrivateSamba(workdir=str(tmp_path / "samba"), port=port)
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()
        assert server.process is None


def test_the_command_line_serves_until_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "examples.smb_quic.samba", "--dir", str(tmp_path / "cli")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = {}
        while "password" not in printed:
            line = proc.stdout.readline()
            assert line, f"exited early: {proc.wait(10)} {proc.stderr.read()}"
            key, _, value = line.rstrip("\n").partition(" ")
            printed.setdefault(key, value)
        assert printed["host"] == "127.0.0.1" and printed["share"] == "share"
        port = int(printed["port"])
        server = PrivateSamba(workdir=str(tmp_path / "cli"), port=port, user=printed["user"],
                              password=printed["password"])  # for its smbclient_cmd only; never started
        done = subprocess.run(server.smbclient_cmd("ls"), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        smbd_pid = int((tmp_path / "cli" / "pid" / "smbd.pid").read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert live_processes_in_group(smbd_pid) == []
    assert not accepts(port)
