"""The outcome bench: the demo city run by its real rule files against a baseline."""

from __future__ import annotations

from datetime import datetime

import pytest

from controlcenter.bench.outcomes import (
    START_LOCAL,
    DemoCity,
    OutcomesBenchError,
    load_demo_rule_set,
    run_outcomes_bench,
)

DUSK_HOURS = 0.225
"""From the bench's start (Sunday 12:00) to 17:24 local: past the lamps' dusk switch-on."""


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    return run_outcomes_bench(DUSK_HOURS, seed=1)


def test_every_outcome_has_its_value_target_and_pass_flag(report: dict[str, object]) -> None:
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict)
    assert set(outcomes) == {
        "lighting_energy_saving",
        "lighting_hours_below_lux_target",
        "building_energy_saving",
        "building_comfort_share",
        "heating_return_drop",
        "water_pump_cost_per_m3",
        "water_lowest_reservoir_level",
    }
    for name, figure in outcomes.items():
        assert set(figure) == {"value", "unit", "target", "pass"}, name
        assert isinstance(figure["value"], float), name
        assert isinstance(figure["pass"], bool), name
    assert report["passed"] == all(figure["pass"] for figure in outcomes.values())
    for section in ("lighting", "water", "heating", "buildings", "rules"):
        assert isinstance(report[section], dict), section
    assert report["days"] == DUSK_HOURS and report["seed"] == 1 and report["step_s"] == 5.0


def test_the_rules_acted_lights_at_dusk_heating_curve_and_setback(
    report: dict[str, object],
) -> None:
    rules = report["rules"]
    assert isinstance(rules, dict)
    first = rules["first_command"]
    assert isinstance(first, dict)
    # Civil dusk in Amsterdam on 2025-01-12 is about 17:33; the rule acts 20 minutes before.
    dusk_on = datetime.fromisoformat(first["lights.dusk_on"])
    assert dusk_on.date() == START_LOCAL.date()
    assert (17, 0) <= (dusk_on.hour, dusk_on.minute) <= (17, 25)
    assert rules["commands_by_rule"]["lights.dusk_on"] == 11  # every cabinet to manual mode
    assert "heat.plant.supply_curve" in first
    assert "bldg.school.setback" in first  # Sunday: the zones go to their setback
    assert rules["refused"] == []
    heating = report["heating"]
    assert isinstance(heating, dict)
    # The heating curve asks for less than the baseline's fixed 90 degC on a mild winter day.
    assert heating["mean_supply_temp_c"]["rules"] < heating["mean_supply_temp_c"]["baseline"] - 5
    lighting = report["lighting"]
    assert isinstance(lighting, dict)
    # The baseline's timer lights the lamps at 16:00; the rules wait for dusk.
    assert lighting["energy_kwh"]["rules"] < lighting["energy_kwh"]["baseline"]


def test_a_run_must_last_some_time() -> None:
    with pytest.raises(OutcomesBenchError, match="days must be positive"):
        run_outcomes_bench(0, seed=1)


def test_rule_files_that_do_not_fit_the_city_are_refused_with_their_spots() -> None:
    # A city without its lighting points: the rules name tags it does not have.
    tags = [tag for tag in DemoCity(1).tag_defs() if not tag.name.startswith("lights.")]
    with pytest.raises(OutcomesBenchError, match=r"lighting\.yaml:\d+:\d+"):
        load_demo_rule_set(tags)
