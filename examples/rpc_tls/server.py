# The example RPC-with-TLS server (RFC 9289): NULL, ECHO and WHOAMI on one
# TCP port.  It answers the AUTH_TLS probe, upgrades the connection to TLS
# 1.3 with ALPN "sunrpc", asks for a client certificate, and maps the
# certificate's identity to a local user (--user NAME=USER, as FreeBSD's
# rpctlssd maps certificates to uids).  Plain RPC is refused unless
# --allow-plain.
#
#   python examples/rpc_tls/demo_pki.py /tmp/rpc_pki
#   python examples/rpc_tls/server.py --pki /tmp/rpc_pki --user alice@example.org=alice
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from program import ECHO, PROGRAM, VERSION, WHOAMI, decode_string, encode_string  # noqa: E402

from tls.config import Config, VerifyMode  # noqa: E402
from tls.rpc_tls import IdentityMap  # noqa: E402
from tls.tools.rpc import CallContext, GarbageArgs, RpcServer  # noqa: E402


def echo(args: bytes, ctx: CallContext) -> bytes:
    try:
        return encode_string(decode_string(args))
    except Exception:
        raise GarbageArgs() from None


def whoami(args: bytes, ctx: CallContext) -> bytes:
    return encode_string(ctx.user or "nobody")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="RPC-with-TLS example server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--pki", help="directory written by demo_pki.py (ca.pem, server.pem, server.key)")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--cafile", help="CA for client certificates")
    p.add_argument("--user", action="append", default=[], help="IDENTITY=USER (IDENTITY: otherName user, "
                   "email, DNS name, CN or SHA-256 fingerprint)")
    p.add_argument("--allow-plain", action="store_true", help="serve clients that do not use TLS")
    p.add_argument("--seconds", type=float, default=0, help="exit after this long (0: run until ^C)")
    args = p.parse_args(argv)
    if args.pki:
        pki = Path(args.pki)
        args.cert, args.key, args.cafile = pki / "server.pem", pki / "server.key", pki / "ca.pem"
    if not (args.cert and args.key):
        p.error("give --pki or --cert and --key")
    config = Config(certificate_chain=str(args.cert), private_key=str(args.key),
                    verify_mode=VerifyMode.OPTIONAL if args.cafile else VerifyMode.NONE,
                    cafile=str(args.cafile) if args.cafile else None)
    users = IdentityMap(dict(item.split("=", 1) for item in args.user))
    server = RpcServer((args.host, args.port), {(PROGRAM, VERSION): {ECHO: echo, WHOAMI: whoami}},
                       config=config, require_tls=not args.allow_plain, identity_map=users)
    print(f"ACCEPT {server.address[0]}:{server.address[1]}", flush=True)
    server.start()
    try:
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
