# A server's preferred address (RFC 9000 §5.1.1, §9.6, §18.2).  Owns the
# decisions, not the paths:
#   - server: what it offers (`offer`): an address per family from
#     QuicConfiguration.preferred_address, and a connection ID of its own
#     (sequence number 1, issued here so the endpoint routes it) with its
#     stateless reset token;
#   - client: which offered address to move to (`choose`: the one of the
#     family the connection uses now, written the way the socket writes
#     addresses, an IPv4-mapped IPv6 address for a dual-stack socket), and
#     the offered connection ID as the peer's sequence number 1 (`cid_frame`,
#     so the ID travels the same checks as a NEW_CONNECTION_ID frame).
# The connection validates the chosen address with paths.py (a probe from
# the path in use, §9.6.1) and moves there once it is proven; the server
# sends from the preferred address when the client's non-probing packets
# arrive there (§9.6.2), the same way it follows any migration.
from __future__ import annotations

import ipaddress
from typing import Any, Optional, Sequence

from .connection_ids import LocalConnectionIds
from .errors import UsageError
from .frames import NewConnectionId
from .transport_params import PreferredAddress

__all__ = ["check_addresses", "choose", "cid_frame", "offer", "target"]

PREFERRED_CID_SEQUENCE = 1  # §5.1.1: the ID in preferred_address has sequence number 1


def check_addresses(addresses: Sequence[Any]) -> tuple[Optional[tuple], Optional[tuple]]:
    """The configuration's addresses as (IPv4, IPv6), each (host, port) or None;
    UsageError for anything else (names, port 0, two of one family)."""
    v4 = v6 = None
    for entry in addresses:
        try:
            host, port = entry[0], int(entry[1])
            ip = ipaddress.ip_address(host)
        except (TypeError, ValueError, IndexError):
            raise UsageError(f"preferred_address: {entry!r} is not an (IP address, port) pair") from None
        if not 0 < port < 65536:
            raise UsageError(f"preferred_address: port {port} out of range")
        if ip.version == 4:
            if v4 is not None:
                raise UsageError("preferred_address: one IPv4 address at most")
            v4 = (str(ip), port)
        else:
            if v6 is not None:
                raise UsageError("preferred_address: one IPv6 address at most")
            v6 = (str(ip), port)
    return v4, v6


def offer(addresses: Sequence[Any], cids: LocalConnectionIds) -> Optional[PreferredAddress]:
    """Server: the preferred_address transport parameter (None: none configured).
    Call once per connection, before any other ID is issued: its ID must
    take sequence number 1."""
    v4, v6 = check_addresses(addresses)
    if v4 is None and v6 is None:
        return None
    if not cids.length:
        raise UsageError("preferred_address needs connection IDs (connection_id_length > 0)")
    if cids.next_sequence != PREFERRED_CID_SEQUENCE:
        raise UsageError("the preferred address's connection ID must be the second one issued")
    entry = cids.issue()
    return PreferredAddress(v4, v6, entry.cid, entry.token)


def cid_frame(preferred: PreferredAddress) -> NewConnectionId:
    """Client: the offered ID as the server's connection ID number 1."""
    return NewConnectionId(PREFERRED_CID_SEQUENCE, 0, preferred.connection_id, preferred.stateless_reset_token)


def target(params: Any, current: Any, peer_cids: Any) -> Any:
    """Client, once the handshake is confirmed: the address to validate
    (None: the server offered none that fits, or its ID is gone already)."""
    offered = params.preferred_address if params is not None else None
    if offered is None or PREFERRED_CID_SEQUENCE not in peer_cids.spare:
        return None
    addr = choose(offered, current)
    return addr if addr != current else None


def choose(preferred: PreferredAddress, current: Any) -> Any:
    """Client: the offered address to validate and move to, written like
    `current` (the server's address in use), or None when none fits (no
    address of that family, or `current` is not an IP address tuple)."""
    try:
        ip = ipaddress.ip_address(str(current[0]).split("%")[0])
    except (TypeError, ValueError, IndexError):
        return None
    mapped = ip.version == 6 and ip.ipv4_mapped is not None
    if ip.version == 4 or mapped:
        target = preferred.ipv4_address
        if target is None:
            return None
        host, port = target
        if mapped:
            host = f"::ffff:{host}"
    else:
        target = preferred.ipv6_address
        if target is None:
            return None
        host, port = target
    if len(current) == 4:
        return (host, port, 0, 0)
    return (host, port)
