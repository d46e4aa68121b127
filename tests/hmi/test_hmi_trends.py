"""The trends display without a browser: what a URL draws, how each input changes the view,
forged callbacks and store contents, the following update, and the CSV export route."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dash
import pytest
from flask.testing import FlaskClient

from controlcenter.model import Role, TagDef, User
from controlcenter.ports import EventJournal, LiveView, LoginSessions
from hmi.app import create_hmi
from hmi.context import HmiContext
from hmi.page import PageRequest
from hmi.pages import trends
from hmi.trend import MAX_PENS, TrendView
from tests.hmi.conftest import (
    LEVEL,
    OPERATOR_NAME,
    OPERATOR_PASSWORD,
    PRESSURE,
    PUMP,
    SECRET_KEY,
    SIM_EPOCH,
    TANK2,
    FakeHistory,
    SimulatedPlant,
    hmi_context,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
OLGA = User(OPERATOR_NAME, Role.OPERATOR)


@pytest.fixture
def context(live_view: LiveView, history: FakeHistory, journal: EventJournal) -> HmiContext:
    return hmi_context(live_view, history, journal, timezone=AMSTERDAM)


@pytest.fixture
def app(context: HmiContext, login_sessions: LoginSessions) -> dash.Dash:
    return create_hmi(context, login_sessions, secret_key=SECRET_KEY)


@pytest.fixture
def client(app: dash.Dash) -> Iterator[FlaskClient]:
    with app.server.test_client() as client:
        yield client


def logged_in(client: FlaskClient) -> FlaskClient:
    reply = client.post("/login", data={"username": OPERATOR_NAME, "password": OPERATOR_PASSWORD})
    assert reply.status_code == 302
    return client


def find(component: Any, component_id: object) -> Any:
    """The component of ``component_id`` in a rendered tree."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = find(child, component_id)
            if found is not None:
                return found
    return None


# --- the URL ------------------------------------------------------------------------------------


def test_the_url_preselects_pens_and_says_what_it_refused(context: HmiContext) -> None:
    query = {"tags": f"{LEVEL},water.nope,{TANK2}", "period": "8h"}
    tree = trends.render(context, OLGA, PageRequest("/trends", "", query))

    init = find(tree, trends.INIT_ID).data
    assert init["asked"] is True
    assert init["view"]["tags"] == [LEVEL, TANK2]
    assert init["view"]["period"] == "8h"
    assert init["notes"] == ["No tag named 'water.nope'."]
    assert find(tree, trends.VIEW_ID).storage_type == "session"


def test_without_a_query_the_session_decides(context: HmiContext) -> None:
    tree = trends.render(context, OLGA, PageRequest("/trends"))

    assert find(tree, trends.INIT_ID).data["asked"] is False


# --- inputs -------------------------------------------------------------------------------------


def change(
    context: HmiContext,
    view: TrendView,
    trigger: object,
    *,
    clicked: bool = True,
    relayout: object = None,
    start: object = None,
    end: object = None,
) -> tuple[TrendView, list[str]] | None:
    return trends.changed_view(context, view, trigger, clicked, relayout, start, end)


def test_pens_are_added_and_removed(context: HmiContext) -> None:
    added = change(context, TrendView((LEVEL,)), {"type": trends.ADD_TYPE, "tag": PRESSURE})
    assert added == (TrendView((LEVEL, PRESSURE)), [])
    removed = change(
        context, TrendView((LEVEL, PRESSURE)), {"type": trends.REMOVE_TYPE, "tag": LEVEL}
    )
    assert removed == (TrendView((PRESSURE,)), [])
    # A button just drawn fires unclicked: nothing changes.
    assert (
        change(context, TrendView(), {"type": trends.ADD_TYPE, "tag": LEVEL}, clicked=False) is None
    )


def test_a_forged_add_of_an_unknown_tag_is_refused(context: HmiContext) -> None:
    changed = change(context, TrendView((LEVEL,)), {"type": trends.ADD_TYPE, "tag": "os.system"})

    assert changed == (TrendView((LEVEL,)), ["No tag named 'os.system'."])


def test_a_preset_follows_and_a_zoom_fixes_the_range(context: HmiContext) -> None:
    view = TrendView((LEVEL,), "1h")
    preset = change(context, view, {"type": trends.PERIOD_TYPE, "period": "24h"})
    assert preset == (TrendView((LEVEL,), "24h"), [])
    assert change(context, view, {"type": trends.PERIOD_TYPE, "period": "1000y"}) is None

    zoom = {"xaxis.range[0]": "2030-01-01 01:10:00", "xaxis.range[1]": "2030-01-01 01:20:00"}
    zoomed = change(context, view, trends.GRAPH_ID, relayout=zoom)
    start = datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
    assert zoomed == (TrendView((LEVEL,), "1h", start, start + timedelta(minutes=10)), [])

    reset = change(context, zoomed[0], trends.GRAPH_ID, relayout={"xaxis.autorange": True})
    assert reset == (TrendView((LEVEL,), "1h"), [])
    assert change(context, view, trends.GRAPH_ID, relayout={"dragmode": "pan"}) is None


def test_a_custom_range_is_site_local_and_checked(context: HmiContext) -> None:
    view = TrendView((LEVEL,))
    custom = change(
        context, view, trends.APPLY_ID, start="2030-01-01 02:00", end="2030-01-01 03:00"
    )
    assert custom is not None
    assert (custom[0].start, custom[0].end) == (
        datetime(2030, 1, 1, 1, 0, tzinfo=UTC),
        datetime(2030, 1, 1, 2, 0, tzinfo=UTC),
    )
    backwards = change(
        context, view, trends.APPLY_ID, start="2030-01-01 03:00", end="2030-01-01 02:00"
    )
    assert backwards == (view, ["The range ends before it starts."])
    garbage = change(context, view, trends.APPLY_ID, start=["x"], end={"y": 1})
    assert garbage == (view, ["The range needs a start and an end."])


def names(found: tuple[list[TagDef], int]) -> list[str]:
    return [tag.name for tag in found[0]]


def test_the_tag_browser_searches_name_description_area_and_unit(context: HmiContext) -> None:
    assert names(trends.search_tags(context, "tank", None, None)) == [LEVEL, TANK2]
    assert names(trends.search_tags(context, "Pump 1", None, None)) == [PUMP]
    assert names(trends.search_tags(context, None, None, "kPa")) == [PRESSURE]
    assert names(trends.search_tags(context, None, "no-such-area", None)) == []


# --- following ------------------------------------------------------------------------------------


def test_following_appends_only_new_points_and_moves_the_axis(
    context: HmiContext, plant: SimulatedPlant
) -> None:
    plant.run_for(timedelta(hours=1))
    view = TrendView((LEVEL,), "15m")
    now = trends.data_now(context, view.tags)
    since = now - timedelta(minutes=2)
    last = since - timedelta(seconds=5)
    mark = {"end": since.isoformat(), "last": {LEVEL: last.isoformat()}}

    patched = trends.follow_patch(context, view, mark)

    assert patched is not None
    patch, new_mark = patched
    operations = patch.to_plotly_json()["operations"]
    xs = next(op for op in operations if op["location"] == ["data", 0, "x"])["params"]["value"]
    assert xs, "no new points"
    # Site-local (Amsterdam), after the last point drawn; about 12 points in 2 minutes.
    assert all(x > (last + timedelta(hours=1)).replace(tzinfo=None) for x in xs)
    assert 10 <= len(xs) <= 14
    axis = next(op for op in operations if op["location"] == ["layout", "xaxis", "range"])
    assert axis["params"]["value"][1] - axis["params"]["value"][0] == timedelta(minutes=15)
    assert datetime.fromisoformat(new_mark["end"]) >= now


def test_a_fixed_range_does_not_follow(context: HmiContext) -> None:
    view = TrendView((LEVEL,), "1h", SIM_EPOCH, SIM_EPOCH + timedelta(minutes=5))

    assert trends.follow_patch(context, view, {"end": SIM_EPOCH.isoformat(), "last": {}}) is None
    assert trends.follow_patch(context, TrendView((LEVEL,)), "forged") is None


# --- callbacks as a browser sends them ------------------------------------------------------------

DRAW_OUTPUTS = [
    (trends.GRAPH_ID, "figure"),
    (trends.PENS_ID, "children"),
    (trends.START_ID, "value"),
    (trends.END_ID, "value"),
    (trends.RANGE_ID, "children"),
    (trends.EXPORT_ID, "href"),
    (trends.FOLLOW_ID, "disabled"),
    (trends.MARK_ID, "data"),
    (trends.MESSAGE_ID, "children"),
]


def draw(client: FlaskClient, view_data: object) -> Any:
    payload = {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in DRAW_OUTPUTS) + "..",
        "outputs": [{"id": i, "property": p} for i, p in DRAW_OUTPUTS],
        "inputs": [{"id": trends.VIEW_ID, "property": "data", "value": view_data}],
        "changedPropIds": [f"{trends.VIEW_ID}.data"],
        "state": [],
    }
    return client.post(
        "/_dash-update-component",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json"},
    )


def test_the_draw_callback_reads_the_historian_for_the_range(
    client: FlaskClient, history: FakeHistory, plant: SimulatedPlant
) -> None:
    plant.run_for(timedelta(hours=1))
    start = SIM_EPOCH + timedelta(minutes=1)
    view = TrendView((LEVEL, PUMP), "1h", start, start + timedelta(minutes=3))

    reply = draw(logged_in(client), view.to_data())

    assert reply.status_code == 200
    response = reply.get_json()["response"]
    figure = response[trends.GRAPH_ID]["figure"]
    assert [trace["name"] for trace in figure["data"][:2]] == [f"{LEVEL} [m]", f"{PUMP} [state]"]
    assert len(figure["data"][0]["x"]) == 18  # one sample per 10 s over [start, end)
    assert figure["data"][0]["x"][0] == "2030-01-01T01:01:00"  # Amsterdam time
    assert history.windows[0] == (start, start + timedelta(minutes=3))
    assert response[trends.START_ID]["value"] == "2030-01-01 01:01:00"
    assert response[trends.FOLLOW_ID]["disabled"] is True
    assert response[trends.EXPORT_ID]["href"].startswith("/trends/export.csv?tags=")


def test_a_forged_store_is_checked_before_anything_is_read(
    client: FlaskClient, history: FakeHistory
) -> None:
    forged = {
        "tags": [LEVEL, "../../etc/passwd", 7, *[LEVEL] * 50],
        "period": {"$gt": 1},
        "start": "1-1-1",
        "end": None,
        "notes": ["<b>hello</b>"] * 100,
    }

    reply = draw(logged_in(client), forged)

    assert reply.status_code == 200
    response = reply.get_json()["response"]
    assert [t["name"] for t in response[trends.GRAPH_ID]["figure"]["data"][:-2]] == [f"{LEVEL} [m]"]
    assert response[trends.FOLLOW_ID]["disabled"] is False  # fell back to following 1 h
    assert len(response[trends.MESSAGE_ID]["children"]) <= 12
    assert history.windows, "the checked view was drawn"


def test_callbacks_need_a_login(client: FlaskClient) -> None:
    assert draw(client, TrendView((LEVEL,)).to_data()).status_code == 401


# --- export -------------------------------------------------------------------------------------


def test_export_downloads_what_is_shown_in_local_time_and_utc(
    client: FlaskClient, plant: SimulatedPlant
) -> None:
    plant.run_for(timedelta(hours=1))
    start = SIM_EPOCH + timedelta(minutes=1)
    view = TrendView((LEVEL, TANK2), "1h", start, start + timedelta(minutes=1))
    reply = logged_in(client).get(trends.export_href(view, start, start + timedelta(minutes=1)))

    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.mimetype == "text/csv"
    assert "attachment" in reply.headers["Content-Disposition"]
    assert reply.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(reply.get_data(as_text=True))))
    assert rows[0] == ["tag", "unit", "time_local", "time_utc", "value", "quality"]
    level_rows = [row for row in rows[1:] if row[0] == LEVEL]
    assert len(level_rows) == 6
    assert level_rows[0][2:4] == ["2030-01-01T01:01:00.000+01:00", "2030-01-01T00:01:00.000Z"]
    assert float(level_rows[0][4]) > 0
    tank2 = [row for row in rows[1:] if row[0] == TANK2]
    assert {row[4] for row in tank2} == {""}
    assert {row[5] for row in tank2} == {"bad:comm_failure"}


def test_export_is_refused_without_a_login(client: FlaskClient) -> None:
    reply = client.get(f"/trends/export.csv?tags={LEVEL}")

    assert reply.status_code == 302
    assert reply.headers["Location"].endswith("/login")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "tags=",
        "tags=nope",
        f"tags={LEVEL}&start=2030-01-01T02:00&end=2030-01-01T01:00",
        f"tags={LEVEL}&period=%00",
        "tags=" + ",".join([LEVEL] * 5 + ["x"] * (MAX_PENS * 10)),
    ],
)
def test_export_refuses_what_it_cannot_show(client: FlaskClient, query: str) -> None:
    reply = logged_in(client).get(f"/trends/export.csv?{query}")

    assert reply.status_code == 400
    assert reply.mimetype == "text/plain"
