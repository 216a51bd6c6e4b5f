# Scripts run as separate processes by tests/quic_peers.py: QUIC peers
# (aioquic, qh3, pyquic) speaking the "pyquic-test" raw-stream protocol.
