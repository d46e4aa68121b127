"""Field faults of OCPP charge points, as the other drivers' fault tests have them: a point lost
in the middle of a charging session, hostile frames, and misbehaviour repeated by the minute."""

from __future__ import annotations

import json
import logging

import pytest

from controlcenter.model import Sample, Substatus
from drivers.base import NotConnectedError
from tests.drivers.ocpp.ocpp_support import Site, central, connect_point, read_one, tag, until

DRIVER_LOG = "drivers.ocpp.driver"


def _latest(received: list[Sample], name: str) -> Sample | None:
    return next((s for s in reversed(received) if s.tag == name), None)


def _good_above(received: list[Sample], name: str, floor: float) -> bool:
    sample = _latest(received, name)
    return (
        sample is not None
        and sample.quality.is_good
        and isinstance(sample.value, float)
        and sample.value > floor
    )


def _kinds(site: Site) -> dict[str, int]:
    return site.driver.diagnostics().errors_by_kind


async def test_a_point_lost_mid_session_is_bad_with_its_reason_and_good_after_it_returns() -> None:
    async with central() as site:
        client = await connect_point(site, "ev_16", "1.6")
        site.models["ev_16"].plug_in(1, authorise=True, soc=0.2)
        client.wake()
        energy = tag("ev_16", 1, "session_energy_wh")
        status = tag("ev_16", 1, "status")
        received: list[Sample] = []
        await site.driver.subscribe([energy, status], received.extend, interval_s=0.2)
        await until(lambda: _good_above(received, energy.name, 0.0), "energy while charging")
        # The network fails under the session: no close frame, the socket is simply gone.
        connection = client._point._connection  # type: ignore[union-attr]
        connection.transport.abort()
        await client.stop()
        await until(
            lambda: all(
                (s := _latest(received, point.name)) is not None
                and s.quality.substatus is Substatus.NOT_CONNECTED
                for point in (energy, status)
            ),
            "every point Bad not_connected",
        )
        lost = _latest(received, energy.name)
        assert lost is not None and lost.value is None
        assert "charge point ev_16 is not connected" in lost.quality.reason
        # A command to the absent point fails at once, typed.
        with pytest.raises(NotConnectedError, match="ev_16 not connected"):
            await site.driver.write(tag("ev_16", 1, "limit_w"), 7_000.0)
        state = site.driver.station("ev_16")
        assert state is not None
        before = state.connectors[1].session_energy
        assert before is not None and isinstance(before.value, float)
        floor = before.value
        # The point comes back; the session it kept running reports on.
        await client.start()
        await until(lambda: _good_above(received, energy.name, floor), "Good again")
        assert site.models["ev_16"].connector(1).transaction
        assert (await read_one(site, status)).value == "Charging"


async def test_repeated_faults_are_counted_each_time_and_logged_once_per_point(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=DRIVER_LOG)
    async with central() as site:
        hostile = await connect_point(site, "ev_16", "1.6")
        other = await connect_point(site, "ev_201", "2.0.1")
        for n in range(20):
            await hostile.send_raw("this is not json")
            await hostile.send_raw(json.dumps([2, f"u-{n}", "LaunchRockets", {}]))
        await other.send_raw("neither is this")
        await until(
            lambda: (
                _kinds(site).get("malformed", 0) >= 21
                and _kinds(site).get("unknown_action", 0) >= 20
            ),
            "every frame counted",
        )
        lines = [r.getMessage() for r in caplog.records if r.name == DRIVER_LOG]
        assert sum("ev_16: not an OCPP-J frame" in line for line in lines) == 1, lines
        assert sum("ev_16: unknown action" in line for line in lines) == 1, lines
        # Another point's fault of the same kind is its own line: the first one hid nothing.
        assert sum("ev_201: not an OCPP-J frame" in line for line in lines) == 1, lines
        # Both sessions serve on.
        assert await site.driver.write(tag("ev_16", 1, "limit_w"), 7_000.0) == 7_000.0
        assert await site.driver.write(tag("ev_201", 1, "limit_w"), 9_000.0) == 9_000.0


async def test_hostile_frames_are_refused_and_the_center_keeps_serving() -> None:
    async with central() as site:
        hostile = await connect_point(site, "ev_16", "1.6")
        other = await connect_point(site, "ev_201", "2.0.1")
        other_connection = other._point._connection  # type: ignore[union-attr]
        connects = hostile.connects
        # JSON nested past the decoder's depth: refused as malformed, the session stays.
        await hostile.send_raw("[" * 100_000 + "]" * 100_000)
        await until(lambda: _kinds(site).get("malformed", 0) >= 1, "the deep frame refused")
        assert hostile.connects == connects and hostile.connected.is_set()
        # A frame past the size limit closes that connection only (WebSocket 1009).
        await hostile.send_raw("x" * 300_000)
        await until(lambda: _kinds(site).get("malformed", 0) >= 2, "the huge frame refused")
        await until(lambda: hostile.connects > connects, "the point reconnected")
        await until(hostile.connected.is_set, "the point booted again")
        # A number no meter can give: counted, the session stays.
        await hostile.send_raw(
            json.dumps(
                [
                    2,
                    "m-1",
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "meterValue": [
                            {
                                "timestamp": "2030-01-01T00:00:00Z",
                                "sampledValue": [
                                    {"value": "1e999", "measurand": "Power.Active.Import"}
                                ],
                            }
                        ],
                    },
                ]
            )
        )
        await until(lambda: _kinds(site).get("meter", 0) >= 1, "the impossible meter value")
        assert other._point._connection is other_connection  # type: ignore[union-attr]
        assert site.driver.listening
        assert await site.driver.write(tag("ev_16", 1, "limit_w"), 7_000.0) == 7_000.0
        assert await site.driver.write(tag("ev_201", 1, "limit_w"), 9_000.0) == 9_000.0
