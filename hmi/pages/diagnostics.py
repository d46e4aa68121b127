"""Diagnostics (placeholder until the display is built)."""

from __future__ import annotations

from typing import Any

from dash import html

from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.page import Page, PageRequest


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The display."""
    return html.Section(className="panel", children=[html.H2("Diagnostics")])


PAGE = Page(
    path="/diagnostics",
    title="Diagnostics",
    level=4,
    permission=Permission.VIEW_DIAGNOSTICS,
    render=render,
    nav_label="Diagnostics",
)
