"""Login, logout, the guard and the session cookie, through Flask's test client (no browser)."""

from __future__ import annotations

import dash
from flask.testing import FlaskClient

from controlcenter.model import Event, EventKind
from controlcenter.security.users import UserStore

ORIGIN = "http://localhost"


def client_of(app: dash.Dash) -> FlaskClient:
    client: FlaskClient = app.server.test_client()
    return client


def log_in(client: FlaskClient, name: str, password: str) -> int:
    response = client.post(
        "/login", data={"username": name, "password": password}, headers={"Origin": ORIGIN}
    )
    return response.status_code


def test_pages_redirect_and_dash_requests_get_401_without_login(hmi_app: dash.Dash) -> None:
    client = client_of(hmi_app)

    for path in ("/", "/anything", "/assets/session.js"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == "/login"
    for path in ("/_dash-layout", "/_dash-dependencies", "/_dash-component-suites/dash/x.js"):
        assert client.get(path).status_code == 401, path
    assert client.post("/_dash-update-component", json={}).status_code == 401


def test_login_page_and_its_stylesheet_are_public(hmi_app: dash.Dash) -> None:
    client = client_of(hmi_app)

    page = client.get("/login")
    assert page.status_code == 200
    assert 'name="password"' in page.get_data(as_text=True)
    assert "Testville Utilities" in page.get_data(as_text=True)
    assert client.get("/assets/hmi.css").status_code == 200


def test_session_cookie_is_httponly_and_samesite_lax(
    hmi_app: dash.Dash, operator_credentials: tuple[str, str]
) -> None:
    client = client_of(hmi_app)
    response = client.post(
        "/login",
        data=dict(zip(("username", "password"), operator_credentials, strict=True)),
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("controlcenter_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert client.get("/_dash-layout").status_code == 200


def test_unknown_user_and_wrong_password_get_the_same_answer(
    hmi_app: dash.Dash, operator_credentials: tuple[str, str], journal_events: list[Event]
) -> None:
    name, _ = operator_credentials
    client = client_of(hmi_app)

    wrong = client.post("/login", data={"username": name, "password": "wrong-password"})
    unknown = client.post("/login", data={"username": "mallory", "password": "wrong-password"})

    assert wrong.status_code == unknown.status_code == 401
    strip = str.replace
    assert strip(wrong.get_data(as_text=True), name, "X") == strip(
        unknown.get_data(as_text=True), "mallory", "X"
    )
    refused = [e for e in journal_events if e.kind is EventKind.AUDIT]
    assert [e.user for e in refused] == [name, "mallory"]
    assert all("login refused" in e.message and e.source == "hmi" for e in refused)


def test_cross_site_login_and_logout_are_refused(
    hmi_app: dash.Dash, operator_credentials: tuple[str, str], journal_events: list[Event]
) -> None:
    name, password = operator_credentials
    client = client_of(hmi_app)
    evil = {"Origin": "http://evil.example"}

    response = client.post("/login", data={"username": name, "password": password}, headers=evil)
    assert response.status_code == 403
    assert journal_events == []

    assert log_in(client, name, password) == 302
    assert client.post("/logout", headers=evil).status_code == 403
    assert client.get("/_dash-layout").status_code == 200
    client.get("/logout")  # logout only by POST: a link on another site cannot end a session
    assert client.get("/_dash-layout").status_code == 200


def test_logout_ends_the_session_and_is_journaled(
    hmi_app: dash.Dash, operator_credentials: tuple[str, str], journal_events: list[Event]
) -> None:
    name, password = operator_credentials
    client = client_of(hmi_app)
    assert log_in(client, name, password) == 302

    response = client.post("/logout", headers={"Origin": ORIGIN})

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/_dash-layout").status_code == 401
    messages = [(e.user, e.message.split(" from ")[0]) for e in journal_events]
    assert messages == [(name, "login as operator"), (name, "logout")]


def test_removed_user_loses_access_at_next_request(
    hmi_app: dash.Dash, user_store: UserStore, operator_credentials: tuple[str, str]
) -> None:
    name, password = operator_credentials
    client = client_of(hmi_app)
    assert log_in(client, name, password) == 302
    assert client.get("/_dash-layout").status_code == 200

    user_store.remove_user(name)

    assert client.get("/_dash-layout").status_code == 401


def test_logged_in_user_visiting_login_goes_to_overview(
    hmi_app: dash.Dash, operator_credentials: tuple[str, str]
) -> None:
    client = client_of(hmi_app)
    assert log_in(client, *operator_credentials) == 302

    response = client.get("/login")

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_responses_carry_security_headers(hmi_app: dash.Dash) -> None:
    response = client_of(hmi_app).get("/login")

    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_login_page_escapes_the_user_name(hmi_app: dash.Dash) -> None:
    response = client_of(hmi_app).post(
        "/login", data={"username": "<script>x</script>", "password": "whatever-it-is"}
    )

    body = response.get_data(as_text=True)
    assert "<script>x</script>" not in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body
