# Which QUIC version one connection speaks, and how it came to: the client's
# original version, the version in use, incompatible negotiation (a Version
# Negotiation packet, RFC 9000 §6, RFC 9368 §2.1), compatible negotiation (the
# server answers a v1 first flight in v2 or the reverse, RFC 9368 §2.3,
# RFC 9369 §4), which version each packet type may carry, and the checks on
# the peer's version_information (RFC 9368 §4, the downgrade rules).
# Owns those versions only; the connection installs the keys they call for.
#
#   versions = Versions([QUIC_V2, QUIC_V1], is_client=True, first=QUIC_V1)
#   verdict = versions.on_packet(PacketType.INITIAL, QUIC_V2)  # SWITCH: derive v2 Initial keys
from __future__ import annotations

from enum import Enum
from typing import Optional, Sequence

from .errors import TransportError
from .packet import PacketType
from .transport_params import VersionInformation
from .versions import VERSIONS

__all__ = ["Versions", "Verdict", "compatible"]


def compatible(original: int, other: int) -> bool:
    """Whether a first flight in ``original`` converts to ``other``: QUIC v1
    and v2 convert to each other (RFC 9369 §4), every version to itself."""
    return original in VERSIONS and other in VERSIONS


class Verdict(Enum):
    ACCEPT = "accept"
    DROP = "drop"
    SWITCH = "switch"  # client: the server negotiated this packet's version; follow it


class Versions:
    """The versions of one connection.  ``current`` is the version of the
    Initial, Handshake and 1-RTT packets we send; ``original`` the version
    of the client's first Initial of this attempt (after a Version
    Negotiation, of the new one), which 0-RTT packets keep (RFC 9369 §4)."""

    __slots__ = ("supported", "is_client", "current", "original", "vn_versions", "negotiated", "handshake_seen")

    def __init__(self, supported: Sequence[int], is_client: bool, first: Optional[int] = None) -> None:
        self.supported = tuple(supported)
        self.is_client = is_client
        self.current = first  # a server learns it from the client's first Initial
        self.original = first
        self.vn_versions: Optional[tuple[int, ...]] = None  # client: the Version Negotiation it followed
        self.negotiated = False  # compatible negotiation changed the version
        self.handshake_seen = False  # a Handshake packet in the current version was opened

    # -- packets -----------------------------------------------------------------------------------

    def on_packet(self, ptype: PacketType, version: int) -> Verdict:
        """Whether a long-header packet of ``version`` may be opened."""
        current = self.current
        if current is None:  # server, before the first Initial
            if self.is_client or ptype is not PacketType.INITIAL or version not in self.supported:
                return Verdict.DROP
            self.current = self.original = version
            return Verdict.ACCEPT
        if version == current:
            # RFC 9369 §4: 0-RTT stays in the original version, even after a switch.
            if ptype is PacketType.ZERO_RTT and self.negotiated:
                return Verdict.DROP
            return Verdict.ACCEPT
        if self.is_client:
            # The server's first Initial in another version: compatible
            # negotiation, if we offered that version and have not seen a
            # Handshake packet yet (the version is settled by then).
            if (
                ptype is PacketType.INITIAL
                and not self.negotiated
                and not self.handshake_seen
                and version in self.supported
                and compatible(current, version)
            ):
                return Verdict.SWITCH
            return Verdict.DROP
        # Server after switching: the client's Initials in the original version
        # until it follows (RFC 9369 §4), and its 0-RTT in it always.
        if self.negotiated and version == self.original:
            if ptype is PacketType.ZERO_RTT or (ptype is PacketType.INITIAL and not self.handshake_seen):
                return Verdict.ACCEPT
        return Verdict.DROP

    def switch(self, version: int) -> None:
        """Client: follow the server to ``version`` (a SWITCH verdict)."""
        self.current = version
        self.negotiated = True

    def zero_rtt_version(self) -> Optional[int]:
        return self.original

    # -- server: choosing -----------------------------------------------------------------------------

    def choose(self, info: Optional[VersionInformation]) -> int:
        """Server: the negotiated version, from the client's version_information
        (None: it sent none, or its parameters did not parse, which the
        connection rejects with the right error): the first of our supported
        versions, in our order of preference, that the client lists as
        available and its first flight converts to (RFC 9368 §2.3; servers
        may use their own preference, §3)."""
        original = self.original
        assert original is not None and not self.is_client
        if info is None or info.chosen_version != original:
            return original  # no negotiation; the checks close the connection if they must
        offered = set(info.available_versions) | {original}
        for version in self.supported:
            if version in offered and compatible(original, version):
                if version != original:
                    self.current = version
                    self.negotiated = True
                return version
        return original

    # -- Version Negotiation (client) ----------------------------------------------------------------

    def on_version_negotiation(self, listed: Sequence[int]) -> Optional[int]:
        """Client: the version to start over with after a Version Negotiation
        packet listing ``listed``, or None when there is none in common."""
        self.vn_versions = tuple(listed)
        common = [v for v in self.supported if v in listed]
        if not common:
            return None
        self.current = self.original = common[0]
        return common[0]

    # -- version_information ---------------------------------------------------------------------------

    def local_information(self) -> VersionInformation:
        return VersionInformation(self.current, self.supported)

    def check_peer(self, info: Optional[VersionInformation]) -> None:
        """RFC 9368 §4 on the peer's version_information; raises
        VERSION_NEGOTIATION_ERROR."""
        if not self.is_client:
            # The client's Chosen Version is the version of its first Initial.
            if info is not None and info.chosen_version != self.original:
                raise TransportError.VERSION_NEGOTIATION_ERROR("chosen_version is not the client's first version")
            return
        if info is None:
            # Without it the client cannot tell a negotiation from a downgrade.
            if self.vn_versions is not None or self.negotiated:
                raise TransportError.VERSION_NEGOTIATION_ERROR("no version_information after a version negotiation")
            return
        if info.chosen_version != self.current:
            raise TransportError.VERSION_NEGOTIATION_ERROR("chosen_version differs from the version in use")
        if self.vn_versions is not None:
            # The version we would have chosen from the server's full list must
            # be the one the Version Negotiation packet led us to.
            ours = [v for v in self.supported if v in info.available_versions]
            if not ours or ours[0] != self.original:
                raise TransportError.VERSION_NEGOTIATION_ERROR("version downgrade detected")
