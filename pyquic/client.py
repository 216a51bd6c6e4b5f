# `python -m pyquic.client URL...`: the HTTP/3 / hq-interop client command
# (the implementation is pyquic/tools/client.py).
import sys

from pyquic.tools.client import main

if __name__ == "__main__":
    sys.exit(main())
