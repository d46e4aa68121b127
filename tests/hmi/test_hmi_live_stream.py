"""The live stream over a real socket: only for a logged-in session, only the watched tags, only
what changed, alarm changes as their own event, and ended when the server stops."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

import dash

from controlcenter.live import LiveHub
from controlcenter.model import Quality, Sample, Substatus
from controlcenter.ports import (
    AlarmAction,
    AlarmDef,
    AlarmDisplayState,
    AlarmKind,
    AlarmState,
    AlarmTransition,
)
from hmi.server import LIVE_HUB_EXTENSION, HmiServer
from tests.hmi.conftest import LEVEL, PUMP, TANK2
from tests.hmi.http_support import log_in

WHEN = datetime(2030, 1, 1, 12, tzinfo=UTC)
DEADLINE_S = 10.0


class EventReader:
    """Reads Server-Sent Events from an open response on a background thread."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self._response = response
        self.events: list[tuple[str, object]] = []
        self.ended = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name = "message"
        try:
            while True:
                line = self._response.readline()
                if not line:
                    break
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    name = text[len("event: ") :]
                elif text.startswith("data: "):
                    with self._lock:
                        self.events.append((name, json.loads(text[len("data: ") :])))
                    name = "message"
        except Exception:  # http.client fails in many ways when closed under a reader
            pass
        finally:
            self.ended.set()

    def wait_for(self, count: int) -> list[tuple[str, object]]:
        """The first ``count`` events, waiting for them up to the deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.events) >= count:
                    return list(self.events[:count])
            self.ended.wait(0.02)
        raise AssertionError(f"only {len(self.events)} of {count} events: {self.events}")


@contextmanager
def open_stream(server: HmiServer, query: str, cookie: str) -> Iterator[http.client.HTTPResponse]:
    """GET /live/stream?<query> with the session cookie."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=DEADLINE_S)
    try:
        connection.request(
            "GET", f"/live/stream?{query}", headers={"Cookie": cookie} if cookie else {}
        )
        yield connection.getresponse()
    finally:
        # Shut the socket first: the reader thread holds the response's buffer while it waits.
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        connection.close()


def session_cookie(server: HmiServer, credentials: tuple[str, str]) -> str:
    """Log in and return the session cookie."""
    reply = log_in(server.url, *credentials)
    assert reply.status == 302
    return reply.cookie()


def hub_of(app: dash.Dash) -> LiveHub:
    """The hub the app's stream reads from."""
    hub = app.server.extensions[LIVE_HUB_EXTENSION]
    assert isinstance(hub, LiveHub)
    return hub


def test_a_stream_needs_a_login(hmi_server: HmiServer) -> None:
    with open_stream(hmi_server, f"tags={LEVEL}", "") as response:
        assert response.status == 401


def test_first_the_watched_tags_then_only_their_changes(
    hmi_server: HmiServer, hmi_app: dash.Dash, operator_credentials: tuple[str, str]
) -> None:
    cookie = session_cookie(hmi_server, operator_credentials)
    hub = hub_of(hmi_app)
    with open_stream(hmi_server, f"tags={LEVEL},{TANK2},no.such.tag", cookie) as response:
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        reader = EventReader(response)
        first = reader.wait_for(2)
        values = dict(first)["values"]
        assert isinstance(values, dict)
        assert set(values) == {LEVEL, TANK2}  # the unknown tag is left out
        assert values[TANK2]["s"] == "bad"
        assert dict(first)["alarms"] == 0

        deadline = time.monotonic() + DEADLINE_S
        while hub.open_streams() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        bad = Quality.bad(Substatus.COMM_FAILURE, "RTU 1 does not answer")
        hub.on_samples(
            [
                Sample(LEVEL, 4.25, Quality.good(), WHEN, WHEN),
                Sample(PUMP, True, Quality.good(), WHEN, WHEN),  # not watched
                Sample(TANK2, None, bad, WHEN, WHEN),
            ]
        )
        name, change = reader.wait_for(3)[2]
        assert name == "values"
        assert change == {
            LEVEL: {"v": "4.25", "n": 4.25, "s": "good", "q": "good"},
            TANK2: {
                "v": "—",
                "n": None,
                "s": "bad",
                "q": "bad:comm_failure (RTU 1 does not answer)",
            },
        }


def test_an_alarm_change_is_its_own_event(
    hmi_server: HmiServer, hmi_app: dash.Dash, operator_credentials: tuple[str, str]
) -> None:
    cookie = session_cookie(hmi_server, operator_credentials)
    hub = hub_of(hmi_app)
    with open_stream(hmi_server, f"tags={LEVEL}", cookie) as response:
        reader = EventReader(response)
        reader.wait_for(2)
        deadline = time.monotonic() + DEADLINE_S
        while hub.open_streams() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        definition = AlarmDef(name="water.tank1.level.high", kind=AlarmKind.HIGH, tag=LEVEL)
        transition = AlarmTransition(
            WHEN,
            definition.name,
            AlarmAction.ACTIVATE,
            AlarmDisplayState.NORMAL,
            AlarmDisplayState.UNACKNOWLEDGED,
        )
        hub.on_transition(definition, AlarmState(definition.name, active=True), transition)
        assert reader.wait_for(3)[2] == ("alarms", 1)


def test_stopping_the_server_ends_open_streams(
    hmi_app: dash.Dash, operator_credentials: tuple[str, str]
) -> None:
    server = HmiServer(hmi_app, port=0)
    server.start()
    try:
        cookie = session_cookie(server, operator_credentials)
        with open_stream(server, f"tags={LEVEL}", cookie) as response:
            reader = EventReader(response)
            reader.wait_for(2)
            started = time.monotonic()
            server.stop()
            assert reader.ended.wait(DEADLINE_S)
            # Well within the server's grace period for requests in progress.
            assert time.monotonic() - started < server.limits.shutdown_timeout_s
            assert hub_of(hmi_app).open_streams() == 0
    finally:
        server.stop()


def test_a_flood_of_alarm_changes_is_a_few_events_with_the_last_version(
    hmi_server: HmiServer, hmi_app: dash.Dash, operator_credentials: tuple[str, str]
) -> None:
    cookie = session_cookie(hmi_server, operator_credentials)
    hub = hub_of(hmi_app)
    with open_stream(hmi_server, f"tags={LEVEL}", cookie) as response:
        reader = EventReader(response)
        reader.wait_for(2)
        deadline = time.monotonic() + DEADLINE_S
        while hub.open_streams() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        definition = AlarmDef(name="water.tank1.level.high", kind=AlarmKind.HIGH, tag=LEVEL)
        state = AlarmState(definition.name, active=True)
        for _ in range(2000):
            transition = AlarmTransition(
                WHEN,
                definition.name,
                AlarmAction.ACTIVATE,
                AlarmDisplayState.NORMAL,
                AlarmDisplayState.UNACKNOWLEDGED,
            )
            hub.on_transition(definition, state, transition)
        while time.monotonic() < deadline:
            alarm_events = [data for name, data in reader.events if name == "alarms"]
            if alarm_events[-1] == 2000:
                break
            reader.ended.wait(0.02)
        # The initial version, then the flood in at most two events (one per second).
        assert alarm_events[0] == 0 and alarm_events[-1] == 2000
        assert len(alarm_events) <= 3


def test_a_head_request_is_answered_and_ended_never_streamed(
    hmi_server: HmiServer, operator_credentials: tuple[str, str]
) -> None:
    # The page asks with HEAD whether its session still holds; a HEAD answer that kept
    # streaming would hold a connection the browser takes as free for its next request.
    cookie = session_cookie(hmi_server, operator_credentials)
    parts = urlsplit(hmi_server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=DEADLINE_S)
    try:
        for _ in range(2):  # the same connection answers again: the first answer ended
            connection.request("HEAD", f"/live/stream?tags={LEVEL}", headers={"Cookie": cookie})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        connection.request("HEAD", f"/live/stream?tags={LEVEL}")
        refused = connection.getresponse()
        refused.read()
        assert refused.status == 401
    finally:
        connection.close()
