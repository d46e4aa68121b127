"""History is ordered by the time the center learned each value, not by the device's stamp.

A device that keeps an unchanged value keeps its source time: after an outage the recovered
Good sample carries the same, older source time as before the outage, while the outage's Bad
samples are stamped by the center. Keyed by source time, the recovered sample sorted before the
Bad ones or collided with the Good sample before the outage, and history stayed Bad. Keyed by
server time, it lands after them, on both backends, through the writer and its compression, and
a replay still stores nothing twice.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from controlcenter.model import Quality, Sample, Severity, Substatus
from historian import HistorianWriter, SqlHistorian
from historian.compression import CompressionSettings, Compressor
from historian.queries import HistoryQueries
from tests.historian.historian_support import LEVEL, TAGS, at

DEVICE_STAMP = at(0)
"""When the device last saw the level change: it does not change again in these tests."""
OUTAGE = Quality.bad(Substatus.COMM_FAILURE, "no answer for 3 scan periods")


def _good(received_s: float) -> Sample:
    """The unchanged level as the center received it ``received_s`` seconds after T0."""
    return Sample(LEVEL, 5.0, Quality.good(), DEVICE_STAMP, at(received_s))


def _outage(received_s: float) -> Sample:
    """A Bad sample the center produced itself (no value, its own time as both times)."""
    return Sample(LEVEL, None, OUTAGE, at(received_s), at(received_s))


BEFORE = [_good(0), _good(5)]
DURING = [_outage(10), _outage(15)]
AFTER = [_good(20), _good(25)]


def test_history_after_an_outage_ends_good_when_the_value_did_not_change(
    store: SqlHistorian,
) -> None:
    store.write_samples([*BEFORE, *DURING, *AFTER])

    stored = store.read_raw(LEVEL)

    assert [s.quality.severity for s in stored] == [Severity.GOOD] * 2 + [Severity.BAD] * 2 + [
        Severity.GOOD
    ] * 2
    assert stored[-1] == AFTER[-1]
    # Every sample keeps the device's stamp beside the center's.
    assert [s.source_time for s in stored] == [DEVICE_STAMP] * 2 + [at(10), at(15)] + [
        DEVICE_STAMP
    ] * 2
    [newest] = HistoryQueries(store).read_raw(LEVEL, limit=1, newest_first=True)
    assert newest.quality.is_good and newest.value == 5.0


def test_percent_good_counts_the_recovered_period_as_good(store: SqlHistorian) -> None:
    store.write_samples([*BEFORE, *DURING, *AFTER])

    processed = HistoryQueries(store).read_processed(
        LEVEL, at(0), at(25), timedelta(seconds=25), ["percent_good", "time_average"]
    )

    # Good over [0, 10) and [20, 25): 15 of 25 seconds (the outage's 10 s are Bad).
    [percent] = processed["percent_good"]
    assert percent.value == pytest.approx(100.0 * 15 / 25)
    [average] = processed["time_average"]
    assert average.value == pytest.approx(5.0)


def test_a_replayed_batch_is_stored_once_and_new_receipts_of_a_stamp_are_kept(
    store: SqlHistorian,
) -> None:
    store.write_samples([*BEFORE, *DURING])
    store.write_samples([*BEFORE, *DURING, *AFTER])  # a replay overlapping what is stored
    store.write_samples(AFTER)

    stored = store.read_raw(LEVEL)

    assert stored == [*BEFORE, *DURING, *AFTER]


@pytest.mark.parametrize(
    "settings",
    [
        CompressionSettings(),
        CompressionSettings("exception", 0.1, max_interval_s=3600.0),
        CompressionSettings("swinging_door", 0.1, False, 0.5, False, 3600.0),
    ],
    ids=["raw", "exception", "swinging_door"],
)
async def test_the_writer_and_its_compression_store_the_recovery(
    store: SqlHistorian, settings: CompressionSettings
) -> None:
    writer = HistorianWriter(store, compressor=Compressor.for_tags({LEVEL: settings}, TAGS))
    task = asyncio.create_task(writer.run())
    try:
        for sample in [*BEFORE, *DURING, *AFTER]:
            writer.enqueue([sample])
        await asyncio.wait_for(writer.stop(), timeout=30)
    finally:
        await asyncio.gather(task, return_exceptions=True)

    stored = store.read_raw(LEVEL)

    assert stored[-1].quality.is_good and stored[-1].value == 5.0
    assert stored[-1].server_time >= AFTER[0].server_time
    assert [s.server_time for s in stored] == sorted(s.server_time for s in stored)
