# The interop runner's judges, on captures whose truth we know: our client
# and server run in memory (tests/quic_pair.py), what they put on the wire
# is written as a pcap, and interop/trace.py reads it back through tshark
# with the key log.  The checks of interop/testcases.py must pass what is
# right and fail what is wrong (a changed file, a second handshake, no key
# update, no Retry), and the report must say so in every format.
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from interop.report import Result, html_page, markdown, regressions, text_table, write_results
from interop.testcases import (
    BY_NAME,
    FAILED,
    PASSED,
    Evidence,
    check_amplification,
    check_handshake,
    check_keyupdate,
    check_resumption,
    check_retry,
    handshakes,
    write_files,
)
from interop.trace import FRAME_CRYPTO, QUIC_V1, TLS_CERTIFICATE, Packet, read_trace
from tests.pcap import PcapWriter, tap
from tests.quic_pair import CLIENT_ADDR, SERVER_ADDR, Pair, client_configuration

CLIENT = ("10.0.0.1", CLIENT_ADDR[1])
SERVER = ("10.0.0.2", SERVER_ADDR[1])
FILE = "abcdefghij"


def _capture(tmp_path: Path, key_update: bool = False) -> tuple[Path, Path, bytes]:
    """An hq-style exchange in memory: the request, a 30 KB answer, captured."""
    keylog = tmp_path / "keys.log"
    answer = bytes(range(256)) * 120
    with open(keylog, "w") as log:
        pair = Pair(client_config=client_configuration(secrets_log_file=log))
        wire = PcapWriter()
        tap(pair, wire, CLIENT, SERVER)
        pair.handshake()
        sid = pair.client.get_next_available_stream_id()
        pair.client.send_stream_data(sid, f"GET /{FILE}\r\n".encode(), end_stream=True)
        pair.drive()
        if key_update:
            pair.client.request_key_update()
        pair.server.send_stream_data(sid, answer, end_stream=True)
        pair.drive()
    assert pair.received("client", sid) == answer
    pcap = tmp_path / "quic.pcap"
    wire.write(pcap)
    return pcap, keylog, answer


def _evidence(tmp_path: Path, pcap: Path, keylog: Path, answer: bytes, case: str) -> Evidence:
    www, downloads = tmp_path / "www", tmp_path / "downloads"
    www.mkdir(exist_ok=True)
    downloads.mkdir(exist_ok=True)
    (www / FILE).write_bytes(answer)
    (downloads / FILE).write_bytes(answer)
    import hashlib

    packets = read_trace(pcap, SERVER[1], keylog)
    return Evidence(BY_NAME[case], www, downloads, {FILE: hashlib.sha256(answer).hexdigest()}, packets, packets)


def test_trace_reads_every_packet_with_its_direction_and_contents(tmp_path):
    pcap, keylog, _ = _capture(tmp_path)
    packets = read_trace(pcap, SERVER[1], keylog)
    kinds = {(p.kind, p.from_client) for p in packets}
    assert {("initial", True), ("initial", False), ("handshake", False), ("handshake", True),
            ("1rtt", True), ("1rtt", False)} <= kinds
    assert all(p.decrypted for p in packets)
    assert {p.version for p in packets if p.kind != "1rtt"} == {QUIC_V1}
    server_handshake = [m for p in packets if p.kind == "handshake" and not p.from_client for m in p.tls_messages]
    assert TLS_CERTIFICATE in server_handshake
    assert any(FRAME_CRYPTO in p.frames for p in packets if p.kind == "initial")
    assert {p.cipher_suite for p in packets if p.cipher_suite} == {0x1301}
    assert sum(p.stream_bytes for p in packets if not p.from_client) >= 30_720
    # Without the key log the 1-RTT packets stay closed.
    closed = read_trace(pcap, SERVER[1], None)
    assert not any(p.decrypted for p in closed if p.kind == "1rtt")


def test_checks_pass_what_is_right_and_fail_what_is_wrong(tmp_path):
    pcap, keylog, answer = _capture(tmp_path)
    ev = _evidence(tmp_path, pcap, keylog, answer, "handshake")
    assert check_handshake(ev).result == PASSED
    assert check_amplification(ev).result == PASSED
    # No key update happened, no Retry was sent, there was one handshake.
    assert check_keyupdate(ev).result == FAILED
    assert "Retry" in check_retry(ev).reason
    assert "handshakes" in check_resumption(ev).reason
    # A file that differs by one byte fails, naming it.
    (ev.downloads / FILE).write_bytes(b"x" + answer[1:])
    verdict = check_handshake(ev)
    assert verdict.result == FAILED and FILE in verdict.reason
    (ev.downloads / FILE).unlink()
    assert "missing" in check_handshake(ev).reason


def _wire(frame, from_client, kind, dcid, scid, decrypted=True):
    return Packet(frame=frame, time=float(frame), src="c" if from_client else "s", dst="s" if from_client else "c",
                  sport=5000 if from_client else 443, dport=443 if from_client else 5000, from_client=from_client,
                  ecn=0, kind=kind, version=None if kind == "1rtt" else QUIC_V1, dcid=dcid,
                  scid="" if kind == "1rtt" else scid, length=1200, datagram=1200, decrypted=decrypted)


def test_newtoken_wants_the_second_connection_back_with_a_token_and_no_retry():
    from dataclasses import replace

    from interop.testcases import check_newtoken

    own = check_newtoken.__wrapped__  # (files, handshakes and the Retry are _basic's)
    retry = replace(_wire(2, False, "retry", "c1", "r1"), token="aa11")
    first = [_wire(1, True, "initial", "d1", "c1"), retry, replace(_wire(3, True, "initial", "r1", "c1"), token="aa11")]
    back = replace(_wire(10, True, "initial", "d2", "c2"), token="bb22")  # the NEW_TOKEN token
    assert own(SimpleNamespace(server_side=first + [back])).result == PASSED
    late = replace(_wire(11, False, "retry", "c2", "r2"), token="cc33")
    assert "after the client came back" in own(SimpleNamespace(server_side=first + [back, late])).reason
    assert "no client Initial" in own(SimpleNamespace(server_side=first + [_wire(10, True, "initial", "d2", "c2")])).reason


def test_handshakes_are_server_initials_the_client_answered():
    packets = [
        # An ordinary handshake.
        _wire(1, True, "initial", "aa", "c1"), _wire(2, False, "initial", "c1", "s1"),
        _wire(3, True, "handshake", "s1", "c1"),
        # Its server Initial unopened by tshark (the sim corrupted the client's
        # first Initial), but the client went on to address its SCID: counted.
        _wire(4, True, "initial", "bb", "c2", decrypted=False), _wire(5, True, "initial", "bb", "c2"),
        _wire(6, False, "initial", "c2", "s2", decrypted=False), _wire(7, True, "1rtt", "s2", ""),
        # A server's Initial no client ever answered (its close of a connection
        # it made of a corrupted datagram): not a handshake.
        _wire(8, False, "initial", "c9", "s9", decrypted=False),
    ]
    ev = SimpleNamespace(server_side=packets)
    assert handshakes(ev) == 2


def test_key_update_is_seen_from_both_sides(tmp_path):
    pcap, keylog, answer = _capture(tmp_path, key_update=True)
    ev = _evidence(tmp_path, pcap, keylog, answer, "keyupdate")
    verdict = check_keyupdate(ev)
    assert verdict.result == PASSED, verdict.reason


def test_amplification_check_counts_datagrams(tmp_path):
    pcap, keylog, answer = _capture(tmp_path)
    ev = _evidence(tmp_path, pcap, keylog, answer, "amplificationlimit")
    # Pretend the client's Initial was a tenth of its size: the server's
    # flight is then far over three times what it had.
    for p in ev.server_side:
        if p.from_client and p.kind == "initial":
            p.datagram //= 10
    verdict = check_amplification(ev)
    assert verdict.result == FAILED and "having received" in verdict.reason


def test_files_written_are_what_the_digests_say(tmp_path):
    digests = write_files(tmp_path, [("a", 10), ("b", 0), ("c", 70_000)], seed=3)
    import hashlib

    assert {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in "abc"} == digests
    assert (tmp_path / "c").stat().st_size == 70_000


def test_report_formats_and_regressions(tmp_path):
    results = [
        Result("pyquic", "aioquic", "handshake", PASSED, directory="runs/a"),
        Result("pyquic", "aioquic", "retry", FAILED, "no Retry was sent", directory="runs/b"),
        Result("aioquic", "pyquic", "ecn", "unsupported", "client pyquic does not support ecn", directory="runs/c"),
        Result("aioquic", "pyquic", "goodput", PASSED, value=8123.0, directory="runs/d"),
    ]
    servers, clients = ["pyquic", "aioquic"], ["pyquic", "aioquic"]
    table = text_table(results, servers, clients)
    assert "✓H" in table and "✕S" in table and "?E" in table
    md = markdown(results, servers, clients, "namespaces")
    assert "| pyquic |" in md and "no Retry was sent" in md and "8123 kbit/s" in md
    page = html_page(results, servers, clients, "namespaces")
    assert "href='runs/b/'" in page and "#f4c0c0" in page
    write_results(tmp_path, results, servers, clients, "namespaces")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["results"]) == 4 and saved["mode"] == "namespaces"
    # A cell that passed before and fails now is a regression; the rest are not.
    now = [Result("pyquic", "aioquic", "handshake", FAILED, "client exited 1"),
           Result("pyquic", "aioquic", "retry", FAILED, "still")]
    worse = regressions(now, tmp_path / "results.json")
    assert len(worse) == 1 and "handshake" in worse[0]
    assert regressions(now, tmp_path / "missing.json") == []


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_case_is_complete(name):
    case = BY_NAME[name]
    import random

    files = case.files(random.Random(1))
    assert files and all(size >= 0 and name for name, size in files)
    assert case.abbrev and case.timeout > 0 and case.scenario.split()[0] in {
        "simple-p2p", "drop-rate", "corrupt-rate", "droplist", "blackhole", "rebind"}


def test_export_keeps_verdicts_and_logs_not_captures(tmp_path):
    from interop.report import export

    src, dst = tmp_path / "full", tmp_path / "slim"
    results = [Result("pyquic", "ngtcp2", "transfer", FAILED, "client exited 1", directory="runs/r")]
    write_results(src, results, ["pyquic"], ["ngtcp2"], "namespaces")
    run = src / "runs" / "r"
    (run / "logs").mkdir(parents=True)
    (run / "net").mkdir()
    (run / "result.json").write_text("{}")
    (run / "logs" / "client.log").write_bytes(b"x" * 300_000 + b"the end")
    (run / "net" / "sim.log").write_text("STATS {}")
    (run / "net" / "sim_client_side.pcap").write_bytes(b"\0" * 1000)
    export(src, dst)
    kept = sorted(p.name for p in (dst / "runs" / "r").iterdir())
    assert kept == ["client.log", "result.json", "sim.log"]
    log = (dst / "runs" / "r" / "client.log").read_bytes()
    assert log.endswith(b"the end") and len(log) == 200_000
    assert (dst / "results.json").read_text() == (src / "results.json").read_text()


def test_merge_puts_new_cells_over_old_and_keeps_both_runs(tmp_path):
    from interop.report import merge

    base, new, out = tmp_path / "base", tmp_path / "new", tmp_path / "out"
    write_results(base, [Result("pyquic", "qh3", "handshake", PASSED, directory="runs/a"),
                         Result("pyquic", "qh3", "crosstraffic", FAILED, "too slow", directory="runs/b")],
                  ["pyquic"], ["qh3"], "namespaces")
    write_results(new, [Result("pyquic", "qh3", "crosstraffic", PASSED, "4100 kbit/s", 4100.0, directory="runs/b"),
                        Result("aioquic", "pyquic", "crosstraffic", PASSED, directory="runs/c")],
                  ["aioquic"], ["pyquic"], "namespaces")
    for src, name, text in ((base, "a", "old a"), (base, "b", "old b"), (new, "b", "new b"), (new, "c", "new c")):
        (src / "runs" / name).mkdir(parents=True)
        (src / "runs" / name / "result.json").write_text(text)
    merge(base, new, out)
    saved = json.loads((out / "results.json").read_text())
    cells = {(r["server"], r["client"], r["case"]): r["result"] for r in saved["results"]}
    assert cells == {("pyquic", "qh3", "handshake"): PASSED, ("pyquic", "qh3", "crosstraffic"): PASSED,
                     ("aioquic", "pyquic", "crosstraffic"): PASSED}
    assert saved["servers"] == ["pyquic", "aioquic"] and saved["clients"] == ["qh3", "pyquic"]
    assert [(out / "runs" / n / "result.json").read_text() for n in "abc"] == ["old a", "new b", "new c"]
    assert "4100 kbit/s" in (out / "results.md").read_text()
