# The import rules of ARCHITECTURE.md, enforced on the source text (ast), so a
# violation fails even in code no other test reaches:
#   - nothing under tls/ imports pyquic;
#   - nothing under pyquic/ outside pyquic/asyncio/ and the command-line tools
#     (pyquic/tools/, pyquic/client.py, pyquic/server.py) imports socket, asyncio,
#     selectors or time (time and I/O come in as arguments: sans-I/O), nor
#     datetime, random or secrets (the other ways to read a clock or draw
#     randomness), nor names os.urandom / os.getrandom (randomness comes in
#     as `entropy`);
#   - nothing under tls/ outside its TCP drivers (tcp.py, ktls.py) and its
#     command-line tools (tls/tools/, __main__.py) imports the I/O modules
#     either (tls/ keeps datetime for certificate dates and an os.urandom
#     default entropy: those rules are pyquic's only, for now).
# And the behaviour behind the rules: the core refuses to be built without
# entropy or a wall clock, with a UsageError saying which.
import ast
from pathlib import Path

import pytest

from pyquic.config import QuicConfiguration
from pyquic.connection import QuicConnection
from pyquic.endpoint import QuicEndpoint
from pyquic.errors import UsageError
from tests.quic_pair import client_configuration, seeded_entropy, server_configuration

ROOT = Path(__file__).resolve().parents[1]
IO_MODULES = {"socket", "asyncio", "selectors", "time"}
# The pyquic core reads no clock and draws no randomness in any way.
CORE_FORBIDDEN = IO_MODULES | {"datetime", "random", "secrets"}
OS_RANDOMNESS = {"urandom", "getrandom"}
# tls/ files that are I/O drivers or command-line tools by design.
TLS_IO_ALLOWED = {"tcp.py", "ktls.py", "__main__.py"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant):
                roots.add(str(node.args[0].value).split(".")[0])
    return roots


def os_randomness_uses(path: Path) -> list[str]:
    """Every way the file reaches os.urandom / os.getrandom: `from os import
    urandom`, attribute access on a name bound to the os module (`os.urandom`,
    `import os as o; o.urandom`), getattr(os, "urandom")."""
    tree = ast.parse(path.read_text(), filename=str(path))
    os_names = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names.update(alias.asname for alias in node.names if alias.name == "os" and alias.asname)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in ("os", "posix", "nt"):
            uses += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names if a.name in OS_RANDOMNESS]
        elif isinstance(node, ast.Attribute) and node.attr in OS_RANDOMNESS:
            if isinstance(node.value, ast.Name) and node.value.id in os_names:
                uses.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) >= 2:
            target, name = node.args[0], node.args[1]
            if isinstance(target, ast.Name) and target.id in os_names and isinstance(name, ast.Constant):
                if name.value in OS_RANDOMNESS:
                    uses.append(f"line {node.lineno}: getattr({target.id}, {name.value!r})")
    return uses


def python_files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def test_the_packages_exist():
    assert python_files("tls") and python_files("pyquic")


@pytest.mark.parametrize("path", python_files("tls"), ids=lambda p: str(p.relative_to(ROOT)))
def test_tls_is_independent_of_quic_and_io(path):
    roots = imported_roots(path)
    assert "pyquic" not in roots, f"{path} imports pyquic"
    if path.name not in TLS_IO_ALLOWED and path.relative_to(ROOT / "tls").parts[0] != "tools":
        assert not roots & IO_MODULES, f"{path} imports {roots & IO_MODULES}"


# pyquic/ parts that do I/O by design: the asyncio layer and the command-line
# tools (as tls/tools/ is for tls).
PYQUIC_IO_ALLOWED = {"asyncio", "tools", "client.py", "server.py"}
CORE = [p for p in python_files("pyquic") if p.relative_to(ROOT / "pyquic").parts[0] not in PYQUIC_IO_ALLOWED]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_quic_core_is_sans_io(path):
    roots = imported_roots(path)
    assert not roots & CORE_FORBIDDEN, f"{path} imports {roots & CORE_FORBIDDEN}"
    assert not os_randomness_uses(path), f"{path} draws randomness itself: {os_randomness_uses(path)}"


def test_the_checker_sees_violations(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import socket\nfrom time import monotonic\nx = __import__('asyncio')\n"
        "import datetime as dt\nfrom random import randbytes\nimport secrets\nimport selectors.x\n"
    )
    assert imported_roots(bad) == CORE_FORBIDDEN  # every forbidden module, each form of import
    rng = tmp_path / "rng.py"
    rng.write_text(
        "import os\nimport os as o2\nfrom os import urandom\n"
        "a = os.urandom(8)\nb = o2.getrandom(8)\nc = getattr(os, 'urandom')\nd = os.environ\n"
    )
    assert sorted(os_randomness_uses(rng)) == [
        "line 3: from os import urandom", "line 4: os.urandom", "line 5: o2.getrandom", "line 6: getattr(os, 'urandom')",
    ]
    clean = tmp_path / "clean.py"
    clean.write_text("import os\nx = os.environ.get('A')\ndef f(entropy):\n    return entropy(8)\n")
    assert os_randomness_uses(clean) == [] and not imported_roots(clean) & CORE_FORBIDDEN


# -- the behaviour: time and randomness only as parameters ------------------------------------------


def test_the_core_refuses_to_build_without_entropy():
    with pytest.raises(UsageError, match="QuicConnection needs entropy="):
        QuicConnection(configuration=client_configuration())
    with pytest.raises(UsageError, match="QuicEndpoint needs entropy="):
        QuicEndpoint(server_configuration())
    with pytest.raises(UsageError, match="entropy="):
        QuicConnection(configuration=client_configuration(), entropy=b"not callable")


def test_the_core_refuses_to_build_without_a_wall_clock():
    client = client_configuration()
    client.wall_clock = None
    server = server_configuration()
    server.wall_clock = None
    with pytest.raises(UsageError, match="wall_clock is not set"):
        QuicConnection(configuration=client, entropy=seeded_entropy(1))
    with pytest.raises(UsageError, match="wall_clock is not set"):
        QuicEndpoint(server, entropy=seeded_entropy(1))
    with pytest.raises(UsageError, match="wall_clock is not set"):
        QuicConfiguration(is_client=True, alpn_protocols=["hq-test"]).clock()


def test_the_core_uses_the_entropy_and_clock_it_is_given():
    drawn = []
    rng = seeded_entropy(3)

    def entropy(n: int) -> bytes:
        data = rng(n)
        drawn.append(data)
        return data

    config = client_configuration()
    config.wall_clock = lambda: 1_234_567.0
    client = QuicConnection(configuration=config, entropy=entropy)
    assert client.original_destination_connection_id in drawn
    assert config.clock() == 1_234_567.0
    before = len(drawn)
    client.connect(("10.0.0.2", 443), now=0.0)
    assert client.datagrams_to_send(now=0.0)
    assert any(len(d) == 32 for d in drawn[before:])  # the ClientHello's random came from `entropy` too
