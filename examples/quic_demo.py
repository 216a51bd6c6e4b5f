"""The README's main job: pyquic against real QUIC peers, measured now.

1. Packet protection: the RFC 9001 (v1) and RFC 9369 (v2) Appendix A sample
   packets protected and opened byte for byte by the C extension and by its
   pure-Python twin.
2. Interop over loopback UDP: every pairing of pyquic with aioquic and qh3,
   in both roles, each side in its own process: the client downloads and then
   uploads SIZE bytes on one connection (ALPN "pyquic-test"), and both ends
   check the SHA-256 of what they received.  Printed: MB/s per direction.
3. The packet-protection benchmark against aioquic and `openssl speed`.

Exit status 0 only if every check and every transfer succeeded.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "bench"))

from tests.quic_peers import pki_files, run_client, start_server  # noqa: E402

PAIRS = [  # (client, server): each pairing with pyquic on at least one side
    ("pyquic", "pyquic"),
    ("pyquic", "aioquic"),
    ("pyquic", "qh3"),
    ("aioquic", "pyquic"),
    ("qh3", "pyquic"),
]


def interop(size: int) -> bool:
    ok_all = True
    print(f"Interop over loopback: download then upload {size / 1e6:.0f} MB on one connection, SHA-256 checked")
    print(f"  {'client':<8} -> {'server':<8} {'download MB/s':>14} {'upload MB/s':>12}  result")
    with tempfile.TemporaryDirectory() as tmp:
        files = pki_files(Path(tmp))
        for client, server_impl in PAIRS:
            server = start_server(server_impl, files)
            try:
                ops = [{"op": "source", "size": size}, {"op": "sink", "size": size}]
                results = run_client(client, server.port, files, ops, timeout=120.0)
                ok = len(results) == 2 and all(r.get("ok") for r in results)
                rates = [r["bytes"] / r["seconds"] / 1e6 if r.get("ok") else 0.0 for r in results]
                rates += [0.0] * (2 - len(rates))
                detail = "ok" if ok else f"FAILED {[r for r in results if not r.get('ok')]}"
            except AssertionError as exc:  # a peer that failed to start or finish
                ok, rates, detail = False, [0.0, 0.0], f"FAILED {str(exc).splitlines()[0]}"
            finally:
                server.stop()
            ok_all &= ok
            print(f"  {client:<8} -> {server_impl:<8} {rates[0]:14.1f} {rates[1]:12.1f}  {detail}")
    return ok_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20.0, help="bytes each way per pairing, in MB")
    parser.add_argument("--quick", action="store_true", help="a short benchmark run")
    args = parser.parse_args()

    import packet_protection_demo

    failed = packet_protection_demo.check_all()
    print()
    failed |= not interop(int(args.size_mb * 1e6))
    print()
    import bench_packet_protection

    bench_packet_protection.main(["--quick"] if args.quick else [])
    print("\nall checks passed" if not failed else "\nSOME CHECKS FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
