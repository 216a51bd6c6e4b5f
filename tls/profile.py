# The carrier profile: every difference between TLS over QUIC (RFC 9001) and
# TLS over TCP (RFC 8446 with a record layer) lives in one frozen object.
# Handshake states read these flags; they never ask "is this QUIC?".
from __future__ import annotations

from dataclasses import dataclass

QUIC_MAX_EARLY_DATA = 0xFFFFFFFF


@dataclass(frozen=True)
class Profile:
    name: str
    # quic_transport_parameters (0x39): sent by both sides and required from
    # the peer (missing_extension, RFC 9001 §8.2).  When False it is never sent
    # and, if received, it is an unknown extension (ignored in a ClientHello,
    # unsupported_extension anywhere else since we never ask for it).
    transport_parameters: bool
    # Middlebox compatibility mode (RFC 8446 Appendix D.4): the client sends a
    # 32-byte legacy_session_id; the record layer sends change_cipher_spec.
    middlebox_compat: bool
    # A server refuses a ClientHello with a non-empty legacy_session_id
    # (RFC 9001 §8.4: QUIC clients MUST NOT request compatibility mode).
    reject_legacy_session_id: bool
    # The client sends EndOfEarlyData under the 0-RTT key after an accepted
    # 0-RTT (RFC 8446 §4.5); QUIC forbids the message (RFC 9001 §8.3).
    end_of_early_data: bool
    # KeyUpdate messages (RFC 8446 §4.6.3); QUIC updates keys itself and treats
    # a KeyUpdate message as unexpected_message (RFC 9001 §6).
    key_update: bool
    # ALPN must be negotiated (RFC 9001 §8.1): no_application_protocol otherwise.
    alpn_required: bool
    # The max_early_data_size a server puts in tickets that allow 0-RTT, and
    # the only value a client accepts (RFC 9001 §4.6.1).  None: the configured
    # byte limit is used.
    ticket_max_early_data: int | None

    def max_early_data_for_ticket(self, configured: int) -> int:
        """What a NewSessionTicket's early_data extension says (0: omit it)."""
        if configured <= 0:
            return 0
        if self.ticket_max_early_data is not None:
            return self.ticket_max_early_data
        return configured


QUIC = Profile(
    name="quic",
    transport_parameters=True,
    middlebox_compat=False,
    reject_legacy_session_id=True,
    end_of_early_data=False,
    key_update=False,
    alpn_required=True,
    ticket_max_early_data=QUIC_MAX_EARLY_DATA,
)

TCP = Profile(
    name="tcp",
    transport_parameters=False,
    middlebox_compat=True,
    reject_legacy_session_id=False,
    end_of_early_data=True,
    key_update=True,
    alpn_required=False,
    ticket_max_early_data=None,
)

__all__ = ["Profile", "QUIC", "TCP", "QUIC_MAX_EARLY_DATA"]
