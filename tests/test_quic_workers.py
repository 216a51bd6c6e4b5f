# Several worker processes on one UDP port (pyquic/asyncio/reuseport.py):
# SO_REUSEPORT and a classic BPF program that steers each datagram by the
# five low bits of its Destination Connection ID's first octet, which every
# ID a worker issues sets to the worker's index.  The kernel's choice is
# checked against the rule datagram by datagram, then `python -m
# pyquic.server --workers 2` serves our client (rotating connection IDs and
# migrating), ngtcp2's (migrating) and aioquic's: every connection completes,
# both workers get some, and no worker sees a datagram of a connection it
# does not hold (no stateless reset, no drop).
from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from pyquic.asyncio.h3 import connect_h3
from pyquic.asyncio.reuseport import WorkerCids, reuseport_sockets, steering_program, worker_of
from pyquic.config import QuicConfiguration
from pyquic.errors import UsageError
from tests.h3_peers import free_udp_port, run_h3_client, write_h3_site
from tests.quic_peers import pki_files

TIMEOUT = 30.0


def test_the_kernel_steers_as_the_rule_says():
    socks = reuseport_sockets("127.0.0.1", 0, 4)
    try:
        port = socks[0].getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            landed = [0] * 4
            for i in range(400):
                body = os.urandom(40)
                datagram = bytes([0x40]) + body if i % 2 else bytes([0xC0, 0, 0, 0, 1, 8]) + body
                client.sendto(datagram, ("127.0.0.1", port))
                ready, _, _ = select.select(socks, [], [], 2)
                assert len(ready) == 1
                data, _ = ready[0].recvfrom(2048)
                assert data == datagram and socks.index(ready[0]) == worker_of(datagram, 4)
                landed[socks.index(ready[0])] += 1
            assert min(landed) > 50  # random IDs spread over all four
    finally:
        for sock in socks:
            sock.close()


def test_worker_ids_carry_the_index():
    cids = [WorkerCids(5, 8, os.urandom)() for _ in range(100)]
    assert {c[0] & 0x1F for c in cids} == {5} and len(set(cids)) == 100
    assert all(worker_of(bytes([0x40]) + c, 8) == 5 for c in cids)
    assert len(steering_program(3)) == 8
    with pytest.raises(UsageError):
        steering_program(33)
    with pytest.raises(UsageError):
        WorkerCids(32, 8, os.urandom)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_h3_site(tmp_path_factory.mktemp("www"), 300_000)


class Workers:
    def __init__(self, files, site, workers: int = 2, extra: tuple = ()) -> None:
        self.port = free_udp_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyquic.server", "-q", "--root", str(site["root"]), "--host", "127.0.0.1",
             "--port", str(self.port), "--cert", str(files["server_chain"]), "--key", str(files["server_key"]),
             "--retry", "never", "--workers", str(workers), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        try:
            while not lines or "listening on" not in lines[-1]:
                lines.append(self.proc.stdout.readline())
                if not lines[-1]:
                    raise AssertionError(f"the server did not start: {''.join(lines)}{self.proc.stderr.read()}")
            assert f"{workers} workers" in lines[-1], lines
        except BaseException:
            self.proc.kill()  # (its workers follow: they die with their parent)
            self.proc.wait(10)
            raise
        time.sleep(0.3)  # the workers' event loops start

    def stop(self) -> dict[int, dict]:
        """SIGTERM; each worker's endpoint counters from its last line."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        self.stderr = err
        out = {}
        for index, counts in re.findall(r"worker (\d+): stopped; endpoint: (.*)", err):
            out[int(index)] = dict((name, int(n)) for name, n in re.findall(r"(\w+) (\d+)", counts))
        return out


def h3_config(files) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


async def test_our_clients_against_two_workers(files, site):
    workers = Workers(files, site)
    try:
        seen = set()
        for _ in range(16):
            async with connect_h3("127.0.0.1", workers.port, configuration=h3_config(files)) as client:
                client.authority = f"localhost:{workers.port}"
                quic = client.protocol._quic
                first = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
                for _ in range(200):
                    if client.protocol.change_connection_id():
                        break
                    await asyncio.sleep(0.005)
                await asyncio.wait_for(client.protocol.change_local_address(), TIMEOUT)
                second = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
                assert first.status == second.status == 200 and first.content == second.content
                seen.add(quic.peer_cid[0] & 0x1F)
        assert seen == {0, 1}
    finally:
        stats = workers.stop()
    assert set(stats) == {0, 1}, workers.stderr  # each worker stopped and said so
    for index, counts in stats.items():
        assert counts.get("stateless_reset", 0) == 0 and counts.get("datagrams_dropped", 0) == 0, (index, counts)


@pytest.mark.parametrize("impl,extra", [("ngtcp2", ["--change-local-addr=10ms", "--delay-stream=200ms"]),
                                        ("aioquic", [])])
async def test_their_clients_against_two_workers(files, site, tmp_path, impl, extra):
    workers = Workers(files, site)
    try:
        for round_ in range(6):
            urls = [f"https://localhost:{workers.port}/{name}" for name in ("big.bin", "small.txt")]
            results = await asyncio.to_thread(run_h3_client, impl, urls, tmp_path / f"dl{round_}", files,
                                              timeout=TIMEOUT, extra_args=extra)
            for r in results:
                assert r["ok"] and r["sha256"] == site["sha256"][r["url"].rsplit("/", 1)[1]], r
    finally:
        stats = workers.stop()
    assert set(stats) == {0, 1}, workers.stderr  # each worker stopped and said so
    for index, counts in stats.items():
        assert counts.get("stateless_reset", 0) == 0 and counts.get("datagrams_dropped", 0) == 0, (index, counts)


async def test_workers_of_a_quic_lb_fleet_server(files, site, tmp_path):
    from pyquic.fleet import FleetSecrets
    from pyquic.quic_lb import decode_server_id

    secrets = FleetSecrets.generate(time.time(), os.urandom, encode_length=False)
    path = tmp_path / "fleet.json"
    secrets.save(path)
    workers = Workers(files, site, extra=("--fleet", str(path), "--server-id", "0007"))
    try:
        seen = set()
        for _ in range(12):
            async with connect_h3("127.0.0.1", workers.port, configuration=h3_config(files)) as client:
                client.authority = f"localhost:{workers.port}"
                assert (await asyncio.wait_for(client.get("/small.txt"), TIMEOUT)).status == 200
                cid = client.protocol._quic.peer_cid
                assert decode_server_id(secrets.quic_lb, cid) == bytes.fromhex("0007")  # the balancer's view
                seen.add(cid[0] & 0x1F)  # the kernel's
        assert seen == {0, 1}
    finally:
        stats = workers.stop()
    assert all(c.get("stateless_reset", 0) == 0 and c.get("datagrams_dropped", 0) == 0 for c in stats.values())


def test_workers_refuse_a_quic_lb_configuration_that_encodes_the_length(files, site, tmp_path):
    from pyquic.fleet import FleetSecrets

    path = tmp_path / "fleet.json"
    FleetSecrets.generate(time.time(), os.urandom).save(path)
    run = subprocess.run([sys.executable, "-m", "pyquic.server", "--root", str(site["root"]), "--port", "0",
                          "--workers", "2", "--fleet", str(path), "--server-id", "0001"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "encode_length" in run.stderr


def test_the_workers_die_with_their_parent(files, site):
    workers = Workers(files, site)
    with open(f"/proc/{workers.proc.pid}/task/{workers.proc.pid}/children") as f:
        children = [int(p) for p in f.read().split()]
    assert len(children) == 2
    workers.proc.kill()  # SIGKILL: the parent cannot pass anything on
    workers.proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(alive, children)):
        time.sleep(0.05)
    assert not any(map(alive, children))


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
