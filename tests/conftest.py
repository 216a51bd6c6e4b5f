# Shared test set-up: bugs must fail tests instead of turning into
# internal_error alerts / INTERNAL_ERROR closes, and one test PKI per session.
import pytest

import pyquic.connection
import tls.engine

tls.engine.RAISE_INTERNAL_ERRORS = True
pyquic.connection.RAISE_INTERNAL_ERRORS = True


@pytest.fixture(scope="session")
def test_pki():
    from tests.pki import make_test_pki

    return make_test_pki()
