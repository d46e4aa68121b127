"""The demo's lighting rules are written for the cabinets of the city each seed generates."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlcenter.cli.main import app
from controlcenter.runtime.demo_lighting_rules import automated_cabinets, render_lighting_rules
from controlcenter.runtime.demo_site import (
    DEMO_RULES_DIRECTORY,
    LIGHTING_RULE_FILE,
    demo_city_options,
    demo_rule_files,
    render_demo_site,
    write_demo_site,
)
from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock

SITES = Path(__file__).resolve().parents[3] / "controlcenter" / "sites"


def test_seed_ones_cabinets_give_the_packaged_file_to_the_byte() -> None:
    cabinets = automated_cabinets((SITES / "demo.yaml").read_text(encoding="utf-8"))
    assert cabinets[0] == "lights.d1.c1" and cabinets[-1] == "lights.d4.c2"
    assert render_lighting_rules(cabinets) == demo_rule_files()[LIGHTING_RULE_FILE]


def test_only_the_first_four_districts_are_automated() -> None:
    text = "\n".join(
        f'  - {{name: "lights.d{d}.c{c}.dim_setpoint", device: "x"}}'
        for d in (12, 1, 4, 5, 2)
        for c in (2, 1)
    )
    assert automated_cabinets(text) == [
        "lights.d1.c1",
        "lights.d1.c2",
        "lights.d2.c1",
        "lights.d2.c2",
        "lights.d4.c1",
        "lights.d4.c2",
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_every_seeds_demo_site_and_its_rules_are_valid(tmp_path: Path, seed: int) -> None:
    city = SimulatedCity(SimClock(), demo_city_options(seed=seed, base_port=20000))
    site = tmp_path / "site.yaml"
    site_text = render_demo_site(city)
    write_demo_site(site, site_text)
    written = (tmp_path / DEMO_RULES_DIRECTORY / LIGHTING_RULE_FILE).read_text(encoding="utf-8")
    for cabinet in automated_cabinets(site_text):
        assert f"name: {cabinet}.dark_day_on" in written
    result = CliRunner().invoke(app, ["check", "--site", str(site)])
    assert result.exit_code == 0, result.output
