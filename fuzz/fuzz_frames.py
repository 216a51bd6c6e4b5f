# Fuzz target: QUIC frame payloads (pyquic/frames.py: parse_frames, parse_frame,
# and the C parser behind parse_frames, pyquic/_frames.c).
#
# Input: a decrypted packet payload.  It is parsed as the payload of every
# frame-carrying packet type (Initial, 0-RTT, Handshake, 1-RTT), for an
# unknown sender and for each role.  Documented behaviour checked:
#   - the parsers raise only TransportError (FRAME_ENCODING_ERROR or
#     PROTOCOL_VIOLATION), never anything else;
#   - a payload that parses re-encodes, frame by frame with the project's own
#     encoders, to bytes that parse to the same frames (a PADDING run stays
#     one frame, so runs are compared merged);
#   - parse_frame, stepped through the payload, agrees with parse_frames;
#   - parse_frames (C for the common frames) and its pure-Python twin
#     parse_frames_py give the same frames, flags and errors.
import sys

import atheris

import _common

_common.preimport()
with atheris.instrument_imports(include=_common.INSTRUMENT):
    from pyquic.errors import ErrorCode, TransportError
    from pyquic.frames import Datagram, Padding, Stream, encode_frame, parse_frame, parse_frames, parse_frames_py
    from pyquic.packet import PacketType

PACKET_TYPES = (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.ONE_RTT)
ROLES = (None, True, False)
CODES = {ErrorCode.FRAME_ENCODING_ERROR, ErrorCode.PROTOCOL_VIOLATION}


def _reencode(frames: list) -> bytes:
    out = bytearray()
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        if isinstance(frame, (Stream, Datagram)):
            frame.encode(out, last=i == last and not getattr(frame, "with_length", True))
        else:
            out += encode_frame(frame)
    return bytes(out)


def _merged(frames: list) -> list:
    # Consecutive PADDING frames (after re-encoding two runs may touch) as one.
    out: list = []
    for frame in frames:
        if isinstance(frame, Padding) and out and isinstance(out[-1], Padding):
            out[-1] = Padding(out[-1].length + frame.length)
        else:
            out.append(frame)
    return out


def _outcome(parse, data: bytes, packet_type: PacketType, from_server) -> tuple:
    try:
        parsed = parse(data, packet_type, from_server=from_server)
    except TransportError as exc:
        return None, (exc.code, exc.frame_type)
    return parsed, repr(parsed)


def TestOneInput(data: bytes) -> None:
    one_parse = None
    for packet_type in PACKET_TYPES:
        for from_server in ROLES:
            parsed, seen = _outcome(parse_frames, data, packet_type, from_server)
            twin = _outcome(parse_frames_py, data, packet_type, from_server)[1]
            assert seen == twin, (seen, twin)
            if parsed is None:
                assert seen[0] in CODES, seen
                continue
            assert parsed.frames, "parse_frames returned no frames without raising"
            if one_parse is None:
                one_parse = parsed
    if one_parse is None:
        return
    frames = one_parse.frames
    # parse_frame stepping through the same bytes finds the same frames.
    pos, stepped = 0, []
    while pos < len(data):
        frame, pos = parse_frame(data, pos)
        stepped.append(frame)
    assert stepped == frames, (stepped, frames)
    # Round trip through the encoders.
    again = parse_frames(_reencode(frames), PacketType.ONE_RTT)
    assert _merged(again.frames) == _merged(frames), (again.frames, frames)
    assert (again.ack_eliciting, again.in_flight) == (one_parse.ack_eliciting, one_parse.in_flight)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
