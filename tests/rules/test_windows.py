"""Rolling per-tag windows: time-weighted average, min and max on a controlled time base."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.windows import NoWindowDataError, TagWindows

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TAG = "water.tank1.level"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_average_is_time_weighted_over_held_values() -> None:
    windows = TagWindows({TAG: 600.0})
    windows.add(TAG, at(0), 1.0)
    windows.add(TAG, at(500), 10.0)  # 1.0 held for 500 s, then 10.0 for 100 s
    assert windows.statistic(TAG, at(600), 600, "avg") == pytest.approx(
        (1.0 * 500 + 10.0 * 100) / 600
    )
    # A plain mean of the two samples would be 5.5.
    assert windows.statistic(TAG, at(600), 600, "avg") != pytest.approx(5.5)


def test_the_value_in_force_at_the_window_start_counts() -> None:
    windows = TagWindows({TAG: 600.0})
    windows.add(TAG, at(0), 4.0)
    windows.add(TAG, at(550), 2.0)
    # Window [500, 600]: 4.0 holds for 50 s, 2.0 for 50 s.
    assert windows.statistic(TAG, at(600), 100, "avg") == pytest.approx(3.0)
    assert windows.statistic(TAG, at(600), 100, "min") == 2.0
    assert windows.statistic(TAG, at(600), 100, "max") == 4.0
    # Window [590, 600]: only 2.0 is in force.
    assert windows.statistic(TAG, at(600), 10, "max") == 2.0


def test_a_window_reaching_before_the_first_sample_covers_what_is_known() -> None:
    windows = TagWindows({TAG: 3600.0})
    windows.add(TAG, at(100), 2.0)
    windows.add(TAG, at(200), 4.0)
    assert windows.statistic(TAG, at(300), 3600, "avg") == pytest.approx(3.0)
    with pytest.raises(NoWindowDataError):
        windows.statistic(TAG, at(50), 30, "avg")


def test_old_samples_are_pruned_but_the_one_in_force_is_kept() -> None:
    windows = TagWindows({TAG: 60.0})
    for second in range(0, 1000, 10):
        windows.add(TAG, at(second), float(second))
    # Window [930, 990]: 920 holds until 930, then 930 ... 990.
    assert windows.statistic(TAG, at(990), 60, "min") == 930.0
    assert windows.statistic(TAG, at(995), 60, "min") == 930.0  # the 930 sample holds at 935
    assert len(windows._samples[TAG]) <= 8


def test_out_of_order_and_unusable_samples_are_ignored() -> None:
    windows = TagWindows({TAG: 600.0})
    windows.add(TAG, at(100), 5.0)
    windows.add(TAG, at(50), 100.0)  # late: ignored
    windows.add(TAG, at(150), float("nan"))  # no usable value
    windows.add(TAG, at(160), float("inf"))
    assert windows.statistic(TAG, at(200), 100, "max") == 5.0
    windows.add(TAG, at(200), 7.0)
    windows.add(TAG, at(200), 8.0)  # same instant: the correction replaces
    assert windows.statistic(TAG, at(200), 100, "max") == 8.0
    windows.add("other.tag", at(200), 1.0)  # not needed: ignored
    with pytest.raises(KeyError):
        windows.statistic("other.tag", at(200), 10, "avg")


def test_requests_beyond_what_is_kept_are_refused() -> None:
    windows = TagWindows({TAG: 600.0})
    windows.add(TAG, at(0), 1.0)
    with pytest.raises(ValueError, match="keeps 600 s"):
        windows.statistic(TAG, at(10), 601, "avg")
    with pytest.raises(ValueError, match="unknown window statistic"):
        windows.statistic(TAG, at(10), 60, "median")
    with pytest.raises(ValueError, match="timezone-aware"):
        windows.add(TAG, datetime(2026, 1, 1), 1.0)
    with pytest.raises(ValueError, match="positive"):
        TagWindows({TAG: 0.0})


def test_samples_after_now_do_not_count() -> None:
    windows = TagWindows({TAG: 600.0})
    windows.add(TAG, at(0), 1.0)
    windows.add(TAG, at(400), 9.0)
    assert windows.statistic(TAG, at(300), 300, "max") == 1.0
