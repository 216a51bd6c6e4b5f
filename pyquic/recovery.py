# Loss detection and recovery (RFC 9002) for one connection: per packet
# number space, the records of sent packets; RTT estimation (§5); loss
# detection by packet and time threshold (§6.1); the probe timeout with its
# backoff and the anti-deadlock rule (§6.2); discarding a space (§6.4);
# persistent congestion (§7.6); ECN validation (RFC 9000 §13.4.2); and it
# drives the congestion controller (pyquic.congestion), the pacer and path
# MTU discovery (pyquic.pmtud: a lost PMTU probe is no congestion signal,
# RFC 9000 §14.4; two PTOs in a row or persistent congestion above the base
# size are a black hole, RFC 8899 §4.3).
#
# Recovery never looks inside a packet.  The connection fills
# SentPacket.frames with whatever it needs to retransmit or to learn what was
# delivered, and gets the records back, acknowledged or lost.  What to send
# in a probe, and the anti-amplification limit, are the connection's; it
# passes `amplification_blocked` so no PTO is armed while a server can't send.
#
# Timers are pure functions of state (get_loss_detection_timer()), never
# armed or cancelled: the connection asks each time it computes its next
# timer, and calls on_loss_detection_timeout(now) when it fires (a call
# before the timer is due does nothing, so one handle_timer can serve all).
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from .congestion import CongestionController, create_congestion_controller
from .congestion.base import K_GRANULARITY
from .errors import TransportError, UsageError
from .frame_types import FrameType
from .pacing import Pacer
from .pmtud import PathMtu

# RFC 9002 §6.1.1 / §6.1.2 / §A.2 constants.
K_PACKET_THRESHOLD = 3
K_TIME_THRESHOLD = 9 / 8
K_INITIAL_RTT = 0.333  # §6.2.2: 333 ms, a 1-second initial PTO
MAX_SUSPECTS = 256  # packets of one congestion event watched for a spurious-loss undo
ECN_TESTING_LOSSES = 10  # ECT(0) packets lost, none acknowledged: the path drops marked packets
K_PERSISTENT_CONGESTION_THRESHOLD = 3  # §7.6.1
# §6.2.4: an endpoint may send up to two full-sized datagrams on a PTO.
PTO_PROBE_PACKETS = 2
# The backoff exponent stops growing here (2**16 PTOs is far beyond any idle
# timeout; it only keeps the arithmetic finite).
MAX_PTO_BACKOFF_EXPONENT = 16
# §18.2 default of the peer's max_ack_delay until its transport parameters
# say otherwise.
DEFAULT_MAX_ACK_DELAY = 0.025
# ACK-only packets are acknowledged only alongside ack-eliciting ones, so a
# connection that sends nothing else would keep their records forever: past
# this many outstanding, needs_ack_eliciting() asks for a PING (RFC 9000
# §13.2.4 suggests one per round trip at most).
ACK_ONLY_ELICIT_THRESHOLD = 20
# Consecutive PTOs (no acknowledgment in between) after which datagrams
# larger than the base size are taken to be black-holed (RFC 8899 §4.3).
BLACK_HOLE_PTOS = 2


class PacketNumberSpace(IntEnum):
    INITIAL = 0
    HANDSHAKE = 1
    APPLICATION = 2  # 0-RTT and 1-RTT share it (RFC 9000 §12.3)


@dataclass(slots=True, eq=False)
class SentPacket:
    """One sent packet as recovery tracks it (RFC 9002 §A.1.1).

    `in_flight` is True for ack-eliciting packets and for packets that carry
    PADDING (§2); an ACK-only packet sets both flags False.  `frames` is the
    connection's and opaque here.  `ecn` is True if the packet was sent
    ECT(0)-marked.
    """

    space: PacketNumberSpace
    packet_number: int
    time_sent: float
    size: int
    ack_eliciting: bool = True
    in_flight: bool = True
    frames: list[Any] = field(default_factory=list)
    ecn: bool = False


# Iterating an IntEnum is slow; the timers walk the spaces on every call.
_SPACES = tuple(PacketNumberSpace)


class RttEstimator:
    """RFC 9002 §5: latest, minimum and smoothed RTT and its variation."""

    def __init__(self, initial_rtt: float = K_INITIAL_RTT) -> None:
        self.initial_rtt = initial_rtt
        self.latest_rtt = 0.0
        self.min_rtt = 0.0
        # §5.3 / §A.4: before the first sample smoothed_rtt is the initial
        # RTT and rttvar half of it.
        self.smoothed_rtt = initial_rtt
        self.rttvar = initial_rtt / 2
        self.first_sample_time: float | None = None

    @property
    def has_sample(self) -> bool:
        return self.first_sample_time is not None

    def update(
        self,
        latest_rtt: float,
        ack_delay: float,
        now: float,
        *,
        handshake_confirmed: bool,
        max_ack_delay: float,
    ) -> None:
        """Take one RTT sample (§5.1-5.3, §A.7 UpdateRtt)."""
        self.latest_rtt = latest_rtt
        if self.first_sample_time is None:
            # §5.3: the first sample sets everything, ignoring ack delay.
            self.min_rtt = latest_rtt
            self.smoothed_rtt = latest_rtt
            self.rttvar = latest_rtt / 2
            self.first_sample_time = now
            return
        # §5.2: min_rtt is the minimum of samples, without ack delay.
        self.min_rtt = min(self.min_rtt, latest_rtt)
        # §5.3: after the handshake is confirmed, MUST use the lesser of the
        # reported ack delay and the peer's max_ack_delay.
        if handshake_confirmed:
            ack_delay = min(ack_delay, max_ack_delay)
        # §5.3: MUST NOT subtract the ack delay if the result would be below
        # min_rtt.
        adjusted_rtt = latest_rtt
        if latest_rtt >= self.min_rtt + ack_delay:
            adjusted_rtt = latest_rtt - ack_delay
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.smoothed_rtt - adjusted_rtt)
        self.smoothed_rtt = 0.875 * self.smoothed_rtt + 0.125 * adjusted_rtt

    def pto_base(self) -> float:
        """§6.2.1: smoothed_rtt + max(4 * rttvar, kGranularity), no max_ack_delay."""
        return self.smoothed_rtt + max(4 * self.rttvar, K_GRANULARITY)

    def loss_delay(self) -> float:
        """§6.1.2: max(kTimeThreshold * max(smoothed_rtt, latest_rtt), kGranularity)."""
        return max(K_TIME_THRESHOLD * max(self.smoothed_rtt, self.latest_rtt), K_GRANULARITY)


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """What one ACK frame did: records newly acknowledged and declared lost
    (both in packet number order), and the signals that came with it."""

    acked: list[SentPacket]
    lost: list[SentPacket]
    rtt_sampled: bool = False
    persistent_congestion: bool = False
    ecn_congestion: bool = False


@dataclass(frozen=True, slots=True)
class PacketsLost:
    """The loss timer fired (§6.1.2): these records are lost.  The list can
    be empty if an RTT sample since the timer was set lengthened the loss
    delay; the timer has then moved on."""

    space: PacketNumberSpace
    lost: list[SentPacket]
    persistent_congestion: bool = False


@dataclass(frozen=True, slots=True)
class ProbeNeeded:
    """The PTO fired (§6.2.4): send `count` ack-eliciting packets in `space`,
    new data if there is some, else data from `recovery.sent_packets(space)`
    again, else PING.  Probes are not limited by the congestion window
    (§7.5).  `anti_deadlock` means the client has nothing in flight (§6.2.2.1):
    one Handshake packet, or a padded Initial packet if `space` is Initial."""

    space: PacketNumberSpace
    count: int
    anti_deadlock: bool = False


class _SpaceState:
    __slots__ = (
        "sent",
        "largest_sent",
        "largest_acked",
        "lowest_unacked",
        "loss_time",
        "time_of_last_ack_eliciting",
        "ack_eliciting_in_flight",
        "ack_only_outstanding",
        "ecn_counts",
        "discarded",
    )

    def __init__(self) -> None:
        self.sent: dict[int, SentPacket] = {}  # in packet number order
        self.largest_sent = -1
        self.largest_acked: int | None = None
        # No outstanding packet has a number below this (kept so that
        # acknowledged ranges and loss scans visit only the live span).
        self.lowest_unacked = 0
        self.loss_time: float | None = None
        self.time_of_last_ack_eliciting: float | None = None
        self.ack_eliciting_in_flight = 0
        self.ack_only_outstanding = 0
        self.ecn_counts = (0, 0, 0)  # ECT0, ECT1, CE as last reported
        self.discarded = False


# What every discarded space's state is: nothing outstanding, no timers
# (read-only: discard_space and forget_sent never write it, the other
# writers refuse a discarded space first).
_DISCARDED = _SpaceState()
_DISCARDED.discarded = True


class LossRecovery:
    """Loss detection and congestion control for one connection (one path).

    `congestion_control` is a registered name ("reno", "cubic") or a
    controller instance.  `max_ack_delay` is the peer's (set it when its
    transport parameters arrive).  A server has its address validated by its
    peer from the start (§A.6, PeerCompletedAddressValidation); a client once
    a Handshake ACK arrives or the handshake is confirmed.
    """

    def __init__(
        self,
        *,
        is_client: bool,
        congestion_control: str | CongestionController = "reno",
        max_datagram_size: int = 1200,
        initial_rtt: float = K_INITIAL_RTT,
        max_ack_delay: float = DEFAULT_MAX_ACK_DELAY,
        hystart: bool = True,
        undo_spurious: bool = True,
        max_probe_datagram_size: int = 0,
    ) -> None:
        self.is_client = is_client
        if isinstance(congestion_control, str):
            self.cc = create_congestion_controller(congestion_control, max_datagram_size=max_datagram_size)
        else:
            self.cc = congestion_control
        self.cc.use_hystart = hystart
        self.pacer = Pacer(max_datagram_size=max_datagram_size)
        # Path MTU discovery up to max_probe_datagram_size (0: none).
        self.pmtu = PathMtu(max_datagram_size, max_probe_datagram_size, self._set_datagram_size)
        self.rtt = RttEstimator(initial_rtt)
        self.max_ack_delay = max_ack_delay
        self.handshake_confirmed = False
        self.peer_completed_address_validation = not is_client
        # Set by the client when it installs Handshake keys (§6.2.2.1 picks
        # the anti-deadlock probe's space by it).
        self.has_handshake_keys = False
        self.pto_count = 0
        self.ecn_failed = False
        self.ecn_marked_acked = 0  # ECT(0) packets acknowledged with counts that add up
        self.ecn_marked_lost = 0  # ... lost before any was (§13.4.2.1)
        # RFC 9438 §4.9: the packets the latest congestion event was declared
        # for, by (space, number); if every one is acknowledged after all, the
        # reduction is undone.  None: nothing to watch (or too much).
        self.undo_spurious = undo_spurious
        self._suspects: set | None = None
        self._suspect_event = 0
        self.spurious_losses = 0  # packets declared lost and acknowledged later
        self._spaces = [_SpaceState() for _ in PacketNumberSpace]
        # When the RFC's SetLossDetectionTimer would last have run: the
        # anti-deadlock PTO counts from there (§A.8 "now() + duration").
        # None until the first packet is sent.
        self._timer_anchor: float | None = None

    def reset_path(self, now: float) -> None:
        """RFC 9000 §9.4: the peer moved to a new address (not only a new
        port): congestion control and the RTT estimate start over; packets
        already in flight stay counted until acknowledged or lost.  The
        pacer follows at the next ACK, which recomputes its rate.  The
        path MTU starts from the base size again (§14.3)."""
        self.pmtu.restart(now)
        self.cc.reset()
        self.rtt = RttEstimator(self.rtt.initial_rtt)

    def _set_datagram_size(self, size: int) -> None:
        """Path MTU discovery settled on a new datagram size."""
        self.cc.max_datagram_size = size
        pacer = self.pacer
        pacer.max_datagram_size = size
        pacer.capacity = max(pacer.capacity, float(pacer.burst_packets * size))

    # -- state the connection reads ------------------------------------------

    @property
    def bytes_in_flight(self) -> int:
        return self.cc.bytes_in_flight

    @property
    def congestion_window(self) -> int:
        return self.cc.congestion_window

    def can_send(self, size: int) -> bool:
        return self.cc.can_send(size)

    def sent_packets(self, space: PacketNumberSpace) -> list[SentPacket]:
        """Outstanding records of `space`, oldest first."""
        return list(self._spaces[space].sent.values())

    def ack_eliciting_in_flight(self, space: PacketNumberSpace) -> int:
        return self._spaces[space].ack_eliciting_in_flight

    def ack_only_outstanding(self, space: PacketNumberSpace) -> int:
        """Non-ack-eliciting packets not yet acked or lost."""
        return self._spaces[space].ack_only_outstanding

    def needs_ack_eliciting(self, space: PacketNumberSpace) -> bool:
        """True when the next packet in `space` should carry a PING (or other
        ack-eliciting frame): many ACK-only packets wait for an
        acknowledgment and nothing ack-eliciting is in flight to bring one."""
        state = self._spaces[space]
        return state.ack_only_outstanding >= ACK_ONLY_ELICIT_THRESHOLD and state.ack_eliciting_in_flight == 0

    def largest_acked(self, space: PacketNumberSpace) -> int | None:
        return self._spaces[space].largest_acked

    def is_discarded(self, space: PacketNumberSpace) -> bool:
        return self._spaces[space].discarded

    def probe_timeout(self, *, include_max_ack_delay: bool = True) -> float:
        """One PTO period without backoff (§6.2.1), for the idle timeout and
        the closing period (RFC 9000 §10)."""
        pto = self.rtt.pto_base()
        if include_max_ack_delay:
            pto += self.max_ack_delay
        return pto

    def persistent_congestion_duration(self) -> float:
        """§7.6.1: (smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay)
        * kPersistentCongestionThreshold, whatever the space."""
        return (self.rtt.pto_base() + self.max_ack_delay) * K_PERSISTENT_CONGESTION_THRESHOLD

    # -- events ----------------------------------------------------------------

    def on_handshake_confirmed(self, now: float) -> None:
        """RFC 9001 §4.1.2.  Application PTOs start; ack delays get capped;
        the path MTU search begins (RFC 9000 §14.3)."""
        self.handshake_confirmed = True
        self.peer_completed_address_validation = True
        self.pmtu.start(now)

    def on_packet_sent(self, packet: SentPacket) -> None:
        """RFC 9002 §A.5.  Every packet sent is recorded, ACK-only ones too
        (their acknowledgment tells the ack tracker what the peer has seen)."""
        # Runs once per packet sent: the fields are read once.
        state = self._spaces[packet.space]
        pn = packet.packet_number
        if state.discarded:
            raise UsageError(f"packet sent in discarded space {packet.space.name}")
        if pn <= state.largest_sent:
            raise UsageError("packet numbers must increase within a space")
        state.largest_sent = pn
        sent = state.sent
        if not sent:
            state.lowest_unacked = pn  # nothing below is outstanding
        sent[pn] = packet
        eliciting = packet.ack_eliciting
        if not eliciting:
            state.ack_only_outstanding += 1
        if packet.in_flight:
            time_sent = packet.time_sent
            size = packet.size
            if eliciting:
                state.ack_eliciting_in_flight += 1
                state.time_of_last_ack_eliciting = time_sent
            self._timer_anchor = time_sent
            self.cc.on_packet_sent(size, time_sent)
            self.pacer.on_sent(size, time_sent)

    def on_ack_received(
        self,
        space: PacketNumberSpace,
        ranges: Iterable[tuple[int, int]],
        ack_delay: float,
        now: float,
        ecn_counts: tuple[int, int, int] | None = None,
    ) -> AckOutcome:
        """Process one ACK frame (RFC 9002 §A.7 OnAckReceived).

        `ranges` are half-open (start, stop) packet number ranges in any
        order (frames.Ack.ranges or a RangeSet fit); `ack_delay` is the
        decoded ACK Delay in seconds; `ecn_counts` are (ECT0, ECT1, CE) from
        an ACK_ECN frame.  Raises TransportError PROTOCOL_VIOLATION for an
        acknowledgment of a packet never sent.
        """
        state = self._spaces[space]
        spans = sorted((start, stop) for start, stop in ranges if stop > start)
        if state.discarded or not spans:
            return AckOutcome([], [])
        largest_acked = spans[-1][1] - 1
        if spans[0][0] < 0 or largest_acked > state.largest_sent:
            # RFC 9000 §13.1: acknowledging a packet never sent.
            raise TransportError.PROTOCOL_VIOLATION(
                f"ACK of packet {largest_acked} in {space.name}, largest sent {state.largest_sent}",
                frame_type=FrameType.ACK if ecn_counts is None else FrameType.ACK_ECN,
            )
        if space == PacketNumberSpace.HANDSHAKE:
            # §A.6 PeerCompletedAddressValidation: a Handshake ACK proves it.
            self.peer_completed_address_validation = True
        if state.largest_acked is None or largest_acked > state.largest_acked:
            state.largest_acked = largest_acked

        if self._suspects:
            self._check_spurious(space, spans)
        newly_acked = self._remove_acked(state, spans)
        if not newly_acked:
            return AckOutcome([], [])

        # §5.1: a sample only if the largest acknowledged is newly acked and
        # something ack-eliciting was newly acked.
        largest_newly = newly_acked[-1]
        rtt_sampled = False
        if largest_newly.packet_number == largest_acked and any(p.ack_eliciting for p in newly_acked):
            # §5.3: the ack delay of Initial ACKs may be ignored (never delayed).
            delay = 0.0 if space == PacketNumberSpace.INITIAL else max(0.0, ack_delay)
            self.rtt.update(
                now - largest_newly.time_sent,
                delay,
                now,
                handshake_confirmed=self.handshake_confirmed,
                max_ack_delay=self.max_ack_delay,
            )
            self.cc.on_rtt_update(self.rtt.smoothed_rtt, self.rtt.min_rtt, now)
            self.cc.on_rtt_sample(self.rtt.latest_rtt, now)
            rtt_sampled = True

        ecn_congestion = self._process_ecn(state, newly_acked, ecn_counts, now)
        probe_pn = self.pmtu.probe_pn  # outstanding, so acknowledged now if in a range
        if probe_pn >= 0 and space == PacketNumberSpace.APPLICATION and any(a <= probe_pn < b for a, b in spans):
            self.pmtu.on_probe_acked(now)

        lost = self._detect_lost(state, now)
        persistent = self._on_lost(lost, now)
        self.cc.on_packets_acked([p for p in newly_acked if p.in_flight], now)

        # §6.2.1 / §A.7: reset the backoff, unless a client can't yet be sure
        # the server validated its address.
        if self.peer_completed_address_validation:
            self.pto_count = 0
        self._timer_anchor = now
        self._update_pacer()
        return AckOutcome(newly_acked, lost, rtt_sampled, persistent, ecn_congestion)

    def get_loss_detection_timer(self, *, amplification_blocked: bool = False) -> float | None:
        """When on_loss_detection_timeout should run (§A.8 SetLossDetectionTimer).

        `amplification_blocked`: a server that can't send because of the 3x
        limit arms no PTO (§6.2.2.1); once a datagram lifts the block, the
        timer reappears, possibly already due.
        """
        loss_time, _ = self._earliest_loss_time()
        if loss_time is not None:
            return loss_time
        if amplification_blocked:
            return None
        pto_time, _, _ = self._pto_time_and_space()
        return pto_time

    def on_loss_detection_timeout(
        self, now: float, *, amplification_blocked: bool = False
    ) -> PacketsLost | ProbeNeeded | None:
        """RFC 9002 §A.9.  Returns the lost records, a probe request, or None
        if the timer was not due at `now`."""
        timer = self.get_loss_detection_timer(amplification_blocked=amplification_blocked)
        if timer is None or now < timer:
            return None
        self._timer_anchor = now
        loss_time, space = self._earliest_loss_time()
        if loss_time is not None:
            assert space is not None
            lost = self._detect_lost(self._spaces[space], now)
            persistent = self._on_lost(lost, now)
            self._update_pacer()
            return PacketsLost(space, lost, persistent)
        _, space, anti_deadlock = self._pto_time_and_space()
        assert space is not None
        # §6.2.1: each expiry doubles the next PTO.
        self.pto_count += 1
        if self.pto_count >= BLACK_HOLE_PTOS:
            self.pmtu.on_black_hole(now)  # the probes this PTO sends are of the base size
        return ProbeNeeded(space, 1 if anti_deadlock else PTO_PROBE_PACKETS, anti_deadlock)

    def discard_space(self, space: PacketNumberSpace, now: float | None = None) -> list[SentPacket]:
        """RFC 9002 §6.4 / §A.11: keys for `space` are gone.  Its packets leave
        bytes in flight without a congestion signal; its timers stop; the PTO
        backoff resets.  Returns the records dropped.  The space's state
        becomes the shared _DISCARDED (every path checks `discarded` before
        it writes), so an idle connection holds none of its own."""
        if self._spaces[space] is _DISCARDED:
            return []
        records = self.forget_sent(space)
        self._spaces[space] = _DISCARDED
        self.pto_count = 0
        if now is not None and self._timer_anchor is not None:
            self._timer_anchor = now
        return records

    def forget_sent(self, space: PacketNumberSpace) -> list[SentPacket]:
        """Packets of `space` that will never be acknowledged (e.g. 0-RTT the
        server rejected, RFC 9001 §4.6.2): out of flight without a congestion
        signal, their timers stopped; the space stays in use.  Returns them."""
        state = self._spaces[space]
        if state is _DISCARDED:
            return []
        records = list(state.sent.values())
        self.cc.on_packets_discarded(records)
        state.sent.clear()
        state.lowest_unacked = state.largest_sent + 1
        state.loss_time = None
        state.time_of_last_ack_eliciting = None
        state.ack_eliciting_in_flight = 0
        state.ack_only_outstanding = 0
        return records

    # -- internals -------------------------------------------------------------

    def _remove(self, state: _SpaceState, packet: SentPacket) -> None:
        del state.sent[packet.packet_number]
        if packet.ack_eliciting:
            if packet.in_flight:
                state.ack_eliciting_in_flight -= 1
        else:
            state.ack_only_outstanding -= 1
        if packet.packet_number == state.lowest_unacked:
            pn = state.lowest_unacked + 1
            while pn <= state.largest_sent and pn not in state.sent:
                pn += 1
            state.lowest_unacked = pn

    def _remove_acked(self, state: _SpaceState, spans: list[tuple[int, int]]) -> list[SentPacket]:
        """Pop the outstanding records inside `spans` (ascending, half-open).
        Only the live span [lowest_unacked, largest_sent] is visited, so an
        ACK's cost is bounded by what is outstanding, not by its ranges."""
        acked: list[SentPacket] = []
        sent = state.sent
        lowest = state.lowest_unacked
        top = state.largest_sent + 1
        # _remove() for a whole range at once (an ACK frees a few dozen
        # records at a time in a bulk transfer): counters and lowest_unacked
        # are settled after the loop, with the same result.
        eliciting_in_flight = ack_only = 0
        pop = sent.pop
        for start, stop in spans:
            for pn in range(max(start, lowest), min(stop, top)):
                packet = pop(pn, None)
                if packet is not None:
                    acked.append(packet)
                    if packet.ack_eliciting:
                        if packet.in_flight:
                            eliciting_in_flight += 1
                    else:
                        ack_only += 1
        state.ack_eliciting_in_flight -= eliciting_in_flight
        state.ack_only_outstanding -= ack_only
        if not sent:
            sent.clear()  # an emptied dict keeps its table until cleared: idle connections shrink
        if acked and acked[0].packet_number == lowest:
            pn = lowest + 1
            while pn < top and pn not in sent:
                pn += 1
            state.lowest_unacked = pn
        return acked

    def _detect_lost(self, state: _SpaceState, now: float) -> list[SentPacket]:
        """§6.1 / §A.10 DetectAndRemoveLostPackets, for packets at or below
        the largest acknowledged; sets the space's loss time for the rest."""
        state.loss_time = None
        largest_acked = state.largest_acked
        if largest_acked is None:
            return []
        loss_delay = self.rtt.loss_delay()
        lost: list[SentPacket] = []
        sent = state.sent
        for pn in range(state.lowest_unacked, largest_acked + 1):
            packet = sent.get(pn)
            if packet is None:
                continue
            # §6.1.1 packet threshold, §6.1.2 time threshold.  The time test
            # is the very sum the loss timer was set to, so a timer firing at
            # exactly that time declares the packet lost (no float drift).
            loss_time = packet.time_sent + loss_delay
            if loss_time <= now or largest_acked >= pn + K_PACKET_THRESHOLD:
                lost.append(packet)
            elif state.loss_time is None or loss_time < state.loss_time:
                state.loss_time = loss_time
        for packet in lost:
            self._remove(state, packet)
        return lost

    def _on_lost(self, lost: list[SentPacket], now: float) -> bool:
        """§A.6 OnPacketsLost: tell the controller; True if the loss also
        establishes persistent congestion (and the window collapsed)."""
        if not lost:
            return False
        probe_pn = self.pmtu.probe_pn
        if probe_pn >= 0:
            probe = next((p for p in lost if p.packet_number == probe_pn and p.space == PacketNumberSpace.APPLICATION),
                         None)
            if probe is not None:  # RFC 9000 §14.4: a lost PMTU probe says nothing about congestion
                self.pmtu.on_probe_lost(now)
                self.cc.on_packets_discarded([probe])
                lost = [p for p in lost if p is not probe]
                if not lost:
                    return False
        self._note_suspects(lost)
        if not self.ecn_failed and not self.ecn_marked_acked:
            # RFC 9000 §13.4.2.1: marked packets that all vanish suggest a path
            # that drops ECT: stop marking rather than lose every packet.
            self.ecn_marked_lost += sum(1 for p in lost if p.ecn)
            if self.ecn_marked_lost >= ECN_TESTING_LOSSES:
                self.ecn_failed = True
        self.cc.on_packets_lost(lost, now)
        if self._in_persistent_congestion(lost):
            self._suspects = None  # a collapse is not undone
            self.cc.on_persistent_congestion(now)
            if any(p.size > self.pmtu.base for p in lost):
                self.pmtu.on_black_hole(now)
            return True
        return False

    def _note_suspects(self, lost: list[SentPacket]) -> None:
        """Before the controller hears of `lost`: the packets of a new congestion
        event (or more of the current one) become the ones to watch."""
        if not self.undo_spurious:
            return
        cc = self.cc
        in_flight = [p for p in lost if p.in_flight]
        if not in_flight:
            return
        newest = max(p.time_sent for p in in_flight)
        keys = {(p.space, p.packet_number) for p in in_flight}
        if cc.in_congestion_recovery(newest) and self._suspects is not None and self._suspect_event == cc.congestion_events:
            self._suspects |= keys  # more of the same event (§7.3.2: one reduction)
        elif not cc.in_congestion_recovery(newest):
            self._suspects = keys
            self._suspect_event = cc.congestion_events + 1  # the event the controller is about to start
        if self._suspects is not None and len(self._suspects) > MAX_SUSPECTS:
            self._suspects = None  # a loss this large is no reordering: no undo

    def _check_spurious(self, space: PacketNumberSpace, spans: list[tuple[int, int]]) -> None:
        suspects = self._suspects
        assert suspects is not None
        arrived = {key for key in suspects if key[0] == space and any(a <= key[1] < b for a, b in spans)}
        if not arrived:
            return
        suspects -= arrived
        self.spurious_losses += len(arrived)
        if not suspects:
            self._suspects = None
            self.cc.undo_congestion_event(self._suspect_event)

    def _in_persistent_congestion(self, lost: list[SentPacket]) -> bool:
        """§7.6.2: two ack-eliciting packets lost, sent more than the
        persistent congestion duration apart, with nothing in between
        acknowledged, both sent after the first RTT sample.

        Judged within one space's batch of losses (§7.6.2 allows state for
        just the acknowledged space).  A gap in packet numbers ends a period,
        since the packet in the gap may have been acknowledged.
        """
        first_sample = self.rtt.first_sample_time
        if first_sample is None:
            return False  # §7.6.2: never before the first RTT sample
        duration = self.persistent_congestion_duration()
        period_start: float | None = None
        previous_pn: int | None = None
        for packet in lost:
            if previous_pn is not None and packet.packet_number != previous_pn + 1:
                period_start = None
            previous_pn = packet.packet_number
            if packet.time_sent <= first_sample:
                period_start = None  # packets before the first sample don't count
                continue
            if not packet.ack_eliciting:
                continue
            if period_start is None:
                period_start = packet.time_sent
            elif packet.time_sent - period_start > duration:
                return True
        return False

    def _process_ecn(
        self,
        state: _SpaceState,
        newly_acked: list[SentPacket],
        ecn_counts: tuple[int, int, int] | None,
        now: float,
    ) -> bool:
        """RFC 9000 §13.4.2.1 validation and RFC 9002 §7.1 / §A.7 ProcessECN.
        Returns True if a CE increase started a congestion response.  On a
        failed validation `ecn_failed` is set and the connection stops
        marking packets."""
        marked = sum(1 for p in newly_acked if p.ecn)
        if self.ecn_failed:
            return False
        if ecn_counts is None:
            if marked:
                self.ecn_failed = True  # ECT packets acked without counts
            return False
        ect0, ect1, ce = ecn_counts
        prev_ect0, prev_ect1, prev_ce = state.ecn_counts
        if ect0 < prev_ect0 or ect1 < prev_ect1 or ce < prev_ce:
            self.ecn_failed = True  # counts never decrease
            return False
        if (ect0 - prev_ect0) + (ce - prev_ce) < marked:
            self.ecn_failed = True  # marks were bleached on the way
            return False
        state.ecn_counts = (ect0, ect1, ce)
        self.ecn_marked_acked += marked
        if ce > prev_ce:
            # §7.1: a CE increase is a congestion event, keyed on the send
            # time of the largest newly acknowledged packet.
            self.cc.on_congestion_event(newly_acked[-1].time_sent, now)
            return True
        return False

    def _earliest_loss_time(self) -> tuple[float | None, PacketNumberSpace | None]:
        best: float | None = None
        best_space: PacketNumberSpace | None = None
        for space in _SPACES:
            loss_time = self._spaces[space].loss_time
            if loss_time is not None and (best is None or loss_time < best):
                best, best_space = loss_time, space
        return best, best_space

    def _pto_time_and_space(self) -> tuple[float | None, PacketNumberSpace | None, bool]:
        """§6.2.1 / §A.8 GetPtoTimeAndSpace: (time, space, anti_deadlock)."""
        backoff = 2 ** min(self.pto_count, MAX_PTO_BACKOFF_EXPONENT)
        duration = self.rtt.pto_base() * backoff
        initial, handshake, application = self._spaces
        # Application data doesn't arm the PTO before the handshake is
        # confirmed (§6.2.1), so it doesn't count as "in flight" here either:
        # otherwise 0-RTT alone in flight would hide the anti-deadlock case.
        eligible = initial.ack_eliciting_in_flight + handshake.ack_eliciting_in_flight
        if self.handshake_confirmed:
            eligible += application.ack_eliciting_in_flight
        if eligible == 0:
            if self.peer_completed_address_validation or self._timer_anchor is None:
                return None, None, False
            # §6.2.2.1: a client whose address the server may not have
            # validated keeps a PTO armed with nothing in flight, so the
            # server, possibly blocked by its amplification limit, can send.
            space = (
                PacketNumberSpace.HANDSHAKE
                if self.has_handshake_keys or initial.discarded
                else PacketNumberSpace.INITIAL
            )
            return self._timer_anchor + duration, space, True
        best: float | None = None
        best_space: PacketNumberSpace | None = None
        for space in _SPACES:
            state = self._spaces[space]
            if state.ack_eliciting_in_flight == 0 or state.time_of_last_ack_eliciting is None:
                continue
            timeout = duration
            if space == PacketNumberSpace.APPLICATION:
                if not self.handshake_confirmed:
                    break  # §6.2.1: no Application PTO before confirmation
                # §6.2.1: max_ack_delay (with backoff) only for Application.
                timeout += self.max_ack_delay * backoff
            when = state.time_of_last_ack_eliciting + timeout
            if best is None or when < best:
                best, best_space = when, space
        return best, best_space, False

    def _update_pacer(self) -> None:
        self.pacer.update_rate(self.cc.congestion_window, self.rtt.smoothed_rtt)

    def log_metrics(self) -> dict[str, float]:
        """qlog recovery:metrics_updated fields (seconds and bytes)."""
        data: dict[str, float] = dict(self.cc.log_data())
        data.update(
            smoothed_rtt=self.rtt.smoothed_rtt,
            rtt_variance=self.rtt.rttvar,
            pto_count=self.pto_count,
        )
        if self.rtt.has_sample:
            data.update(latest_rtt=self.rtt.latest_rtt, min_rtt=self.rtt.min_rtt)
        if self.pacer.rate is not None:
            data["pacing_rate"] = self.pacer.rate * 8  # bits per second
        return data
