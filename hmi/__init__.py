"""The operators' web HMI: a Dash app behind a login, and the thread that serves it.

The HMI reaches the center only through ``controlcenter.ports`` (live snapshot, history reader,
authenticator, event journal), so it runs in a worker thread beside the center's event loop.
"""

from hmi.app import create_hmi
from hmi.server import HmiServer

__all__ = ["HmiServer", "create_hmi"]
