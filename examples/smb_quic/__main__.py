# `python -m examples.smb_quic`: the whole SMB over QUIC example in one
# command.  Starts a private Samba (samba.py: its own smb.conf, a share, a
# user; nothing system-wide touched), the gateway in front of it on a UDP
# port, and the client bridge on a TCP port; then Debian's smbclient lists
# the share and puts and gets a file through bridge -> QUIC -> gateway ->
# smbd, smbprotocol does the same natively over a QUIC stream, and the same
# file is fetched by smbclient straight over TCP for comparison.  Every file
# is checked by SHA-256; the rates are printed.
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from .bridge import SmbQuicBridge, client_configuration
from .gateway import SmbGateway
from .samba import PrivateSamba


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from pyquic.tools.server import self_signed_files

    return self_signed_files(directory)


async def _smbclient(samba: PrivateSamba, port: int, *commands: str) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*samba.smbclient_cmd(*commands, port=port),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), time.monotonic() - started


def _native(samba: PrivateSamba, port: int, cert: Path, name: str) -> tuple[bytes, float]:
    import smbclient

    from .client import register_session

    cache: dict = {}
    register_session(samba.host, samba.user, samba.password, port=port, address=("127.0.0.1", port),
                     configuration=client_configuration("localhost", cafile=str(cert)), connection_cache=cache)
    try:
        started = time.monotonic()
        with smbclient.open_file(rf"\\{samba.host}\{samba.share}\{name}", mode="rb", port=port,
                                 connection_cache=cache) as f:
            data = f.read()
        return data, time.monotonic() - started
    finally:
        smbclient.reset_connection_cache(connection_cache=cache)


async def demo(size_mb: int) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="smb-quic-demo-") as tmp, PrivateSamba() as samba:
        work = Path(tmp)
        cert, key = _self_signed(work)
        payload = os.urandom(size_mb * 1000 * 1000)
        source = work / "payload.bin"
        source.write_bytes(payload)
        want = hashlib.sha256(payload).hexdigest()
        gateway = SmbGateway((samba.host, samba.port), certfile=cert, keyfile=key, quiet=True)
        await gateway.start("127.0.0.1", 0)
        quic_port = gateway.local_address[1]
        bridge = SmbQuicBridge(("127.0.0.1", quic_port), client_configuration("localhost", cafile=str(cert)),
                               quiet=True)
        await bridge.start("127.0.0.1", 0)
        print(f"Samba {samba.unc} on tcp {samba.port}; gateway udp {quic_port}; bridge tcp {bridge.port}")

        def report(what: str, path_or_data, seconds: float) -> None:
            nonlocal failures
            data = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
            ok = hashlib.sha256(data).hexdigest() == want
            failures += not ok
            print(f"  {what:<44} {len(data) / seconds / 1e6:8.1f} MB/s  {'sha256 ok' if ok else 'MISMATCH'}")

        try:
            rc, out, _ = await _smbclient(samba, bridge.port, "ls")
            print("smbclient ls over QUIC:", "ok" if rc == 0 else f"FAILED\n{out}")
            failures += rc != 0
            rc, out, seconds = await _smbclient(samba, bridge.port, f"put {source} demo.bin")
            failures += rc != 0
            print(f"  {'smbclient put over QUIC (bridge, gateway)':<44} {len(payload) / seconds / 1e6:8.1f} MB/s"
                  f"  {'ok' if rc == 0 else 'FAILED'}")
            for label, port in (("smbclient get over QUIC (bridge, gateway)", bridge.port),
                                ("smbclient get straight over TCP", samba.port)):
                back = work / f"back-{port}.bin"
                rc, out, seconds = await _smbclient(samba, port, f"get demo.bin {back}")
                failures += rc != 0
                if rc == 0:
                    report(label, back, seconds)
                else:
                    print(f"  {label}: FAILED\n{out}")
            data, seconds = await asyncio.to_thread(_native, samba, quic_port, cert, "demo.bin")
            report("smbprotocol get natively over QUIC", data, seconds)
            for line in gateway.stats.log:
                print(" ", line)
        finally:
            await bridge.close()
            await gateway.close()
    print("SMB over QUIC demo:", "all checks passed" if not failures else f"{failures} FAILED")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.smb_quic", description=__doc__)
    parser.add_argument("--size", type=int, default=20, help="file size in MB (default 20)")
    args = parser.parse_args(argv)
    return asyncio.run(demo(args.size))


if __name__ == "__main__":
    sys.exit(main())
