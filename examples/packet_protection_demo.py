"""The README's main job, for now: QUIC packet protection end to end.

For QUIC v1 (RFC 9001) and v2 (RFC 9369) it derives the Initial keys from the
sample Destination Connection ID, protects the Appendix A client Initial,
server Initial and ChaCha20 short-header packets with both implementations
(the C extension and the pure-Python twin), compares them byte for byte with
the RFC, opens them again, checks the Retry integrity tag, and then prints the
packet-protection benchmark (our C path, our Python twin, aioquic, and
`openssl speed` as the floor), measured now on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyquic import _crypto, _crypto_py, crypto  # noqa: E402
from pyquic.versions import QUIC_V1, QUIC_V2  # noqa: E402

VECTORS = Path(os.environ.get("PYQUIC_VECTORS") or ROOT.parent / "shared" / "vectors")


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def check_version(version: int, vectors: dict, backend) -> list[str]:
    crypto.backend = backend  # the module-level choice, switched for the demo
    dcid = h(vectors["client_destination_connection_id"])
    lines = []
    c_send, s_recv = crypto.initial_keys(version, dcid, is_client=True)
    s_send, c_recv = crypto.initial_keys(version, dcid, is_client=False)
    for name, send, recv in (("client_initial", c_send, c_recv), ("server_initial", s_send, s_recv)):
        v = vectors[name]
        header = h(v["unprotected_header"])
        payload = h(v.get("payload_frames") or v["payload"])
        if "payload_length" in v:
            payload = payload.ljust(v["payload_length"], b"\x00")
        packet = send.protection.protect(header, payload, v["packet_number"])
        same = packet == h(v["protected_packet"])
        pn_offset = len(header) - v["packet_number_length"]
        opened = recv.protection.unprotect(packet, pn_offset, -1)
        ok = same and opened == (header, payload, v["packet_number"])
        lines.append(f"  {name:<16} {len(packet):5d} bytes  {'matches RFC, opens' if ok else 'MISMATCH'}")
    v = vectors["chacha20_poly1305_short_header"]
    keys = crypto.derive_packet_keys(version, 0x1303, h(v["secret"]))
    packet = keys.protection.protect(h(v["unprotected_header"]), h(v["payload_plaintext"]), v["packet_number"])
    opened = keys.protection.unprotect(packet, 1, v["packet_number"] - 1)
    ok = packet == h(v["protected_packet"]) and opened[2] == v["packet_number"]
    ok = ok and keys.next_phase().secret == h(v["ku"])
    lines.append(f"  {'chacha20 1-RTT':<16} {len(packet):5d} bytes  {'matches RFC, opens, ku ok' if ok else 'MISMATCH'}")
    r = vectors["retry"]
    ok = crypto.verify_retry_integrity(version, h(r["original_destination_connection_id"]), h(r["packet"]))
    lines.append(f"  {'retry tag':<16} {len(h(r['packet'])):5d} bytes  {'verifies' if ok else 'MISMATCH'}")
    return lines


def check_all() -> bool:
    """Print the known-answer checks; True if any failed."""
    failed = False
    if not VECTORS.exists():
        print(f"RFC sample packets not checked: no vectors at {VECTORS}; set PYQUIC_VECTORS")
        return True
    for version, name in ((QUIC_V1, "rfc9001_appendix_a.json"), (QUIC_V2, "rfc9369_appendix_a.json")):
        vectors = json.loads((VECTORS / name).read_text())
        for backend in (_crypto, _crypto_py):
            print(f"QUIC {crypto.version_info(version).name}, {backend.IMPLEMENTATION} implementation:")
            lines = check_version(version, vectors, backend)
            failed |= any("MISMATCH" in line for line in lines)
            print("\n".join(lines))
    crypto.backend = _crypto
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short benchmark run")
    args = parser.parse_args()
    failed = check_all()
    print()
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_packet_protection

    bench_packet_protection.main(["--quick"] if args.quick else [])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
