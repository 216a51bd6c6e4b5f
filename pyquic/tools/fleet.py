# `python -m pyquic.tools.fleet new`: fresh secrets for a fleet of servers and
# its QUIC-LB balancer (pyquic/fleet.py says what they are), as JSON on
# stdout or in a file only its owner can read.
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

from ..errors import UsageError
from ..fleet import FleetSecrets


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyquic.tools.fleet",
                                description="Secrets shared by the servers of a fleet (and its QUIC-LB balancer).")
    sub = p.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="write fresh secrets as JSON (to stdout, or -o FILE, mode 0600)")
    new.add_argument("-o", "--output", metavar="FILE")
    new.add_argument("--config-id", type=int, default=0, help="QUIC-LB config rotation codepoint (0..6)")
    new.add_argument("--server-id-length", type=int, default=2)
    new.add_argument("--nonce-length", type=int, default=6)
    new.add_argument("--workers", action="store_true",
                     help="leave the first octet's five low bits free (no length there): pyquic.server --workers "
                          "puts the worker index in them")
    args = p.parse_args(argv)
    try:
        secrets = FleetSecrets.generate(time.time(), os.urandom, config_id=args.config_id,
                                        server_id_length=args.server_id_length, nonce_length=args.nonce_length,
                                        encode_length=not args.workers)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        secrets.save(args.output)
    else:
        print(secrets.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
