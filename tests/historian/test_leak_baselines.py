"""The leak detector's learnt baselines kept in the historian across restarts (schema 6)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from alarms.leaks import NightFlowDetector, NightFlowMemory
from controlcenter.automation import AlarmDef, AlarmKind, SiteLocation
from controlcenter.model import Quality, Sample
from historian.leak_baselines import LeakBaselineError, LeakBaselineStore
from historian.schema import SCHEMA_VERSION, schema_version
from tests.historian.historian_support import Database

SITE = SiteLocation(52.37, 4.90, "Europe/Amsterdam")
ALARMS = [
    AlarmDef(
        name=f"water.dma{n}.night_flow",
        kind=AlarmKind.NIGHT_FLOW,
        tag=f"water.dma{n}.inflow",
        limit=0.05,
    )
    for n in (1, 2)
]
START = datetime(2025, 1, 12, 11, 0, tzinfo=UTC)


def learnt_detector(days: float = 3.6) -> NightFlowDetector:
    """A detector fed ``days`` days of a flat district (40 m3/h at night, 100 by day) from
    Sunday noon: by default three whole days, learnt, and a part of the next."""
    detector = NightFlowDetector(ALARMS, SITE, baseline_days=3)
    now = START
    while now < START + timedelta(days=days):
        now += timedelta(minutes=1)
        hour = now.astimezone(detector.zone).hour
        flow = 40.0 if hour < 5 else 100.0
        batch = [Sample(a.tag, flow, Quality.good(), now, now) for a in ALARMS]
        detector.feed(batch, now)
    return detector


def test_learnt_baselines_come_back_after_a_restart(database: Database) -> None:
    detector = learnt_detector()
    assert detector.status(ALARMS[0].name).baseline == pytest.approx(40.0)
    with database.open() as store:
        memory = NightFlowMemory(detector, LeakBaselineStore(store))
        save = memory.pending(START)
        assert save is not None
        save()
        assert memory.pending(START) is None  # nothing new since
    # A restarted center: a new store on the same database, a new detector.
    with database.open() as store:
        assert store.schema_version() == SCHEMA_VERSION == 6
        restarted = NightFlowDetector(ALARMS, SITE, baseline_days=3)
        recalled = NightFlowMemory(restarted, LeakBaselineStore(store)).recall()
        assert sorted(recalled) == sorted(a.name for a in ALARMS)
        for alarm in ALARMS:
            before, after = detector.status(alarm.name), restarted.status(alarm.name)
            assert after.days == before.days and after.baseline == pytest.approx(40.0)
            assert len(after.days) == 3
            assert after.average_inflow == pytest.approx(before.average_inflow)


def test_a_second_save_replaces_the_first(database: Database) -> None:
    with database.open() as store:
        baselines = LeakBaselineStore(store)
        baselines.save_leak_baselines({"a": '{"version": 3}', "b": "{}"}, START)
        baselines.save_leak_baselines({"a": '{"version": 3, "x": 1}'}, START)
        assert baselines.load_leak_baselines() == {"a": '{"version": 3, "x": 1}', "b": "{}"}
        with pytest.raises(LeakBaselineError):
            baselines.save_leak_baselines({"a": "nul\x00"}, START)
        with pytest.raises(LeakBaselineError):
            baselines.save_leak_baselines({"a": "{}"}, START.replace(tzinfo=None))
        assert baselines.load_leak_baselines()["a"] == '{"version": 3, "x": 1}'


@pytest.mark.parametrize(
    "damage",
    [
        "not json {",
        "[1, 2]",
        '{"version": 99, "entry": {}}',
        '{"version": 4, "entry": {"tag": "water.dma1.inflow", "active": "yes"}}',
        '{"version": 4, "entry": {"tag": "water.dma1.inflow", "active": false, '
        '"days": [["2025-01-13", [-4.0]]]}}',
        "[" * 5000,
    ],
)
def test_a_damaged_or_missing_record_starts_afresh_with_one_log_line(
    database: Database, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with database.open() as store:
        NightFlowMemory(learnt_detector(), LeakBaselineStore(store)).pending(START)()  # type: ignore[misc]
        engine = database.admin_engine()
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE leak_baselines SET document = :doc WHERE alarm = :alarm"),
                {"doc": damage, "alarm": ALARMS[0].name},
            )
            conn.execute(
                text("DELETE FROM leak_baselines WHERE alarm = :alarm"),
                {"alarm": ALARMS[1].name},
            )
        engine.dispose()
        restarted = NightFlowDetector(ALARMS, SITE, baseline_days=3)
        with caplog.at_level(logging.INFO, logger="alarms.leaks"):
            recalled = NightFlowMemory(restarted, LeakBaselineStore(store)).recall()
    assert recalled == []
    for alarm in ALARMS:
        assert restarted.status(alarm.name).days == ()
    lines = [r.getMessage() for r in caplog.records if r.name == "alarms.leaks"]
    assert len(lines) == 2  # one for the damaged record, one for the missing one
    assert ALARMS[0].name in lines[0] and "unusable" in lines[0]
    assert ALARMS[1].name in lines[1] and "no saved" in lines[1]


def test_a_version_5_database_gets_the_table_in_place(database: Database) -> None:
    with database.open() as store:
        LeakBaselineStore(store).save_leak_baselines({"a": "{}"}, START)
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE leak_baselines"))
        conn.execute(update(schema_version).values(version=5))
    engine.dispose()
    with database.open() as store:
        assert store.schema_version() == 6
        baselines = LeakBaselineStore(store)
        assert baselines.load_leak_baselines() == {}
        baselines.save_leak_baselines({"a": "{}"}, START)
        assert baselines.load_leak_baselines() == {"a": "{}"}
