# SMB over QUIC end to end (examples/smb_quic) with a real Samba (Debian's
# smbd, started privately by examples/smb_quic/samba.py) and real SMB
# clients: smbclient through the TCP bridge and the gateway, and smbprotocol
# running natively over a pyquic stream.  Files byte for byte, directory
# operations, a wrong password refused by Samba, client access control by
# certificate (none, unlisted, blocked, allowed), smb and h3 on one port
# with two certificates, a QUIC connection lost mid-transfer (both ends end
# cleanly within the idle timeout and the gateway serves the next client),
# and a NAT rebinding mid-transfer that the SMB session survives.
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import smbclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from examples.smb_quic.access import ClientAccessControl, thumbprint
from examples.smb_quic.bridge import SmbQuicBridge, client_configuration
from examples.smb_quic.client import register_session
from examples.smb_quic.gateway import GatewayStats, SmbGateway
from examples.smb_quic.samba import PrivateSamba
from pyquic.asyncio import ConnectionTerminatedError, Service, connect
from pyquic.asyncio.h3 import connect_h3
from pyquic.tools.server import FileServer
from tests.pki import make_test_pki
from tests.quic_peers import pki_files
from tests.udp_relay import UdpRelay

TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parent.parent
BIG = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def samba():
    with PrivateSamba(files={"hello.txt": b"hello over quic\n"}) as server:
        yield server


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.bin"
    path.write_bytes(os.urandom(BIG))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def start_gateway(samba, files, **kw) -> SmbGateway:
    kw.setdefault("idle_timeout", 30.0)
    gateway = SmbGateway((samba.host, samba.port), certfile=files["server_chain"], keyfile=files["server_key"],
                         quiet=True, **kw)
    await gateway.start("127.0.0.1", 0)
    return gateway


async def relays_ended(gateway: SmbGateway, seconds: float = 10.0) -> GatewayStats:
    """The gateway's stats once every relay has ended: a relay adds its byte
    counts and writes its log line when its connection is over, which can be
    a moment after the client has returned."""
    deadline = time.monotonic() + seconds
    while gateway.stats.active and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert gateway.stats.active == 0, gateway.stats
    return gateway.stats


async def start_bridge(port: int, files, **kw) -> SmbQuicBridge:
    config = client_configuration("localhost", cafile=str(files["ca"]), **kw)
    bridge = SmbQuicBridge(("127.0.0.1", port), config, quiet=True)
    await bridge.start("127.0.0.1", 0)
    return bridge


async def ls_through_bridge(samba, port: int, files, **kw) -> None:
    """smbclient lists the share through a bridge to the gateway on ``port``."""
    bridge = await start_bridge(port, files, **kw)
    try:
        rc, out = await run_smbclient(samba, bridge.port, "ls")
        assert rc == 0 and "hello.txt" in out, out
    finally:
        await bridge.close()


async def run_smbclient(samba, port: int, *commands: str, password=None) -> tuple[int, str]:
    argv = samba.smbclient_cmd(*commands, port=port, password=password)
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return proc.returncode, out.decode(errors="replace")


def native_config(files, **kw):
    return client_configuration("localhost", cafile=str(files["ca"]), **kw)


def unc(samba, name: str = "") -> str:
    return rf"\\{samba.host}\{samba.share}" + (rf"\{name}" if name else "")


# -- smbclient through the bridge and the gateway --------------------------------------------------


async def test_smbclient_over_quic_lists_puts_gets_and_manages_directories(samba, files, big_file, tmp_path):
    gateway = await start_gateway(samba, files)
    bridge = await start_bridge(gateway.local_address[1], files)
    try:
        rc, out = await run_smbclient(samba, bridge.port, "ls")
        assert rc == 0, out
        assert "hello.txt" in out
        back = tmp_path / "back.bin"
        rc, out = await run_smbclient(
            samba, bridge.port, f"put {big_file} big-smbclient.bin", f"get big-smbclient.bin {back}",
            "mkdir quicdir", "rename big-smbclient.bin quicdir\\moved.bin", "ls quicdir\\*")
        assert rc == 0, out
        assert digest(back) == digest(big_file)
        assert "moved.bin" in out
        assert (samba.share_dir / "quicdir" / "moved.bin").stat().st_size == BIG
        rc, out = await run_smbclient(samba, bridge.port, "del quicdir\\moved.bin", "rmdir quicdir", "ls")
        assert rc == 0, out
        assert not (samba.share_dir / "quicdir").exists()
        # One log line per SMB connection, with who and how much.
        stats = await relays_ended(gateway)
        assert stats.connections == 3 and len(stats.log) == 3
        assert all(line.startswith("smb-quic 127.0.0.1:") and " bytes in, " in line for line in stats.log)
        assert stats.bytes_from_clients > BIG and stats.bytes_to_clients > BIG
    finally:
        await bridge.close()
        await gateway.close()


async def test_a_wrong_password_is_refused_by_samba_through_quic(samba, files):
    gateway = await start_gateway(samba, files)
    bridge = await start_bridge(gateway.local_address[1], files)
    try:
        rc, out = await run_smbclient(samba, bridge.port, "ls", password="not-the-password")
        assert rc != 0
        assert "NT_STATUS_LOGON_FAILURE" in out
    finally:
        await bridge.close()
        await gateway.close()


# -- smbprotocol natively over QUIC ---------------------------------------------------------------


def smbprotocol_session(samba, port: int, files, password=None, cache=None, **config_kw):
    return register_session(samba.host, samba.user, password or samba.password, port=port,
                            configuration=native_config(files, **config_kw),
                            address=("127.0.0.1", port), connection_cache=cache)


def smbprotocol_round(samba, port: int, files, big: bytes) -> dict:
    cache: dict = {}
    smbprotocol_session(samba, port, files, cache=cache)
    kw = dict(port=port, connection_cache=cache)
    try:
        names = smbclient.listdir(unc(samba), **kw)
        with smbclient.open_file(unc(samba, "native.bin"), mode="wb", **kw) as f:
            f.write(big)
        with smbclient.open_file(unc(samba, "native.bin"), mode="rb", **kw) as f:
            back = f.read()
        smbclient.mkdir(unc(samba, "nativedir"), **kw)
        smbclient.rename(unc(samba, "native.bin"), unc(samba, r"nativedir\n.bin"), **kw)
        inside = smbclient.listdir(unc(samba, "nativedir"), **kw)
        smbclient.remove(unc(samba, r"nativedir\n.bin"), **kw)
        smbclient.rmdir(unc(samba, "nativedir"), **kw)
        connection = next(iter(cache.values()))
        return dict(names=names, back=back, inside=inside, alpn=connection.transport.protocol.quic.alpn_protocol)
    finally:
        smbclient.reset_connection_cache(connection_cache=cache)


async def test_smbprotocol_runs_natively_over_quic(samba, files):
    gateway = await start_gateway(samba, files)
    big = os.urandom(BIG)
    try:
        result = await asyncio.wait_for(
            asyncio.to_thread(smbprotocol_round, samba, gateway.local_address[1], files, big), TIMEOUT)
        assert "hello.txt" in result["names"]
        assert result["back"] == big
        assert result["inside"] == ["n.bin"]
        assert result["alpn"] == "smb"
        assert not (samba.share_dir / "nativedir").exists()
        stats = await relays_ended(gateway)
        assert stats.bytes_from_clients > BIG and stats.bytes_to_clients > BIG
    finally:
        await gateway.close()


async def test_smbprotocol_wrong_password_is_refused(samba, files):
    from smbprotocol.exceptions import LogonFailure

    gateway = await start_gateway(samba, files)
    cache: dict = {}
    try:
        with pytest.raises(LogonFailure):
            await asyncio.wait_for(asyncio.to_thread(
                smbprotocol_session, samba, gateway.local_address[1], files, "wrong", cache), TIMEOUT)
    finally:
        await asyncio.to_thread(smbclient.reset_connection_cache, False, cache)
        await gateway.close()


# -- client access control -----------------------------------------------------------------------


def self_signed_client(directory: Path, name: str) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert


async def quic_refusal(port: int, files, **kw) -> ConnectionTerminatedError:
    with pytest.raises(ConnectionTerminatedError) as info:
        async with connect("127.0.0.1", port, configuration=native_config(files, **kw)) as protocol:
            reader, writer = await protocol.create_stream()
            writer.write(b"\x00\x00\x00\x00")
            await asyncio.wait_for(reader.read(), 10)
    return info.value


async def test_client_access_control_by_thumbprint_and_issuer(samba, files, tmp_path):
    allowed_cert, allowed_key, allowed = self_signed_client(tmp_path, "allowed")
    blocked_cert, blocked_key, blocked = self_signed_client(tmp_path, "blocked")
    unlisted_cert, unlisted_key, _ = self_signed_client(tmp_path, "unlisted")
    pki = make_test_pki("p256")
    access = ClientAccessControl(allow_thumbprints=[thumbprint(allowed), thumbprint(blocked)],
                                 block_thumbprints=[thumbprint(blocked)],
                                 allow_issuers=[pki.intermediate.subject.rfc4514_string()])
    gateway = await start_gateway(samba, files, access=access)
    port = gateway.local_address[1]
    try:
        # No certificate: the handshake asks for one and ends in certificate_required.
        refusal = await asyncio.wait_for(quic_refusal(port, files), TIMEOUT)
        assert refusal.error_code == 0x100 + 116
        # Unlisted and blocked (a block wins over an allow): access_denied, with the reason.
        refusal = await asyncio.wait_for(quic_refusal(port, files, certfile=str(unlisted_cert),
                                                      keyfile=str(unlisted_key)), TIMEOUT)
        assert refusal.error_code == 0x100 + 49 and "not on the allow list" in refusal.reason_phrase
        refusal = await asyncio.wait_for(quic_refusal(port, files, certfile=str(blocked_cert),
                                                      keyfile=str(blocked_key)), TIMEOUT)
        assert refusal.error_code == 0x100 + 49 and "blocked" in refusal.reason_phrase
        assert gateway.stats.connections == 0  # no refused client ever reached smbd
        # Allowed by thumbprint (self-signed) and by issuer (the test PKI's client): SMB works.
        await ls_through_bridge(samba, port, files, certfile=str(allowed_cert), keyfile=str(allowed_key))
        await ls_through_bridge(samba, port, files, certfile=str(files["client_chain"]), keyfile=str(files["client_key"]))
        assert access.refused == 2 and access.allowed == 2
        assert any(thumbprint(allowed)[:16] in line for line in gateway.stats.log)
    finally:
        await gateway.close()


# -- smb and h3 on one UDP port ---------------------------------------------------------------------


async def test_smb_and_h3_share_the_gateway_port_with_two_certificates(samba, files, tmp_path):
    pki = make_test_pki("p256")
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_bytes(b"<p>the web side</p>\n")
    web = Service("h3", request_handler=FileServer(www, quiet=True).handle_h3, server_names=["wrong.example"],
                  certfile=files["wrong_host_chain"], keyfile=files["wrong_host_key"])
    gateway = await start_gateway(samba, files, server_names=["localhost"], extra_services=[web])
    port = gateway.local_address[1]
    try:
        h3_config = native_config(files)
        h3_config.alpn_protocols, h3_config.server_name = ["h3"], "wrong.example"
        async with connect_h3("127.0.0.1", port, configuration=h3_config) as client:
            response = await asyncio.wait_for(client.get("https://wrong.example/index.html"), TIMEOUT)
            assert (response.status, response.content) == (200, b"<p>the web side</p>\n")
            assert client.protocol.quic.tls.peer_certificates[0] == pki.wrong_host.cert
        await ls_through_bridge(samba, port, files)
        cache: dict = {}
        await asyncio.to_thread(smbprotocol_session, samba, port, files, None, cache)
        connection = next(iter(cache.values()))
        assert connection.transport.protocol.quic.tls.peer_certificates[0] == pki.server.cert
        await asyncio.to_thread(smbclient.reset_connection_cache, False, cache)
    finally:
        await gateway.close()


# -- loss of the path, and a NAT rebinding --------------------------------------------------------


async def until_written(path: Path, size: int) -> None:
    """Wait until smbd has written ``size`` bytes of ``path``: a transfer in progress."""
    for _ in range(int(TIMEOUT / 0.01)):
        if path.exists() and path.stat().st_size >= size:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never reached {size} bytes")


async def test_a_connection_lost_mid_transfer_ends_cleanly_and_the_gateway_serves_on(samba, files, big_file):
    gateway = await start_gateway(samba, files, idle_timeout=3.0, keepalive=None)
    relay = UdpRelay(("127.0.0.1", gateway.local_address[1]), seed=7)
    host, relay_port = await relay.start()
    bridge = await start_bridge(relay_port, files, idle_timeout=3.0)
    bridge.keepalive = None
    try:
        transfer = asyncio.ensure_future(run_smbclient(samba, bridge.port, f"put {big_file} lost.bin"))
        await until_written(samba.share_dir / "lost.bin", 2 * 1024 * 1024)  # mid-transfer
        relay.blackhole(600.0)  # the path is gone for good
        started = asyncio.get_running_loop().time()
        rc, out = await asyncio.wait_for(transfer, 30)
        took = asyncio.get_running_loop().time() - started
        assert rc != 0, out  # smbclient sees its connection drop
        assert took < 3.0 * 3 + 5, took
        while gateway.stats.active:  # the gateway side ends too, within its idle timeout
            assert asyncio.get_running_loop().time() - started < 3.0 * 3 + 5
            await asyncio.sleep(0.1)
        assert any("ended" in line for line in gateway.stats.log), gateway.stats.log
        assert bridge.failures == 1 and any("ended" in line for line in bridge.log)
        # The gateway serves the next client.
        await ls_through_bridge(samba, gateway.local_address[1], files)
    finally:
        relay.close()
        await bridge.close()
        await gateway.close()


async def test_a_nat_rebinding_mid_transfer_keeps_the_smb_session(samba, files, big_file, tmp_path):
    gateway = await start_gateway(samba, files)
    relay = UdpRelay(("127.0.0.1", gateway.local_address[1]), seed=8)
    host, relay_port = await relay.start()
    bridge = await start_bridge(relay_port, files)
    back = tmp_path / "rebound.bin"
    try:
        transfer = asyncio.ensure_future(
            run_smbclient(samba, bridge.port, f"put {big_file} rebound.bin", f"get rebound.bin {back}"))
        await until_written(samba.share_dir / "rebound.bin", 2 * 1024 * 1024)  # mid-transfer
        (connection,) = [p.quic for p in gateway.server.connections]
        await relay.rebind()  # new source port towards the gateway, mid-transfer
        rc, out = await asyncio.wait_for(transfer, TIMEOUT)
        assert rc == 0, out
        assert digest(back) == digest(big_file)
        assert relay.rebinds == 1
        assert connection.stats.path_migrations == 1 and connection.stats.paths_validated >= 1
    finally:
        relay.close()
        await bridge.close()
        await gateway.close()


# -- the commands ----------------------------------------------------------------------------------


async def _command(*args: str, until: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", *args, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()  # type: ignore[union-attr]
        if until in line:
            return proc
        if not line:
            raise AssertionError(f"{args} exited before saying {until!r}")


def _udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_gateway_and_bridge_commands(samba, files, tmp_path):
    quic_port, bridge_port = _udp_port(), _udp_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "hi.txt").write_bytes(b"hi from the web side\n")
    gateway = await _command(
        "examples.smb_quic.gateway", "--host", "127.0.0.1", "--port", str(quic_port),
        "--smb", f"127.0.0.1:{samba.port}", "--cert", str(files["server_chain"]), "--key", str(files["server_key"]),
        "--name", "localhost", "--client-ca", str(files["ca"]),
        "--www", str(www), "--www-cert", str(files["wrong_host_chain"]), "--www-key", str(files["wrong_host_key"]),
        "--www-name", "wrong.example", until="smb-quic gateway on")
    bridge = await _command(
        "examples.smb_quic.bridge", "--server", f"127.0.0.1:{quic_port}", "--server-name", "localhost",
        "--cafile", str(files["ca"]), "--cert", str(files["client_chain"]), "--key", str(files["client_key"]),
        "--listen", f"127.0.0.1:{bridge_port}", until="smb-quic bridge on")
    try:
        rc, out = await run_smbclient(samba, bridge_port, "ls")
        assert rc == 0 and "hello.txt" in out, out
        h3_config = native_config(files)
        h3_config.alpn_protocols, h3_config.server_name = ["h3"], "wrong.example"
        async with connect_h3("127.0.0.1", quic_port, configuration=h3_config) as client:
            response = await asyncio.wait_for(client.get("https://wrong.example/hi.txt"), TIMEOUT)
            assert (response.status, response.content) == (200, b"hi from the web side\n")
    finally:
        for proc in (bridge, gateway):
            proc.send_signal(signal.SIGTERM)
        outputs = [(await asyncio.wait_for(p.communicate(), TIMEOUT))[0].decode() for p in (bridge, gateway)]
    assert bridge.returncode == 0 and gateway.returncode == 0, outputs
    assert "smb-quic 127.0.0.1:" in outputs[1] and "cert " in outputs[1]  # the per-connection line, with the client
    assert "smb-quic gateway stopped: 1 connections" in outputs[1]


async def test_the_one_command_demo():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "examples.smb_quic", "--size", "5", cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await asyncio.wait_for(proc.communicate(), TIMEOUT))[0].decode()
    assert proc.returncode == 0, out
    assert "SMB over QUIC demo: all checks passed" in out
    for row in ("smbclient get over QUIC (bridge, gateway)", "smbclient get straight over TCP",
                "smbprotocol get natively over QUIC"):
        assert row in out and "sha256 ok" in out.split(row)[1].splitlines()[0], out


# -- keepalive and the connection cap -------------------------------------------------------------


async def test_keepalive_keeps_an_idle_smb_session_past_the_idle_timeout(samba, files):
    # Idle timeout 1.5 s on both sides; the gateway PINGs every 0.4 s, the
    # client never does: the session idles for 4 s and is still the same one.
    gateway = await start_gateway(samba, files, idle_timeout=1.5, keepalive=0.4)
    port = gateway.local_address[1]
    cache: dict = {}

    def session_then_idle() -> tuple:
        smbprotocol_session(samba, port, files, cache=cache, idle_timeout=1.5)
        connection = next(iter(cache.values()))
        connection.transport.keepalive = None
        connection.transport.protocol.keep_alive(None)  # only the gateway's PINGs from here on
        protocol = connection.transport.protocol
        first = smbclient.listdir(unc(samba), port=port, connection_cache=cache)
        import time

        time.sleep(4.0)
        second = smbclient.listdir(unc(samba), port=port, connection_cache=cache)
        return first, second, protocol is connection.transport.protocol, connection.transport.connected

    try:
        first, second, same, connected = await asyncio.wait_for(asyncio.to_thread(session_then_idle), TIMEOUT)
        assert "hello.txt" in first and first == second
        assert same and connected
        assert gateway.stats.connections == 1  # no reconnection happened
    finally:
        await asyncio.to_thread(smbclient.reset_connection_cache, False, cache)
        await gateway.close()


async def test_the_connection_cap_refuses_clients_past_it(samba, files):
    gateway = await start_gateway(samba, files, max_connections=1)
    port = gateway.local_address[1]
    try:
        async with connect("127.0.0.1", port, configuration=native_config(files)):
            refusal = await asyncio.wait_for(quic_refusal(port, files), TIMEOUT)
            assert refusal.error_code == 0x2  # CONNECTION_REFUSED
        # Once the first has gone, a new client gets in.
        for _ in range(100):
            if not gateway.server.connections:
                break
            await asyncio.sleep(0.05)
        await ls_through_bridge(samba, port, files)
    finally:
        await gateway.close()
