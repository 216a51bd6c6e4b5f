# SSLKEYLOGFILE proven by a real reader of it: what our QUIC and TLS-over-TCP
# connections put on the wire (in memory, written as a pcap by tests/pcap.py)
# is decrypted by tshark with the key log our client wrote, down to the
# application bytes.  tshark is installed by scripts/setup.sh; a missing
# tshark fails these tests.
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pcap import PcapWriter, tap
from tests.quic_pair import CLIENT_ADDR, SERVER_ADDR, Pair, client_configuration

from .test_tls_connection import Pair as TlsPair
from .test_tls_connection import client_config, server_config

QUIC_CLIENT = ("10.0.0.1", CLIENT_ADDR[1])
QUIC_SERVER = ("10.0.0.2", SERVER_ADDR[1])  # 443: tshark's QUIC port
TCP_CLIENT = ("10.0.1.1", 51000)
TCP_SERVER = ("10.0.1.2", 443)
REQUEST = b"GET /secret-by-pyquic HTTP/0.9\r\n"
ANSWER = b"the answer only the key log reveals"


def tshark(*args: str) -> str:
    exe = shutil.which("tshark")
    assert exe, "tshark is missing: scripts/setup.sh installs Debian's tshark"
    run = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def follow(pcap: Path, keylog: Path, proto: str, stream: str) -> str:
    return tshark("-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-q", "-z", f"follow,{proto},raw,{stream}")


def payload_of_follow(text: str) -> bytes:
    """The bytes of `-z follow,...,raw`: hex lines, the server's indented."""
    out = bytearray()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and all(c in "0123456789abcdef" for c in stripped):
            out += bytes.fromhex(stripped)
    return bytes(out)


def test_tshark_decrypts_our_quic_connection_with_the_key_log(tmp_path):
    keylog = tmp_path / "keys.log"
    with open(keylog, "w") as log:
        pair = Pair(client_config=client_configuration(secrets_log_file=log))
        wire = PcapWriter()
        tap(pair, wire, QUIC_CLIENT, QUIC_SERVER)
        pair.handshake()
        sid = pair.client.get_next_available_stream_id()
        pair.client.send_stream_data(sid, REQUEST, end_stream=True)
        pair.drive()
        pair.server.send_stream_data(sid, ANSWER, end_stream=True)
        pair.drive()
    assert pair.received("client", sid) == ANSWER
    pcap = tmp_path / "quic.pcap"
    wire.write(pcap)
    # Every packet opens: the handshake's TLS messages are there by name ...
    types = tshark("-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-Y", "tls.handshake.type",
                   "-T", "fields", "-e", "tls.handshake.type")
    seen = {int(t) for line in types.split() for t in line.split(",")}
    assert {1, 2, 8, 11, 15, 20} <= seen  # ClientHello ... Finished
    # ... and the stream's bytes both ways, which only the 1-RTT keys reveal.
    data = tshark("-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-Y", "quic.stream_data",
                  "-T", "fields", "-e", "quic.stream_data")
    assert REQUEST.hex() in data.replace(":", "") and ANSWER.hex() in data.replace(":", "")
    # Without the key log tshark sees neither.
    empty = tshark("-n", "-r", str(pcap), "-o", "tls.keylog_file:", "-Y", "quic.stream_data",
                   "-T", "fields", "-e", "quic.stream_data")
    assert REQUEST.hex() not in empty.replace(":", "")


@pytest.fixture(scope="module")
def pki():
    from .pki import make_test_pki

    return make_test_pki()


@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303])
def test_tshark_decrypts_our_tls_over_tcp_with_the_key_log(tmp_path, pki, suite):
    keylog = tmp_path / "keys.log"
    p = TlsPair(client_config(pki, keylog=str(keylog), cipher_suites=[suite]), server_config(pki)).start().drive()
    p.client.send(REQUEST)
    p.drive()
    p.server.send(ANSWER * 100)
    p.drive()
    assert p.c_data() == ANSWER * 100
    wire = PcapWriter()
    for n, (who, data) in enumerate(p.wire):
        src, dst = (TCP_CLIENT, TCP_SERVER) if who == "client" else (TCP_SERVER, TCP_CLIENT)
        wire.tcp(1_700_000_000 + n * 0.001, src, dst, data)
    pcap = tmp_path / "tls.pcap"
    wire.write(pcap)
    plain = payload_of_follow(follow(pcap, keylog, "tls", "0"))
    assert plain == REQUEST + ANSWER * 100
    assert b"only the key log" not in payload_of_follow(follow(pcap, tmp_path / "none.log", "tls", "0"))
