"""Real receivers and a controlled clock for the notification tests (no tests of its own).

- ``SmtpReceiver``: aiosmtpd's SMTP protocol on a loopback port chosen by the system, keeping
  every message it is handed.
- ``WebhookReceiver``: a minimal HTTP/1.1 server on asyncio streams that answers with scripted
  status codes and keeps every request (headers and exact body bytes).
- ``FakeClock``: time moves only when the test advances it; ``clock.sleep`` sleepers wake then.
- ``StepClock``: ``sleep`` returns at once and records the requested delay (backoff tests).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session

from alarms.notify import verify
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmDisplayState,
    AlarmState,
    AlarmTransition,
)
from controlcenter.model import Event
from tests.controlled_clock import ControlledClock

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
SECRET = "s3cret-for-tests"
SECRET_ENV = "CC_TEST_NOTIFY_WEBHOOK_SECRET"


class FakeClock(ControlledClock):
    """A controlled clock starting at ``T0`` unless told otherwise."""

    def __init__(self, start: datetime = T0) -> None:
        super().__init__(start)


class StepClock:
    """A clock whose ``sleep`` moves time on at once and remembers each requested delay."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self.slept: list[float] = []

    @property
    def speed(self) -> float:
        """Real time."""
        return 1.0

    def now(self) -> datetime:
        """The controlled time."""
        return self._now

    def monotonic(self) -> float:
        """Seconds since the start."""
        return (self._now - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Record and skip the wait."""
        self.slept.append(seconds)
        self._now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class ListJournal:
    """An event journal backed by a list."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, event: Event) -> None:
        """Keep the event."""
        self.events.append(event)

    def messages(self, prefix: str = "") -> list[str]:
        """The messages starting with ``prefix``."""
        return [event.message for event in self.events if event.message.startswith(prefix)]


class _CapturingHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self._receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._receiver.envelopes.append(envelope)
        self._receiver.arrived.set()
        return "250 OK"


@dataclass
class SmtpReceiver:
    """A real SMTP server on a loopback port; ``envelopes`` holds what it was handed."""

    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def messages(self) -> list[EmailMessage]:
        """Every received message, parsed."""
        return [
            message_from_bytes(cast(bytes, envelope.original_content), policy=policy.default)
            for envelope in self.envelopes
        ]


@pytest_asyncio.fixture
async def smtp_receiver() -> AsyncIterator[SmtpReceiver]:
    """A running SMTP receiver."""
    receiver = SmtpReceiver()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(_CapturingHandler(receiver), hostname="receiver.test"), "127.0.0.1", 0
    )
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class Request:
    """One HTTP request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as JSON."""
        return cast(dict[str, Any], json.loads(self.body))

    def signature_valid(self, secret: str = SECRET) -> bool:
        """Whether the signature header matches the body under ``secret``."""
        signature = self.headers.get("x-signature-sha256", "")
        return verify(secret.encode(), self.body, signature)


@dataclass
class WebhookReceiver:
    """A minimal HTTP server: answers each request with the next scripted status (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[dict[str, Any]]:
        """Every received body as JSON."""
        return [request.json() for request in self.requests]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one request on the connection, then close it."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(method, path, headers, body))
            status = self.statuses.pop(0) if self.statuses else 200
            answer = f"HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            writer.write(answer.encode())
            await writer.drain()
        finally:
            writer.close()


@pytest_asyncio.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """A running webhook receiver."""
    receiver = WebhookReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


def activation(
    definition: AlarmDef,
    at: datetime,
    *,
    value: float = 4.8,
    shelved: bool = False,
    suppressed: bool = False,
    out_of_service: bool = False,
) -> tuple[AlarmDef, AlarmState, AlarmTransition]:
    """The listener arguments of ``definition`` becoming active at ``at``."""
    state = AlarmState(
        definition.name,
        active=True,
        acknowledged=False,
        shelved_by="olga" if shelved else "",
        shelve_reason="sensor work" if shelved else "",
        suppressed=suppressed,
        suppressed_reason="pump off" if suppressed else "",
        out_of_service_by="mike" if out_of_service else "",
        out_of_service_reason="replaced" if out_of_service else "",
        activated_at=at,
        changed_at=at,
        value=value,
        message=definition.message,
    )
    transition = AlarmTransition(
        at,
        definition.name,
        AlarmAction.ACTIVATE,
        AlarmDisplayState.NORMAL,
        state.display,
        priority=definition.priority,
        area=definition.area,
        tag=definition.tag,
        value=value,
    )
    return definition, state, transition


def follow_up(
    previous: AlarmState,
    definition: AlarmDef,
    action: AlarmAction,
    at: datetime,
    **changes: Any,
) -> tuple[AlarmDef, AlarmState, AlarmTransition]:
    """The listener arguments of ``action`` applied to ``previous`` (fields in ``changes``)."""
    state = replace(previous, changed_at=at, **changes)
    transition = AlarmTransition(
        at,
        definition.name,
        action,
        previous.display,
        state.display,
        user="olga",
        priority=definition.priority,
        area=definition.area,
    )
    return definition, state, transition


async def eventually(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Wait until ``condition`` holds, polling with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


async def within(awaitable: Awaitable[None], timeout_s: float = 3.0) -> None:
    """Await with a deadline."""
    await asyncio.wait_for(awaitable, timeout_s)
