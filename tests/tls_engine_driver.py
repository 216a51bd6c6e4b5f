# Test helper for the TLS engine tests (not a test module): a pair of engines
# wired in memory.  HandshakeDataReady events of one side are delivered, in
# order and one event per receive() call, to the other side at the same level;
# every call's events are recorded so tests can assert the exact order.
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

import tls
from tls import events as ev
from tls.engine import Engine
from tls.key_schedule import CIPHER_SUITES, traffic_key_iv

NOW = 1_900_000_000.0  # 2030-03-17, inside tests/pki.py's VALID_NOW window


def short(events: list[Any]) -> list[str]:
    """Events as compact strings, KeyLog left out (see keylog_labels)."""
    out = []
    for e in events:
        if isinstance(e, ev.KeyLog):
            continue
        if isinstance(e, ev.HandshakeDataReady):
            out.append(f"HDR({e.level.name}:{_types(e.data)})")
        elif isinstance(e, ev.KeyReady):
            out.append(f"Key({e.level.name},{e.direction.name})")
        else:
            out.append(type(e).__name__)
    return out


def _types(data: bytes) -> str:
    names = []
    i = 0
    while i + 4 <= len(data):
        t = data[i]
        n = int.from_bytes(data[i + 1 : i + 4], "big")
        names.append({1: "CH", 2: "SH", 4: "NST", 5: "EOED", 8: "EE", 11: "Cert", 13: "CR", 15: "CV", 20: "Fin", 24: "KU"}.get(t, str(t)))
        i += 4 + n
    return ",".join(names)


def keylog_labels(events: list[Any]) -> list[str]:
    return [e.label for e in events if isinstance(e, ev.KeyLog)]


@dataclass
class Side:
    engine: Engine
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)

    @property
    def events(self) -> list[Any]:
        return [e for _, evs in self.calls for e in evs]

    def of_type(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def trace(self) -> list[list[str]]:
        return [short(evs) for _, evs in self.calls]


class Pair:
    def __init__(
        self,
        client_config: tls.Config,
        server_config: tls.Config,
        profile: tls.Profile = tls.TCP,
        *,
        now: float = NOW,
        client_tp: bytes | None = None,
        server_tp: bytes | None = None,
        client_kw: dict | None = None,
        server_kw: dict | None = None,
    ) -> None:
        if profile.transport_parameters:
            client_tp = b"client-tp" if client_tp is None else client_tp
            server_tp = b"server-tp" if server_tp is None else server_tp
        self.now = now
        self.client = Side(Engine(client_config, True, profile, client_tp, now=lambda: self.now, **(client_kw or {})))
        self.server = Side(Engine(server_config, False, profile, server_tp, now=lambda: self.now, **(server_kw or {})))

    def _deliver(self, source: Side, events: list[Any]) -> list[tuple[Side, Any]]:
        target = self.server if source is self.client else self.client
        return [(target, e) for e in events if isinstance(e, ev.HandshakeDataReady)]

    def pump(self, pending: list[tuple[Side, Any]], intercept: Callable | None = None) -> None:
        while pending:
            target, e = pending.pop(0)
            data = e.data
            if intercept is not None:
                data = intercept(target is self.server, e.level, data)
                if data is None:
                    continue
            evs = target.engine.receive(e.level, data)
            target.calls.append((f"receive({e.level.name})", evs))
            pending.extend(self._deliver(target, evs))

    def handshake(self, intercept: Callable | None = None) -> Pair:
        evs = self.client.engine.start()
        self.client.calls.append(("start", evs))
        self.pump(self._deliver(self.client, evs), intercept)
        return self

    def call(self, side: Side, name: str, *args: Any) -> list[Any]:
        evs = getattr(side.engine, name)(*args)
        side.calls.append((name, evs))
        self.pump(self._deliver(side, evs))
        return evs


# -- key compatibility ------------------------------------------------------


def aead_for(cipher_suite: int, secret: bytes):
    suite = CIPHER_SUITES[cipher_suite]
    key, iv = traffic_key_iv(suite, secret)
    cls = ChaCha20Poly1305 if cipher_suite == 0x1303 else AESGCM
    return cls(key), iv


def seal_open_roundtrip(writer: Engine, reader: Engine, level: tls.Level, cipher_suite: int) -> bool:
    """What `writer` seals with its WRITE secret, `reader` opens with its READ secret."""
    w_aead, w_iv = aead_for(cipher_suite, writer.secret(level, tls.Direction.WRITE))
    r_aead, r_iv = aead_for(cipher_suite, reader.secret(level, tls.Direction.READ))
    plaintext = b"key compatibility " + bytes([level])
    sealed = w_aead.encrypt(w_iv, plaintext, b"aad")
    return r_aead.decrypt(r_iv, sealed, b"aad") == plaintext and w_iv == r_iv
