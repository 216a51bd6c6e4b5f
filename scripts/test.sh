#!/usr/bin/env bash
# The whole test suite, from scratch: set-up, the packet-protection and C frame-parser tests
# once more against an AddressSanitizer build of the C extensions, then every
# test with pytest.  Extra arguments go to the final pytest run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
bash scripts/asan.sh
exec "$PY" -m pytest -q "$@"
