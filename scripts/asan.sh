#!/usr/bin/env bash
# scripts/asan.sh: runs the packet-protection tests against an AddressSanitizer
# build of pyquic._crypto.  Owns only this check; it never touches the normal
# build (./build, the in-place .so): the extension is built with PYQUIC_ASAN=1
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

LIBASAN="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$LIBASAN" ]; then
    echo "asan.sh: libasan.so not found (gcc -print-file-name=libasan.so gave '$LIBASAN')" >&2
    exit 1
fi

# The Python packages, without any compiled extension from the normal build.
mkdir -p "$TMP/lib"
for pkg in pyquic tls; do
    [ -d "$REPO/$pkg" ] || continue
    (cd "$REPO" && find "$pkg" -name '*.py' -o -name '*.pyi' | grep -v __pycache__) |
        while read -r f; do
            mkdir -p "$TMP/lib/$(dirname "$f")"
            cp "$REPO/$f" "$TMP/lib/$f"
        done
done

echo "asan.sh: building pyquic._crypto with -fsanitize=address into $TMP/lib"
(cd "$REPO" && PYQUIC_ASAN=1 "$PYTHON" setup.py -q build_ext --force \
    --build-lib "$TMP/lib" --build-temp "$TMP/build") >"$TMP/build.log" 2>&1 || {
    cat "$TMP/build.log" >&2
    echo "asan.sh: build failed" >&2
    exit 1
}

# PYTHONMALLOC=malloc sends every Python allocation (bytes objects included)
# through malloc, so ASan sees the bounds of the buffers the extension touches.
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export PYTHONMALLOC=malloc
export PYTHONPATH="$TMP/lib"
export PYTHONDONTWRITEBYTECODE=1
export PYQUIC_EXPECT_CRYPTO_FROM="$TMP/lib" # checked by test_crypto_vectors.py
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
    "$REPO/tests/test_crypto_vectors.py" "$REPO/tests/test_crypto_properties.py" "$@"
echo "asan.sh: OK"
