# Our UDP socket layer for asyncio (instead of loop.create_datagram_endpoint,
# whose transport costs a callback, an address tuple and a bytes object per
# datagram and tops out near 45k datagrams/s).  Owns:
#   - creating and tuning the socket (non-blocking, SO_RCVBUF/SO_SNDBUF raised,
#     IPv4 or IPv6), and detecting UDP GSO/GRO at run time with a fallback;
#   - receiving: one loop.add_reader callback drains the socket with
#     recvmsg_into into ONE reused buffer, splits GRO super-datagrams into
#     memoryview segments without copying, and hands each to the receiver;
#     the number of recvmsg calls per wake-up is bounded so one busy socket
#     cannot starve the event loop;
#   - sending: sendmsg with a UDP_SEGMENT cmsg for runs of equal-size
#     datagrams (GSO: one syscall for up to 64 packets), sendto otherwise;
#   - ECN (RFC 3168 codepoints, for RFC 9000 §13.4): with ``ecn=True`` the
#     socket asks for each datagram's TOS / traffic class (IP_RECVTOS,
#     IPV6_RECVTCLASS) and gives its low two bits to the receiver; a send
#     given a codepoint carries it in an IP_TOS (IPv4, also v4-mapped on a
#     dual-stack socket) or IPV6_TCLASS cmsg;
#     EAGAIN queues the rest (copied, bounded) and waits with add_writer,
#     telling the receiver to pause and resume its transmissions;
#   - UdpStats: counters the tests and the benchmark read (GSO sends, GRO
#     segments, EAGAIN, drops).
# No QUIC here: datagrams in, datagrams out.
from __future__ import annotations

import asyncio
import errno
import socket
import sys
from collections import deque
from typing import Any, Optional, Protocol, Sequence, Union

Address = Any  # (host, port) or (host, port, flowinfo, scope_id)
BytesLike = Union[bytes, bytearray, memoryview]

# Linux constants (not all are exported by the socket module).
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = 103  # GSO: u16 segment size, per socket or per sendmsg cmsg
UDP_GRO = 104  # GRO: int segment size arrives in a cmsg
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

# The kernel refuses a GSO send of more than 64 segments (UDP_MAX_SEGMENTS)
# or whose payload does not fit one IP datagram (65507 bytes over IPv4).
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65507
# A GRO super-datagram is at most 64 KiB; one spare byte lets MSG_TRUNC show.
RECV_BUFFER_SIZE = 65536 + 1
# One readiness callback stops after RECV_BURST recvmsg calls or
# RECV_BURST_DATAGRAMS datagrams (GRO packs up to 64 per call), whichever
# comes first: other callbacks get a turn, and the receiver's datagrams_done()
# -- its transmit, hence its ACKs -- is not held back for thousands of packets.
RECV_BURST = 64
# Measured on loopback (bench/bench_quic.py, 50 MB): 4096 -> ~85 MB/s each
# way, 128..256 -> ~135-145 MB/s: ACK clocking beats bigger batches.
RECV_BURST_DATAGRAMS = 256
DEFAULT_SOCKET_BUFFER = 4 << 20
# EAGAIN queue bounds: past them new datagrams are dropped (and counted);
# QUIC's loss recovery treats that like any other loss.
SEND_QUEUE_MAX_ITEMS = 4096
SEND_QUEUE_MAX_BYTES = 8 << 20

_CMSG_SPACE_INT = socket.CMSG_SPACE(4)
_CMSG_SPACE_RECV = 2 * socket.CMSG_SPACE(4)  # GRO's segment size and the TOS / traffic class
IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
IPV6_RECVTCLASS = getattr(socket, "IPV6_RECVTCLASS", 66)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
_IPPROTO_IP = socket.IPPROTO_IP
# RFC 9000 §14: no IP fragmentation, DF set.  The PROBE mode sets DF and
# leaves out the kernel's path MTU cache: a datagram too large for the path
# is lost (or refused with EMSGSIZE by the interface), which is what the
# path MTU search (pyquic/pmtud.py) needs to see.
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_PROBE = getattr(socket, "IP_PMTUDISC_PROBE", 3)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
IPV6_PMTUDISC_PROBE = getattr(socket, "IPV6_PMTUDISC_PROBE", 3)
_IPPROTO_IPV6 = socket.IPPROTO_IPV6
_IP_TOS = socket.IP_TOS
# A plain int: `flags & socket.MSG_TRUNC` would go through IntFlag.__rand__
# (enum machinery) for every datagram received.
_MSG_TRUNC = int(socket.MSG_TRUNC)
# GSO failures that mean "this path cannot segment" (e.g. no checksum
# offload on the device): fall back to one sendto per datagram for good.
_GSO_UNSUPPORTED = {errno.EIO, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOPROTOOPT}
_NATIVE = sys.byteorder


class DatagramReceiver(Protocol):
    """What UdpSocket calls.  ``data`` is a view into a reused buffer: it is
    valid only during the call (copy what must outlive it).  A socket made
    with ``ecn=True`` passes the datagram's ECN codepoint as a third
    argument (to datagram_batch_received a fourth)."""

    def datagram_received(self, data: memoryview, addr: Address) -> None: ...

    # Optional: datagram_batch_received(data, segment_size, addr) takes a whole
    # GRO batch (datagrams back to back, segment_size bytes each, the last
    # may be shorter); without it each datagram comes to datagram_received.

    def datagrams_done(self) -> None:
        """End of one drain of the socket: the moment to transmit."""

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


class UdpStats:
    """Counters for tests and the benchmark; plain ints, no locking (one loop)."""

    __slots__ = (
        "datagrams_sent", "bytes_sent", "send_calls", "gso_sends", "gso_segments",
        "datagrams_received", "bytes_received", "recv_calls", "gro_batches", "gro_segments",
        "wakeups", "eagain", "queued", "dropped", "send_errors", "recv_errors", "truncated",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"UdpStats({self.as_dict()})"


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size: int) -> int:
    """Raise a socket buffer: SO_*BUFFORCE ignores net.core.[rw]mem_max but
    needs CAP_NET_ADMIN; without it the plain option is capped by the sysctl."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError:
            pass
    return sock.getsockopt(socket.SOL_SOCKET, opt)


def probe_gso(sock: socket.socket) -> bool:
    # getsockopt(UDP_SEGMENT) exists exactly where the per-call cmsg does
    # (Linux >= 4.18); a real send failure later still turns GSO off.
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
        return True
    except OSError:
        return False


def enable_gro(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        return True
    except OSError:
        return False


def enable_ecn_receive(sock: socket.socket) -> bool:
    """Ask for each datagram's TOS (IPv4) and traffic class (IPv6; a
    dual-stack socket gets IPv4 datagrams' TOS too).  False where refused."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(_IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
            try:
                sock.setsockopt(_IPPROTO_IP, IP_RECVTOS, 1)  # v4-mapped peers
            except OSError:
                pass
        else:
            sock.setsockopt(_IPPROTO_IP, IP_RECVTOS, 1)
        return True
    except OSError:
        return False


def ecn_cmsg(family: int, addr: Address, ecn: int) -> tuple:
    """The cmsg that marks a datagram to ``addr`` with ``ecn``."""
    if family == socket.AF_INET6 and not str(addr[0]).startswith("::ffff:"):
        return (_IPPROTO_IPV6, IPV6_TCLASS, ecn.to_bytes(4, _NATIVE))
    return (_IPPROTO_IP, _IP_TOS, ecn.to_bytes(4, _NATIVE))


def set_dont_fragment(sock: socket.socket) -> bool:
    """DF on, no local fragmentation (see IP_PMTUDISC_PROBE above); on an
    IPv6 socket for its IPv4-mapped peers too.  False where the system refuses."""
    done = False
    if sock.family == socket.AF_INET6:
        try:
            sock.setsockopt(_IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
            done = True
        except OSError:
            pass
    try:
        sock.setsockopt(_IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        done = True
    except OSError:
        pass
    return done


def create_socket(host: str, port: int, *, family: int = 0, reuse_port: bool = False) -> socket.socket:
    """A bound non-blocking UDP socket that never fragments (set_dont_fragment).
    ``family`` 0 picks it from ``host``; AF_INET6 bound to '::' is dual-stack
    (IPv4 peers appear as ::ffff:a.b.c.d)."""
    if not family:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host in ("::", "") else 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port, 0, 0) if family == socket.AF_INET6 else (host, port))
        set_dont_fragment(sock)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpSocket:
    """A UDP socket driven by loop.add_reader/add_writer, with GSO and GRO.

    ``receiver`` gets each datagram, then ``datagrams_done()`` once per
    wake-up.  ``send`` and ``send_batch`` never block and never raise for
    network errors (UDP is lossy; QUIC recovers): failures are counted.
    """

    def __init__(
        self,
        sock: socket.socket,
        receiver: DatagramReceiver,
        *,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        gso: Optional[bool] = None,
        gro: Optional[bool] = None,
        buffer_size: int = DEFAULT_SOCKET_BUFFER,
        ecn: bool = False,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        self._receiver = receiver
        self.stats = UdpStats()
        sock.setblocking(False)
        self.rcvbuf = _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, buffer_size)
        self.sndbuf = _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, buffer_size)
        # None = detect; False = forced off (tests exercise the fallbacks).
        self.gso = probe_gso(sock) if gso is None else (gso and probe_gso(sock))
        self.gro = enable_gro(sock) if (gro is None or gro) else False
        self.ecn = enable_ecn_receive(sock) if ecn else False
        self._buffer = bytearray(RECV_BUFFER_SIZE)
        # Read-only: receivers cannot scribble on the shared buffer.
        self._view = memoryview(self._buffer).toreadonly()
        # Entries: (payload, segment_size or 0, addr, ecn); payloads are our own copies.
        self._queue: deque[tuple[bytes, int, Address, int]] = deque()
        self._queued_bytes = 0
        self._writer_armed = False
        self._paused = False
        self._closed = False
        self._loop.add_reader(self._fd, self._on_readable)

    # -- properties ------------------------------------------------------------------

    @property
    def socket(self) -> socket.socket:
        return self._sock

    def getsockname(self) -> Address:
        return self._sock.getsockname()

    @property
    def family(self) -> int:
        return self._sock.family

    @property
    def closed(self) -> bool:
        return self._closed

    def is_writable(self) -> bool:
        """False while datagrams wait for the socket (EAGAIN): callers should
        leave packets in QUIC's hands rather than pile them up here."""
        return not self._queue

    # -- receiving -------------------------------------------------------------------

    def _on_readable(self) -> None:
        stats = self.stats
        stats.wakeups += 1
        recvmsg_into = self._sock.recvmsg_into
        bufs = [self._buffer]
        view = self._view
        deliver = self._receiver.datagram_received
        deliver_batch = getattr(self._receiver, "datagram_batch_received", None)
        with_ecn = self.ecn
        cmsg_space = _CMSG_SPACE_RECV if with_ecn else _CMSG_SPACE_INT
        budget = RECV_BURST_DATAGRAMS
        try:
            for _ in range(RECV_BURST):
                if budget <= 0:
                    break
                try:
                    nbytes, ancdata, flags, addr = recvmsg_into(bufs, cmsg_space)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    # e.g. ECONNREFUSED queued by an ICMP error: nothing to read.
                    stats.recv_errors += 1
                    continue
                stats.recv_calls += 1
                if flags & _MSG_TRUNC or nbytes >= RECV_BUFFER_SIZE:
                    stats.truncated += 1
                    continue
                stats.bytes_received += nbytes
                segment = 0
                ecn = 0
                for level, kind, cdata in ancdata:
                    if level == SOL_UDP and kind == UDP_GRO:
                        segment = int.from_bytes(cdata[:4], _NATIVE)
                    elif (level == _IPPROTO_IP and kind == _IP_TOS) or (level == _IPPROTO_IPV6 and kind == IPV6_TCLASS):
                        # IP_TOS: one byte; IPV6_TCLASS: a native int.
                        ecn = (int.from_bytes(cdata[:4], _NATIVE) if len(cdata) >= 4 else cdata[0]) & 3
                if segment and segment < nbytes:
                    # A GRO super-datagram: equal segments, the last may be shorter.
                    stats.gro_batches += 1
                    count = -(-nbytes // segment)
                    if deliver_batch is not None:
                        if with_ecn:
                            deliver_batch(view[:nbytes], segment, addr, ecn)
                        else:
                            deliver_batch(view[:nbytes], segment, addr)
                        if self._closed:
                            return
                    else:
                        for start in range(0, nbytes, segment):
                            if with_ecn:
                                deliver(view[start:min(start + segment, nbytes)], addr, ecn)
                            else:
                                deliver(view[start:min(start + segment, nbytes)], addr)
                            if self._closed:
                                return
                    stats.gro_segments += count
                    stats.datagrams_received += count
                    budget -= count
                else:
                    stats.datagrams_received += 1
                    budget -= 1
                    if with_ecn:
                        deliver(view[:nbytes], addr, ecn)
                    else:
                        deliver(view[:nbytes], addr)
                    if self._closed:
                        return
        finally:
            if not self._closed:
                self._receiver.datagrams_done()

    # -- sending ---------------------------------------------------------------------

    def send(self, data: BytesLike, addr: Address, ecn: int = 0) -> None:
        """Send one datagram (with the ECN codepoint ``ecn``, 0: not-ECT)."""
        if self._closed:
            return
        if self._queue:
            self._enqueue(bytes(data), 0, addr, ecn)
            return
        try:
            if ecn:
                self._sock.sendmsg([data], [ecn_cmsg(self._sock.family, addr, ecn)], 0, addr)
            else:
                self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.stats.eagain += 1
            self._enqueue(bytes(data), 0, addr, ecn)
            return
        except OSError:
            self.stats.send_errors += 1
            return
        stats = self.stats
        stats.send_calls += 1
        stats.datagrams_sent += 1
        stats.bytes_sent += len(data)

    def send_batch(self, data: BytesLike, segment_size: int, addr: Address, ecn: int = 0) -> None:
        """Send ``data`` as datagrams of ``segment_size`` bytes (the last may be
        shorter), with GSO where possible, split to respect the kernel's limits."""
        length = len(data)
        if segment_size <= 0 or segment_size >= length:
            self.send(data, addr, ecn)
            return
        if not self.gso:
            view = memoryview(data)
            for start in range(0, length, segment_size):
                self.send(view[start:start + segment_size], addr, ecn)
            return
        per_call = min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // segment_size) * segment_size
        if per_call <= segment_size:
            self.send(data, addr, ecn)  # absurd segment size: let sendto fail and count
            return
        view = memoryview(data)
        for start in range(0, length, per_call):
            self._send_gso(view[start:start + per_call], segment_size, addr, ecn)

    def send_datagrams(self, datagrams: Sequence[BytesLike], addr: Address, ecn: int = 0) -> None:
        """Send a list of datagrams to one address: runs of equal size (a shorter
        one may end a run) go out as GSO sends via scatter-gather, no joining."""
        n = len(datagrams)
        if not self.gso or n < 2:
            for d in datagrams:
                self.send(d, addr, ecn)
            return
        i = 0
        while i < n:
            size = len(datagrams[i])
            limit = min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // max(size, 1))
            j = i + 1
            while j < n and j - i < limit and len(datagrams[j]) == size:
                j += 1
            if j < n and j - i < limit and len(datagrams[j]) < size:
                j += 1  # a shorter last segment is allowed
            if j - i == 1:
                self.send(datagrams[i], addr, ecn)
            else:
                self._send_gso(datagrams[i:j], size, addr, ecn)
            i = j

    def _gso_cmsgs(self, segment_size: int, addr: Address, ecn: int) -> list:
        cmsgs = [(SOL_UDP, UDP_SEGMENT, segment_size.to_bytes(2, _NATIVE))]
        if ecn:
            cmsgs.append(ecn_cmsg(self._sock.family, addr, ecn))
        return cmsgs

    def _send_gso(self, data: Union[BytesLike, Sequence[BytesLike]], segment_size: int, addr: Address,
                  ecn: int = 0) -> None:
        if self._closed:
            return
        if isinstance(data, (list, tuple)):
            buffers = data
            length = sum(map(len, data))
        else:
            buffers = (data,)
            length = len(data)
        if length <= segment_size:
            self.send(b"".join(buffers) if len(buffers) > 1 else buffers[0], addr, ecn)
            return
        if self._queue:
            self._enqueue(b"".join(buffers), segment_size, addr, ecn)
            return
        try:
            self._sock.sendmsg(buffers, self._gso_cmsgs(segment_size, addr, ecn), 0, addr)
        except (BlockingIOError, InterruptedError):
            self.stats.eagain += 1
            self._enqueue(b"".join(buffers), segment_size, addr, ecn)
            return
        except OSError as exc:
            if exc.errno in _GSO_UNSUPPORTED:
                # The path cannot segment: stop trying, resend this batch plainly.
                self.gso = False
                joined = memoryview(b"".join(buffers))
                for start in range(0, length, segment_size):
                    self.send(joined[start:start + segment_size], addr, ecn)
            else:
                self.stats.send_errors += 1
            return
        stats = self.stats
        count = -(-length // segment_size)
        stats.send_calls += 1
        stats.gso_sends += 1
        stats.gso_segments += count
        stats.datagrams_sent += count
        stats.bytes_sent += length

    # -- the EAGAIN queue ---------------------------------------------------------------

    def _enqueue(self, payload: bytes, segment_size: int, addr: Address, ecn: int = 0) -> None:
        if len(self._queue) >= SEND_QUEUE_MAX_ITEMS or self._queued_bytes + len(payload) > SEND_QUEUE_MAX_BYTES:
            self.stats.dropped += 1
            return
        self._queue.append((payload, segment_size, addr, ecn))
        self._queued_bytes += len(payload)
        self.stats.queued += 1
        if not self._writer_armed:
            self._writer_armed = True
            self._loop.add_writer(self._fd, self._on_writable)
        if not self._paused:
            self._paused = True
            self._receiver.pause_writing()

    def _on_writable(self) -> None:
        queue = self._queue
        sock = self._sock
        stats = self.stats
        while queue:
            payload, segment_size, addr, ecn = queue[0]
            try:
                if segment_size:
                    sock.sendmsg([payload], self._gso_cmsgs(segment_size, addr, ecn), 0, addr)
                elif ecn:
                    sock.sendmsg([payload], [ecn_cmsg(sock.family, addr, ecn)], 0, addr)
                else:
                    sock.sendto(payload, addr)
            except (BlockingIOError, InterruptedError):
                stats.eagain += 1
                return  # still full: stay armed
            except OSError:
                stats.send_errors += 1
            else:
                count = -(-len(payload) // segment_size) if segment_size else 1
                stats.send_calls += 1
                stats.datagrams_sent += count
                stats.bytes_sent += len(payload)
                if segment_size:
                    stats.gso_sends += 1
                    stats.gso_segments += count
            queue.popleft()
            self._queued_bytes -= len(payload)
        self._loop.remove_writer(self._fd)
        self._writer_armed = False
        if self._paused:
            self._paused = False
            self._receiver.resume_writing()

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._writer_armed:
            self._loop.remove_writer(self._fd)
            self._writer_armed = False
        self._queue.clear()
        self._queued_bytes = 0
        self._sock.close()
