# pyquic against aioquic over loopback UDP, aioquic running in separate processes
# (tests/peers/raw_peer.py): our client against its server, its client
# against our server, then through the impairing relay.  The cases live in
# tests/quic_interop_cases.py (shared with the other peer's file).
from tests.quic_interop_cases import InteropSuite, files, peer_server, small_window_server  # noqa: F401


class TestAioquic(InteropSuite):
    peer = "aioquic"
