"""The API's endpoints, one module per resource; each exports ``register(api, services)``."""

from __future__ import annotations

ROUTE_MODULES = (
    "tags",
    "history",
    "alarms",
    "journal",
    "commands",
    "rules",
    "devices",
    "users",
    "alerts",
    "reports",
)
"""The endpoint modules of ``controlcenter.api.routes``, registered in this order."""
