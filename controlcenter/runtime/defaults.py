"""Where the demo and the center keep their files by default (all under ./var/)."""

from __future__ import annotations

from pathlib import Path

DEMO_DB_URL = "sqlite:///var/demo.db"
"""The demo's historian."""
DEMO_USERS_PATH = Path("var/users.json")
"""HMI users of the demo (and the default of ``controlcenter user add``)."""
DEMO_SITE_PATH = Path("var/demo-site.yaml")
"""Where the demo writes the site file generated for its running city."""
CENTER_DB_URL = "sqlite:///var/center.db"
"""The historian of ``controlcenter run``."""
DEFAULT_BASE_PORT = 15020
"""First device port of ``controlcenter sim`` (device i listens on base + i)."""
DEFAULT_CONTROL = "127.0.0.1:15019"
"""Where ``controlcenter sim`` serves its fault-injection endpoint by default."""
