# `python -m tls client HOST PORT ...` and `python -m tls server ...`: the
# debugging tools of tls/tools/ under one entry point.
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("client", "server"):
        print("usage: python -m tls {client HOST PORT | server} [options]  (--help for each)", file=sys.stderr)
        return 2
    if argv[0] == "client":
        from .tools.client import main as run
    else:
        from .tools.server import main as run
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
