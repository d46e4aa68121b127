"""``RemoteDriver``: a device owned by an edge, written through that edge by request/reply.

The center never reads such a device (its samples come from the stream) and only writes it
through the edge, which checks its own interlocks, writes with its local driver and reads the
value back. A write is two steps, so that a dead edge is told apart from a slow device:

1. a NATS request to the edge's command subject, answered at once: "accepted", or a final
   refusal (unknown tag, an edge interlock). No responder (the edge is not connected) or no
   answer within ``accept_timeout_s`` (about a second) fails the write with "edge <name>
   unreachable": it never hangs.
2. the result, published by the edge to the inbox named in the request once the device has
   answered, within ``result_timeout_s`` (beyond it: not confirmed, as a device's silence).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence

import nats.errors

from controlcenter.model import CommandStatus, Sample, Substatus, TagDef, Value
from controlcenter.transport.codec import (
    CodecError,
    CommandRequest,
    decode_answer,
    decode_reply,
    encode_command,
)
from controlcenter.transport.link import NatsLink
from controlcenter.transport.subjects import Subjects
from drivers.base import (
    DriverDiagnostics,
    DriverError,
    NotConnectedError,
    SampleCallback,
    SubscriptionUnsupportedError,
    WriteRefusedError,
    WriteUnconfirmedError,
)


class RemoteDriver:
    """A ``drivers.base.Driver`` for a device an edge owns: writes only, through the edge."""

    def __init__(
        self,
        device: str,
        edge: str,
        link: NatsLink,
        subjects: Subjects,
        *,
        accept_timeout_s: float = 1.0,
        result_timeout_s: float = 10.0,
        requested_by: str = "",
    ) -> None:
        self._device = device
        self.edge = edge
        self._link = link
        self._subject = subjects.commands(edge)
        self._accept_timeout_s = accept_timeout_s
        self._result_timeout_s = result_timeout_s
        self._requested_by = requested_by
        self._requests = 0
        self._errors = 0
        self._last_error = ""

    @property
    def device(self) -> str:
        """Name of the device."""
        return self._device

    async def connect(self) -> None:
        """Nothing to open: the process's NATS link carries every edge's commands."""

    async def close(self) -> None:
        """Nothing to close."""

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Refused: the samples of an edge's device come from the stream."""
        raise NotConnectedError(f"{self._device} is read by edge {self.edge}, not the center")

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Refused: the samples of an edge's device come from the stream."""
        raise SubscriptionUnsupportedError(f"{self._device} is read by edge {self.edge}")

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Write through the edge and return its read-back; raises DriverError."""
        self._requests += 1
        try:
            return await self._write(point, value, priority)
        except DriverError as err:
            self._errors += 1
            self._last_error = str(err)
            raise

    async def _write(self, point: TagDef, value: Value, priority: int | None) -> Value:
        client = self._link.client
        unreachable = f"edge {self.edge} unreachable"
        if client is None or not self._link.connected:
            raise NotConnectedError(f"{unreachable}: the center has no NATS link")
        inbox = client.new_inbox()
        results = await client.subscribe(inbox, max_msgs=1)
        command_id = uuid.uuid4().hex
        request = CommandRequest(
            command_id=command_id,
            tag=point.name,
            value=value,
            priority=priority if priority is not None and 1 <= priority <= 16 else 16,
            requested_by=self._requested_by,
            result_to=inbox,
        )
        try:
            try:
                answer = await client.request(
                    self._subject, encode_command(request), timeout=self._accept_timeout_s
                )
            except nats.errors.NoRespondersError as err:
                raise NotConnectedError(f"{unreachable} (not connected to NATS)") from err
            except (nats.errors.TimeoutError, TimeoutError) as err:
                raise NotConnectedError(
                    f"{unreachable} (no answer within {self._accept_timeout_s:g} s)"
                ) from err
            except nats.errors.Error as err:
                raise NotConnectedError(f"{unreachable} ({type(err).__name__})") from err
            try:
                reply = decode_answer(answer.data, command_id)
                if reply is None:
                    try:
                        message = await results.next_msg(timeout=self._result_timeout_s)
                    except (nats.errors.TimeoutError, TimeoutError) as err:
                        raise WriteUnconfirmedError(
                            f"edge {self.edge} accepted the write but sent no result within "
                            f"{self._result_timeout_s:g} s",
                            substatus=Substatus.TIMEOUT,
                        ) from err
                    reply = decode_reply(message.data)
                    if reply.command_id != command_id:
                        raise CodecError("a result of another command")
            except CodecError as err:
                raise DriverError(f"edge {self.edge} answered nonsense: {err}") from err
        finally:
            with contextlib.suppress(nats.errors.Error):
                await results.unsubscribe()
        return _outcome(self.edge, reply.status, reply.reason, reply.readback)

    def diagnostics(self) -> DriverDiagnostics:
        """Commands sent through the edge and how many failed."""
        return DriverDiagnostics(
            device=self._device,
            connected=self._link.connected,
            requests=self._requests,
            errors=self._errors,
            last_error=self._last_error,
        )


def _outcome(edge: str, status: CommandStatus, reason: str, readback: Value | None) -> Value:
    """The read-back of a confirmed write; the edge's refusal or failure as a DriverError."""
    if status is CommandStatus.CONFIRMED and readback is not None:
        return readback
    where = f"edge {edge}: {reason}"
    if status is CommandStatus.REJECTED:
        # The edge refuses before writing (its interlocks, a tag or value it does not take).
        raise WriteRefusedError(where)
    if status is CommandStatus.TIMED_OUT:
        raise WriteUnconfirmedError(where, substatus=Substatus.TIMEOUT)
    raise DriverError(where)
