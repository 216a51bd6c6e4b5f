# What an acknowledgment or a loss of a sent packet means (RFC 9000 §13.3,
# RFC 9002 §6): the frame records a SentPacket carries (K_* tuples, written
# by the packet builder) and, for each kind, what goes back to its owner --
# stream data and control frames to the stream manager, CRYPTO ranges to
# their space, ACK-of-ACK to the ACK tracker, connection ID frames to their
# sets, PINGs and HANDSHAKE_DONE back to the send queues -- and what a PTO
# probe sends again.  SentRecords is the packet builder's base class: it
# owns no state of its own beyond what the builder gives it (streams,
# spaces, connection-ID sets, the PING and HANDSHAKE_DONE queues, the
# on_ping_acked callback).
from __future__ import annotations

from .recovery import SentPacket

# Frame records kept in SentPacket.frames: tuples whose first item is one of these.
K_ACK = 0  # (K_ACK, space, largest acknowledged)
K_CRYPTO = 1  # (K_CRYPTO, space, offset, length)
K_STREAM = 2  # (K_STREAM, stream_id, offset, length, fin)
K_STREAM_CTRL = 3  # (K_STREAM_CTRL, frame) a StreamManager frame
K_HANDSHAKE_DONE = 4  # (K_HANDSHAKE_DONE,)
K_NEW_CID = 5  # (K_NEW_CID, frame)
K_RETIRE_CID = 6  # (K_RETIRE_CID, sequence)
K_PING = 7  # (K_PING, uid or None)
K_RESEND = 8  # (K_RESEND, frame): sent again as it was (NEW_TOKEN)


class SentRecords:
    """Acknowledgments, losses and probes of sent packets, record by record."""

    streams: object
    spaces: list
    local_cids: object
    peer_cids: object
    pings: list
    handshake_done_pending: bool
    ctrl: list

    def on_packets_acked(self, packets: list) -> None:
        """The records of newly acknowledged packets (in packet number order).
        Contiguous STREAM ranges of one stream -- a bulk transfer's packets --
        are merged into one acknowledgment for the stream."""
        streams = self.streams
        run_id = run_start = run_end = -1
        run_fin = False
        for packet in packets:
            frames = packet.frames
            if len(frames) == 1:
                record = frames[0]
                if record[0] == K_STREAM:
                    if record[1] == run_id and record[2] == run_end and not run_fin:
                        run_end += record[3]
                        run_fin = record[4]
                        continue
                    if run_id >= 0:
                        streams.on_stream_frame_acked(run_id, run_start, run_end - run_start, run_fin)
                    run_id, run_start, run_end, run_fin = record[1], record[2], record[2] + record[3], record[4]
                    continue
            self.on_packet_acked(packet)
        if run_id >= 0:
            streams.on_stream_frame_acked(run_id, run_start, run_end - run_start, run_fin)

    def on_packet_acked(self, packet: SentPacket) -> None:
        streams = self.streams
        for record in packet.frames:
            kind = record[0]
            if kind == K_STREAM:
                streams.on_stream_frame_acked(record[1], record[2], record[3], record[4])
            elif kind == K_ACK:
                space = self.spaces[record[1]]
                if not space.discarded:
                    space.ack.on_ack_of_ack(record[2])
            elif kind == K_CRYPTO:
                space = self.spaces[record[1]]
                if not space.discarded:
                    space.crypto_send.on_data_acked(record[2], record[3], False)
            elif kind == K_STREAM_CTRL:
                streams.on_frame_acked(record[1])
            elif kind == K_PING:
                if record[1] is not None:
                    self.on_ping_acked(record[1])
            elif kind == K_RETIRE_CID:
                self.peer_cids.on_retire_acked(record[1])

    def on_packet_lost(self, packet: SentPacket) -> None:
        streams = self.streams
        for record in packet.frames:
            kind = record[0]
            if kind == K_STREAM:
                streams.on_stream_frame_lost(record[1], record[2], record[3], record[4])
            elif kind == K_CRYPTO:
                space = self.spaces[record[1]]
                if not space.discarded:
                    space.crypto_send.on_data_lost(record[2], record[3], False)
            elif kind == K_STREAM_CTRL:
                streams.on_frame_lost(record[1])
            elif kind == K_ACK:
                space = self.spaces[record[1]]
                if not space.discarded:
                    space.ack.on_ack_lost()
            elif kind == K_HANDSHAKE_DONE:
                self.handshake_done_pending = True
            elif kind == K_NEW_CID:
                self.local_cids.on_frame_lost(record[1])
            elif kind == K_RETIRE_CID:
                self.peer_cids.on_retire_lost(record[1])
            elif kind == K_PING:
                if record[1] is not None:
                    self.pings.append(record[1])
            elif kind == K_RESEND:
                self.ctrl.append(record[1])

    def requeue_for_probe(self, packet: SentPacket) -> None:
        """A PTO probe resends this outstanding packet's retransmittable content
        (the original may still be acknowledged; the buffers drop duplicates)."""
        streams = self.streams
        for record in packet.frames:
            kind = record[0]
            if kind == K_CRYPTO:
                space = self.spaces[record[1]]
                if not space.discarded:
                    space.crypto_send.on_data_lost(record[2], record[3], False)
            elif kind == K_STREAM:
                streams.on_stream_frame_lost(record[1], record[2], record[3], record[4])
            elif kind == K_HANDSHAKE_DONE:
                self.handshake_done_pending = True


__all__ = [
    "K_ACK", "K_CRYPTO", "K_HANDSHAKE_DONE", "K_NEW_CID", "K_PING", "K_RESEND", "K_RETIRE_CID", "K_STREAM",
    "K_STREAM_CTRL",
    "SentRecords",
]
