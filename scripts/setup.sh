#!/usr/bin/env bash
# Set-up shared by scripts/demo.sh and scripts/test.sh, for a fresh machine:
# Debian packages (when run as root with apt-get), a virtual environment in
# .venv, and pyquic installed into it in editable mode with its test extra
# (which builds the C extensions pyquic._crypto and pyquic._frames).  Safe to run again.
# Source it: it leaves $PY pointing at the environment's python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages: compiler and OpenSSL headers for the extension, the openssl
# command (benchmark floor and a TLS peer), the system CA bundle (trust store
# test), the kernel uapi headers (kTLS struct layouts are checked against them),
# tshark (it decrypts our captures with our key logs), ngtcp2's HTTP/3 client and
# server (gtlsclient, gtlsserver) and headless Chromium: HTTP/3 peers; Samba
# (smbd) and smbclient: the SMB server and client of examples/smb_quic.
DEBS="gcc libc6-dev linux-libc-dev libssl-dev openssl ca-certificates tshark ethtool ngtcp2-client ngtcp2-server chromium samba smbclient"
missing=""
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $missing >/dev/null
    else
        echo "setup: please install these Debian packages first:$missing" >&2
        exit 1
    fi
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: $PYTHON is $("$PYTHON" --version 2>&1); pyquic needs Python 3.11 or newer (set PYTHON=...)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PY="$ROOT/.venv/bin/python"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
"$PY" -c 'import pyquic._crypto as c; assert c.IMPLEMENTATION == "c"' || {
    echo "setup: the C extension pyquic._crypto did not build" >&2
    exit 1
}
"$PY" -c 'import pyquic._frames' || {
    echo "setup: the C extension pyquic._frames did not build" >&2
    exit 1
}
export PY
