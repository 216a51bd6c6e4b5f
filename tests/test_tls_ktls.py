# Linux kTLS hand-off (tls/ktls.py): the crypto_info layouts against the
# kernel's own header (a C program compiled here prints sizeof/offsetof and
# fills the structs), detection with its reason, the fallback leaving the
# socket untouched, and control-message parsing with a stand-in socket.
# The real hand-off needs a kernel with the "tls" ULP; where it is missing
# (as on the machine this was written on) that one test is skipped and says
# so.
import errno
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tls import ktls
from tls.enums import AlertDescription, ContentType, Level
from tls.errors import AlertError
from tls.record import CipherState, RecordLayer

HEADER = Path("/usr/include/linux/tls.h")

C_PROGRAM = r"""
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/tls.h>
#ifndef SOL_TLS
#define SOL_TLS -1
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

static unsigned char key[32], iv[12];
static unsigned long long seq = 0x0102030405060708ULL;

static void put_seq(unsigned char *out) {
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(seq >> (56 - 8 * i));
}
static void dump(const char *name, const void *p, size_t n) {
    printf("%s ", name);
    for (size_t i = 0; i < n; i++) printf("%02x", ((const unsigned char *)p)[i]);
    printf("\n");
}
#define LAYOUT(S) printf(#S " %zu %zu %zu %zu %zu %zu %zu\n", sizeof(struct S), \
    offsetof(struct S, info.version), offsetof(struct S, info.cipher_type), offsetof(struct S, iv), \
    offsetof(struct S, key), offsetof(struct S, salt), offsetof(struct S, rec_seq))

int main(void) {
    for (int i = 0; i < 32; i++) key[i] = 0xa0 + i;
    for (int i = 0; i < 12; i++) iv[i] = 0x10 + i;
    printf("const %d %d %d %d %d %d %d %d %d\n", SOL_TLS, TLS_TX, TLS_RX, TLS_SET_RECORD_TYPE,
           TLS_GET_RECORD_TYPE, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256,
           TLS_CIPHER_CHACHA20_POLY1305);
    printf("tcp_ulp %d\n", TCP_ULP);
    LAYOUT(tls12_crypto_info_aes_gcm_128);
    LAYOUT(tls12_crypto_info_aes_gcm_256);
    LAYOUT(tls12_crypto_info_chacha20_poly1305);
    struct tls12_crypto_info_aes_gcm_128 a; memset(&a, 0, sizeof a);
    a.info.version = TLS_1_3_VERSION; a.info.cipher_type = TLS_CIPHER_AES_GCM_128;
    memcpy(a.salt, iv, 4); memcpy(a.iv, iv + 4, 8); memcpy(a.key, key, 16); put_seq(a.rec_seq);
    dump("fill_1301", &a, sizeof a);
    struct tls12_crypto_info_aes_gcm_256 b; memset(&b, 0, sizeof b);
    b.info.version = TLS_1_3_VERSION; b.info.cipher_type = TLS_CIPHER_AES_GCM_256;
    memcpy(b.salt, iv, 4); memcpy(b.iv, iv + 4, 8); memcpy(b.key, key, 32); put_seq(b.rec_seq);
    dump("fill_1302", &b, sizeof b);
    struct tls12_crypto_info_chacha20_poly1305 c; memset(&c, 0, sizeof c);
    c.info.version = TLS_1_3_VERSION; c.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
    memcpy(c.iv, iv, 12); memcpy(c.key, key, 32); put_seq(c.rec_seq);
    dump("fill_1303", &c, sizeof c);
    return 0;
}
"""


@pytest.fixture(scope="module")
def kernel_header_facts(tmp_path_factory):
    assert HEADER.exists(), "install linux-libc-dev for /usr/include/linux/tls.h"
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to check the struct layouts"
    workdir = tmp_path_factory.mktemp("ktls_layout")
    src, exe = workdir / "layout.c", workdir / "layout"
    src.write_text(C_PROGRAM)
    subprocess.run([cc, "-Wall", "-Werror", "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    facts = {}
    for line in out.splitlines():
        name, *values = line.split()
        facts[name] = values
    return facts


def test_constants_match_the_kernel_header(kernel_header_facts):
    sol_tls, tx, rx, set_type, get_type, v13, gcm128, gcm256, chacha = map(int, kernel_header_facts["const"])
    if sol_tls != -1:  # glibc headers that predate SOL_TLS leave it out
        assert sol_tls == ktls.SOL_TLS
    assert (tx, rx) == (ktls.TLS_TX, ktls.TLS_RX)
    assert (set_type, get_type) == (ktls.TLS_SET_RECORD_TYPE, ktls.TLS_GET_RECORD_TYPE)
    assert v13 == ktls.TLS_1_3_VERSION == 0x0304
    assert (gcm128, gcm256, chacha) == (
        ktls.TLS_CIPHER_AES_GCM_128, ktls.TLS_CIPHER_AES_GCM_256, ktls.TLS_CIPHER_CHACHA20_POLY1305)
    assert int(kernel_header_facts["tcp_ulp"][0]) == ktls.TCP_ULP


@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303])
def test_struct_layout_matches_sizeof_and_offsetof(kernel_header_facts, suite):
    kc = ktls.KERNEL_CIPHERS[suite]
    size, off_version, off_type, off_iv, off_key, off_salt, off_seq = map(
        int, kernel_header_facts[kc.struct_name])
    assert kc.size == size
    assert (off_version, off_type) == (0, 2)
    assert off_iv == 4
    assert off_key == off_iv + kc.iv_size
    assert off_salt == off_key + kc.key_size
    assert off_seq == off_salt + kc.salt_size
    assert size == off_seq + kc.rec_seq_size


@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303])
def test_crypto_info_bytes_equal_the_struct_c_fills(kernel_header_facts, suite):
    kc = ktls.KERNEL_CIPHERS[suite]
    key = bytes(0xA0 + i for i in range(kc.key_size))
    iv = bytes(0x10 + i for i in range(12))
    state = CipherState(suite, key, iv, 0x0102030405060708, Level.APPLICATION)
    assert ktls.crypto_info(state).hex() == kernel_header_facts[f"fill_{suite:04x}"][0]


def test_crypto_info_uses_the_record_layers_key_iv_and_next_sequence():
    layer = RecordLayer()
    layer.set_write_key(0x1301, bytes(range(32)))
    layer.write(ContentType.APPLICATION_DATA, b"x")
    layer.data_to_send()
    state = layer.write_state()
    info = ktls.crypto_info(state)
    assert info[4:12] == state.iv[4:] and info[12:28] == state.key
    assert info[28:32] == state.iv[:4] and info[32:] == (1).to_bytes(8, "big")


def test_crypto_info_refuses_what_the_kernel_cannot_take():
    with pytest.raises(ktls.KTLSUnavailable):
        ktls.crypto_info(CipherState(0x1304, bytes(16), bytes(12), 0, Level.APPLICATION))
    with pytest.raises(ValueError):
        ktls.crypto_info(CipherState(0x1301, bytes(32), bytes(12), 0, Level.APPLICATION))


# ---------------------------------------------------------------------------
# Detection and fallback on this kernel


def connected_pair():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
        server.settimeout(5)
    return client, server


def test_probe_reports_a_reason_either_way():
    status = ktls.probe(refresh=True)
    assert status.reason
    listed = ktls.available_ulps()
    if not status.available:
        assert ktls.UNAVAILABLE_REASON in status.reason
        assert "ENOENT" in status.reason
        if listed is not None:
            assert "tls" not in listed
    print(status)  # visible with -s: says whether this kernel has kTLS


def test_hand_off_falls_back_with_the_reason_and_leaves_the_socket_usable():
    status = ktls.probe()
    if status.available:
        pytest.skip("this kernel has kTLS; the fallback path is not taken here")
    client, server = connected_pair()
    with client, server:
        state = CipherState(0x1301, bytes(16), bytes(12), 0, Level.APPLICATION)
        result = ktls.hand_off(client, state, state)
        assert result.kernel is None and not result.tx and not result.rx
        assert ktls.UNAVAILABLE_REASON in result.reason
        client.sendall(b"still plain TCP")
        assert server.recv(100) == b"still plain TCP"


def test_unsupported_suite_is_a_fallback_reason_not_an_error():
    client, server = connected_pair()
    with client, server:
        result = ktls.hand_off(client, CipherState(0x1304, b"", b"", 0, Level.APPLICATION), None)
        assert result.kernel is None and "0x1304" in result.reason


def test_attach_ulp_on_an_unconnected_socket_says_so():
    with socket.socket() as sock:
        with pytest.raises(ktls.KTLSUnavailable) as err:
            ktls.attach_ulp(sock)
        assert err.value.reason


# ---------------------------------------------------------------------------
# Control messages, with a stand-in socket


class FakeSocket:
    def __init__(self, result=None, error=None):
        self.result, self.error, self.sent = result, error, []

    def recvmsg(self, bufsize, ancbufsize):
        assert ancbufsize >= socket.CMSG_SPACE(1)
        if self.error:
            raise OSError(self.error, os.strerror(self.error))
        return self.result

    def sendmsg(self, buffers, ancdata):
        self.sent.append((b"".join(bytes(b) for b in buffers), ancdata))
        return sum(len(b) for b in buffers)

    def sendall(self, data):
        self.sent.append((bytes(data), None))


def test_recv_record_reads_the_record_type_from_the_control_message():
    sock = FakeSocket((b"\x04\x00\x00\x05ticket", [(ktls.SOL_TLS, ktls.TLS_GET_RECORD_TYPE, b"\x16")], 0, None))
    assert ktls.KernelTLS(sock, True, True).recv_record() == (ContentType.HANDSHAKE, b"\x04\x00\x00\x05ticket")
    sock = FakeSocket((b"data", [], 0, None))
    assert ktls.KernelTLS(sock, True, True).recv_record() == (ContentType.APPLICATION_DATA, b"data")


@pytest.mark.parametrize("err,alert", [(errno.EBADMSG, AlertDescription.bad_record_mac),
                                       (errno.EMSGSIZE, AlertDescription.record_overflow)])
def test_recv_record_maps_kernel_errors_to_alerts(err, alert):
    with pytest.raises(AlertError) as exc:
        ktls.KernelTLS(FakeSocket(error=err), True, True).recv_record()
    assert exc.value.description == alert


def test_recv_record_reports_a_pending_key_update():
    with pytest.raises(ktls.KeyExpired):
        ktls.KernelTLS(FakeSocket(error=ktls.EKEYEXPIRED), True, True).recv_record()


def test_recv_record_rejects_an_unknown_type():
    sock = FakeSocket((b"x", [(ktls.SOL_TLS, ktls.TLS_GET_RECORD_TYPE, b"\x63")], 0, None))
    with pytest.raises(AlertError):
        ktls.KernelTLS(sock, True, True).recv_record()


def test_send_record_sets_the_type_for_non_application_records():
    sock = FakeSocket()
    kernel = ktls.KernelTLS(sock, True, True)
    kernel.send_record(ContentType.ALERT, b"\x01\x00")
    kernel.send_record(ContentType.APPLICATION_DATA, b"app")
    assert sock.sent == [(b"\x01\x00", [(ktls.SOL_TLS, ktls.TLS_SET_RECORD_TYPE, b"\x15")]), (b"app", None)]


# ---------------------------------------------------------------------------
# The real hand-off (needs the kernel's tls ULP)


def test_kernel_hand_off_round_trip():
    """The project's one allowed skip: it runs only where the kernel has kTLS."""
    if not ktls.probe().available:
        pytest.skip("kernel lacks the tls ULP (kTLS)")
    for suite in (0x1301, 0x1302, 0x1303):
        kernel_round_trip(suite)


def kernel_round_trip(suite):
    secret_c2s, secret_s2c = os.urandom(48), os.urandom(48)
    client, server = connected_pair()
    with client, server:
        user = RecordLayer()  # the server side stays in user space
        user.set_write_key(suite, secret_s2c)
        user.set_read_key(suite, secret_c2s)
        user.handshaking = False
        mirror = RecordLayer()  # the client's keys, to build CipherStates
        mirror.set_write_key(suite, secret_c2s)
        mirror.set_read_key(suite, secret_s2c)
        result = ktls.hand_off(client, mirror.write_state(), mirror.read_state())
        assert result.tx and result.rx, result.reason
        kernel = result.kernel
        kernel.send_record(ContentType.APPLICATION_DATA, b"from the kernel" * 1000)
        received = b""
        while len(received) < 15000:
            user.receive_data(server.recv(65536))
            while (record := user.next_record()) is not None:
                received += record.content
        assert received == b"from the kernel" * 1000
        user.write(ContentType.HANDSHAKE, b"\x04\x00\x00\x04tick")
        user.write(ContentType.APPLICATION_DATA, b"to the kernel")
        server.sendall(user.data_to_send())
        assert kernel.recv_record() == (ContentType.HANDSHAKE, b"\x04\x00\x00\x04tick")
        assert kernel.recv_record() == (ContentType.APPLICATION_DATA, b"to the kernel")
