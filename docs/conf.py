# Sphinx configuration of the pyquic documentation: the user guide
# (docs/guide/), the API reference generated from the docstrings
# (docs/api/, autodoc) and the design page docs/ARCHITECTURE.md (Markdown,
# through myst-parser).  Built with warnings as errors by tests/test_docs.py:
#   python -m sphinx -W --keep-going -b html docs docs/_build/html
# Nothing here reaches the network (no intersphinx).
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's packages, installed or not

import pyquic  # noqa: E402

project = "pyquic"
author = "the pyquic authors"
copyright = "the pyquic authors"
release = version = pyquic.__version__

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# docs/examples/ holds the guide's scripts (literalinclude'd, run by the tests).
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
nitpicky = False

# -- autodoc: the public API, as each module's __all__ names it ---------------------
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
# Classes document their __init__ parameters in the class signature.
autoclass_content = "both"

# -- myst: ARCHITECTURE.md --------------------------------------------------------
myst_heading_anchors = 3

# -- HTML --------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"pyquic {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "QUIC and TLS 1.3 in Python",
    "fixed_sidebar": True,
}
