# Fuzz target: TLS 1.3 extension blocks and bodies (tls/extensions.py:
# read_extensions, check_allowed, every parser of ext.PARSERS and, where
# there is one, its encoder).
#
# Input: 3 selector bytes, then the data.  Bytes 0-1 are an extension type
# and byte 2 a message (CH, SH, HRR, EE, CT, CR, NST, by index mod 7); if the
# pair has no parser, one is picked from PARSERS by the same bytes.  The data
# goes to that body parser, and is also read as a whole extension block
# (u16 length + entries) and checked against the message's table.
# Documented behaviour checked: only AlertError with the alerts the wire
# modules name; a body that parses re-encodes to the same bytes;
# read_extensions consumes exactly the block it reports.
import sys

import atheris

import _common

_common.preimport()
with atheris.instrument_imports(include=_common.INSTRUMENT):
    from tls import extensions as ext
    from tls.codec import Reader
    from tls.enums import AlertDescription as AD
    from tls.enums import HandshakeType as HT
    from tls.errors import AlertError

ALERTS = {AD.decode_error, AD.illegal_parameter, AD.unexpected_message, AD.unsupported_extension, AD.missing_extension}
MESSAGES = (ext.CH, ext.SH, ext.HRR, ext.EE, ext.CT, ext.CR, ext.NST)
MSG_TYPE = {ext.CH: HT.CLIENT_HELLO, ext.SH: HT.SERVER_HELLO, ext.HRR: HT.SERVER_HELLO,
            ext.EE: HT.ENCRYPTED_EXTENSIONS, ext.CT: HT.CERTIFICATE, ext.CR: HT.CERTIFICATE_REQUEST,
            ext.NST: HT.NEW_SESSION_TICKET}
KEYS = sorted(ext.PARSERS)
# Parser -> encoder of the same body: what parses re-encodes to the bytes received.
ROUND_TRIP = {
    ext.parse_server_name: ext.encode_server_name,
    ext.parse_alpn: ext.encode_alpn,
    ext.parse_alpn_selected: ext.encode_alpn_selected,
    ext.parse_supported_groups: ext.encode_supported_groups,
    ext.parse_signature_algorithms: ext.encode_signature_algorithms,
    ext.parse_supported_versions_client: ext.encode_supported_versions_client,
    ext.parse_supported_versions_server: ext.encode_supported_versions_server,
    ext.parse_key_share_client: ext.encode_key_share_client,
    ext.parse_key_share_server: ext.encode_key_share_server,
    ext.parse_key_share_hrr: ext.encode_key_share_hrr,
    ext.parse_psk_key_exchange_modes: ext.encode_psk_key_exchange_modes,
    ext.parse_pre_shared_key_client: lambda value: ext.encode_pre_shared_key_client(*value),
    ext.parse_pre_shared_key_server: ext.encode_pre_shared_key_server,
    ext.parse_max_early_data_size: ext.encode_max_early_data_size,
    ext.parse_cookie: ext.encode_cookie,
    ext.parse_certificate_authorities: ext.encode_certificate_authorities,
    ext.parse_oid_filters: ext.encode_oid_filters,
    ext.parse_record_size_limit: ext.encode_record_size_limit,
}


def _only_alerts(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except AlertError as exc:
        if exc.description not in ALERTS:
            raise
        return None


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    ext_type = int.from_bytes(data[:2], "big")
    where = MESSAGES[data[2] % len(MESSAGES)]
    body = data[3:]
    key = (ext_type, where)
    if key not in ext.PARSERS:
        key = KEYS[(ext_type + data[2]) % len(KEYS)]
    parse = ext.PARSERS[key]
    value = _only_alerts(parse, body)
    encode = ROUND_TRIP.get(parse)
    if value is not None and encode is not None:
        assert encode(value) == body, (key, value, body)

    reader = Reader(body)
    block = _only_alerts(ext.read_extensions, reader)
    if block is None:
        return
    assert reader.position == 2 + ext.extensions_length(block)
    assert ext.encode_extensions(block) == body[: reader.position]
    msg_type = MSG_TYPE[where]
    hrr = where == ext.HRR
    _only_alerts(ext.check_allowed, msg_type, block, hello_retry_request=hrr)
    _only_alerts(ext.check_allowed, msg_type, block, hello_retry_request=hrr, offered=[t for t, _ in block[::2]])
    for t, payload in block:
        parse = ext.PARSERS.get((t, where))
        if parse is not None:
            _only_alerts(parse, payload)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
