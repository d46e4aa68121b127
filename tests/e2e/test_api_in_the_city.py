"""The REST API against the running city: a setpoint written with select-before-operate and
read back from history, and the live stream following a pump trip in the simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlcenter.api.services import API_TOKENS_FILE
from controlcenter.model import Role
from controlcenter.permissions import TokenScope
from controlcenter.security.tokens import TokenStore
from tests.e2e.hmi_city_kit import USERS, HmiCity, hmi_city

SETPOINT = "water.ps1.pump1.speed"
TRIP = "water.ps1.pump1.fault"
DEADLINE_S = 30.0


async def _until(what: str, probe: Callable[[], Awaitable[Any]]) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        found = await probe()
        if found:
            return found
        assert loop.time() < deadline, f"no {what} within {DEADLINE_S} s"
        await asyncio.sleep(0.2)


async def _events(reply: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    name = ""
    async for line in reply.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def _token(kit: HmiCity, tmp_path: Path, role: Role, scope: TokenScope) -> str:
    tokens = TokenStore(tmp_path / "hmi" / API_TOKENS_FILE, kit.users)
    try:
        return tokens.create(USERS[role], scope, 3600, created_by="ada").secret_text
    finally:
        tokens.close()


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_setpoint_through_the_api_and_the_stream_through_a_pump_trip(
    tmp_path: Path,
) -> None:
    async with hmi_city(tmp_path, domains=frozenset({"water"}), speed=5.0) as kit:
        operator = _token(kit, tmp_path, Role.OPERATOR, TokenScope.COMMAND)
        headers = {"Authorization": f"Bearer {operator}"}
        async with httpx.AsyncClient(base_url=kit.url, headers=headers, timeout=20) as api:
            # Select before operate: the selection shows the current value and the limits.
            selected = await api.post("/api/v1/commands/selections", json={"tag": SETPOINT})
            assert selected.status_code == 201, selected.text
            selection = selected.json()
            assert selection["limits"]["high"] == 100.0 and selection["user"] == "olga"
            operated = await api.post(
                f"/api/v1/commands/selections/{selection['selection_id']}/operate",
                json={"value": 62.5, "reason": "API end-to-end test"},
            )
            assert operated.status_code == 200, operated.text
            assert operated.json()["status"] == "confirmed", operated.json()
            # A read-only viewer token may not command: 403, journaled.
            viewer = _token(kit, tmp_path, Role.VIEWER, TokenScope.READ)
            refused = await api.post(
                "/api/v1/commands/selections",
                json={"tag": SETPOINT},
                headers={"Authorization": f"Bearer {viewer}"},
            )
            assert refused.status_code == 403

            async def stored() -> bool:
                reply = await api.get(f"/api/v1/history/{SETPOINT}/raw?order=desc&limit=5")
                return any(v["value"] == pytest.approx(62.5) for v in reply.json()["values"])

            await _until("the setpoint in history", stored)
            commands = await api.get(f"/api/v1/journal/commands?tag={SETPOINT}")
            assert commands.json()["commands"][-1]["reason"] == "API end-to-end test"

            # The live stream follows a pump trip: the fault value, then the alarm.
            async with api.stream(
                "GET", "/api/v1/stream?pattern=water.ps1.pump1.*", timeout=None
            ) as stream:
                assert stream.status_code == 200
                events = _events(stream)
                initial: dict[str, Any] = {}
                async for name, data in events:
                    assert name == "value"
                    initial[data["tag"]] = data
                    if TRIP in initial and len(initial) >= 5:
                        break
                assert initial[TRIP]["value"] is False
                assert kit.city.water is not None
                kit.city.water.trip_pump(1, 1)
                seen_value = seen_alarm = False
                async with asyncio.timeout(DEADLINE_S):
                    async for name, data in events:
                        if name == "value" and data["tag"] == TRIP and data["value"] is True:
                            seen_value = True
                        if name == "alarm" and data["alarm"] == TRIP:
                            assert data["after"] == "unacknowledged"
                            seen_alarm = True
                        if seen_value and seen_alarm:
                            break
                assert seen_value and seen_alarm
