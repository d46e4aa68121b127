"""The notifier: listens to alarm transitions and tells the people on call, by e-mail and webhook.

ISA-18.2 leaves notification outside the operator's console to the site's philosophy; this one
follows common practice in utilities:

- an alarm that becomes active (and is not shelved, suppressed or out of service) goes to the
  first on-call group of every route it matches (area and priority);
- while it stays unacknowledged, each ``escalate_after_s`` on the center's clock it escalates to
  the route's next group; an acknowledgement (or shelving, suppression, removal from service)
  ends the escalation;
- during a route's quiet hours, alarms of ``quiet_below`` priority or less urgent are held back
  and sent when the quiet hours end, if still active and unacknowledged;
- when more than ``flood_threshold`` new notifications for one group fall within
  ``flood_window_s``, the rest of the window's alarms go out as one summary (EEMUA 191's alarm
  flood, seen from the person on call);
- every notification is journaled as an event of kind ALARM from the source ``notifications``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from alarms.notify.mail import EmailDeliveryError, EmailSender
from alarms.notify.messages import (
    SUMMARY_FIRST_ALARMS,
    AlarmNotice,
    FloodSummary,
    Notification,
    priority_name,
)
from alarms.notify.routing import FloodGate, NotificationConfigError, Route, resolve_routes
from alarms.notify.webhook import WebhookDeliveryError, WebhookSender
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
    EmailSettings,
    NotificationRouteDef,
    OnCallGroupDef,
    WebhookSettings,
)
from controlcenter.model import Event, EventKind
from controlcenter.ports import Clock, EventJournal

logger = logging.getLogger(__name__)

SOURCE = "notifications"
"""The source of every event the notifier journals."""
DEFAULT_FLOOD_THRESHOLD = 10
DEFAULT_FLOOD_WINDOW_S = 60.0
MAX_QUEUED_TRANSITIONS = 100_000
"""Transitions waiting for the notifier beyond this are dropped (and the drop journaled)."""
MAX_CONCURRENT_DELIVERIES = 16

# Journal severities on the OPC UA scale 1..1000 that rule events use as well.
SENT_SEVERITY = 200
NOTICE_SEVERITY = 400
FAILED_SEVERITY = 700


@dataclass(slots=True)
class _Episode:
    """One alarm's way along one route, from activation until acknowledgement."""

    route: Route
    next_level: int = 0
    due: datetime | None = None
    """When the next group is due (or, while held, when the quiet hours end)."""
    held: bool = False


@dataclass(slots=True)
class _Tracked:
    """An alarm the notifier is busy with: its latest state and its episodes."""

    definition: AlarmDef
    state: AlarmState
    episodes: list[_Episode] = field(default_factory=list)
    notified_groups: set[str] = field(default_factory=set)
    """Groups told already: two routes naming the same group send once."""


@dataclass(slots=True)
class _Batch:
    """Alarms collected for one group during a flood, sent as one summary at ``flush_at``."""

    since: datetime
    flush_at: datetime
    count: int = 0
    by_priority: Counter[AlarmPriority] = field(default_factory=Counter)
    first: list[AlarmNotice] = field(default_factory=list)


def _zone(timezone: str | ZoneInfo) -> ZoneInfo:
    if isinstance(timezone, ZoneInfo):
        return timezone
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise NotificationConfigError(f"unknown time zone {timezone!r}") from err


def _webhook_host(url: str) -> str:
    # Webhook URLs often carry their token in the path or query: the journal names the host only.
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(invalid URL)"
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


def _silenced(state: AlarmState) -> bool:
    """Shelved, suppressed by design or out of service: recorded, never notified."""
    return state.shelved or state.suppressed or state.out_of_service


class Notifier:
    """Routes alarm transitions to on-call groups by e-mail and webhook (an AlarmListener)."""

    def __init__(
        self,
        groups: Sequence[OnCallGroupDef],
        routes: Sequence[NotificationRouteDef],
        email: EmailSettings | None,
        webhook: WebhookSettings | None,
        journal: EventJournal,
        clock: Clock,
        timezone: str | ZoneInfo = "UTC",
        *,
        flood_threshold: int = DEFAULT_FLOOD_THRESHOLD,
        flood_window_s: float = DEFAULT_FLOOD_WINDOW_S,
        webhook_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._routes = resolve_routes(groups, routes)
        for group in groups:
            if group.emails and email is None:
                raise NotificationConfigError(
                    f"on-call group {group.name!r} has e-mail addresses but no mail relay is "
                    "configured"
                )
            if group.webhooks and webhook is None:
                raise NotificationConfigError(
                    f"on-call group {group.name!r} has webhooks but no webhook settings"
                )
        self._zone = _zone(timezone)
        self._journal = journal
        self._clock = clock
        self._flood = FloodGate(flood_threshold, flood_window_s)
        self._email = EmailSender(email, clock, self._zone) if email is not None else None
        self._webhook = (
            WebhookSender(webhook, clock, webhook_client) if webhook is not None else None
        )
        self._inbox: deque[tuple[AlarmDef, AlarmState, AlarmTransition]] = deque()
        self._dropped = 0
        self._tracked: dict[str, _Tracked] = {}
        self._batches: dict[str, _Batch] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._delivery_slots: asyncio.Semaphore | None = None

    # --- the listener side: any thread, never blocks -------------------------------------------

    def on_transition(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition
    ) -> None:
        """Take one transition for later (never blocks; safe from any thread)."""
        if len(self._inbox) >= MAX_QUEUED_TRANSITIONS:
            self._dropped += 1
        else:
            self._inbox.append((definition, state, transition))
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            # A closed loop means the notifier is stopping; the transition stays queued.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # --- the running side ----------------------------------------------------------------------

    async def run(self) -> None:
        """Notify until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._delivery_slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        try:
            while True:
                self._wake.clear()
                now = self._clock.now()
                self._take_inbox(now)
                self._run_due(now)
                self._settle_waiters()
                await self._wait(self._next_due())
        finally:
            self._loop = None
            self._wake = None
            pending = list(self._deliveries)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if self._webhook is not None:
                await self._webhook.aclose()

    async def wait_idle(self) -> None:
        """Return once every queued transition is handled, nothing is due on the clock and no
        delivery is under way (for tests and orderly shutdown; needs ``run`` running)."""
        while not self._idle():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            if self._wake is not None:
                self._wake.set()
            await waiter

    def _idle(self) -> bool:
        if self._inbox or self._deliveries or self._dropped:
            return False
        due = self._next_due()
        return due is None or due > self._clock.now()

    def _settle_waiters(self) -> None:
        if self._idle_waiters and self._idle():
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait(self, due: datetime | None) -> None:
        wake = self._wake
        assert wake is not None  # set by run() before the loop starts
        if due is None:
            await wake.wait()
            return
        delay = (due - self._clock.now()).total_seconds()
        if delay <= 0:
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _next_due(self) -> datetime | None:
        times = [
            episode.due
            for tracked in self._tracked.values()
            for episode in tracked.episodes
            if episode.due is not None
        ]
        times.extend(batch.flush_at for batch in self._batches.values())
        return min(times, default=None)

    # --- deciding ------------------------------------------------------------------------------

    def _take_inbox(self, now: datetime) -> None:
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            self._record(
                now,
                f"failed: {dropped} alarm transitions dropped, the notification queue was full",
                FAILED_SEVERITY,
            )
        while self._inbox:
            definition, state, transition = self._inbox.popleft()
            self._take(definition, state, transition, now)

    def _take(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition, now: datetime
    ) -> None:
        name = definition.name
        tracked = self._tracked.get(name)
        if tracked is not None:
            tracked.definition = definition
            tracked.state = state
        if transition.action is AlarmAction.ACTIVATE:
            if _silenced(state):
                return
            if tracked is not None:
                # Still unacknowledged from its last activation: the people on call know already
                # (a chattering alarm notifies once until someone acknowledges it).
                return
            tracked = _Tracked(definition, state)
            for route in self._routes:
                if route.matches(definition):
                    self._start(tracked, route, now)
            if tracked.episodes:
                self._tracked[name] = tracked
        elif tracked is not None and (state.acknowledged or _silenced(state)):
            # Acknowledged (active or cleared), shelved, suppressed or out of service: someone
            # has it in hand, or it is not to be notified; the escalation ends here.
            del self._tracked[name]

    def _start(self, tracked: _Tracked, route: Route, now: datetime) -> None:
        episode = _Episode(route)
        tracked.episodes.append(episode)
        priority = tracked.definition.priority
        if route.quiet_hours is not None and route.holds(priority, now, self._zone):
            episode.held = True
            episode.due = route.quiet_hours.end_after(now, self._zone)
            local_end = episode.due.astimezone(self._zone)
            self._record(
                now,
                f"held for quiet hours: alarm {tracked.definition.name} "
                f"({priority_name(priority)}) on route {route.name} until "
                f"{local_end:%Y-%m-%d %H:%M %Z}",
                SENT_SEVERITY,
            )
            return
        self._advance(tracked, episode, now)

    def _advance(self, tracked: _Tracked, episode: _Episode, now: datetime) -> None:
        """Notify the episode's next group and schedule the one after it."""
        route = episode.route
        level = episode.next_level
        group = route.groups[level]
        after_s = route.definition.escalate_after_s * level
        if level > 0:
            self._record(
                now,
                f"escalated: alarm {tracked.definition.name} to group {group.name}, "
                f"unacknowledged for {after_s:.0f} s (route {route.name}, level {level})",
                NOTICE_SEVERITY,
            )
        self._dispatch(tracked, group, route, level, after_s, now)
        episode.next_level = level + 1
        if episode.next_level < len(route.groups):
            episode.due = now + timedelta(seconds=route.definition.escalate_after_s)
        else:
            episode.due = None

    def _run_due(self, now: datetime) -> None:
        for name, tracked in list(self._tracked.items()):
            for episode in list(tracked.episodes):
                if episode.due is None or episode.due > now:
                    continue
                if not episode.held:
                    self._advance(tracked, episode, now)
                    continue
                episode.held = False
                state = tracked.state
                if (state.active or state.latched) and not state.acknowledged:
                    self._advance(tracked, episode, now)
                else:
                    tracked.episodes.remove(episode)
                    self._record(
                        now,
                        f"not sent after quiet hours: alarm {name} is no longer active and "
                        f"unacknowledged (route {episode.route.name})",
                        SENT_SEVERITY,
                    )
            if not tracked.episodes:
                del self._tracked[name]
        for group, batch in list(self._batches.items()):
            if batch.flush_at <= now:
                del self._batches[group]
                self._summarise(group, batch, now)

    def _dispatch(
        self,
        tracked: _Tracked,
        group: OnCallGroupDef,
        route: Route,
        level: int,
        after_s: float,
        now: datetime,
    ) -> None:
        if group.name in tracked.notified_groups:
            return
        tracked.notified_groups.add(group.name)
        definition, state = tracked.definition, tracked.state
        notice = AlarmNotice(
            alarm=definition.name,
            priority=definition.priority,
            area=definition.area,
            state=state.display,
            time=state.activated_at or state.changed_at or now,
            value=state.value,
            message=state.message or definition.message,
            guidance=definition.guidance,
            tag=definition.tag,
            device=definition.device,
            route=route.name,
            level=level,
            escalated_after_s=after_s,
        )
        admitted = self._flood.admit(group.name, now)
        batch = self._batches.get(group.name)
        if batch is None and admitted:
            self._send(Notification(uuid.uuid4().hex, group.name, notice, now), group)
            return
        if batch is None:
            batch = _Batch(since=now, flush_at=now + self._flood.window)
            self._batches[group.name] = batch
        batch.count += 1
        batch.by_priority[notice.priority] += 1
        if len(batch.first) < SUMMARY_FIRST_ALARMS:
            batch.first.append(notice)

    def _summarise(self, group_name: str, batch: _Batch, now: datetime) -> None:
        group = next(g for route in self._routes for g in route.groups if g.name == group_name)
        summary = FloodSummary(
            since=batch.since,
            until=now,
            count=batch.count,
            by_priority=tuple(sorted(batch.by_priority.items())),
            first=tuple(batch.first),
        )
        notification = Notification(uuid.uuid4().hex, group_name, summary, now)
        counts = ", ".join(f"{priority_name(p)} {n}" for p, n in summary.by_priority)
        self._record(
            now,
            f"summarised: {batch.count} alarms for group {group_name} in one flood summary "
            f"({counts}; event {notification.event_id})",
            NOTICE_SEVERITY,
        )
        self._send(notification, group)

    # --- delivering ----------------------------------------------------------------------------

    def _send(self, notification: Notification, group: OnCallGroupDef) -> None:
        task = asyncio.ensure_future(self._deliver(notification, group))
        self._deliveries.add(task)
        task.add_done_callback(self._delivery_done)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("notification delivery crashed", exc_info=task.exception())
        self._settle_waiters()

    async def _deliver(self, notification: Notification, group: OnCallGroupDef) -> None:
        slots = self._delivery_slots
        assert slots is not None  # set by run()
        async with slots:
            jobs = []
            if group.emails:
                jobs.append(self._deliver_email(notification, group))
            jobs.extend(self._deliver_webhook(notification, url) for url in group.webhooks)
            if not jobs:
                self._record(
                    self._clock.now(),
                    f"failed: {self._describe(notification)} for group {group.name}: the group "
                    "has no e-mail address and no webhook",
                    FAILED_SEVERITY,
                )
                return
            await asyncio.gather(*jobs)

    async def _deliver_email(self, notification: Notification, group: OnCallGroupDef) -> None:
        sender = self._email
        assert sender is not None  # checked in __init__ for every group with addresses
        what = f"{self._describe(notification)} to group {notification.group} by e-mail"
        try:
            attempts = await sender.send(notification, group.emails)
        except EmailDeliveryError as err:
            self._record(
                self._clock.now(),
                f"failed: {what} after {err.attempts} attempt(s): {err.reason}",
                FAILED_SEVERITY,
            )
            return
        self._record(
            self._clock.now(),
            f"sent: {what} ({len(group.emails)} recipient(s), attempt {attempts})",
            SENT_SEVERITY,
        )

    async def _deliver_webhook(self, notification: Notification, url: str) -> None:
        sender = self._webhook
        assert sender is not None  # checked in __init__ for every group with webhooks
        what = (
            f"{self._describe(notification)} to group {notification.group} by webhook "
            f"{_webhook_host(url)}"
        )
        try:
            attempts = await sender.post(url, notification)
        except WebhookDeliveryError as err:
            self._record(self._clock.now(), f"failed: {what}: {err.reason}", FAILED_SEVERITY)
            return
        self._record(self._clock.now(), f"sent: {what} (attempt {attempts})", SENT_SEVERITY)

    @staticmethod
    def _describe(notification: Notification) -> str:
        content = notification.content
        if isinstance(content, FloodSummary):
            return f"flood summary of {content.count} alarms (event {notification.event_id})"
        level = f", escalation level {content.level}" if content.level else ""
        return (
            f"alarm {content.alarm} ({priority_name(content.priority)}{level}; "
            f"event {notification.event_id})"
        )

    def _record(self, now: datetime, message: str, severity: int) -> None:
        try:
            self._journal.record(Event(now, EventKind.ALARM, SOURCE, message, "", severity))
        except Exception:
            # A journal that fails must not stop people from being called; it is logged loudly.
            logger.exception("cannot journal notification event: %s", message)
