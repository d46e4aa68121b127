"""Level 3: an asset's faceplate (``/asset/<asset name>``), with its commands."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import dash

from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi import command_panel
from hmi.context import HmiContext
from hmi.faceplates import render_faceplate
from hmi.page import Page, PageRequest

MAX_NAME = 200
"""Longer tails are no asset name (and are not echoed back whole)."""


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The faceplate of the asset named by the URL's tail."""
    name = unquote(request.tail).strip().strip("/")[: MAX_NAME + 1]
    return render_faceplate(context, user, name)


def register(app: dash.Dash, context: HmiContext) -> None:
    """The command callbacks (select, operate, cancel, release) of every faceplate."""
    command_panel.register(app, context)


PAGE = Page(
    path="/asset/",
    title="Asset",
    level=3,
    permission=Permission.VIEW,
    render=render,
    nav_label="",
    register=register,
)
