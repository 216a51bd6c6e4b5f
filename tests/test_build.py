# The build's promise: when the C compiler is missing, `pip install .` stops
# with a message that says exactly what to install (and how to do without the
# extension).  Checked by running setup.py's build_ext with a compiler that
# does not exist; it fails in the probe, before compiling anything.
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_missing_compiler_names_the_packages_to_install(tmp_path):
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"))
    r = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0
    assert "No C compiler" in r.stderr
    assert "apt-get install -y gcc libssl-dev" in r.stderr
    assert "PYQUIC_NO_EXTENSION=1" in r.stderr
