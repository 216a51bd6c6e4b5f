# QUIC's side of 0-RTT (RFC 9001 §4.6, RFC 9000 §7.4.1).  Owns
#   - what a server seals in its tickets for 0-RTT: only its limits, as
#     transport parameters (small tickets), and whether a ticket's limits
#     still hold (a server that lowered one must refuse 0-RTT);
#   - the client's start: the limits remembered in the ticket applied to
#     its streams, which may then send in 0-RTT packets;
#   - the client's answer to a refusal: those packets forgotten (no
#     congestion signal) and their data sent again in 1-RTT;
#   - how long a server keeps its 0-RTT keys (§4.9.3: 3 PTO once the
#     handshake is confirmed).
# The TLS engine decides acceptance (ticket, age, ALPN, replay); these are
# the QUIC rules around it.  Functions take the connection, as the packet
# builder's do; nothing here does I/O.
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import TransportError
from .packet_builder import on_packet_lost
from .recovery import PacketNumberSpace
from .transport_params import QuicTransportParameters

if TYPE_CHECKING:  # pragma: no cover
    from .config import QuicConfiguration
    from .connection import QuicConnection

APPLICATION = PacketNumberSpace.APPLICATION


def ticket_limits(config: "QuicConfiguration") -> bytes:
    """What a ticket remembers of a server for 0-RTT (§7.4.1): its limits,
    as transport parameters (empty connection IDs keep them parseable)."""
    return QuicTransportParameters(
        original_destination_connection_id=b"",
        initial_source_connection_id=b"",
        **config.initial_limits(),
        active_connection_id_limit=config.active_connection_id_limit,
        max_datagram_frame_size=config.max_datagram_frame_size or 0,
    ).encode()


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


def start_client(c: "QuicConnection", keys: Any) -> None:
    """Client: 0-RTT keys from a resumed session.  Streams open at once,
    within the limits the server gave last time (kept in the ticket);
    without them in the ticket no 0-RTT is sent."""
    ticket = getattr(c._tls, "early_data_ticket", None)
    remembered = getattr(ticket, "transport_parameters", None)
    if not remembered:
        return
    try:
        params = QuicTransportParameters.parse(remembered, from_server=True)
    except TransportError:
        return
    c._zero_rtt_send = keys
    c._streams.on_peer_transport_parameters(params)
    c._peer_max_datagram_frame_size = params.max_datagram_frame_size
    c._streams_ready = True


def on_rejected(c: "QuicConnection") -> None:
    """RFC 9001 §4.6.2: the server refused 0-RTT: what those packets held
    goes again in 1-RTT packets (forgotten, not lost: no congestion signal),
    and an acknowledgment of one of them becomes a PROTOCOL_VIOLATION."""
    c._zero_rtt_send = None
    if c._one_rtt is None:
        c._streams_ready = False
    forgotten = c._loss.forget_sent(APPLICATION)
    for packet in forgotten:
        on_packet_lost(c, packet)
    if forgotten:
        c._zero_rtt_last_pn = max(p.packet_number for p in forgotten)
    c._stats.zero_rtt_rejected = True


def server_keys_expired(c: "QuicConnection", now: float) -> bool:
    """RFC 9001 §4.9.3: a server keeps its 0-RTT keys for reordered packets
    only a short while once 1-RTT is in use, then drops them (True)."""
    at = c._zero_rtt_discard_at
    if at is None or now < at:
        return False
    c._zero_rtt_recv = None
    return True


__all__ = ["limits_still_hold", "on_rejected", "server_keys_expired", "start_client", "ticket_limits"]
