"""The command pipeline: the one path by which anything is written to the field.

Every command, from an operator or a rule, is checked (known tag, writable, type, engineering
range), written through the tag's driver with a timeout, confirmed by readback, and journaled with
who asked, why and what came of it. A rejected command is journaled too. A write the device
accepted but whose readback failed is reported as exactly that (failed, or timed_out when the
readback timed out), never as the device's refusal.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence

from controlcenter.model import (
    Command,
    CommandResult,
    CommandStatus,
    DataType,
    Substatus,
    TagDef,
    Value,
)
from controlcenter.ports import Clock, HistoryStore
from drivers.base import Driver, DriverError, WriteUnconfirmedError

log = logging.getLogger(__name__)


class CommandPipeline:
    """Checks, executes, confirms and journals commands (a ``ports.CommandSink``)."""

    def __init__(
        self,
        tags: Sequence[TagDef],
        drivers: Mapping[str, Driver],
        journal: HistoryStore,
        clock: Clock,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self._tags = {tag.name: tag for tag in tags}
        self._drivers = dict(drivers)
        self._journal = journal
        self._clock = clock
        self._timeout_s = timeout_s
        # Writes to one tag are serialised so a readback always belongs to its own write.
        self._tag_locks: dict[str, asyncio.Lock] = {}

    async def submit(self, command: Command) -> CommandResult:
        """Check, execute, read back and journal a command; always returns a result."""
        tag = self._tags.get(command.tag)
        rejection = self._check(command, tag)
        if rejection is not None or tag is None:
            result = self._result(command, CommandStatus.REJECTED, rejection or "unknown tag")
        else:
            lock = self._tag_locks.setdefault(tag.name, asyncio.Lock())
            async with lock:
                result = await self._execute(command, tag)
        await self._record(result)
        return result

    def _check(self, command: Command, tag: TagDef | None) -> str | None:
        if tag is None:
            return f"unknown tag '{command.tag}'"
        if not tag.writable:
            return f"tag '{tag.name}' is read-only"
        if tag.device not in self._drivers:
            return f"no driver for device '{tag.device}'"
        if not command.reason.strip():
            return "a command needs a reason"
        return _value_problem(tag, command.value)

    async def _execute(self, command: Command, tag: TagDef) -> CommandResult:
        driver = self._drivers[tag.device]
        try:
            # The priority reaches protocols that arbitrate (a BACnet priority array slot).
            write = driver.write(tag, command.value, priority=int(command.priority))
            readback = await asyncio.wait_for(write, self._timeout_s)
        except TimeoutError:
            return self._result(
                command,
                CommandStatus.TIMED_OUT,
                f"no confirmation within {self._timeout_s:g} s",
            )
        except WriteUnconfirmedError as err:
            # The device took the write; only its confirmation is missing. Not a refusal: the
            # field may already hold the new value, and the operator must know that.
            status = (
                CommandStatus.TIMED_OUT
                if err.substatus is Substatus.TIMEOUT
                else CommandStatus.FAILED
            )
            reason = f"write accepted by the device but not confirmed: {err}"
            return self._result(command, status, reason)
        except DriverError as err:
            return self._result(command, CommandStatus.FAILED, str(err))
        if not _same_value(tag, command.value, readback):
            return self._result(
                command,
                CommandStatus.FAILED,
                f"readback {readback!r} differs from commanded {command.value!r}",
                readback,
            )
        return self._result(command, CommandStatus.CONFIRMED, "readback matches", readback)

    def _result(
        self, command: Command, status: CommandStatus, reason: str, readback: Value | None = None
    ) -> CommandResult:
        return CommandResult(command, status, reason, self._clock.now(), readback)

    async def _record(self, result: CommandResult) -> None:
        command = result.command
        level = logging.INFO if result.confirmed else logging.WARNING
        log.log(
            level,
            "command %s := %r by %s %s (%s): %s, %s",
            command.tag,
            command.value,
            command.origin.value,
            command.requested_by,
            command.reason,
            result.status.value,
            result.reason,
        )
        await asyncio.to_thread(self._journal.journal_command, result)


def _value_problem(tag: TagDef, value: Value) -> str | None:
    if tag.data_type is DataType.BOOL:
        return None if isinstance(value, bool) else f"{tag.name} takes true or false"
    if tag.data_type is DataType.STRING:
        return None if isinstance(value, str) else f"{tag.name} takes text"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{tag.name} takes a number"
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    if tag.data_type is DataType.INT and not float(value).is_integer():
        return f"{tag.name} takes a whole number"
    if tag.low is not None and value < tag.low:
        return f"{value} is below the engineering range ({_range_text(tag)})"
    if tag.high is not None and value > tag.high:
        return f"{value} is above the engineering range ({_range_text(tag)})"
    return None


def _range_text(tag: TagDef) -> str:
    low = "" if tag.low is None else f"{tag.low:g}"
    high = "" if tag.high is None else f"{tag.high:g}"
    return f"{low}..{high} {tag.unit}".strip()


def _same_value(tag: TagDef, commanded: Value, readback: Value) -> bool:
    if (
        tag.data_type is DataType.FLOAT
        and isinstance(readback, int | float)
        and isinstance(commanded, int | float)
    ):
        # float32 registers round the commanded value; compare at float32 precision.
        return math.isclose(float(commanded), float(readback), rel_tol=1e-6, abs_tol=1e-6)
    return commanded == readback
