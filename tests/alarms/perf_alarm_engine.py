"""Measure the alarm engine's CPU share: 30,000 tags x 2 limit alarms at 30,000 samples/s.

Run: ``PYTHONPATH=. .venv/bin/python tests/alarms/perf_alarm_engine.py [seconds]``.
Samples are generated before timing (a random walk around the limits, so alarms do raise
and clear); the figure is the process CPU time spent in ``feed`` per second of simulated
input, i.e. the share of one core the engine needs at that rate (target: at most 0.15).
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from alarms.engine import AlarmEngine
from controlcenter.automation import AlarmDef, AlarmKind, SiteLocation
from controlcenter.model import DataType, Quality, Sample, TagDef

TAGS = 30_000
RATE = 30_000
BATCH = 1_000
"""Samples per ``feed`` call (the acquisition layer hands over batches)."""


def main(seconds: int) -> None:
    """Build the site, pre-generate the samples, time ``feed``, print the figures."""
    tags = [TagDef(f"t{i}", f"dev{i // 100}", "x", DataType.FLOAT) for i in range(TAGS)]
    alarms = [
        definition
        for i in range(TAGS)
        for definition in (
            AlarmDef(f"t{i}.hi", AlarmKind.HIGH, tag=f"t{i}", limit=80.0, deadband=2.0),
            AlarmDef(f"t{i}.lo", AlarmKind.LOW, tag=f"t{i}", limit=20.0, deadband=2.0),
        )
    ]
    # Sites get a comm-loss alarm per device too (300 devices of 100 tags).
    alarms += [
        AlarmDef(f"dev{d}.comm", AlarmKind.COMM_LOSS, device=f"dev{d}") for d in range(TAGS // 100)
    ]
    engine = AlarmEngine(alarms, tags, SiteLocation(52.37, 4.90))
    random_walk = random.Random(7)
    values = [50.0] * TAGS
    good = Quality.good()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batches: list[tuple[datetime, list[Sample]]] = []
    total = seconds * RATE
    for number in range(total // BATCH):
        now = start + timedelta(seconds=number * BATCH / RATE)
        batch = []
        for _ in range(BATCH):
            index = random_walk.randrange(TAGS)
            values[index] = min(100.0, max(0.0, values[index] + random_walk.uniform(-8, 8)))
            batch.append(Sample(f"t{index}", values[index], good, now, now))
        batches.append((now, batch))
    changes = 0
    began = time.process_time()
    for now, batch in batches:
        changes += len(engine.feed(batch, now))
    spent = time.process_time() - began
    print(f"{total} samples over {seconds} s of input, {changes} condition changes")
    print(f"CPU {spent:.3f} s -> {spent / seconds:.3f} core at {RATE} samples/s (target <= 0.15)")
    print(f"{spent / total * 1e6:.2f} us per sample")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
