"""Alarm requests from another process (the command line), applied by the running center.

``controlcenter alarms ack|shelve|...`` does not change alarm states itself: it queues a request
in the database (``ports.AlarmRequestStore``) and waits for its outcome. The running center's
``AlarmRequestProcessor`` polls the queue every second and applies each pending request through
the ``AlarmService`` methods the HMI uses, as the requesting user looked up afresh in the
center's own users (the role written by the command line is not trusted), so roles, areas and
journaling are the same whoever asks. Each request ends done (with what changed) or refused
(with why). A request older than ``max_age_s`` when the center sees it is refused as stale: an
acknowledgement typed during an outage must not acknowledge a new alarm hours later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum

from alarms.service import AlarmPermissionError, AlarmService, UnknownAlarmError
from alarms.states import AlarmActionError
from controlcenter.automation import AlarmTransition
from controlcenter.model import User, utc_now
from controlcenter.ports import AlarmRequest, AlarmRequestStatus, AlarmRequestStore, Clock

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
"""Wall seconds between two looks at the request queue."""
MAX_REQUEST_AGE_S = 900.0
"""A request older than this when the center first sees it is refused as stale."""
REQUESTS_PER_POLL = 100
"""Requests applied per look at the queue (the rest wait for the next)."""


class RequestAction(StrEnum):
    """What a queued request asks for."""

    ACKNOWLEDGE = "acknowledge"
    RESET = "reset"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"
    COMMENT = "comment"


UserLookup = Callable[[str], User]
"""The center's users by name (``Authenticator.get_user``); raises KeyError for unknown ones."""


class AlarmRequestProcessor:
    """Applies queued alarm requests through an ``AlarmService`` and records their outcome."""

    def __init__(
        self,
        service: AlarmService,
        requests: AlarmRequestStore,
        users: UserLookup,
        clock: Clock,
        *,
        max_age_s: float = MAX_REQUEST_AGE_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_now: Callable[[], datetime] = utc_now,
    ) -> None:
        """Bind the service, the queue and the center's users; ``sleep`` waits between polls.

        Request times are wall-clock times (the command line's); ``wall_now`` judges their age
        and stamps decisions, while ``clock`` (possibly simulated) times the shelves."""
        self._service = service
        self._requests = requests
        self._users = users
        self._clock = clock
        self._max_age = timedelta(seconds=max_age_s)
        self._poll_interval_s = poll_interval_s
        self._sleep = sleep
        self._wall_now = wall_now
        self._store_failing = False

    async def run(self) -> None:
        """Poll and apply the queue until cancelled (the database work runs in a thread)."""
        while True:
            await asyncio.to_thread(self.poll_requests_once)
            await self._sleep(self._poll_interval_s)

    def poll_requests_once(self) -> list[AlarmRequest]:
        """Apply every pending request (up to ``REQUESTS_PER_POLL``), oldest first; return
        them as decided. Blocking. A database failure is logged and tried again next time."""
        try:
            pending = self._requests.pending_alarm_requests(REQUESTS_PER_POLL)
        except Exception as err:
            if not self._store_failing:
                log.warning("cannot read the alarm request queue: %s", err)
            self._store_failing = True
            return []
        self._store_failing = False
        decided: list[AlarmRequest] = []
        for request in pending:
            status, detail = self._decide(request)
            try:
                self._requests.decide_alarm_request(request.id, status, detail, self._wall_now())
            except Exception as err:
                log.error("cannot record the outcome of alarm request %d: %s", request.id, err)
                continue
            decided.append(self._requests.alarm_request(request.id))
        return decided

    def _decide(self, request: AlarmRequest) -> tuple[AlarmRequestStatus, str]:
        """Apply one request: (done, what changed) or (refused, why)."""
        refused = AlarmRequestStatus.REFUSED
        try:
            action = RequestAction(request.action)
        except ValueError:
            return refused, f"unknown action {request.action!r}"
        if not request.alarms:
            return refused, "the request names no alarm"
        age = self._wall_now() - request.requested_at
        if age > self._max_age:
            minutes = age.total_seconds() / 60
            return refused, f"stale: queued {minutes:.0f} min ago, no center took it up in time"
        try:
            user = self._users(request.user)
        except KeyError:
            return refused, f"unknown user {request.user!r}"
        try:
            return AlarmRequestStatus.DONE, self._apply(action, request, user)
        except (AlarmActionError, AlarmPermissionError, UnknownAlarmError) as err:
            return refused, str(err)
        except ValueError as err:  # an empty list of names, a naive time...
            return refused, str(err)
        except Exception as err:  # a bug must not stop the queue: this request is refused
            log.exception("alarm request %d failed", request.id)
            return refused, f"failed: {err!r}"

    def _apply(self, action: RequestAction, request: AlarmRequest, user: User) -> str:
        """Run the service method of ``action``; return a line saying what changed."""
        service = self._service
        name = request.alarms[0]
        if action is not RequestAction.ACKNOWLEDGE and len(request.alarms) != 1:
            raise ValueError(f"{action.value} names exactly one alarm, not {len(request.alarms)}")
        if action is RequestAction.ACKNOWLEDGE:
            result = service.acknowledge(request.alarms, user, request.text)
            done = _summary(result.transitions)
            if result.refused:
                done += "; not acknowledged: " + "; ".join(str(err) for err in result.refused)
            return done
        if action is RequestAction.SHELVE:
            until = None
            if request.duration_s is not None:
                until = self._clock.now() + timedelta(seconds=request.duration_s)
            transitions = service.shelve(
                name, user, request.text, until=until, one_shot=request.one_shot
            )
        elif action is RequestAction.RESET:
            transitions = service.reset(name, user, request.text)
        elif action is RequestAction.UNSHELVE:
            transitions = service.unshelve(name, user, request.text)
        elif action is RequestAction.REMOVE_FROM_SERVICE:
            transitions = service.remove_from_service(name, user, request.text)
        elif action is RequestAction.RETURN_TO_SERVICE:
            transitions = service.return_to_service(name, user, request.text)
        else:
            transitions = service.comment(name, user, request.text)
        return _summary(transitions)


def _summary(transitions: tuple[AlarmTransition, ...] | list[AlarmTransition]) -> str:
    """What the transitions did, one clause each: ``alarm: action (before -> after)``."""
    return "; ".join(
        f"{t.alarm}: {t.action.value} ({t.before.value} -> {t.after.value})" for t in transitions
    )
