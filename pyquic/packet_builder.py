# Filling datagrams for one connection (RFC 9000 §12.2, §13, §14.1; RFC 9001
# §4, §5).  Owns
#   - what goes into each packet, in priority order: ACK, CONNECTION_CLOSE,
#     CRYPTO, HANDSHAKE_DONE, control frames (connection IDs, flow control,
#     stream resets, PATH_RESPONSE, PING), DATAGRAM, then STREAM data
#     (retransmissions first: the stream buffers resend lost ranges first);
#   - coalescing Initial + Handshake (+ 1-RTT) packets in one datagram and
#     padding datagrams that carry Initial packets to 1200 bytes (the client
#     always, the server when the Initial is ack-eliciting: §14.1);
#   - the 1-RTT burst: runs of full-sized short-header packets protected
#     with one PacketProtection.protect_batch call, handed out as GSO-ready
#     buffers (every packet segment_size bytes except possibly the last);
#   - the limits on what may go: congestion window, pacing, PTO probes
#     (which ignore the window, RFC 9002 §7.5), the server's 3x
#     anti-amplification budget (RFC 9000 §8.1);
#   - the SentPacket records and their frame records (what an
#     acknowledgment or a loss of each record means is sent_records.py's,
#     the base class);
#   - the send-side queues only it consumes (PINGs, DATAGRAM frames,
#     HANDSHAKE_DONE, PATH_RESPONSEs, control frames taken from their owners);
#     the connection fills them through queue_*() methods.
# Its collaborators come in explicitly: the stream manager, both connection-ID
# sets, the path validator, configuration and stats at construction; spaces,
# loss recovery and 0-RTT keys through reset() (Retry and Version Negotiation
# replace them); the per-build facts as a SendFacts; what the connection must
# hear (packet sent, eliciting sent, Handshake sent, PING acknowledged) as
# callbacks.  The bytes a build sent are left in bytes_sent.
from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING, Optional, Sequence

from .batches import GSO_MAX_BYTES, GSO_MAX_SEGMENTS
from .buffer import encode_varint, varint_size
from .frame_types import frame_name
from .frames import (
    Ack,
    ConnectionClose,
    Datagram,
    FrameType,
    NewConnectionId,
    NewToken,
    PathChallenge,
    PathResponse,
    RetireConnectionId,
    crypto_frame_header,
    stream_frame_header,
    stream_frame_size,
)
from .packet import PacketType, encode_long_header, packet_number_length
from .recovery import PacketNumberSpace, SentPacket
from .sent_records import (
    K_ACK, K_CRYPTO, K_HANDSHAKE_DONE, K_NEW_CID, K_PING, K_RESEND, K_RETIRE_CID, K_STREAM, K_STREAM_CTRL, SentRecords,
)

if TYPE_CHECKING:  # pragma: no cover
    from .spaces import KeyPhases

INITIAL = PacketNumberSpace.INITIAL
HANDSHAKE = PacketNumberSpace.HANDSHAKE
APPLICATION = PacketNumberSpace.APPLICATION

TAG = 16
MIN_INITIAL_DATAGRAM = 1200  # RFC 9000 §14.1
# A packet this close to full is padded to full so a GSO batch continues.
PAD_TO_FULL_SLACK = 32
# STREAM frames fetched at once for the packets of a burst.
PREFETCH_PACKETS = 64
# Packets a STREAM-only run must have to be built in one protect_stream_run call.
MIN_RUN = 2
_HANDSHAKE_DONE = (K_HANDSHAKE_DONE,)
_pack_bulk_header = struct.Struct(">BBIH").pack


def _stream_header(stream_id: int, offset: int, length: int, fin: bool) -> bytes:
    """stream_frame_header(), with the bulk case (one-byte stream ID, 4-byte
    offset, 2-byte length: every packet between 16 KiB and 1 GiB into a
    stream) packed in one call because it runs once per packet."""
    if stream_id < 0x40 and 0x4000 <= offset < 0x40000000 and 0x40 <= length < 0x4000:
        return _pack_bulk_header(0x0E | fin, stream_id, offset | 0x80000000, length | 0x4000)
    return stream_frame_header(stream_id, offset, length, fin)

_HANDSHAKE_DONE_BYTES = bytes((FrameType.HANDSHAKE_DONE,))
_PING_BYTE = bytes((FrameType.PING,))


class SendFacts:
    """What the builder reads from the connection for one build (read-only)."""

    __slots__ = ("one_rtt", "version", "token", "validated", "budget", "mds", "closing", "streams_ready", "qlog",
                 "ecn")

    def __init__(
        self, one_rtt: Optional["KeyPhases"], version: int, token: bytes, validated: bool, budget: int,
        mds: int, closing: bool, streams_ready: bool, qlog, ecn: bool = False,
    ) -> None:
        self.one_rtt = one_rtt
        self.version = version
        self.token = token
        self.validated = validated
        self.budget = budget  # anti-amplification bytes left before this build (RFC 9000 §8.1)
        self.mds = mds
        self.closing = closing
        self.streams_ready = streams_ready
        self.qlog = qlog
        self.ecn = ecn  # the datagrams go out ECT(0)-marked (RFC 9000 §13.4)


class PacketBuilder(SentRecords):
    """Builds the datagrams of one connection; see the module header."""

    def __init__(
        self, *, is_client: bool, streams, local_cids, peer_cids, paths, configuration, stats,
        can_send_eliciting, on_packet_sent, on_eliciting_sent, on_handshake_sent, on_ping_acked,
    ) -> None:
        self.is_client = is_client
        self.streams = streams
        self.local_cids = local_cids
        self.peer_cids = peer_cids
        self.paths = paths
        self.configuration = configuration
        self.stats = stats
        self.can_send_eliciting = can_send_eliciting  # (now) -> bool; sets the pacing wake-up
        self.on_packet_sent = on_packet_sent  # (space, pn, size, eliciting, records, now), long/0-RTT packets
        self.on_eliciting_sent = on_eliciting_sent  # (now), once per 1-RTT burst that sent ack-eliciting packets
        self.on_handshake_sent = on_handshake_sent  # (now), a client sent a Handshake packet (RFC 9001 §4.9.1)
        self.on_ping_acked = on_ping_acked  # (uid)
        self.spaces: list = []
        self.loss = None
        self.zero_rtt = None
        self.f: SendFacts = None  # type: ignore[assignment]  # the facts of the build under way
        self.bytes_sent = 0  # ... and what it has sent so far
        # send-side queues
        self.ctrl: list = []  # control frames taken from their owners, not yet sent
        self.pad_packet = False  # the packet being filled carries a PATH_CHALLENGE
        self.pings: list = []  # PING uids asked for by the application
        # DATAGRAM frame payloads (RFC 9221); made on first use (an empty
        # deque costs 600 bytes, and most connections never send one).
        self.datagrams: Optional[deque] = None
        self.path_responses: list = []
        self.handshake_done_pending = False
        self.ping_eliciting_needed = False  # recovery wants an ack-eliciting frame

    def reset(self, spaces: list, loss, zero_rtt) -> None:
        """The spaces, loss recovery and 0-RTT keys in use (again after Retry or Version Negotiation)."""
        self.spaces = spaces
        self.loss = loss
        self.zero_rtt = zero_rtt

    # ------------------------------------------------------------------
    # what the connection queues
    def queue_ping(self, uid: int) -> None:
        self.pings.append(uid)

    def queue_datagram(self, data: bytes, limit: int) -> bool:
        """False when `limit` frames are already waiting."""
        queue = self.datagrams
        if queue is None:
            queue = self.datagrams = deque()
        elif len(queue) >= limit:
            return False
        queue.append(data)
        return True

    def queue_path_response(self, frame: PathResponse, limit: int) -> None:
        responses = self.path_responses
        responses.append(frame)
        del responses[:-limit]

    def queue_handshake_done(self) -> None:
        self.handshake_done_pending = True

    def queue_new_token(self, token: bytes) -> None:
        """Server, with 1-RTT keys: a NEW_TOKEN frame, sent again if lost."""
        self.ctrl.append(NewToken(token))

    def request_ack_eliciting(self) -> None:
        self.ping_eliciting_needed = True

    def drop_queued(self) -> None:
        """Closing: queued PINGs and DATAGRAM frames will not go."""
        self.pings.clear()
        self.datagrams = None

    # ------------------------------------------------------------------
    # entry points
    def build(self, now: float, facts: SendFacts) -> list[tuple[bytes, int]]:
        """Everything that may be sent now, as (buffer, segment_size) batches;
        self.bytes_sent says how many bytes they hold."""
        self.f = f = facts
        self.bytes_sent = 0
        out: list[tuple[bytes, int]] = []
        self._collect_control(now)
        for _ in range(16):  # handshake datagrams (a flight is a few datagrams)
            if not self._long_work(now):
                break
            datagram = self._build_coalesced(now)
            if datagram is None:
                break
            out.append((datagram, len(datagram)))
        if f.one_rtt is not None and not f.closing:
            pmtu = self.loss.pmtu  # a probe due goes first: after a bulk burst the window has no room
            if pmtu.probe_due(now) and f.validated and self.loss.cc.can_send(pmtu.probe_size):
                out.append(self._build_pmtu_probe(now, pmtu))
            self._build_short(now, out)
            # Stopping for flow control may have made *_BLOCKED due (RFC 9000
            # §4.1): send it in this round, not after the peer's next packet.
            if f.streams_ready and self.streams.blocked_pending:
                self._collect_control(now)
                if self.ctrl:
                    self._build_short(now, out)
        elif self._zero_rtt_open():
            self._build_zero_rtt(now, out)
        self.f = None  # type: ignore[assignment]  # the facts are this build's only
        return out

    def _build_pmtu_probe(self, now: float, pmtu) -> tuple[bytes, int]:
        """A PMTU probe (RFC 9000 §14.4): a PING padded to the size tried, a
        datagram of its own (pmtud.PathMtu learns its fate from recovery)."""
        pmtu.on_probe_sent(self.spaces[APPLICATION].next_pn)
        self.stats.frames_sent["ping"] = self.stats.frames_sent.get("ping", 0) + 1
        datagram = self._finish_datagram([[APPLICATION, bytearray(b"\x01"), [(K_PING, None)], True]], now, True,
                                         pad_to=pmtu.probe_size)
        return datagram, len(datagram)

    def _zero_rtt_open(self) -> bool:
        """A client may still send 0-RTT packets (keys, no 1-RTT keys yet)."""
        f = self.f
        return self.zero_rtt.send is not None and f.one_rtt is None and f.streams_ready and not f.closing

    def _build_zero_rtt(self, now: float, out: list) -> None:
        """Client: stream data before the handshake completes, one 0-RTT
        packet per datagram, within the congestion window (RFC 9001 §4.6.1)."""
        f = self.f
        overhead = self._long_overhead()
        for _ in range(GSO_MAX_SEGMENTS):
            if not self.can_send_eliciting(now):
                break
            content = self._fill_app(f.mds - overhead, now, True, True)
            if content is None or not content[2]:
                break
            datagram = self._finish_datagram([[APPLICATION, *content]], now, pad=False)
            out.append((datagram, len(datagram)))

    def _long_overhead(self) -> int:
        """Bytes a long header (no token) and the AEAD tag take at most: first
        byte, version, both CIDs with their lengths, a 2-byte Length, a
        4-byte packet number."""
        return 7 + len(self.peer_cids.cid) + len(self.local_cids.host_cid) + 2 + 4 + TAG

    def build_close(self, now: float, facts: SendFacts, frame: ConnectionClose, confirmed: bool) -> Optional[bytes]:
        """One datagram carrying CONNECTION_CLOSE in every space we can send in
        (RFC 9000 §10.2.3: Initial/Handshake too before confirmation, where an
        application close becomes APPLICATION_ERROR without a reason)."""
        self.f = facts
        self.bytes_sent = 0
        parts = []
        for sid in (INITIAL, HANDSHAKE):
            space = self.spaces[sid]
            if space.send_keys is None or space.discarded or confirmed:
                continue
            close = frame
            if close.application:
                close = ConnectionClose(0x0C, 0, "", False)
            payload = bytearray()
            close.encode(payload)
            parts.append([sid, payload, [], False])
        if facts.one_rtt is not None:
            payload = bytearray()
            frame.encode(payload)
            parts.append([APPLICATION, payload, [], False])
        if not parts:
            return None
        return self._finish_datagram(parts, now, pad=self.is_client and parts[0][0] == INITIAL)

    def build_off_path(self, now: float, facts: SendFacts, items: Sequence) -> list[tuple[bytes, int, object, object]]:
        """Datagrams for other paths than the one in use (paths.OffPath), as
        (datagram, size, addr, local): each one 1-RTT packet of its frames
        (PATH_CHALLENGE, PATH_RESPONSE) to the peer's next connection ID
        (RFC 9000 §9.5: not the path in use's), expanded to 1200 bytes when
        the item says (§8.2.1).  Their bytes are left out of bytes_sent:
        they are not the path in use's (the stats count them)."""
        out: list = []
        if facts.one_rtt is None or facts.closing:
            return out
        self.f = facts
        stats = self.stats
        sent_before = self.bytes_sent
        for item in items:
            payload = bytearray()
            for frame in item.frames:
                frame.encode(payload)
                name = frame_name(type(frame))
                stats.frames_sent[name] = stats.frames_sent.get(name, 0) + 1
            dcid = self.peer_cids.next_cid()
            datagram = self._finish_datagram([[APPLICATION, payload, [], True]], now, item.pad, dcid)
            stats.datagrams_sent += 1
            stats.bytes_sent += len(datagram)
            out.append((datagram, len(datagram), item.addr, item.local))
        self.bytes_sent = sent_before
        return out

    # ------------------------------------------------------------------
    # control frames
    def _collect_control(self, now: float) -> None:
        f = self.f
        if f.one_rtt is None:
            return
        ctrl = self.ctrl
        if f.streams_ready:
            ctrl.extend(self.streams.take_control_frames(now, self.loss.rtt.smoothed_rtt))
        if self.local_cids.pending:
            ctrl.extend(self.local_cids.take_frames())
        if self.peer_cids.retire_pending:
            ctrl.extend(self.peer_cids.take_frames())
        if self.path_responses:
            ctrl.extend(self.path_responses)
            self.path_responses.clear()
        if self.paths.frames:
            ctrl.extend(self.paths.take_frames())

    # ------------------------------------------------------------------
    # long-header (handshake) datagrams
    def _long_work(self, now: float) -> bool:
        for sid in (INITIAL, HANDSHAKE):
            space = self.spaces[sid]
            if space.send_keys is None or space.discarded:
                continue
            if space.crypto_send.has_pending or space.probes or space.ack.ack_due(now):
                return True
        return False

    def _budget(self) -> int:
        """Bytes the anti-amplification limit still allows (RFC 9000 §8.1)."""
        f = self.f
        if f.validated:
            return 1 << 30
        return f.budget - self.bytes_sent

    def _build_coalesced(self, now: float) -> Optional[bytes]:
        f = self.f
        budget = self._budget()
        remaining = min(f.mds, budget)
        # A server's ack-eliciting Initial must fill 1200 bytes (RFC 9000 §14.1);
        # below that budget only an ACK may go in Initial.
        initial_ack_only = not self.is_client and budget < MIN_INITIAL_DATAGRAM
        # CRYPTO counts against the congestion window like any ack-eliciting
        # data (RFC 9002 §7); ACKs and PTO probes are never held back by it.
        cwnd_open = self.loss.cc.can_send(f.mds)
        dcid_len = len(self.peer_cids.cid)
        long_overhead = self._long_overhead()
        parts: list = []
        for sid in (INITIAL, HANDSHAKE):
            space = self.spaces[sid]
            if space.send_keys is None or space.discarded:
                continue
            overhead = long_overhead
            if sid == INITIAL:
                overhead += varint_size(len(f.token)) + len(f.token)
            room = remaining - overhead
            if room < 48:
                break
            ack_only = (initial_ack_only and sid == INITIAL) or not (cwnd_open or space.probes)
            content = self._fill_long(space, room, now, ack_only=ack_only)
            if content is None:
                continue
            payload, records, eliciting = content
            parts.append([sid, payload, records, eliciting])
            remaining -= overhead + len(payload)
        if not parts:
            return None
        kp = f.one_rtt
        if kp is not None and not f.closing and remaining > 64 + dcid_len:
            room = remaining - (1 + dcid_len + 4 + TAG)
            probing = self.spaces[APPLICATION].probes > 0  # probes ignore the window (RFC 9002 §7.5)
            content = self._fill_app(room, now, True, probing or self.can_send_eliciting(now))
            if content is not None:
                parts.append([APPLICATION, content[0], content[1], content[2]])
        elif self._zero_rtt_open() and remaining > 48 + long_overhead and self.can_send_eliciting(now):
            # 0-RTT rides in the client's Initial datagram (RFC 9000 §12.2).
            room = remaining - long_overhead
            content = self._fill_app(room, now, True, True)
            if content is not None and content[2]:
                parts.append([APPLICATION, content[0], content[1], content[2]])
        has_initial = parts[0][0] == INITIAL
        pad = has_initial and (self.is_client or parts[0][3])
        return self._finish_datagram(parts, now, pad)

    def _finish_datagram(self, parts: list, now: float, pad: bool, dcid: Optional[bytes] = None,
                         pad_to: int = MIN_INITIAL_DATAGRAM) -> bytes:
        """Headers, padding (`pad`: to `pad_to` bytes), protection and records
        for the packets of one datagram (to `dcid`, or the peer's connection
        ID in use)."""
        f = self.f
        loss = self.loss
        version = f.version
        if dcid is None:
            dcid = self.peer_cids.cid
        scid = self.local_cids.host_cid
        # Plain sizes first, to know how much padding the datagram needs.
        plans = []
        total = 0
        short_app = f.one_rtt is not None  # APPLICATION is 1-RTT, else (client, before it) 0-RTT
        for sid, payload, records, eliciting in parts:
            space = self.spaces[sid]
            pn = space.next_pn
            pn_len = packet_number_length(pn, loss.largest_acked(sid))
            if len(payload) < 4 - pn_len:
                payload += bytes(4 - pn_len - len(payload))  # room for the header protection sample
            if sid == APPLICATION and short_app:
                header_len = 1 + len(dcid) + pn_len
            else:
                header_len = 7 + len(dcid) + len(scid) + 2 + pn_len
                if sid == INITIAL:
                    header_len += varint_size(len(f.token)) + len(f.token)
            plans.append([sid, payload, records, eliciting, pn, pn_len])
            total += header_len + len(payload) + TAG
        padded = False
        if pad and total < pad_to:
            # RFC 9000 §14.1: PADDING frames in the last packet fill the datagram.
            plans[-1][1] += bytes(pad_to - total)
            padded = True
        chunks = []
        sent_handshake = False
        for i, (sid, payload, records, eliciting, pn, pn_len) in enumerate(plans):
            space = self.spaces[sid]
            if sid == APPLICATION and short_app:
                kp = f.one_rtt
                header = _short_header(dcid, pn, pn_len, kp.send_phase)
                protection = kp.send.protection
                kp.sent_with_key += 1
            elif sid == APPLICATION:  # 0-RTT (RFC 9000 §17.2.3)
                header = encode_long_header(
                    self.zero_rtt.version, PacketType.ZERO_RTT, dcid, scid, pn, pn_len,  # RFC 9369 §4: original
                    payload_length=len(payload) + TAG,
                )
                protection = self.zero_rtt.send.protection
                self.stats.zero_rtt_packets_sent += 1
            else:
                ptype = PacketType.INITIAL if sid == INITIAL else PacketType.HANDSHAKE
                header = encode_long_header(
                    version, ptype, dcid, scid, pn, pn_len,
                    token=f.token if sid == INITIAL else b"", payload_length=len(payload) + TAG,
                )
                protection = space.send_keys.protection
                if sid == HANDSHAKE:
                    sent_handshake = True
            packet = protection.protect(header, payload, pn)
            chunks.append(packet)
            space.next_pn = pn + 1
            in_flight = eliciting or (padded and i == len(plans) - 1)
            loss.on_packet_sent(SentPacket(sid, pn, now, len(packet), eliciting, in_flight, records, f.ecn))
            self.on_packet_sent(sid, pn, len(packet), eliciting, records, now)
        datagram = b"".join(chunks)
        self.bytes_sent += len(datagram)
        if sent_handshake and self.is_client and not self.spaces[INITIAL].discarded:
            # RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet.
            self.on_handshake_sent(now)
        return datagram

    def _fill_long(self, space, room: int, now: float, ack_only: bool = False):
        """An Initial or Handshake payload: ACK, CRYPTO, or a PING probe."""
        payload = bytearray()
        records: list = []
        eliciting = False
        ack = space.ack
        if (ack.ack_pending and (ack.ack_due(now) or space.crypto_send.has_pending)) or (space.probes and ack.has_ranges):
            # A probe carries an ACK whenever there is anything to acknowledge,
            # even if an ACK of it went out before (and may have been lost).
            self._write_ack(space, payload, records, room, now)
        if ack_only:
            return (payload, records, False) if payload else None
        crypto = space.crypto_send
        while crypto.has_pending:
            left = room - len(payload)
            offset = crypto.next_offset
            header_size = 1 + varint_size(offset) + 2
            if left <= header_size + 16:
                break
            piece = crypto.get_frame(left - header_size)
            if piece is None:
                break
            data, offset, _ = piece
            payload += crypto_frame_header(offset, len(data))
            payload += data
            records.append((K_CRYPTO, space.id, offset, len(data)))
            eliciting = True
        if space.probes:
            if not eliciting and len(payload) < room:
                payload += _PING_BYTE
                records.append((K_PING, None))
                eliciting = True
            space.probes -= 1
        if not payload:
            return None
        return payload, records, eliciting

    def _write_ack(self, space, payload: bytearray, records: list, room: int, now: float) -> None:
        ack = space.ack
        left = room - len(payload)
        max_ranges = max(1, min(ack.max_ranges, (left - 12) // 8))
        before = len(payload)
        while True:
            data = ack.build_ack(now, max_ranges=max_ranges)
            if data is None:
                return
            Ack(data.ranges, data.ack_delay_encoded, data.ecn_counts).encode(payload)
            if len(payload) <= room or max_ranges == 1:
                break
            del payload[before:]  # large packet numbers: fewer ranges fit
            max_ranges //= 2
        if len(payload) > room:
            del payload[before:]
            return
        ack.on_ack_sent()
        records.append((K_ACK, space.id, data.ranges[0][1] - 1))

    # ------------------------------------------------------------------
    # 1-RTT
    def _fill_app(self, room: int, now: float, first: bool, can_elicit: bool):
        """A 1-RTT payload of at most `room` bytes, or None."""
        f = self.f
        space = self.spaces[APPLICATION]
        payload = bytearray()
        records: list = []
        eliciting = False
        ack = space.ack
        if ack.ack_pending and (ack.ack_due(now) or (first and can_elicit and self._app_has_data())):
            self._write_ack(space, payload, records, room, now)
        elif first and space.probes and ack.has_ranges:
            # RFC 9002 §6.2.4: a probe may carry any frame; with an ACK in it
            # the peer learns what arrived even when our ACK-only packets
            # were lost (a blackhole), instead of backing off further.
            self._write_ack(space, payload, records, room, now)
        if not can_elicit:
            if not payload:
                return None
            return payload, records, False
        if self.handshake_done_pending and room - len(payload) > 1:
            self.handshake_done_pending = False
            payload += _HANDSHAKE_DONE_BYTES
            records.append(_HANDSHAKE_DONE)
            eliciting = True
        if self.ctrl:
            eliciting |= self._write_control(payload, records, room)
        if self.pings:
            while self.pings and room - len(payload) > 1:
                payload += _PING_BYTE
                records.append((K_PING, self.pings.pop(0)))
                eliciting = True
        if self.datagrams:
            queue = self.datagrams
            while queue and room - len(payload) > len(queue[0]) + 9:
                Datagram(queue.popleft()).encode(payload)
                eliciting = True
        crypto = space.crypto_send
        if crypto.has_pending:
            left = room - len(payload) - 1 - varint_size(crypto.next_offset) - 2
            piece = crypto.get_frame(left) if left > 16 else None
            if piece is not None:
                data, offset, _ = piece
                payload += crypto_frame_header(offset, len(data))
                payload += data
                records.append((K_CRYPTO, APPLICATION, offset, len(data)))
                eliciting = True
        if f.streams_ready:
            streams = self.streams
            while room - len(payload) > 8:
                frame = streams.next_stream_frame(room - len(payload))
                if frame is None:
                    break
                data = frame.data
                payload += stream_frame_header(frame.stream_id, frame.offset, len(data), frame.fin)
                payload += data
                records.append((K_STREAM, frame.stream_id, frame.offset, len(data), frame.fin))
                eliciting = True
        if space.probes:
            if not eliciting and len(payload) < room:
                payload += _PING_BYTE
                records.append((K_PING, None))
                eliciting = True
            space.probes -= 1
        if self.ping_eliciting_needed and not eliciting and payload and len(payload) < room:
            # recovery asks for an ack-eliciting frame now and then (ACK-only senders)
            payload += _PING_BYTE
            records.append((K_PING, None))
            eliciting = True
            self.ping_eliciting_needed = False
        if not payload:
            return None
        return payload, records, eliciting

    def _app_has_data(self) -> bool:
        f = self.f
        return bool(
            self.ctrl or self.pings or self.datagrams or self.handshake_done_pending
            or self.spaces[APPLICATION].probes or (f.streams_ready and self.streams.has_queued)
        )

    def _write_control(self, payload: bytearray, records: list, room: int) -> bool:
        left_over = []
        wrote = False
        counts = self.stats.frames_sent
        for frame in self.ctrl:
            before = len(payload)
            frame.encode(payload)
            if len(payload) > room:
                del payload[before:]
                left_over.append(frame)
                continue
            kind = type(frame)
            name = frame_name(kind)
            counts[name] = counts.get(name, 0) + 1
            if kind is NewConnectionId:
                records.append((K_NEW_CID, frame))
            elif kind is RetireConnectionId:
                records.append((K_RETIRE_CID, frame.sequence_number))
            elif kind is PathChallenge:
                self.pad_packet = True  # RFC 9000 §8.2.1: the datagram is expanded
            elif kind is NewToken:
                records.append((K_RESEND, frame))
            elif kind is not PathResponse:  # responses and challenges are not retransmitted (§8.2)
                records.append((K_STREAM_CTRL, frame))
            wrote = True
        self.ctrl = left_over
        return wrote

    def _build_short(self, now: float, out: list) -> None:
        """The 1-RTT burst: full-sized packets back to back, protected in batches.

        Packets that carry only STREAM data (the bulk of a transfer) take a
        fast path; anything else (ACKs due, control frames, probes...) goes
        through _fill_app."""
        f = self.f
        kp = f.one_rtt
        space = self.spaces[APPLICATION]
        ack = space.ack
        loss = self.loss
        cc = loss.cc
        pacer = loss.pacer
        streams = self.streams
        crypto = space.crypto_send
        on_packet_sent = loss.on_packet_sent
        stats = self.stats
        mds = f.mds
        dcid = self.peer_cids.cid
        largest_acked = loss.largest_acked(APPLICATION)
        validated = f.validated
        pacing = self.configuration.pacing and pacer.rate is not None
        # Full-sized packets pacing lets through right now (the bucket does
        # not refill while `now` stands still).
        paced = paced_start = pacer.burst_size(now) if pacing else 1 << 30
        qlog = f.qlog
        ecn = f.ecn
        protection = kp.send.protection
        phase = kp.send_phase
        batch: list = []
        segment = 0
        batch_bytes = 0
        first = True
        calm = False
        dcid_len = len(dcid)
        # packet_number_length(): 2 * (pn - pn_base) must fit in pn_len bytes.
        pn_base = largest_acked if largest_acked is not None and largest_acked >= 0 else -1
        pn_len = pn_len_until = pn_mask = 0
        header_start = b""  # the header up to the packet number, made again when its length changes
        prefetched: list = []  # STREAM frames taken for this burst
        fetched = 0  # ... of which this many were put in packets
        while True:
            if validated:
                size_limit = mds
            else:
                budget = self._budget()
                size_limit = mds if budget >= mds else budget
                if size_limit < 64:
                    break
            pn = space.next_pn
            if pn >= pn_len_until:  # the length holds up to pn_len_until (once per length, not per packet)
                pn_len = packet_number_length(pn, largest_acked)
                pn_len_until = pn_base + (1 << (8 * pn_len - 1))
                header_start = bytes((0x40 | (phase << 2) | (pn_len - 1),)) + dcid
                pn_mask = (1 << (8 * pn_len)) - 1
            header_len = 1 + dcid_len + pn_len
            room = size_limit - header_len - TAG
            if not calm and (
                space.probes or self.ctrl or self.pings or self.datagrams or self.handshake_done_pending
                or self.ping_eliciting_needed or crypto.has_pending or ack.ack_due(now)
                or (first and ack.ack_pending)
            ):
                if space.probes:
                    can_elicit = True  # RFC 9002 §7.5: probes ignore the window
                elif not cc.can_send(mds):
                    can_elicit = False
                elif paced > 0:
                    can_elicit = True
                else:
                    can_elicit = self.can_send_eliciting(now)  # sets the pacing wake-up
                content = self._fill_app(room, now, first, can_elicit)
                if content is None:
                    break
                payload, records, eliciting = content
            else:
                # The fast path: STREAM frames only.  Nothing it does can make
                # the test above true again within this call (`now` stands
                # still, and only _fill_app or the application add control
                # frames, pings, probes or datagrams), so it is not repeated.
                calm = True
                if not cc.can_send(mds):
                    break
                if paced <= 0:
                    self.can_send_eliciting(now)  # sets the pacing timer
                    break
                if validated and fetched < len(prefetched) and not self.pad_packet:
                    # A run: the prefetched frames, as many as the window, the
                    # pacer and this packet number length allow, built and
                    # protected in one call.  Each packet is the one the
                    # per-packet path below would make (sizes never above
                    # mds, so the window check per packet cannot fail); the
                    # last frame stays out when that path would try to fill
                    # its packet up with more streams' data.
                    available = len(prefetched) - fetched
                    if streams.has_queued:
                        last = prefetched[-1]
                        if room - stream_frame_size(last.stream_id, last.offset, len(last.data)) > PAD_TO_FULL_SLACK:
                            available -= 1
                    count = min(available, paced, pn_len_until - pn,
                                (cc.congestion_window - cc.bytes_in_flight) // mds,
                                GSO_MAX_BYTES // mds)  # one GSO write: the run's buffer goes out as it is
                    if count >= MIN_RUN:
                        frames = prefetched[fetched : fetched + count]
                        fetched += count
                        buffer, sizes = protection.protect_stream_run(header_start, pn, frames, room,
                                                                      PAD_TO_FULL_SLACK)
                        for frame, size in zip(frames, sizes):
                            records = [(K_STREAM, frame[0], frame[1], len(frame[2]), frame[3])]
                            on_packet_sent(SentPacket(APPLICATION, pn, now, size, True, True, records, ecn))
                            if qlog is not None:
                                qlog.packet_sent(now, APPLICATION, pn, size, records)
                            pn += 1
                        space.next_pn = pn
                        kp.sent_with_key += count
                        paced -= count
                        stats.packets_sent += count
                        self.bytes_sent += len(buffer)
                        first = False
                        if batch:
                            out.append((protection.protect_batch(batch), segment))
                            batch = []
                        _append_gso(out, buffer, sizes)
                        continue
                if fetched < len(prefetched):
                    frame = prefetched[fetched]
                    fetched += 1
                else:
                    # Frames for the packets this burst may still send, sized
                    # for the longest packet number among them, in one go.
                    count = 1
                    if validated:
                        window = (cc.congestion_window - cc.bytes_in_flight) // mds
                        count = max(1, min(paced, window, PREFETCH_PACKETS))
                    batch_room = room - (packet_number_length(pn + count, largest_acked) - pn_len)
                    prefetched = streams.next_stream_frames(batch_room, count)
                    if not prefetched:
                        break
                    frame = prefetched[0]
                    fetched = 1
                stream_id, offset, data, fin = frame
                n = len(data)
                records = [(K_STREAM, stream_id, offset, n, fin)]
                payload = _stream_header(stream_id, offset, n, fin) + data
                while room - len(payload) > PAD_TO_FULL_SLACK and fetched == len(prefetched) and streams.has_queued:
                    frame = streams.next_stream_frame(room - len(payload))
                    if frame is None:
                        break
                    data = frame.data
                    records.append((K_STREAM, frame.stream_id, frame.offset, len(data), frame.fin))
                    payload += stream_frame_header(frame.stream_id, frame.offset, len(data), frame.fin)
                    payload += data
                eliciting = True
            first = False
            padded = False
            payload_len = len(payload)
            short = room - payload_len
            if short and eliciting and (short < PAD_TO_FULL_SLACK or self.pad_packet):
                payload += bytes(short)  # keep the GSO batch going (PADDING frames)
                payload_len = room
                padded = True
            elif payload_len < 4 - pn_len:
                payload += bytes(4 - pn_len - payload_len)
                payload_len = 4 - pn_len
                padded = True
            self.pad_packet = False
            size = header_len + payload_len + TAG
            header = header_start + (pn & pn_mask).to_bytes(pn_len, "big")
            space.next_pn = pn + 1
            kp.sent_with_key += 1
            on_packet_sent(SentPacket(APPLICATION, pn, now, size, eliciting, eliciting or padded, records, ecn))
            if eliciting:
                paced -= 1
            stats.packets_sent += 1
            if qlog is not None:
                qlog.packet_sent(now, APPLICATION, pn, size, records)
            self.bytes_sent += size
            if batch and (size > segment or len(batch) >= GSO_MAX_SEGMENTS or batch_bytes + size > GSO_MAX_BYTES):
                out.append((protection.protect_batch(batch), segment))
                batch = []
            if not batch:
                segment = size
                batch_bytes = 0
            batch.append((header, payload, pn))
            batch_bytes += size
            if size < segment:
                out.append((protection.protect_batch(batch), segment))
                batch = []
        if batch:
            out.append((protection.protect_batch(batch), segment))
        if paced < paced_start:  # once per burst: `now` is the same for every packet
            self.on_eliciting_sent(now)
        for frame in prefetched[fetched:]:
            streams.on_frame_lost(frame)  # taken but not sent: back to the stream


def _append_gso(out: list, buffer: bytes, sizes: Sequence[int]) -> None:
    """A run's packets as GSO batches by the per-packet path's rules: datagrams
    of one size back to back, a larger one starting a new batch, a smaller one
    ending its batch (merge_batches joins batches later where one write can
    carry more).  A run fits one GSO write: the builder bounds its length."""
    segment = sizes[0]
    if len(buffer) == segment * len(sizes):
        out.append((buffer, segment))  # all full: the usual case
        return
    view = memoryview(buffer)
    start = at = 0
    for size in sizes:
        if at > start and size > segment:
            out.append((bytes(view[start:at]), segment))
            start = at
        if at == start:
            segment = size
        at += size
        if size < segment:
            out.append((bytes(view[start:at]), segment))
            start = at
    if at > start:
        out.append((bytes(view[start:at]), segment))


def _short_header(dcid: bytes, pn: int, pn_len: int, key_phase: int) -> bytes:
    return (
        bytes((0x40 | (key_phase << 2) | (pn_len - 1),))
        + dcid
        + (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    )


__all__ = ["PacketBuilder", "SendFacts", "encode_varint"]
