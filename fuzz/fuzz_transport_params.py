# Fuzz target: the quic_transport_parameters extension body
# (pyquic/transport_params.py: parse_transport_parameters).
#
# Input: the extension body.  It is parsed as sent by a client and by a
# server.  Documented behaviour checked: the parser raises only
# TransportError(TRANSPORT_PARAMETER_ERROR); what it accepts re-encodes with
# encode_transport_parameters (no UsageError: the encoder accepts every value
# the parser does) to a body that parses to equal parameters.
import sys

import atheris

import _common

_common.preimport()
with atheris.instrument_imports(include=_common.INSTRUMENT):
    from pyquic.errors import ErrorCode, TransportError
    from pyquic.transport_params import encode_transport_parameters, parse_transport_parameters


def TestOneInput(data: bytes) -> None:
    for from_server in (False, True):
        try:
            params = parse_transport_parameters(data, from_server=from_server)
        except TransportError as exc:
            assert exc.code == ErrorCode.TRANSPORT_PARAMETER_ERROR, exc
            continue
        encoded = encode_transport_parameters(params)
        assert parse_transport_parameters(encoded, from_server=from_server) == params, (params, encoded)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
