#!/usr/bin/env bash
# The main job: set up from scratch, then run the demo.
# Part one (examples/h3_demo.py): `python -m pyquic.server` serves a directory
# over HTTP/3 and hq-interop on one port; our `python -m pyquic.client` (h3 and
# hq-interop), aioquic's and qh3's HTTP/3 clients and ngtcp2's gtlsclient fetch
# a 20 MB file from it, each in its own process, SHA-256 checked, MB/s printed.
# Part two (examples/quic_demo.py): the RFC 9001/9369 sample packets through both
# packet-protection implementations, pyquic against aioquic and qh3 in both
# roles over loopback (20 MB each way), and the packet-protection benchmark
# against aioquic and `openssl speed`.
# Part three (python -m examples.smb_quic): SMB over QUIC in front of a private
# Samba: Debian's smbclient through our TCP bridge and gateway, smbprotocol
# natively over QUIC, and smbclient straight over TCP for comparison.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
"$PY" examples/h3_demo.py "$@"
echo
echo "== SMB over QUIC (examples/smb_quic) =="
"$PY" -m examples.smb_quic
