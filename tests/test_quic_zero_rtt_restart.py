# 0-RTT when the handshake starts over (RFC 9001 §4.7, RFC 9000 §17.2.5,
# §6.2): a Retry or a Version Negotiation packet replaces loss recovery, and
# every 0-RTT packet sent before it is then lost for sure (the server kept
# no state for it).  Their stream data must go again; before the fix it
# stayed counted as in flight forever and the stream stalled.  Against
# aioquic's server in its own process: once with Retry for every client,
# once speaking only QUIC v1 to our client that starts with v2.
from __future__ import annotations

import asyncio

import pytest

from pyquic.asyncio import connect
from pyquic.versions import QUIC_V1, QUIC_V2
from tests.peers.pattern import chunks
from tests.quic_interop_cases import client_config, expect, read_digest, request
from tests.quic_peers import pki_files, start_server

TIMEOUT = 20.0
SIZE = 20_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


async def resumed_echo(files, port: int, **config):
    """A ticket from a first connection, then a 20 kB echo written before the
    second connection's handshake could complete (so it leaves in 0-RTT)."""
    tickets: list = []
    async with connect("127.0.0.1", port, configuration=client_config(files, **config),
                       session_ticket_handler=tickets.append) as proto:
        assert await request(proto, "echo", 10) == expect(10)
    assert tickets, "the server sent no session ticket"
    second = client_config(files, session_ticket=tickets[-1], enable_early_data=True, **config)
    async with connect("127.0.0.1", port, configuration=second, wait_connected=False) as proto:
        reader, writer = await proto.create_stream()
        writer.write(b"echo\n")
        for chunk in chunks(SIZE):
            writer.write(chunk)
        writer.write_eof()
        proto.transmit()
        answer = await asyncio.wait_for(read_digest(reader), TIMEOUT)
        return answer, proto._quic


async def test_0rtt_then_retry_resends_the_early_data(files):
    server = start_server("aioquic", files, extra_args=("--retry",))
    try:
        answer, quic = await resumed_echo(files, server.port)
        assert answer == expect(SIZE)
        assert quic.stats.zero_rtt_packets_sent >= 1  # it did try 0-RTT, then met the Retry
        assert quic._retry_received
        assert quic.tls.negotiated.resumed
    finally:
        server.stop()


async def test_0rtt_then_version_negotiation_resends_the_early_data(files):
    server = start_server("aioquic", files, extra_args=("--versions", hex(QUIC_V1)))
    try:
        answer, quic = await resumed_echo(files, server.port, supported_versions=[QUIC_V2, QUIC_V1],
                                          original_version=QUIC_V2)
        assert answer == expect(SIZE)
        assert quic.version == QUIC_V1
        assert quic.stats.zero_rtt_packets_sent >= 1
    finally:
        server.stop()
