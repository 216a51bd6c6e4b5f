# pyquic.errors: every RFC 9000 §20.1 code has a named constructor carrying
# code, frame type and reason; CRYPTO_ERROR is 0x0100 + alert; the four error
# kinds stay apart.
import pytest

from pyquic.errors import (
    ApplicationError,
    ConnectionClosedByPeer,
    ErrorCode,
    QuicError,
    TransportError,
    UsageError,
    error_name,
)
from tls.enums import AlertDescription

RFC9000_CODES = {
    "NO_ERROR": 0x00, "INTERNAL_ERROR": 0x01, "CONNECTION_REFUSED": 0x02, "FLOW_CONTROL_ERROR": 0x03,
    "STREAM_LIMIT_ERROR": 0x04, "STREAM_STATE_ERROR": 0x05, "FINAL_SIZE_ERROR": 0x06,
    "FRAME_ENCODING_ERROR": 0x07, "TRANSPORT_PARAMETER_ERROR": 0x08, "CONNECTION_ID_LIMIT_ERROR": 0x09,
    "PROTOCOL_VIOLATION": 0x0A, "INVALID_TOKEN": 0x0B, "APPLICATION_ERROR": 0x0C,
    "CRYPTO_BUFFER_EXCEEDED": 0x0D, "KEY_UPDATE_ERROR": 0x0E, "AEAD_LIMIT_EXCEEDED": 0x0F,
    "NO_VIABLE_PATH": 0x10,
}  # fmt: skip


@pytest.mark.parametrize("name,code", sorted(RFC9000_CODES.items(), key=lambda kv: kv[1]))
def test_named_constructors(name, code):
    assert ErrorCode[name] == code
    err = getattr(TransportError, name)("why", frame_type=0x08)
    assert type(err) is TransportError
    assert (err.code, err.reason, err.frame_type) == (code, "why", 0x08)
    assert name in str(err) and "why" in str(err)
    assert getattr(TransportError, name)().frame_type is None


def test_crypto_error_from_an_alert():
    err = TransportError.crypto(AlertDescription.handshake_failure, "no common cipher")
    assert err.code == 0x0100 + 40 and err.alert == 40
    assert "CRYPTO_ERROR(handshake_failure)" in str(err)
    assert TransportError.PROTOCOL_VIOLATION().alert is None
    assert error_name(0x1FF) == "CRYPTO_ERROR(255)"
    with pytest.raises(UsageError):
        TransportError.crypto(256)


def test_the_kinds_stay_apart():
    kinds = [TransportError(1), ApplicationError(7, "bye"), ConnectionClosedByPeer(0x0A, "x"), UsageError("bug")]
    assert all(isinstance(k, QuicError) for k in kinds)
    for i, a in enumerate(kinds):
        for j, b in enumerate(kinds):
            assert isinstance(a, type(b)) == (i == j)
    app = ConnectionClosedByPeer(7, "bye", application=True)
    assert app.application and "application error 0x7" in str(app)
    with pytest.raises(UsageError):
        ApplicationError(1 << 62)
