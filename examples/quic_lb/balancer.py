# A QUIC-LB layer-4 load balancer (draft-ietf-quic-load-balancers), small
# enough to read: one UDP address in front of a fleet of QUIC servers that
# share a pyquic.fleet.FleetSecrets file.  It knows the QUIC-LB configuration
# and each server's ID and address, and keeps no per-connection state:
#   - a datagram whose Destination Connection ID decodes to a known server ID
#     goes to that server (every packet of a connection, after migration and
#     rotation too: the servers write their ID into every ID they issue);
#   - any other (a client's first Initials, whose ID the client chose; a
#     0-RTT packet) goes to the server a hash of that ID picks, so a client's
#     retransmissions land together; once a server answered, the client uses
#     that server's routable IDs;
#   - each client address gets its own upstream socket, so the server sees
#     one peer per client address (a client that migrates gets a new one,
#     and the server validates the new path as it would without us);
#     answers go back to that client from the front address.
# Flows are capped (`max_flows`, the oldest goes) and expire after
# `flow_idle` seconds.  `stats` counts routing decisions.
#
#   python -m examples.quic_lb.balancer --fleet fleet.json --listen 0.0.0.0:443 \
#       --server 0001=10.0.0.11:443 --server 0002=10.0.0.12:443
from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from collections import OrderedDict
from typing import Any, Optional

from pyquic.fleet import FleetSecrets
from pyquic.quic_lb import LbConfig, decode_server_id

__all__ = ["Balancer", "destination_cid"]

DEFAULT_MAX_FLOWS = 10_000
DEFAULT_FLOW_IDLE = 60.0


def destination_cid(data: bytes, short_length: int) -> Optional[bytes]:
    """A QUIC packet's Destination Connection ID (None: too short to have one).
    Long headers carry its length (version-independent, RFC 8999); short ones
    have the length the fleet's IDs have."""
    if not data:
        return None
    if data[0] & 0x80:
        if len(data) < 6 or len(data) < 6 + data[5]:
            return None
        return bytes(data[6 : 6 + data[5]])
    if len(data) < 1 + short_length:
        return None
    return bytes(data[1 : 1 + short_length])


class _Upstream(asyncio.DatagramProtocol):
    """One client address's socket towards the servers: answers go back to the client."""

    def __init__(self, balancer: "Balancer", client: Any) -> None:
        self.balancer = balancer
        self.client = client
        self.transport: Optional[asyncio.DatagramTransport] = None
        self.last = time.monotonic()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last = time.monotonic()
        self.balancer.stats["to_clients"] += 1
        self.balancer.front.sendto(data, self.client)


class Balancer(asyncio.DatagramProtocol):
    def __init__(self, lb: LbConfig, servers: dict[bytes, Any], *, max_flows: int = DEFAULT_MAX_FLOWS,
                 flow_idle: float = DEFAULT_FLOW_IDLE) -> None:
        if not servers:
            raise ValueError("a balancer needs at least one server")
        self.lb = lb
        self.servers = dict(servers)  # server ID -> (host, port)
        self.order = sorted(self.servers)  # for the hash of IDs that name no server
        self.max_flows = max_flows
        self.flow_idle = flow_idle
        self.flows: OrderedDict[Any, _Upstream] = OrderedDict()  # client address -> its upstream socket
        self.pending: dict[Any, list] = {}  # datagrams waiting for a flow's socket
        self.front: Any = None
        self.stats = {"by_server_id": 0, "by_hash": 0, "unknown_server_id": 0, "unparsable": 0,
                      "to_clients": 0, "flows_evicted": 0}
        self.by_server: dict[bytes, int] = {sid: 0 for sid in self.servers}  # datagrams each server got

    # -- routing ----------------------------------------------------------------------------------------

    def route(self, data: bytes) -> Optional[bytes]:
        """The server ID a datagram goes to (None: not a QUIC packet we can route)."""
        dcid = destination_cid(data, self.lb.cid_length)
        if dcid is None:
            self.stats["unparsable"] += 1
            return None
        sid = decode_server_id(self.lb, dcid)
        if sid is not None and sid in self.servers:
            self.stats["by_server_id"] += 1
            return sid
        if sid is not None and not data[0] & 0x80:
            self.stats["unknown_server_id"] += 1  # a short header naming no server of ours
        self.stats["by_hash"] += 1
        digest = hashlib.sha256(dcid).digest()
        return self.order[int.from_bytes(digest[:4], "big") % len(self.order)]

    # -- front socket --------------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.front = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sid = self.route(data)
        if sid is None:
            return
        self.by_server[sid] += 1
        target = self.servers[sid]
        flow = self.flows.get(addr)
        if flow is not None:
            self.flows.move_to_end(addr)
            flow.last = time.monotonic()
            if flow.transport is not None:
                flow.transport.sendto(data, target)
                return
        waiting = self.pending.get(addr)
        if waiting is not None:
            waiting.append((data, target))
            return
        self.pending[addr] = [(data, target)]
        asyncio.get_running_loop().create_task(self._open_flow(addr))

    async def _open_flow(self, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        family_host = "::" if ":" in str(next(iter(self.servers.values()))[0]) else "0.0.0.0"
        try:
            _, flow = await loop.create_datagram_endpoint(lambda: _Upstream(self, addr), local_addr=(family_host, 0))
        except OSError:
            self.pending.pop(addr, None)
            return
        self.flows[addr] = flow
        self._expire()
        for data, target in self.pending.pop(addr, []):
            flow.transport.sendto(data, target)

    def _expire(self) -> None:
        now = time.monotonic()
        for addr in [a for a, f in self.flows.items() if now - f.last > self.flow_idle]:
            self.flows.pop(addr).transport.close()
        while len(self.flows) > self.max_flows:
            _, flow = self.flows.popitem(last=False)
            flow.transport.close()
            self.stats["flows_evicted"] += 1

    def close(self) -> None:
        for flow in self.flows.values():
            if flow.transport is not None:
                flow.transport.close()
        self.flows.clear()
        if self.front is not None:
            self.front.close()


async def start_balancer(lb: LbConfig, servers: dict[bytes, Any], host: str, port: int, **kwargs: Any) -> Balancer:
    loop = asyncio.get_running_loop()
    _, balancer = await loop.create_datagram_endpoint(lambda: Balancer(lb, servers, **kwargs), local_addr=(host, port))
    return balancer


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.quic_lb.balancer", description="A QUIC-LB load balancer.")
    p.add_argument("--fleet", required=True, help="the fleet's secrets (python -m pyquic.tools.fleet new)")
    p.add_argument("--listen", default="0.0.0.0:4433", metavar="HOST:PORT")
    p.add_argument("--server", action="append", required=True, metavar="ID=HOST:PORT",
                   help="a server: its QUIC-LB server ID in hex and its address (repeat)")
    args = p.parse_args(argv)
    fleet = FleetSecrets.load(args.fleet)
    if fleet.quic_lb is None:
        print("error: the fleet file has no QUIC-LB configuration", file=sys.stderr)
        return 2
    servers = {}
    for entry in args.server:
        sid, _, address = entry.partition("=")
        servers[bytes.fromhex(sid)] = _host_port(address)
    host, port = _host_port(args.listen)

    async def run() -> None:
        balancer = await start_balancer(fleet.quic_lb, servers, host, port)
        print(f"balancing {host}:{port} over {len(servers)} servers", flush=True)
        try:
            while True:
                await asyncio.sleep(10)
                balancer._expire()
        finally:
            balancer.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
