# RPC-with-TLS, the sans-I/O half (tls/rpc_tls.py): RFC 5531 messages and
# record marking, the RFC 9289 AUTH_TLS probe and the client policy, and the
# certificate identity a server maps to a user.
import datetime
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from tls import rpc_tls
from tls.rpc_tls import (
    AcceptedReply,
    AcceptStat,
    AuthFlavor,
    AuthStat,
    Call,
    DeniedReply,
    IdentityMap,
    OpaqueAuth,
    ProbeOutcome,
    RecordMarkingDecoder,
    RejectStat,
    RpcError,
    RpcTLSRequired,
    StartTLSClient,
    TLSPolicy,
    encode_record,
    parse_message,
)

PROG, VERS = 0x20000099, 1


def test_probe_call_bytes_are_exactly_rfc9289():
    wire = rpc_tls.probe_call(0x11223344, PROG, VERS).encode()
    assert wire == struct.pack(">10I", 0x11223344, 0, 2, PROG, VERS, 0, 7, 0, 0, 0)


def test_starttls_reply_bytes():
    wire = rpc_tls.starttls_reply(5).encode()
    # xid, REPLY, MSG_ACCEPTED, verf AUTH_NONE len 8 "STARTTLS", SUCCESS
    assert wire == struct.pack(">5I", 5, 1, 0, 0, 8) + b"STARTTLS" + struct.pack(">I", 0)


@pytest.mark.parametrize("message", [
    Call(1, PROG, VERS, 3, OpaqueAuth(AuthFlavor.AUTH_SYS, b"abcde"), OpaqueAuth(), b"\x00\x00\x00\x02hi\x00\x00"),
    AcceptedReply(2, OpaqueAuth(), AcceptStat.SUCCESS, b"\x00\x00\x00\x01"),
    AcceptedReply(3, OpaqueAuth(), AcceptStat.PROG_MISMATCH, b"", (1, 4)),
    AcceptedReply(4, OpaqueAuth(), AcceptStat.PROC_UNAVAIL),
    DeniedReply(5, RejectStat.AUTH_ERROR, AuthStat.AUTH_TOOWEAK),
    DeniedReply(6, RejectStat.RPC_MISMATCH, 0, (2, 2)),
])
def test_messages_round_trip(message):
    assert parse_message(message.encode()) == message


def test_opaque_auth_limits():
    with pytest.raises(RpcError):
        OpaqueAuth(1, bytes(401)).encode()
    wire = struct.pack(">6I", 1, 0, 2, PROG, VERS, 0) + struct.pack(">II", 1, 401) + bytes(404)
    with pytest.raises(RpcError):
        parse_message(wire)


@pytest.mark.parametrize("wire", [b"", b"\x00\x00\x00\x01", struct.pack(">II", 1, 2),
                                  struct.pack(">III", 1, 1, 7), struct.pack(">IIII", 1, 1, 1, 9),
                                  struct.pack(">IIIII", 1, 1, 1, 1, 0) + b"extra"])
def test_malformed_messages(wire):
    with pytest.raises(RpcError):
        parse_message(wire)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_parse_raises_only_rpc_error(data):
    try:
        parse_message(data)
    except RpcError:
        pass


# ---------------------------------------------------------------------------
# Record marking


def test_record_marking_fragments_and_last_bit():
    wire = encode_record(b"abcdefghij", fragment_size=4)
    assert wire == (b"\x00\x00\x00\x04abcd" + b"\x00\x00\x00\x04efgh" + b"\x80\x00\x00\x02ij")
    assert RecordMarkingDecoder().feed(wire) == [b"abcdefghij"]
    assert encode_record(b"") == b"\x80\x00\x00\x00"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5), st.integers(1, 50),
       st.lists(st.integers(1, 40), max_size=20))
def test_reassembly_under_any_cuts(messages, fragment_size, cuts):
    wire = b"".join(encode_record(m, fragment_size) for m in messages)
    decoder, got, pos = RecordMarkingDecoder(), [], 0
    for cut in cuts:
        got += decoder.feed(wire[pos:pos + cut])
        pos += cut
    got += decoder.feed(wire[pos:])
    assert got == messages and decoder.idle


def test_reassembly_caps_are_sticky():
    decoder = RecordMarkingDecoder(max_message=100)
    with pytest.raises(RpcError):
        decoder.feed(b"\x00\x00\x00\x50" + bytes(0x50) + b"\x80\x00\x00\x20")  # 0x50 + 0x20 = 112 bytes > 100
    decoder = RecordMarkingDecoder(max_message=100)
    with pytest.raises(RpcError):
        decoder.feed(b"\x80\x00\x10\x00")  # fails from the mark alone
    with pytest.raises(RpcError):
        decoder.feed(b"")
    decoder = RecordMarkingDecoder(max_fragments=3)
    with pytest.raises(RpcError):
        decoder.feed(b"\x00\x00\x00\x00" * 4)


def test_take_buffered_returns_bytes_after_the_last_message():
    decoder = RecordMarkingDecoder()
    assert decoder.feed(encode_record(b"msg") + b"\x16\x03\x01") == [b"msg"]
    assert decoder.take_buffered() == b"\x16\x03\x01"


# ---------------------------------------------------------------------------
# The probe and the policy


def server_answer(reply) -> bytes:
    return encode_record(reply.encode())


def test_policy_none_sends_nothing_and_stays_plain():
    client = StartTLSClient(TLSPolicy.NONE, 1, PROG, VERS)
    assert client.data_to_send() == b"" and client.outcome == ProbeOutcome.PLAIN


@pytest.mark.parametrize("policy", [TLSPolicy.AUTO, TLSPolicy.REQUIRED])
def test_starttls_answer_means_tls(policy):
    client = StartTLSClient(policy, 9, PROG, VERS)
    probe = parse_message(RecordMarkingDecoder().feed(client.data_to_send())[0])
    assert rpc_tls.is_tls_probe(probe) and probe.xid == 9
    wire = server_answer(rpc_tls.starttls_reply(9))
    assert client.receive_data(wire[:7]) == ProbeOutcome.PENDING
    assert client.receive_data(wire[7:]) == ProbeOutcome.USE_TLS


def test_starttls_verifier_wins_even_without_success():
    client = StartTLSClient(TLSPolicy.AUTO, 9, PROG, VERS)
    client.data_to_send()
    reply = AcceptedReply(9, OpaqueAuth(AuthFlavor.AUTH_NONE, b"STARTTLS"), AcceptStat.PROC_UNAVAIL)
    assert client.receive_data(server_answer(reply)) == ProbeOutcome.USE_TLS


@pytest.mark.parametrize("reply", [
    rpc_tls.bad_credential_reply(9),
    AcceptedReply(9, OpaqueAuth(), AcceptStat.SUCCESS),  # an old server that ignores the flavor
    AcceptedReply(9, OpaqueAuth(AuthFlavor.AUTH_SYS, b"STARTTLS")),
])
def test_no_starttls_means_plain_under_auto_and_refusal_under_required(reply):
    auto = StartTLSClient(TLSPolicy.AUTO, 9, PROG, VERS)
    assert auto.receive_data(server_answer(reply)) == ProbeOutcome.PLAIN
    required = StartTLSClient(TLSPolicy.REQUIRED, 9, PROG, VERS)
    with pytest.raises(RpcTLSRequired):
        required.receive_data(server_answer(reply))


def test_replies_to_other_xids_are_ignored():
    client = StartTLSClient(TLSPolicy.AUTO, 9, PROG, VERS)
    other = server_answer(rpc_tls.starttls_reply(8))
    assert client.receive_data(other) == ProbeOutcome.PENDING
    assert client.receive_data(server_answer(rpc_tls.starttls_reply(9))) == ProbeOutcome.USE_TLS


def test_server_speaking_after_the_reply_is_an_error():
    client = StartTLSClient(TLSPolicy.AUTO, 9, PROG, VERS)
    with pytest.raises(RpcError):
        client.receive_data(server_answer(rpc_tls.starttls_reply(9)) + b"\x16\x03")


def test_server_closing_on_the_probe():
    assert StartTLSClient(TLSPolicy.AUTO, 1, PROG, VERS).server_closed() == ProbeOutcome.PLAIN
    with pytest.raises(RpcTLSRequired):
        StartTLSClient(TLSPolicy.REQUIRED, 1, PROG, VERS).server_closed()


def test_policy_accepts_the_xprtsec_words():
    assert TLSPolicy("auto") is TLSPolicy.AUTO and TLSPolicy("required") is TLSPolicy.REQUIRED


# ---------------------------------------------------------------------------
# Identity


def make_cert(cn="client.example", sans=()):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


def utf8(text: str) -> bytes:
    raw = text.encode()
    return bytes((0x0C, len(raw))) + raw


def test_identity_from_san_othername_email_dns_and_cn():
    cert = make_cert(sans=[
        x509.OtherName(x509.ObjectIdentifier(rpc_tls.NFS_USER_OTHERNAME_OID), utf8("alice@example.org")),
        x509.RFC822Name("alice@mail.example"),
        x509.DNSName("host.example"),
    ])
    ident = rpc_tls.peer_identity([cert])
    assert ident.nfs_users == ("alice@example.org",)
    assert ident.emails == ("alice@mail.example",)
    assert ident.dns_names == ("host.example",)
    assert ident.common_name == "client.example"
    assert ident.candidates()[0] == "alice@example.org"
    assert len(ident.fingerprint_sha256) == 64


def test_identity_map():
    cert = make_cert(cn="bob")
    ident = rpc_tls.peer_identity([cert])
    assert IdentityMap({"bob": "uid-1001"}).user_for(ident) == "uid-1001"
    assert IdentityMap({}, default="nobody").user_for(ident) == "nobody"
    assert IdentityMap({}).user_for(None) is None
    assert IdentityMap({ident.fingerprint_sha256: "pinned"}).user_for(ident) == "pinned"
    assert rpc_tls.peer_identity([]) is None


def test_der_string_rejects_malformed_values():
    assert rpc_tls._der_string(b"\x0c\x05abc") == ""
    assert rpc_tls._der_string(b"\x04\x01a") == ""
    assert rpc_tls._der_string(b"\x0c\x81\x03abc") == "abc"


# ---------------------------------------------------------------------------
# Over TCP sockets (tls/tools/rpc.py): probe, STARTTLS, calls inside TLS,
# the identity a server sees, and each policy against servers with and
# without TLS.

from tls.config import Config, VerifyMode  # noqa: E402
from tls.tools.rpc import RpcClient, RpcServer  # noqa: E402

from .pki import make_test_pki  # noqa: E402

ECHO, WHOAMI = 1, 2


def echo_programs():
    def echo(args, ctx):
        return args

    def whoami(args, ctx):
        return rpc_tls.xdr_opaque((ctx.user or "anonymous").encode())

    return {(PROG, VERS): {ECHO: echo, WHOAMI: whoami}}


@pytest.fixture(scope="module")
def tls_pki():
    return make_test_pki()


def rpc_server(pki, tls=True, **kw):
    config = None
    if tls:
        config = Config(certificate_chain=pki.server.chain, private_key=pki.server.key,
                        verify_mode=VerifyMode.OPTIONAL, ca_certificates=[pki.ca])
    return RpcServer(("127.0.0.1", 0), echo_programs(), config=config, timeout=10, **kw).start()


def rpc_client_config(pki, cert=False):
    kw = {"certificate_chain": pki.client.chain, "private_key": pki.client.key} if cert else {}
    return Config(server_name="localhost", ca_certificates=[pki.ca], **kw)


def test_rpc_over_tls_with_identity_mapping(tls_pki):
    users = IdentityMap({"client.pyquic.test": "alice"})
    with rpc_server(tls_pki, identity_map=users) as server:
        with RpcClient(server.address, PROG, VERS, policy="required", config=rpc_client_config(tls_pki, cert=True),
                       timeout=10) as client:
            assert client.tls is not None and client.tls.selected_alpn_protocol() == "sunrpc"
            client.null()
            payload = rpc_tls.xdr_opaque(b"x" * 100000)
            assert client.call(ECHO, payload) == payload
            assert client.call(WHOAMI) == rpc_tls.xdr_opaque(b"alice")
            with pytest.raises(RpcError, match="PROC_UNAVAIL"):
                client.call(99)


def test_rpc_tls_without_client_certificate_is_anonymous(tls_pki):
    with rpc_server(tls_pki, identity_map=IdentityMap({})) as server:
        with RpcClient(server.address, PROG, VERS, policy="auto", config=rpc_client_config(tls_pki)) as client:
            assert client.tls is not None
            assert client.call(WHOAMI) == rpc_tls.xdr_opaque(b"anonymous")


def test_policy_auto_falls_back_to_plain_rpc(tls_pki):
    with rpc_server(tls_pki, tls=False) as server:
        with RpcClient(server.address, PROG, VERS, policy="auto", config=rpc_client_config(tls_pki)) as client:
            assert client.tls is None
            assert client.call(ECHO, b"\x00\x00\x00\x00") == b"\x00\x00\x00\x00"


def test_policy_required_refuses_a_plain_server(tls_pki):
    with rpc_server(tls_pki, tls=False) as server:
        with pytest.raises(RpcTLSRequired):
            RpcClient(server.address, PROG, VERS, policy="required", config=rpc_client_config(tls_pki))


def test_policy_none_talks_plain_to_a_tls_server(tls_pki):
    with rpc_server(tls_pki) as server:
        with RpcClient(server.address, PROG, VERS, policy="none") as client:
            assert client.tls is None and client.call(ECHO, b"abcd") == b"abcd"


def test_server_requiring_tls_refuses_plain_calls(tls_pki):
    with rpc_server(tls_pki, require_tls=True) as server:
        with RpcClient(server.address, PROG, VERS, policy="none") as client:
            with pytest.raises(RpcError, match="AUTH_ERROR AUTH_TOOWEAK"):
                client.call(ECHO, b"abcd")


def test_program_and_version_errors(tls_pki):
    with rpc_server(tls_pki) as server:
        with RpcClient(server.address, PROG + 1, VERS, policy="none") as client:
            with pytest.raises(RpcError, match="PROG_UNAVAIL"):
                client.call(ECHO)
        with RpcClient(server.address, PROG, VERS + 1, policy="none") as client:
            with pytest.raises(RpcError, match="PROG_MISMATCH"):
                client.call(ECHO)


def test_the_example_runs(tmp_path):
    """examples/rpc_tls: demo PKI, server, and the client with and without
    its certificate (the server maps the certificate to a user)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "rpc_tls"
    py = sys.executable
    subprocess.run([py, str(example / "demo_pki.py"), str(tmp_path)], check=True, capture_output=True, timeout=30)
    server = subprocess.Popen([py, str(example / "server.py"), "--pki", str(tmp_path), "--user",
                               "alice@example.org=alice", "--seconds", "20"], stdout=subprocess.PIPE, text=True)
    try:
        port = re.match(r"ACCEPT .*:(\d+)", server.stdout.readline()).group(1)
        run = lambda *extra: subprocess.run([py, str(example / "client.py"), "127.0.0.1", port, "--pki", str(tmp_path),
                                            *extra], capture_output=True, text=True, timeout=30)
        with_cert = run()
        assert with_cert.returncode == 0, with_cert.stderr
        assert "ALPN sunrpc" in with_cert.stdout and "WHOAMI: alice" in with_cert.stdout
        anonymous = run("--no-cert")
        assert "WHOAMI: nobody" in anonymous.stdout
        plain = run("--policy", "none")
        assert plain.returncode == 1 and "AUTH_TOOWEAK" in plain.stderr
    finally:
        server.terminate()
        server.wait(10)
