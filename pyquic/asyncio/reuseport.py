# One UDP port, N worker processes (Linux SO_REUSEPORT), and a classic BPF
# program on the group (SO_ATTACH_REUSEPORT_CBPF) that steers each datagram
# to the worker that owns its connection.  Owns
#   - the steering rule: worker = (first octet of the Destination
#     Connection ID & 0x1f) mod N, read at offset 1 of a short header and 6
#     of a long one (the kernel runs the program on the UDP payload);
#   - WorkerCids: the connection IDs a worker issues carry its index in those
#     five bits (the rest random), so every packet of its connections comes
#     back to it, after migration and rotation too; a client's first
#     Initials carry an ID the client chose, whose bits spread new
#     connections over the workers (the client's retransmissions with the
#     same ID land together; then it uses the worker's own IDs);
#   - reuseport_sockets(): the group's sockets in order (the kernel numbers
#     them by the order they joined) with the program attached.
# With QUIC-LB (quic_lb.LbEncoder, encode_length=False) the same five bits
# carry the worker index beside the encrypted server ID.  The five bits are
# visible: they tell an observer which of N workers a connection is on
# (log2 N bits that link a connection's IDs), the price of steering in the
# kernel without a key.  A worker that dies leaves the group and shifts the
# numbering: restart the whole group.
from __future__ import annotations

import ctypes
import socket
import struct
from typing import Callable

from ..errors import UsageError
from .udp import create_socket

__all__ = ["MAX_WORKERS", "WorkerCids", "reuseport_sockets", "steering_program", "worker_of"]

MAX_WORKERS = 32  # five bits
SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)

# Classic BPF (linux/filter.h)
_LD_B_ABS = 0x30  # A = payload[k]
_JSET_K = 0x45  # if A & k: jt else jf
_JA = 0x05  # jump k
_AND_K = 0x54  # A &= k
_MOD_K = 0x94  # A %= k
_RET_A = 0x16  # return A (the socket's index in the group)


def steering_program(workers: int) -> list[tuple[int, int, int, int]]:
    """The program as (code, jt, jf, k) instructions."""
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"1..{MAX_WORKERS} workers")
    return [
        (_LD_B_ABS, 0, 0, 0),  # 0: the first octet
        (_JSET_K, 2, 0, 0x80),  # 1: long header? to 4
        (_LD_B_ABS, 0, 0, 1),  # 2: short: the DCID's first octet
        (_JA, 0, 0, 1),  # 3: to 5
        (_LD_B_ABS, 0, 0, 6),  # 4: long: the DCID's first octet (after type, version, length)
        (_AND_K, 0, 0, 0x1F),  # 5
        (_MOD_K, 0, 0, workers),  # 6
        (_RET_A, 0, 0, 0),  # 7
    ]


def worker_of(datagram: bytes, workers: int) -> int:
    """What the program computes, in Python (for tests and the stray count)."""
    if not datagram:
        return 0
    offset = 6 if datagram[0] & 0x80 else 1
    if len(datagram) <= offset:
        return 0  # the kernel's program fails its load and returns 0
    return (datagram[offset] & 0x1F) % workers


class WorkerCids:
    """A connection-ID generator (QuicConfiguration.connection_id_generator)
    for worker `index`: random IDs of `length` octets whose first octet's
    five low bits are the index."""

    def __init__(self, index: int, length: int, entropy: Callable[[int], bytes]) -> None:
        if not 0 <= index < MAX_WORKERS or length < 1:
            raise UsageError("a worker index is 0..31, a connection ID at least one octet")
        self.index = index
        self.length = length
        self.entropy = entropy

    def __call__(self) -> bytes:
        cid = bytearray(self.entropy(self.length))
        cid[0] = cid[0] & 0xE0 | self.index
        return bytes(cid)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach_steering(sock: socket.socket, workers: int) -> None:
    """Attach the program to `sock`'s reuseport group."""
    program = steering_program(workers)
    filters = (_SockFilter * len(program))(*[_SockFilter(*insn) for insn in program])
    fprog = _SockFprog(len(program), ctypes.cast(filters, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                    ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog)))


def reuseport_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """`workers` sockets bound to host:port with SO_REUSEPORT, in group order,
    the steering program attached.  Port 0: the first picks one, the rest
    join it."""
    socks: list[socket.socket] = []
    try:
        for _ in range(workers):
            sock = create_socket(host, port, reuse_port=True)
            socks.append(sock)
            port = sock.getsockname()[1]
        attach_steering(socks[0], workers)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _check_struct() -> None:  # the C layout the kernel reads: 8-octet instructions
    assert ctypes.sizeof(_SockFilter) == 8 and struct.calcsize("HBBI") == 8


_check_struct()
