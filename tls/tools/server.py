# `python -m tls.tools.server`: a TLS 1.3 server for debugging, in the manner
# of `openssl s_server`.  It prints "ACCEPT host:port" when listening, a
# summary of each connection (stderr), and either echoes what it receives,
# sends a file and closes, or (--www, like `s_server -www`) answers one HTTP
# request with a small status page, sends close_notify and closes.
# --self-signed makes a throwaway certificate for "localhost" so it runs
# without any files.
from __future__ import annotations

import argparse
import datetime
import ipaddress
import socket
import sys
import threading

from ..config import DEFAULT_MAX_HANDSHAKE_MESSAGE, MAX_CLIENT_HELLO_BODY, Config, VerifyMode
from ..enums import CipherSuite, Group
from ..errors import TLSError, UsageError
from ..tcp import TLSSocket, wrap_socket
from .client import parse_list, summary_lines


def self_signed_credentials(days: int = 1):
    """An ECDSA P-256 key and a self-signed certificate for localhost (DNS
    localhost, IP 127.0.0.1 and ::1), valid for `days`.  It carries what a
    verifier with the web PKI's rules wants even of a trust anchor that is
    its own leaf (``--cafile cert.pem``): CA:FALSE and key identifiers."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return [cert], key


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tls.tools.server", description="TLS 1.3 echo / file server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4433, help="0 picks a free port (see the ACCEPT line)")
    p.add_argument("--cert", help="certificate chain (PEM)")
    p.add_argument("--key", help="private key (PEM); default: in --cert")
    p.add_argument("--self-signed", action="store_true", help="use a throwaway certificate for localhost")
    p.add_argument("--cafile", help="trust anchors for client certificates")
    p.add_argument("--verify", choices=["none", "optional", "required"], default="none",
                   help="ask for a client certificate")
    p.add_argument("--alpn", action="append", default=[], help="accept this ALPN protocol (repeatable)")
    p.add_argument("--groups", help="e.g. P-256:X25519 (preference order)")
    p.add_argument("--ciphersuites", help="e.g. TLS_AES_256_GCM_SHA384")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--file", help="send this file to each client, then close (default: echo)")
    mode.add_argument("--www", action="store_true",
                      help="answer one HTTP request per connection with a status page, then close")
    p.add_argument("--count", type=int, default=0, help="stop after this many connections (0: never)")
    p.add_argument("--max-early-data", type=int, default=0, help="accept this much 0-RTT data")
    p.add_argument("--ktls", action="store_true", help="hand the keys to kernel TLS after the handshake")
    p.add_argument("--keylog", help="append NSS key log lines to this file")
    p.add_argument("--max-client-hello", type=int, default=MAX_CLIENT_HELLO_BODY, metavar="N",
                   help=f"largest ClientHello accepted, in bytes (default {MAX_CLIENT_HELLO_BODY}: any legal one)")
    p.add_argument("--max-handshake-buffer", type=int, default=DEFAULT_MAX_HANDSHAKE_MESSAGE, metavar="N",
                   help=f"largest other handshake message, and bytes buffered ahead (default {DEFAULT_MAX_HANDSHAKE_MESSAGE})")
    p.add_argument("--timeout", type=float, default=60.0)
    return p


def make_config(args) -> Config:
    kw: dict = {"max_early_data": args.max_early_data, "max_client_hello": args.max_client_hello,
                "max_handshake_buffer": args.max_handshake_buffer}
    if args.self_signed:
        kw["certificate_chain"], kw["private_key"] = self_signed_credentials()
    elif args.cert:
        kw["certificate_chain"] = args.cert
        kw["private_key"] = args.key or args.cert
    else:
        raise UsageError("give --cert (and --key) or --self-signed")
    if args.alpn:
        kw["alpn_protocols"] = args.alpn
    if args.cafile:
        kw["cafile"] = args.cafile
    kw["verify_mode"] = {"none": VerifyMode.NONE, "optional": VerifyMode.OPTIONAL,
                         "required": VerifyMode.REQUIRED}[args.verify]
    groups = parse_list(args.groups, Group)
    if groups:
        kw["groups"] = groups
    suites = parse_list(args.ciphersuites, CipherSuite)
    if suites:
        kw["cipher_suites"] = suites
    if args.keylog:
        kw["keylog"] = args.keylog
    return Config(**kw)


def serve_one(sock: socket.socket, peer, config: Config, args) -> None:
    log = sys.stderr
    try:
        tls = wrap_socket(sock, config, server_side=True, ktls_enabled=args.ktls)
    except (TLSError, OSError) as exc:
        print(f"{peer[0]}:{peer[1]} handshake failed: {exc}", file=log, flush=True)
        sock.close()
        return
    print(f"{peer[0]}:{peer[1]}\n  " + "\n  ".join(summary_lines(tls)), file=log, flush=True)
    try:
        if args.file:
            with open(args.file, "rb") as f:
                while chunk := f.read(1 << 20):
                    tls.sendall(chunk)
            _close_and_drain(tls)
        elif args.www:
            _www(tls)
        else:
            _echo(tls)
        tls.close()
    except (TLSError, OSError) as exc:
        print(f"{peer[0]}:{peer[1]} ended: {exc}", file=log, flush=True)
        sock.close()


def _close_and_drain(tls: TLSSocket) -> None:
    # close_notify and FIN, then read to the client's close: closing with
    # unread input would make the kernel reset the connection.  A client that
    # closes without reading our close_notify resets it instead; everything
    # was sent by then, so that ends the connection quietly.
    tls.shutdown(socket.SHUT_WR)
    try:
        while tls.recv(65536):
            pass
    except ConnectionResetError:
        pass


def _echo(tls: TLSSocket) -> None:
    while data := tls.recv(65536):
        tls.sendall(data)


MAX_HTTP_REQUEST = 16384  # bytes of request head read before answering 400


def _www(tls: TLSSocket) -> None:
    """One HTTP/1.0 exchange, as `openssl s_server -www` does: read the
    request head (to the blank line), answer a small text/plain page saying
    what was negotiated, then close_notify and close."""
    head = bytearray()
    while not (complete := b"\r\n\r\n" in head or b"\n\n" in head) and len(head) <= MAX_HTTP_REQUEST:
        data = tls.recv(4096)
        if not data:
            return  # the client left without a request
        head += data
    request_line = bytes(head).split(b"\n", 1)[0].rstrip(b"\r")[:256].decode("latin-1")
    parts = request_line.split()
    if not complete:
        status, body = "400 Bad Request", "request head too long\n"
    elif len(parts) != 3 or not parts[2].startswith("HTTP/"):
        status, body = "400 Bad Request", "malformed request line\n"
    elif parts[0] not in ("GET", "HEAD"):
        status, body = "501 Not Implemented", f"method {parts[0]} is not supported here\n"
    else:
        status = "200 OK"
        body = "\n".join([
            "pyquic tls test server (python -m tls server --www)",
            f"Your request: {request_line}",
            *summary_lines(tls),
            "",
        ])
    payload = body.encode("utf-8")
    response = (
        f"HTTP/1.0 {status}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    tls.sendall(response if parts[:1] == ["HEAD"] else response + payload)
    _close_and_drain(tls)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = make_config(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    listener = socket.create_server((args.host, args.port))
    host, port = listener.getsockname()[:2]
    print(f"ACCEPT {host}:{port}", flush=True)
    served = 0
    threads = []
    try:
        while not args.count or served < args.count:
            sock, peer = listener.accept()
            sock.settimeout(args.timeout)
            served += 1
            thread = threading.Thread(target=serve_one, args=(sock, peer, config, args), daemon=True)
            threads.append(thread)
            thread.start()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        for thread in threads:
            thread.join(args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
