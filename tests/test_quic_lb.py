# QUIC-LB connection IDs (draft-ietf-quic-load-balancers): the draft's test
# vectors (plaintext, single-pass and four-pass encryption, a server ID
# longer than its nonce) and its worked four-pass example; round trips for
# every length; the generator behind a server's every connection ID, so a
# balancer that knows only the configuration finds the server from any of
# them: the handshake's, NEW_CONNECTION_ID's, a preferred address's, a
# rotation's and a Retry's.
from __future__ import annotations

import os
import random

import pytest

from pyquic.errors import UsageError
from pyquic.quic_lb import LbConfig, LbEncoder, decode_server_id
from tests.quic_pair import Pair, endpoint_pair, seeded_entropy, server_configuration

h = bytes.fromhex
ZEROS = lambda n: bytes(n)  # noqa: E731  (the vectors fix the nonce; nothing else is drawn)

# The draft's Appendix "Load Balancer Test Vectors": the server encodes the
# CID length in the first octet.  (config rotation bits, server ID, nonce, CID)
VECTOR_KEY = h("8f95f09245765f80256934e50c66207f")
ENCRYPTED = [
    (0, "ed793a", "ee080dbf", "0720b1d07b359d3c"),  # four passes, 7 octets (odd)
    (1, "ed793a51d49b8f5fab65", "ee080dbf48", "2fcc381bc74cb4fbad2823a3d1f8fed2"),  # server ID longer: 4th pass back
    (2, "ed793a51d49b8f5f", "ee080dbf48c0d1e5", "504dd2d05a7b0de9b2b9907afb5ecf8cc3"),  # 16 octets: one AES block
    # The draft prints this one's first octet as 0x12, whose rotation bits say 0, not 3; the
    # earlier revision printed 0x72 (3 << 5 | 18).  The 18 octets after it are the draft's.
    (3, "ed793a51d49b8f5fab", "ee080dbf48c0d1e55d", "725779c9cc86beb3a3a4a3ca96fce4bfe0cdbc"),
]


def test_the_drafts_plaintext_vector():
    config = LbConfig(0, 3, 4)
    assert LbEncoder(config, h("c4605e"), ZEROS).encode(h("4504cc4f")) == h("07c4605e4504cc4f")
    assert decode_server_id(config, h("07c4605e4504cc4f")) == h("c4605e")
    # (The draft's second plaintext vector has a nine-digit nonce: a misprint, left out.)


@pytest.mark.parametrize("cr,sid,nonce,cid", ENCRYPTED)
def test_the_drafts_encrypted_vectors(cr, sid, nonce, cid):
    config = LbConfig(cr, len(h(sid)), len(h(nonce)), VECTOR_KEY)
    assert LbEncoder(config, h(sid), ZEROS).encode(h(nonce)) == h(cid)
    assert decode_server_id(config, h(cid)) == h(sid)


def test_the_drafts_worked_four_pass_example():
    config = LbConfig(0, 3, 4, h("fdf726a9893ec05c0632d3956680baf0"))
    assert LbEncoder(config, h("31441a"), ZEROS).encode(h("9c69c275")) == h("0767947d29be054a")


@pytest.mark.parametrize("keyed", [False, True])
def test_every_length_round_trips_and_ids_do_not_repeat(keyed):
    rng = random.Random(5)
    for sid_len in range(1, 16):
        for nonce_len in range(4, 20 - sid_len):
            config = LbConfig(rng.randrange(7), sid_len, nonce_len, rng.randbytes(16) if keyed else None)
            server_id = rng.randbytes(sid_len)
            generate = LbEncoder(config, server_id, rng.randbytes)
            cids = [generate() for _ in range(50)]
            assert len(set(cids)) == 50 and all(len(c) == config.cid_length for c in cids)
            assert {decode_server_id(config, c) for c in cids} == {server_id}
            assert all(c[0] & 0x1F == sid_len + nonce_len for c in cids)  # the length, self-described
            other = LbConfig((config.config_id + 1) % 7, sid_len, nonce_len, config.key)
            assert decode_server_id(other, cids[0]) is None  # another codepoint: not this configuration's


def test_the_low_bits_can_carry_a_worker_index():
    config = LbConfig(1, 2, 6, os.urandom(16), encode_length=False)
    cids = [LbEncoder(config, b"\x00\x07", os.urandom, low_bits=5)() for _ in range(20)]
    assert {c[0] for c in cids} == {1 << 5 | 5} and {decode_server_id(config, c) for c in cids} == {b"\x00\x07"}
    with pytest.raises(UsageError):
        LbEncoder(LbConfig(1, 2, 6), b"\x00\x07", os.urandom, low_bits=5)  # those bits say the length there


def test_bad_configurations_are_refused():
    for kwargs in (dict(config_id=7), dict(server_id_length=0), dict(nonce_length=3), dict(server_id_length=16),
                   dict(key=b"short")):
        with pytest.raises(UsageError):
            LbConfig(**{**dict(config_id=0, server_id_length=3, nonce_length=4), **kwargs})
    with pytest.raises(UsageError):
        LbEncoder(LbConfig(0, 3, 4), b"\x01", os.urandom)  # a server ID of the wrong length


# -- a server that issues them ------------------------------------------------------------------------

LB = LbConfig(2, 3, 6, h("00112233445566778899aabbccddeeff"))  # 10-octet IDs
SERVER_ID = h("0a0b0c")


def lb_server(**kwargs):
    return server_configuration(connection_id_length=LB.cid_length,
                                connection_id_generator=LbEncoder(LB, SERVER_ID, seeded_entropy(11)), **kwargs)


def test_every_id_a_server_issues_names_it():
    pair, endpoint = endpoint_pair(lb_server(preferred_address=[("10.0.0.9", 443)]), retry="always")
    pair.handshake()
    pair.drive()
    server = pair.server.connection
    server.request_connection_id_rotation()
    pair.drive()
    odcid = server.original_destination_connection_id  # the client chose that one
    issued = [cid for cid in endpoint._routes if isinstance(cid, bytes) and cid != odcid]
    assert len(issued) >= server.configuration.active_connection_id_limit  # at least the fresh set
    assert {decode_server_id(LB, cid) for cid in issued} == {SERVER_ID}
    assert decode_server_id(LB, pair.client.peer_cid) == SERVER_ID
    assert decode_server_id(LB, pair.client._peer_params.preferred_address.connection_id) == SERVER_ID
    assert decode_server_id(LB, pair.client._retry_source_cid) == SERVER_ID  # the Retry's, too


def test_a_generator_of_the_wrong_length_is_a_usage_error():
    with pytest.raises(UsageError, match="octets"):
        Pair(server_config=server_configuration(connection_id_generator=lambda: b"\x01" * 5)).handshake()
