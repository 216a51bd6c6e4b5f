# Linux kernel TLS (kTLS) hand-off.  This module owns:
#   - detection: can this kernel take a TCP socket's TLS records
#     (setsockopt TCP_ULP "tls"), and if not, a clear reason why;
#   - the crypto_info structs of <linux/tls.h> for TLS 1.3 (AES-128-GCM,
#     AES-256-GCM, ChaCha20-Poly1305) built from the record layer's state;
#   - handing TX and RX keys to the kernel after the handshake (and again
#     after a KeyUpdate, on kernels that support TLS 1.3 rekeying);
#   - KernelTLS: sending and receiving through the kernel, with the record
#     type of non-application records in control messages (TLS_SET_RECORD_TYPE
#     / TLS_GET_RECORD_TYPE), so post-handshake messages (NewSessionTicket,
#     KeyUpdate) and alerts go back to the engine.
# When the kernel cannot take over, callers keep the user-space record layer
# (tls/record.py) and report the reason.  This file does socket I/O by design.
from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from .enums import AlertDescription, ContentType
from .errors import AlertError
from .record import CipherState

# <linux/tls.h>, <linux/tcp.h>
SOL_TLS = 282
TLS_TX = 1
TLS_RX = 2
TCP_ULP = 31
TLS_SET_RECORD_TYPE = 1  # cmsg type on sendmsg
TLS_GET_RECORD_TYPE = 2  # cmsg type on recvmsg
TLS_1_3_VERSION = 0x0304
TLS_CIPHER_AES_GCM_128 = 51
TLS_CIPHER_AES_GCM_256 = 52
TLS_CIPHER_CHACHA20_POLY1305 = 54
AVAILABLE_ULP_PATH = Path("/proc/sys/net/ipv4/tcp_available_ulp")
UNAVAILABLE_REASON = "kernel lacks the tls ULP (kTLS)"


@dataclass(frozen=True)
class KernelCipher:
    """One tls12_crypto_info_* layout: the fields after struct tls_crypto_info
    are iv, key, salt, rec_seq, in that order, unpadded (all unsigned char)."""

    cipher_type: int
    struct_name: str
    iv_size: int
    key_size: int
    salt_size: int
    rec_seq_size: int = 8

    @property
    def size(self) -> int:
        return 4 + self.iv_size + self.key_size + self.salt_size + self.rec_seq_size


KERNEL_CIPHERS: dict[int, KernelCipher] = {
    0x1301: KernelCipher(TLS_CIPHER_AES_GCM_128, "tls12_crypto_info_aes_gcm_128", 8, 16, 4),
    0x1302: KernelCipher(TLS_CIPHER_AES_GCM_256, "tls12_crypto_info_aes_gcm_256", 8, 32, 4),
    0x1303: KernelCipher(TLS_CIPHER_CHACHA20_POLY1305, "tls12_crypto_info_chacha20_poly1305", 12, 32, 0),
}


class KTLSUnavailable(Exception):
    """The kernel cannot take this socket's records; `reason` says why."""

    def __init__(self, reason: str, errno_: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno_


def crypto_info(state: CipherState) -> bytes:
    """The tls12_crypto_info_* bytes for TLS_TX / TLS_RX.

    The kernel forms the TLS 1.3 nonce as (salt || iv) XOR rec_seq, so the
    12-byte record iv splits into salt = its first 4 bytes and iv = its last
    8 for AES-GCM; ChaCha20-Poly1305 takes all 12 bytes as iv and no salt.
    rec_seq is the next sequence number, big-endian.
    """
    kc = KERNEL_CIPHERS.get(state.cipher_suite)
    if kc is None:
        raise KTLSUnavailable(f"no kernel cipher for suite 0x{state.cipher_suite:04x}")
    if len(state.key) != kc.key_size or len(state.iv) != kc.salt_size + kc.iv_size:
        raise ValueError("key or iv length does not match the suite")
    salt, iv = state.iv[: kc.salt_size], state.iv[kc.salt_size :]
    # struct tls_crypto_info { __u16 version; __u16 cipher_type; } in host order.
    return struct.pack("=HH", TLS_1_3_VERSION, kc.cipher_type) + iv + state.key + salt + state.seq.to_bytes(8, "big")


# ---------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class KTLSStatus:
    available: bool
    reason: str

    def __str__(self) -> str:
        return ("kTLS available: " if self.available else "kTLS unavailable: ") + self.reason


def _ulp_error_reason(err: OSError) -> str:
    if err.errno == errno.ENOENT:
        listed = available_ulps()
        detail = f" (tcp_available_ulp lists: {' '.join(listed) or 'nothing'})" if listed is not None else ""
        return f"{UNAVAILABLE_REASON}: setsockopt(TCP_ULP, 'tls') failed with ENOENT{detail}"
    name = errno.errorcode.get(err.errno or 0, str(err.errno))
    if err.errno == errno.EEXIST:
        return f"socket already has an upper-layer protocol (setsockopt TCP_ULP: {name})"
    if err.errno == errno.ENOTCONN:
        return f"socket is not a connected TCP socket (setsockopt TCP_ULP: {name})"
    if err.errno in (errno.ENOPROTOOPT, errno.EOPNOTSUPP):
        return f"{UNAVAILABLE_REASON}: kernel has no TCP_ULP support ({name})"
    return f"setsockopt(TCP_ULP, 'tls') failed: {name} {err.strerror}"


def available_ulps() -> list[str] | None:
    """The kernel's loaded TCP upper-layer protocols, or None if unknown."""
    try:
        return AVAILABLE_ULP_PATH.read_text().split()
    except OSError:
        return None


def attach_ulp(sock: socket.socket) -> None:
    """Put the "tls" ULP on a connected TCP socket (no keys yet: until
    TLS_TX/TLS_RX are set the socket passes bytes through unchanged)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
    except OSError as err:
        raise KTLSUnavailable(_ulp_error_reason(err), err.errno) from None


_probe_cache: KTLSStatus | None = None


def probe(refresh: bool = False) -> KTLSStatus:
    """Whether this kernel accepts the "tls" ULP, tried on a throwaway
    loopback TCP connection (the only reliable test: the module may load on
    demand).  Cached."""
    global _probe_cache
    if _probe_cache is not None and not refresh:
        return _probe_cache
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            with socket.create_connection(listener.getsockname(), timeout=5) as client:
                server, _ = listener.accept()
                with server:
                    attach_ulp(client)
        status = KTLSStatus(True, "setsockopt(TCP_ULP, 'tls') accepted")
    except KTLSUnavailable as exc:
        status = KTLSStatus(False, exc.reason)
    except OSError as exc:
        status = KTLSStatus(False, f"could not probe on loopback: {exc}")
    _probe_cache = status
    return status


# ---------------------------------------------------------------------------
# Hand-off and the kernel-driven socket

# errno from a kTLS recvmsg -> the alert we send (the kernel sends none).
_RECV_ERRNO_ALERTS = {
    errno.EBADMSG: (AlertDescription.bad_record_mac, "kernel could not deprotect a record"),
    errno.EMSGSIZE: (AlertDescription.record_overflow, "kernel saw an oversized record"),
    errno.EINVAL: (AlertDescription.unexpected_message, "kernel rejected a record"),
}
EKEYEXPIRED = getattr(errno, "EKEYEXPIRED", 127)


def install_key(sock: socket.socket, direction: int, state: CipherState) -> None:
    """setsockopt(SOL_TLS, TLS_TX or TLS_RX, crypto_info); a second call on
    the same direction is a TLS 1.3 rekey (kernels with rekey support)."""
    try:
        sock.setsockopt(SOL_TLS, direction, crypto_info(state))
    except OSError as err:
        name = "TLS_TX" if direction == TLS_TX else "TLS_RX"
        raise KTLSUnavailable(
            f"setsockopt(SOL_TLS, {name}) failed: {errno.errorcode.get(err.errno or 0, err.errno)} "
            f"{err.strerror} (cipher suite 0x{state.cipher_suite:04x})",
            err.errno,
        ) from None


class KernelTLS:
    """A socket whose records the kernel seals (tx) and/or opens (rx).

    Application data goes through plain send()/recv().  Other record types
    travel with a control message; recv_record() reports each record's type so
    post-handshake handshake messages and alerts reach the engine.
    """

    def __init__(self, sock: socket.socket, tx: bool, rx: bool) -> None:
        self.sock = sock
        self.tx = tx
        self.rx = rx

    def send_record(self, content_type: int, data: bytes) -> None:
        if content_type == ContentType.APPLICATION_DATA:
            self.sock.sendall(data)
            return
        cmsg = [(SOL_TLS, TLS_SET_RECORD_TYPE, bytes((int(content_type),)))]
        view = memoryview(data)
        while view:  # one sendmsg is one record type; it may still be partial
            sent = self.sock.sendmsg([view], cmsg)
            view = view[sent:]

    def recv_record(self, bufsize: int = 1 << 16) -> tuple[ContentType, bytes]:
        """(content type, plaintext) of the next record or part of it.
        (APPLICATION_DATA, b"") at end of stream."""
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(bufsize, socket.CMSG_SPACE(1))
        except OSError as err:
            if err.errno == EKEYEXPIRED:
                raise KeyExpired() from None
            alert = _RECV_ERRNO_ALERTS.get(err.errno or 0)
            if alert is not None:
                raise AlertError(*alert) from None
            raise
        ctype = ContentType.APPLICATION_DATA
        for level, kind, cdata in ancdata:
            if level == SOL_TLS and kind == TLS_GET_RECORD_TYPE and cdata:
                try:
                    ctype = ContentType(cdata[0])
                except ValueError:
                    raise AlertError(
                        AlertDescription.unexpected_message, f"unknown record type {cdata[0]}"
                    ) from None
        return ctype, data

    def rekey_tx(self, state: CipherState) -> None:
        install_key(self.sock, TLS_TX, state)

    def rekey_rx(self, state: CipherState) -> None:
        install_key(self.sock, TLS_RX, state)


class KeyExpired(Exception):
    """The kernel received a KeyUpdate and holds further records until the
    new receive key is installed (rekey_rx)."""


@dataclass(frozen=True)
class HandOff:
    """What hand_off() achieved: kernel (None if nothing was handed over) and
    the reason for whatever stayed in user space."""

    kernel: KernelTLS | None
    reason: str

    @property
    def tx(self) -> bool:
        return self.kernel is not None and self.kernel.tx

    @property
    def rx(self) -> bool:
        return self.kernel is not None and self.kernel.rx


def hand_off(sock: socket.socket, tx: CipherState | None, rx: CipherState | None) -> HandOff:
    """Give the application keys to the kernel.

    Call with no unsent records and no undecrypted input left in user space
    (the sequence numbers in the states are the next ones on the wire).  If
    the ULP cannot be attached nothing changes.  If TLS_TX succeeds but
    TLS_RX fails, the kernel sends and user space keeps receiving; the reason
    says so.
    """
    for state in (tx, rx):
        if state is not None and state.cipher_suite not in KERNEL_CIPHERS:
            return HandOff(None, f"no kernel cipher for suite 0x{state.cipher_suite:04x}")
    try:
        attach_ulp(sock)
    except KTLSUnavailable as exc:
        return HandOff(None, exc.reason)
    done_tx = done_rx = False
    reasons = []
    if tx is not None:
        try:
            install_key(sock, TLS_TX, tx)
            done_tx = True
        except KTLSUnavailable as exc:
            reasons.append(exc.reason)
    if rx is not None:
        try:
            install_key(sock, TLS_RX, rx)
            done_rx = True
        except KTLSUnavailable as exc:
            reasons.append(exc.reason)
    if not (done_tx or done_rx):
        return HandOff(None, "; ".join(reasons) or "nothing to hand over")
    what = "kernel TLS: " + " and ".join(d for d, ok in (("tx", done_tx), ("rx", done_rx)) if ok)
    return HandOff(KernelTLS(sock, done_tx, done_rx), "; ".join([what] + reasons))
