# pyquic interop client for what `python -m pyquic.client` cannot do (used by
# run_endpoint.sh beside this file): one QUIC connection per URL, one after
# the other, in a single process (the multiconnect cases handshakeloss and
# handshakecorruption: a command per URL would pay Python's start-up per
# connection), with TLS SNI "server" when the URL's host is an IP literal
# (the runner's convention; the CLI sends the host itself, and so no SNI for
# an IP).  Built only on pyquic's public API: pyquic.asyncio.hq.connect_hq,
# pyquic.asyncio.h3.connect_h3, pyquic.config.QuicConfiguration.  Owns only
# this client.  Exit 0 only if every URL arrived complete (h3: status 200).
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import ssl
import sys
import time
from urllib.parse import urlsplit

from pyquic.asyncio.h3 import connect_h3
from pyquic.asyncio.hq import connect_hq
from pyquic.config import QuicConfiguration


def sni_for(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return "server"
    except ValueError:
        return host


def configuration(args, host: str, keylog) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=[args.alpn], server_name=sni_for(host),
                               verify_mode=ssl.CERT_NONE, idle_timeout=args.timeout,
                               handshake_timeout=args.timeout)
    config.secrets_log_file = keylog
    if args.qlog_dir:
        os.makedirs(args.qlog_dir, exist_ok=True)
        config.qlog_dir = args.qlog_dir
    return config


async def fetch_one(args, url: str, keylog) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 443
    dest = os.path.join(args.output, os.path.basename(parts.path) or "index.html")
    config = configuration(args, host, keylog)
    if args.alpn == "h3":
        async with connect_h3(host, port, configuration=config) as client:
            async with client.stream("GET", url) as response:
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}")
                with open(dest, "wb") as f:
                    async for chunk in response.iter_bytes():
                        f.write(chunk)
    else:
        async with connect_hq(host, port, configuration=config) as client:
            await client.download(parts.path or "/", dest)


async def run(args) -> bool:
    os.makedirs(args.output, exist_ok=True)
    keylog = open(args.keylog, "a") if args.keylog else None
    ok = True
    try:
        for url in args.urls:
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(fetch_one(args, url, keylog), args.timeout * 2)
                print(f"{url}: complete in {time.monotonic() - t0:.3f} s", flush=True)
            except Exception as exc:  # report, go on with the next URL, fail at the end
                print(f"{url}: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                ok = False
    finally:
        if keylog is not None:
            keylog.close()
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description="pyquic interop client: one connection per URL, in turn")
    ap.add_argument("--alpn", default="hq-interop", choices=["hq-interop", "h3"])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--keylog")
    ap.add_argument("--qlog-dir")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("urls", nargs="+")
    args = ap.parse_args()
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
