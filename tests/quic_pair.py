# A deterministic in-memory driver for a QUIC client and server on a
# simulated clock, with a lossy link (quinn's Pair::drive, aioquic's tests).
#
#   pair = Pair()                      # our client and server, 100 ms RTT
#   pair.connect(); pair.drive()       # until quiet
#   pair.client_to_server.drop_nth = {0}        # lose the client's first datagram
#   pair.server_to_client.blackhole = (t0, t1)   # lose everything in [t0, t1)
#   pair.server_to_client.loss = 0.05            # random loss (seeded)
#
# Each direction (a Link) has a one-way delay, drop patterns by datagram
# index or time window, random loss, reordering (extra random delay) and
# duplication, all from one seeded random.Random so runs repeat exactly.
# The driver delivers datagrams and fires timers in time order; `log`
# records what happened (sends, drops, deliveries, timers, events) with the
# simulated time, for tests that pin exact sequences.
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from cryptography.hazmat.primitives import serialization

from pyquic.config import QuicConfiguration
from pyquic.connection import QuicConnection
from pyquic.packet import split_datagram
from tests.pki import VALID_NOW, make_test_pki

CLIENT_ADDR = ("10.0.0.1", 4433)
SERVER_ADDR = ("10.0.0.2", 443)
WALL_CLOCK_BASE = VALID_NOW.timestamp()


def client_configuration(**kwargs) -> QuicConfiguration:
    pki = make_test_pki()
    kwargs.setdefault("alpn_protocols", ["hq-test"])
    kwargs.setdefault("server_name", "localhost")
    config = QuicConfiguration(is_client=True, **kwargs)
    config.cadata = pki.ca.public_bytes(serialization.Encoding.PEM)
    config.wall_clock = lambda: WALL_CLOCK_BASE
    return config


def server_configuration(**kwargs) -> QuicConfiguration:
    pki = make_test_pki()
    kwargs.setdefault("alpn_protocols", ["hq-test"])
    config = QuicConfiguration(is_client=False, **kwargs)
    config.certificate = pki.server.chain[0]
    config.certificate_chain = pki.server.chain[1:]
    config.private_key = pki.server.key
    config.wall_clock = lambda: WALL_CLOCK_BASE
    return config


def seeded_entropy(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


@dataclass
class Link:
    """One direction of the simulated path."""

    delay: float = 0.05
    drop_nth: set = field(default_factory=set)  # indexes (0-based) of datagrams to lose
    blackhole: Optional[tuple[float, float]] = None  # lose everything sent in [start, end)
    loss: float = 0.0
    reorder: float = 0.0  # probability of an extra delay
    reorder_delay: float = 0.02
    duplicate: float = 0.0
    drop_if: Optional[Callable[[bytes], bool]] = None  # lose datagrams this says yes to
    # The ECN codepoint a datagram arrives with, from the one it was sent with
    # (None: the path carries no marks, every datagram arrives not-ECT).
    ecn: Optional[Callable[[int], int]] = None
    sent: int = 0
    dropped: int = 0


class Pair:
    def __init__(
        self,
        client_config: Optional[QuicConfiguration] = None,
        server_config: Optional[QuicConfiguration] = None,
        *,
        rtt: float = 0.1,
        seed: int = 1,
        server_factory: Optional[Callable[[bytes], Any]] = None,
        client: Any = None,
        start: float = 0.0,
    ) -> None:
        self.now = start
        self.rng = random.Random(seed)
        self.client_config = client_config or client_configuration()
        self.server_config = server_config or server_configuration()
        self.client_to_server = Link(delay=rtt / 2)
        self.server_to_client = Link(delay=rtt / 2)
        self.client = client if client is not None else QuicConnection(
            configuration=self.client_config, entropy=seeded_entropy(seed)
        )
        self.server: Any = None
        self._server_factory = server_factory or self._make_server
        self._seed = seed
        self._queue: list = []
        self._seq = 0
        self.log: list[tuple] = []
        self.client_events: list = []
        self.server_events: list = []
        self.bytes_sent = {"client": 0, "server": 0}
        # Endpoints touched since their last datagrams_to_send / get_timer.
        self._dirty = {"client", "server"}
        self._timers: dict[str, Optional[float]] = {}
        self.record_events = True
        # Where the client's datagrams seem to come from (change it to model
        # a NAT rebinding); the server's datagrams to any other address are lost.
        self.client_addr: Any = CLIENT_ADDR
        self.misrouted = 0

    def _make_server(self, odcid: bytes) -> QuicConnection:
        return QuicConnection(
            configuration=self.server_config,
            original_destination_connection_id=odcid,
            entropy=seeded_entropy(self._seed + 1000),
        )

    # -- driving --------------------------------------------------------------
    def connect(self) -> None:
        self.client.connect(SERVER_ADDR, now=self.now)

    def _endpoints(self):
        out = [("client", self.client, self.client_to_server)]
        if self.server is not None:
            out.append(("server", self.server, self.server_to_client))
        return out

    def flush(self, everyone: bool = True) -> None:
        """Collect what both sides (or those touched since) send now, and
        put it on the links."""
        for who, conn, link in self._endpoints():
            if everyone or who in self._dirty:
                datagrams = conn.datagrams_to_send(now=self.now)
                codepoint = getattr(conn, "ecn_codepoint", 0)
                for data, addr in datagrams:
                    self._transmit(who, link, data, addr, codepoint)
                self._timers[who] = conn.get_timer()
        self._dirty.clear()

    def _transmit(self, who: str, link: Link, data: bytes, addr: Any = None, codepoint: int = 0) -> None:
        if who == "server" and addr is not None and addr != self.client_addr:
            # The client no longer has that address (a NAT rebinding moved it).
            self.misrouted += 1
            self.log.append((self.now, who, "misrouted", addr, len(data)))
            return
        index = link.sent
        link.sent += 1
        self.bytes_sent[who] += len(data)
        lost = index in link.drop_nth
        if link.blackhole is not None and link.blackhole[0] <= self.now < link.blackhole[1]:
            lost = True
        if link.loss and self.rng.random() < link.loss:
            lost = True
        if link.drop_if is not None and link.drop_if(data):
            lost = True
        if lost:
            link.dropped += 1
            self.log.append((self.now, who, "lost", index, len(data)))
            return
        self.log.append((self.now, who, "sent", index, len(data)))
        copies = 2 if link.duplicate and self.rng.random() < link.duplicate else 1
        for _ in range(copies):
            delay = link.delay
            if link.reorder and self.rng.random() < link.reorder:
                delay += self.rng.random() * link.reorder_delay
            self._seq += 1
            dst = "server" if who == "client" else "client"
            ecn = link.ecn(codepoint) if link.ecn is not None else 0
            heapq.heappush(self._queue, (self.now + delay, self._seq, dst, data, self.client_addr, ecn))

    def _deliver(self, dst: str, data: bytes, client_addr: Any = CLIENT_ADDR, ecn: int = 0) -> None:
        marks = {"ecn": ecn} if ecn else {}  # aioquic's connection (some tests drive it) takes none
        if dst == "server":
            if self.server is None:
                packets, _ = split_datagram(data, 8)
                if not packets:
                    return
                self.server = self._server_factory(packets[0][0].destination_cid)
            self.log.append((self.now, "server", "received", len(data)))
            self.server.receive_datagram(data, client_addr, now=self.now, **marks)
        else:
            self.log.append((self.now, "client", "received", len(data)))
            self.client.receive_datagram(data, SERVER_ADDR, now=self.now, **marks)
        self._dirty.add(dst)
        self._collect_events()

    def _collect_events(self) -> None:
        for who, conn, _ in self._endpoints():
            target = self.client_events if who == "client" else self.server_events
            while True:
                event = conn.next_event()
                if event is None:
                    break
                target.append(event)
                if self.record_events:
                    self.log.append((self.now, who, "event", event))

    def next_time(self) -> Optional[float]:
        """The next delivery or timer (timers as of the last flush)."""
        times = []
        if self._queue:
            times.append(self._queue[0][0])
        for who, conn, _ in self._endpoints():
            timer = self._timers.get(who, conn.get_timer()) if who not in self._dirty else conn.get_timer()
            if timer is not None:
                times.append(timer)
        return min(times) if times else None

    def step(self) -> bool:
        """Send what is due, then advance to the next delivery or timer; an
        endpoint's datagrams are collected after each thing that happens to it."""
        self.flush(everyone=False)
        t = self.next_time()
        if t is None:
            return False
        self.now = max(self.now, t)
        while self._queue and self._queue[0][0] <= self.now:
            _, _, dst, data, client_addr, ecn = heapq.heappop(self._queue)
            self._deliver(dst, data, client_addr, ecn)
        for who, conn, _ in self._endpoints():
            timer = conn.get_timer()
            if timer is not None and timer <= self.now:
                self.log.append((self.now, who, "timer", timer))
                conn.handle_timer(now=self.now)
                self._dirty.add(who)
                self._collect_events()
        return True

    def drive(self, duration: float = 30.0, *, quiet_gap: float = 5.0, max_steps: int = 1_000_000) -> None:
        """Run until nothing is in flight and no timer is due within quiet_gap
        (or `duration` has passed)."""
        end = self.now + duration
        self.flush()  # the caller may have queued data on either side
        for _ in range(max_steps):
            self.flush(everyone=False)
            if not self._queue:
                t = self.next_time()
                if t is None or t - self.now >= quiet_gap:
                    return
            t = self.next_time()
            if t is None or t > end:
                return
            self.step()

    def drive_until(self, predicate: Callable[[], bool], duration: float = 60.0, max_steps: int = 1_000_000) -> bool:
        end = self.now + duration
        self.flush()
        for _ in range(max_steps):
            if predicate():
                return True
            self.flush(everyone=False)
            t = self.next_time()
            if t is None or t > end:
                return predicate()
            self.step()
        return predicate()

    # -- helpers --------------------------------------------------------------
    def handshake(self) -> None:
        self.connect()
        assert self.drive_until(lambda: self.server is not None and self.client.handshake_complete
                                and self.server.handshake_complete), "handshake did not complete"

    def received(self, who: str, stream_id: int) -> bytes:
        from pyquic.events import StreamDataReceived

        events = self.client_events if who == "client" else self.server_events
        return b"".join(e.data for e in events if isinstance(e, StreamDataReceived) and e.stream_id == stream_id)

    def upload(self, data: bytes) -> bytes:
        """`data` on a new client stream, ended; the link driven until quiet;
        what the server received on that stream."""
        sid = self.client.get_next_available_stream_id()
        self.client.send_stream_data(sid, data, end_stream=True)
        self.drive()
        return self.received("server", sid)

    def events_of(self, who: str, kind: type) -> list:
        events = self.client_events if who == "client" else self.server_events
        return [e for e in events if isinstance(e, kind)]


class EndpointServer:
    """Adapts a QuicEndpoint to the Pair's server slot (one client)."""

    def __init__(self, endpoint: Any) -> None:
        self.endpoint = endpoint

    @property
    def connection(self) -> Any:
        conns = self.endpoint.connections
        return conns[0] if conns else None

    def receive_datagram(self, data: bytes, addr: Any, now: float, ecn: int = 0) -> None:
        self.endpoint.receive_datagram(data, addr, now, ecn)

    def datagrams_to_send(self, now: float) -> list:
        return self.endpoint.datagrams_to_send(now)

    def get_timer(self) -> Optional[float]:
        return self.endpoint.get_timer()

    def handle_timer(self, now: float) -> None:
        self.endpoint.handle_timer(now)

    def next_event(self) -> Any:
        for conn in self.endpoint.connections:
            event = conn.next_event()
            if event is not None:
                return event
        return None

    @property
    def handshake_complete(self) -> bool:
        conn = self.connection
        return conn is not None and conn.handshake_complete

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


def endpoint_pair(server_config: Optional[QuicConfiguration] = None, **endpoint_kwargs) -> tuple[Pair, Any]:
    from pyquic.endpoint import QuicEndpoint

    config = server_config or server_configuration()
    endpoint = QuicEndpoint(config, entropy=seeded_entropy(7), **endpoint_kwargs)
    server = EndpointServer(endpoint)
    pair = Pair(server_config=config, server_factory=lambda odcid: server)
    return pair, endpoint


def craft_short_packet(sender: QuicConnection, payload: bytes, *, first_byte_bits: int = 0) -> bytes:
    """A 1-RTT packet from `sender` (its keys, CIDs and next packet number)
    carrying an arbitrary plaintext payload: for injecting peer misbehaviour."""
    from pyquic.packet_builder import _short_header

    kp = sender._one_rtt
    space = sender._spaces[2]
    pn = space.next_pn
    space.next_pn += 1
    header = bytearray(_short_header(sender._peer_cids.cid, pn, 4, kp.send_phase))
    header[0] |= first_byte_bits
    body = bytes(payload)
    if len(body) < 4:
        body += bytes(4 - len(body))  # PADDING keeps the sample in range
    return kp.send.protection.protect(bytes(header), body, pn)


def craft_long_packet(sender: QuicConnection, space_id: int, payload: bytes) -> bytes:
    """An Initial (0) or Handshake (1) packet from `sender` with this payload."""
    from pyquic.packet import PacketType, encode_long_header

    space = sender._spaces[space_id]
    pn = space.next_pn
    space.next_pn += 1
    ptype = PacketType.INITIAL if space_id == 0 else PacketType.HANDSHAKE
    body = bytes(payload)
    if len(body) < 4:
        body += bytes(4 - len(body))
    header = encode_long_header(
        sender.version, ptype, sender._peer_cids.cid, sender.host_cid, pn, 4,
        token=sender._token if space_id == 0 else b"", payload_length=len(body) + 16,
    )
    return space.send_keys.protection.protect(bytes(header), body, pn)
