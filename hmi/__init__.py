"""The operators' web HMI: a Dash app behind a login, and the server that serves it.

The HMI reaches the center only through ``controlcenter.ports`` (live snapshot, history reader,
login sessions, event journal), so it runs in threads of its own beside the center's event loop.
"""

from hmi.app import HmiSecurity, create_hmi
from hmi.server import HmiServer, ServerLimits, TlsFiles

__all__ = ["HmiSecurity", "HmiServer", "ServerLimits", "TlsFiles", "create_hmi"]
