# `python -m tls.tools.client HOST PORT`: a TLS 1.3 client for debugging, in
# the manner of `openssl s_client -brief`.  It prints what was negotiated
# (version, suite, group, signature, ALPN, resumption, peer chain, kTLS),
# then relays stdin to the server and the server's bytes to stdout, or sends
# one --send message and prints the answer.  Exit status: 0 on success, 1 on
# a TLS failure (the alert is printed), 2 on a usage or network error.
from __future__ import annotations

import argparse
import socket
import sys
import threading

from ..config import DEFAULT_MAX_HANDSHAKE_MESSAGE, Config, VerifyMode
from ..enums import CipherSuite, Group, SignatureScheme
from ..errors import TLSError, UsageError
from ..tcp import TLSSocket, wrap_socket


def _name(enum, value) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:04x}"


def summary_lines(tls: TLSSocket) -> list[str]:
    """What `openssl s_client -brief` prints, for our connection."""
    n = tls.conn.negotiated
    lines = [
        "CONNECTION ESTABLISHED",
        f"Protocol version: {tls.version()}",
        f"Ciphersuite: {tls.cipher()[0]}",
        f"Group: {_name(Group, n.group) if n.group is not None else 'none (psk_ke)'}"
        + (" (after HelloRetryRequest)" if n.hello_retry else ""),
    ]
    scheme = n.signature_scheme if tls.conn.is_client else n.client_signature_scheme
    if scheme is not None:
        lines.append(f"Peer signature: {_name(SignatureScheme, scheme)}")
    chain = tls.peer_certificates()
    for depth, cert in enumerate(chain):
        lines.append(f"Peer certificate {depth}: {cert.subject.rfc4514_string()}")
    if not chain:
        lines.append("Peer certificate: none")
    lines.append(f"ALPN protocol: {tls.selected_alpn_protocol() or 'none'}")
    lines.append(f"Resumed: {'yes' if tls.session_reused else 'no'}"
                 + (", early data accepted" if tls.early_data_accepted else ""))
    if tls.ktls_reason:
        lines.append(f"kTLS: {tls.ktls_reason}")
    return lines


def parse_list(text: str | None, enum) -> list[int] | None:
    if not text:
        return None
    out = []
    for item in text.replace(",", ":").split(":"):
        item = item.strip()
        key = item.upper().replace("-", "_")
        aliases = {"P_256": "SECP256R1", "P_384": "SECP384R1", "TLS_AES_128_GCM_SHA256": "AES_128_GCM_SHA256",
                   "TLS_AES_256_GCM_SHA384": "AES_256_GCM_SHA384",
                   "TLS_CHACHA20_POLY1305_SHA256": "CHACHA20_POLY1305_SHA256"}
        key = aliases.get(key, key)
        if key in enum.__members__:
            out.append(int(enum[key]))
        else:
            out.append(int(item, 0))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tls.tools.client", description=__doc__ or "TLS 1.3 client")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--alpn", action="append", default=[], help="offer this ALPN protocol (repeatable)")
    p.add_argument("--cafile", help="trust anchors (PEM); default: the system store")
    p.add_argument("--cert", help="client certificate chain (PEM)")
    p.add_argument("--key", help="client private key (PEM); default: in --cert")
    p.add_argument("--servername", help="SNI and the name verified (default: HOST)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server")
    p.add_argument("--groups", help="e.g. X25519:P-256 (preference order)")
    p.add_argument("--ciphersuites", help="e.g. TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256")
    p.add_argument("--keylog", help="append NSS key log lines to this file")
    p.add_argument("--ktls", action="store_true", help="hand the keys to kernel TLS after the handshake")
    p.add_argument("--send", help="send this text (plus a newline), print what comes back, close")
    p.add_argument("--max-handshake-buffer", type=int, default=DEFAULT_MAX_HANDSHAKE_MESSAGE, metavar="N",
                   help=f"largest handshake message accepted, e.g. a long Certificate (default {DEFAULT_MAX_HANDSHAKE_MESSAGE})")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--quiet", action="store_true", help="no summary")
    return p


def make_config(args) -> Config:
    kw: dict = {"max_handshake_buffer": args.max_handshake_buffer}
    if args.alpn:
        kw["alpn_protocols"] = args.alpn
    if args.cafile:
        kw["cafile"] = args.cafile
    if args.cert:
        kw["certificate_chain"] = args.cert
        kw["private_key"] = args.key or args.cert
    groups = parse_list(args.groups, Group)
    if groups:
        kw["groups"] = groups
        kw["key_share_groups"] = groups[:1]
    suites = parse_list(args.ciphersuites, CipherSuite)
    if suites:
        kw["cipher_suites"] = suites
    if args.keylog:
        kw["keylog"] = args.keylog
    if args.insecure:
        kw["verify_mode"] = VerifyMode.NONE
    return Config(server_name=args.servername or args.host, **kw)


def relay(tls: TLSSocket) -> None:
    """stdin -> TLS (close_notify at EOF), TLS -> stdout, until the peer closes."""
    out = sys.stdout.buffer

    def pump_in() -> None:
        try:
            for line in sys.stdin.buffer:
                tls.sendall(line)
            tls.shutdown(socket.SHUT_WR)
        except (OSError, TLSError):
            pass

    threading.Thread(target=pump_in, daemon=True).start()
    tls.settimeout(None)
    while data := tls.recv(65536):
        out.write(data)
        out.flush()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = make_config(args)
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except (UsageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        tls = wrap_socket(sock, config, ktls_enabled=args.ktls)
        if not args.quiet:
            print("\n".join(summary_lines(tls)), flush=True)
        if args.send is not None:
            tls.sendall(args.send.encode() + b"\n")
            try:
                tls.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may have finished and closed already
            while data := tls.recv(65536):
                sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            relay(tls)
        tls.close()
        return 0
    except TLSError as exc:
        print(f"TLS failure: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
