# Fuzz target: the TLS 1.3 record layer's read side (tls/record.py: RecordLayer
# receive_data / next_record: framing, deprotection, unpadding, what may
# arrive when).
#
# Input: 2 control bytes, then the bytes from the wire.
#   byte 0, bits 0-1  read key: 0 none; 1 the RFC 8448 §3 server handshake
#                     traffic secret; 2 its client handshake secret (both
#                     TLS_AES_128_GCM_SHA256, so the RFC's records open);
#                     3 a fixed ChaCha20-Poly1305 secret
#           bit 2     install the key only after the first record (as the
#                     engine does after ServerHello), else from the start
#           bit 3     handshaking = False (the peer's Finished was seen)
#           bit 4     "sealed" mode: the rest is chunks [u16 n][n bytes]; a
#                     chunk with n's top bit set is sealed under the read key
#                     as a TLSInnerPlaintext (so the fuzzer controls what is
#                     decrypted), any other chunk goes on the wire as is
#           bit 5     skip_early_data(2^14) active; bit 6 its trial_decrypt
#   byte 1            the wire bytes arrive in pieces of this size (0: at once)
# Documented behaviour checked: next_record raises only AlertError (with a
# record-layer alert) or PeerAlert, and keeps raising the same one after;
# every record it returns is of a type legal at its level, within 2^14 bytes,
# and a handshake record is never empty.
import sys

import atheris

import _common

_common.preimport()
with atheris.instrument_imports(include=_common.INSTRUMENT):
    from tls.enums import AlertDescription as AD
    from tls.enums import ContentType
    from tls.errors import AlertError, PeerAlert
    from tls.record import ALLOWED_CONTENT, MAX_PLAINTEXT, RecordCipher, RecordLayer

# (cipher suite, secret): RFC 8448 §3 server / client handshake traffic secrets, and a test key.
KEYS = {
    1: (0x1301, bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")),
    2: (0x1301, bytes.fromhex("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")),
    3: (0x1303, bytes(range(32))),
}
ALERTS = {AD.record_overflow, AD.unexpected_message, AD.bad_record_mac, AD.decode_error}


def _wire(flags: int, payload: bytes) -> bytes:
    if not flags & 0x10:
        return payload
    key = KEYS.get(flags & 3)
    sealer = RecordCipher(*key) if key else None
    out, pos = bytearray(), 0
    while pos + 2 <= len(payload):
        n = int.from_bytes(payload[pos : pos + 2], "big")
        chunk = payload[pos + 2 : pos + 2 + (n & 0x7FFF)]
        pos += 2 + len(chunk)
        if n & 0x8000 and sealer is not None and chunk:
            out += sealer.seal(chunk[-1], chunk[:-1], 0)  # the inner plaintext is `chunk`, exactly
        else:
            out += chunk
    return bytes(out + payload[pos:])


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, piece = data[0], data[1]
    wire = _wire(flags, data[2:])
    layer = RecordLayer()
    layer.handshaking = not flags & 0x08
    key = KEYS.get(flags & 3)
    install_later = bool(flags & 0x04) and key is not None
    if key is not None and not install_later:
        layer.set_read_key(*key)
    if flags & 0x20:
        layer.skip_early_data(MAX_PLAINTEXT, trial_decrypt=bool(flags & 0x40))
    piece = piece or len(wire) or 1
    try:
        for i in range(0, len(wire), piece):
            layer.receive_data(wire[i : i + piece])
            while (record := layer.next_record()) is not None:
                assert record.content_type in ALLOWED_CONTENT[record.level], record
                assert len(record.content) <= MAX_PLAINTEXT, len(record.content)
                if record.content_type == ContentType.HANDSHAKE:
                    assert len(record.content) > 0
                if install_later:
                    layer.set_read_key(*key)
                    install_later = False
    except (AlertError, PeerAlert) as exc:
        if isinstance(exc, AlertError) and exc.description not in ALERTS:
            raise
        try:
            layer.next_record()
        except type(exc) as again:
            assert again is exc  # the failure is sticky
        else:
            raise AssertionError("next_record() did not raise again after a failure")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
