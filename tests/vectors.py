# Where the shared known-answer vectors live, and a loader. Tests import this
# rather than hard-coding the path: ../shared/vectors beside the checkout, or
# $PYQUIC_VECTORS.
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

VECTORS = Path(os.environ.get("PYQUIC_VECTORS") or Path(__file__).resolve().parents[2] / "shared" / "vectors")


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    path = VECTORS / name
    if not path.exists():
        raise FileNotFoundError(f"test vectors not found at {path}; set PYQUIC_VECTORS")
    return json.loads(path.read_text())


def h(value: str) -> bytes:
    return bytes.fromhex(value)
