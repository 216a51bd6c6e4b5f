# QUIC's side of 0-RTT (RFC 9001 §4.6, RFC 9000 §7.4.1).  Owns
#   - what a server seals in its tickets for 0-RTT: only its limits, as
#     transport parameters (small tickets), and whether a ticket's limits
#     still hold (a server that lowered one must refuse 0-RTT);
#   - one connection's 0-RTT state (ZeroRtt): the client's send keys, the
#     server's receive keys and when they go (§4.9.3: 3 PTO once the
#     handshake is confirmed), and, once the server refused 0-RTT, the last
#     packet number it carried (an acknowledgment up to it is a
#     PROTOCOL_VIOLATION, §4.6.2);
#   - the decisions: the client's start (the limits remembered in the ticket,
#     for its streams), the client's answer to a refusal (those packets
#     forgotten, with no congestion signal, and what they carried).
# The TLS engine decides acceptance (ticket, age, ALPN, replay); these are
# the QUIC rules around it.  ZeroRtt reaches no further than the
# LossRecovery it is handed; it returns what the connection should do
# (apply these limits; requeue these packets, emit this event).  Nothing
# here does I/O.
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from . import events
from .errors import TransportError
from .sent_records import K_STREAM
from .recovery import PacketNumberSpace
from .transport_params import QuicTransportParameters

if TYPE_CHECKING:  # pragma: no cover
    from .config import QuicConfiguration
    from .recovery import LossRecovery, SentPacket

APPLICATION = PacketNumberSpace.APPLICATION


def ticket_limits(config: "QuicConfiguration") -> bytes:
    """What a ticket remembers of a server for 0-RTT (§7.4.1): its limits,
    as transport parameters (empty connection IDs keep them parseable).
    Encoded once per set of limits (every connection of a server asks)."""
    limits = config.initial_limits()
    key = (*sorted(limits.items()), config.active_connection_id_limit, config.max_datagram_frame_size or 0)
    encoded = _TICKET_LIMITS.get(key)
    if encoded is None:
        encoded = QuicTransportParameters(
            original_destination_connection_id=b"",
            initial_source_connection_id=b"",
            **limits,
            active_connection_id_limit=config.active_connection_id_limit,
            max_datagram_frame_size=config.max_datagram_frame_size or 0,
        ).encode()
        if len(_TICKET_LIMITS) >= 64:  # a bound: configurations are few
            _TICKET_LIMITS.clear()
        _TICKET_LIMITS[key] = encoded
    return encoded


_TICKET_LIMITS: dict[tuple, bytes] = {}


def limits_still_hold(config: "QuicConfiguration", sealed: bytes) -> bool:
    """§7.4.1: a server accepting 0-RTT must not have lowered any limit the
    client remembered (sealed in the ticket by ticket_limits)."""
    try:
        old = QuicTransportParameters.parse(sealed, from_server=True)
    except TransportError:  # not ours, or from an older build: no 0-RTT
        return False
    return (
        config.max_data >= old.initial_max_data
        and config.max_stream_data
        >= max(
            old.initial_max_stream_data_bidi_local,
            old.initial_max_stream_data_bidi_remote,
            old.initial_max_stream_data_uni,
        )
        and config.max_streams_bidi >= old.initial_max_streams_bidi
        and config.max_streams_uni >= old.initial_max_streams_uni
        and config.active_connection_id_limit >= old.active_connection_id_limit
        and (config.max_datagram_frame_size or 0) >= (old.max_datagram_frame_size or 0)
    )


class Refusal(NamedTuple):
    """What the server's refusal of our 0-RTT asks of the connection (§4.6.2)."""

    lost: list  # SentPacket records: their content goes again, in 1-RTT
    event: events.ZeroRttRejected  # for the application: what is sent again


class ZeroRtt:
    """One connection's 0-RTT keys and rules; see the module header.  `send`
    (client) and `recv` (server) are read where packets are built and
    opened; they change only through the methods."""

    __slots__ = ("send", "recv", "discard_at", "rejected_last_pn", "version")

    def __init__(self) -> None:
        self.send: Any = None  # client: 0-RTT packet keys, while 0-RTT may be sent
        self.recv: Any = None  # server: 0-RTT packet keys, while 0-RTT may arrive
        self.discard_at: Optional[float] = None  # server: when `recv` goes
        self.rejected_last_pn: Optional[int] = None  # client: our last 0-RTT packet, if refused
        self.version: Optional[int] = None  # client: the version our 0-RTT packets carry (RFC 9369 §4)

    # -- client --------------------------------------------------------------------
    def start_client(self, keys: Any, ticket: Any, version: int) -> Optional[QuicTransportParameters]:
        """0-RTT keys from a resumed session, for packets of ``version`` (the
        original one, even once the server has negotiated another).  Streams open at once, within
        the limits the server gave last time (kept in the ticket): returned,
        for the connection to apply.  Without them no 0-RTT is sent (None)."""
        remembered = getattr(ticket, "transport_parameters", None)
        if not remembered:
            return None
        try:
            params = QuicTransportParameters.parse(remembered, from_server=True)
        except TransportError:
            return None
        self.send = keys
        self.version = version
        return params

    def stop_sending(self) -> None:
        """1-RTT is in use both ways: no more 0-RTT packets."""
        self.send = None

    def on_rejected(self, loss: "LossRecovery") -> Refusal:
        """RFC 9001 §4.6.2: the server refused 0-RTT.  Those packets are
        forgotten by `loss` (not lost: no congestion signal); what they held
        goes again in 1-RTT packets (the connection requeues `lost`); an
        acknowledgment of one of them becomes a PROTOCOL_VIOLATION (the
        connection checks ACKs against rejected_last_pn); the application
        hears of it (`event`)."""
        self.send = None
        forgotten: list[SentPacket] = loss.forget_sent(APPLICATION)
        resent: dict[int, int] = {}
        for packet in forgotten:
            for record in packet.frames:
                if record[0] == K_STREAM:
                    resent[record[1]] = resent.get(record[1], 0) + record[3]
        if forgotten:
            self.rejected_last_pn = max(p.packet_number for p in forgotten)
        return Refusal(forgotten, events.ZeroRttRejected(resent))

    # -- server --------------------------------------------------------------------
    def install_recv(self, keys: Any) -> None:
        self.recv = keys

    def on_handshake_confirmed(self, now: float, loss: "LossRecovery") -> None:
        """RFC 9001 §4.9.3: 0-RTT keys are kept for reordered packets only a
        short while once 1-RTT is in use (here 3 PTO)."""
        if self.recv is not None:
            self.discard_at = now + 3 * loss.probe_timeout()

    def recv_keys_expired(self, now: float) -> bool:
        """True once the receive keys are due to go (they are dropped then)."""
        at = self.discard_at
        if at is None or now < at:
            return False
        self.recv = None
        return True


__all__ = ["Refusal", "ZeroRtt", "limits_still_hold", "ticket_limits"]
