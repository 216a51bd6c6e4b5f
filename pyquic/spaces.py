# Per packet number space state (RFC 9000 §12.3) and the 1-RTT key phases
# (RFC 9001 §6).  Owns
#   - Space: one of Initial, Handshake, Application: the next packet number,
#     the ACK tracker, the packet keys of both directions, the CRYPTO send
#     buffer (a SendStream without flow control: retransmission of lost
#     ranges comes for free) and the CRYPTO reassembly buffer with its cap
#     (CRYPTO_BUFFER_EXCEEDED, RFC 9000 §7.5), probes owed after a PTO;
#   - KeyPhases: the 1-RTT keys across key updates: the current read and
#     write keys and their phase bits, the next read key (derived when a
#     flipped bit arrives), the previous read key kept for reordered packets
#     until a deadline, the "may we update again" rule, and the AEAD
#     confidentiality and integrity limits (RFC 9001 §6.6); opening a 1-RTT
#     packet with the right key, or a GRO batch of them in one call.
from __future__ import annotations

from typing import Optional

from .ack import AckTracker
from .assembler import Assembler
from .crypto import PacketKeys, backend
from .errors import TransportError
from .recovery import PacketNumberSpace
from .send_stream import SendStream

# RFC 9001 §6.6: start a key update this many packets before the
# confidentiality limit (the update itself needs some packets to complete).
CONFIDENTIALITY_MARGIN = 1 << 16


def _crypto_overflow(reason: str) -> TransportError:
    return TransportError.CRYPTO_BUFFER_EXCEEDED(reason, frame_type=0x06)


class Space:
    __slots__ = (
        "id",
        "ack",
        "next_pn",
        "send_keys",
        "recv_keys",
        "crypto_send",
        "crypto_recv",
        "discarded",
        "probes",
    )

    def __init__(
        self,
        space_id: PacketNumberSpace,
        *,
        max_crypto_buffer: int,
        max_ack_delay: float,
        ack_delay_exponent: int,
        max_ack_ranges: int,
    ) -> None:
        self.id = space_id
        self.ack = AckTracker(
            immediate=space_id != PacketNumberSpace.APPLICATION,
            max_ack_delay=max_ack_delay,
            ack_delay_exponent=ack_delay_exponent,
            max_ranges=max_ack_ranges,
        )
        self.next_pn = 0
        self.send_keys: Optional[PacketKeys] = None
        self.recv_keys: Optional[PacketKeys] = None
        self.crypto_send = SendStream(-1, (1 << 62) - 1)
        self.crypto_recv = Assembler(max_crypto_buffer, max_chunks=256, error=_crypto_overflow)
        self.discarded = False
        self.probes = 0  # ack-eliciting packets owed after a PTO (RFC 9002 §6.2.4)

    def discard(self) -> None:
        """RFC 9001 §4.9: the keys are gone; nothing more is sent or received
        here.  The ACK tracker and the CRYPTO buffers go too (every user
        checks `discarded` first): an idle connection would hold two empty
        sets of them for its whole life."""
        self.discarded = True
        self.send_keys = self.recv_keys = None
        self.ack = self.crypto_send = self.crypto_recv = None  # type: ignore[assignment]
        self.probes = 0

    @property
    def crypto_pending(self) -> bool:
        return not self.discarded and self.crypto_send.has_pending


class KeyPhases:
    """The 1-RTT packet keys across key updates (RFC 9001 §6)."""

    __slots__ = (
        "send",
        "send_phase",
        "recv",
        "recv_phase",
        "recv_next",
        "recv_prev",
        "prev_discard_at",
        "first_recv_pn",
        "first_send_pn",
        "update_acked",
        "sent_with_key",
        "failures",
        "hp",
        "updates",
    )

    def __init__(self, send: PacketKeys, recv: Optional[PacketKeys] = None) -> None:
        self.send = send
        self.send_phase = 0
        self.recv: Optional[PacketKeys] = None
        self.recv_phase = 0
        self.recv_next: Optional[PacketKeys] = None
        self.recv_prev: Optional[PacketKeys] = None
        self.prev_discard_at: Optional[float] = None
        self.first_recv_pn: Optional[int] = None  # lowest pn opened with the current read key
        self.first_send_pn = 0  # first pn sent with the current write key
        # §6.1: an update may start once a packet of the current phase is acknowledged.
        self.update_acked = False
        self.sent_with_key = 0
        self.failures = 0  # packets that failed authentication, for the integrity limit
        self.hp = None
        self.updates = 0
        if recv is not None:
            self.set_recv(recv)

    def set_recv(self, recv: PacketKeys) -> None:
        """The 1-RTT read key (a server gets it after its write key)."""
        self.recv = recv
        self.hp = None  # made by keys_for, which only a key update or a forged packet reaches

    # -- sending -----------------------------------------------------------
    def can_initiate(self) -> bool:
        # §6.1: not before a packet sent with the current key is acknowledged,
        # and not while the peer has not yet answered our previous update.
        return self.update_acked and self.send_phase == self.recv_phase

    def initiate(self, next_pn: int) -> None:
        self.send = self.send.next_phase()
        self.send_phase ^= 1
        self.first_send_pn = next_pn
        self.update_acked = False
        self.sent_with_key = 0
        self.updates += 1

    def on_acked(self, largest_acked: int) -> None:
        if not self.update_acked and largest_acked >= self.first_send_pn:
            self.update_acked = True

    def needs_update(self) -> bool:
        """§6.6: close to the confidentiality limit: update before reaching it."""
        limit = self.send.protection.confidentiality_limit
        return self.sent_with_key >= limit - min(CONFIDENTIALITY_MARGIN, limit // 4)

    # -- receiving -----------------------------------------------------------
    def open(self, packet, pn_offset: int, largest_pn: int) -> Optional[tuple]:
        """Remove protection from one 1-RTT packet: with the current read key,
        else the previous or next one its key phase bit asks for (§6).
        Returns (plain header, payload, packet number, keys), the caller
        handing keys other than `recv` to on_opened; None if it does not
        open (counted in `failures` for the integrity limit, §6.6)."""
        try:
            plain, payload, pn = self.recv.protection.unprotect(packet, pn_offset, largest_pn)
        except backend.CryptoError:
            found = self.keys_for(packet, pn_offset, largest_pn)
            if found is None:
                self.failures += 1
                return None
            try:
                plain, payload, pn = found[0].protection.unprotect(packet, pn_offset, largest_pn)
            except backend.CryptoError:
                self.failures += 1
                return None
            return plain, payload, pn, found[0]
        self.accept(plain, pn)
        return plain, payload, pn, self.recv

    def open_batch(self, buffer, segment_size: int, cid_length: int, cids, largest_pn: int) -> tuple:
        """Open the leading run of a GRO batch's datagrams that are each one
        short-header packet to one of `cids`, with the current read key in one
        call (pyquic/_crypto.pyi unprotect_batch).  Returns (segments, opened,
        resume): (offset, length, pn offset) per packet of the run, (plain
        header, payload, packet number) or None where one did not open (the
        caller takes it through open(): a key update, a forgery), and where
        the run ended.  Nothing is counted or accepted here: the caller
        accepts each packet when it gets to it."""
        pn_offset = 1 + cid_length
        end = resume = len(buffer)
        segments = []
        for start in range(0, end, segment_size):
            if buffer[start] & 0xC0 != 0x40 or buffer[start + 1 : start + pn_offset] not in cids:
                resume = start
                break
            segments.append((start, min(segment_size, end - start), pn_offset))
        return segments, self.recv.protection.unprotect_batch(buffer, segments, largest_pn), resume

    def accept(self, plain: bytes, pn: int) -> None:
        """A packet the current read key opened: its phase bit must be the
        current one (§6), and it may be the lowest opened with this key."""
        if (plain[0] >> 2) & 1 != self.recv_phase:
            raise TransportError.KEY_UPDATE_ERROR("packet opened with the current key has the other key phase")
        first = self.first_recv_pn
        if first is None or pn < first:
            self.first_recv_pn = pn

    def keys_for(self, packet, pn_offset: int, largest_pn: int) -> Optional[tuple[PacketKeys, int]]:
        """After the current read key failed: which key the packet's phase
        bit asks for (previous or next) and its packet number; None if the
        header cannot even be read or the bit is the current one."""
        hp = self.hp
        if hp is None:  # the hp key is the same in every phase (§6): one context for all
            hp = self.hp = backend.HeaderProtection(self.recv.cipher_suite, self.recv.hp_key)
        try:
            header, truncated = hp.remove(packet, pn_offset)
        except backend.CryptoError:
            return None
        phase = 1 if header[0] & 0x04 else 0
        if phase == self.recv_phase:
            return None
        pn = backend.decode_packet_number(truncated, (header[0] & 3) + 1, largest_pn)
        if self.recv_prev is not None and self.first_recv_pn is not None and pn < self.first_recv_pn:
            return self.recv_prev, pn
        if self.recv_next is None:
            self.recv_next = self.recv.next_phase()
        return self.recv_next, pn

    def on_opened(self, keys: PacketKeys, pn: int, next_send_pn: int, discard_at: float) -> bool:
        """A packet opened with `keys`.  Returns True when that was a key update
        by the peer which we answer by updating our write key (§6.2)."""
        if keys is self.recv:
            if self.first_recv_pn is None or pn < self.first_recv_pn:
                self.first_recv_pn = pn
            return False
        if keys is not self.recv_next:
            return False  # the previous key: a reordered packet
        self.recv_prev = self.recv
        self.recv = keys
        self.recv_next = None
        self.recv_phase ^= 1
        self.first_recv_pn = pn
        self.prev_discard_at = discard_at
        if self.send_phase != self.recv_phase:
            self.send = self.send.next_phase()
            self.send_phase = self.recv_phase
            self.first_send_pn = next_send_pn
            self.update_acked = False
            self.sent_with_key = 0
            self.updates += 1
            return True
        return False

    def discard_previous(self, now: float) -> None:
        if self.prev_discard_at is not None and now >= self.prev_discard_at:
            self.recv_prev = None
            self.prev_discard_at = None

    def integrity_exceeded(self) -> bool:
        return self.failures >= self.recv.protection.integrity_limit
