"""What each role can and cannot do in the HMI, in a real browser against a running center.

Per role (viewer, operator, maintenance, engineer, admin): which navigation links show, which
displays open and which say "Not permitted", and — the rule behind the courtesy — that a
callback the role may not use, sent by hand as a forged ``/_dash-update-component`` POST built
from the app's own ``/_dash-dependencies``, is refused with 403 and journaled as an audit event.
The table of rights in docs/hmi.md is checked against ``PERMISSION_ROLES`` here too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page

from controlcenter.model import EventKind, Role, User
from controlcenter.permissions import PERMISSION_ROLES, Permission, allows, permissions_of
from hmi.page import Page as Display
from hmi.pages import all_pages
from tests.e2e.hmi_city_kit import USERS, HmiCity, hmi_city, log_in

ROLES = (Role.VIEWER, Role.OPERATOR, Role.MAINTENANCE, Role.ENGINEER, Role.ADMIN)
FACEPLATE = "/asset/water.ps1"
DEADLINE_MS = 20_000
DOC = Path(__file__).resolve().parents[2] / "docs" / "hmi.md"

GUARDED_OUTPUTS: tuple[tuple[str, Permission], ...] = (
    ("alarms-ack-result", Permission.ACKNOWLEDGE_ALARMS),
    ("alarms-shelve-result", Permission.SHELVE_ALARMS),
    ("alarms-service-result", Permission.REMOVE_ALARMS_FROM_SERVICE),
    ("users-", Permission.ADMINISTER_USERS),
    ("rules-", Permission.EDIT_RULES),
)
"""Callbacks by the start of their output ids, and the permission each must hold: the alarm
list's acknowledge, shelve and out-of-service actions, and every callback of the users and
rules displays (displays only administrators and engineers may open; a rules callback may
need ``apply_rules`` rather than ``edit_rules``, both the engineer's)."""


def _allowed(role: Role, permission: Permission) -> bool:
    return role.includes(PERMISSION_ROLES[permission])


def _display_path(display: Display) -> str:
    return FACEPLATE if display.path == "/asset/" else display.path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HmiCity]:
    """The water network and a center with its HMI, shared by the module's tests."""
    async with hmi_city(tmp_path_factory.mktemp("roles"), domains=frozenset({"water"})) as city:
        yield city


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pages_by_role(browser: Browser, kit: HmiCity) -> AsyncIterator[dict[Role, Page]]:
    """One logged-in browser context per role, shared by the module's tests: each test leaves
    its pages signed in on a display (navigation ends on the overview; forged callbacks are
    sent beside the page, through its context's request API)."""
    contexts: list[BrowserContext] = []
    pages: dict[Role, Page] = {}
    try:
        for role in ROLES:
            context = await browser.new_context()
            contexts.append(context)
            page = await context.new_page()
            await log_in(page, kit.url, role)
            pages[role] = page
        yield pages
    finally:
        for context in contexts:
            await context.close()


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_each_role_sees_the_links_and_displays_it_may_use(
    kit: HmiCity, pages_by_role: dict[Role, Page]
) -> None:
    displays = all_pages()
    for role, page in pages_by_role.items():
        assert (await page.inner_text("#user-role")).strip() == role.value
        links = await page.eval_on_selector_all(
            "nav a.nav-link", "links => links.map(a => a.getAttribute('href'))"
        )
        expected = [d.path for d in displays if d.nav_label and _allowed(role, d.permission)]
        assert links == expected, role

        # Ending on the overview: the router sees no change when the URL stays the same.
        for display in [*displays[1:], displays[0]]:
            path = _display_path(display)
            async with page.expect_response(
                lambda r: (
                    "/_dash-update-component" in r.url
                    and '"page.children"' in (r.request.post_data or "")
                )
            ) as routed:
                await page.evaluate(
                    "(path) => { window.history.pushState({}, '', path);"
                    " window.dispatchEvent(new CustomEvent('_dashprivate_pushstate')); }",
                    path,
                )
            response = await routed.value
            assert response.status == 200, (role, path)
            body = await response.text()
            refusal = f"{display.title} needs the {display.permission.value} permission"
            if _allowed(role, display.permission):
                assert "Not permitted" not in body, (role, path)
                await page.wait_for_selector(
                    f"#page > .display-level-{display.level}", timeout=DEADLINE_MS
                )
            else:
                assert "Not permitted" in body and refusal in body, (role, path)
                await page.wait_for_function(
                    "(text) => document.getElementById('page').innerText.includes(text)",
                    arg=refusal,
                    timeout=DEADLINE_MS,
                )


def forged_body(dependency: dict[str, Any]) -> dict[str, Any]:
    """A ``_dash-update-component`` request for one callback, as a browser would send it after
    a click: every input and state present, buttons clicked once, everything else empty."""

    def prop(spec: dict[str, Any]) -> dict[str, Any]:
        value: Any = 1 if spec["property"] == "n_clicks" else None
        return {"id": spec["id"], "property": spec["property"], "value": value}

    output: str = dependency["output"]
    names = output.strip(".").split("...") if output.startswith("..") else [output]
    outputs = [dict(zip(("id", "property"), name.rsplit(".", 1), strict=True)) for name in names]
    inputs = [prop(spec) for spec in dependency["inputs"]]
    return {
        "output": output,
        "outputs": outputs if output.startswith("..") else outputs[0],
        "inputs": inputs,
        "state": [prop(spec) for spec in dependency.get("state", [])],
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"] if inputs else [],
    }


def guarded(dependencies: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], Permission]]:
    """The app's callbacks that hold a permission, with it (pattern-matching ids left out)."""
    for dependency in dependencies:
        output: str = dependency["output"]
        if "{" in output:
            continue
        names = output.strip(".").split("...")
        for start, permission in GUARDED_OUTPUTS:
            if all(name.startswith(start) for name in names):
                yield dependency, permission
                break


async def audit_events(kit: HmiCity, user: str) -> list[str]:
    """The center's audit messages about ``user``."""
    events = await asyncio.to_thread(kit.center.store.read_events, kind=EventKind.AUDIT, user=user)
    return [event.message for event in events]


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_forged_callback_the_role_may_not_use_is_refused_and_journaled(
    kit: HmiCity, pages_by_role: dict[Role, Page]
) -> None:
    viewer = pages_by_role[Role.VIEWER].context.request
    dependencies = await (await viewer.get(kit.url + "/_dash-dependencies")).json()
    callbacks = list(guarded(dependencies))
    assert callbacks, "no guarded callback found in /_dash-dependencies"
    for role, page in pages_by_role.items():
        refused = 0
        for dependency, permission in callbacks:
            response = await page.context.request.post(
                kit.url + "/_dash-update-component",
                data=json.dumps(forged_body(dependency)),
                headers={"Content-Type": "application/json"},
            )
            if _allowed(role, permission):
                assert response.status != 403, (role, dependency["output"])
            else:
                assert response.status == 403, (role, dependency["output"], response.status)
                # The rules display's callbacks need edit_rules or apply_rules: both engineers'.
                needed = PERMISSION_ROLES[permission].value
                assert f"needs the {needed} role" in await response.text()
                refused += 1
        if role is not Role.ADMIN:
            assert refused, f"no forged callback refused for {role.value}"
            name = USERS[role]
            deadline = time.monotonic() + 10
            while True:
                messages = await audit_events(kit, name)
                hits = [m for m in messages if m.startswith("refused /_dash-update-component")]
                if len(hits) >= refused or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert len(hits) >= refused, (role, messages)


def doc_role_table(text: str) -> dict[str, list[str]]:
    """The role table of docs/hmi.md: permission → the roles marked as holding it."""
    section = text.split("<!-- role-table -->", 2)
    assert len(section) == 3, "docs/hmi.md must hold the table between two role-table markers"
    rows = [line for line in section[1].strip().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    table: dict[str, list[str]] = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        permission = re.sub(r"[`*]", "", cells[0])
        table[permission] = [role for role, mark in zip(header[1:], cells[1:], strict=True) if mark]
    return table


def test_the_role_table_in_the_docs_matches_the_permissions() -> None:
    table = doc_role_table(DOC.read_text(encoding="utf-8"))
    expected = {
        permission.value: [role.value for role in ROLES if permission in permissions_of(role)]
        for permission in Permission
    }
    assert table == expected
    # The same rights, seen through allows(): the function every face calls.
    for permission in Permission:
        for role in ROLES:
            held = allows(User("someone", role), permission)
            assert held == (role.value in table[permission.value])
