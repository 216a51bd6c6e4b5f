# interop/network.py: the emulated network of one interop run.  Owns the three
# network namespaces (client, sim, server) and the two veth pairs between
# them, their addresses and routes, the offloads (off: the sim must see real
# 1500-byte frames, not GSO/GRO super-frames), starting and stopping the sim
# process (interop/sim.py) in the sim namespace, where its captures and log
# go, running endpoint commands inside a namespace, and the teardown (context
# manager, atexit, and removal of leftovers of a crashed run with the same
# prefix).  Where namespaces cannot be made (not root, no permission) it
# falls back to a UDP relay on loopback (its process is defined here too,
# on interop/sim.py's link model), says so on stderr and in `mode`.
#
#   with Network(scenario=Scenario.parse("simple-p2p --delay=15ms"), workdir=d, name_prefix="iq1") as net:
#       net.run_in(net.server_ns, ["bash", "run_endpoint.sh"], env=...)
#
# By hand: python -m interop.network "drop-rate --rate_to_server=5" --prefix iqhand
from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence, Union

from .sim import (CORRUPT, DROP, LINKTYPE_RAW, RECV_BURST, Link, Pcap, Rebinder, Scenario, SimLoop, arg_parser,
                  checksum, serve)
from .sim import parse_duration, parse_rate

__all__ = ["Network", "NetworkError", "Scenario", "parse_duration", "parse_rate", "MODE_NAMESPACES", "MODE_RELAY",
           "list_namespaces", "namespace_names", "remove_namespaces"]

SIM_SCRIPT = Path(__file__).resolve().parent / "sim.py"
PACKAGE_ROOT = SIM_SCRIPT.parent.parent  # where `python -m interop.network` finds the package
MODE_NAMESPACES = "namespaces"
MODE_RELAY = "loopback-relay"
ROLES = ("client", "sim", "server")
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")
SIM_READY_TIMEOUT = 10.0
SIM_STOP_GRACE = 5.0

# The reference's IPv4 plan; IPv6 in two /64s of the same shape.
CLIENT_IP4, SIM_CLIENT_IP4, CLIENT_NET4 = "193.167.0.100", "193.167.0.2", "193.167.0.0/24"
SERVER_IP4, SIM_SERVER_IP4, SERVER_NET4 = "193.167.100.100", "193.167.100.2", "193.167.100.0/24"
CLIENT_IP6, SIM_CLIENT_IP6, CLIENT_NET6 = "fd00:cafe::100", "fd00:cafe::2", "fd00:cafe::/64"
SERVER_IP6, SIM_SERVER_IP6, SERVER_NET6 = "fd00:cafe:100::100", "fd00:cafe:100::2", "fd00:cafe:100::/64"
ENDPOINT_IF = "eth0"  # the endpoint's interface, as in the reference's containers
SIM_CLIENT_IF, SIM_SERVER_IF = "simc", "sims"
# Every offload that can merge or split frames, or leave a checksum unfinished
# (a frame re-sent from an AF_PACKET socket would keep it unfinished).
OFFLOADS = ("tx", "rx", "sg", "tso", "gso", "gro", "lro", "tx-udp-segmentation", "rx-gro-list",
            "rx-udp-gro-forwarding", "tx-gso-list")
_ETHTOOL_NAMES = {"tx": "tx-checksumming", "rx": "rx-checksumming", "sg": "scatter-gather",
                  "tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
                  "gro": "generic-receive-offload", "lro": "large-receive-offload"}


class NetworkError(RuntimeError):
    pass


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def namespace_names(prefix: str) -> dict:
    return {role: f"{prefix}-{role}" for role in ROLES}


def list_namespaces() -> list:
    proc = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def remove_namespaces(prefix: str) -> list:
    """Removes this prefix's namespaces (exact names only, so "iq1" never
    touches "iq10-sim"), first killing what still runs inside them: those
    processes were started in them by a Network with this prefix."""
    mine = set(namespace_names(prefix).values())
    removed = []
    for ns in list_namespaces():
        if ns not in mine:
            continue
        _kill_namespace_processes(ns)
        _run(["ip", "netns", "del", ns], check=False)
        removed.append(ns)
    return removed


def _kill_namespace_processes(ns: str) -> None:
    pids = [int(p) for p in _run(["ip", "netns", "pids", ns], check=False).stdout.split() if p.isdigit()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The namespace (and its veth) only goes away once its last process has.
    deadline = time.monotonic() + 2.0
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
        if pids:
            time.sleep(0.02)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::", 0))
        return s.getsockname()[1]


class Network:
    """One run's network.  Attributes once started: mode, client_ns, sim_ns,
    server_ns (None in the fallback), client_ip4/6, server_ip4/6, server_port
    (where the server listens), client_port (where the client aims: the same
    with namespaces, the relay's port in the fallback), server_bind (the
    address the server binds), pcap_paths, sim_log, fallback_reason."""

    def __init__(self, scenario: Union[Scenario, str, None] = None, workdir: Union[Path, str, None] = None,
                 name_prefix: str = "iq", *, force_fallback: bool = False, seed: int = 0,
                 port: int = 443, python: Optional[str] = None) -> None:
        if isinstance(scenario, str):
            scenario = Scenario.parse(scenario)
        self.scenario = scenario or Scenario.parse("simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25")
        if not PREFIX_RE.match(name_prefix):
            raise ValueError(f"name_prefix {name_prefix!r}: letters, digits, '_', '-', at most 16")
        self.prefix = name_prefix
        self.workdir = Path(workdir).resolve() if workdir is not None else Path(tempfile.mkdtemp(prefix="interop-net-"))
        self.force_fallback = force_fallback
        self.seed = seed
        self.port = port
        self.python = python or sys.executable
        self.mode = ""
        self.fallback_reason = ""
        self.client_ns = self.sim_ns = self.server_ns = None
        self.client_ip4 = self.client_ip6 = self.server_ip4 = self.server_ip6 = ""
        self.server_port = self.client_port = port
        self.server_bind = "::"
        self.pcap_paths = {"client_side": self.workdir / "sim_client_side.pcap",
                           "server_side": self.workdir / "sim_server_side.pcap"}
        self.sim_log = self.workdir / "sim.log"
        self.macs: dict = {}
        self._sim: Optional[subprocess.Popen] = None
        self._created: list = []
        self._started = False
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Network":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Network":
        if self._started:
            return self
        self._started = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)
        try:
            reason = "forced by the caller" if self.force_fallback else self._try_namespaces()
            if reason:
                self._start_relay(reason)
        except BaseException:
            self.close()
            raise
        return self

    def _try_namespaces(self) -> str:
        """Empty string once the namespaces exist; otherwise why not."""
        if os.geteuid() != 0:
            return "not root"
        remove_namespaces(self.prefix)  # leftovers of a crashed run with this prefix
        names = namespace_names(self.prefix)
        for role in ROLES:
            try:
                proc = _run(["ip", "netns", "add", names[role]], check=False)
            except FileNotFoundError:
                return "no `ip` command"
            if proc.returncode != 0:
                for ns in self._created:  # a half-built set is of no use to the relay
                    _run(["ip", "netns", "del", ns], check=False)
                self._created.clear()
                return f"ip netns add failed: {proc.stderr.strip()}"
            self._created.append(names[role])
        self.client_ns, self.sim_ns, self.server_ns = names["client"], names["sim"], names["server"]
        self._build(names["client"], names["sim"], names["server"])
        self.mode = MODE_NAMESPACES
        self.client_ip4, self.client_ip6 = CLIENT_IP4, CLIENT_IP6
        self.server_ip4, self.server_ip6 = SERVER_IP4, SERVER_IP6
        self._start_sim_frames()
        return ""

    def _build(self, cns: str, sns: str, vns: str) -> None:
        ip = lambda ns, *args: _run(["ip", "-n", ns, *args])  # noqa: E731
        # veths created directly inside their namespaces: fixed names, no clash
        # in the root namespace between parallel runs.
        _run(["ip", "link", "add", ENDPOINT_IF, "netns", cns, "type", "veth", "peer", "name", SIM_CLIENT_IF, "netns", sns])
        _run(["ip", "link", "add", ENDPOINT_IF, "netns", vns, "type", "veth", "peer", "name", SIM_SERVER_IF, "netns", sns])
        # The sim namespace's kernel must not forward: the user-space sim does.
        _run(["ip", "netns", "exec", sns, "sysctl", "-qw", "net.ipv4.ip_forward=0",
              "net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.default.forwarding=0"])
        plan = ((cns, ENDPOINT_IF, CLIENT_IP4 + "/24", CLIENT_IP6 + "/64"),
                (sns, SIM_CLIENT_IF, SIM_CLIENT_IP4 + "/24", SIM_CLIENT_IP6 + "/64"),
                (sns, SIM_SERVER_IF, SIM_SERVER_IP4 + "/24", SIM_SERVER_IP6 + "/64"),
                (vns, ENDPOINT_IF, SERVER_IP4 + "/24", SERVER_IP6 + "/64"))
        features = self._offload_features(cns, ENDPOINT_IF)
        for ns, dev, a4, a6 in plan:
            ip(ns, "addr", "add", a4, "dev", dev)
            ip(ns, "addr", "add", a6, "dev", dev, "nodad")  # no duplicate detection delay
            _run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, *[x for f in features for x in (f, "off")]])
            ip(ns, "link", "set", dev, "up")
            self.macs[(ns, dev)] = json.loads(ip(ns, "-j", "link", "show", dev).stdout)[0]["address"]
        for ns in (cns, sns, vns):
            ip(ns, "link", "set", "lo", "up")
        for ns, gw4, gw6, gw_dev in ((cns, SIM_CLIENT_IP4, SIM_CLIENT_IP6, SIM_CLIENT_IF),
                                     (vns, SIM_SERVER_IP4, SIM_SERVER_IP6, SIM_SERVER_IF)):
            ip(ns, "route", "add", "default", "via", gw4)
            ip(ns, "-6", "route", "add", "default", "via", gw6)
            # Static gateway neighbours: the first packet needs no ARP/NDP round.
            mac = self.macs[(sns, gw_dev)]
            ip(ns, "neigh", "replace", gw4, "lladdr", mac, "dev", ENDPOINT_IF, "nud", "permanent")
            ip(ns, "-6", "neigh", "replace", gw6, "lladdr", mac, "dev", ENDPOINT_IF, "nud", "permanent")

    @staticmethod
    def _offload_features(ns: str, dev: str) -> list:
        """The offload switches this kernel's veth has (ethtool -K fails on unknown names)."""
        out = _run(["ip", "netns", "exec", ns, "ethtool", "-k", dev]).stdout
        present = {line.split(":")[0].strip() for line in out.splitlines() if ":" in line and "[fixed]" not in line}
        return [f for f in OFFLOADS if _ETHTOOL_NAMES.get(f, f) in present]

    def _sim_argv(self) -> list:
        return [self.python, str(SIM_SCRIPT), "--scenario", str(self.scenario), "--seed", str(self.seed),
                "--log", str(self.sim_log), "--client-pcap", str(self.pcap_paths["client_side"]),
                "--server-pcap", str(self.pcap_paths["server_side"])]

    def _start_sim_frames(self) -> None:
        argv = self._sim_argv() + [
            "--client-if", SIM_CLIENT_IF, "--server-if", SIM_SERVER_IF,
            "--client-mac", self.macs[(self.client_ns, ENDPOINT_IF)],
            "--server-mac", self.macs[(self.server_ns, ENDPOINT_IF)],
            "--own", ",".join((SIM_CLIENT_IP4, SIM_CLIENT_IP6, SIM_SERVER_IP4, SIM_SERVER_IP6)),
            "--client-nets", f"{CLIENT_NET4},{CLIENT_NET6}"]
        self._launch_sim(["ip", "netns", "exec", self.sim_ns] + argv)

    def _start_relay(self, reason: str) -> None:
        self.mode = MODE_RELAY
        self.fallback_reason = reason
        self.client_ns = self.sim_ns = self.server_ns = None
        self.client_ip4 = self.server_ip4 = "127.0.0.1"
        self.client_ip6 = self.server_ip6 = "::1"
        self.server_port = _free_udp_port()
        print(f"interop.network: network namespaces not used ({reason}): falling back to a UDP relay on "
              f"loopback (mode {MODE_RELAY}); captures hold UDP payloads in synthetic IP headers",
              file=sys.stderr, flush=True)
        argv = [self.python, "-m", "interop.network", "--relay-process"] + self._sim_argv()[2:]
        ready = self._launch_sim(argv + ["--server-port", str(self.server_port)], cwd=PACKAGE_ROOT)
        self.client_port = int(ready["port"])

    def _launch_sim(self, argv: list, cwd: Optional[Path] = None) -> dict:
        with open(self.sim_log, "ab") as log:
            self._sim = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=cwd)
        deadline = time.monotonic() + SIM_READY_TIMEOUT
        line = b""
        while time.monotonic() < deadline and self._sim.poll() is None:
            ready, _, _ = select.select([self._sim.stdout], [], [], 0.1)
            if ready:
                line = self._sim.stdout.readline()
                break
        self._sim.stdout.close()
        if not line.startswith(b"READY "):
            raise NetworkError(f"the sim did not start (see {self.sim_log}): {self._log_tail()}")
        return json.loads(line[6:])

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.sim_log.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return ""

    def close(self) -> None:
        """Stops the sim (its captures and counts are complete afterwards) and
        removes the namespaces, whatever state start() reached."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        sim = self._sim
        if sim is not None and sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(SIM_STOP_GRACE)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
        for ns in self._created:
            _kill_namespace_processes(ns)
            _run(["ip", "netns", "del", ns], check=False)
        self._created.clear()

    # ------------------------------------------------------------ use

    def run_in(self, ns: Optional[str], argv: Sequence[str], *, env: Optional[dict] = None, stdout=None,
               stderr=None, cwd=None, **popen_kwargs) -> subprocess.Popen:
        """Starts argv inside namespace `ns` (one of ours) with `ip netns exec`,
        which execs it: the Popen's pid is the command's own.  ns None or ""
        (the fallback) runs it here."""
        if ns:
            if ns not in (self.client_ns, self.sim_ns, self.server_ns):
                raise ValueError(f"{ns!r} is not a namespace of this network")
            argv = ["ip", "netns", "exec", ns, *argv]
        return subprocess.Popen(list(argv), env=env, stdout=stdout, stderr=stderr, cwd=cwd, **popen_kwargs)

    def stats(self) -> dict:
        """The sim's final counts (after close()): per direction received,
        forwarded, dropped_* and corrupted; rebinds; max_frame and oversize
        (frames over 1514 bytes: an offload left on)."""
        try:
            lines = self.sim_log.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        for line in reversed(lines):
            _, sep, payload = line.partition(" STATS ")
            if sep:
                return json.loads(payload)
        return {}


# ---------------------------------------------------------------- the fallback's relay process

MAX_CLIENTS = 64


def _ip_udp(src: tuple, dst: tuple, payload: bytes) -> bytes:
    """An IPv4 or IPv6 packet carrying one UDP datagram, checksums right (the
    relay's capture: tshark must see the same as on a real wire)."""
    v6 = ":" in src[0]
    s_ip = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, src[0])
    d_ip = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, dst[0])
    length = 8 + len(payload)
    if v6:
        pseudo = s_ip + d_ip + struct.pack("!IxxxB", length, 17)
    else:
        pseudo = s_ip + d_ip + struct.pack("!xBH", 17, length)
    header = struct.pack("!HHHH", src[1], dst[1], length, 0)
    csum = checksum(pseudo + header + payload) or 0xFFFF
    udp = struct.pack("!HHHH", src[1], dst[1], length, csum) + payload
    if v6:
        return struct.pack("!IHBB", 0x60000000, length, 17, 64) + s_ip + d_ip + udp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 17, 0, s_ip, d_ip)
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + udp


class RelaySim(SimLoop):
    """The same scenarios on loopback: clients talk to the relay's port on
    127.0.0.1 / ::1; it talks to the server's port from one socket per client
    (a new one at each rebind: the NAT's new source port)."""

    def __init__(self, scn: Scenario, seed: int, log_path: str, server_port: int, listen_port: int,
                 pcaps: tuple) -> None:
        super().__init__(scn, seed, log_path)
        self.server_port = server_port
        self.pcaps = tuple(Pcap(p, LINKTYPE_RAW) for p in pcaps)
        self.listeners = self._listen(listen_port)
        self.port = self.listeners[socket.AF_INET].getsockname()[1]
        self.upstream: dict = {}  # client address -> socket towards the server
        self.client_of: dict = {}  # upstream socket -> client address
        self.fds: dict = {}
        if scn.name == "rebind":
            self.rebinder = Rebinder(scn, self.rng, lambda a: a)
            if scn.rebind_addr:
                self.log_line("relay: --rebind-addr changes the IPv4 source within 127/8; IPv6 gets a new port only")

    def _listen(self, port: int) -> dict:
        for _ in range(50):
            s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s4.bind(("127.0.0.1", port))
            chosen = s4.getsockname()[1]
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                s6.bind(("::1", chosen))
            except OSError:
                s4.close()
                s6.close()
                if port:
                    raise
                continue
            for s in (s4, s6):
                s.setblocking(False)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            return {socket.AF_INET: s4, socket.AF_INET6: s6}
        raise OSError("no UDP port free on both 127.0.0.1 and ::1")

    def _server(self, family: int) -> tuple:
        return ("::1" if family == socket.AF_INET6 else "127.0.0.1", self.server_port)

    def _new_upstream(self, client: tuple, family: int):
        s = socket.socket(family, socket.SOCK_DGRAM)
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        if self.rebinder is not None and self.rebinder.generation and self.scn.rebind_addr and family == socket.AF_INET:
            host = f"127.{self.rng.randrange(1, 255)}.{self.rng.randrange(0, 256)}.{self.rng.randrange(2, 255)}"
        s.bind((host, 0))
        s.connect(self._server(family))
        s.setblocking(False)
        self.upstream[client] = s
        self.client_of[s] = client
        self.fds[s] = lambda now, s=s: self._from_server(s, now)
        return s

    def on_rebind(self) -> None:
        for client, old in list(self.upstream.items()):
            del self.fds[old]
            del self.client_of[old]
            old.close()  # what the server still sends to the old port is lost with it
            self._new_upstream(client, old.family)

    def run(self) -> None:
        for family, s in self.listeners.items():
            self.fds[s] = lambda now, s=s: self._from_client(s, now)
        self.loop(self.fds)

    def _from_client(self, listener, now: float) -> None:
        for _ in range(RECV_BURST):
            try:
                data, addr = listener.recvfrom(65536)
            except BlockingIOError:
                return
            client = addr[:2]
            server = self._server(listener.family)
            self.pcaps[0].write(self.wall(now), _ip_udp(client, server, data))
            if self.epoch is None:
                self.start_epoch(now)
            self.check_rebind(now)
            if client not in self.upstream:
                if len(self.upstream) >= MAX_CLIENTS:
                    continue  # bounded: an interop run has a handful of client sockets
                self._new_upstream(client, listener.family)
            self._impair(self.links[0], now, client, data)

    def _from_server(self, sock, now: float) -> None:
        for _ in range(RECV_BURST):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, ConnectionRefusedError):
                return
            client = self.client_of.get(sock)
            if client is None:
                return
            local = sock.getsockname()[:2]
            self.pcaps[1].write(self.wall(now), _ip_udp(self._server(sock.family), local, data))
            self.check_rebind(now)
            self._impair(self.links[1], now, client, data)

    def _impair(self, link: Link, now: float, client: tuple, data: bytes) -> None:
        verdict = link.judge(now, self.epoch)
        if verdict == DROP:
            return
        if verdict == CORRUPT and data:
            buf = bytearray(data)
            buf[self.rng.randrange(len(buf))] ^= self.rng.randrange(1, 256)
            data = bytes(buf)
            link.stats["corrupted"] += 1
        # Sized as the Ethernet frame it would be, so the rate matches frames mode.
        overhead = 14 + (48 if ":" in client[0] else 28)
        link.enqueue(now, len(data) + overhead, (client, data))

    def release(self, now: float) -> None:
        to_server, to_client = self.links
        for client, data in to_server.pop_due(now):
            sock = self.upstream.get(client)
            if sock is None:
                continue
            try:
                sock.send(data)
            except OSError:
                to_server.stats["dropped_send"] += 1
                continue
            to_server.stats["forwarded"] += 1
            self.pcaps[1].write(self.wall(now), _ip_udp(sock.getsockname()[:2], self._server(sock.family), data))
        for client, data in to_client.pop_due(now):
            family = socket.AF_INET6 if ":" in client[0] else socket.AF_INET
            try:
                self.listeners[family].sendto(data, client)
            except OSError:
                to_client.stats["dropped_send"] += 1
                continue
            to_client.stats["forwarded"] += 1
            self.pcaps[0].write(self.wall(now), _ip_udp(self._server(family), client, data))

    def finish(self) -> None:
        self.extra.update(mode="loopback-relay", captured={"client_side": self.pcaps[0].frames,
                                                           "server_side": self.pcaps[1].frames})
        super().finish()
        for s in list(self.listeners.values()) + list(self.upstream.values()):
            s.close()



def _relay_main(argv) -> int:
    ap = arg_parser("the interop network's loopback relay (fallback without namespaces)")
    ap.add_argument("--server-port", type=int, required=True, help="the server's UDP port on loopback")
    ap.add_argument("--listen-port", type=int, default=0, help="the port clients aim at (0: any)")
    args = ap.parse_args(argv)
    sim = RelaySim(Scenario.parse(args.scenario), args.seed, args.log, args.server_port, args.listen_port,
                   (args.client_pcap, args.server_pcap))
    return serve(sim, {"mode": "relay", "port": sim.port}, args.nice)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--relay-process"]:
        return _relay_main(argv[1:])
    ap = argparse.ArgumentParser(description="bring up the interop network and wait (Ctrl-C tears it down)")
    ap.add_argument("scenario", nargs="?", default="simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25")
    ap.add_argument("--prefix", default="iqhand")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fallback", action="store_true", help="force the loopback relay")
    args = ap.parse_args(argv)
    with Network(args.scenario, args.workdir, args.prefix, force_fallback=args.fallback, seed=args.seed) as net:
        print(f"mode {net.mode}; scenario {net.scenario}")
        if net.mode == MODE_NAMESPACES:
            print(f"server: ip netns exec {net.server_ns} CMD   ({net.server_ip4}, {net.server_ip6})")
            print(f"client: ip netns exec {net.client_ns} CMD   ({net.client_ip4}, {net.client_ip6})")
        else:
            print(f"server listens on port {net.server_port}; clients aim at 127.0.0.1 / ::1 port {net.client_port}")
        print(f"captures: {net.pcap_paths['client_side']} {net.pcap_paths['server_side']}; log {net.sim_log}")
        def interrupt(*_):
            raise KeyboardInterrupt  # a plain kill tears down and prints the counts like Ctrl-C

        signal.signal(signal.SIGTERM, interrupt)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    print(json.dumps(net.stats(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
