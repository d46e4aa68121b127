"""``controlcenter bench outcomes``: what the demo city's default rules achieve against a baseline.

The demo city's models (weather, street lighting, water, district heating, buildings) run
in-process on a virtual clock for a number of simulated days, twice, from the same seed and so
under the same weather:

- with the default rules: the real rule files (``controlcenter/sites/demo-rules/``) parsed by
  ``controlcenter.site.rulefile``, compiled by ``rules.ruleset.compile_rule_set`` and evaluated by
  ``rules.evaluator.RuleEvaluator``, the same code the live engine and the backtest run. Each
  step the values of every tag the rules read are fed in, the timers that fell due are fired,
  and the decided commands are written straight into the simulated points (this bench is a
  composition root: it skips the command pipeline, whose checks are measured by ``bench
  commands``) and read back at once;
- with a baseline, as a city without a control center runs: every lamp at full output from a
  fixed evening clock time to a fixed morning one, a fixed heating supply temperature, the
  buildings' zones held at the occupied setpoint around the clock, the booster stations on their
  own level control.

Both runs start at ``START_LOCAL`` (a Sunday noon in January, at the demo site), so two days
hold a weekend evening, a Monday morning's warm-up and a working day. The step is
``STEP_S``: every model integrates any step stably (sub-steps and exact exponential solutions,
see docs/simulated-city.md), and 5 s resolves what the rules react to: a pump's 8 s start
delay, a lamp's 5 s ramp to full output, the rules' 10 s minimum command interval, a 2 minute
debounce; one simulated day costs some 17,000 steps per run.

The figures, each outcome with its target and a pass flag, are returned as one JSON-ready
dict; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from controlcenter.automation import SiteLocation
from controlcenter.model import Command, DataType, Quality, Sample, TagDef, Value
from controlcenter.site.rulefile import load_rule_files
from controlcenter.site.yamlsource import SourceFileError
from plc_sim.buildings.stock import BuildingStock
from plc_sim.device import PointSpec, PointValue, PointWriteError, SimDevice
from plc_sim.heating.network import HeatingNetwork
from plc_sim.lighting.network import LightingNetwork
from plc_sim.water.network import WaterNetwork
from plc_sim.weather import Weather
from rules.evaluator import Decisions, RuleEvaluator
from rules.ruleset import CompiledRuleSet, RuleSetError, compile_rule_set

SITE = SiteLocation(latitude=52.37, longitude=4.90, timezone="Europe/Amsterdam")
"""The demo site (``controlcenter/sites/demo.yaml``): sun events, weather and local time."""
START_LOCAL = datetime(2025, 1, 12, 12, 0, tzinfo=ZoneInfo(SITE.timezone))
"""A Sunday noon in winter: the lamps are off, the buildings closed for the weekend."""
STEP_S = 5.0
"""Simulated seconds per step (see the module docstring for why)."""
LIGHTING_LAYOUT_SEED = 1
"""The street lighting is always the demo site's (seed 1): its cabinets are drawn from the seed,
and the rule files name them. The other models and the weather take the bench's seed."""
RULE_FILES = ("water.yaml", "lighting.yaml", "heating.yaml", "buildings.yaml")
"""The demo city's rule files, in ``controlcenter/sites/demo-rules/``."""
MAX_DECISION_ROUNDS = 10
"""Read-backs fed after commands in one step; more would mean rules commanding in a loop."""

# -- the baseline -----------------------------------------------------------------------------
BASELINE_LIGHTS_ON_H = 16.0
"""The baseline's fixed lighting timer: on at 16:00 ..."""
BASELINE_LIGHTS_OFF_H = 8.5
"""... and off at 08:30 local time, set for the darkest weeks of the year."""
BASELINE_SUPPLY_C = 90.0
"""The baseline's fixed heating supply temperature (the plant's design setpoint)."""
BASELINE_ZONE_SETPOINT_C = 21.0
"""The baseline's zone setpoint, day and night, weekdays and weekends."""

# -- what is measured -------------------------------------------------------------------------
LUX_TARGET_EVENING = 10.0
"""Street illuminance target, lux: EN 13201-2 class P2 ..."""
LUX_TARGET_NIGHT = 5.0
"""... and class P4 from ``NIGHT_CLASS_FROM_H`` to ``NIGHT_CLASS_UNTIL_H``, when traffic is low
(CEN/TR 13201-1 lets the class change with the traffic)."""
NIGHT_CLASS_FROM_H = 22
NIGHT_CLASS_UNTIL_H = 6
COMFORT_BAND_C = (20.0, 24.0)
"""Zone temperatures counted as comfortable while people are present: EN 16798-1 category II
for the heating season."""
TARIFF_DAY_EUR_KWH = 0.25
"""Electricity price of the booster pumps by day, EUR/kWh ..."""
TARIFF_NIGHT_EUR_KWH = 0.15
"""... and at the night tariff, from ``TARIFF_NIGHT_FROM_H`` to ``TARIFF_NIGHT_UNTIL_H``."""
TARIFF_NIGHT_FROM_H = 23
TARIFF_NIGHT_UNTIL_H = 7
RESERVOIR_MINIMUM_M = 1.0
"""A reservoir must never be drawn below this level (fire-fighting and outage reserve)."""

# -- targets ----------------------------------------------------------------------------------
LIGHTING_SAVING_TARGET_PCT = 30.0
BUILDING_SAVING_TARGET_PCT = 15.0
COMFORT_TARGET_SHARE = 0.95
RETURN_DROP_TARGET_K = 5.0


class OutcomesBenchError(Exception):
    """The bench could not run: a rule file that does not load or compile, a bad argument."""


def run_outcomes_bench(days: float, seed: int) -> dict[str, object]:
    """Run the demo city for ``days`` simulated days with the default rules and with the
    baseline, from the same seed; return the outcomes, each with its target and a pass flag."""
    if not days > 0:
        raise OutcomesBenchError(f"days must be positive, got {days}")
    started = time.perf_counter()
    steps = max(1, round(days * 86_400.0 / STEP_S))
    rules_city = DemoCity(seed)
    rule_set = load_demo_rule_set(rules_city.tag_defs())
    rules_run = _run(rules_city, RulesControl(rule_set, rules_city), steps)
    baseline_city = DemoCity(seed)
    baseline_run = _run(baseline_city, BaselineControl(baseline_city), steps)
    report = _report(rules_run, baseline_run)
    report["days"] = days
    report["seed"] = seed
    report["step_s"] = STEP_S
    report["start"] = START_LOCAL.isoformat()
    report["rule_files"] = [f"controlcenter/sites/demo-rules/{name}" for name in RULE_FILES]
    report["wall_s"] = round(time.perf_counter() - started, 2)
    return report


def demo_rule_paths() -> list[Path]:
    """The demo city's rule files, as installed with the package."""
    folder = resources.files("controlcenter") / "sites" / "demo-rules"
    return [Path(str(folder / name)) for name in RULE_FILES]


def load_demo_rule_set(tags: Sequence[TagDef]) -> CompiledRuleSet:
    """Parse and compile the demo city's rule files against ``tags``."""
    try:
        definition = load_rule_files(demo_rule_paths())
        return compile_rule_set(definition, tags, SITE)
    except (SourceFileError, RuleSetError) as err:  # each lists every problem, file:line:column
        raise OutcomesBenchError(f"the demo rule files do not load: {err}") from err


# -- the city --------------------------------------------------------------------------------


class DemoCity:
    """The demo city's models and their points, stepped on a virtual clock."""

    def __init__(self, seed: int) -> None:
        tz = ZoneInfo(SITE.timezone)
        self.zone = tz
        self.weather = Weather(SITE.latitude, SITE.longitude, seed=seed)
        self.water = WaterNetwork(seed=seed, tz=tz)
        self.lighting = LightingNetwork(
            seed=LIGHTING_LAYOUT_SEED,
            latitude=SITE.latitude,
            longitude=SITE.longitude,
            tz=SITE.timezone,
        )
        self.heating = HeatingNetwork(seed=seed, tz=tz)
        self.buildings = BuildingStock(seed=seed, tz=tz)
        self.now = START_LOCAL.astimezone(UTC)
        self._devices: dict[str, SimDevice] = {}
        self._specs: dict[str, PointSpec] = {}
        for model in (self.water, self.lighting, self.heating, self.buildings):
            for device in model.devices():
                for spec in device.points:
                    self._devices[spec.tag] = device
                    self._specs[spec.tag] = spec
        # The first weather state, so that points reading it have a value before the first step.
        self.weather.step(0.0, self.now)

    def tag_defs(self) -> list[TagDef]:
        """Every point as the center's tag definition (as the generated demo site has them)."""
        return [
            TagDef(
                name=spec.tag,
                device=self._devices[spec.tag].name,
                address=spec.tag,
                data_type=_data_type(spec),
                unit=spec.unit,
                low=spec.low,
                high=spec.high,
                writable=spec.writable,
            )
            for spec in self._specs.values()
        ]

    def tags(self) -> list[str]:
        """Every point's tag, in device order."""
        return list(self._specs)

    def step(self) -> None:
        """Advance the weather and every model by one step."""
        self.now += timedelta(seconds=STEP_S)
        state = self.weather.step(STEP_S, self.now)
        for model in (self.water, self.lighting, self.heating, self.buildings):
            model.step(STEP_S, self.now, state)

    def read(self, tag: str) -> PointValue:
        """A point's present value."""
        return self._devices[tag].read(tag)

    def write(self, tag: str, value: PointValue) -> None:
        """Write a point as a client would (range and type checked: PointWriteError)."""
        device = self._devices.get(tag)
        if device is None:
            raise PointWriteError(f"the demo city has no point {tag}")
        device.write(tag, value)

    def local_hour(self) -> float:
        """The present local time of day, hours."""
        local = self.now.astimezone(self.zone)
        return local.hour + local.minute / 60.0 + local.second / 3600.0


def _data_type(spec: PointSpec) -> DataType:
    if spec.kind == "bool":
        return DataType.BOOL
    if spec.kind == "int":
        return DataType.INT
    return DataType.FLOAT


# -- the two ways of running it --------------------------------------------------------------


class Control:
    """What runs the city in one of the two runs: called after every step."""

    def control(self) -> None:
        """Look at the city's points and command what is needed."""
        raise NotImplementedError


@dataclass(slots=True)
class RulesRecord:
    """What the rules did in a run: commands per rule, the first command of each, failures."""

    commands: Counter[str] = field(default_factory=Counter)
    first_command: dict[str, str] = field(default_factory=dict)
    """Rule -> local time of its first command."""
    refused: list[str] = field(default_factory=list)
    events: int = 0


class RulesControl(Control):
    """The default rules, evaluated by the rules package's ``RuleEvaluator`` on virtual time."""

    def __init__(self, rule_set: CompiledRuleSet, city: DemoCity) -> None:
        self._city = city
        self._evaluator = RuleEvaluator(rule_set, city.now)
        read: set[str] = set()
        for rule in rule_set.rules:
            read |= rule.inputs | rule.watched | rule.targets
        for calculated in rule_set.calculated:
            read |= calculated.inputs
        calculated_names = {calculated.name for calculated in rule_set.calculated}
        self._fed = sorted(read - calculated_names)
        self._last: dict[str, PointValue] = {}
        self.record = RulesRecord()

    def control(self) -> None:
        """Fire the timers that fell due during the step, then feed the step's values."""
        city, evaluator = self._city, self._evaluator
        now = city.now
        due = evaluator.next_due()
        while due is not None and due <= now:
            self._apply(evaluator.advance(due))
            due = evaluator.next_due()
        self._feed(self._changed(self._fed))

    def _changed(self, tags: Iterable[str]) -> list[Sample]:
        city, last = self._city, self._last
        now = city.now
        good = Quality.good()
        samples = []
        for tag in tags:
            value = city.read(tag)
            if last.get(tag) != value or tag not in last:
                last[tag] = value
                samples.append(Sample(tag, value, good, now, now))
        return samples

    def _feed(self, samples: list[Sample]) -> None:
        now = self._city.now
        for _ in range(MAX_DECISION_ROUNDS):
            if not samples:
                return
            written = self._apply(self._evaluator.feed(samples, now))
            # The read-back of what was written, as the command pipeline would deliver it.
            samples = self._changed(written)
        raise OutcomesBenchError(f"rules still commanding after {MAX_DECISION_ROUNDS} read-backs")

    def _apply(self, decisions: Decisions) -> list[str]:
        written = []
        record = self.record
        record.events += len(decisions.events)
        for command in decisions.commands:
            rule = _rule_of(command)
            try:
                self._city.write(command.tag, _point_value(command.value))
            except PointWriteError as err:
                record.refused.append(f"{rule}: {command.tag} = {command.value!r}: {err}")
            else:
                written.append(command.tag)
                record.commands[rule] += 1
                if rule not in record.first_command:
                    local = self._city.now.astimezone(self._city.zone)
                    record.first_command[rule] = local.isoformat(timespec="seconds")
            self._evaluator.command_done(command.command_id)
        return written


def _rule_of(command: Command) -> str:
    """The rule a command came from: its reason starts with the rule's name."""
    return command.reason.split(":", 1)[0]


def _point_value(value: Value) -> PointValue:
    if isinstance(value, bool | int | float):
        return value
    raise PointWriteError(f"a simulated point takes a number or a bool, not {value!r}")


class BaselineControl(Control):
    """The city without a control center: fixed timers and setpoints, local level control."""

    def __init__(self, city: DemoCity) -> None:
        self._city = city
        self._writes: list[tuple[str, PointValue]] = []
        for cabinet in city.lighting.cabinets:
            city.write(f"{cabinet.prefix}.mode", 1)
        city.write("heat.plant.supply_setpoint", BASELINE_SUPPLY_C)
        for tag in _zone_tags(city, ".setpoint"):
            city.write(tag, BASELINE_ZONE_SETPOINT_C)
        self._lit: bool | None = None

    def control(self) -> None:
        """Switch the lamps by the fixed timer (everything else holds by itself)."""
        hour = self._city.local_hour()
        lit = hour >= BASELINE_LIGHTS_ON_H or hour < BASELINE_LIGHTS_OFF_H
        if lit != self._lit:
            for cabinet in self._city.lighting.cabinets:
                self._city.write(f"{cabinet.prefix}.dim_setpoint", 100.0 if lit else 0.0)
            self._lit = lit


def _zone_tags(city: DemoCity, point: str) -> list[str]:
    """Every zone's ``point`` tag (``bldg.<building>.z<n>.<point>``)."""
    return [
        tag
        for tag in city.tags()
        if tag.startswith("bldg.") and tag.split(".")[2].startswith("z") and tag.endswith(point)
    ]


# -- what is measured ------------------------------------------------------------------------


@dataclass(slots=True)
class Outcomes:
    """What one run measured, accumulated step by step."""

    street_hours_below_target: float = 0.0
    """Cabinet-hours with the street's illuminance below its lighting class."""
    pump_cost_eur: float = 0.0
    pumped_m3: float = 0.0
    lowest_reservoir_m: float = float("inf")
    supply_temp_sum: float = 0.0
    return_temp_sum: float = 0.0
    steps: int = 0
    occupied_zone_steps: int = 0
    comfortable_zone_steps: int = 0
    lighting_kwh: float = 0.0
    pump_kwh: float = 0.0
    plant_heat_mwh: float = 0.0
    substation_heat_mwh: float = 0.0
    building_heat_kwh: float = 0.0
    building_electricity_kwh: float = 0.0
    wall_s: float = 0.0
    rules: RulesRecord | None = None


class Meter:
    """Reads one run's outcomes off the city after every step."""

    def __init__(self, city: DemoCity) -> None:
        self._city = city
        self._zones = [
            (f"{prefix}.occupied", f"{prefix}.temp")
            for prefix in (tag.rsplit(".", 1)[0] for tag in _zone_tags(city, ".occupied"))
        ]
        self._stations = city.water.stations
        self._pump_kwh = sum(station.energy_kwh for station in self._stations)
        self.outcomes = Outcomes()

    def observe(self) -> None:
        """Account for the step that just ended."""
        city, out = self._city, self.outcomes
        hours = STEP_S / 3600.0
        local_hour = city.local_hour()
        night_class = local_hour >= NIGHT_CLASS_FROM_H or local_hour < NIGHT_CLASS_UNTIL_H
        target = LUX_TARGET_NIGHT if night_class else LUX_TARGET_EVENING
        for cabinet in city.lighting.cabinets:
            if cabinet.street_lux < target:
                out.street_hours_below_target += hours
        pump_kwh = sum(station.energy_kwh for station in self._stations)
        night_tariff = local_hour >= TARIFF_NIGHT_FROM_H or local_hour < TARIFF_NIGHT_UNTIL_H
        price = TARIFF_NIGHT_EUR_KWH if night_tariff else TARIFF_DAY_EUR_KWH
        out.pump_cost_eur += (pump_kwh - self._pump_kwh) * price
        self._pump_kwh = pump_kwh
        out.pumped_m3 += sum(station.flow_m3h for station in self._stations) * hours
        lowest = min(reservoir.level_m for reservoir in city.water.reservoirs)
        out.lowest_reservoir_m = min(out.lowest_reservoir_m, lowest)
        out.supply_temp_sum += float(city.read("heat.plant.supply_temp"))
        out.return_temp_sum += float(city.read("heat.plant.return_temp"))
        out.steps += 1
        low, high = COMFORT_BAND_C
        for occupied, temperature in self._zones:
            if city.read(occupied):
                out.occupied_zone_steps += 1
                if low <= float(city.read(temperature)) <= high:
                    out.comfortable_zone_steps += 1

    def finish(self) -> Outcomes:
        """The totals the meters show at the end of the run."""
        city, out = self._city, self.outcomes
        out.lighting_kwh = sum(cabinet.energy_kwh for cabinet in city.lighting.cabinets)
        out.pump_kwh = self._pump_kwh
        out.plant_heat_mwh = float(city.read("heat.plant.heat_energy"))
        out.substation_heat_mwh = (
            sum(float(city.read(tag)) for tag in city.tags() if _is_substation_meter(tag)) / 1000.0
        )
        for tag in city.tags():
            if tag.startswith("bldg.") and tag.endswith(".heat.energy"):
                out.building_heat_kwh += float(city.read(tag))
            elif tag.startswith("bldg.") and tag.endswith(".elec.energy"):
                out.building_electricity_kwh += float(city.read(tag))
        return out


def _is_substation_meter(tag: str) -> bool:
    return tag.startswith("heat.ss") and tag.endswith(".heat_energy")


def _run(city: DemoCity, control: Control, steps: int) -> Outcomes:
    started = time.perf_counter()
    meter = Meter(city)
    control.control()
    for _ in range(steps):
        city.step()
        meter.observe()
        control.control()
    outcomes = meter.finish()
    outcomes.wall_s = time.perf_counter() - started
    if isinstance(control, RulesControl):
        outcomes.rules = control.record
    return outcomes


# -- the report ------------------------------------------------------------------------------


def _figure(value: float, target: str, passed: bool, unit: str) -> dict[str, object]:
    return {"value": round(value, 3), "unit": unit, "target": target, "pass": passed}


def _saving_pct(rules: float, baseline: float) -> float:
    return 100.0 * (1.0 - rules / baseline) if baseline > 0 else 0.0


def _pair(rules: float, baseline: float, digits: int = 2) -> dict[str, float]:
    return {"rules": round(rules, digits), "baseline": round(baseline, digits)}


def _report(rules: Outcomes, baseline: Outcomes) -> dict[str, object]:
    lighting_saving = _saving_pct(rules.lighting_kwh, baseline.lighting_kwh)
    building_rules_kwh = rules.building_heat_kwh + rules.building_electricity_kwh
    building_baseline_kwh = baseline.building_heat_kwh + baseline.building_electricity_kwh
    building_saving = _saving_pct(building_rules_kwh, building_baseline_kwh)
    comfort = rules.comfortable_zone_steps / max(1, rules.occupied_zone_steps)
    return_rules = rules.return_temp_sum / max(1, rules.steps)
    return_baseline = baseline.return_temp_sum / max(1, baseline.steps)
    cost_per_m3_rules = rules.pump_cost_eur / rules.pumped_m3 if rules.pumped_m3 else 0.0
    cost_per_m3_baseline = (
        baseline.pump_cost_eur / baseline.pumped_m3 if baseline.pumped_m3 else 0.0
    )
    outcomes: dict[str, dict[str, object]] = {
        "lighting_energy_saving": _figure(
            lighting_saving,
            f">= {LIGHTING_SAVING_TARGET_PCT:g} % less than the baseline",
            lighting_saving >= LIGHTING_SAVING_TARGET_PCT,
            "%",
        ),
        "lighting_hours_below_lux_target": _figure(
            rules.street_hours_below_target,
            "0 cabinet-hours",
            rules.street_hours_below_target == 0.0,
            "cabinet-h",
        ),
        "building_energy_saving": _figure(
            building_saving,
            f">= {BUILDING_SAVING_TARGET_PCT:g} % less than the baseline",
            building_saving >= BUILDING_SAVING_TARGET_PCT,
            "%",
        ),
        "building_comfort_share": _figure(
            100.0 * comfort,
            f">= {100 * COMFORT_TARGET_SHARE:g} % of occupied zone-hours in "
            f"{COMFORT_BAND_C[0]:g}-{COMFORT_BAND_C[1]:g} degC",
            comfort >= COMFORT_TARGET_SHARE,
            "%",
        ),
        "heating_return_drop": _figure(
            return_baseline - return_rules,
            f">= {RETURN_DROP_TARGET_K:g} K below the baseline's mean return",
            return_baseline - return_rules >= RETURN_DROP_TARGET_K,
            "K",
        ),
        "water_pump_cost_per_m3": _figure(
            cost_per_m3_rules,
            "below the baseline's",
            cost_per_m3_rules < cost_per_m3_baseline,
            "EUR/m3",
        ),
        "water_lowest_reservoir_level": _figure(
            rules.lowest_reservoir_m,
            f">= {RESERVOIR_MINIMUM_M:g} m",
            rules.lowest_reservoir_m >= RESERVOIR_MINIMUM_M,
            "m",
        ),
    }
    record = rules.rules or RulesRecord()
    return {
        "passed": all(bool(figure["pass"]) for figure in outcomes.values()),
        "outcomes": outcomes,
        "lighting": {
            "energy_kwh": _pair(rules.lighting_kwh, baseline.lighting_kwh),
            "saving_pct": round(lighting_saving, 2),
            "hours_below_lux_target": _pair(
                rules.street_hours_below_target, baseline.street_hours_below_target
            ),
        },
        "water": {
            "pump_energy_kwh": _pair(rules.pump_kwh, baseline.pump_kwh),
            "pump_cost_eur": _pair(rules.pump_cost_eur, baseline.pump_cost_eur),
            "pumped_m3": _pair(rules.pumped_m3, baseline.pumped_m3, 0),
            "cost_eur_per_m3": _pair(cost_per_m3_rules, cost_per_m3_baseline, 4),
            "lowest_reservoir_m": _pair(rules.lowest_reservoir_m, baseline.lowest_reservoir_m),
            "tariff_eur_kwh": {"day": TARIFF_DAY_EUR_KWH, "night": TARIFF_NIGHT_EUR_KWH},
        },
        "heating": {
            "mean_supply_temp_c": _pair(
                rules.supply_temp_sum / max(1, rules.steps),
                baseline.supply_temp_sum / max(1, baseline.steps),
            ),
            "mean_return_temp_c": _pair(return_rules, return_baseline),
            "plant_heat_mwh": _pair(rules.plant_heat_mwh, baseline.plant_heat_mwh),
            "substation_heat_mwh": _pair(rules.substation_heat_mwh, baseline.substation_heat_mwh),
        },
        "buildings": {
            "energy_kwh": _pair(building_rules_kwh, building_baseline_kwh),
            "heat_kwh": _pair(rules.building_heat_kwh, baseline.building_heat_kwh),
            "electricity_kwh": _pair(
                rules.building_electricity_kwh, baseline.building_electricity_kwh
            ),
            "saving_pct": round(building_saving, 2),
            "comfort_share_pct": round(100.0 * comfort, 2),
            "occupied_zone_hours": round(rules.occupied_zone_steps * STEP_S / 3600.0, 1),
        },
        "rules": {
            "commands": sum(record.commands.values()),
            "commands_by_rule": dict(sorted(record.commands.items())),
            "first_command": dict(sorted(record.first_command.items())),
            "refused": record.refused[:20],
            "events": record.events,
        },
        "run_wall_s": {"rules": round(rules.wall_s, 2), "baseline": round(baseline.wall_s, 2)},
    }
