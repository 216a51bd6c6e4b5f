# bench/bench_packet_protection.py: what one 1200-byte QUIC packet costs to
# protect (AEAD seal + header protection) and to unprotect, in ns per packet.
#
# It owns this measurement only.  Compared: pyquic's C extension (single calls
# and protect_batch / unprotect_batch of 32 and 64), its pure-Python twin,
# aioquic 1.7.2's CryptoContext, qh3's AEAD (qh3 2.x keeps header protection
# inside its Rust connection and exposes only the AEAD, so its row has no
# header protection), and `openssl speed -aead` for the same 1200 bytes as the
# floor: raw AEAD in C with no Python call around it.
#
#   python bench/bench_packet_protection.py             # about 45 s
#   python bench/bench_packet_protection.py --quick     # about 5 s
#   python bench/bench_packet_protection.py --suite chacha20
#
# run(quick) returns the rows as dicts for a demo script to print.
from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Callable, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PACKET_SIZE = 1200
DCID = bytes(range(8))
PN = 0x12345678  # 4-byte packet number, so the header is 1 + 8 + 4 = 13 bytes
HEADER = bytes([0x43]) + DCID + (PN & 0xFFFFFFFF).to_bytes(4, "big")  # short header, pn_len 4
PN_OFFSET = 1 + len(DCID)
PAYLOAD = bytes((i * 7) & 0xFF for i in range(PACKET_SIZE - len(HEADER) - 16))
BATCHES = (32, 64)

# name -> (TLS code point, key length, openssl speed name, secret length for aioquic)
SUITES = {
    "aes128": (0x1301, 16, "aes-128-gcm", 32),
    "aes256": (0x1302, 32, "aes-256-gcm", 48),
    "chacha20": (0x1303, 32, "chacha20-poly1305", 32),
}
SUITE_NAMES = {0x1301: "AES-128-GCM", 0x1302: "AES-256-GCM", 0x1303: "ChaCha20-Poly1305"}


def calibrate(fn: Callable[[], object], sample_ns: float) -> int:
    """Calls per timed sample so that one sample lasts about sample_ns."""
    fn()  # warm up
    calls, t0 = 0, time.perf_counter_ns()
    while time.perf_counter_ns() - t0 < 10_000_000:
        fn()
        calls += 1
    return max(1, int(sample_ns * calls / (time.perf_counter_ns() - t0)))


def sample(fn: Callable[[], object], iters: int, packets_per_call: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(iters):
        fn()
    return (time.perf_counter_ns() - start) / iters / packets_per_call


def measure_all(cases: list, budget_s: float, rounds: int, per_round: int = 5) -> list[tuple[float, float]]:
    """(best-of-rounds median, overall min) ns per packet for each case.

    The machine may be shared, so the cases take turns: each round times every
    case `per_round` times; a case's figure is its best round median.  Load that
    comes and goes then hits all implementations alike."""
    sample_ns = budget_s * 1e9 / (rounds * per_round)
    iters = [calibrate(fn, sample_ns) for _, _, _, fn in cases]
    medians: list[list[float]] = [[] for _ in cases]
    lows = [float("inf")] * len(cases)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for i, (_, _, per_call, fn) in enumerate(cases):
                samples = [sample(fn, iters[i], per_call) for _ in range(per_round)]
                medians[i].append(statistics.median(samples))
                lows[i] = min(lows[i], *samples)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [(min(m), low) for m, low in zip(medians, lows)]


def openssl_floor(speed_name: str, runs: int = 1) -> Optional[float]:
    """ns per 1200-byte AEAD operation from `openssl speed -aead`, best of `runs`
    (None if unavailable).  -elapsed makes it wall-clock time like ours: by default
    speed counts CPU time, which on a shared machine flatters it.  For AES-GCM its
    loop also re-keys every operation (at 16 bytes it still costs ~300 ns), so a
    batching caller can come in under this "floor"."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    cmd = [exe, "speed", "-elapsed", "-aead", "-evp", speed_name, "-bytes", str(PACKET_SIZE), "-seconds", "1"]
    best = None
    for _ in range(runs):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return best
        # The last line is "<ALGORITHM>  <n>k": thousands of bytes per second for the one block size.
        m = re.search(r"^\S+\s+([\d.]+)k\s*$", out, re.M)
        if m:
            ns = PACKET_SIZE / (float(m.group(1)) * 1000) * 1e9
            best = ns if best is None else min(best, ns)
    return best


def cases(suite_name: str) -> list[tuple[str, str, int, Callable[[], object]]]:
    """(implementation, operation, packets per call, function) for everything importable."""
    suite, key_len, _, secret_len = SUITES[suite_name]
    key, iv, hp = bytes(range(key_len)), bytes(range(12)), bytes(range(32, 32 + key_len))
    out = []
    from pyquic import _crypto, _crypto_py

    for label, mod in (("pyquic C", _crypto), ("pyquic Python twin", _crypto_py)):
        pp = mod.PacketProtection(suite, key, iv, hp)
        packet = pp.protect(HEADER, PAYLOAD, PN)
        assert pp.unprotect(packet, PN_OFFSET, PN - 1) == (HEADER, PAYLOAD, PN)
        out.append((label, "protect", 1, lambda pp=pp: pp.protect(HEADER, PAYLOAD, PN)))
        out.append((label, "unprotect", 1, lambda pp=pp, p=packet: pp.unprotect(p, PN_OFFSET, PN - 1)))
        for n in BATCHES:
            batch = [(HEADER, PAYLOAD, PN)] * n
            blob = pp.protect_batch(batch)
            segments = [(i * PACKET_SIZE, PACKET_SIZE, PN_OFFSET) for i in range(n)]
            assert all(r is not None for r in pp.unprotect_batch(blob, segments, PN - 1))
            out.append((label, f"protect_batch/{n}", n, lambda pp=pp, b=batch: pp.protect_batch(b)))
            out.append(
                (label, f"unprotect_batch/{n}", n, lambda pp=pp, b=blob, s=segments: pp.unprotect_batch(b, s, PN - 1))
            )

    try:
        from aioquic.quic.crypto import CryptoContext
        from aioquic.quic.packet import QuicProtocolVersion
        from aioquic.tls import CipherSuite

        ctx = CryptoContext()
        ctx.setup(cipher_suite=CipherSuite(suite), secret=bytes(secret_len), version=QuicProtocolVersion.VERSION_1)
        packet = ctx.encrypt_packet(HEADER, PAYLOAD, PN)
        assert ctx.decrypt_packet(packet, PN_OFFSET, PN)[1] == PAYLOAD
        out.append(("aioquic 1.7.2", "protect", 1, lambda: ctx.encrypt_packet(HEADER, PAYLOAD, PN)))
        out.append(("aioquic 1.7.2", "unprotect", 1, lambda: ctx.decrypt_packet(packet, PN_OFFSET, PN)))
    except ImportError:
        pass

    try:
        from qh3 import _hazmat

        cls = {0x1301: "AeadAes128Gcm", 0x1302: "AeadAes256Gcm", 0x1303: "AeadChaCha20Poly1305"}[suite]
        aead = getattr(_hazmat, cls)(key, iv)
        sealed = aead.encrypt(PN, PAYLOAD, HEADER)
        assert aead.decrypt(PN, sealed, HEADER) == PAYLOAD
        out.append(("qh3 AEAD only, no HP", "protect", 1, lambda: aead.encrypt(PN, PAYLOAD, HEADER)))
        out.append(("qh3 AEAD only, no HP", "unprotect", 1, lambda: aead.decrypt(PN, sealed, HEADER)))
    except (ImportError, AttributeError):
        pass
    return out


def run(quick: bool = False, suite_name: str = "aes128") -> list[dict]:
    """Measure everything; one dict per (implementation, operation)."""
    budget, rounds = (0.2, 3) if quick else (2.0, 5)
    floor = openssl_floor(SUITES[suite_name][2], runs=1 if quick else 3)
    rows = []
    todo = cases(suite_name)
    for (impl, op, per_call, fn), (median, best) in zip(todo, measure_all(todo, budget, rounds)):
        rows.append(
            {
                "suite": SUITE_NAMES[SUITES[suite_name][0]],
                "implementation": impl,
                "operation": op,
                "ns_per_packet": median,
                "min_ns_per_packet": best,
            }
        )
    baseline = {r["operation"]: r["ns_per_packet"] for r in rows if r["implementation"].startswith("aioquic")}
    for r in rows:
        single = r["operation"].split("_batch")[0]  # batches compare with aioquic's single calls
        r["x_openssl_floor"] = r["ns_per_packet"] / floor if floor else None
        r["speedup_vs_aioquic"] = baseline[single] / r["ns_per_packet"] if single in baseline else None
    rows.append(
        {
            "suite": SUITE_NAMES[SUITES[suite_name][0]],
            "implementation": "openssl speed (floor)",
            "operation": "seal",
            "ns_per_packet": floor,
            "min_ns_per_packet": floor,
            "x_openssl_floor": 1.0 if floor else None,
            "speedup_vs_aioquic": baseline["protect"] / floor if floor and "protect" in baseline else None,
        }
    )
    return rows


def format_table(rows: list[dict]) -> str:
    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    lines = [
        f"{PACKET_SIZE}-byte packets ({len(HEADER)}-byte short header, {len(PAYLOAD)}-byte payload, 16-byte tag), "
        f"{rows[0]['suite']}; best-of-rounds median",
        f"{'implementation':<28} {'operation':<19} {'ns/packet':>10} {'x floor':>8} {'vs aioquic':>11}",
    ]
    for r in rows:
        lines.append(
            f"{r['implementation']:<28} {r['operation']:<19} {num(r['ns_per_packet'], '10.0f')} "
            f"{num(r['x_openssl_floor'], '8.2f')} {num(r['speedup_vs_aioquic'], '10.2f')}x"
        )
    lines.append(
        "x floor: ns/packet over `openssl speed -elapsed -aead` for one 1200-byte seal (lower is better;\n"
        "  for AES-GCM that loop re-keys every time, so batches can dip below 1.00); vs aioquic: aioquic's\n"
        "  single-call ns over ours (higher is better).  qh3 exposes no header protection: AEAD only."
    )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run (about 5 s)")
    parser.add_argument("--suite", choices=sorted(SUITES), default="aes128")
    args = parser.parse_args(argv)
    from pyquic import _crypto

    print(f"Python {platform.python_version()}, {_crypto.OPENSSL_VERSION}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(format_table(run(args.quick, args.suite)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
