"""Rule-set versions, the requested-version pointer and operator overrides in the historian,
and the schema version 4 migration that adds their tables."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect

from controlcenter.model import CommandPriority, Override, Value
from controlcenter.ports import (
    OverrideStore,
    RuleSource,
    RuleVersion,
    RuleVersionStatus,
    RuleVersionStore,
    UnknownRuleVersionError,
)
from historian import SCHEMA_VERSION, SqlHistorian, StorageError
from tests.historian.historian_support import LEVEL, TAGS, Database, at, level_samples

WATER = RuleSource(
    "demo-rules/water.yaml",
    "rules:\n  - name: water.tank1_fill\n    kind: hysteresis\n    input: water.tank1.level\n",
)
LIGHTS = RuleSource("demo-rules/lighting.yaml", "rules: []\n# Straße, éclairage: ü\n")

_NEW_TABLES = ("rule_versions", "rule_version_files", "rule_deployment", "command_overrides")


def create_version_3_database(database: Database) -> None:
    """A database as schema version 3 left it, with tags and tank levels: made by the current
    software, then taken back (version 4 only added tables)."""
    with database.open() as store:
        store.ensure_tags(TAGS)
        store.write_samples(level_samples(5))
    engine = database.admin_engine()
    with engine.begin() as conn:
        # Children before parents: the files and the pointer refer to rule_versions.
        for table in (
            "rule_deployment",
            "rule_version_files",
            "rule_versions",
            "command_overrides",
        ):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql("UPDATE schema_version SET version = 3")
    engine.dispose()


def test_the_historian_implements_the_rule_version_and_override_ports(
    store: SqlHistorian,
) -> None:
    versions: RuleVersionStore = store
    overrides: OverrideStore = store
    assert versions.requested_rule_version() is None
    assert overrides.active_overrides() == []


def test_a_version_3_database_upgrades_in_place_keeping_its_data(database: Database) -> None:
    create_version_3_database(database)
    engine = database.admin_engine()
    with engine.begin() as conn:
        before = set(inspect(conn).get_table_names())
    engine.dispose()
    assert not set(_NEW_TABLES) & before  # really a version 3 layout

    with database.open() as store:
        assert store.schema_version() == SCHEMA_VERSION == 6
        assert [s.value for s in store.read_raw(LEVEL)] == [i * 0.5 for i in range(5)]
        stored = store.add_rule_version([WATER], "ana", "first", at(0))
        store.request_rule_version(stored.version)
        store.save_override(Override(LEVEL, 2.5, "ana", "test", at(1)))
        assert store.requested_rule_version() == 1
        assert [o.tag for o in store.active_overrides()] == [LEVEL]

    engine = database.admin_engine()
    with engine.begin() as conn:
        after = set(inspect(conn).get_table_names())
    engine.dispose()
    assert set(_NEW_TABLES) <= after


def test_versions_round_trip_with_every_file_in_order(store: SqlHistorian) -> None:
    first = store.add_rule_version([WATER, LIGHTS], "ana", "initial set", at(0))
    second = store.add_rule_version([LIGHTS], "bo", "lighting only", at(60))

    assert (first.version, second.version) == (1, 2)
    assert first.status is RuleVersionStatus.PENDING
    assert store.rule_version(1) == first
    assert store.rule_version(2) == RuleVersion(2, at(60), "bo", "lighting only", (LIGHTS,))
    assert store.rule_version(1).sources == (WATER, LIGHTS)  # the order of the site's list
    assert [v.version for v in store.rule_versions()] == [1, 2]
    with pytest.raises(UnknownRuleVersionError, match="no rule-set version 3"):
        store.rule_version(3)


def test_the_requested_version_pointer_moves_and_refuses_unknown_versions(
    store: SqlHistorian,
) -> None:
    store.add_rule_version([WATER], "ana", "one", at(0))
    store.add_rule_version([LIGHTS], "ana", "two", at(1))

    store.request_rule_version(2)
    assert store.requested_rule_version() == 2
    store.request_rule_version(1)
    assert store.requested_rule_version() == 1
    with pytest.raises(UnknownRuleVersionError):
        store.request_rule_version(7)
    assert store.requested_rule_version() == 1


def test_activating_a_version_supersedes_the_active_one_and_refusal_keeps_it(
    store: SqlHistorian,
) -> None:
    for number in range(3):
        store.add_rule_version([WATER], "ana", f"v{number + 1}", at(number))

    store.mark_rule_version(1, RuleVersionStatus.ACTIVE, decided_at=at(10))
    store.mark_rule_version(2, RuleVersionStatus.ACTIVE, decided_at=at(20))
    refusal = "water.yaml:3:16: unknown tag 'water.tank9.level'\nwater.yaml:5:3: bad"
    store.mark_rule_version(3, RuleVersionStatus.REFUSED, refusal, decided_at=at(30))

    versions = {v.version: v for v in store.rule_versions()}
    assert versions[1].status is RuleVersionStatus.SUPERSEDED
    assert versions[1].decided_at == at(20)
    assert versions[2].status is RuleVersionStatus.ACTIVE
    assert versions[3].status is RuleVersionStatus.REFUSED
    assert versions[3].detail == refusal
    with pytest.raises(UnknownRuleVersionError):
        store.mark_rule_version(4, RuleVersionStatus.ACTIVE)


def test_a_version_without_files_or_with_unstorable_text_is_refused_before_writing(
    store: SqlHistorian,
) -> None:
    with pytest.raises(ValueError, match="at least one rule file"):
        store.add_rule_version([], "ana", "nothing", at(0))
    with pytest.raises(ValueError, match="NUL"):
        store.add_rule_version([RuleSource("x.yaml", "rules: []\x00")], "ana", "nul", at(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.add_rule_version([WATER], "ana", "naive", datetime(2024, 1, 1))

    assert store.rule_versions() == []


def test_versions_stored_concurrently_get_distinct_numbers(store: SqlHistorian) -> None:
    errors: list[BaseException] = []

    def add(worker: int) -> None:
        try:
            for index in range(5):
                store.add_rule_version([WATER], f"w{worker}", str(index), at(index))
        except BaseException as err:  # handed to the test thread
            errors.append(err)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert [v.version for v in store.rule_versions()] == list(range(1, 21))


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        0,
        1,
        -(2**62),
        1.0,
        -0.25,
        1e300,
        "",
        "1",
        "true",
        "Nachtabsenkung ü ☃",
        datetime(2024, 3, 31, 1, 30, 15, 123456, tzinfo=UTC),
    ],
    ids=repr,
)
def test_overrides_keep_the_type_and_value_of_every_kind(store: SqlHistorian, value: Value) -> None:
    override = Override(
        "heat.ss3.supply_setpoint",
        value,
        "ana",
        "commissioning",
        at(0),
        at(3600),
        CommandPriority.MANUAL_OPERATOR,
    )
    store.save_override(override)

    (restored,) = store.active_overrides()
    assert restored == override
    assert type(restored.value) is type(value)


def test_an_override_time_in_another_zone_comes_back_as_the_same_instant(
    store: SqlHistorian,
) -> None:
    local = datetime(2024, 7, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    store.save_override(Override("lights.d1.c1.mode", local, "ana", "", local, None))

    (restored,) = store.active_overrides()
    assert restored.value == local
    assert restored.since == local
    assert restored.until is None


def test_saving_replaces_the_override_of_a_tag_and_clearing_forgets_it(
    store: SqlHistorian,
) -> None:
    store.save_override(Override("b.tag", 1, "ana", "first", at(0)))
    store.save_override(Override("a.tag", "on", "bo", "other", at(1)))
    replacement = Override("b.tag", 2.5, "cy", "second", at(2), at(9), CommandPriority.SAFETY)
    store.save_override(replacement)

    assert [o.tag for o in store.active_overrides()] == ["a.tag", "b.tag"]
    assert store.active_overrides()[1] == replacement
    store.clear_override("b.tag")
    store.clear_override("never.overridden")  # nothing to forget: no error
    assert [o.tag for o in store.active_overrides()] == ["a.tag"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), datetime(2024, 1, 1)])
def test_an_override_value_that_would_not_come_back_is_refused(
    store: SqlHistorian, value: Value
) -> None:
    with pytest.raises(ValueError, match=r"override of x\.tag"):
        store.save_override(Override("x.tag", value, "ana", "", at(0)))
    assert store.active_overrides() == []


def test_a_damaged_override_row_is_a_storage_error_not_a_guess(database: Database) -> None:
    with database.open() as store:
        store.save_override(Override("x.tag", 1, "ana", "", at(0)))
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE command_overrides SET value = '[1, 2]'")
    engine.dispose()

    with database.open() as store, pytest.raises(StorageError, match=r"x\.tag is damaged"):
        store.active_overrides()
