# interop/: the quic-interop-runner's test cases between pyquic, aioquic, qh3 and
# ngtcp2 over an emulated network (python -m interop; see interop/README.md).
