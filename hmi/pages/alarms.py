"""Alarms (placeholder until the display is built)."""

from __future__ import annotations

from typing import Any

from dash import html

from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.page import Page, PageRequest


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The display."""
    return html.Section(className="panel", children=[html.H2("Alarms")])


PAGE = Page(
    path="/alarms",
    title="Alarms",
    level=0,
    permission=Permission.VIEW,
    render=render,
    nav_label="Alarms",
)
