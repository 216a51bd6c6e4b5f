# What the servers of a fleet (processes or machines behind one address)
# must share so that any of them can answer for the others.  FleetSecrets
# owns
#   - the stateless reset key: a server that does not hold a connection (it
#     restarted, or the packet strayed) still sends the reset its client
#     recognises (RFC 9000 §10.3);
#   - the address-validation token key: a Retry or NEW_TOKEN token one
#     server minted is good at every other (§8.1);
#   - the session ticket keys: a ticket one server issued resumes at any
#     other (tls.TicketSealer, RFC 8446 §4.6.1);
#   - the QUIC-LB configuration (quic_lb.LbConfig): each server writes its
#     own server ID into every connection ID it issues, so a QUIC-LB load
#     balancer routes every packet of a connection to it, after migration and
#     rotation too, with no per-connection state.
# They live in one JSON file (`python -m pyquic.tools.fleet new -o fleet.json`),
# given to each server with its own server ID (`python -m pyquic.server
# --fleet fleet.json --server-id 01`) and to the balancer.  Keys are secrets:
# the file is written owner-readable only.  Nothing here does network I/O.
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import UsageError
from .quic_lb import LbConfig, LbEncoder

__all__ = ["FleetSecrets"]


@dataclass
class FleetSecrets:
    stateless_reset_key: bytes
    token_key: bytes
    ticket_keys: list = field(default_factory=list)  # [(key_id 8, key 32, created epoch seconds)], newest first
    quic_lb: Optional[LbConfig] = None

    @classmethod
    def generate(cls, now: float, entropy: Callable[[int], bytes], *, config_id: int = 0,
                 server_id_length: int = 2, nonce_length: int = 6, encode_length: bool = True) -> "FleetSecrets":
        """Fresh secrets and an encrypted QUIC-LB configuration."""
        lb = LbConfig(config_id, server_id_length, nonce_length, entropy(16), encode_length)
        return cls(entropy(32), entropy(16), [(entropy(8), entropy(32), now)], lb)

    # -- JSON -----------------------------------------------------------------------------------------------

    def to_json(self) -> str:
        lb = self.quic_lb
        return json.dumps({
            "stateless_reset_key": self.stateless_reset_key.hex(),
            "token_key": self.token_key.hex(),
            "ticket_keys": [[kid.hex(), key.hex(), created] for kid, key, created in self.ticket_keys],
            "quic_lb": None if lb is None else {
                "config_id": lb.config_id, "server_id_length": lb.server_id_length,
                "nonce_length": lb.nonce_length, "key": lb.key.hex() if lb.key else None,
                "encode_length": lb.encode_length,
            },
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "FleetSecrets":
        try:
            data = json.loads(text)
            lb = data.get("quic_lb")
            secrets = cls(
                bytes.fromhex(data["stateless_reset_key"]), bytes.fromhex(data["token_key"]),
                [(bytes.fromhex(kid), bytes.fromhex(key), float(created)) for kid, key, created in
                 data.get("ticket_keys", [])],
                None if lb is None else LbConfig(
                    int(lb["config_id"]), int(lb["server_id_length"]), int(lb["nonce_length"]),
                    bytes.fromhex(lb["key"]) if lb.get("key") else None, bool(lb.get("encode_length", True))),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"fleet secrets: {exc}") from None
        if len(secrets.stateless_reset_key) < 16 or len(secrets.token_key) != 16:
            raise UsageError("fleet secrets: stateless_reset_key needs 16+ octets, token_key 16")
        if any(len(kid) != 8 or len(key) != 32 for kid, key, _ in secrets.ticket_keys):
            raise UsageError("fleet secrets: ticket keys are an 8-octet id and a 32-octet key")
        return secrets

    @classmethod
    def load(cls, path: Any) -> "FleetSecrets":
        return cls.from_json(Path(path).read_text())

    def save(self, path: Any) -> None:
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json() + "\n")

    # -- applying them -------------------------------------------------------------------------------------

    def configure(self, configuration: Any, server_id: Optional[bytes], now: float,
                  entropy: Callable[[int], bytes], low_bits: Optional[int] = None) -> None:
        """A server's QuicConfiguration: the shared ticket keys, and QUIC-LB
        connection IDs naming `server_id` (required when there is a QUIC-LB
        configuration)."""
        from tls.tickets import TicketSealer

        if self.ticket_keys:
            # The fleet rotates them (a new key first in the file), not each server on its own.
            forever = 10 * 365 * 86400.0
            configuration.ticket_sealer = TicketSealer(now, keys=list(self.ticket_keys), rotation_interval=forever,
                                                       key_lifetime=forever)
        if self.quic_lb is not None:
            if server_id is None:
                raise UsageError("a QUIC-LB fleet server needs its server ID")
            configuration.connection_id_length = self.quic_lb.cid_length
            configuration.connection_id_generator = LbEncoder(self.quic_lb, server_id, entropy, low_bits)

    def endpoint_kwargs(self) -> dict:
        """For QuicEndpoint / serve(): the shared reset and token keys."""
        return {"stateless_reset_key": self.stateless_reset_key, "token_key": self.token_key}
