# tls.tickets: age obfuscation (RFC 8446 §4.2.11.1), the client's ticket
# store, the server's sealed ticket state (seal/open, key rotation, never
# raising on garbage), the 0-RTT freshness check (§8.3) and the anti-replay
# store (§8.1, §8.2) with its memory cap.  All time is simulated.
import itertools
import random

import pytest

from tls.key_schedule import KeySchedule
from tls.tickets import (
    MAX_TICKET_LIFETIME,
    AntiReplay,
    Ticket,
    TicketSealer,
    TicketState,
    TicketStore,
    client_identity_hash,
    deobfuscate_age,
    new_age_add,
    obfuscate_age,
    ticket_age_ok,
)


def counter_rng():
    c = itertools.count(1)
    return lambda n: next(c).to_bytes(4, "big") * (n // 4) + b"\x00" * (n % 4)


def _state(issued_at=1000.0, **kw):
    base = dict(cipher_suite=0x1301, psk=b"\x11" * 32, age_add=0xFFFFFFF0, issued_at=issued_at,
                lifetime=7200, alpn=b"h3", server_name="example.com", max_early_data=0xFFFFFFFF,
                client_identity=client_identity_hash(b"leaf-der"), app_data=b"\x01\x02transport")
    base.update(kw)
    return TicketState(**base)


# ---------------------------------------------------------------------------
# Ages


def test_obfuscated_age_wraps():
    assert obfuscate_age(5000, 0xFFFFFFFF) == 4999
    assert deobfuscate_age(obfuscate_age(123456, 0xDEADBEEF), 0xDEADBEEF) == 123456
    t = Ticket("example.com", 0x1301, b"p" * 32, b"tk", 0xFFFFFF00, 3600, received_at=100.0)
    assert t.age_ms(102.5) == 2500
    assert t.obfuscated_age(102.5) == (2500 + 0xFFFFFF00) % 2**32
    assert t.age_ms(50.0) == 0  # clock went backwards: never negative


def test_ticket_age_ok_window():
    st = _state(issued_at=1000.0)
    client_view = obfuscate_age(4000, st.age_add)  # client thinks 4 s
    assert ticket_age_ok(st, client_view, 1004.0)
    assert ticket_age_ok(st, client_view, 1013.9)
    assert not ticket_age_ok(st, client_view, 1015.0)
    assert ticket_age_ok(st, client_view, 1004.0, window=0.0)  # exact match allowed
    assert not ticket_age_ok(st, client_view, 1004.5, window=0.0)


def test_new_age_add_uses_rng():
    assert new_age_add(lambda n: b"\x01\x02\x03\x04") == 0x01020304


# ---------------------------------------------------------------------------
# Client store


def test_ticket_validity_caps_lifetime_at_seven_days():
    t = Ticket("a", 0x1301, b"p", b"t", 0, 30 * 86400, received_at=0.0)
    assert t.expires_at() == MAX_TICKET_LIFETIME
    assert t.is_valid(MAX_TICKET_LIFETIME - 1) and not t.is_valid(MAX_TICKET_LIFETIME)
    assert not Ticket("a", 0x1301, b"p", b"t", 0, 0, received_at=0.0).is_valid(0.0)


def test_ticket_store_single_use_newest_first_and_expiry():
    store = TicketStore()
    old = Ticket("a", 0x1301, b"1", b"t1", 0, 100, received_at=0.0)
    new = Ticket("a", 0x1301, b"2", b"t2", 0, 100, received_at=10.0)
    other = Ticket("b", 0x1301, b"3", b"t3", 0, 100, received_at=0.0)
    for t in (old, new, other):
        store.add(t)
    store.add(Ticket("a", 0x1301, b"0", b"t0", 0, 0, received_at=0.0))  # lifetime 0: discarded
    assert len(store) == 3
    assert store.peek("a", 50.0) is new
    assert store.pop("a", 50.0) is new
    assert store.pop("a", 50.0) is old
    assert store.pop("a", 50.0) is None
    assert store.pop("b", 100.0) is None  # expired
    assert len(store) == 0


def test_ticket_store_caps():
    store = TicketStore(max_per_server=2, max_servers=3)
    for i in range(5):
        store.add(Ticket("a", 0x1301, bytes([i]), b"t", 0, 100, received_at=float(i)))
    assert len(store) == 2
    for name in "bcde":
        store.add(Ticket(name, 0x1301, b"", b"t", 0, 100, received_at=0.0))
    assert len(store._by_name) == 3
    assert store.pop("a", 5.0) is None  # evicted as the oldest name
    assert store.pop("e", 5.0) is not None


# ---------------------------------------------------------------------------
# Sealer


def test_state_encoding_round_trip_and_strictness():
    for st in (_state(), _state(alpn=None, server_name=None, client_identity=b"", app_data=b""),
               _state(server_name="bücher.example"), _state(server_name="xn--bcher-kva.example")):
        assert TicketState.decode(st.encode()) == st
    data = _state().encode()
    for bad in (data[:-1], data + b"\x00", b"\x02" + data[1:], b""):
        with pytest.raises(ValueError):
            TicketState.decode(bad)


def test_seal_open_round_trip_carries_everything():
    sealer = TicketSealer(1000.0, rng=counter_rng())
    st = _state()
    ticket = sealer.seal(st, 1000.0)
    assert len(ticket) == len(st.encode()) + TicketSealer.OVERHEAD
    assert ticket[:8] == sealer.key_ids[0]
    opened = sealer.open(ticket, 1500.0)
    assert opened == st
    assert opened.psk == b"\x11" * 32 and opened.alpn == b"h3" and opened.max_early_data == 0xFFFFFFFF


def test_resumption_psk_survives_ticket():
    ks = KeySchedule(0x1302)
    psk = ks.resumption_psk(b"r" * 48, b"\x00\x01")
    sealer = TicketSealer(0.0)
    st = sealer.open(sealer.seal(_state(issued_at=0.0, cipher_suite=0x1302, psk=psk), 0.0), 1.0)
    assert st.psk == psk and st.cipher_suite == 0x1302


def test_open_returns_none_on_any_failure():
    sealer = TicketSealer(1000.0)
    ticket = sealer.seal(_state(), 1000.0)
    other = TicketSealer(1000.0)
    assert other.open(ticket, 1000.0) is None  # unknown key id
    for i in range(len(ticket)):  # every single-byte flip
        flipped = bytearray(ticket)
        flipped[i] ^= 0x01
        assert sealer.open(bytes(flipped), 1000.0) is None
    rnd = random.Random(1)
    for n in (0, 1, 8, 20, 35, 36, 37, 200):
        assert sealer.open(bytes(rnd.getrandbits(8) for _ in range(n)), 1000.0) is None
        assert sealer.open(ticket[:8] + bytes(rnd.getrandbits(8) for _ in range(n)), 1000.0) is None
    assert sealer.open(ticket[:-1], 1000.0) is None
    assert sealer.open(memoryview(ticket), 1000.0) is not None
    assert sealer.open(ticket, 1000.0 + 7200) is None  # expired by the state's lifetime
    assert sealer.open(ticket, 900.0) is None  # issued in the future


def test_rotation_previous_keys_open_old_keys_dropped():
    sealer = TicketSealer(0.0, rotation_interval=100.0, key_lifetime=1000.0, rng=counter_rng())
    first = sealer.seal(_state(issued_at=0.0, lifetime=5000), 0.0)
    second = sealer.seal(_state(issued_at=150.0, lifetime=5000), 150.0)  # auto-rotated
    assert first[:8] != second[:8]
    assert len(sealer.key_ids) == 2
    assert sealer.open(first, 500.0) is not None  # previous key still opens
    assert sealer.open(second, 500.0) is not None
    assert sealer.open(first, 1000.0) is None  # first key older than key_lifetime
    assert sealer.open(second, 1000.0) is not None
    sealer.seal(_state(issued_at=1200.0), 1200.0)  # rotation prunes dead keys
    assert first[:8] not in sealer.key_ids
    explicit = sealer.rotate(1201.0)
    assert sealer.key_ids[0] == explicit
    with pytest.raises(ValueError):
        TicketSealer(0.0, rotation_interval=10.0, key_lifetime=5.0)


def test_sealer_with_given_keys_is_shareable():
    keys = [(b"K" * 8, b"\x01" * 32, 0.0)]
    a = TicketSealer(0.0, keys=keys)
    b = TicketSealer(0.0, keys=keys)
    assert b.open(a.seal(_state(issued_at=10.0), 10.0), 20.0) is not None


# ---------------------------------------------------------------------------
# Anti-replay


def test_anti_replay_single_use_within_window():
    ar = AntiReplay(window=10.0, max_entries=100)
    assert ar.check_and_record(b"ticket-1", 0.0)
    assert not ar.check_and_record(b"ticket-1", 5.0)
    assert ar.check_and_record(b"ticket-2", 5.0)
    assert not ar.check_and_record(b"ticket-1", 9.99)
    assert ar.check_and_record(b"ticket-1", 10.0)  # window passed: freshness check guards now


def test_anti_replay_keep_until_ticket_expiry():
    ar = AntiReplay(window=10.0)
    assert ar.check_and_record(b"t", 0.0, expires_at=7200.0)
    assert not ar.check_and_record(b"t", 3600.0)
    assert ar.check_and_record(b"t", 7200.0)
    assert not ar.check_and_record(b"u", 10.0, expires_at=10.0)  # already expired: refuse


def test_anti_replay_cap_bounds_memory_and_refuses():
    ar = AntiReplay(window=10.0, max_entries=50)
    accepted = sum(ar.check_and_record(i.to_bytes(4, "big"), 0.0) for i in range(200))
    assert accepted == 50 and len(ar) == 50
    assert len(ar._order) <= 50
    # a replay of a recorded id is still caught while full
    assert not ar.check_and_record((0).to_bytes(4, "big"), 1.0)
    # after the window everything expires and room comes back
    assert ar.check_and_record(b"late", 10.0)
    assert len(ar) == 1


def test_anti_replay_many_entries_stay_bounded():
    ar = AntiReplay(window=1.0, max_entries=1000)
    now = 0.0
    for i in range(20000):
        now += 0.001
        ar.check_and_record(i.to_bytes(4, "big"), now)
    assert len(ar) <= 1000 and len(ar._order) <= 1000
