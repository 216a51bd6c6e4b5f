# The asyncio UDP layer (pyquic/asyncio/udp.py) over loopback: GSO sends that
# a plain socket sees as separate datagrams, GRO receives split into the
# right segments without copies, the grouping of datagram lists into GSO
# runs, the fallbacks with GSO/GRO turned off, IPv6, and the EAGAIN path
# (loopback never returns EAGAIN -- the kernel orphans the skb at once -- so
# a socket wrapper injects it).  The kernel here has GSO and GRO; these tests
# check the counters to prove they were really used.
from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from pyquic.asyncio.udp import (
    SOL_UDP,
    UDP_SEGMENT,
    UdpSocket,
    create_socket,
    enable_gro,
    probe_gso,
)

TIMEOUT = 5.0


class Collector:
    """A DatagramReceiver that copies what it gets (views are only valid in the call)."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, object]] = []
        self.batches = 0
        self.paused = 0
        self.resumed = 0
        self.arrived = asyncio.Event()

    def datagram_received(self, data, addr) -> None:
        assert isinstance(data, memoryview)
        self.datagrams.append((bytes(data), addr))

    def datagrams_done(self) -> None:
        self.batches += 1
        self.arrived.set()

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    async def wait_for(self, count: int) -> None:
        async def loop():
            while len(self.datagrams) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(loop(), TIMEOUT)


def plain_receiver(family=socket.AF_INET):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(TIMEOUT)
    return sock


def recv_all(sock, count):
    return [sock.recv(65536) for _ in range(count)]


def test_this_kernel_has_gso_and_gro():
    # The project's reference machine does; if this fails, the counters below
    # would silently test the fallback instead.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert probe_gso(sock)
        assert enable_gro(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_gso_batch_arrives_as_separate_datagrams(family):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    peer = plain_receiver(family)
    udp = UdpSocket(create_socket(host, 0), Collector())
    try:
        assert udp.gso
        payload = b"".join(bytes([i]) * 1200 for i in range(10)) + b"z" * 700
        udp.send_batch(payload, 1200, peer.getsockname())
        got = recv_all(peer, 11)
        assert got[:10] == [bytes([i]) * 1200 for i in range(10)]
        assert got[10] == b"z" * 700
        assert udp.stats.gso_sends == 1
        assert udp.stats.gso_segments == 11
        assert udp.stats.datagrams_sent == 11
        assert udp.stats.send_calls == 1
    finally:
        udp.close()
        peer.close()


async def test_gso_batch_is_split_at_the_kernel_limits():
    peer = plain_receiver()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    udp = UdpSocket(create_socket("127.0.0.1", 0), Collector())
    try:
        # 150 segments of 1200 bytes: 64 per call is 76800 bytes > 65507, so
        # each call carries 54 segments: 54 + 54 + 42.
        payload = b"".join(i.to_bytes(2, "big") * 600 for i in range(150))
        udp.send_batch(payload, 1200, peer.getsockname())
        got = recv_all(peer, 150)
        assert got == [i.to_bytes(2, "big") * 600 for i in range(150)]
        assert udp.stats.gso_sends == 3
        assert udp.stats.gso_segments == 150
    finally:
        udp.close()
        peer.close()


async def test_send_datagrams_groups_equal_sizes_into_gso_runs():
    peer = plain_receiver()
    udp = UdpSocket(create_socket("127.0.0.1", 0), Collector())
    try:
        sizes = [1200] * 5 + [500] + [1200] * 3 + [1300] + [100]
        datagrams = [bytes([i]) * size for i, size in enumerate(sizes)]
        udp.send_datagrams(datagrams, peer.getsockname())
        assert recv_all(peer, len(sizes)) == datagrams
        # Runs: 5x1200+500 | 3x1200 | 1300+100 (a shorter last segment joins).
        assert udp.stats.gso_sends == 3
        assert udp.stats.send_calls == 3
        assert udp.stats.datagrams_sent == len(sizes)
    finally:
        udp.close()
        peer.close()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_gro_receive_splits_segments_without_copying(family):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    collector = Collector()
    udp = UdpSocket(create_socket(host, 0), collector)
    sender = socket.socket(family, socket.SOCK_DGRAM)
    try:
        assert udp.gro
        # A GSO send from another socket reaches a GRO socket as one
        # super-datagram; separate sendto()s on loopback are not coalesced.
        payload = b"".join(bytes([65 + i]) * 1000 for i in range(8)) + b"!" * 10
        sender.sendmsg([payload], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 1000))], 0, udp.getsockname())
        sender.sendto(b"single", udp.getsockname())
        await collector.wait_for(10)
        data = [d for d, _ in collector.datagrams]
        assert data[:8] == [bytes([65 + i]) * 1000 for i in range(8)]
        assert data[8] == b"!" * 10
        assert data[9] == b"single"
        assert {a[1] for _, a in collector.datagrams} == {sender.getsockname()[1]}
        assert udp.stats.gro_batches == 1
        assert udp.stats.gro_segments == 9
        assert udp.stats.datagrams_received == 10
        assert udp.stats.recv_calls == 2
    finally:
        udp.close()
        sender.close()


async def test_without_gro_the_kernel_segments_for_us():
    collector = Collector()
    udp = UdpSocket(create_socket("127.0.0.1", 0), collector, gro=False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        payload = b"".join(bytes([i]) * 1000 for i in range(5))
        sender.sendmsg([payload], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 1000))], 0, udp.getsockname())
        await collector.wait_for(5)
        assert [d for d, _ in collector.datagrams] == [bytes([i]) * 1000 for i in range(5)]
        assert udp.stats.gro_batches == 0
        assert udp.stats.recv_calls == 5
    finally:
        udp.close()
        sender.close()


async def test_without_gso_batches_go_out_one_by_one():
    peer = plain_receiver()
    udp = UdpSocket(create_socket("127.0.0.1", 0), Collector(), gso=False)
    try:
        udp.send_batch(b"a" * 1200 + b"b" * 1200 + b"c" * 10, 1200, peer.getsockname())
        assert recv_all(peer, 3) == [b"a" * 1200, b"b" * 1200, b"c" * 10]
        assert udp.stats.gso_sends == 0
        assert udp.stats.send_calls == 3
    finally:
        udp.close()
        peer.close()


async def test_drain_is_bounded_per_wakeup():
    collector = Collector()
    udp = UdpSocket(create_socket("127.0.0.1", 0), collector, gro=False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(200):
            sender.sendto(i.to_bytes(2, "big"), udp.getsockname())
        await collector.wait_for(200)
        assert [d for d, _ in collector.datagrams] == [i.to_bytes(2, "big") for i in range(200)]
        # 64 recvmsg per wake-up at most: at least 4 wake-ups, one done() each.
        assert udp.stats.wakeups >= 4
        assert collector.batches == udp.stats.wakeups
    finally:
        udp.close()
        sender.close()


class FlakySocket:
    """Delegates to a real socket, but the next `fail` sends raise EAGAIN."""

    def __init__(self, sock: socket.socket, fail: int) -> None:
        self._sock = sock
        self.fail = fail

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def _maybe_fail(self):
        if self.fail > 0:
            self.fail -= 1
            raise BlockingIOError(11, "Resource temporarily unavailable")

    def sendto(self, *args):
        self._maybe_fail()
        return self._sock.sendto(*args)

    def sendmsg(self, *args):
        self._maybe_fail()
        return self._sock.sendmsg(*args)


async def test_eagain_queues_in_order_and_resumes_with_add_writer():
    peer = plain_receiver()
    collector = Collector()
    flaky = FlakySocket(create_socket("127.0.0.1", 0), fail=2)
    udp = UdpSocket(flaky, collector)  # type: ignore[arg-type]
    try:
        dest = peer.getsockname()
        udp.send(b"first", dest)  # EAGAIN: queued, writer armed, receiver paused
        assert not udp.is_writable()
        assert collector.paused == 1
        buf = bytearray(b"x" * 1200 * 3)
        udp.send_batch(buf, 1200, dest)  # queued behind it (copied)
        buf[:] = b"y" * len(buf)  # the caller may reuse its buffer
        udp.send(b"last", dest)
        assert udp.stats.eagain == 1
        # The writable callback hits EAGAIN once more, then drains everything.
        got = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, recv_all, peer, 5), TIMEOUT)
        assert got == [b"first", b"x" * 1200, b"x" * 1200, b"x" * 1200, b"last"]
        assert udp.is_writable()
        assert collector.resumed == 1
        assert udp.stats.eagain == 2
        assert udp.stats.gso_sends == 1
        assert udp.stats.dropped == 0
    finally:
        udp.close()
        peer.close()


async def test_socket_buffers_are_raised():
    udp = UdpSocket(create_socket("127.0.0.1", 0), Collector(), buffer_size=2 << 20)
    try:
        # The kernel doubles the value it reports; as root SO_RCVBUFFORCE
        # passes net.core.rmem_max, otherwise the sysctl caps it.
        assert udp.rcvbuf >= 2 << 20 or udp.rcvbuf >= 2 * int(open("/proc/sys/net/core/rmem_max").read())
        assert udp.sndbuf > 212992
    finally:
        udp.close()


async def test_close_stops_everything():
    collector = Collector()
    udp = UdpSocket(create_socket("127.0.0.1", 0), collector)
    addr = udp.getsockname()
    udp.close()
    udp.close()
    assert udp.closed
    udp.send(b"ignored", addr)
    assert udp.stats.datagrams_sent == 0
