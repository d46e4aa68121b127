"""``controlcenter bench leaks`` at a tiny size: its figures' structure, and a 20 % leak found."""

from __future__ import annotations

import json

import pytest

from alarms.leaks import DEFAULT_WINDOW, NightFlowDetector
from controlcenter.automation import AlarmKind
from controlcenter.bench.leaks import LIMIT, LeaksBenchError, run_leaks_bench
from controlcenter.runtime.demo import load_demo_site


def test_a_tiny_bench_finds_every_20_percent_leak_and_reports_its_figures() -> None:
    figures = run_leaks_bench(1.0, 3, trials=1, sizes_pct=(20.0,), baseline_days=3)
    json.dumps(figures)  # JSON-ready
    leak_free = figures["leak_free"]
    assert isinstance(leak_free, dict)
    assert leak_free["area_nights"] == 4  # four districts, one night after the baseline
    assert leak_free["false_alarms"] == 0
    sizes = figures["leaks"]
    assert isinstance(sizes, list) and len(sizes) == 1
    size: dict[str, object] = sizes[0]
    assert size["size_pct"] == 20.0
    assert size["leaks"] == 4 and size["found"] == 4 and size["missed"] == 0
    slowest = size["detection_h_max"]
    assert isinstance(slowest, float) and 0.0 < slowest <= 24.0
    assert size["found_within_24h"] == 4
    in_window = size["started_inside_window"]
    assert isinstance(in_window, int) and 0 <= in_window <= 4
    assert size["started_inside_window_found_within_24h"] == in_window
    assert figures["baseline_days"] == 3 and figures["limit_share"] == 0.03
    # The bench judges the window the center runs.
    assert figures["window"] == "-".join(DEFAULT_WINDOW)


@pytest.mark.parametrize(
    "options",
    [{"days": 0.0}, {"trials": 0}, {"sizes_pct": (0.0,)}, {"baseline_days": 2}],
)
def test_bad_arguments_are_refused(options: dict[str, object]) -> None:
    arguments: dict[str, object] = {"days": 1.0, "seed": 1, **options}
    with pytest.raises(LeaksBenchError):
        run_leaks_bench(**arguments)  # type: ignore[arg-type]


def test_the_bench_judges_the_demo_sites_night_flow_alarms() -> None:
    site = load_demo_site()
    night_flow = [d for d in site.alarm_defs() if d.kind is AlarmKind.NIGHT_FLOW]
    assert {d.tag for d in night_flow} == {f"water.dma{n}.inflow" for n in range(1, 5)}
    assert {d.limit for d in night_flow} == {LIMIT}
    NightFlowDetector(night_flow, site.location())  # the site's definitions are usable
