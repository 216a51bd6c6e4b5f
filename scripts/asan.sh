#!/usr/bin/env bash
# scripts/asan.sh: runs the packet-protection and C frame-parser tests against
# an AddressSanitizer build of pyquic._crypto and pyquic._frames.  Owns only
# this check; it never touches the normal build (./build, the in-place .so):
# the extensions are built with PYQUIC_ASAN=1
# into a temporary directory, next to a copy of the Python packages, and the
# tests run from there with that directory alone on PYTHONPATH.
#
#   scripts/asan.sh            # exits non-zero on any test failure or ASan report
#   scripts/asan.sh -x -k vectors          # extra arguments go to pytest
#   PYQUIC_HYPOTHESIS_PROFILE=quick scripts/asan.sh
#
# The interpreter: $PYQUIC_PYTHON, else $PY (exported by scripts/setup.sh), else
# the repository's .venv, else ../venv, else python3.  It needs pytest,
# hypothesis and cryptography.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYQUIC_PYTHON:-${PY:-}}"
for candidate in "$REPO/.venv/bin/python" "$REPO/../venv/bin/python"; do
    [ -n "$PYTHON" ] || { [ -x "$candidate" ] && PYTHON="$candidate"; } || true
done
PYTHON="${PYTHON:-$(command -v python3)}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/pyquic-asan.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

ASAN_WHO=asan.sh
source "$REPO/scripts/asan_build.sh"
export PYQUIC_EXPECT_CRYPTO_FROM="$ASAN_LIB" # checked by test_crypto_vectors.py
export PYQUIC_VECTORS="${PYQUIC_VECTORS:-$REPO/../shared/vectors}"

cd "$TMP" # keep the repository root (and its in-place .so) off sys.path
"$PYTHON" - <<'EOF'
import os, pyquic._crypto as c
print("asan.sh: testing", c.__file__, c.OPENSSL_VERSION)
assert c.__file__.startswith(os.environ["PYQUIC_EXPECT_CRYPTO_FROM"]), c.__file__
EOF
# --import-mode=importlib: pytest must not put the repository root on sys.path
# (tests/ is a package, which the default "prepend" mode would do).
# --capture=sys: leave file descriptor 2 alone, or an ASan report (written to fd
# 2 just before the process halts) would vanish into pytest's capture file.
"$PYTHON" -m pytest -q -p no:cacheprovider --import-mode=importlib --capture=sys --rootdir "$REPO" \
    "$REPO/tests/test_crypto_vectors.py" "$REPO/tests/test_crypto_properties.py" \
    "$REPO/tests/test_quic_frames_c.py" "$REPO/tests/test_crypto_stream_run.py" "$@"
echo "asan.sh: OK"
