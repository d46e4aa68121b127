"""The OCPP central system against simulated charge points over real WebSockets on free ports."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
import websockets
from websockets.asyncio.client import connect

from controlcenter.model import DataType, Quality, Sample, Severity, Substatus, TagDef, Value
from drivers.base import AddressError, DeviceRejectedError, DriverError, NotConnectedError
from drivers.ocpp.driver import OcppDriver
from drivers.ocpp.state import Reading
from plc_sim.charging.model import ChargeFault
from plc_sim.clock import SimClock
from tests.drivers.ocpp.ocpp_support import (
    PASSWORDS,
    Site,
    central,
    config,
    connect_point,
    read_one,
    tag,
    until,
)

VERSIONS = [("ev_16", "1.6"), ("ev_201", "2.0.1")]


def _reading(site: Site, charge_point: str, what: str) -> Reading:
    """What the central system holds of connector 1 (a Bad empty reading when nothing)."""
    station = site.driver.station(charge_point)
    connector = None if station is None else station.connectors.get(1)
    found = None if connector is None else getattr(connector, what)
    if isinstance(found, Reading):
        return found
    return Reading("", datetime.now(UTC), Quality.bad(Substatus.NON_SPECIFIC, "none"))


def _value(site: Site, charge_point: str, what: str) -> Value:
    return _reading(site, charge_point, what).value


def _number(site: Site, charge_point: str, what: str) -> float:
    value = _value(site, charge_point, what)
    return float(value) if isinstance(value, int | float) else 0.0


@pytest.mark.parametrize(("charge_point", "version"), VERSIONS)
async def test_remote_start_reports_energy_and_stop_ends_the_session(
    charge_point: str, version: str
) -> None:
    async with central() as site:
        client = await connect_point(site, charge_point, version)  # type: ignore[arg-type]
        site.models[charge_point].plug_in(1, authorise=False, soc=0.3)
        client.wake()
        status = tag(charge_point, 1, "status")
        await until(lambda: _value(site, charge_point, "status") == "Preparing", "Preparing")
        assert await site.driver.write(tag(charge_point, 1, "charge"), True) is True
        await until(lambda: _number(site, charge_point, "session_energy") > 0, "session energy")
        sample = await read_one(site, tag(charge_point, 1, "session_energy_wh"))
        assert sample.quality.is_good and isinstance(sample.value, float) and sample.value > 0
        assert (await read_one(site, status)).value == "Charging"
        power = await read_one(site, tag(charge_point, 1, "power_w"))
        assert power.quality.is_good and isinstance(power.value, float) and power.value > 0
        assert await site.driver.write(tag(charge_point, 1, "charge"), False) is False
        assert (await read_one(site, tag(charge_point, 1, "session_active"))).value is False
        assert not site.models[charge_point].connector(1).transaction


@pytest.mark.parametrize(("charge_point", "version"), [*VERSIONS, ("shore_201", "2.0.1")])
async def test_a_limit_reads_back_from_the_composite_schedule(
    charge_point: str, version: str
) -> None:
    async with central() as site:
        await connect_point(site, charge_point, version)  # type: ignore[arg-type]
        limit = tag(charge_point, 1, "limit_w")
        assert await site.driver.write(limit, 11_000.0) == pytest.approx(11_000.0)
        assert site.models[charge_point].connector(1).limit_w == pytest.approx(11_000.0)
        assert (await read_one(site, limit)).value == pytest.approx(11_000.0)
        whole = tag(charge_point, 0, "limit_w")
        assert await site.driver.write(whole, 20_000.0) == pytest.approx(20_000.0)
        assert site.models[charge_point].station_limit_w == pytest.approx(20_000.0)


@pytest.mark.parametrize(("charge_point", "version"), VERSIONS)
async def test_limits_in_force_read_good_before_anyone_sets_one(
    charge_point: str, version: str
) -> None:
    async with central() as site:
        await connect_point(site, charge_point, version)  # type: ignore[arg-type]
        model = site.models[charge_point]
        station = site.driver.station(charge_point)
        assert station is not None
        for connector in (0, 1, 2):
            # Asked for once the connector reported its status on this connection.
            await until(
                lambda c=connector: (
                    c in station.connectors  # type: ignore[misc]
                    and station.connectors[c].limit is not None
                ),
                f"the limit of connector {connector}",
            )
            sample = await read_one(site, tag(charge_point, connector, "limit_w"))
            assert sample.quality.is_good, sample
            assert sample.value == pytest.approx(model.composite_limit(connector))


async def test_a_scaled_tag_reads_and_commands_in_its_own_unit() -> None:
    async with central() as site:
        await connect_point(site, "ev_201", "2.0.1")
        watts = tag("ev_201", 1, "limit_w")
        kilowatts = TagDef(
            "charging.ev_201.c1.limit_kw",
            watts.device,
            watts.address,
            DataType.FLOAT,
            unit="kW",
            writable=True,
            scale=0.001,
        )
        assert await site.driver.write(kilowatts, 11.0) == pytest.approx(11.0)
        assert site.models["ev_201"].connector(1).limit_w == pytest.approx(11_000.0)
        assert (await read_one(site, watts)).value == pytest.approx(11_000.0)
        # OCPP takes a limit with one decimal at most: a finer one is sent rounded.
        assert await site.driver.write(watts, 7_000.26) == pytest.approx(7_000.3)
        assert site.models["ev_201"].connector(1).limit_w == pytest.approx(7_000.3)
        whole = TagDef(
            "charging.ev_201.c1.limit_int", watts.device, watts.address, DataType.INT, writable=True
        )
        assert await site.driver.write(whole, 6_500) == 6_500


async def test_refused_commands_are_typed_errors() -> None:
    async with central() as site:
        await connect_point(site, "ev_16", "1.6")
        # Above the configured rating: refused before anything is sent.
        with pytest.raises(DeviceRejectedError):
            await site.driver.write(tag("ev_16", 1, "limit_w"), 99_000.0)
        # The point's own refusal: a connector it does not have.
        with pytest.raises(DeviceRejectedError):
            await site.driver.write(tag("ev_16", 7, "limit_w"), 1_000.0)
        # Nobody plugged in: the remote start is rejected by the charge point.
        with pytest.raises(DeviceRejectedError):
            await site.driver.write(tag("ev_16", 1, "charge"), True)
        with pytest.raises(AddressError):
            await site.driver.write(tag("ev_16", 1, "energy_wh"), 5.0)
        with pytest.raises(AddressError):
            await site.driver.write(tag("ev_16", 1, "charge"), "yes")
        with pytest.raises(NotConnectedError):
            await site.driver.write(tag("ev_201", 1, "limit_w"), 1_000.0)
        forged = tag("ev_16", 1, "limit_w")
        with pytest.raises(DriverError):
            await site.driver.write(
                type(forged)(forged.name, forged.device, "cp:nobody:1:limit_w", forged.data_type),
                1.0,
            )


async def test_points_of_absent_and_unknown_charge_points_are_bad() -> None:
    async with central() as site:
        # Nothing of the read can be answered: a typed failure, each point's reason attached.
        with pytest.raises(NotConnectedError) as away:
            await read_one(site, tag("ev_201", 1, "power_w"))
        (absent,) = away.value.point_samples
        assert absent.quality.substatus is Substatus.NOT_CONNECTED
        assert "ev_201 is not connected" in absent.quality.reason
        # With a point that can be answered (the connection flag) the read gives samples.
        absent, connected = await site.driver.read(
            [tag("ev_201", 1, "power_w"), tag("ev_201", 0, "connected")]
        )
        assert absent.quality.substatus is Substatus.NOT_CONNECTED
        assert connected.quality.is_good and connected.value is False
        stranger = tag("ev_16", 1, "power_w")
        stranger = type(stranger)(
            "x.y", stranger.device, "cp:stranger:1:power_w", stranger.data_type
        )
        unknown = await read_one(site, stranger)
        assert unknown.quality.substatus is Substatus.CONFIG_ERROR
        garbage = type(stranger)("x.z", stranger.device, "cp::1", stranger.data_type)
        assert (await read_one(site, garbage)).quality.substatus is Substatus.CONFIG_ERROR


async def test_wrong_passwords_unknown_ids_and_missing_subprotocols_are_refused() -> None:
    async with central() as site:
        statuses: list[int] = []
        intruder = await connect_point(site, "ev_16", "1.6", password="guess")
        intruder.on_refused = statuses.append
        await until(lambda: intruder.refusals >= 1, "refusal of a wrong password")
        await intruder.stop()
        assert not intruder.connected.is_set()
        assert site.driver.station("ev_16").connected is False  # type: ignore[union-attr]
        token = base64.b64encode(b"stranger:whatever").decode()
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(
                f"{site.url}/stranger",
                subprotocols=[websockets.Subprotocol("ocpp1.6")],
                additional_headers={"Authorization": f"Basic {token}"},
                proxy=None,
            ):
                pass
        assert refused.value.response.status_code == 401
        good = base64.b64encode(f"ev_201:{PASSWORDS['ev_201']}".encode()).decode()
        # Another point's valid credentials do not open this id.
        with pytest.raises(websockets.InvalidStatus):
            async with connect(
                f"{site.url}/ev_16",
                subprotocols=[websockets.Subprotocol("ocpp1.6")],
                additional_headers={"Authorization": f"Basic {good}"},
                proxy=None,
            ):
                pass
        with pytest.raises(websockets.InvalidStatus) as no_version:
            async with connect(
                f"{site.url}/ev_201",
                additional_headers={"Authorization": f"Basic {good}"},
                proxy=None,
            ):
                pass
        assert no_version.value.response.status_code == 400
        assert site.driver.diagnostics().errors_by_kind["refused"] >= 4


async def test_a_missing_password_variable_refuses_that_point_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with central() as site:
        await connect_point(site, "ev_201", "2.0.1")
    monkeypatch.setenv("CC_TEST_OCPP_PW_EV_16", "")
    driver = OcppDriver("charging.other", config(), SimClock())
    await driver.connect()
    try:
        sample = (await driver.read([tag("ev_16", 1, "status")]))[0]
        assert sample.quality.substatus is Substatus.CONFIG_ERROR
        assert "CC_TEST_OCPP_PW_EV_16" in sample.quality.reason
    finally:
        await driver.close()


async def test_malformed_frames_and_unknown_actions_get_call_errors_and_are_counted() -> None:
    async with central() as site:
        client = await connect_point(site, "ev_16", "1.6")
        answers: list[str] = []
        connection = client._point._connection  # type: ignore[union-attr]
        original = client._point.route_message  # type: ignore[union-attr]

        async def spy(raw: str) -> None:
            answers.append(raw)
            await original(raw)

        client._point.route_message = spy  # type: ignore[union-attr,method-assign]
        await client.send_raw("this is not json")
        await client.send_raw('[2, "m-1"]')
        await client.send_raw(b"\x00\x01binary")
        await client.send_raw(json.dumps([2, "u-1", "LaunchRockets", {}]))
        await client.send_raw(json.dumps([2, "s-1", "StatusNotification", {"connectorId": "x"}]))
        await until(lambda: any('"u-1"' in a for a in answers), "CALLERROR for the unknown action")
        await until(lambda: any('"s-1"' in a for a in answers), "CALLERROR for the bad payload")
        assert any('"m-1"' in a and "FormatViolation" in a for a in answers)
        assert any('"u-1"' in a and "NotImplemented" in a for a in answers)
        kinds = site.driver.diagnostics().errors_by_kind
        assert kinds["malformed"] >= 3
        assert kinds["unknown_action"] >= 1
        assert kinds["protocol"] >= 1
        # The session survives: the point still answers a command.
        assert connection.state.name == "OPEN"
        assert await site.driver.write(tag("ev_16", 1, "limit_w"), 7_000.0) == 7_000.0


async def test_a_meter_that_lies_is_not_good() -> None:
    async with central() as site:
        client = await connect_point(site, "ev_201", "2.0.1")
        model = site.models["ev_201"]
        model.plug_in(1, authorise=True, soc=0.2)
        client.wake()
        energy = tag("ev_201", 1, "energy_wh")
        await until(lambda: _number(site, "ev_201", "energy") > 0, "energy")
        assert (await read_one(site, energy)).quality.is_good
        model.faults.add(ChargeFault.LYING_METER)
        await until(lambda: not _reading(site, "ev_201", "energy").quality.is_good, "a lie")
        sample = await read_one(site, energy)
        assert sample.quality.severity is Severity.UNCERTAIN
        assert sample.quality.substatus is Substatus.SENSOR_NOT_ACCURATE
        assert "Wh" in sample.quality.reason


async def test_silence_beyond_the_heartbeat_is_bad_and_recovers() -> None:
    async with central() as site:
        client = await connect_point(site, "ev_16", "1.6")
        received: list[Sample] = []
        status = tag("ev_16", 1, "status")
        await site.driver.subscribe([status], received.extend, interval_s=0.2)
        assert received and received[-1].quality.is_good
        site.models["ev_16"].faults.add(ChargeFault.SILENT)
        started = time.monotonic()
        await until(
            lambda: any(s.quality.substatus is Substatus.COMM_FAILURE for s in received),
            "Bad after a silence",
        )
        assert time.monotonic() - started < 5.0
        site.models["ev_16"].faults.discard(ChargeFault.SILENT)
        client.wake()
        await until(lambda: received[-1].quality.is_good, "Good once heard again")


async def test_a_dropped_connection_is_bad_then_restored_by_the_reconnect() -> None:
    async with central() as site:
        client = await connect_point(site, "ev_201", "2.0.1")
        received: list[Sample] = []
        power = tag("ev_201", 1, "status")
        await site.driver.subscribe([power], received.extend, interval_s=0.2)
        connects = client.connects
        await client.drop_connection()
        await until(
            lambda: any(s.quality.substatus is Substatus.NOT_CONNECTED for s in received),
            "Bad not_connected",
        )
        await until(lambda: client.connects > connects, "reconnect")
        await until(lambda: received[-1].quality.is_good, "Good after the reconnect")


async def test_a_taken_port_fails_fast_and_typed() -> None:
    async with central() as site:
        taken = OcppDriver("charging.twin", config(port=site.driver.port), SimClock())
        started = time.monotonic()
        with pytest.raises(NotConnectedError):
            await taken.connect()
        assert time.monotonic() - started < 5.0
        with pytest.raises(NotConnectedError):
            await taken.read([tag("ev_16", 1, "status")])
        await taken.close()
