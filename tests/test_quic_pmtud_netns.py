# Path MTU discovery over real sockets and a real router (RFC 9000 §14.3,
# RFC 8899): three network namespaces, client -- router -- server, where the
# router's link to the server has a 1350-byte MTU and the client's link 1500.
# The router's kernel forwards and drops what does not fit (DF set, IPv6 never
# fragments in flight); the server's own interface refuses larger datagrams
# with EMSGSIZE.  So our client finds the bottleneck by losses behind the
# router, our server at its own interface, and both settle within the search
# granularity below 1350 minus the IP and UDP headers, over IPv4 and IPv6.
# Then the same across the router with aioquic's and qh3's raw clients and
# servers (they send 1200-byte datagrams and accept ours).
#
# Namespaces need root: CI runs as root, and so must this test (it fails, not
# skips, elsewhere).
from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import subprocess
import threading

import pytest

from pyquic.asyncio import connect
from pyquic.asyncio.udp import create_socket
from pyquic.pmtud import SEARCH_GRANULARITY
from tests.quic_interop_cases import PyquicTestServer, client_config, expect, request, request_text, server_config
from tests.quic_peers import assert_all_ok, pki_files, run_client, start_server

BOTTLENECK_MTU = 1350
PLAN = {  # family: (client, router's client side, router's server side, server, prefix length)
    socket.AF_INET: ("10.99.1.1", "10.99.1.2", "10.99.2.2", "10.99.2.1", 24),
    socket.AF_INET6: ("fd99:1::1", "fd99:1::2", "fd99:2::2", "fd99:2::1", 64),
}
HEADERS = {socket.AF_INET: 20 + 8, socket.AF_INET6: 40 + 8}
TIMEOUT = 30.0
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr}"


def _enter(ns: str) -> None:
    """Move the calling thread into namespace `ns` (sockets it makes stay there)."""
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def in_namespace(ns: str, fn, *args):
    """fn(*args) on a thread inside `ns`; its result (or exception)."""
    box: dict = {}

    def run() -> None:
        try:
            _enter(ns)
            box["result"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 (handed back to the caller)
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.fixture(scope="module")
def net():
    assert os.geteuid() == 0, "this test builds network namespaces: run it as root (CI does)"
    base = f"pmtu{os.getpid() % 100000}"
    names = {role: f"{base}{role}" for role in ("c", "r", "s")}
    for ns in names.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        _ip("netns", "add", ns)
    c, r, s = names["c"], names["r"], names["s"]
    try:
        _ip("link", "add", "eth0", "netns", c, "type", "veth", "peer", "name", "rc", "netns", r)
        _ip("link", "add", "eth0", "netns", s, "type", "veth", "peer", "name", "rs", "netns", r)
        _ip("-n", r, "link", "set", "rs", "mtu", str(BOTTLENECK_MTU))
        _ip("-n", s, "link", "set", "eth0", "mtu", str(BOTTLENECK_MTU))
        for family, (ca, rca, rsa, sa, plen) in PLAN.items():
            extra = ["nodad"] if family == socket.AF_INET6 else []
            for ns, dev, addr in ((c, "eth0", ca), (r, "rc", rca), (r, "rs", rsa), (s, "eth0", sa)):
                _ip("-n", ns, "addr", "add", f"{addr}/{plen}", "dev", dev, *extra)
        for ns, dev in ((c, "eth0"), (r, "rc"), (r, "rs"), (s, "eth0"), (c, "lo"), (r, "lo"), (s, "lo")):
            _ip("-n", ns, "link", "set", dev, "up")
        for family, (ca, rca, rsa, sa, plen) in PLAN.items():
            v = ["-6"] if family == socket.AF_INET6 else []
            _ip("-n", c, *v, "route", "add", "default", "via", rca)
            _ip("-n", s, *v, "route", "add", "default", "via", rsa)
        subprocess.run(["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                        "net.ipv6.conf.all.forwarding=1"], check=True)
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


def settled(size: int, family: int) -> bool:
    path = BOTTLENECK_MTU - HEADERS[family]
    return path - SEARCH_GRANULARITY <= size <= path


async def _ours_both_ends(server_sock: socket.socket, family: int, files) -> dict:
    host = PLAN[family][3]
    server = PyquicTestServer()
    await server.start(server_config(files), sock=server_sock)
    try:
        async with connect(host, server_sock.getsockname()[1], configuration=client_config(files)) as proto:
            assert await asyncio.wait_for(request(proto, "source 2000000"), TIMEOUT) == expect(2_000_000)
            assert await asyncio.wait_for(request_text(proto, "sink", 2_000_000), TIMEOUT) == "%d %s" % expect(2_000_000)
            client_mtu = proto.quic.path_mtu
            server_mtu = server.protocols[0].quic.path_mtu
            return {"client": (client_mtu.size, client_mtu.probes_lost), "server": (server_mtu.size, server_mtu.probes_lost)}
    finally:
        await server.stop()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_both_ends_find_the_bottleneck_across_a_router(net, files, family):
    server_sock = in_namespace(net["s"], create_socket, PLAN[family][3], 0)
    found = in_namespace(net["c"], lambda: asyncio.run(_ours_both_ends(server_sock, family, files)))
    for side in ("client", "server"):
        size, lost = found[side]
        assert settled(size, family), found
        assert lost > 0, found  # it got there by probes that did not arrive


async def _ours_to_a_peer(host: str, port: int, files) -> tuple:
    async with connect(host, port, configuration=client_config(files)) as proto:
        assert await asyncio.wait_for(request_text(proto, "sink", 2_000_000), TIMEOUT) == "%d %s" % expect(2_000_000)
        mtu = proto.quic.path_mtu
        async with asyncio.timeout(TIMEOUT):
            while mtu.probe_size:  # still searching: pings bring the acknowledgments that settle each probe
                await proto.ping()
        return mtu.size, mtu.probes_lost


@pytest.mark.parametrize("peer", ["aioquic", "qh3"])
def test_our_client_finds_the_bottleneck_to_a_peer_server(net, files, peer):
    host = PLAN[socket.AF_INET][3]
    server = start_server(peer, files, host=host, prefix=["ip", "netns", "exec", net["s"]])
    try:
        size, lost = in_namespace(net["c"], lambda: asyncio.run(_ours_to_a_peer(host, server.port, files)))
    finally:
        server.stop()
    assert settled(size, socket.AF_INET) and lost > 0, (size, lost)


async def _serve_a_peer(server_sock: socket.socket, net: dict, files, peer: str) -> tuple:
    server = PyquicTestServer()
    await server.start(server_config(files), sock=server_sock)
    try:
        host, port = server_sock.getsockname()[:2]
        results = await asyncio.get_running_loop().run_in_executor(None, lambda: run_client(
            peer, port, files, [{"op": "source", "size": 2_000_000}], host=host,
            prefix=["ip", "netns", "exec", net["c"]]))
        assert_all_ok(results)
        mtu = server.protocols[0].quic.path_mtu
        return mtu.size, mtu.probes_lost
    finally:
        await server.stop()


@pytest.mark.parametrize("peer", ["aioquic", "qh3"])
def test_our_server_finds_the_bottleneck_to_a_peer_client(net, files, peer):
    server_sock = in_namespace(net["s"], create_socket, PLAN[socket.AF_INET][3], 0)
    size, lost = in_namespace(net["c"], lambda: asyncio.run(_serve_a_peer(server_sock, net, files, peer)))
    assert settled(size, socket.AF_INET) and lost > 0, (size, lost)
