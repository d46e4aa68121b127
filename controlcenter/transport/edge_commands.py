"""The edge's side of commands: validate, check the edge's own interlocks, write, answer.

The edge's interlocks are evaluated on the edge's own latest values, so they hold while the
link to the center is down, and a command the center let through is still refused when the
plant, as the edge sees it, says no. Every command the edge acts on is reported as an event
for the center's journal.

Requests are hostile until checked: a request that cannot be decoded is answered with a
refusal (when it has a reply subject), a tag that is not one of the edge's writable tags or a
value of the wrong type is refused, and results go only to inbox subjects (``_INBOX.``), so a
request cannot make the edge publish anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from controlcenter.model import CommandStatus, DataType, Event, EventKind, Substatus, TagDef, Value
from controlcenter.ports import InterlockChecker
from controlcenter.transport.codec import (
    CodecError,
    CommandReply,
    CommandRequest,
    decode_command,
    encode_accepted,
    encode_reply,
)
from controlcenter.transport.link import NatsLink
from controlcenter.transport.subjects import Subjects
from drivers.base import Driver, DriverError, WriteUnconfirmedError

log = logging.getLogger(__name__)

INBOX_PREFIX = "_INBOX."


class EdgeCommandResponder:
    """Answers the commands sent to one edge's devices."""

    def __init__(
        self,
        edge: str,
        link: NatsLink,
        subjects: Subjects,
        tags: Sequence[TagDef],
        drivers: Mapping[str, Driver],
        interlocks: InterlockChecker,
        *,
        now: Callable[[], datetime],
        report: Callable[[Sequence[Event]], None] | None = None,
        write_timeout_s: float = 8.0,
    ) -> None:
        self.edge = edge
        self._link = link
        self._subject = subjects.commands(edge)
        self._tags = {tag.name: tag for tag in tags if tag.device in drivers}
        self._drivers = drivers
        self._interlocks = interlocks
        self._now = now
        self._report = report
        self._write_timeout_s = write_timeout_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.answered = 0

    async def start(self) -> None:
        """Answer commands once the link is up (at once if it is up already)."""
        self._link.on_connected(self._subscribe)

    async def _subscribe(self, client: Client) -> None:
        await client.subscribe(self._subject, cb=self._on_request)
        await client.flush()
        log.info("edge %s answers commands on %s", self.edge, self._subject)

    async def close(self) -> None:
        """Let the writes under way finish (bounded by their timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_request(self, message: Msg) -> None:
        try:
            request = decode_command(message.data)
        except CodecError as err:
            await self._answer(message, CommandReply("?", CommandStatus.REJECTED, f"{err}"))
            return
        refusal = self._refusal(request)
        if refusal is not None:
            self._journal(request, CommandStatus.REJECTED, refusal)
            await self._answer(
                message, CommandReply(request.command_id, CommandStatus.REJECTED, refusal)
            )
            return
        await self._send(message.reply, encode_accepted(request.command_id))
        task = asyncio.create_task(self._execute(request), name=f"edge write {request.tag}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refusal(self, request: CommandRequest) -> str | None:
        """Why the edge refuses ``request`` before writing, or None."""
        if not request.result_to.startswith(INBOX_PREFIX):
            return "results go to an inbox only"
        tag = self._tags.get(request.tag)
        if tag is None:
            return f"{request.tag} is not a tag of edge {self.edge}"
        if not tag.writable:
            return f"{request.tag} is not writable"
        if not _fits(tag, request.value):
            return f"{request.value!r} is not a {tag.data_type.value} value for {request.tag}"
        blocking = self._interlocks.blocking(tag.name, request.value)
        if blocking is not None:
            return f"interlock at edge {self.edge}: {blocking}"
        return None

    async def _execute(self, request: CommandRequest) -> None:
        tag = self._tags[request.tag]
        lock = self._locks.setdefault(tag.name, asyncio.Lock())
        async with lock:
            # Checked again under the lock: the plant may have moved while the last write ran.
            blocking = self._interlocks.blocking(tag.name, request.value)
            if blocking is not None:
                reply = CommandReply(
                    request.command_id,
                    CommandStatus.REJECTED,
                    f"interlock at edge {self.edge}: {blocking}",
                )
            else:
                reply = await self._write(request, tag)
        self._journal(request, reply.status, reply.reason, reply.readback)
        await self._send(request.result_to, encode_reply(reply))

    async def _write(self, request: CommandRequest, tag: TagDef) -> CommandReply:
        driver = self._drivers[tag.device]
        try:
            readback = await asyncio.wait_for(
                driver.write(tag, request.value, priority=request.priority),
                self._write_timeout_s,
            )
        except TimeoutError:
            return CommandReply(
                request.command_id,
                CommandStatus.TIMED_OUT,
                f"no confirmation within {self._write_timeout_s:g} s",
            )
        except WriteUnconfirmedError as err:
            status = (
                CommandStatus.TIMED_OUT
                if err.substatus is Substatus.TIMEOUT
                else CommandStatus.FAILED
            )
            return CommandReply(
                request.command_id, status, f"write accepted by the device but not confirmed: {err}"
            )
        except DriverError as err:
            return CommandReply(request.command_id, CommandStatus.FAILED, str(err))
        return CommandReply(request.command_id, CommandStatus.CONFIRMED, "readback", readback)

    def _journal(
        self,
        request: CommandRequest,
        status: CommandStatus,
        reason: str,
        readback: Value | None = None,
    ) -> None:
        self.answered += 1
        if self._report is None:
            return
        text = f"{request.tag} := {request.value!r} by {request.requested_by or '?'} at edge "
        text += f"{self.edge}: {status.value}"
        if readback is not None:
            text += f", read back {readback!r}"
        if reason and status is not CommandStatus.CONFIRMED:
            text += f" ({reason})"
        self._report(
            [Event(self._now(), EventKind.COMMAND, request.tag, text, request.requested_by)]
        )

    async def _answer(self, message: Msg, reply: CommandReply) -> None:
        await self._send(message.reply, encode_reply(reply))

    async def _send(self, subject: str, payload: bytes) -> None:
        client = self._link.client
        if not subject or client is None:
            return
        try:
            await client.publish(subject, payload)
        except nats.errors.Error as err:
            log.warning("edge %s could not answer a command: %r", self.edge, err)


def _fits(tag: TagDef, value: Value) -> bool:
    """Whether ``value`` has the tag's type (a bool is not a number; numbers are finite)."""
    match tag.data_type:
        case DataType.BOOL:
            return isinstance(value, bool)
        case DataType.INT:
            return isinstance(value, int) and not isinstance(value, bool)
        case DataType.FLOAT:
            return (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(float(value))
            )
        case DataType.STRING:
            return isinstance(value, str)
        case DataType.DATETIME:
            return isinstance(value, datetime)
    return False
