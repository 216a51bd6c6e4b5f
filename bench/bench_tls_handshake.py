# Full TLS 1.3 handshakes in memory, ours against aioquic's tls.Context in the
# same run: client + server at message level, QUIC profile (transport
# parameters extension), ECDSA P-256 server certificate (root -> intermediate
# -> leaf, verified by the client), x25519, no tickets, no client auth.
#
#   python bench/bench_tls_handshake.py [--quick]
#
# Reports handshakes per second (both sides' work, wall clock) and the
# server's CPU per handshake (time.process_time around the server's calls
# only), with our/aioquic ratios.  run(quick) returns the rows as dicts.
# "pyquic tls" is the default engine, whose client remembers successful
# chain verifications per Config (tls/handshake.py VERIFY_CACHE_SIZE);
# "pyquic nocache" turns that off, so each handshake verifies the chain
# from scratch as aioquic does.
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from cryptography.hazmat.primitives import serialization  # noqa: E402

import tls  # noqa: E402
from tls import events as ev  # noqa: E402
from tests.pki import make_test_pki  # noqa: E402

ALPN = ["h3"]


def _our_setup(pki):
    server_cfg = tls.Config(
        certificate_chain=pki.server.chain, private_key=pki.server.key, alpn_protocols=ALPN,
        groups=[tls.Group.X25519], session_tickets=0,
    )
    client_cfg = tls.Config(
        server_name="localhost", trust_store=pki.trust_store(), alpn_protocols=ALPN,
        groups=[tls.Group.X25519], key_share_groups=[tls.Group.X25519],
    )
    return client_cfg, server_cfg


def our_handshake(client_cfg, server_cfg, server_cpu: list[float]) -> None:
    now = time.time()
    client = tls.Engine(client_cfg, True, tls.QUIC, b"client-tp", now=now)
    t0 = time.process_time()
    server = tls.Engine(server_cfg, False, tls.QUIC, b"server-tp", now=now)
    server_cpu[0] += time.process_time() - t0
    to_server = [e for e in client.start() if isinstance(e, ev.HandshakeDataReady)]
    done = False
    while to_server:
        to_client = []
        for e in to_server:
            t0 = time.process_time()
            out = server.receive(e.level, e.data)
            server_cpu[0] += time.process_time() - t0
            to_client += [x for x in out if isinstance(x, ev.HandshakeDataReady)]
        to_server = []
        for e in to_client:
            out = client.receive(e.level, e.data)
            to_server += [x for x in out if isinstance(x, ev.HandshakeDataReady)]
        done = server.handshake_complete and client.handshake_complete
    assert done, "handshake did not complete"


def _aio_setup(pki):
    from aioquic import tls as aio

    cadata = pki.ca.public_bytes(serialization.Encoding.PEM)
    return aio, cadata


def aio_handshake(aio, pki, cadata, server_cpu: list[float]) -> None:
    from aioquic.buffer import Buffer

    epochs = [aio.Epoch.INITIAL, aio.Epoch.HANDSHAKE, aio.Epoch.ONE_RTT]
    client = aio.Context(is_client=True, alpn_protocols=ALPN, server_name="localhost", cadata=cadata)
    client.handshake_extensions = [(0x39, b"client-tp")]
    client._supported_groups = [aio.Group.X25519]
    t0 = time.process_time()
    server = aio.Context(is_client=False, alpn_protocols=ALPN)
    server.certificate = pki.server.cert
    server.certificate_chain = pki.server.chain[1:]
    server.certificate_private_key = pki.server.key
    server.handshake_extensions = [(0x39, b"server-tp")]
    server_cpu[0] += time.process_time() - t0
    cbufs = {e: Buffer(capacity=16384) for e in epochs}
    sbufs = {e: Buffer(capacity=16384) for e in epochs}

    def drain(bufs):
        out = []
        for e in epochs:
            b = bufs[e]
            if b.tell():
                out.append(b.data)
                b.seek(0)
        return out

    client.handle_message(b"", cbufs)
    to_server = drain(cbufs)
    while to_server:
        to_client = []
        for data in to_server:
            t0 = time.process_time()
            server.handle_message(data, sbufs)
            server_cpu[0] += time.process_time() - t0
            to_client += drain(sbufs)
        to_server = []
        for data in to_client:
            client.handle_message(data, cbufs)
            to_server += drain(cbufs)
    assert client.state == aio.State.CLIENT_POST_HANDSHAKE and server.state == aio.State.SERVER_POST_HANDSHAKE


def _measure(fn, n: int) -> tuple[float, float]:
    cpu = [0.0]
    fn(cpu)  # warm-up (caches, imports)
    cpu = [0.0]
    t0 = time.perf_counter()
    for _ in range(n):
        fn(cpu)
    wall = time.perf_counter() - t0
    return n / wall, cpu[0] / n


def run(quick: bool = False) -> list[dict]:
    n = 60 if quick else 400
    pki = make_test_pki("p256")
    client_cfg, server_cfg = _our_setup(pki)
    rows = []
    ours_rate, ours_cpu = _measure(lambda cpu: our_handshake(client_cfg, server_cfg, cpu), n)
    rows.append({"impl": "pyquic tls", "handshakes": n, "handshakes_per_s": ours_rate, "server_cpu_ms": ours_cpu * 1e3})
    # the same with the client's chain-verification cache off (fresh Configs):
    # every handshake verifies the chain from scratch, as aioquic does
    import tls.handshake as hs

    saved, hs.VERIFY_CACHE_SIZE = hs.VERIFY_CACHE_SIZE, 0
    try:
        c2, s2 = _our_setup(pki)
        nc_rate, nc_cpu = _measure(lambda cpu: our_handshake(c2, s2, cpu), n)
    finally:
        hs.VERIFY_CACHE_SIZE = saved
    rows.append({"impl": "pyquic nocache", "handshakes": n, "handshakes_per_s": nc_rate, "server_cpu_ms": nc_cpu * 1e3})
    try:
        aio, cadata = _aio_setup(pki)
    except ImportError:
        return rows
    aio_rate, aio_cpu = _measure(lambda cpu: aio_handshake(aio, pki, cadata, cpu), n)
    rows.append({"impl": "aioquic tls", "handshakes": n, "handshakes_per_s": aio_rate, "server_cpu_ms": aio_cpu * 1e3})
    for row in rows[:-1]:
        row["rate_ratio_vs_aioquic"] = row["handshakes_per_s"] / aio_rate
        row["server_cpu_ratio_vs_aioquic"] = row["server_cpu_ms"] / (aio_cpu * 1e3)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer handshakes")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(f"{'implementation':<14} {'handshakes':>10} {'handshakes/s':>13} {'server CPU ms':>14} {'rate x':>7} {'CPU x':>7}")
    for r in rows:
        ratio = r.get("rate_ratio_vs_aioquic")
        cpu_ratio = r.get("server_cpu_ratio_vs_aioquic")
        print(
            f"{r['impl']:<14} {r['handshakes']:>10} {r['handshakes_per_s']:>13.1f} {r['server_cpu_ms']:>14.3f}"
            f" {'' if ratio is None else f'{ratio:.2f}':>7} {'' if cpu_ratio is None else f'{cpu_ratio:.2f}':>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
