# The quic-interop-runner's test cases, as data plus one check each.  Owns:
# per case its name and abbreviation, the TESTCASE each endpoint role is
# told (several cases run as "transfer" at the endpoints, as in the
# reference), the network scenario, the files the server holds (sizes,
# names), whether it runs over IPv6, its time limit, and the check that
# turns the evidence (downloaded files, the decrypted capture on each side
# of the sim) into a verdict with its reason.  What the checks look for is
# what the reference runner looks for; the code and wording are ours.
from __future__ import annotations

import functools
import hashlib
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .trace import (
    FRAME_CRYPTO,
    FRAME_PATH_CHALLENGE,
    FRAME_PATH_RESPONSE,
    QUIC_V1,
    QUIC_V2,
    TLS_CERTIFICATE,
    Packet,
)

KB = 1 << 10
MB = 1 << 20
CHACHA20 = 0x1303
MAX_STREAMS_BIDI = 0x12

DEFAULT_SCENARIO = "simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25"
LOSSY = "--delay=15ms --bandwidth=10Mbps --queue=25"

PASSED, FAILED, UNSUPPORTED = "passed", "failed", "unsupported"


@dataclass
class Verdict:
    result: str  # passed, failed, unsupported
    reason: str = ""
    value: Optional[float] = None  # a measurement's figure (goodput, kbit/s)


@dataclass
class Evidence:
    """What a run left behind, for a check to judge."""

    case: "Case"
    www: Path
    downloads: Path
    files: dict[str, str]  # name -> SHA-256 of what the server holds
    client_side: list[Packet]  # the capture where the client's link meets the sim
    server_side: list[Packet]  # the capture where the sim meets the server's link


@dataclass(frozen=True)
class Case:
    name: str
    abbrev: str
    files: Callable[[random.Random], list[tuple[str, int]]]
    check: Callable[[Evidence], Verdict]
    scenario: str = DEFAULT_SCENARIO
    client_testcase: str = ""  # what the client's TESTCASE says (default: the name)
    server_testcase: str = ""
    ipv6: bool = False
    timeout: float = 60.0
    measurement: bool = False
    cross_traffic: bool = False  # a TCP bulk flow shares the link (crosstraffic)
    description: str = ""

    def testcase(self, role: str) -> str:
        named = self.client_testcase if role == "client" else self.server_testcase
        return named or self.name


# -- files ------------------------------------------------------------------------------------


def random_name(rng: random.Random, length: int = 10) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def sized(*sizes: int, name_length: int = 10) -> Callable[[random.Random], list[tuple[str, int]]]:
    return lambda rng: [(random_name(rng, name_length), size) for size in sizes]


def many(count: int, size: int, name_length: int = 10) -> Callable[[random.Random], list[tuple[str, int]]]:
    return lambda rng: [(random_name(rng, name_length), size) for _ in range(count)]


def write_files(www: Path, files: list[tuple[str, int]], seed: int) -> dict[str, str]:
    """Random contents; returns name -> SHA-256."""
    rng = random.Random(seed)
    digests = {}
    for name, size in files:
        data = rng.randbytes(size)
        (www / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


# -- shared checks ----------------------------------------------------------------------------


def _files_ok(ev: Evidence) -> Optional[str]:
    """None when every file arrived byte for byte (and nothing else did)."""
    present = {p.name for p in ev.downloads.iterdir() if p.is_file()} if ev.downloads.exists() else set()
    missing = sorted(set(ev.files) - present)
    if missing:
        return f"{len(missing)} of {len(ev.files)} files missing (first: {missing[0]})"
    for name, digest in ev.files.items():
        got = hashlib.sha256((ev.downloads / name).read_bytes()).hexdigest()
        if got != digest:
            size = (ev.downloads / name).stat().st_size
            return f"{name}: content differs ({size} bytes downloaded)"
    return None


def server_initials(ev: Evidence) -> list[Packet]:
    return [p for p in ev.server_side if p.kind == "initial" and not p.from_client]


def handshakes(ev: Evidence) -> int:
    """Connections: distinct source connection IDs of the server's Initial
    packets that the client then addressed (RFC 9000 §7.2: a client takes
    the server's SCID as its DCID once it has the server's Initial).  The
    reference counts every server Initial's SCID; this leaves out an Initial
    no client ever answered: aioquic's server makes a connection of a
    corrupted datagram it cannot even decrypt and closes it in an Initial
    at shutdown (no handshake happened).  It does not depend on tshark
    opening the server's Initials, which it may fail to do once the sim
    has corrupted the client's first Initial of a connection."""
    answered = {p.dcid for p in ev.server_side if p.from_client}
    return len({p.scid for p in server_initials(ev)} & answered)


def _versions(ev: Evidence) -> set[int]:
    return {p.version for p in server_initials(ev) if p.version is not None}


def _basic(ev: Evidence, *, connections: int = 1, version: int = QUIC_V1, retry: Optional[bool] = False
           ) -> Optional[str]:
    """Files, the server's version, the number of handshakes, and (unless
    retry is None) whether a Retry was sent."""
    problem = _files_ok(ev)
    if problem:
        return problem
    versions = _versions(ev)
    if versions != {version}:
        return f"server Initials carry versions {sorted(hex(v) for v in versions)}, expected {hex(version)}"
    n = handshakes(ev)
    if n != connections:
        return f"{n} handshakes, expected {connections}"
    retries = [p for p in ev.server_side if p.kind == "retry"]
    if retry is False and retries:
        return "a Retry was sent, none was expected"
    if retry is True and not retries:
        return "no Retry was sent"
    return None


def _verdict(problem: Optional[str], ok: str = "") -> Verdict:
    return Verdict(FAILED, problem) if problem else Verdict(PASSED, ok)


def after_basic(**basic) -> Callable[[Callable[[Evidence], Verdict]], Callable[[Evidence], Verdict]]:
    """A check whose own evidence is looked at only once _basic(**basic)
    (files, version, handshakes, Retry) has found nothing wrong."""
    def wrap(own: Callable[[Evidence], Verdict]) -> Callable[[Evidence], Verdict]:
        @functools.wraps(own)
        def check(ev: Evidence) -> Verdict:
            problem = _basic(ev, **basic)
            return Verdict(FAILED, problem) if problem else own(ev)
        return check
    return wrap


def check_handshake(ev: Evidence) -> Verdict:
    return _verdict(_basic(ev))


def check_transfer(ev: Evidence) -> Verdict:
    return _verdict(_basic(ev))


@after_basic()
def check_longrtt(ev: Evidence) -> Verdict:
    # With 1.5 s of RTT the client's first PTO fires before any answer: it
    # must have sent its ClientHello in more than one datagram.
    first_answer = min((p.time for p in ev.client_side if not p.from_client), default=float("inf"))
    sent = {p.frame for p in ev.client_side
            if p.from_client and p.kind == "initial" and FRAME_CRYPTO in p.frames and p.time < first_answer}
    if len(sent) < 2:
        return Verdict(FAILED, f"the ClientHello went out {len(sent)} time(s) before the first answer")
    return Verdict(PASSED, f"ClientHello sent in {len(sent)} datagrams before the first answer")


@after_basic()
def check_chacha20(ev: Evidence) -> Verdict:
    suites = {p.cipher_suite for p in ev.server_side if p.cipher_suite is not None}
    if suites != {CHACHA20}:
        return Verdict(FAILED, f"ServerHello cipher suites {sorted(hex(s) for s in suites)}, expected 0x1303")
    return Verdict(PASSED)


@after_basic()
def check_multiplexing(ev: Evidence) -> Verdict:
    raised = sum(p.frames.count(MAX_STREAMS_BIDI) for p in ev.server_side if not p.from_client)
    return Verdict(PASSED, f"{len(ev.files)} streams, {raised} MAX_STREAMS frames from the server")


@after_basic(retry=True)
def check_retry(ev: Evidence) -> Verdict:
    tokens = {p.token for p in ev.server_side if p.kind == "retry" and p.token}
    if not tokens:
        return Verdict(FAILED, "the Retry carried no token")
    used = [p for p in ev.server_side if p.from_client and p.kind == "initial" and p.token in tokens]
    if not used:
        return Verdict(FAILED, "no client Initial carried the Retry's token")
    return Verdict(PASSED, "the Retry's token came back in the client's Initial")


def _handshake_packets_by_connection(ev: Evidence) -> list[list[Packet]]:
    """The server's Handshake packets grouped by source connection ID, in order of appearance."""
    groups: dict[str, list[Packet]] = {}
    for p in ev.server_side:
        if p.kind == "handshake" and not p.from_client:
            groups.setdefault(p.scid, []).append(p)
    return list(groups.values())


@after_basic(connections=2)
def check_resumption(ev: Evidence) -> Verdict:
    groups = _handshake_packets_by_connection(ev)
    if len(groups) != 2:
        return Verdict(FAILED, f"server Handshake packets of {len(groups)} connections, expected 2")
    if not any(p.decrypted for g in groups for p in g):
        return Verdict(FAILED, "the Handshake packets could not be decrypted (key log missing?)")
    first = any(TLS_CERTIFICATE in p.tls_messages for p in groups[0])
    second = any(TLS_CERTIFICATE in p.tls_messages for p in groups[1])
    if not first:
        return Verdict(FAILED, "no Certificate in the first handshake")
    if second:
        return Verdict(FAILED, "a Certificate in the second handshake: not resumed")
    return Verdict(PASSED, "second handshake without a Certificate")


@after_basic(connections=2, retry=True)
def check_newtoken(ev: Evidence) -> Verdict:
    """The server validates every address: the first connection meets a
    Retry; the second brings back the NEW_TOKEN token the first was given
    (an Initial token that is no Retry's) and meets none."""
    retries = [p for p in ev.server_side if p.kind == "retry"]
    retry_tokens = {p.token for p in retries}
    brought = [p for p in ev.server_side
               if p.from_client and p.kind == "initial" and p.token and p.token not in retry_tokens]
    if not brought:
        return Verdict(FAILED, "no client Initial carried a token that was not a Retry's")
    since = min(p.time for p in brought)
    late = [p for p in retries if p.time > since]
    if late:
        return Verdict(FAILED, f"{len(late)} Retry packets after the client came back with its token")
    return Verdict(PASSED, "the second connection came back with a NEW_TOKEN token and met no Retry")


@after_basic(connections=2)
def check_zerortt(ev: Evidence) -> Verdict:
    early = sum(p.length for p in ev.server_side if p.from_client and p.kind == "0rtt")
    if early == 0:
        return Verdict(FAILED, "no 0-RTT packets")
    # The requests belong in 0-RTT: what the client sends in 1-RTT STREAM
    # frames from its first 0-RTT packet on must be small beside them.
    start = min(p.time for p in ev.server_side if p.from_client and p.kind == "0rtt")
    request_bytes = sum(len(name) + 6 for name in ev.files)  # "GET /" name "\r\n"
    late = sum(p.stream_bytes for p in ev.server_side if p.from_client and p.kind == "1rtt" and p.time >= start)
    if late > request_bytes / 2:
        return Verdict(FAILED, f"{late} stream bytes in 1-RTT after resumption, requests are ~{request_bytes}")
    return Verdict(PASSED, f"{early} bytes of 0-RTT packets, {late} request bytes in 1-RTT")


@after_basic()
def check_keyupdate(ev: Evidence) -> Verdict:
    one_rtt = [p for p in ev.server_side if p.kind == "1rtt"]
    if one_rtt and not any(p.decrypted for p in one_rtt):
        return Verdict(FAILED, "1-RTT packets could not be decrypted (key log missing?)")
    client = any(p.key_phase == 1 and p.decrypted for p in one_rtt if p.from_client)
    server = any(p.key_phase == 1 and p.decrypted for p in one_rtt if not p.from_client)
    if not (client and server):
        return Verdict(FAILED, f"key phase 1 seen from client: {client}, from server: {server}")
    return Verdict(PASSED, "key phase 1 from both sides")


@after_basic()
def check_ecn(ev: Evidence) -> Verdict:
    reasons = []
    for who, from_client in (("client", True), ("server", False)):
        marked = sum(1 for p in ev.server_side if p.from_client == from_client and p.ecn in (1, 2))
        counts = [p.ack_ecn for p in ev.server_side if p.from_client == from_client and p.ack_ecn]
        if not marked:
            reasons.append(f"{who} sent no ECT-marked packets")
        if not counts or not any(sum(c) for c in counts):
            reasons.append(f"{who} sent no ACK_ECN frames with counts")
    return _verdict("; ".join(reasons) or None, "ECT marks and ACK_ECN counts from both sides")


@after_basic()
def check_amplification(ev: Evidence) -> Verdict:
    # Until the client's first Handshake packet reaches it, the server may
    # send at most three times what it has received (RFC 9000 §8.1).
    received = sent = 0
    counted: set[tuple[int, bool]] = set()
    for p in sorted(ev.server_side, key=lambda p: (p.time, p.frame)):
        if p.from_client and p.kind == "handshake":
            break
        if (p.frame, p.from_client) in counted:
            continue
        counted.add((p.frame, p.from_client))
        if p.from_client:
            received += p.datagram
        else:
            sent += p.datagram
            if sent > 3 * received:
                return Verdict(FAILED, f"server sent {sent} bytes having received {received}")
    return Verdict(PASSED, f"server sent {sent} bytes for {received} received before validation")


def check_handshakeloss(ev: Evidence) -> Verdict:
    return _verdict(_basic(ev, connections=len(ev.files), retry=None))


@after_basic()
def check_ipv6(ev: Evidence) -> Verdict:
    if not ev.server_side or not all(":" in p.src for p in ev.server_side):
        return Verdict(FAILED, "not every packet went over IPv6")
    return Verdict(PASSED)


def check_v2(ev: Evidence) -> Verdict:
    """Compatible version negotiation (RFC 9368) to v2: the client starts
    with v1, the server answers in v2, and both sides' Handshake packets are
    v2 only."""
    problem = _files_ok(ev)
    if problem:
        return Verdict(FAILED, problem)
    if handshakes(ev) != 1:
        return Verdict(FAILED, f"{handshakes(ev)} handshakes, expected 1")

    def versions(from_client: bool, kind: str) -> set:
        return {p.version for p in ev.server_side if p.from_client == from_client and p.kind == kind}

    if QUIC_V1 not in versions(True, "initial"):
        return Verdict(FAILED, f"client Initials carry {sorted(map(hex, versions(True, 'initial')))}, no v1")
    if QUIC_V2 not in versions(False, "initial"):
        return Verdict(FAILED, f"server Initials carry {sorted(map(hex, versions(False, 'initial')))}, no v2")
    for who, from_client in (("client", True), ("server", False)):
        if versions(from_client, "handshake") != {QUIC_V2}:
            return Verdict(FAILED, f"{who} Handshake packets carry "
                                   f"{sorted(map(hex, versions(from_client, 'handshake')))}, expected v2 only")
    return Verdict(PASSED, "client started in v1, both moved to v2")


def _paths_challenged(ev: Evidence) -> Optional[str]:
    """Every client address the server saw after the first is challenged by
    the server (PATH_CHALLENGE to it) and answered (PATH_RESPONSE from it)."""
    tuples: list[tuple[str, int]] = []
    for p in ev.server_side:
        if p.from_client and p.kind == "1rtt" and (p.src, p.sport) not in tuples:
            tuples.append((p.src, p.sport))
    if len(tuples) < 2:
        return f"the client's address changed {len(tuples) - 1} times: the rebinding did not happen"
    for src, sport in tuples[1:]:
        challenged = any(FRAME_PATH_CHALLENGE in p.frames for p in ev.server_side
                         if not p.from_client and (p.dst, p.dport) == (src, sport))
        answered = any(FRAME_PATH_RESPONSE in p.frames for p in ev.server_side
                       if p.from_client and (p.src, p.sport) == (src, sport))
        if not challenged:
            return f"no PATH_CHALLENGE to the new path {src}:{sport}"
        if not answered:
            return f"no PATH_RESPONSE from the new path {src}:{sport}"
    return None


def check_rebind(ev: Evidence) -> Verdict:
    problem = _basic(ev) or _paths_challenged(ev)
    return _verdict(problem, "every new path challenged and answered")


@after_basic()
def check_migration(ev: Evidence) -> Verdict:
    problem = _paths_challenged(ev)
    if problem:
        return _verdict(problem)
    dcids = []
    for p in ev.server_side:
        if p.from_client and p.kind == "1rtt" and p.dcid not in dcids:
            dcids.append(p.dcid)
    if len(dcids) < 2:
        return Verdict(FAILED, "the client kept one connection ID across the migration")
    return Verdict(PASSED, "new path validated, new connection ID used")


@after_basic()
def check_preferred_migration(ev: Evidence) -> Verdict:
    """The reference's connectionmigration as it is now: the server offered a
    preferred address and the client moved there.  From the server's capture:
    its first packet on each new path carries a PATH_CHALLENGE and the client
    answers on that path; from the client's: each new path it sends on
    starts with a new connection ID."""
    paths: list[tuple] = []
    for p in ev.server_side:
        if p.from_client:
            continue
        path = (p.src, p.sport, p.dst, p.dport)
        if path in paths:
            continue
        paths.append(path)
        if len(paths) > 1 and FRAME_PATH_CHALLENGE not in p.frames:
            return Verdict(FAILED, f"the server's first packet from {p.src}:{p.sport} carried no PATH_CHALLENGE")
    if len(paths) < 2:
        return Verdict(FAILED, "the server sent from one address only: nobody moved to its preferred address")
    for src, sport, dst, dport in paths[1:]:
        if not any(FRAME_PATH_RESPONSE in p.frames for p in ev.server_side
                   if p.from_client and (p.src, p.sport, p.dst, p.dport) == (dst, dport, src, sport)):
            return Verdict(FAILED, f"no PATH_RESPONSE on the path to {src}:{sport}")
    last, dcid, left = None, None, set()
    for p in ev.client_side:
        if not p.from_client or p.kind != "1rtt":
            continue
        path = (p.src, p.sport, p.dst, p.dport)
        if last is None:
            last, dcid = path, p.dcid
        elif path != last and path not in left:
            left.add(last)
            last = path
            if p.dcid == dcid:
                return Verdict(FAILED, f"the client's first packet to {p.dst}:{p.dport} kept connection ID {dcid}")
            dcid = p.dcid
    server_addresses = {(p.src, p.sport) for p in ev.server_side if not p.from_client}
    return Verdict(PASSED, f"moved to the preferred address ({len(server_addresses)} server addresses), "
                           "each new path challenged and answered, new connection ID")


@after_basic()
def check_goodput(ev: Evidence) -> Verdict:
    data = [p.time for p in ev.client_side if not p.from_client and p.kind == "1rtt"]
    if len(data) < 2:
        return Verdict(FAILED, "no 1-RTT data seen")
    seconds = max(data) - min(data)
    size = sum((ev.www / n).stat().st_size for n in ev.files)
    kbps = 8 * size / 1000 / seconds if seconds > 0 else 0.0
    return Verdict(PASSED, f"{kbps:.0f} kbit/s", value=kbps)


# -- the cases --------------------------------------------------------------------------------

CASES: list[Case] = [
    Case("handshake", "H", sized(1 * KB), check_handshake, description="handshake completes"),
    Case("transfer", "DC", sized(2 * MB, 3 * MB, 5 * MB), check_transfer, description="stream data"),
    Case("longrtt", "LR", sized(1 * KB), check_longrtt, client_testcase="handshake", server_testcase="handshake",
         scenario="simple-p2p --delay=750ms --bandwidth=10Mbps --queue=25", timeout=120.0),
    Case("chacha20", "C20", sized(3 * MB), check_chacha20),
    Case("multiplexing", "M", many(1999, 32), check_multiplexing, client_testcase="transfer",
         server_testcase="transfer", timeout=120.0),
    Case("retry", "S", sized(10 * KB), check_retry),
    Case("resumption", "R", sized(5 * KB, 10 * KB), check_resumption),
    Case("zerortt", "Z", many(40, 32, name_length=250), check_zerortt),
    Case("http3", "3", sized(5 * KB, 10 * KB, 500 * KB), check_transfer),
    Case("blackhole", "B", sized(10 * MB), check_transfer, client_testcase="transfer", server_testcase="transfer",
         scenario=f"blackhole {LOSSY} --on=5s --off=2s", timeout=120.0),
    Case("keyupdate", "U", sized(3 * MB), check_keyupdate, server_testcase="transfer"),
    Case("ecn", "E", sized(100 * KB), check_ecn),
    Case("amplificationlimit", "A", sized(5 * KB), check_amplification, client_testcase="transfer",
         server_testcase="transfer", scenario=f"droplist {LOSSY} --drops_to_server=2,3,4,5,6,7"),
    Case("handshakeloss", "L1", many(50, 1 * KB), check_handshakeloss, client_testcase="multiconnect",
         server_testcase="multiconnect", scenario=f"drop-rate {LOSSY} --rate_to_server=30 --rate_to_client=30 "
                                                  "--burst_to_server=3 --burst_to_client=3", timeout=300.0),
    Case("transferloss", "L2", sized(2 * MB), check_transfer, client_testcase="transfer",
         server_testcase="transfer", scenario=f"drop-rate {LOSSY} --rate_to_server=2 --rate_to_client=2 "
                                              "--burst_to_server=3 --burst_to_client=3", timeout=120.0),
    Case("handshakecorruption", "C1", many(50, 1 * KB), check_handshakeloss, client_testcase="multiconnect",
         server_testcase="multiconnect", scenario=f"corrupt-rate {LOSSY} --rate_to_server=30 --rate_to_client=30 "
                                                  "--burst_to_server=3 --burst_to_client=3", timeout=300.0),
    Case("transfercorruption", "C2", sized(2 * MB), check_transfer, client_testcase="transfer",
         server_testcase="transfer", scenario=f"corrupt-rate {LOSSY} --rate_to_server=2 --rate_to_client=2 "
                                              "--burst_to_server=3 --burst_to_client=3", timeout=120.0),
    Case("ipv6", "6", sized(5 * KB, 10 * KB), check_ipv6, client_testcase="transfer", server_testcase="transfer",
         ipv6=True),
    Case("v2", "V2", sized(1 * KB), check_v2),
    # Not a reference case (no NEW_TOKEN case exists there): two connections
    # in turn, the server validating every address without a token.
    Case("newtoken", "NT", sized(5 * KB, 10 * KB), check_newtoken),
    Case("rebind-port", "BP", sized(10 * MB), check_rebind, client_testcase="transfer", server_testcase="transfer",
         scenario=f"rebind {LOSSY} --first-rebind=1s --rebind-freq=5s", timeout=120.0),
    Case("rebind-addr", "BA", sized(10 * MB), check_rebind, client_testcase="transfer", server_testcase="transfer",
         scenario=f"rebind {LOSSY} --first-rebind=1s --rebind-freq=5s --rebind-addr", timeout=120.0),
    # The client migrates actively (a new local address mid-transfer) to a
    # server that plays a plain transfer, as the reference's first version
    # of the case did; its later one has the server offer a preferred address.
    # The reference's current version: the server offers a preferred address, the client follows it.
    Case("connectionmigration", "CM", sized(2 * MB), check_preferred_migration, client_testcase="transfer",
         description="the client moves to the server's preferred address"),
    # Ours (the reference's first version of connectionmigration): the client moves to a new local address.
    Case("activemigration", "AM", sized(2 * MB), check_migration, server_testcase="transfer",
         description="the client moves to a new local address mid-transfer"),
    Case("goodput", "G", sized(10 * MB), check_goodput, client_testcase="transfer", server_testcase="transfer",
         measurement=True, timeout=120.0),
    Case("crosstraffic", "C", sized(25 * MB), check_goodput, client_testcase="transfer", server_testcase="transfer",
         measurement=True, cross_traffic=True, timeout=180.0),
]
BY_NAME = {case.name: case for case in CASES}

# CI's subset (issue 11): every pair on these, fast.
CI_CASES = ["handshake", "transfer", "http3", "retry", "resumption", "zerortt", "keyupdate", "chacha20",
            "transferloss"]
