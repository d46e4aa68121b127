"""The water network's RTUs: which points each site's device serves, bound to the physics.

One Modbus RTU (unit 1) per site. Tags are ``water.<asset>.<quantity>``; the devices are
``water.<site>_rtu``. The point order is fixed (the Modbus map is allocated in it).
"""

from __future__ import annotations

from collections.abc import Callable

from plc_sim.device import PointBinding, PointRole, PointSpec, PointValue, SimDevice
from plc_sim.water.assets import Reservoir, TreatmentPlant
from plc_sim.water.demand import DistrictMeteringArea
from plc_sim.water.pumps import Pump, PumpStation
from plc_sim.water.tank import Tank

MODBUS_UNIT_ID = 1


def _measured(
    tag: str, unit: str, low: float, high: float, read: Callable[[], float], description: str
) -> PointBinding:
    spec = PointSpec(tag, "float", unit=unit, low=low, high=high, description=description)
    return PointBinding(spec, read)


def _status(tag: str, read: Callable[[], bool], description: str) -> PointBinding:
    return PointBinding(PointSpec(tag, "bool", description=description), read)


def _commanded(
    tag: str,
    read: Callable[[], PointValue],
    write: Callable[[PointValue], None],
    description: str,
    *,
    kind: str = "bool",
    unit: str = "",
    low: float | None = None,
    high: float | None = None,
    role: PointRole = "output",
) -> PointBinding:
    spec = PointSpec(
        tag,
        "bool" if kind == "bool" else "float",
        unit=unit,
        writable=True,
        low=low,
        high=high,
        description=description,
        role=role,
    )
    return PointBinding(spec, read, write)


def tank1_device(tank: Tank, seed: int) -> SimDevice:
    """The skeleton's tank RTU: the five points it always had, then its spill."""
    prefix = "water.tank1"
    height = tank.params.height_m
    points = [
        _measured(f"{prefix}.level", "m", 0.0, height, lambda: tank.level_m, "Tank water level"),
        _measured(
            f"{prefix}.inflow", "m3/h", 0.0, 200.0, lambda: tank.inflow_m3h, "Inflow from the pump"
        ),
        _measured(
            f"{prefix}.outflow", "m3/h", 0.0, 200.0, lambda: tank.outflow_m3h, "Outflow to users"
        ),
        _commanded(
            f"{prefix}.pump_cmd",
            lambda: tank.pump_command,
            lambda value: tank.command_pump(bool(value)),
            "Feed pump run command",
        ),
        _status(f"{prefix}.pump_running", lambda: tank.pump_running, "Feed pump running"),
        _measured(
            f"{prefix}.spill", "m3/h", 0.0, 200.0, lambda: tank.spill_m3h, "Overflow over the weir"
        ),
    ]
    return SimDevice("water.tank1_rtu", "modbus", points, unit_id=MODBUS_UNIT_ID, seed=seed)


def reservoir_device(number: int, reservoir: Reservoir, seed: int) -> SimDevice:
    """A service reservoir's RTU: level, flows in and out, inlet valve position."""
    prefix = f"water.tank{number}"

    def set_valve(value: PointValue) -> None:
        reservoir.inlet_valve_pct = float(value)

    points = [
        _measured(
            f"{prefix}.level", "m", 0.0, reservoir.height_m, lambda: reservoir.level_m, "Level"
        ),
        _measured(f"{prefix}.inflow", "m3/h", 0.0, 2000.0, lambda: reservoir.inflow_m3h, "Inflow"),
        _measured(
            f"{prefix}.outflow", "m3/h", 0.0, 2000.0, lambda: reservoir.outflow_m3h, "Outflow"
        ),
        _commanded(
            f"{prefix}.inlet_valve",
            lambda: reservoir.inlet_valve_pct,
            set_valve,
            "Inlet valve position",
            kind="float",
            unit="%",
            low=0.0,
            high=100.0,
        ),
    ]
    return SimDevice(f"water.tank{number}_rtu", "modbus", points, unit_id=MODBUS_UNIT_ID, seed=seed)


def _pump_points(prefix: str, station: PumpStation, pump: Pump) -> list[PointBinding]:
    def run(value: PointValue) -> None:
        # A remote run command takes the station out of its local level control.
        station.auto = False
        pump.command(bool(value))

    def set_speed(value: PointValue) -> None:
        pump.speed_pct = float(value)

    return [
        _commanded(f"{prefix}.run_cmd", lambda: pump.run_command, run, "Pump run command"),
        _status(f"{prefix}.running", lambda: pump.running, "Pump running feedback"),
        _commanded(
            f"{prefix}.speed",
            lambda: pump.speed_pct,
            set_speed,
            "Drive speed setpoint",
            kind="float",
            unit="%",
            low=0.0,
            high=100.0,
        ),
        _measured(f"{prefix}.flow", "m3/h", 0.0, 600.0, lambda: pump.flow_m3h, "Pump flow"),
        _measured(
            f"{prefix}.discharge_pressure",
            "bar",
            0.0,
            10.0,
            lambda: station.discharge_pressure_bar(pump),
            "Discharge pressure",
        ),
        _measured(
            f"{prefix}.current", "A", 0.0, 200.0, lambda: station.current_a(pump), "Motor current"
        ),
        _status(f"{prefix}.fault", lambda: pump.fault, "Drive tripped"),
    ]


def pump_station_device(number: int, station: PumpStation, seed: int) -> SimDevice:
    """A booster station's RTU: local/remote control, station flow and pressure, its pumps."""
    prefix = f"water.ps{number}"

    def set_auto(value: PointValue) -> None:
        station.auto = bool(value)

    points = [
        _commanded(
            f"{prefix}.auto",
            lambda: station.auto,
            set_auto,
            "Local level control on",
            role="value",
        ),
        _measured(f"{prefix}.flow", "m3/h", 0.0, 1200.0, lambda: station.flow_m3h, "Station flow"),
        _measured(
            f"{prefix}.header_pressure",
            "bar",
            0.0,
            10.0,
            lambda: station.discharge_pressure_bar(_first_running(station)),
            "Discharge header pressure",
        ),
    ]
    for index, pump in enumerate(station.pumps, start=1):
        points.extend(_pump_points(f"{prefix}.pump{index}", station, pump))
    # The station's electricity meter, after the pumps so that no existing address moves.
    points += [
        _measured(
            f"{prefix}.power", "kW", 0.0, 400.0, lambda: station.power_kw, "Pumps' electrical power"
        ),
        PointBinding(
            PointSpec(f"{prefix}.energy", "counter", unit="kWh", description="Electricity meter"),
            lambda: station.energy_kwh,
        ),
    ]
    return SimDevice(f"water.ps{number}_rtu", "modbus", points, unit_id=MODBUS_UNIT_ID, seed=seed)


def _first_running(station: PumpStation) -> Pump:
    return next((pump for pump in station.pumps if pump.running), station.pumps[0])


def dma_device(number: int, dma: DistrictMeteringArea, seed: int) -> SimDevice:
    """A district meter's RTU: inflow, inlet pressure and the meter's totaliser."""
    prefix = f"water.dma{number}"
    volume = PointBinding(
        PointSpec(f"{prefix}.volume", "counter", unit="m3", description="Inlet meter total"),
        lambda: dma.volume_m3,
    )
    points = [
        _measured(f"{prefix}.inflow", "m3/h", 0.0, 1000.0, lambda: dma.inflow_m3h, "Inflow"),
        _measured(
            f"{prefix}.pressure", "bar", 0.0, 10.0, lambda: dma.pressure_bar, "Inlet pressure"
        ),
        volume,
    ]
    return SimDevice(f"water.dma{number}_rtu", "modbus", points, unit_id=MODBUS_UNIT_ID, seed=seed)


def plant_device(plant: TreatmentPlant, seed: int) -> SimDevice:
    """The treatment plant's RTU: outflow, water quality and the chlorine dosing setpoint."""

    def set_dose(value: PointValue) -> None:
        plant.chlorine_dose_mg_l = float(value)

    points = [
        _measured(
            "water.plant.outflow", "m3/h", 0.0, 20000.0, lambda: plant.outflow_m3h, "Outflow"
        ),
        _measured(
            "water.plant.chlorine",
            "mg/L",
            0.0,
            5.0,
            lambda: plant.chlorine_mg_l,
            "Free chlorine residual",
        ),
        _measured(
            "water.plant.turbidity", "NTU", 0.0, 5.0, lambda: plant.turbidity_ntu, "Turbidity"
        ),
        _commanded(
            "water.plant.chlorine_dose",
            lambda: plant.chlorine_dose_mg_l,
            set_dose,
            "Chlorine dosing setpoint",
            kind="float",
            unit="mg/L",
            low=0.0,
            high=4.0,
            role="value",
        ),
    ]
    return SimDevice("water.plant_rtu", "modbus", points, unit_id=MODBUS_UNIT_ID, seed=seed)
