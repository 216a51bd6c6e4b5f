# An in-memory HTTP/3 pair: tests/quic_pair.Pair with an H3Connection on each
# side, fed every QUIC event as it happens, collecting the HTTP/3 events.
# An optional `on_server_event` / `on_client_event` callback reacts at once
# (a server application answering a request, for instance).
from __future__ import annotations

from typing import Any, Callable, Optional

from pyquic.h3.connection import H3Connection
from tests.quic_pair import Pair, client_configuration, server_configuration


class H3Pair(Pair):
    def __init__(self, *, client_kwargs: Optional[dict] = None, server_kwargs: Optional[dict] = None,
                 h3_client_kwargs: Optional[dict] = None, h3_server_kwargs: Optional[dict] = None,
                 h3_sides: tuple = ("client", "server"), **kwargs) -> None:
        client_kwargs = {"alpn_protocols": ["h3"], **(client_kwargs or {})}
        server_kwargs = {"alpn_protocols": ["h3"], **(server_kwargs or {})}
        kwargs.setdefault("client_config", client_configuration(**client_kwargs))
        kwargs.setdefault("server_config", server_configuration(**server_kwargs))
        super().__init__(**kwargs)
        self.h3_sides = h3_sides  # a side left out speaks raw QUIC (a misbehaving peer)
        self.h3_client_kwargs = h3_client_kwargs or {}
        self.h3_server_kwargs = h3_server_kwargs or {}
        self.h3_client: Optional[H3Connection] = None
        self.h3_server: Optional[H3Connection] = None
        self.client_h3_events: list = []
        self.server_h3_events: list = []
        self.on_server_event: Optional[Callable[[Any], None]] = None
        self.on_client_event: Optional[Callable[[Any], None]] = None
        self.record_events = False

    def _collect_events(self) -> None:
        for who, conn, _ in self._endpoints():
            while True:
                event = conn.next_event()
                if event is None:
                    break
                (self.client_events if who == "client" else self.server_events).append(event)
                h3 = self._h3(who)
                if h3 is None:
                    continue
                for h3_event in h3.handle_event(event):
                    if who == "client":
                        self.client_h3_events.append(h3_event)
                        if self.on_client_event:
                            self.on_client_event(h3_event)
                    else:
                        self.server_h3_events.append(h3_event)
                        if self.on_server_event:
                            self.on_server_event(h3_event)
                self._dirty.add(who)

    def _h3(self, who: str) -> Optional[H3Connection]:
        if who not in self.h3_sides:
            return None
        if who == "client":
            if self.h3_client is None:
                self.h3_client = H3Connection(self.client, **self.h3_client_kwargs)
            return self.h3_client
        if self.h3_server is None:
            self.h3_server = H3Connection(self.server, **self.h3_server_kwargs)
        return self.h3_server

    def start(self) -> None:
        """Handshake, then both sides exchange SETTINGS."""
        self.handshake()
        self._h3("client")
        self._h3("server")
        self.drive()
        if self.h3_sides == ("client", "server"):
            assert self.h3_client.received_settings is not None and self.h3_server.received_settings is not None

    def events(self, who: str, kind: type, stream_id: Optional[int] = None) -> list:
        events = self.client_h3_events if who == "client" else self.server_h3_events
        return [e for e in events if isinstance(e, kind) and (stream_id is None or e.stream_id == stream_id)]
