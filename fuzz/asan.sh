#!/usr/bin/env bash
# fuzz/asan.sh: runs a fuzz target (normally fuzz_crypto.py; also fuzz_frames.py) against an
# AddressSanitizer build of pyquic._crypto and pyquic._frames.  Builds them the way
# scripts/asan.sh does (PYQUIC_ASAN=1, into a temporary directory next to a
# copy of the Python packages; the normal build is never touched), then runs
#
#   fuzz/asan.sh [fuzz/fuzz_crypto.py] [libFuzzer arguments...]
#   fuzz/asan.sh fuzz/fuzz_crypto.py /tmp/crypto-work fuzz/corpus/crypto -max_total_time=3600
#
# with gcc's libasan preloaded and PYTHONMALLOC=malloc (so ASan sees the
# bounds of every bytes object the extension reads or writes).
#
# Limitation: the C code is not coverage-instrumented (gcc has no
# libFuzzer-compatible coverage), and libasan's no-op coverage hooks shadow
# libFuzzer's, so under ASan the run is not coverage-guided: libFuzzer mutates
# the seeds blindly ("no interesting inputs" is expected).  The harness makes
# up for part of it by drawing offsets, lengths and packet numbers around
# their boundaries.  Without ASan (python fuzz/fuzz_crypto.py ...) the same
# target is coverage-guided on its Python side, and compares C with the
# pure-Python twin.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYQUIC_PYTHON:-${PY:-$REPO/.venv/bin/python}}"
TARGET="$REPO/fuzz/fuzz_crypto.py"
if [ $# -gt 0 ] && [[ "$1" == *.py ]]; then
    TARGET="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
    shift
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/pyquic-fuzz-asan.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# Relative paths in the arguments (corpus directories) stay relative to the caller.
ASAN_WHO=fuzz/asan.sh
source "$REPO/scripts/asan_build.sh"
export PYQUIC_FUZZ_EXPECT_CRYPTO_FROM="$ASAN_LIB"
# With no coverage signal, libFuzzer would keep inputs short and drop the
# seeds; let every input be long enough for a whole plan.
status=0
"$PYTHON" "$TARGET" -len_control=0 -max_len=1024 "$@" || status=$?
exit $status
