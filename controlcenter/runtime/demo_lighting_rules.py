"""The demo city's street-lighting rule file, written for the cabinets a generated city has.

The simulated city deals each district two or three cabinets, by its seed, so a rule file that
names cabinets is right for one seed only: a cabinet it names that the site lacks makes the
whole rule set refused. ``render_lighting_rules`` writes the packaged file's rules
(``controlcenter/sites/demo-rules/lighting.yaml``, seed 1) for any set of cabinets; for seed 1's
cabinets it gives that file to the byte, which a test holds it to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

AUTOMATED_DISTRICTS = 4
"""The demo's rules run the cabinets of the first four districts (the scale-1 city's)."""

# A tag entry of a generated site file, in its flow style: {name: "lights.d1.c1.dim_setpoint", …}
_CABINET_SETPOINT = re.compile(r'\bname: "?(lights\.d(\d+)\.c(\d+))\.dim_setpoint"?[,}\s]')

_HEADER = """\
# The demo city's street lighting, run by the center instead of the cabinets' photocells.
#
# Every cabinet is taken to manual mode (mode 1) and switched through its dim setpoint
# (0 % is off): on at civil dusk, off after civil dawn, for the site's location; dimmed in the
# small hours, when EN 13201 lets a street drop from lighting class P2 (10 lx) to P4 (5 lx) as
# traffic falls (adaptive lighting, CEN/TR 13201-1); and switched on by day when a cabinet's
# own light sensor says the street is dark (a storm, fog). Expressions: docs/rules.md.
rules:
"""


def automated_cabinets(site_text: str) -> list[str]:
    """The cabinets of a demo site file (its ``lights.dN.cM.dim_setpoint`` tags) that the demo's
    rules run: those of the first ``AUTOMATED_DISTRICTS`` districts, in district and cabinet
    order."""
    found = {
        (int(district), int(cabinet)): name
        for name, district, cabinet in _CABINET_SETPOINT.findall(site_text)
        if int(district) <= AUTOMATED_DISTRICTS
    }
    return [found[key] for key in sorted(found)]


def render_lighting_rules(cabinets: Sequence[str]) -> str:
    """The lighting rule file for ``cabinets`` (``lights.dN.cM``, in order)."""
    parts = [_HEADER]
    parts.append(
        _switch_all(
            "lights.dusk_on",
            "Every cabinet on at full output 20 minutes before civil dusk",
            "      - sun: civil_dusk\n        offset: -20m\n",
            cabinets,
            100,
            '"Street lighting on at dusk (sun at {sun_elevation()} degrees)"',
        )
    )
    parts.append("\n")
    parts.append(
        _switch_all(
            "lights.dawn_off",
            "Every cabinet off half an hour after civil dawn, when daylight has taken over",
            "      - sun: civil_dawn\n        offset: 30m\n",
            cabinets,
            0,
            '"Street lighting off after dawn"',
        )
    )
    parts.append("\n")
    parts.append(
        _set_lit(
            "lights.night_dim",
            "Lit cabinets dim to 40 % at 22:00 (class P4 until the morning)",
            "0 22 * * *",
            cabinets,
            "40.0",
        )
    )
    parts.append("\n")
    parts.append(
        _set_lit(
            "lights.morning_full",
            "Lit cabinets back to full output at 05:55, before the morning traffic "
            "(class P2 from 06:00)",
            "55 5 * * *",
            cabinets,
            "100.0",
        )
    )
    parts.append(
        "\n  # The lux override, per cabinet: its light sensor below 40 lx while the sun is up"
        " switches\n  # it on; above 80 lx (a gap, so a passing cloud does not flicker the"
        " lamps) it goes off again.\n"
    )
    parts.extend(_lux_override(cabinet) for cabinet in cabinets)
    return "".join(parts)


def _rule_head(name: str, description: str) -> str:
    return f"  - name: {name}\n    description: {description}\n    owner: lighting\n"


def _switch_all(
    name: str,
    description: str,
    trigger: str,
    cabinets: Iterable[str],
    setpoint: int,
    event: str,
) -> str:
    lines = [_rule_head(name, description), "    triggers:\n", trigger, "    actions:\n"]
    for cabinet in cabinets:
        lines.append(f"      - {{command: {cabinet}.mode, value: 1}}\n")
        lines.append(f"      - {{command: {cabinet}.dim_setpoint, value: {setpoint}}}\n")
    lines.append(f"      - event: {event}\n        severity: 100\n")
    return "".join(lines)


def _set_lit(name: str, description: str, cron: str, cabinets: Iterable[str], level: str) -> str:
    lines = [_rule_head(name, description), f'    triggers:\n      - cron: "{cron}"\n']
    lines.append("    actions:\n")
    for cabinet in cabinets:
        setpoint = f"{cabinet}.dim_setpoint"
        lines.append(f"      - command: {setpoint}\n")
        lines.append(f'        value: "{setpoint} > 0.0 ? {level} : 0.0"\n')
    return "".join(lines)


def _lux_override(cabinet: str) -> str:
    lux, setpoint = f"{cabinet}.lux", f"{cabinet}.dim_setpoint"
    dark = _rule_head(
        f"{cabinet}.dark_day_on", f"{cabinet} on by day when its sensor reads a dark street"
    )
    bright = _rule_head(
        f"{cabinet}.bright_day_off", f"{cabinet} off again once its sensor reads daylight"
    )
    return (
        f"{dark}"
        f"    triggers:\n      - tag: {lux}\n        debounce: 2m\n"
        f"    condition: {lux} < 40.0 && sun_elevation() > 0.0\n"
        f"    actions:\n      - {{command: {cabinet}.mode, value: 1}}\n"
        f"      - {{command: {setpoint}, value: 100}}\n"
        f"{bright}"
        f"    triggers:\n      - tag: {lux}\n        debounce: 5m\n"
        f"    condition: {lux} > 80.0 && sun_elevation() > 0.0 && {setpoint} > 0.0\n"
        f"    actions:\n      - {{command: {setpoint}, value: 0}}\n"
    )
