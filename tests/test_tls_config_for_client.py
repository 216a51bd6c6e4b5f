# tls.Config.config_for_client: a server picks each client's Config from its
# first ClientHello (SNI and ALPN), as one port serving several names and
# protocols needs.  Paired engines in memory; the chosen certificate, ALPN and
# client verification are what the client sees, through a HelloRetryRequest
# too; a refusal is the application's own alert; a broken callback is an
# internal_error alert, never a stray exception.
from __future__ import annotations

import pytest

import tls
from tls import AlertDescription as AD
from tls import Group

from .pki import make_test_pki
from .tls_engine_driver import Pair


@pytest.fixture(scope="module")
def pki():
    return make_test_pki()


def _router(pki, seen: list, **smb_kw):
    web = tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key, alpn_protocols=["h3"])
    files = tls.Config(certificate_chain=pki.wrong_host.chain, private_key=pki.wrong_host.key,
                       alpn_protocols=["smb"], **smb_kw)

    def choose(hello: tls.ClientHelloInfo):
        seen.append(hello)
        if hello.server_name == "wrong.example" and "smb" in hello.alpn_protocols:
            return files
        if hello.server_name == "unknown.example":
            raise tls.AlertError(AD.unrecognized_name, "no such service")
        return None if hello.server_name == "localhost" else web

    # The outer Config's own credentials serve whoever the callback leaves alone.
    outer = tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key,
                       alpn_protocols=["h3", "smb"], config_for_client=choose)
    return outer


def _client(pki, name: str, alpn, **kw) -> tls.Config:
    return tls.Config(server_name=name, trust_store=pki.trust_store(), alpn_protocols=alpn, **kw)


def test_sni_and_alpn_pick_the_certificate_and_protocol(pki):
    seen: list = []
    p = Pair(_client(pki, "wrong.example", ["h3", "smb"]), _router(pki, seen)).handshake()
    assert p.client.engine.handshake_complete and p.server.engine.handshake_complete
    assert p.client.engine.negotiated.alpn == "smb"
    assert p.client.engine.peer_certificates[0] == pki.wrong_host.cert
    (hello,) = seen
    assert hello.server_name == "wrong.example"
    assert hello.alpn_protocols == ("h3", "smb")
    assert Group.X25519 in hello.groups and hello.cipher_suites and hello.signature_schemes

    seen.clear()
    p = Pair(_client(pki, "localhost", ["h3", "smb"]), _router(pki, seen)).handshake()
    assert p.client.engine.negotiated.alpn == "h3"  # the outer Config, kept (None returned)
    assert p.client.engine.peer_certificates[0] == pki.server.cert


def test_the_choice_holds_through_hello_retry_request(pki):
    seen: list = []
    router = _router(pki, seen)
    files_hrr = tls.Config(certificate_chain=pki.wrong_host.chain, private_key=pki.wrong_host.key,
                           alpn_protocols=["smb"], groups=[Group.SECP256R1])

    def choose(hello):
        seen.append(hello)
        return files_hrr

    import dataclasses

    router = dataclasses.replace(router, config_for_client=choose)
    client = _client(pki, "wrong.example", ["smb"], groups=[Group.X25519, Group.SECP256R1],
                     key_share_groups=[Group.X25519])
    p = Pair(client, router).handshake()
    assert p.client.engine.negotiated.group == Group.SECP256R1  # the chosen Config's groups, via HRR
    assert p.client.engine.negotiated.alpn == "smb"
    assert p.client.engine.peer_certificates[0] == pki.wrong_host.cert
    assert len(seen) == 1  # called once, for the first ClientHello


def test_chosen_config_asks_for_a_client_certificate(pki):
    seen: list = []
    router = _router(pki, seen, verify_mode=tls.VerifyMode.REQUIRED, trust_store=pki.trust_store())
    client = _client(pki, "wrong.example", ["smb"], certificate_chain=pki.client.chain, private_key=pki.client.key)
    p = Pair(client, router).handshake()
    assert p.server.engine.peer_certificates[0] == pki.client.cert
    # Without a certificate, the chosen Config's REQUIRED is enforced.
    with pytest.raises(tls.AlertError) as info:
        Pair(_client(pki, "wrong.example", ["smb"]), _router(pki, [], verify_mode=tls.VerifyMode.REQUIRED,
                                                              trust_store=pki.trust_store())).handshake()
    assert info.value.description == AD.certificate_required


def test_refusal_is_the_applications_alert(pki):
    with pytest.raises(tls.AlertError) as info:
        Pair(_client(pki, "unknown.example", ["h3"], check_hostname=False), _router(pki, [])).handshake()
    assert info.value.description == AD.unrecognized_name


@pytest.mark.parametrize("bad", ["raises", "not a config", "no credentials"])
def test_a_broken_callback_is_an_internal_error_alert(pki, bad):
    def choose(hello):
        if bad == "raises":
            raise KeyError("oops")
        if bad == "not a config":
            return "files"
        return tls.Config(alpn_protocols=["h3"])  # a client-style Config: nothing to authenticate with

    server = tls.Config(certificate_chain=pki.server.chain, private_key=pki.server.key,
                        alpn_protocols=["h3"], config_for_client=choose)
    with pytest.raises(tls.AlertError) as info:
        Pair(_client(pki, "localhost", ["h3"]), server).handshake()
    assert info.value.description == AD.internal_error


def test_config_for_client_must_be_callable():
    with pytest.raises(tls.UsageError):
        tls.Config(alpn_protocols=["h3"], config_for_client="files")
