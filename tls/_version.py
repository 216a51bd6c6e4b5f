# The version of the pyquic distribution (which ships both tls and pyquic):
# written here once, read by pyproject.toml (setuptools' dynamic version), by
# tls.__version__ and by pyquic.__version__.
__version__ = "0.1.0"
