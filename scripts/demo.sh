#!/usr/bin/env bash
# The main job: set up from scratch, then run the demo.  For now the demo
# protects and unprotects the RFC 9001 / RFC 9369 sample packets with both
# packet-protection implementations (C and pure Python) and prints the
# packet-protection benchmark against aioquic and the OpenSSL floor.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec "$PY" examples/packet_protection_demo.py "$@"
