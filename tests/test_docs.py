# The documentation and the package's promises about itself:
#   - the Sphinx build of docs/ succeeds with warnings as errors (a docstring
#     autodoc cannot read, a broken reference, a module that no longer
#     imports all fail it), and the API pages document the key classes;
#   - every script of docs/examples/ (the guide includes them) runs
#     against the real code, over loopback where it has a network side, and
#     prints what the guide says it prints;
#   - pyquic.__version__ and tls.__version__ are the installed distribution's
#     version (one source, tls/_version.py), and the py.typed markers ship in the wheel.
from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import pyquic
import tls
from tests.quic_peers import pki_files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"

# What each API page must document (anchors autodoc makes: one per object).
API_OBJECTS = {
    "quic": [
        "pyquic.config.QuicConfiguration",
        "pyquic.connection.QuicConnection",
        "pyquic.connection.QuicConnection.receive_datagram",
        "pyquic.connection.QuicConnection.datagrams_to_send",
        "pyquic.connection.QuicConnection.get_timer",
        "pyquic.connection.QuicConnection.handle_timer",
        "pyquic.connection.QuicConnection.next_event",
        "pyquic.endpoint.QuicEndpoint",
        "pyquic.events.StreamDataReceived",
        "pyquic.events.ConnectionTerminated",
        "pyquic.errors.TransportError",
    ],
    "asyncio": [
        "pyquic.asyncio.connect",
        "pyquic.asyncio.serve",
        "pyquic.asyncio.QuicServer",
        "pyquic.asyncio.QuicConnectionProtocol",
        "pyquic.asyncio.QuicConnectionProtocol.create_stream",
        "pyquic.asyncio.QuicConnectionProtocol.keep_alive",
        "pyquic.asyncio.Service",
        "pyquic.asyncio.ServiceRouter",
    ],
    "h3": [
        "pyquic.h3.connection.H3Connection",
        "pyquic.h3.connection.H3Connection.handle_event",
        "pyquic.h3.connection.H3Connection.send_headers",
        "pyquic.h3.connection.H3Connection.send_data",
        "pyquic.h3.events.HeadersReceived",
        "pyquic.h3.events.DataReceived",
        "pyquic.h3.errors.H3ErrorCode",
        "pyquic.asyncio.h3.connect_h3",
        "pyquic.asyncio.h3.serve_h3",
        "pyquic.asyncio.h3.H3Client",
        "pyquic.asyncio.h3.H3Request",
        "pyquic.asyncio.h3.H3Response",
    ],
    "hq": [
        "pyquic.hq.RequestParser",
        "pyquic.hq.encode_request",
        "pyquic.asyncio.hq.connect_hq",
        "pyquic.asyncio.hq.serve_hq",
        "pyquic.asyncio.hq.HqClient",
        "pyquic.asyncio.hq.hq_stream_handler",
    ],
    "tls": [
        "tls.engine.Engine",
        "tls.engine.Engine.receive",
        "tls.config.Config",
        "tls.config.ClientHelloInfo",
        "tls.events.HandshakeDataReady",
        "tls.events.KeyReady",
        "tls.errors.AlertError",
        "tls.tickets.TicketStore",
        "tls.profile.QUIC",
        "tls.enums.Level",
    ],
    "tls_tcp": [
        "tls.connection.TLSConnection",
        "tls.tcp.TLSSocket",
        "tls.tcp.open_connection",
        "tls.tcp.start_server",
        "tls.ktls.probe",
        "tls.tools.rpc.RpcClient",
        "tls.tools.rpc.RpcServer",
    ],
}

# What each example must print (and it must exit 0).  Every script in
# docs/examples/ needs an entry: an example nobody checks would rot.
EXAMPLE_OUTPUT = {
    "asyncio_echo.py": ["b'CIUQ ,olleh'", "ALPN: echo"],
    "asyncio_zero_rtt.py": ["b'sent in 0-RTT'", "resumed: True 0-RTT accepted: True"],
    "server_options.py": ["you sent 5000 bytes", "retry mode: auto"],
    "sans_io_echo.py": ["handshake complete, ALPN echo", "reply: b'HELLO'", "client: ['ConnectionTerminated']",
                        "server: ['ConnectionTerminated']"],
    "sans_io_h3.py": ["status b'200'", "body b'hello from /hello' ended"],
    "h3_hello.py": ["404 b'not found: /missing'", "200 text/plain b'HELLO'", "200 1000 lines, trailers: [(b'x-sha256'",
                    "[b'hello, 0', b'hello, 1', b'hello, 2', b'hello, 3', b'hello, 4']"],
    "tls_engine_pair.py": ["client TicketReceived()", "ALPN: demo", "tickets stored: 1", "resumed: True",
                           "handshake failed: bad_certificate"],
    "tls_tcp_echo.py": ["asyncio: b'hello from asyncio\\n'", "blocking: TLSv1.3", "blocking: kTLS active:",
                        "blocking: b'hello from a blocking socket\\n'"],
    "tls_connection_memory.py": ["DataReceived(18 bytes)", "client got b'HTTP/1.0 200 OK\\r\\n\\r\\nhello'",
                                 "closed by peer: True clean: True"],
    "rpc_tls_call.py": ["b'HELLO (over TLS)' - ALPN sunrpc"],
    "services_one_port.py": ["contents of report.txt - certificate: CN=localhost,O=pyquic test",
                             "200 web page /index.html - certificate: CN=localhost",
                             "other.example refused: no service for server name 'other.example'"],
    "hq_files.py": ["b'<h1>hello</h1>\\n'", "downloaded 1048576 bytes, same: True", "b'HTTP/3 says hello'"],
}


def example_scripts() -> list[str]:
    return sorted(path.name for path in EXAMPLES.glob("*.py"))


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """One build for the module: sphinx -W (warnings are errors), -E (no
    cache), --keep-going (report every warning, not just the first)."""
    out = tmp_path_factory.mktemp("docs") / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return out


def anchors(page: Path) -> set[str]:
    return set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', page.read_text()))


def test_the_docs_build_with_warnings_as_errors(html):
    for page in ("index", "ARCHITECTURE", "guide/client", "guide/server", "guide/sans_io", "guide/tls_engine",
                 "guide/tls_tcp", *(f"api/{name}" for name in API_OBJECTS)):
        assert (html / f"{page}.html").is_file(), page


@pytest.mark.parametrize("page", sorted(API_OBJECTS))
def test_api_pages_document_the_key_classes(html, page):
    documented = anchors(html / "api" / f"{page}.html")
    missing = [name for name in API_OBJECTS[page] if name not in documented]
    assert not missing, f"api/{page}.html does not document {missing}"


def test_the_guide_shows_every_example(html):
    """Each script is included in a guide page, whose HTML then holds its code."""
    sources = "".join(path.read_text() for path in (DOCS / "guide").glob("*.rst"))
    for name in example_scripts():
        assert f"examples/{name}" in sources, f"no guide page includes docs/examples/{name}"
    client = (html / "guide" / "client.html").read_text()
    assert "create_stream" in client and "connect_h3" in client


def test_every_example_has_expected_output():
    assert sorted(EXAMPLE_OUTPUT) == example_scripts()


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> Path:
    """cert.pem, key.pem and ca.pem, the names the examples read."""
    directory = tmp_path_factory.mktemp("example-pki")
    files = pki_files(directory / "pki")
    shutil.copy(files["server_chain"], directory / "cert.pem")
    shutil.copy(files["server_key"], directory / "key.pem")
    shutil.copy(files["ca"], directory / "ca.pem")
    return directory


@pytest.mark.parametrize("name", example_scripts())
def test_example_runs(credentials, name):
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=credentials, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    for expected in EXAMPLE_OUTPUT[name]:
        assert expected in result.stdout, f"{name}: {expected!r} not in its output:\n{result.stdout}"


# -- version and typing markers ---------------------------------------------------------


def test_version_is_the_installed_distributions():
    assert pyquic.__version__ == importlib.metadata.version("pyquic")
    assert tls.__version__ == importlib.metadata.version("pyquic")  # tls ships in the pyquic distribution


def test_one_version_source():
    """pyproject.toml takes its version from tls/_version.py, and both
    packages say that same version."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tls._version.__version__"}
    import tls._version

    assert pyquic.__version__ == tls.__version__ == tls._version.__version__


def test_py_typed_in_the_installed_packages():
    for package in ("pyquic", "tls"):
        assert (importlib.resources.files(package) / "py.typed").is_file(), package


def test_py_typed_ships_in_the_wheel(tmp_path):
    """A wheel built from the sources (without the C extension, which does
    not matter here) carries both markers."""
    source = tmp_path / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.o")
    for name in ("pyquic", "tls"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    env = dict(os.environ, PYQUIC_NO_EXTENSION="1")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("pyquic-*.whl")
    assert wheel.name.startswith(f"pyquic-{pyquic.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"pyquic/py.typed", "tls/py.typed"} <= names
