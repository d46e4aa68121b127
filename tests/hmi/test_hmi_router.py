"""Every display has its own URL; the router checks the display's permission on the server."""

from __future__ import annotations

import json

from controlcenter.model import Role, User
from controlcenter.permissions import Permission, allows
from controlcenter.security.users import UserStore
from hmi.page import Page
from hmi.pages import PAGE_MODULES, all_pages
from hmi.server import HmiServer
from hmi.shell import find_page
from tests.hmi.http_support import log_in, send

VIEWER, VIEWER_PASSWORD = "vera", "viewer passphrase 1"


def route(base_url: str, cookie: str, pathname: str, search: str = "") -> tuple[int, str]:
    """Fire the router as the browser does when the URL changes; status and response text."""
    payload = {
        "output": "page.children",
        "outputs": {"id": "page", "property": "children"},
        "inputs": [{"id": "url", "property": "pathname", "value": pathname}],
        "state": [{"id": "url", "property": "search", "value": search}],
        "changedPropIds": ["url.pathname"],
    }
    reply = send(
        base_url,
        "POST",
        "/_dash-update-component",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        cookie=cookie,
    )
    return reply.status, reply.body.decode()


def test_every_display_module_has_a_page_with_its_own_path() -> None:
    pages = all_pages()
    assert len(pages) == len(PAGE_MODULES)
    paths = [page.path for page in pages]
    assert len(set(paths)) == len(paths)
    assert all(path.startswith("/") for path in paths)


def test_prefix_pages_give_their_tail_and_exact_pages_do_not() -> None:
    pages = all_pages()
    asset_page, tail = find_page(pages, "/asset/water.ps1") or (None, "")
    assert asset_page is not None and asset_page.path == "/asset/" and tail == "water.ps1"
    assert find_page(pages, "/asset/") is None
    assert find_page(pages, "/no/such/display") is None
    overview = find_page(pages, "/")
    assert overview is not None and overview[0].level == 1
    exact = Page("/water", "Water", 2, Permission.VIEW, lambda *_: None)
    assert exact.matches("/water") == "" and exact.matches("/water/") == ""
    assert exact.matches("/waterworks") is None


def test_the_router_refuses_a_display_the_role_may_not_see(
    hmi_server: HmiServer, user_store: UserStore, operator_credentials: tuple[str, str]
) -> None:
    user_store.add_user(VIEWER, VIEWER_PASSWORD, Role.VIEWER)
    viewer_cookie = log_in(hmi_server.url, VIEWER, VIEWER_PASSWORD).cookie()
    for page in all_pages():
        path = (
            page.path + "water.ps1" if page.path.endswith("/") and page.path != "/" else page.path
        )
        status, body = route(hmi_server.url, viewer_cookie, path)
        assert status == 200, body
        permitted = allows(User(VIEWER, Role.VIEWER), page.permission)
        assert ("Not permitted" in body) is not permitted, (page.path, body[:300])
    status, body = route(hmi_server.url, viewer_cookie, "/users")
    assert "administer_users" in body
    status, body = route(hmi_server.url, viewer_cookie, "/../../etc/passwd", "?x=<script>")
    assert status == 200 and "No such display" in body


def test_the_router_needs_a_login(hmi_server: HmiServer) -> None:
    status, _ = route(hmi_server.url, "", "/")
    assert status == 401
