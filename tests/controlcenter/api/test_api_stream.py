"""The API's live stream over a real socket (the center's web server on a free port): value
changes and alarm transitions filtered by pattern, token in the header or the query, and
refusals as journaled problem documents."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dash
import httpx
import pytest

from controlcenter.api.stream import STREAM_PATH, stream_endpoint
from controlcenter.automation import AlarmAction, AlarmDisplayState, AlarmPriority, AlarmTransition
from controlcenter.live import LiveHub
from controlcenter.model import Quality, Role, Sample
from controlcenter.permissions import TokenScope
from hmi.server import HmiServer
from tests.controlcenter.api.api_testkit import HIGH, LAMP, ApiKit, FixedLive, api_kit

DEADLINE_S = 10.0


class Streamed:
    """A stream read in a thread: its events arrive in a queue."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.status: queue.Queue[int] = queue.Queue()
        self.client = httpx.Client(timeout=DEADLINE_S)
        self.thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self.thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self.client.stream("GET", url, headers=headers) as reply:
                self.status.put(reply.status_code)
                name = ""
                for line in reply.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        self.events.put((name, json.loads(line[6:])))
        except httpx.HTTPError:
            return

    def next(self, name: str) -> Any:
        """The next event called ``name`` (others are skipped), within the deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            kind, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if kind == name:
                return data

    def close(self) -> None:
        """Stop reading."""
        self.client.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ApiKit, LiveHub, str]]:
    kit = api_kit(tmp_path)
    hub = LiveHub()
    endpoint = stream_endpoint(hub, FixedLive(), kit.tokens, kit.journal)
    server = HmiServer(dash.Dash(__name__), port=0, asgi_routes={STREAM_PATH: endpoint})
    server.start()
    try:
        yield kit, hub, server.url + STREAM_PATH
    finally:
        server.stop()


def _wait_for_streams(hub: LiveHub, count: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while hub.open_streams() < count:
        assert time.monotonic() < deadline, "the stream did not open"
        time.sleep(0.01)


def test_values_then_changes_then_alarm_transitions_of_the_pattern(
    served: tuple[ApiKit, LiveHub, str],
) -> None:
    kit, hub, url = served
    token = kit.token(Role.VIEWER)
    stream = Streamed(f"{url}?pattern=water.*", {"Authorization": f"Bearer {token}"})
    try:
        assert stream.status.get(timeout=DEADLINE_S) == 200
        first = {stream.next("value")["tag"] for _ in range(2)}
        assert first == {"water.tank1.level", "water.tank1.pump_cmd"}
        _wait_for_streams(hub, 1)
        now = datetime.now(UTC)
        hub.on_samples(
            [
                Sample("lights.d1.c1.power", 3.0, Quality.good(), now, now),
                Sample("water.tank1.level", 4.4, Quality.good(), now, now),
            ]
        )
        change = stream.next("value")
        assert change["tag"] == "water.tank1.level" and change["value"] == 4.4
        assert change["quality"]["severity"] == "good"
        for definition, area in ((LAMP, "lighting"), (HIGH, "water")):
            hub.on_transition(
                definition,
                None,  # type: ignore[arg-type]  # the hub does not read the state
                AlarmTransition(
                    now,
                    definition.name,
                    AlarmAction.ACTIVATE,
                    AlarmDisplayState.NORMAL,
                    AlarmDisplayState.UNACKNOWLEDGED,
                    priority=definition.priority,
                    area=area,
                    tag=definition.tag,
                ),
            )
        alarm = stream.next("alarm")
        # The lighting alarm is filtered out by the pattern.
        assert alarm["alarm"] == "water.tank1.level_high"
        assert alarm["priority"] == AlarmPriority.HIGH.name.lower()
        assert (alarm["before"], alarm["after"]) == ("normal", "unacknowledged")
    finally:
        stream.close()


def test_a_token_in_the_query_works_for_eventsource_clients(
    served: tuple[ApiKit, LiveHub, str],
) -> None:
    kit, _, url = served
    stream = Streamed(f"{url}?tags=water.tank1.level&access_token={kit.token(Role.VIEWER)}", {})
    try:
        assert stream.status.get(timeout=DEADLINE_S) == 200
        assert stream.next("value")["value"] == 3.2
    finally:
        stream.close()


def test_missing_bad_revoked_tokens_and_bad_queries_are_refused(
    served: tuple[ApiKit, LiveHub, str],
) -> None:
    kit, _, url = served
    revoked = kit.tokens.create("vera", TokenScope.READ, 3600, created_by="ada")
    kit.tokens.revoke(revoked.token.token_id)
    cases = [
        ("?pattern=*", {}, 401, "token is required"),
        ("?pattern=*", {"Authorization": "Bearer cc_00_forged"}, 401, "unknown token"),
        ("?pattern=*", {"Authorization": f"Bearer {revoked.secret_text}"}, 401, "revoked"),
        ("", {"Authorization": f"Bearer {kit.token(Role.VIEWER)}"}, 400, "pattern"),
    ]
    with httpx.Client(timeout=DEADLINE_S) as client:
        for query, headers, status, reason in cases:
            reply = client.get(url + query, headers=headers)
            assert reply.status_code == status, reason
            assert reply.headers["content-type"] == "application/problem+json"
            assert reason in reply.json()["detail"]
        refused = client.post(url, headers={"Authorization": f"Bearer {kit.token(Role.ADMIN)}"})
        assert refused.status_code == 405
    assert sum("(401)" in e.message for e in kit.journal.events) == 3
