#!/usr/bin/env bash
# scripts/asan_build.sh: the AddressSanitizer build both ASan runners share
# (scripts/asan.sh for the packet-protection tests, fuzz/asan.sh for the C
# fuzz target).  Source it with REPO, PYTHON, TMP and ASAN_WHO (a name for
# messages) set: it copies the Python packages into $TMP/lib, builds
# pyquic._crypto and pyquic._frames there with PYQUIC_ASAN=1 (the normal build is never
# touched), and exports the environment the run needs: gcc's libasan
# preloaded, and PYTHONMALLOC=malloc so that every Python allocation (bytes
# objects included) goes through malloc and ASan sees the bounds of the
# buffers the extension touches.  Sets ASAN_LIB to $TMP/lib.
LIBASAN="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$LIBASAN" ]; then
    echo "$ASAN_WHO: libasan.so not found (gcc -print-file-name=libasan.so gave '$LIBASAN')" >&2
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

echo "$ASAN_WHO: building pyquic._crypto and pyquic._frames with -fsanitize=address into $TMP/lib"
(cd "$REPO" && PYQUIC_ASAN=1 "$PYTHON" setup.py -q build_ext --force \
    --build-lib "$TMP/lib" --build-temp "$TMP/build") >"$TMP/build.log" 2>&1 || {
    cat "$TMP/build.log" >&2
    echo "$ASAN_WHO: build failed" >&2
    exit 1
}

ASAN_LIB="$TMP/lib"
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export PYTHONMALLOC=malloc
export PYTHONPATH="$ASAN_LIB"
export PYTHONDONTWRITEBYTECODE=1
