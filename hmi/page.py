"""What a display is: its URL, its title, its level, who may see it, how it is drawn."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dash

from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The URL a display is drawn for."""

    path: str
    tail: str = ""
    """What follows a prefix page's path (``water.ps1`` of ``/asset/water.ps1``)."""
    query: Mapping[str, str] = field(default_factory=dict)
    """The query string's parameters (the first value of each)."""


Render = Callable[[HmiContext, User, PageRequest], Any]
Register = Callable[[dash.Dash, HmiContext], None]


@dataclass(frozen=True, slots=True)
class Page:
    """One display.

    ``path`` is exact (``/water``) or, ending in ``/``, a prefix (``/asset/``) whose tail names
    what to show. ``render`` draws the display for a user who holds ``permission`` (the router
    checks; every callback of the display checks again with ``hmi.guard.acting_user``).
    ``register`` adds the display's callbacks to the app once, at start.
    """

    path: str
    title: str
    level: int
    """ISA-101 display level 1-4; 0 for tools (alarms, trends, journal, rules, users)."""
    permission: Permission
    render: Render
    nav_label: str = ""
    """Shown in the navigation bar when set."""
    register: Register | None = None

    def matches(self, path: str) -> str | None:
        """The tail of ``path`` when this page shows it ("" for an exact match), else None."""
        if self.path.endswith("/") and self.path != "/":
            if path.startswith(self.path) and len(path) > len(self.path):
                return path[len(self.path) :]
            return None
        return "" if path.rstrip("/") == self.path.rstrip("/") or path == self.path else None
