# Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/), from
# published test vectors (RFC 9001 / RFC 9369 Appendix A packets, RFC 8448
# handshake messages and records, in ../shared/vectors or $PYQUIC_VECTORS)
# and from the project's own encoders.  Owns nothing else; run it again after
# changing it:
#
#   .venv/bin/python fuzz/make_corpus.py
#
# Each file is one input, named <what>.bin.  The set is deterministic.
from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the repository on sys.path)

from pyquic import frames as F  # noqa: E402
from pyquic.packet import (  # noqa: E402
    PacketType,
    encode_long_header,
    encode_retry,
    encode_short_header,
    encode_version_negotiation,
)
from pyquic.transport_params import (  # noqa: E402
    PreferredAddress,
    QuicTransportParameters,
    VersionInformation,
    encode_transport_parameters,
)
from tls import extensions as ext  # noqa: E402
from tls.messages import parse_message  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


def _vectors(name: str) -> dict:
    return json.loads((_common.vectors_dir() / name).read_text())


def _write(target: str, seeds: dict[str, bytes]) -> None:
    folder = CORPUS / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in seeds.items():
        (folder / f"{name}.bin").write_bytes(data)
    print(f"{target}: {len(seeds)} seeds")


def packet_seeds() -> dict[str, bytes]:
    seeds = {}
    for tag, name in (("v1", "rfc9001_appendix_a.json"), ("v2", "rfc9369_appendix_a.json")):
        v = _vectors(name)
        seeds[f"{tag}_client_initial"] = _h(v["client_initial"]["protected_packet"])
        seeds[f"{tag}_server_initial"] = _h(v["server_initial"]["protected_packet"])
        seeds[f"{tag}_retry"] = _h(v["retry"]["packet"])
        seeds[f"{tag}_short_chacha"] = _h(v["chacha20_poly1305_short_header"]["protected_packet"])
    dcid, scid = bytes.fromhex("8394c8f03e515708"), bytes.fromhex("f067a5502a4262b5")
    handshake = encode_long_header(1, PacketType.HANDSHAKE, dcid, scid, 7, 2, payload_length=40) + bytes(40)
    initial = encode_long_header(1, PacketType.INITIAL, dcid, scid, 0, 1, token=b"tok", payload_length=30) + bytes(30)
    zero_rtt = encode_long_header(1, PacketType.ZERO_RTT, dcid, scid, 3, 4, payload_length=24) + bytes(24)
    short = encode_short_header(dcid, 9, 2, key_phase=1, spin=True) + bytes(30)
    seeds["coalesced_initial_handshake_short"] = bytes(initial + handshake + short)
    seeds["coalesced_initial_0rtt"] = bytes(initial + zero_rtt)
    seeds["version_negotiation"] = encode_version_negotiation(scid, dcid, [1, 0x6B3343CF, 0x1A2A3A4A])
    seeds["retry_encoded"] = encode_retry(1, scid, dcid, b"retry-token", dcid)
    seeds["unknown_version"] = bytes((0xC0,)) + bytes.fromhex("1a2a3a4a") + bytes((40,)) + bytes(40) + bytes((0,)) + bytes(20)
    return seeds


def frame_seeds() -> dict[str, bytes]:
    v1 = _vectors("rfc9001_appendix_a.json")
    seeds = {
        "rfc9001_client_initial_payload": _h(v1["client_initial"]["payload_frames"]).ljust(1162, b"\0"),
        "rfc9001_server_initial_payload": _h(v1["server_initial"]["payload"]),
        "rfc9001_short_ping": _h(v1["chacha20_poly1305_short_header"]["payload_plaintext"]),
    }
    token = bytes(range(16))
    frames = {
        "padding": F.Padding(5),
        "ping": F.Ping(),
        "ack": F.Ack(((90, 101), (50, 80), (0, 3)), delay=25),
        "ack_ecn": F.Ack(((7, 9),), delay=1, ecn=(10, 0, 2)),
        "reset_stream": F.ResetStream(4, 0x101, 1 << 20),
        "stop_sending": F.StopSending(8, 7),
        "crypto": F.Crypto(1000, b"\x02\x00\x00\x05hello"),
        "new_token": F.NewToken(b"a new token"),
        "stream": F.Stream(0, 0, b"GET /\r\n", fin=True),
        "stream_offset": F.Stream(1 << 40, 1 << 30, b"data"),
        "max_data": F.MaxData(1 << 30),
        "max_stream_data": F.MaxStreamData(2, 65536),
        "max_streams_bidi": F.MaxStreams(True, 100),
        "max_streams_uni": F.MaxStreams(False, 1 << 60),
        "data_blocked": F.DataBlocked(4096),
        "stream_data_blocked": F.StreamDataBlocked(6, 1024),
        "streams_blocked": F.StreamsBlocked(True, 10),
        "new_connection_id": F.NewConnectionId(3, 1, bytes(range(8)), token),
        "retire_connection_id": F.RetireConnectionId(2),
        "path_challenge": F.PathChallenge(b"12345678"),
        "path_response": F.PathResponse(b"87654321"),
        "connection_close": F.ConnectionClose(0x0A, 0x06, "bad frame"),
        "connection_close_app": F.ConnectionClose(0x100, 0, "bye", application=True),
        "handshake_done": F.HandshakeDone(),
        "datagram": F.Datagram(b"datagram payload"),
    }
    for name, frame in frames.items():
        seeds[f"frame_{name}"] = F.encode_frame(frame)
    out = bytearray()
    for frame in (frames["ack"], frames["max_data"], frames["new_connection_id"], frames["path_challenge"]):
        frame.encode(out)
    F.Stream(4, 100, b"last frame, no length").encode(out, last=True)
    seeds["one_rtt_mixed_last_stream"] = bytes(out)
    out = bytearray()
    frames["ping"].encode(out)
    F.Datagram(b"to the end").encode(out, last=True)
    seeds["one_rtt_datagram_no_length"] = bytes(out)
    return seeds


def transport_param_seeds() -> dict[str, bytes]:
    client = QuicTransportParameters(
        max_idle_timeout=30000,
        max_udp_payload_size=1472,
        initial_max_data=1 << 20,
        initial_max_stream_data_bidi_local=1 << 18,
        initial_max_stream_data_bidi_remote=1 << 18,
        initial_max_stream_data_uni=1 << 18,
        initial_max_streams_bidi=100,
        initial_max_streams_uni=3,
        ack_delay_exponent=2,
        max_ack_delay=20,
        disable_active_migration=True,
        active_connection_id_limit=8,
        initial_source_connection_id=bytes(range(8)),
        version_information=VersionInformation(1, (1, 0x6B3343CF)),
        max_datagram_frame_size=1200,
        grease_quic_bit=True,
    )
    server = QuicTransportParameters(
        original_destination_connection_id=bytes.fromhex("8394c8f03e515708"),
        stateless_reset_token=bytes(range(16)),
        preferred_address=PreferredAddress(("192.0.2.1", 4433), ("2001:db8::1", 4433), b"\x01\x02\x03\x04", bytes(16)),
        initial_source_connection_id=bytes.fromhex("f067a5502a4262b5"),
        retry_source_connection_id=b"\xaa" * 20,
        initial_max_data=1 << 22,
    )
    seeds = {
        "client_full": encode_transport_parameters(client),
        "server_full": encode_transport_parameters(server),
        "minimal": encode_transport_parameters(QuicTransportParameters(initial_source_connection_id=b"")),
    }
    # A GREASE parameter (31 * N + 27) and an unknown one, in front of a minimal set.
    seeds["grease_and_unknown"] = bytes((0x40, 31 * 2 + 27, 2, 0xAB, 0xCD, 0x21, 1, 0x00)) + seeds["minimal"]
    # The one inside the RFC 9001 client Initial's ClientHello (a real client's).
    crypto = F.parse_frames(_h(_vectors("rfc9001_appendix_a.json")["client_initial"]["payload_frames"]), PacketType.INITIAL)
    hello = next(f for f in crypto.frames if isinstance(f, F.Crypto)).data
    ch = parse_message(hello[0], hello[4:])
    body = ch.extension(0x39)
    if body is not None:
        seeds["rfc9001_client_hello"] = body
    return seeds


def _rfc8448() -> dict:
    return _vectors("rfc8448.json")["sections"]


def tls_message_seeds() -> dict[str, bytes]:
    seeds = {}
    for number, section in _rfc8448().items():
        messages = section["summary"]["handshake_messages"]
        for i, message in enumerate(messages):
            seeds[f"rfc8448_s{number}_{i:02d}_{message['type']}"] = _h(message["hex"])
        server_flight = [_h(m["hex"]) for m in messages if m["sender"] == "server"]
        seeds[f"rfc8448_s{number}_server_stream"] = b"".join(server_flight)
    return seeds


_WHERE = {1: ext.CH, 2: ext.SH, 4: ext.NST, 8: ext.EE, 13: ext.CR}
_MESSAGES = (ext.CH, ext.SH, ext.HRR, ext.EE, ext.CT, ext.CR, ext.NST)


def tls_extension_seeds() -> dict[str, bytes]:
    # fuzz_tls_extensions input: u16 extension type, u8 message index, body.
    seeds = {}
    for number, section in _rfc8448().items():
        for i, message in enumerate(section["summary"]["handshake_messages"]):
            raw = _h(message["hex"])
            where = _WHERE.get(raw[0])
            if where is None:
                continue
            msg = parse_message(raw[0], raw[4:])
            if where == ext.SH and msg.is_hello_retry_request:
                where = ext.HRR
            for ext_type, data in msg.extensions:
                selector = ext_type.to_bytes(2, "big") + bytes((_MESSAGES.index(where),))
                seeds[f"rfc8448_s{number}_{i:02d}_{where}_{ext_type}"] = selector + data
            # The whole extension block, under a parser that rejects it (read as a block too).
            block = ext.encode_extensions(msg.extensions)
            seeds[f"rfc8448_s{number}_{i:02d}_{where}_block"] = b"\xff\xff" + bytes((_MESSAGES.index(where),)) + block
    return seeds


def tls_record_seeds() -> dict[str, bytes]:
    # fuzz_tls_record input: flags, piece size, wire bytes (see its header).
    seeds = {}
    for number, section in _rfc8448().items():
        records = section["summary"]["records"]
        for sender, key in (("server", 1), ("client", 2)):
            wire = b"".join(_h(r["record"]) for r in records if r["sender"] == sender)
            # §3's keys open §3's handshake records; the other sections exercise framing and failures.
            seeds[f"rfc8448_s{number}_{sender}_key_after_first"] = bytes((key | 0x04, 0)) + wire
            seeds[f"rfc8448_s{number}_{sender}_plain_pieces"] = bytes((0, 7)) + wire
    # Sealed mode: a handshake record, an application-data record with padding, an alert.
    chunks = [b"\x01\x00\x00\x00" + b"\x16", b"hello" + b"\x17" + bytes(10), b"\x01\x00" + b"\x15"]
    body = b"".join((0x8000 | len(c)).to_bytes(2, "big") + c for c in chunks)
    seeds["sealed_chacha"] = bytes((0x10 | 3 | 0x08, 0)) + body
    seeds["sealed_early_data_trial"] = bytes((0x10 | 3 | 0x20 | 0x40, 0)) + b"\x00\x05\x17\x03\x03\x00\x00" + body
    return seeds


def crypto_seeds() -> dict[str, bytes]:
    # fuzz_crypto reads its input with FuzzedDataProvider: any bytes are a plan.
    rng = random.Random(9001)
    return {f"random_{i:02d}": bytes(rng.getrandbits(8) for _ in range(rng.choice((64, 200, 400, 800)))) for i in range(24)}


def main() -> None:
    _write("packet", packet_seeds())
    _write("frames", frame_seeds())
    _write("transport_params", transport_param_seeds())
    _write("tls_messages", tls_message_seeds())
    _write("tls_extensions", tls_extension_seeds())
    _write("tls_record", tls_record_seeds())
    _write("crypto", crypto_seeds())


if __name__ == "__main__":
    main()
