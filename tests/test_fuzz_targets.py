# The atheris fuzz targets in fuzz/ (see fuzz/README.md), run briefly: each
# target fuzzes for a fixed number of runs, starting from its committed seed
# corpus, and must exit 0 -- no parser raised anything but its documented
# errors and no invariant the target checks failed.  The targets of the C
# code (packet protection, frames) also run against an AddressSanitizer
# build (fuzz/asan.sh).
# New inputs go to a temporary directory, never into the committed corpus.
# atheris is in the `test` extra: without it these tests fail, they do not skip.
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FUZZ = REPO / "fuzz"
TARGETS = sorted(p.stem[len("fuzz_") :] for p in FUZZ.glob("fuzz_*.py"))
RUNS = 2000
MAX_SECONDS = 6  # a cap, so that the whole file stays near a minute on a busy machine


def test_atheris_is_installed():
    import atheris

    assert callable(atheris.Setup) and callable(atheris.Fuzz)


def test_every_target_has_a_seed_corpus_and_a_readme_line():
    readme = (FUZZ / "README.md").read_text()
    assert set(TARGETS) >= {"packet", "frames", "transport_params", "tls_messages", "tls_extensions", "tls_record", "crypto"}
    for name in TARGETS:
        seeds = list((FUZZ / "corpus" / name).iterdir())
        assert seeds, f"fuzz/corpus/{name} is empty"
        assert f"fuzz/fuzz_{name}.py" in readme


def _fuzz(command: list[str], tmp_path: Path, corpus: Path, timeout: float, **env: str) -> subprocess.CompletedProcess:
    work = tmp_path / "new-inputs"
    work.mkdir()
    args = [str(work), str(corpus), f"-runs={RUNS}", f"-max_total_time={MAX_SECONDS}",
            f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    result = subprocess.run(command + args, cwd=tmp_path, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **env), capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Done " in output and " runs in " in output, output[-3000:]
    assert not list(tmp_path.glob("crash-*")), output[-3000:]
    return result


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target_runs_clean(name, tmp_path):
    _fuzz([sys.executable, str(FUZZ / f"fuzz_{name}.py")], tmp_path, FUZZ / "corpus" / name, timeout=90)


@pytest.mark.parametrize("name", ["crypto", "frames"])
def test_c_target_under_address_sanitizer(name, tmp_path):
    command = ["bash", str(FUZZ / "asan.sh"), str(FUZZ / f"fuzz_{name}.py")]
    result = _fuzz(command, tmp_path, FUZZ / "corpus" / name, timeout=240, PYQUIC_PYTHON=sys.executable)
    assert "AddressSanitizer" not in result.stderr, result.stderr[-6000:]
