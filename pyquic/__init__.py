# The pyquic package: a QUIC (v1, v2) transport, sans-I/O at its core, with
# an asyncio layer in pyquic.asyncio.  This file owns only the package's
# version (one source for both packages: tls/_version.py); import what you
# use from the modules (pyquic.connection, pyquic.asyncio, ...).
from __future__ import annotations

from tls._version import __version__

__all__ = ["__version__"]
