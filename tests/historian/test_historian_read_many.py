"""The bulk read of a replay: many tags in one query, in server-time order, half-open window."""

from __future__ import annotations

from datetime import timedelta

from controlcenter.model import Quality, Sample, Substatus
from historian import SqlHistorian
from tests.historian.historian_support import LEVEL, MODE, RUNNING, STARTS, at, sample


def _written(store: SqlHistorian) -> list[Sample]:
    bad = Quality.bad(Substatus.COMM_FAILURE, "RTU silent")
    samples = [
        sample(LEVEL, 1.25, at(0)),
        sample(STARTS, 3, at(0)),
        sample(RUNNING, True, at(1)),
        sample(MODE, "auto", at(1)),
        sample(LEVEL, None, at(2), bad),
        sample(LEVEL, 1.5, at(3)),
        Sample(STARTS, 4, Quality.good(), at(3), at(3)),  # source time = server time
        sample(RUNNING, False, at(4)),
    ]
    store.write_samples(samples)
    return samples


def test_many_tags_come_back_in_time_order_as_read_raw_gives_them(store: SqlHistorian) -> None:
    _written(store)
    names = [LEVEL, STARTS, RUNNING, MODE]
    many = store.read_raw_many(names, at(0), at(10))
    assert [s.server_time for s in many] == sorted(s.server_time for s in many)
    for name in names:
        assert [s for s in many if s.tag == name] == store.read_raw(name, at(0), at(10))
    values = {(s.tag, s.server_time): s.value for s in many}
    assert values[(STARTS, at(3))] == 4 and isinstance(values[(STARTS, at(3))], int)
    assert values[(RUNNING, at(4))] is False
    assert values[(MODE, at(1))] == "auto"
    bad = next(s for s in many if s.value is None)
    assert bad.quality.substatus is Substatus.COMM_FAILURE and bad.quality.reason == "RTU silent"
    assert all(s.source_time <= s.server_time for s in many)


def test_the_window_includes_its_start_and_excludes_its_end(store: SqlHistorian) -> None:
    _written(store)
    many = store.read_raw_many([LEVEL, RUNNING], at(1), at(4))
    assert [(s.tag, s.server_time) for s in many] == [
        (RUNNING, at(1)),
        (LEVEL, at(2)),
        (LEVEL, at(3)),
    ]
    assert store.read_raw_many([LEVEL], at(4), at(4) + timedelta(hours=1)) == []


def test_unknown_and_repeated_tags_are_harmless(store: SqlHistorian) -> None:
    _written(store)
    assert store.read_raw_many([], at(0), at(10)) == []
    assert store.read_raw_many(["no.such.tag"], at(0), at(10)) == []
    twice = store.read_raw_many([LEVEL, LEVEL, "no.such.tag"], at(0), at(10))
    assert twice == store.read_raw(LEVEL, at(0), at(10))
