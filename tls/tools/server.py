# `python -m tls.tools.server`: a TLS 1.3 server for debugging, in the manner
# of `openssl s_server`.  It prints "ACCEPT host:port" when listening, a
# summary of each connection (stderr), and either echoes what it receives
# or sends a file and closes.  --self-signed makes a throwaway certificate
# for "localhost" so it runs without any files.
from __future__ import annotations

import argparse
import datetime
import ipaddress
import socket
import sys
import threading

from ..config import Config, VerifyMode
from ..enums import CipherSuite, Group
from ..errors import TLSError, UsageError
from ..tcp import TLSSocket, wrap_socket
from .client import parse_list, summary_lines


def self_signed_credentials():
    """An ECDSA P-256 key and a self-signed certificate for localhost."""
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
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
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
    p.add_argument("--file", help="send this file to each client, then close (default: echo)")
    p.add_argument("--count", type=int, default=0, help="stop after this many connections (0: never)")
    p.add_argument("--max-early-data", type=int, default=0, help="accept this much 0-RTT data")
    p.add_argument("--ktls", action="store_true", help="hand the keys to kernel TLS after the handshake")
    p.add_argument("--keylog", help="append NSS key log lines to this file")
    p.add_argument("--timeout", type=float, default=60.0)
    return p


def make_config(args) -> Config:
    kw: dict = {"max_early_data": args.max_early_data}
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
            # close_notify and FIN, then read to the client's close: closing
            # with unread input would make the kernel reset the connection.
            tls.shutdown(socket.SHUT_WR)
            while tls.recv(65536):
                pass
        else:
            _echo(tls)
        tls.close()
    except (TLSError, OSError) as exc:
        print(f"{peer[0]}:{peer[1]} ended: {exc}", file=log, flush=True)
        sock.close()


def _echo(tls: TLSSocket) -> None:
    while data := tls.recv(65536):
        tls.sendall(data)


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
