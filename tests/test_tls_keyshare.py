# tls.keyshare: RFC 8448 key shares replayed with injected private keys
# (x25519 and the §5 P-256 share), RFC 7748, every Wycheproof X25519 and
# ECDH secp256r1/secp384r1 (ecpoint) test through our API, X25519MLKEM768
# round trips and malformed shares, and the group choice / HRR decision.
import pytest

from tls.enums import AlertDescription, Group
from tls.errors import AlertError
from tls.keyshare import (
    DEFAULT_GROUPS,
    SHARE_LENGTHS,
    KeyShare,
    check_client_shares,
    select_group,
    server_exchange,
    validate_share,
)

from .vectors import h, load

GROUP_NAMES = {"x25519": Group.X25519, "secp256r1": Group.SECP256R1, "secp384r1": Group.SECP384R1}
ILLEGAL = AlertDescription.illegal_parameter


def _illegal(fn, *args, **kw):
    with pytest.raises(AlertError) as info:
        fn(*args, **kw)
    assert info.value.description == ILLEGAL, info.value
    return info.value


# ---------------------------------------------------------------------------
# Known answers


@pytest.mark.parametrize("n", ["3", "4", "5", "6", "7"])
def test_rfc8448_key_shares(n):
    s = load("rfc8448.json")["sections"][n]["summary"]
    kx = s["key_exchange"]
    server = kx["server"][0]
    group = GROUP_NAMES[server["group"]]
    client = next(c for c in kx["client"] if GROUP_NAMES[c["group"]] == group)
    for c in kx["client"]:  # every offered share reproduces from its private key
        share = KeyShare.generate(GROUP_NAMES[c["group"]], h(c["private_key"]))
        assert share.public == h(c["public_key"])
    mine = KeyShare.generate(group, h(client["private_key"]))
    server_share, secret = server_exchange(group, mine.public, h(server["private_key"]))
    assert server_share == h(server["public_key"])
    expected = h(s["secrets"]["ecdhe_shared_secret"])
    assert secret == expected
    assert mine.exchange(server_share) == expected


def test_rfc7748():
    v = load("rfc7748_x25519.json")
    dh = v["section_6_1_diffie_hellman"]
    alice = KeyShare.generate(Group.X25519, h(dh["alice_private"]))
    bob = KeyShare.generate(Group.X25519, h(dh["bob_private"]))
    assert alice.public == h(dh["alice_public"]) and bob.public == h(dh["bob_public"])
    assert alice.exchange(bob.public) == bob.exchange(alice.public) == h(dh["shared_secret"])
    for t in v["section_5_2_vectors"]:
        assert KeyShare.generate(Group.X25519, h(t["input_scalar"])).exchange(h(t["input_u"])) == h(t["output_u"])
    it = v["section_5_2_iterated"]
    k = KeyShare.generate(Group.X25519, h(it["initial_k"]))
    assert k.exchange(h(it["initial_u"])) == h(it["after_1"])


# ---------------------------------------------------------------------------
# Wycheproof through our API


def _wycheproof(name, group):
    counts = {"valid": 0, "invalid": 0, "acceptable": 0}
    for g in load(f"wycheproof/{name}")["testGroups"]:
        for t in g["tests"]:
            counts[t["result"]] += 1
            mine = KeyShare.generate(group, h(t["private"]))
            try:
                secret = mine.exchange(h(t["public"]))
            except AlertError as e:
                assert e.description == ILLEGAL, t["tcId"]
                assert t["result"] != "valid", (t["tcId"], t["comment"])
                continue
            assert t["result"] != "invalid", (t["tcId"], t["comment"])
            assert secret == h(t["shared"]), t["tcId"]
            # TLS-specific: an all-zero X25519 result and compressed points are refused.
            assert "ZeroSharedSecret" not in t["flags"], t["tcId"]
            assert "CompressedPublic" not in t["flags"], t["tcId"]
    return counts


def test_wycheproof_x25519():
    counts = _wycheproof("x25519_test.json", Group.X25519)
    assert sum(counts.values()) == 518


def test_wycheproof_ecdh_secp256r1():
    counts = _wycheproof("ecdh_secp256r1_ecpoint_test.json", Group.SECP256R1)
    assert sum(counts.values()) == 355


def test_wycheproof_ecdh_secp384r1():
    counts = _wycheproof("ecdh_secp384r1_ecpoint_test.json", Group.SECP384R1)
    assert sum(counts.values()) == 790


def test_wycheproof_ecdh_server_side_rejects_invalid():
    # The same peer points, checked by the server path (server_exchange).
    for name, group in (("ecdh_secp256r1_ecpoint_test.json", Group.SECP256R1),
                        ("x25519_test.json", Group.X25519)):
        for g in load(f"wycheproof/{name}")["testGroups"]:
            for t in g["tests"][:400:7]:
                try:
                    server_exchange(group, h(t["public"]), h(t["private"]))
                except AlertError as e:
                    assert e.description == ILLEGAL and t["result"] != "valid"


# ---------------------------------------------------------------------------
# Malformed shares


@pytest.mark.parametrize("group", [Group.X25519, Group.SECP256R1, Group.SECP384R1])
def test_wrong_lengths_are_illegal_parameter(group):
    share = KeyShare.generate(group)
    for bad in (b"", share.public[:-1], share.public + b"\x00"):
        _illegal(share.exchange, bad)
        _illegal(server_exchange, group, bad)


@pytest.mark.parametrize("group", [Group.SECP256R1, Group.SECP384R1])
def test_ec_point_forms(group):
    share = KeyShare.generate(group)
    other = KeyShare.generate(group)
    assert len(share.public) == SHARE_LENGTHS[group][0] and share.public[0] == 4
    # compressed form of a valid point: not allowed in TLS 1.3 (§4.2.8.2)
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    curve = ec.SECP256R1() if group == Group.SECP256R1 else ec.SECP384R1()
    point = ec.EllipticCurvePublicKey.from_encoded_point(curve, other.public)
    _illegal(share.exchange, point.public_bytes(Encoding.X962, PublicFormat.CompressedPoint))
    # hybrid form (0x06/0x07) and off-curve point
    _illegal(share.exchange, b"\x06" + other.public[1:])
    off = bytearray(other.public)
    off[-1] ^= 1
    _illegal(share.exchange, bytes(off))
    _illegal(validate_share, group, bytes(off))
    # point at infinity encoding
    _illegal(share.exchange, b"\x00")
    assert share.exchange(other.public) == other.exchange(share.public)


def test_x25519_all_zero_result():
    share = KeyShare.generate(Group.X25519)
    for low_order in (bytes(32), b"\x01" + bytes(31)):
        _illegal(share.exchange, low_order)
        _illegal(server_exchange, Group.X25519, low_order)


def test_unknown_group():
    _illegal(server_exchange, 0x0019, b"\x04" * 133)
    _illegal(KeyShare.generate, 0x1234)


# ---------------------------------------------------------------------------
# X25519MLKEM768


def test_mlkem_hybrid_round_trip_and_sizes():
    client = KeyShare.generate(Group.X25519MLKEM768)
    assert len(client.public) == 1184 + 32
    server_share, secret = server_exchange(Group.X25519MLKEM768, client.public)
    assert len(server_share) == 1088 + 32
    assert len(secret) == 64
    assert client.exchange(server_share) == secret
    # ML-KEM part first, X25519 part second (draft-ietf-tls-ecdhe-mlkem)
    x_client = KeyShare.generate(Group.X25519, b"\x11" * 32)
    seed = bytes(range(64))
    client2 = KeyShare.generate(Group.X25519MLKEM768, seed + b"\x11" * 32)
    assert client2.public[1184:] == x_client.public
    server_share2, secret2 = server_exchange(Group.X25519MLKEM768, client2.public, b"\x22" * 32)
    x_server = KeyShare.generate(Group.X25519, b"\x22" * 32)
    assert server_share2[1088:] == x_server.public
    assert secret2[32:] == x_client.exchange(x_server.public)
    assert client2.exchange(server_share2) == secret2


def test_mlkem_deterministic_from_seed_and_rng():
    seed = bytes(range(64)) + bytes(range(32))
    a = KeyShare.generate(Group.X25519MLKEM768, seed)
    b = KeyShare.generate(Group.X25519MLKEM768, seed)
    assert a.public == b.public
    stream = iter([bytes(range(64)), bytes(range(32))])
    c = KeyShare.generate(Group.X25519MLKEM768, rng=lambda n: next(stream))
    assert c.public == a.public


def test_mlkem_malformed():
    client = KeyShare.generate(Group.X25519MLKEM768)
    server_share, _ = server_exchange(Group.X25519MLKEM768, client.public)
    _illegal(client.exchange, server_share[:-1])
    _illegal(client.exchange, server_share[:1088])
    _illegal(server_exchange, Group.X25519MLKEM768, client.public[:-1])
    _illegal(server_exchange, Group.X25519MLKEM768, client.public[1184:])
    # encapsulation key whose coefficients are >= q (FIPS 203 modulus check)
    _illegal(server_exchange, Group.X25519MLKEM768, b"\xff" * 1184 + client.public[1184:])
    # all-zero x25519 part
    _illegal(server_exchange, Group.X25519MLKEM768, client.public[:1184] + bytes(32))
    _illegal(client.exchange, server_share[:1088] + bytes(32))
    # a tampered ciphertext decapsulates (implicit rejection) to another secret
    tampered = bytes([server_share[0] ^ 1]) + server_share[1:]
    assert client.exchange(tampered) != client.exchange(server_share)


# ---------------------------------------------------------------------------
# Injected keys and randomness


def test_rng_injection_is_deterministic():
    def rng_factory():
        state = [0]

        def rng(n):
            state[0] += 1
            return bytes([state[0]]) * n

        return rng

    for group in (Group.X25519, Group.SECP256R1, Group.SECP384R1):
        a = KeyShare.generate(group, rng=rng_factory())
        b = KeyShare.generate(group, rng=rng_factory())
        assert a.public == b.public
    # P-256 scalar rejection sampling: an all-ff draw is >= n and is retried
    draws = iter([b"\xff" * 32, b"\x01" * 32])
    p = KeyShare.generate(Group.SECP256R1, rng=lambda n: next(draws))
    assert p.public == KeyShare.generate(Group.SECP256R1, b"\x01" * 32).public
    with pytest.raises(ValueError):
        KeyShare.generate(Group.SECP256R1, bytes(32))
    with pytest.raises(ValueError):
        KeyShare.generate(Group.X25519, bytes(31))


def test_fresh_keys_differ():
    for group in (Group.X25519, Group.SECP256R1, Group.X25519MLKEM768):
        assert KeyShare.generate(group).public != KeyShare.generate(group).public


# ---------------------------------------------------------------------------
# Group choice and HelloRetryRequest


X, P256, P384, HYB = Group.X25519, Group.SECP256R1, Group.SECP384R1, Group.X25519MLKEM768


def test_select_group_share_present_no_hrr():
    assert select_group([X, P256], [X], [X, P256]) == (X, False)


def test_select_group_prefers_existing_share_by_default():
    # we prefer the hybrid, the client supports it but only sent x25519
    assert select_group([HYB, X], [X], [HYB, X]) == (X, False)
    assert select_group([HYB, X], [X], [HYB, X], prefer_existing_share=False) == (HYB, True)


def test_select_group_hrr_when_no_usable_share():
    assert select_group([X, P256], [], [X, P256]) == (X, True)
    assert select_group([P384, P256], [P384], [P256, X]) == (P256, True)
    # the server's preference order, not the client's, decides
    assert select_group([P384, P256, X], [], [X, P256, P384]) == (X, True)


def test_select_group_ignores_unknown_and_fails_without_overlap():
    assert select_group([0x0100, 0x001E, P256], [0x0100], DEFAULT_GROUPS) == (P256, True)
    with pytest.raises(AlertError) as info:
        select_group([0x001E], [0x001E], [X, P256])
    assert info.value.description == AlertDescription.handshake_failure


def test_check_client_shares():
    check_client_shares([X, P256], [X, P256])
    _illegal(check_client_shares, [X, P256], [X, X])
    _illegal(check_client_shares, [X], [P256])


@pytest.mark.parametrize("group", [X, P256, P384, HYB])
def test_random_peer_shares_raise_only_illegal_parameter(group):
    import random

    rnd = random.Random(int(group))
    mine = KeyShare.generate(group)
    for i in range(60):
        n = SHARE_LENGTHS[group][i % 2] if i % 3 else rnd.randrange(0, 1300)
        data = bytearray(rnd.getrandbits(8) for _ in range(n))
        if data and i % 4 == 1 and group in (P256, P384):
            data[0] = 4
        for call in (lambda: mine.exchange(bytes(data)), lambda: server_exchange(group, bytes(data))):
            try:
                call()
            except AlertError as e:
                assert e.description == ILLEGAL
