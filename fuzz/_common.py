# Shared set-up for the atheris fuzz targets in this folder (fuzz/fuzz_*.py).
# Owns only: making the repository importable when a target is run as
# `python fuzz/fuzz_<name>.py`, and the one rule every target applies --
# a parser's documented errors are fine, anything else escapes and crashes.
#
# The repository root goes at the END of sys.path: an installed (or, for the
# ASan run, a PYTHONPATH) copy of pyquic wins, so fuzz/asan.sh can point the
# crypto target at an AddressSanitizer build of pyquic._crypto.
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

# Modules whose bytecode atheris instruments for coverage.  Everything else
# (cryptography, the standard library) is imported before instrumentation.
INSTRUMENT = ["pyquic", "tls"]


def preimport() -> None:
    """Import the heavy third-party dependencies uninstrumented, so that
    atheris.instrument_imports() instruments only our own modules."""
    import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
    import cryptography.hazmat.primitives.hashes  # noqa: F401
    import cryptography.x509  # noqa: F401
    import ipaddress  # noqa: F401


def vectors_dir() -> Path:
    """The shared known-answer vectors (as tests/vectors.py finds them)."""
    return Path(os.environ.get("PYQUIC_VECTORS") or REPO.parent / "shared" / "vectors")
