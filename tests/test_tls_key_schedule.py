# tls.key_schedule against known answers: RFC 5869 and Wycheproof HKDF
# through hkdf_extract + hkdf_expand; RFC 8448 sections 3-7 recomputed through
# Transcript and KeySchedule (every secret, transcript hash, traffic key,
# Finished, the §4 binder and early secrets, the §5 HRR message_hash); plus
# the exporter (§7.5), constant-time checks and Transcript behaviour.
import hashlib
import hmac

import pytest

from tls.key_schedule import (
    CIPHER_SUITES,
    KeySchedule,
    Transcript,
    export_keying_material,
    hkdf_expand,
    hkdf_expand_label,
    hkdf_extract,
    resumption_psk,
    transcript_hash,
)

from .vectors import h, load

SECTIONS = ["3", "4", "5", "6", "7"]


# ---------------------------------------------------------------------------
# HKDF


def test_rfc5869():
    for case in load("rfc5869_hkdf.json")["tests"]:
        name = case["hash"]
        salt = b"" if case["salt"] is None else h(case["salt"])
        prk = hkdf_extract(name, salt, h(case["ikm"]))
        assert prk == h(case["prk"]), case["test_case"]
        assert hkdf_expand(name, prk, h(case["info"]), case["length"]) == h(case["okm"])


@pytest.mark.parametrize("name,hash_name", [("hkdf_sha256_test.json", "sha256"),
                                            ("hkdf_sha384_test.json", "sha384")])
def test_wycheproof_hkdf(name, hash_name):
    count = 0
    for group in load(f"wycheproof/{name}")["testGroups"]:
        for t in group["tests"]:
            count += 1
            try:
                okm = hkdf_expand(hash_name, hkdf_extract(hash_name, h(t["salt"]), h(t["ikm"])),
                                  h(t["info"]), t["size"])
            except ValueError:
                assert t["result"] == "invalid", t["tcId"]
                continue
            assert t["result"] != "invalid", t["tcId"]
            assert okm == h(t["okm"]), t["tcId"]
    assert count > 50


def test_hkdf_expand_label_structure():
    # RFC 8446 §7.1: HkdfLabel = length || "tls13 " + label (vec8) || context (vec8).
    secret = bytes(range(32))
    info = b"\x00\x10" + bytes([len(b"tls13 key")]) + b"tls13 key" + b"\x00"
    assert hkdf_expand_label("sha256", secret, b"key", b"", 16) == hkdf_expand("sha256", secret, info, 16)
    with pytest.raises(ValueError):
        hkdf_expand_label("sha256", secret, b"x" * 250, b"", 16)


# ---------------------------------------------------------------------------
# RFC 8448


def _section(n):
    return load("rfc8448.json")["sections"][n]["summary"]


def _replay(n):
    """Walk one trace through Transcript + KeySchedule, collecting what we derive."""
    s = _section(n)
    secrets = s["secrets"]
    psk = h(secrets["early_secret_ikm"]) if n == "4" else None
    ks = KeySchedule(0x1301, psk)
    tr = Transcript("sha256")
    out = {"early_secret": ks.early_secret, "transcript": {}, "finished": {}}
    messages = s["handshake_messages"]
    client_hellos = 0
    server_finished_seen = False
    for m in messages:
        body = h(m["hex"])
        sender, kind = m["sender"], m["type"]
        if kind == "HelloRetryRequest":
            tr.replace_with_message_hash()  # §4.4.1: CH1 -> message_hash
        if kind == "Finished":
            base = out["s_hs"] if sender == "server" else out["c_hs"]
            th = tr.digest()
            vd = ks.finished_verify_data(base, th)
            out["finished"][sender] = (base, ks.finished_key(base), vd)
            assert body == b"\x14\x00\x00\x20" + vd, f"{sender} Finished"
            assert ks.verify_finished(base, th, vd)
        if kind == "NewSessionTicket":
            break  # post-handshake: not in the transcript of the secrets below
        tr.update(body)
        if kind == "ClientHello":
            client_hellos += 1
            if n == "4":
                out["c_e_traffic"] = ks.client_early_traffic_secret(tr.digest())
                out["e_exp"] = ks.early_exporter_master_secret(tr.digest())
                out["th_early"] = tr.digest()
        if kind == "ServerHello":
            ks.derive_handshake_secret(h(secrets["ecdhe_shared_secret"]))
            th = tr.digest()
            out["th_hs"] = th
            out["c_hs"] = ks.client_handshake_traffic_secret(th)
            out["s_hs"] = ks.server_handshake_traffic_secret(th)
        if kind == "Finished" and sender == "server":
            server_finished_seen = True
            ks.derive_master_secret()
            th = tr.digest()
            out["th_ap"] = th
            out["c_ap"] = ks.client_application_traffic_secret_0(th)
            out["s_ap"] = ks.server_application_traffic_secret_0(th)
            out["exp"] = ks.exporter_master_secret(th)
        if kind == "Finished" and sender == "client":
            th = tr.digest()
            out["th_res"] = th
            out["res"] = ks.resumption_master_secret(th)
    assert server_finished_seen
    out["ks"] = ks
    out["client_hellos"] = client_hellos
    return out


@pytest.mark.parametrize("n", SECTIONS)
def test_rfc8448_secrets(n):
    s = _section(n)
    secrets, ths = s["secrets"], s["transcript_hashes"]
    r = _replay(n)
    ks = r["ks"]
    assert ks.early_secret == h(secrets["early_secret"])
    assert ks.handshake_secret == h(secrets["handshake_secret"])
    assert ks.master_secret == h(secrets["master_secret"])
    assert r["c_hs"] == h(secrets["client_handshake_traffic_secret"])
    assert r["s_hs"] == h(secrets["server_handshake_traffic_secret"])
    assert r["c_ap"] == h(secrets["client_application_traffic_secret_0"])
    assert r["s_ap"] == h(secrets["server_application_traffic_secret_0"])
    assert r["exp"] == h(secrets["exporter_master_secret"])
    assert r["res"] == h(secrets["resumption_master_secret"])
    # the "derived" intermediate secrets
    from tls.key_schedule import derive_secret, empty_hash

    e = empty_hash("sha256")
    assert derive_secret("sha256", ks.early_secret, b"derived", e) == h(secrets["derived_secret_for_handshake"])
    assert derive_secret("sha256", ks.handshake_secret, b"derived", e) == h(secrets["derived_secret_for_master"])
    # transcript hashes as printed by the RFC
    assert r["th_hs"] == h(ths["client_handshake_traffic_secret"]) == h(ths["server_handshake_traffic_secret"])
    assert r["th_ap"] == h(ths["client_application_traffic_secret_0"]) == h(ths["exporter_master_secret"])
    assert r["th_res"] == h(ths["resumption_master_secret"])
    # finished keys
    for side in ("server", "client"):
        base, fkey, vd = r["finished"][side]
        f = s["finished"][side]
        assert (base, fkey, vd) == (h(f["base_key"]), h(f["finished_key"]), h(f["verify_data"]))
    # traffic keys
    names = {"server_handshake": "s_hs", "client_handshake": "c_hs", "server_application": "s_ap",
             "client_application": "c_ap", "client_early": "c_e_traffic"}
    for label, tk in s["traffic_keys"].items():
        secret = r[names[label]]
        assert secret == h(tk["secret"])
        assert ks.traffic_key_iv(secret) == (h(tk["key"]), h(tk["iv"]))


def test_rfc8448_s3_resumption_psk_feeds_s4():
    s3 = _section("3")["secrets"]
    rms, nonce = h(s3["resumption_master_secret"]), h(s3["ticket_nonce"])
    psk = KeySchedule(0x1301).resumption_psk(rms, nonce)
    assert psk == h(s3["resumption_psk"])
    assert resumption_psk("sha256", rms, nonce) == psk
    assert psk == h(_section("4")["secrets"]["early_secret_ikm"])


def test_rfc8448_s4_binder_and_early_secrets():
    s = _section("4")
    b, secrets = s["psk_binder"], s["secrets"]
    ks = KeySchedule(0x1301, h(secrets["early_secret_ikm"]))
    assert ks.early_secret == h(secrets["early_secret"])
    binder_key = ks.binder_key(external=False)
    assert binder_key == h(b["binder_key"])
    assert ks.finished_key(binder_key) == h(b["finished_key"])
    prefix = h(b["client_hello_prefix"])
    th = transcript_hash("sha256", prefix)
    assert th == h(b["binder_transcript_hash"])
    assert Transcript("sha256").digest_with(prefix) == th
    binder = ks.compute_binder(binder_key, th)
    assert binder == h(b["binder"])
    # the binder sits at the end of the ClientHello sent: prefix || binders list
    ch = h(s["handshake_messages"][0]["hex"])
    assert ch == prefix + b"\x00\x21\x20" + binder
    assert ks.verify_binder(binder_key, th, binder)
    assert not ks.verify_binder(binder_key, th, binder[:-1] + bytes([binder[-1] ^ 1]))
    assert not ks.verify_binder(ks.binder_key(external=True), th, binder)
    r = _replay("4")
    assert r["c_e_traffic"] == h(secrets["client_early_traffic_secret"])
    assert r["e_exp"] == h(secrets["early_exporter_master_secret"])
    assert r["th_early"] == h(s["transcript_hashes"]["client_early_traffic_secret"])


def test_rfc8448_s5_hrr_message_hash():
    s = _section("5")
    msgs = s["handshake_messages"]
    ch1, hrr = h(msgs[0]["hex"]), h(msgs[1]["hex"])
    assert msgs[1]["type"] == "HelloRetryRequest"
    tr = Transcript("sha256")
    tr.update(ch1)
    tr.replace_with_message_hash()
    synthetic = b"\xfe\x00\x00\x20" + hashlib.sha256(ch1).digest()
    assert tr.digest() == hashlib.sha256(synthetic).digest()
    tr.update(hrr)
    for m in msgs[2:4]:
        tr.update(h(m["hex"]))
    assert tr.digest() == h(s["transcript_hashes"]["client_handshake_traffic_secret"])
    assert _replay("5")["client_hellos"] == 2


# ---------------------------------------------------------------------------
# Transcript, Finished, exporters


def test_transcript_deferred_hash_and_copy():
    a, b, c = b"\x01\x00\x00\x01x", b"\x02\x00\x00\x01y", b"\x08\x00\x00\x00"
    t = Transcript(None)
    t.update(a)
    with pytest.raises(ValueError):
        t.digest()
    t.select_hash("sha384")
    t.update(b)
    fork = t.copy()
    fork.update(c)
    assert t.digest() == hashlib.sha384(a + b).digest()
    assert fork.digest() == hashlib.sha384(a + b + c).digest()
    assert t.digest_with(c) == fork.digest()
    assert t.digest() == hashlib.sha384(a + b).digest()  # digest_with did not record
    with pytest.raises(ValueError):
        t.select_hash("sha256")


def test_sha384_message_hash_length():
    ch1 = b"\x01\x00\x00\x02ab"
    t = Transcript("sha384")
    t.update(ch1)
    t.replace_with_message_hash()
    assert t.digest() == hashlib.sha384(b"\xfe\x00\x00\x30" + hashlib.sha384(ch1).digest()).digest()


def test_export_keying_material_matches_rfc8446_7_5():
    secret = bytes(range(32))
    label, context = b"EXPORTER-Test", b"ctx"
    # §7.5: HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter", Hash(context), L)
    inner = hkdf_expand_label("sha256", secret, label, hashlib.sha256(b"").digest(), 32)
    expected = hkdf_expand_label("sha256", inner, b"exporter", hashlib.sha256(context).digest(), 42)
    assert export_keying_material("sha256", secret, label, context, 42) == expected
    assert KeySchedule(0x1301).export_keying_material(secret, "EXPORTER-Test", context, 42) == expected
    assert export_keying_material("sha256", secret, label, b"", 42) != expected


def test_exporter_from_rfc8448_s3_is_usable():
    r = _replay("3")
    ks = r["ks"]
    a = ks.export_keying_material(r["exp"], b"EXPORTER-a", b"", 32)
    b = ks.export_keying_material(r["exp"], b"EXPORTER-b", b"", 32)
    assert len(a) == 32 and a != b


def test_verify_finished_uses_compare_digest(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(x, y):
        calls.append(1)
        return real(x, y)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    ks = KeySchedule(0x1302)
    vd = ks.finished_verify_data(b"k" * 48, b"t" * 48)
    assert len(vd) == 48
    assert ks.verify_finished(b"k" * 48, b"t" * 48, vd)
    assert not ks.verify_finished(b"k" * 48, b"t" * 48, vd[:-1])
    assert len(calls) == 2


def test_psk_ke_handshake_secret_uses_zeros():
    ks = KeySchedule(0x1301, b"p" * 32)
    a = ks.derive_handshake_secret(None)
    assert a == KeySchedule(0x1301, b"p" * 32).derive_handshake_secret(bytes(32))


def test_stage_order_enforced_and_unknown_suite():
    ks = KeySchedule(0x1303)
    with pytest.raises(ValueError):
        ks.client_handshake_traffic_secret(bytes(32))
    with pytest.raises(ValueError):
        ks.derive_master_secret()
    with pytest.raises(ValueError):
        KeySchedule(0x1304)
    assert set(CIPHER_SUITES) == {0x1301, 0x1302, 0x1303}


def test_key_update_chain():
    ks = KeySchedule(0x1301)
    s0 = bytes(32)
    s1 = ks.next_application_traffic_secret(s0)
    assert s1 == hkdf_expand_label("sha256", s0, b"traffic upd", b"", 32)
