# Fuzz target: QUIC packet headers, step one of two-step decoding
# (pyquic/packet.py: decode_header, split_datagram).
#
# Input: one UDP datagram.  Each is decoded with several short-header
# connection ID lengths and with and without the fixed-bit requirement.
# Documented behaviour checked: decode_header raises only PacketDecodeError;
# split_datagram never raises; every header it returns lies inside the data,
# the packets it returns tile the datagram from offset 0 without gaps.
import sys

import atheris

import _common

_common.preimport()
with atheris.instrument_imports(include=_common.INSTRUMENT):
    from pyquic.packet import PacketDecodeError, PacketType, decode_header, split_datagram

DCID_LENGTHS = (0, 8, 20)
NO_PN = (PacketType.RETRY, PacketType.VERSION_NEGOTIATION, PacketType.UNKNOWN_VERSION)


def _check_header(header, data_length: int, offset: int) -> None:
    assert header.offset == offset, header
    assert 1 <= header.length and offset + header.length <= data_length, header
    if header.packet_type in NO_PN:
        assert header.pn_offset == -1, header
    else:
        assert 1 <= header.pn_offset <= header.length, header


def TestOneInput(data: bytes) -> None:
    for fixed_bit_required in (True, False):
        for dcid_length in DCID_LENGTHS:
            # The whole datagram, and (for a non-zero offset) the packet that would
            # start right after the first byte, as a coalesced packet would.
            for offset in (0, 1) if data else (0,):
                try:
                    header = decode_header(
                        data, offset, short_dcid_length=dcid_length, fixed_bit_required=fixed_bit_required
                    )
                except PacketDecodeError:
                    pass
                else:
                    _check_header(header, len(data), offset)
            for buffer in (data, bytearray(data)):
                packets, error = split_datagram(buffer, dcid_length, fixed_bit_required=fixed_bit_required)
                at = 0
                for header, view in packets:
                    _check_header(header, len(data), at)
                    assert len(view) == header.length
                    assert bytes(view) == data[at : at + header.length]
                    at += header.length
                assert (error is None) == (at == len(data)), (error, at, len(data))


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
