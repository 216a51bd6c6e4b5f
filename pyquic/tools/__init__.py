# The command-line tools of pyquic: `python -m pyquic.client` (client.py:
# fetch URLs over HTTP/3 or hq-interop) and `python -m pyquic.server`
# (server.py: serve a directory over both on one port), with the progress
# bar they share (progress.py).  Like pyquic/asyncio/, everything here does
# I/O by design; the sans-I/O rules of the core do not apply here.
