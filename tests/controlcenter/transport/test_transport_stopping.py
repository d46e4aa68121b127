"""Stopping the transport's tasks: a cancellation a library loses does not keep them running."""

from __future__ import annotations

import asyncio

import pytest

from controlcenter.transport.link import cancel_and_wait

pytestmark = pytest.mark.timeout(10)


async def test_a_task_that_loses_its_cancellations_is_stopped_all_the_same() -> None:
    cancellations = 0

    async def stubborn() -> None:
        nonlocal cancellations
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancellations += 1
                if cancellations < 3:
                    continue  # lost, as nats-py loses one on Python 3.11 now and then
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, again_after_s=0.05), 2.0)
    assert task.cancelled()
    assert cancellations == 3


async def test_a_task_that_failed_or_ended_is_waited_for_without_raising() -> None:
    async def failing() -> None:
        raise RuntimeError("fetch failed")

    async def quick() -> None:
        return None

    for body in (failing, quick):
        task = asyncio.create_task(body())
        await asyncio.wait([task])
        await cancel_and_wait(task)
        assert task.done() and not task.cancelled()
