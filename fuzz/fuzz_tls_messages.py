# Fuzz target: TLS 1.3 handshake messages (tls/messages.py: split_handshake_messages,
# parse_message, the PSK binder helpers; tls/extensions.py: check_allowed and the
# per-extension body parsers applied to what a message carries).
#
# Input: a stream of handshake bytes (4-byte headers and bodies), as the engine
# reassembles it from CRYPTO frames or records.  Documented behaviour checked:
#   - every parser raises only AlertError, with one of the alerts the wire
#     modules name (decode_error, illegal_parameter, unexpected_message,
#     unsupported_extension, missing_extension);
#   - splitting is independent of how the stream is chunked;
#   - a message that parses re-encodes to the very bytes received (a hello
#     with no extension block at all excepted: it re-encodes with an empty one).
import sys

import atheris

import _common

_common.preimport()
with atheris.instrument_imports(include=_common.INSTRUMENT):
    from tls import extensions as ext
    from tls.enums import AlertDescription as AD
    from tls.enums import HandshakeType as HT
    from tls.errors import AlertError
    from tls.messages import (
        ClientHello,
        Finished,
        ServerHello,
        parse_message,
        split_handshake_messages,
        truncated_client_hello,
    )

ALERTS = {AD.decode_error, AD.illegal_parameter, AD.unexpected_message, AD.unsupported_extension, AD.missing_extension}
MAX_MESSAGE = 1 << 16
WHERE = {HT.CLIENT_HELLO: ext.CH, HT.SERVER_HELLO: ext.SH, HT.NEW_SESSION_TICKET: ext.NST,
         HT.ENCRYPTED_EXTENSIONS: ext.EE, HT.CERTIFICATE_REQUEST: ext.CR}


def _only_alerts(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except AlertError as exc:
        if exc.description not in ALERTS:
            raise
        return None


def _check_message(msg_type: int, body: bytes, raw: bytes) -> None:
    msg = _only_alerts(parse_message, msg_type, body)
    if msg_type == HT.FINISHED:
        for hash_length in (32, 48):
            _only_alerts(Finished.parse, body, hash_length)
    if msg is None:
        return
    no_block = isinstance(msg, (ClientHello, ServerHello)) and not msg.extensions
    if not no_block:
        assert msg.encode() == raw, (msg, raw)
    where = WHERE.get(msg_type)
    if where is None:
        return
    hrr = isinstance(msg, ServerHello) and msg.is_hello_retry_request
    if hrr:
        where = ext.HRR
    _only_alerts(ext.check_allowed, msg_type, msg.extensions, hello_retry_request=hrr)
    _only_alerts(ext.check_allowed, msg_type, msg.extensions, hello_retry_request=hrr, offered=())
    for ext_type, data in msg.extensions:
        parse = ext.PARSERS.get((ext_type, where))
        if parse is not None:
            _only_alerts(parse, data)
    if msg_type == HT.CLIENT_HELLO:
        prefix = _only_alerts(truncated_client_hello, raw)
        assert prefix is None or raw.startswith(prefix)


def TestOneInput(data: bytes) -> None:
    whole = _only_alerts(split_handshake_messages, data, MAX_MESSAGE)
    if whole is None:
        return
    frames, rest = whole
    assert b"".join(f.raw for f in frames) + rest == data
    # The same stream in 7-byte pieces splits into the same messages.
    got, buffer = [], b""
    for i in range(0, len(data), 7):
        more, buffer = split_handshake_messages(buffer + data[i : i + 7], MAX_MESSAGE)
        got += more
    assert got == frames and buffer == rest
    for frame in frames:
        _check_message(frame.msg_type, frame.body, frame.raw)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
