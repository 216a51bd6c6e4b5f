# The example RPC program of examples/rpc_tls: its numbers and the XDR of its
# arguments and results.  Program 0x20000777 (the RFC 5531 range for
# "defined by user"), version 1:
#   0  NULL    void -> void          (and the AUTH_TLS probe)
#   1  ECHO    string -> string
#   2  WHOAMI  void -> string        the local user the server mapped the
#                                     client's certificate to, or "nobody"
from __future__ import annotations

from tls.rpc_tls import RpcError, XdrReader, xdr_opaque

PROGRAM = 0x20000777
VERSION = 1
NULL, ECHO, WHOAMI = 0, 1, 2
MAX_STRING = 1 << 16


def encode_string(text: str) -> bytes:
    return xdr_opaque(text.encode("utf-8"))


def decode_string(data: bytes) -> str:
    reader = XdrReader(data)
    raw = reader.opaque(MAX_STRING)
    reader.expect_end()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RpcError("string is not UTF-8") from None
