# The example RPC-with-TLS client: probes with AUTH_TLS, starts TLS 1.3 on
# the same connection under the chosen policy (none / auto / required, like
# the Linux NFS client's xprtsec=), then calls NULL, ECHO and WHOAMI.
#
#   python examples/rpc_tls/client.py 127.0.0.1 PORT --pki /tmp/rpc_pki --message hi
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from program import ECHO, PROGRAM, VERSION, WHOAMI, decode_string, encode_string  # noqa: E402

from tls.config import Config  # noqa: E402
from tls.errors import TLSError  # noqa: E402
from tls.rpc_tls import RpcError  # noqa: E402
from tls.tools.rpc import RpcClient  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="RPC-with-TLS example client")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--policy", choices=["none", "auto", "required"], default="required")
    p.add_argument("--pki", help="directory written by demo_pki.py (ca.pem, client.pem, client.key)")
    p.add_argument("--cafile")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--no-cert", action="store_true", help="do not present the client certificate")
    p.add_argument("--message", default="hello over RPC-with-TLS")
    args = p.parse_args(argv)
    if args.pki:
        pki = Path(args.pki)
        args.cafile = args.cafile or pki / "ca.pem"
        if not args.no_cert:
            args.cert, args.key = args.cert or pki / "client.pem", args.key or pki / "client.key"
    config = None
    if args.policy != "none":
        kw = {"certificate_chain": str(args.cert), "private_key": str(args.key)} if args.cert else {}
        config = Config(server_name="localhost" if args.host in ("127.0.0.1", "localhost") else args.host,
                        cafile=str(args.cafile) if args.cafile else None, **kw)
    try:
        with RpcClient((args.host, args.port), PROGRAM, VERSION, policy=args.policy, config=config) as client:
            print(f"transport: {'TLS 1.3, ALPN ' + client.tls.selected_alpn_protocol() if client.tls else 'plain TCP'}")
            client.null()
            print("NULL: ok")
            print(f"ECHO: {decode_string(client.call(ECHO, encode_string(args.message)))}")
            print(f"WHOAMI: {decode_string(client.call(WHOAMI))}")
    except (RpcError, TLSError, OSError) as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
