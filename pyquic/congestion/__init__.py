# Congestion control (RFC 9002 §7, RFC 9438): the controller interface and
# the registry of controllers by name.  Importing this package registers
# "reno" (alias "newreno") and "cubic".
from .base import (
    CongestionController,
    SentRecord,
    available_congestion_controllers,
    create_congestion_controller,
    initial_window,
    minimum_window,
    register_congestion_controller,
)
from .cubic import CubicController
from .newreno import NewRenoController

__all__ = [
    "CongestionController",
    "CubicController",
    "NewRenoController",
    "SentRecord",
    "available_congestion_controllers",
    "create_congestion_controller",
    "initial_window",
    "minimum_window",
    "register_congestion_controller",
]
