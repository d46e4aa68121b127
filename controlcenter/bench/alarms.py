"""``controlcenter bench alarms``: the alarm engine, the alarm service and the KPIs, measured.

Four figures, each with its target and a pass flag (one JSON object):

- ``engine``: the ``AlarmEngine``'s CPU share at 30,000 tags with a high and a low limit alarm
  each (60,000 alarms), every tag sampled once a second (30,000 samples per second). The
  samples (a random walk that crosses the limits, so alarms do raise and clear) are generated
  before the measurement and fed in scan-sized batches of 1,000; the process CPU time spent in
  ``feed`` is divided by the seconds of samples fed. Target: at most 0.15 of a core.
- ``latency``: sample-to-alarm time through the engine and the ``AlarmService`` with a real
  SQLite historian (states saved, transitions journaled, then the listener told), at the full
  sample rate in real time: each batch is due at its wall-clock time; the latency of a
  transition is from its batch's due time to the listener's call, so falling behind counts.
  Some tags are pushed across their limit every second. Target: 95th percentile at most 1 s.
- ``flood``: 2,000 alarms raised within one second (2,000 tags across their high limit in 20
  batches 50 ms apart) through the engine and the service into SQLite; the ``activate`` rows
  of the alarm journal and the active saved states are counted afterwards. Target: nothing
  lost (2,000 of each).
- ``kpi``: ``read_alarm_kpi`` over 30 days of an alarm journal of 100,000 transitions (500
  alarms, a few bad actors, floods, shelving), bulk-journaled beforehand (not timed). Target:
  at most 2 s.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from alarms.engine import AlarmEngine
from alarms.service import AlarmService
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmDisplayState,
    AlarmKind,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
    SiteLocation,
)
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Quality, Sample, TagDef, utc_now
from controlcenter.runtime.app import StoreJournal
from historian.alarm_kpi import read_alarm_kpi
from historian.store import SqlHistorian

SITE = SiteLocation(52.37, 4.90, "Europe/Amsterdam")
KPI_START = datetime(2026, 3, 2, tzinfo=UTC)
"""Fixed start of the generated alarm journal (a Monday), so runs are comparable."""
HIGH_LIMIT = 80.0
LOW_LIMIT = 20.0
DEADBAND = 2.0

TARGET_ENGINE_CORES = 0.15
TARGET_LATENCY_P95_S = 1.0
TARGET_KPI_S = 2.0


class AlarmsBenchError(RuntimeError):
    """The alarms bench could not run (a size out of range, a part failed)."""


@dataclass(frozen=True, slots=True)
class AlarmsBenchSize:
    """How much each measurement uses."""

    tags: int = 30_000
    """Tags with a high and a low limit alarm each; every tag is sampled once a second."""
    engine_seconds: int = 10
    """Seconds of samples fed to the engine for its CPU share."""
    batch: int = 1_000
    """Samples per ``feed`` (a scan's batch)."""
    latency_seconds: int = 10
    """Real-time seconds of the latency run."""
    raised_per_s: int = 20
    """Tags pushed across their high limit (and others back) every second of the latency run."""
    flood_alarms: int = 2_000
    kpi_days: float = 30.0
    kpi_transitions: int = 100_000
    kpi_alarms: int = 500


TINY = AlarmsBenchSize(
    tags=400,
    engine_seconds=2,
    batch=100,
    latency_seconds=2,
    raised_per_s=5,
    flood_alarms=100,
    kpi_days=1.0,
    kpi_transitions=3_000,
    kpi_alarms=50,
)
"""A size for tests: every path runs, in a few seconds."""


def run_alarms_bench(size: AlarmsBenchSize | None = None) -> dict[str, object]:
    """Run the four measurements; return one JSON-ready mapping of figures."""
    chosen = size or AlarmsBenchSize()
    if min(chosen.tags, chosen.engine_seconds, chosen.batch, chosen.latency_seconds) < 1:
        raise AlarmsBenchError("every size must be at least 1")
    if min(chosen.flood_alarms, chosen.kpi_transitions, chosen.kpi_alarms) < 1:
        raise AlarmsBenchError("every size must be at least 1")
    if not chosen.kpi_days > 0 or chosen.raised_per_s * 2 > chosen.tags:
        raise AlarmsBenchError("the KPI window must be positive and raised_per_s <= tags / 2")
    engine = engine_share(chosen)
    with tempfile.TemporaryDirectory(prefix="cc-bench-alarms-") as folder:
        latency = service_latency(chosen, Path(folder) / "latency.db")
        flood = alarm_flood(chosen.flood_alarms, Path(folder) / "flood.db")
        kpi = kpi_speed(chosen, Path(folder) / "kpi.db")
    return {
        "engine": {
            **asdict(engine),
            "target_cores": TARGET_ENGINE_CORES,
            "pass": engine.cores <= TARGET_ENGINE_CORES,
        },
        "latency": {
            **asdict(latency),
            "target_p95_s": TARGET_LATENCY_P95_S,
            "pass": latency.transitions > 0 and latency.p95_s <= TARGET_LATENCY_P95_S,
        },
        "flood": {
            **asdict(flood),
            "pass": flood.journaled == flood.alarms and flood.saved_active == flood.alarms,
        },
        "kpi": {**asdict(kpi), "target_s": TARGET_KPI_S, "pass": kpi.query_s <= TARGET_KPI_S},
    }


# --- the synthetic site -----------------------------------------------------------------------


def limit_alarm_site(tags: int) -> tuple[list[TagDef], list[AlarmDef]]:
    """``tags`` float tags (100 per device) with a high and a low limit alarm each."""
    tag_defs = [
        TagDef(f"bench.t{i}", f"bench.d{i // 100}", "x", DataType.FLOAT) for i in range(tags)
    ]
    alarms = [
        definition
        for tag in tag_defs
        for definition in (
            AlarmDef(
                f"{tag.name}.hi",
                AlarmKind.HIGH,
                AlarmPriority.MEDIUM,
                tag=tag.name,
                device=tag.device,
                limit=HIGH_LIMIT,
                deadband=DEADBAND,
                area="bench",
            ),
            AlarmDef(
                f"{tag.name}.lo",
                AlarmKind.LOW,
                AlarmPriority.LOW,
                tag=tag.name,
                device=tag.device,
                limit=LOW_LIMIT,
                deadband=DEADBAND,
                area="bench",
            ),
        )
    ]
    return tag_defs, alarms


def random_walk_seconds(
    tags: Sequence[TagDef], seconds: int, batch: int, start: datetime
) -> list[tuple[datetime, list[Sample]]]:
    """Every tag once a second for ``seconds``, a bounded random walk through both limits, in
    batches of ``batch`` spread evenly over each second."""
    walk = random.Random(7)
    values = [walk.uniform(10.0, 90.0) for _ in tags]
    good = Quality.good()
    batches: list[tuple[datetime, list[Sample]]] = []
    per_second = math.ceil(len(tags) / batch)
    for second in range(seconds):
        for part in range(per_second):
            now = start + timedelta(seconds=second + part / per_second)
            chunk: list[Sample] = []
            for index in range(part * batch, min(len(tags), (part + 1) * batch)):
                values[index] = min(100.0, max(0.0, values[index] + walk.uniform(-6.0, 6.0)))
                chunk.append(Sample(tags[index].name, values[index], good, now, now))
            batches.append((now, chunk))
    return batches


# --- (a) the engine's CPU share ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineShare:
    """CPU spent by the engine per second of samples."""

    tags: int
    alarms: int
    seconds: int
    samples_per_s: int
    condition_changes: int
    cpu_s: float
    cores: float
    us_per_sample: float


def engine_share(size: AlarmsBenchSize) -> EngineShare:
    """Feed pre-generated samples to the engine; CPU seconds spent per second of samples."""
    tags, alarms = limit_alarm_site(size.tags)
    engine = AlarmEngine(alarms, tags, SITE)
    batches = random_walk_seconds(tags, size.engine_seconds, size.batch, KPI_START)
    samples = sum(len(batch) for _, batch in batches)
    changes = 0
    began = time.process_time()
    for now, batch in batches:
        changes += len(engine.feed(batch, now))
    spent = time.process_time() - began
    return EngineShare(
        tags=size.tags,
        alarms=len(alarms),
        seconds=size.engine_seconds,
        samples_per_s=samples // size.engine_seconds,
        condition_changes=changes,
        cpu_s=round(spent, 3),
        cores=round(spent / size.engine_seconds, 4),
        us_per_sample=round(spent / samples * 1e6, 3),
    )


# --- (b) sample-to-alarm latency through engine and service -------------------------------------


class _LatencyListener:
    """Notes, for every activation, when the service told its listeners."""

    def __init__(self) -> None:
        self.told: dict[str, float] = {}

    def on_transition(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition
    ) -> None:
        """Record the moment of an activation (the last one of each alarm)."""
        if transition.action is AlarmAction.ACTIVATE:
            self.told[transition.alarm] = time.perf_counter()


@dataclass(frozen=True, slots=True)
class ServiceLatency:
    """Sample-to-listener latency of activations at the full sample rate, in real time."""

    tags: int
    seconds: int
    samples: int
    transitions: int
    p50_s: float
    p95_s: float
    max_s: float
    behind_s: float
    """How late the last batch was fed after its due time (0: kept up)."""


def service_latency(size: AlarmsBenchSize, database: Path) -> ServiceLatency:
    """Run engine and service in real time at the full rate; latency of every activation."""
    tags, alarms = limit_alarm_site(size.tags)
    engine = AlarmEngine(alarms, tags, SITE)
    listener = _LatencyListener()
    latencies: list[float] = []
    per_second = math.ceil(size.tags / size.batch)
    samples = 0
    behind = 0.0
    with SqlHistorian(f"sqlite:///{database}") as store:
        service = AlarmService(
            alarms, store, StoreJournal(store), WallClock(), listeners=[listener]
        )
        service.restore()
        values = [50.0] * size.tags
        good = Quality.good()
        origin = time.perf_counter()
        for second in range(size.latency_seconds):
            # Tags pushed over the high limit this second (spread over the batches), and the
            # ones of last second back.
            raised = {
                (k * size.tags // size.raised_per_s + second) % size.tags
                for k in range(size.raised_per_s)
            }
            for index in range(size.tags):
                values[index] = 95.0 if index in raised else 50.0
            for part in range(per_second):
                due = origin + second + part / per_second
                _wait_until(due)
                behind = max(0.0, time.perf_counter() - due)
                now = utc_now()
                chunk = [
                    Sample(tags[index].name, values[index], good, now, now)
                    for index in range(part * size.batch, min(size.tags, (part + 1) * size.batch))
                ]
                samples += len(chunk)
                watched = {f"{sample.tag}.hi" for sample in chunk if sample.value == 95.0}
                listener.told.clear()
                service.apply_conditions(engine.feed(chunk, now))
                latencies.extend(
                    listener.told[name] - due for name in watched if name in listener.told
                )
    latencies.sort()
    return ServiceLatency(
        tags=size.tags,
        seconds=size.latency_seconds,
        samples=samples,
        transitions=len(latencies),
        p50_s=round(_percentile(latencies, 0.50), 4),
        p95_s=round(_percentile(latencies, 0.95), 4),
        max_s=round(latencies[-1], 4) if latencies else 0.0,
        behind_s=round(behind, 4),
    )


def _wait_until(due: float) -> None:
    """Pace the feed: batches arrive at their due time, as a scan delivers them."""
    remaining = due - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


def _percentile(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


# --- (c) a flood of alarms --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlarmFlood:
    """A flood of alarms raised within one second, and what the database holds afterwards."""

    alarms: int
    wall_s: float
    """From the first batch's due time until the last batch was journaled."""
    journaled: int
    """``activate`` rows of the flood's alarms in the alarm journal."""
    saved_active: int
    """Saved alarm states that are active."""


FLOOD_BATCHES = 20


def alarm_flood(alarms: int, database: Path) -> AlarmFlood:
    """Raise ``alarms`` high alarms within one second through engine and service; count rows."""
    tags, definitions = limit_alarm_site(alarms)
    engine = AlarmEngine(definitions, tags, SITE)
    good = Quality.good()
    with SqlHistorian(f"sqlite:///{database}") as store:
        service = AlarmService(definitions, store, StoreJournal(store), WallClock())
        service.restore()
        now = utc_now()
        engine.feed([Sample(tag.name, 50.0, good, now, now) for tag in tags], now)
        per_batch = math.ceil(alarms / FLOOD_BATCHES)
        origin = time.perf_counter()
        for number in range(FLOOD_BATCHES):
            _wait_until(origin + number / FLOOD_BATCHES)
            now = utc_now()
            chunk = [
                Sample(tag.name, 95.0, good, now, now)
                for tag in tags[number * per_batch : (number + 1) * per_batch]
            ]
            service.apply_conditions(engine.feed(chunk, now))
        if not service.flush():
            raise AlarmsBenchError("the alarm service could not write the flood to the database")
        wall = time.perf_counter() - origin
        with store.reading("count the flood") as conn:
            journaled = conn.execute(
                text(
                    "SELECT COUNT(*) FROM alarm_journal WHERE action = :action AND alarm LIKE :like"
                ),
                {"action": AlarmAction.ACTIVATE.value, "like": "bench.t%.hi"},
            ).scalar_one()
        saved_active = sum(1 for state in store.load_alarm_states() if state.active)
    return AlarmFlood(
        alarms=alarms, wall_s=round(wall, 3), journaled=int(journaled), saved_active=saved_active
    )


# --- (d) the KPI query over 30 days -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KpiSpeed:
    """How long the KPI query takes over a month of alarm journal."""

    days: float
    transitions: int
    alarms: int
    write_s: float
    query_s: float
    annunciated: int
    floods: int
    chattering: int


def synthetic_journal(
    transitions: int, alarms: int, days: float, start: datetime
) -> list[AlarmTransition]:
    """About ``transitions`` transitions of ``alarms`` alarms over ``days``: activation,
    acknowledgement and clear cycles, bad actors (a few alarms raise far more often), bursts
    that make floods, chattering, and some shelving."""
    generator = random.Random(11)
    span_s = days * 86400.0
    names = [f"bench.alarm{index:04d}" for index in range(alarms)]
    # Zipf-like: the first alarms are the bad actors.
    weights = [1.0 / (rank + 1) for rank in range(alarms)]
    # About 80 % low, 15 % medium and 5 % high alarms (EEMUA 191's aim).
    mix = (AlarmPriority.LOW,) * 16 + (AlarmPriority.MEDIUM,) * 3 + (AlarmPriority.HIGH,)
    priorities = {name: mix[index % len(mix)] for index, name in enumerate(names)}
    journal: list[AlarmTransition] = []
    while len(journal) < transitions:
        burst = generator.random() < 0.02
        origin = generator.uniform(0, span_s)
        chosen = (
            generator.sample(names, min(alarms, 30)) if burst else generator.choices(names, weights)
        )
        for offset, name in enumerate(chosen):
            moment = start + timedelta(seconds=origin + offset * (15 if burst else 0))
            journal += _cycle(generator, name, moment, priorities[name])
        if generator.random() < 0.01:
            name = generator.choice(names)
            moment = start + timedelta(seconds=generator.uniform(0, span_s))
            journal += _shelving(name, moment, generator.uniform(600, 8 * 3600))
    return journal[:transitions]


def _cycle(
    generator: random.Random, name: str, moment: datetime, priority: AlarmPriority
) -> list[AlarmTransition]:
    """Activate, acknowledge (after 10 s to 10 min) and clear (after up to an hour)."""
    acknowledged = moment + timedelta(seconds=generator.uniform(10, 600))
    cleared = acknowledged + timedelta(seconds=generator.uniform(5, 3600))
    return [
        _transition(moment, name, AlarmAction.ACTIVATE, AlarmDisplayState.NORMAL,
                    AlarmDisplayState.UNACKNOWLEDGED, priority),
        _transition(acknowledged, name, AlarmAction.ACKNOWLEDGE,
                    AlarmDisplayState.UNACKNOWLEDGED, AlarmDisplayState.ACKNOWLEDGED, priority),
        _transition(cleared, name, AlarmAction.CLEAR, AlarmDisplayState.ACKNOWLEDGED,
                    AlarmDisplayState.NORMAL, priority),
    ]  # fmt: skip


def _shelving(name: str, moment: datetime, seconds: float) -> list[AlarmTransition]:
    """Shelved by an operator, and the shelf expiring."""
    return [
        _transition(moment, name, AlarmAction.SHELVE, AlarmDisplayState.NORMAL,
                    AlarmDisplayState.SHELVED, AlarmPriority.LOW, user="bench"),
        _transition(moment + timedelta(seconds=seconds), name, AlarmAction.SHELF_EXPIRED,
                    AlarmDisplayState.SHELVED, AlarmDisplayState.NORMAL, AlarmPriority.LOW),
    ]  # fmt: skip


def _transition(
    moment: datetime,
    name: str,
    action: AlarmAction,
    before: AlarmDisplayState,
    after: AlarmDisplayState,
    priority: AlarmPriority,
    user: str = "",
) -> AlarmTransition:
    return AlarmTransition(
        time=moment,
        alarm=name,
        action=action,
        before=before,
        after=after,
        user=user,
        priority=priority,
        area="bench",
        tag=name,
        device="bench.d0",
    )


def kpi_speed(size: AlarmsBenchSize, database: Path) -> KpiSpeed:
    """Bulk-journal a month of transitions, then time the KPI query over the month."""
    journal = synthetic_journal(size.kpi_transitions, size.kpi_alarms, size.kpi_days, KPI_START)
    end = KPI_START + timedelta(days=size.kpi_days)
    with SqlHistorian(f"sqlite:///{database}") as store:
        began = time.perf_counter()
        for first in range(0, len(journal), 10_000):
            store.journal_alarm_transitions(journal[first : first + 10_000])
        written = time.perf_counter() - began
        began = time.perf_counter()
        figures = read_alarm_kpi(store, KPI_START, end)
        spent = time.perf_counter() - began
    return KpiSpeed(
        days=size.kpi_days,
        transitions=len(journal),
        alarms=size.kpi_alarms,
        write_s=round(written, 3),
        query_s=round(spent, 3),
        annunciated=figures.alarms,
        floods=len(figures.floods),
        chattering=len(figures.chattering),
    )
