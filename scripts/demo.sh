#!/usr/bin/env bash
# The main job: set up from scratch, then run the demo (examples/quic_demo.py):
# the RFC 9001/9369 sample packets through both packet-protection
# implementations, pyquic against aioquic and qh3 in both roles over loopback
# (20 MB each way, SHA-256 checked, MB/s printed), and the packet-protection
# benchmark against aioquic and `openssl speed`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec "$PY" examples/quic_demo.py "$@"
