# `python -m examples.quic_lb`: the balancer (balancer.py's command line).
import sys

from .balancer import main

sys.exit(main())
