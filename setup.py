# Builds the C extensions: pyquic._crypto against OpenSSL's libcrypto (3.0+),
# and pyquic._frames (the common frames' parser; plain C).
# Metadata lives in pyproject.toml; this file only describes the extensions and
# turns a missing compiler or missing OpenSSL headers into an error that says
# exactly what to install.  PYQUIC_NO_EXTENSION=1 skips both: pyquic then
# uses their pure-Python twins (pyquic._crypto_py, frames.parse_frames_py).
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MISSING_HELP = """
pyquic: cannot build the C extensions pyquic._crypto and pyquic._frames.
{what}
On Debian or Ubuntu install what it needs with:

    apt-get install -y gcc libssl-dev

(the Python headers come with your Python; for Debian's own python3 also
install python3-dev). To install without the extensions, using the pure-Python
packet protection and frame parser instead, set PYQUIC_NO_EXTENSION=1.
"""

PROBE = r"""
#include <openssl/opensslv.h>
#include <openssl/evp.h>
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "OpenSSL 3.0 or newer is required"
#endif
int main(void) { EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new(); EVP_CIPHER_CTX_free(c); return 0; }
"""


class checked_build_ext(build_ext):
    def run(self):
        self._probe()
        super().run()

    def _probe(self):
        cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
        if shutil.which(cc) is None:
            sys.exit(MISSING_HELP.format(what=f"No C compiler ({cc!r}) was found."))
        if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
            sys.exit(MISSING_HELP.format(what="Python.h (the Python headers) was not found."))
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(PROBE)
            r = subprocess.run(
                [cc, src, "-o", os.path.join(tmp, "probe"), "-lcrypto"],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                sys.exit(
                    MISSING_HELP.format(
                        what="OpenSSL 3 headers or libcrypto were not found:\n"
                        + r.stderr.strip()[-600:]
                    )
                )


extra_compile_args = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=c11"]
extra_link_args = []
if os.environ.get("PYQUIC_ASAN"):
    extra_compile_args += ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"]
    extra_link_args += ["-fsanitize=address"]

# Both on the stable ABI (one abi3 wheel), with the same flags.
STABLE_ABI = dict(define_macros=[("Py_LIMITED_API", "0x030B0000")], py_limited_api=True,
                  extra_compile_args=extra_compile_args, extra_link_args=extra_link_args)
ext_modules = []
if not os.environ.get("PYQUIC_NO_EXTENSION"):
    ext_modules = [
        Extension("pyquic._crypto", sources=["pyquic/_crypto.c", "pyquic/_crypto_core.c"],
                  depends=["pyquic/_crypto_core.h", "pyquic/_crypto_pp.c.h"], libraries=["crypto"], **STABLE_ABI),
        # The receive path's parser of the common frames (pure-Python twin:
        # pyquic.frames.parse_frames_py); no OpenSSL.
        Extension("pyquic._frames", sources=["pyquic/_frames.c"], **STABLE_ABI),
    ]

setup(
    ext_modules=ext_modules,
    cmdclass={"build_ext": checked_build_ext},
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if ext_modules else {},
)
