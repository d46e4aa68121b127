"""The command pipeline for callers on other threads (the HMI's and the API's workers).

The pipeline lives on the center's event loop; each call here runs there and waits for its
result, so a command from a display meets exactly the checks and journal of every other command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.commands.selection import SelectionError
from controlcenter.model import CommandResult, Override, Selection, User, Value
from controlcenter.ports import SelectionRefusedError

T = TypeVar("T")

GATEWAY_TIMEOUT_S = 30.0
"""Longest wait for the loop to answer (a write waits for its readback, 5 s by default)."""


class LoopCommandGateway:
    """``ports.CommandOperations`` over a ``CommandPipeline`` running on ``loop``."""

    def __init__(
        self,
        pipeline: CommandPipeline,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float = GATEWAY_TIMEOUT_S,
    ) -> None:
        self._pipeline = pipeline
        self._loop = loop
        self._timeout_s = timeout_s

    def select(self, tag: str, user: User) -> Selection:
        """Reserve ``tag`` for ``user`` (see ``CommandPipeline.select``)."""
        return self._run(lambda: self._pipeline.select(tag, user))

    def operate(
        self,
        selection_id: str,
        user: User,
        value: Value,
        reason: str,
        *,
        until: datetime | None = None,
    ) -> CommandResult:
        """Operate a selection (see ``CommandPipeline.operate``)."""
        return self._run(
            lambda: self._pipeline.operate(selection_id, user, value, reason, until=until)
        )

    def cancel(self, selection_id: str, user: User) -> None:
        """Give up a selection (see ``CommandPipeline.cancel``)."""
        self._run(lambda: self._pipeline.cancel(selection_id, user))

    def release(self, tag: str, user: User, reason: str) -> CommandResult | None:
        """Release an override (see ``CommandPipeline.release``)."""
        return self._run(lambda: self._pipeline.release(tag, user, reason))

    def overrides(self) -> list[Override]:
        """Every active manual override, read on the loop."""

        async def read() -> list[Override]:
            return self._pipeline.overrides()

        return self._run(read)

    def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            return await call()

        coroutine: Coroutine[Any, Any, T] = wrapped()
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self._timeout_s)
        except SelectionError as err:
            raise SelectionRefusedError(str(err)) from err
        except TimeoutError as err:
            future.cancel()
            raise TimeoutError(f"the center did not answer within {self._timeout_s:g} s") from err
