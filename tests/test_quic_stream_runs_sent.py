# The bulk sender's runs (PacketBuilder._build_short: STREAM-only packets
# built and protected in one PacketProtection.protect_stream_run call) put
# on the wire exactly what the per-packet path puts there.  Each case runs
# twice on identical seeded pairs, once with runs (MIN_RUN 2, the default)
# and once without (MIN_RUN too large to reach), and compares the size of
# every datagram either side sent, in order, every packet each side opened
# once the transfer began (plain header, packet number and payload, in
# order: the ciphertexts differ between runs only because the key shares
# do), the data delivered and the counters.  The cases reach the run path's edges: the window and the pacer
# cutting a run short, loss (retransmitted data between new data), several
# streams with writes of every size (runs of unequal packets, split into GSO
# batches), a key update, qlog, and the C and pure-Python protection.
import hashlib
import importlib
import random

import pytest

import pyquic.crypto
import pyquic.packet_builder as packet_builder
from pyquic import events
from pyquic.connection import QuicConnection
from tests.quic_pair import Pair, client_configuration, server_configuration


class RecordingPair(Pair):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wire = {"client": hashlib.sha256(), "server": hashlib.sha256()}
        self.datagrams = {"client": 0, "server": 0}
        self.sizes: dict = {"client": {}, "server": {}}
        self.recording = False  # the handshake's sizes vary with its random parts (ECDSA signatures)

    def _transmit(self, who, link, data, addr=None, codepoint=0) -> None:
        if self.recording:
            self.wire[who].update(len(data).to_bytes(4, "big"))
            self.datagrams[who] += 1
            self.sizes[who][len(data)] = self.sizes[who].get(len(data), 0) + 1
        super()._transmit(who, link, data, addr, codepoint)


def run_case(monkeypatch, tmp_path, case: str, runs: bool) -> dict:
    opened = {True: hashlib.sha256(), False: hashlib.sha256()}  # by is_client
    recording = {"on": False}
    process_packet = QuicConnection._process_packet

    def recorded(self, space, ptype, plain, payload, pn, dcid, now):
        if recording["on"]:
            opened[self.is_client].update(b"%d %d %d|" % (len(plain), pn, len(payload)) + bytes(plain) + bytes(payload))
        return process_packet(self, space, ptype, plain, payload, pn, dcid, now)

    monkeypatch.setattr(QuicConnection, "_process_packet", recorded)
    monkeypatch.setattr(packet_builder, "MIN_RUN", 2 if runs else 1 << 30)
    built = {"runs": 0, "packets": 0}
    append_gso = packet_builder._append_gso

    def counting(out, buffer, sizes):  # called once per run
        built["runs"] += 1
        built["packets"] += len(sizes)
        append_gso(out, buffer, sizes)

    monkeypatch.setattr(packet_builder, "_append_gso", counting)
    kwargs = dict(max_data=4 << 20, max_stream_data=2 << 20)
    server_kwargs = dict(kwargs)
    if case == "qlog":
        tmp_path.mkdir(parents=True)
        server_kwargs["qlog_dir"] = str(tmp_path)
    pair = RecordingPair(client_configuration(**kwargs), server_configuration(**server_kwargs), seed=7)
    if case == "lossy":
        pair.server_to_client.loss = 0.03
        pair.server_to_client.reorder = 0.05
    pair.handshake()
    client, server = pair.client, pair.server
    assert type(server._one_rtt.send.protection).__module__ == pyquic.crypto.backend.__name__
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"GET", end_stream=True)
    pair.drive(duration=0.5)
    recording["on"] = pair.recording = True  # tickets and tokens (sealed under random keys) are behind us
    rng = random.Random(11)
    sent: dict = {}
    if case == "streams":
        sids = []
        for _ in range(3):  # an ID is taken once data is sent on it
            sids.append(server.get_next_available_stream_id(is_unidirectional=True))
            server.send_stream_data(sids[-1], b"")
        for _ in range(60):
            s = rng.choice(sids)
            chunk = rng.randbytes(rng.choice([1, 50, 700, 1300, 5000, 20000]))
            server.send_stream_data(s, chunk)
            sent.setdefault(s, bytearray()).extend(chunk)
            pair.drive(duration=rng.choice([0.0, 0.001, 0.02]))
        for s in sids:
            server.send_stream_data(s, b"", end_stream=True)
    elif case == "tails":  # writes that end in a short packet with nothing else queued
        for _ in range(40):
            chunk = rng.randbytes(rng.randrange(2000, 20000))
            server.send_stream_data(sid, chunk)
            sent.setdefault(sid, bytearray()).extend(chunk)
            pair.drive(duration=rng.choice([0.05, 0.3]))
        server.send_stream_data(sid, b"", end_stream=True)
    else:
        data = rng.randbytes(1_500_000)
        server.send_stream_data(sid, data, end_stream=True)
        sent[sid] = data
    if case == "key_update":
        pair.drive(duration=0.3)
        client.request_key_update()
    pair.drive(duration=60)
    for s, data in sent.items():
        assert pair.received("client", s) == bytes(data), (case, s)
    stats = server.stats
    if runs:  # a good share of the packets went out in runs, or there was little to compare
        assert built["runs"] > 3 and built["packets"] > stats.packets_sent // 5, (built, stats.packets_sent)
    else:
        assert built["runs"] == 0
    return {
        "wire": {who: h.hexdigest() for who, h in pair.wire.items()},
        "opened": {client: h.hexdigest() for client, h in opened.items()},
        "datagrams": dict(pair.datagrams),
        "sizes": pair.sizes,
        "packets": (stats.packets_sent, stats.packets_lost, client.stats.packets_received),
        "terminated": pair.events_of("client", events.ConnectionTerminated),
    }


@pytest.mark.parametrize("case", ["bulk", "lossy", "streams", "tails", "key_update", "qlog", "python_protection"])
def test_runs_put_on_the_wire_what_the_per_packet_path_does(monkeypatch, tmp_path, case):
    if case == "python_protection":  # the pure-Python twin's protect_stream_run
        monkeypatch.setattr(pyquic.crypto, "backend", importlib.import_module("pyquic._crypto_py"))
    with_runs = run_case(monkeypatch, tmp_path / "runs", case, runs=True)
    without = run_case(monkeypatch, tmp_path / "per_packet", case, runs=False)
    assert with_runs == without
    if case in ("streams", "tails"):  # packets of many sizes went out
        assert len(with_runs["sizes"]["server"]) >= 4
