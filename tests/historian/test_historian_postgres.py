"""PostgreSQL storage: day partitions made as data arrives, COPY writes, retention by partition."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from controlcenter.model import Quality, Substatus
from historian import SqlHistorian, StorageError
from historian.postgres import (
    DEFAULT_PARTITION,
    SamplesLayout,
    TimescaleStatus,
    day_partitions,
    detect_timescaledb,
    drop_partitions_before,
    ensure_day_partitions,
    partition_name,
    samples_layout,
)
from tests.historian.conftest import PostgresServer
from tests.historian.historian_support import LEVEL, MODE, STARTS, TAGS, Database, sample

pytestmark = pytest.mark.postgres

DAY0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[Database]:
    schema = postgres_server.new_schema()
    try:
        yield Database("postgresql", postgres_server.url, schema)
    finally:
        postgres_server.drop_schema(schema)


@pytest.fixture
def pg_store(pg_database: Database) -> Iterator[SqlHistorian]:
    store = pg_database.open()
    store.ensure_tags(TAGS)
    yield store
    store.close()


def _inspect(database: Database, query: str) -> list[tuple[object, ...]]:
    engine = database.admin_engine()
    with engine.begin() as conn:
        rows = [tuple(row) for row in conn.execute(text(query))]
    engine.dispose()
    return rows


def _partitions(database: Database) -> dict[str, date]:
    engine = database.admin_engine()
    with engine.begin() as conn:
        found = day_partitions(conn)
    engine.dispose()
    return found


def _in_default(database: Database) -> int:
    return int(str(_inspect(database, f"SELECT count(*) FROM {DEFAULT_PARTITION}")[0][0]))


def test_timescaledb_is_detected_as_absent_and_samples_are_partitioned(
    pg_database: Database,
) -> None:
    pg_database.open().close()
    engine = pg_database.admin_engine()
    with engine.begin() as conn:
        status = detect_timescaledb(conn)
        layout = samples_layout(conn)
        partitions = day_partitions(conn)
    engine.dispose()

    # Debian's PostgreSQL has no TimescaleDB package: the detection must say so.
    assert status is TimescaleStatus.ABSENT
    assert layout is SamplesLayout.PARTITIONED
    today = datetime.now(UTC).date()
    assert {today, today + timedelta(days=1)} <= set(partitions.values())  # made ahead of time


def test_partitions_are_created_for_the_days_data_arrives_in(
    pg_store: SqlHistorian, pg_database: Database
) -> None:
    times = [DAY0 + timedelta(hours=hour) for hour in (0, 23, 49)]  # days 1, 1 and 3
    pg_store.write_samples([sample(LEVEL, float(i), t) for i, t in enumerate(times)])

    partitions = _partitions(pg_database)
    assert {date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)} <= set(partitions.values())
    assert _in_default(pg_database) == 0
    per_partition = {
        str(name): int(str(count))
        for name, count in _inspect(
            pg_database, "SELECT tableoid::regclass::text, count(*) FROM samples GROUP BY 1"
        )
    }
    assert per_partition == {partition_name(date(2024, 3, 1)): 2, "samples_p20240303": 1}
    assert [s.server_time for s in pg_store.read_raw(LEVEL)] == times


def test_a_day_without_partition_goes_to_the_default_and_moves_when_one_is_made(
    pg_store: SqlHistorian, pg_database: Database
) -> None:
    pg_store.write_samples([sample(LEVEL, 1.0, DAY0)])
    # Someone dropped the day's partition while this store believes it exists.
    engine = pg_database.admin_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {partition_name(DAY0.date())}")
    engine.dispose()

    late = [sample(LEVEL, 2.0, DAY0 + timedelta(minutes=1)), sample(STARTS, 3, DAY0)]
    pg_store.write_samples(late)  # nothing refused: the default partition takes them
    assert _in_default(pg_database) == 2

    engine = pg_database.admin_engine()
    with engine.begin() as conn:
        created = ensure_day_partitions(conn, [DAY0.date()])
    engine.dispose()
    assert created == [partition_name(DAY0.date())]
    assert _in_default(pg_database) == 0
    assert [s.value for s in pg_store.read_raw(LEVEL)] == [2.0]
    assert [s.value for s in pg_store.read_raw(STARTS)] == [3]


def test_copy_writes_are_idempotent_on_tag_and_time(pg_store: SqlHistorian) -> None:
    batch = [sample(LEVEL, float(i), DAY0 + timedelta(seconds=i)) for i in range(1000)]
    duplicated = [*batch[:10], *batch[:10]]  # the same rows twice in one batch

    pg_store.write_samples(batch)
    pg_store.write_samples(batch)  # a replayed batch
    pg_store.write_samples(duplicated)

    stored = pg_store.read_raw(LEVEL)
    assert [s.value for s in stored] == [float(i) for i in range(1000)]


def test_a_batch_partly_stored_already_stores_only_its_new_rows(pg_store: SqlHistorian) -> None:
    # More rows than one COPY chunk: the conflict on the first row comes while rows are still
    # being sent, the one on the last row once all are.
    levels = [sample(LEVEL, float(i), DAY0 + timedelta(seconds=i)) for i in range(5000)]
    starts = [sample(STARTS, i, DAY0 + timedelta(seconds=i)) for i in range(5000)]
    unplugged = Quality.bad(Substatus.NOT_CONNECTED, "unplugged ⚡")
    modes = [
        sample(MODE, "été", DAY0),
        sample(MODE, None, DAY0 + timedelta(seconds=1), unplugged),
        sample(MODE, "hiver", DAY0 + timedelta(seconds=2)),
    ]
    pg_store.write_samples([levels[0], starts[-1], modes[1]])

    pg_store.write_samples(levels)
    pg_store.write_samples(starts)
    pg_store.write_samples(modes)
    later = DAY0 + timedelta(seconds=5000)
    pg_store.write_samples([sample(LEVEL, -1.0, later)])  # and the next batch goes through

    assert [s.value for s in pg_store.read_raw(LEVEL)] == [*(float(i) for i in range(5000)), -1.0]
    assert [s.value for s in pg_store.read_raw(STARTS)] == list(range(5000))
    stored_modes = pg_store.read_raw(MODE)
    assert [(s.value, s.quality) for s in stored_modes] == [(s.value, s.quality) for s in modes]


def test_a_batch_the_database_refuses_is_a_storage_error_and_writing_goes_on(
    pg_store: SqlHistorian, pg_database: Database
) -> None:
    engine = pg_database.admin_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE samples ADD CONSTRAINT no_negative CHECK (value >= 0)")
    with pytest.raises(StorageError, match="could not write samples: CheckViolation") as caught:
        pg_store.write_samples([sample(LEVEL, -1.0, DAY0)])
    assert caught.value.__cause__ is not None
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE samples DROP CONSTRAINT no_negative")
    engine.dispose()

    # The failed transaction left nothing behind in the connection: writes and replays work.
    batch = [sample(LEVEL, float(i), DAY0 + timedelta(seconds=i)) for i in range(10)]
    pg_store.write_samples(batch)
    pg_store.write_samples(batch)

    assert [s.value for s in pg_store.read_raw(LEVEL)] == [float(i) for i in range(10)]


def test_a_batch_spanning_months_gets_partitions_for_its_days_only(
    pg_store: SqlHistorian, pg_database: Database
) -> None:
    times = [
        datetime(1969, 12, 31, 23, tzinfo=UTC),
        DAY0,
        DAY0 + timedelta(days=60, hours=23, minutes=59),
    ]
    pg_store.write_samples([sample(LEVEL, float(i), t) for i, t in enumerate(times)])

    days = set(_partitions(pg_database).values())
    assert {date(1969, 12, 31), date(2024, 3, 1), date(2024, 4, 30)} <= days
    assert date(2024, 3, 2) not in days
    assert _in_default(pg_database) == 0
    assert [s.server_time for s in pg_store.read_raw(LEVEL)] == times


def test_drop_partitions_before_drops_whole_days_and_keeps_the_cutoff_day(
    pg_store: SqlHistorian, pg_database: Database
) -> None:
    times = [DAY0 + timedelta(days=day, hours=12) for day in range(4)]
    pg_store.write_samples([sample(LEVEL, float(i), t) for i, t in enumerate(times)])
    cutoff = DAY0 + timedelta(days=2, hours=6)  # inside the third day

    engine = pg_database.admin_engine()
    with engine.begin() as conn:
        dropped = drop_partitions_before(conn, cutoff)
    engine.dispose()

    assert dropped == ["samples_p20240301", "samples_p20240302"]
    assert [s.server_time for s in pg_store.read_raw(LEVEL)] == times[2:]
    remaining = set(_partitions(pg_database).values())
    assert date(2024, 3, 3) in remaining
    assert date(2024, 3, 1) not in remaining
    engine = pg_database.admin_engine()
    with pytest.raises(ValueError, match="naive"), engine.begin() as conn:
        drop_partitions_before(conn, datetime(2024, 3, 1))
    engine.dispose()
