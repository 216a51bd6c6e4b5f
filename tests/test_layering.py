# The import rules of ARCHITECTURE.md, enforced on the source text (ast), so a
# violation fails even in code no other test reaches:
#   - nothing under tls/ imports pyquic;
#   - nothing under pyquic/ outside pyquic/asyncio/ imports socket, asyncio,
#     selectors or time (time and I/O come in as arguments: sans-I/O);
#   - nothing under tls/ outside its TCP drivers (tcp.py, ktls.py) and its
#     command-line tools (tls/tools/, __main__.py) imports them either.
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IO_MODULES = {"socket", "asyncio", "selectors", "time"}
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


CORE = [p for p in python_files("pyquic") if p.relative_to(ROOT / "pyquic").parts[0] != "asyncio"]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_quic_core_is_sans_io(path):
    roots = imported_roots(path)
    assert not roots & IO_MODULES, f"{path} imports {roots & IO_MODULES}"


def test_the_checker_sees_violations(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nfrom time import monotonic\nx = __import__('asyncio')\n")
    assert imported_roots(bad) >= {"socket", "time", "asyncio"}
