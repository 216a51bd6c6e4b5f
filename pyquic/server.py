# `python -m pyquic.server`: serve a directory over HTTP/3 and hq-interop
# (the implementation is pyquic/tools/server.py).
import sys

from pyquic.tools.server import main

if __name__ == "__main__":
    sys.exit(main())
