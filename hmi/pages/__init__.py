"""The displays, one module per display, each exporting ``PAGE`` (a ``hmi.page.Page``).

The display hierarchy follows ISA-101: level 1 the city at a glance, level 2 one display per
domain, level 3 an asset's faceplate, level 4 diagnostics; beside them the operators' tools
(alarms, trends, journal) and the engineers' and administrators' (rules, users).
"""

from __future__ import annotations

import importlib

from hmi.page import Page

PAGE_MODULES = (
    "overview",
    "city_map",
    "water",
    "lighting",
    "heating",
    "buildings",
    "mobility",
    "environment",
    "asset",
    "alarms",
    "trends",
    "journal",
    "diagnostics",
    "tags",
    "rules",
    "users",
)
"""The display modules of ``hmi.pages``, in the order of the navigation."""


def all_pages() -> list[Page]:
    """Every display, in navigation order."""
    pages = []
    for name in PAGE_MODULES:
        module = importlib.import_module(f"hmi.pages.{name}")
        page = module.PAGE
        if not isinstance(page, Page):
            raise TypeError(f"hmi.pages.{name}.PAGE is not a Page")
        pages.append(page)
    return pages
