"""The API's live stream: ``GET /api/v1/stream?tags=a,b&pattern=water.*`` answers with
Server-Sent Events of value changes and alarm transitions.

Events: ``value`` (the ``schemas.Value`` document: raw value, quality, both times) first for
every streamed tag as it is now, then for each change; ``alarm`` (name, priority, before and
after state, action, time, user, comment) for each transition of an alarm whose name or tag
matches; ``dropped`` when a client fell so far behind that transitions were dropped; a comment
line every ``HEARTBEAT_S``. Between two sends, several changes of one tag are merged into the
latest (the hub keeps the latest sample per tag per stream), so a slow client gets current
values rather than an ever-growing backlog.

Authentication: ``Authorization: Bearer cc_…``, as for every endpoint. Browsers' EventSource
cannot set headers, so ``?access_token=cc_…`` is accepted too; prefer the header: a token in a
URL can end up in proxy logs and browser history (RFC 6750 5.3), so such a token should be a
read-scope token with a short lifetime. Refusals are RFC 9457 problems (401, 403), journaled.

Served as an ASGI app on the web server's event loop: an open stream costs a coroutine, not a
worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qs

from controlcenter.api.auth import AUDIT_SOURCE
from controlcenter.api.problems import problem_response
from controlcenter.api.schemas import MAX_PATTERN, Value
from controlcenter.automation import AlarmTransition
from controlcenter.live import LiveHub
from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.permissions import Permission, PermissionDeniedError, require
from controlcenter.ports import EventJournal, LiveView
from controlcenter.security.tokens import ApiToken, TokenRejectedError, TokenStore

STREAM_PATH = "/api/v1/stream"
MAX_STREAM_TAGS = 10_000
HEARTBEAT_S = 15.0

ASGIScope = Mapping[str, Any]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]


class StreamRefusedError(Exception):
    """The stream cannot be opened: ``status`` and ``detail`` say why."""

    def __init__(self, status: int, detail: str, user: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.user = user


def transition_document(transition: AlarmTransition) -> dict[str, Any]:
    """The JSON of one alarm transition on the stream."""
    return {
        "alarm": transition.alarm,
        "priority": transition.priority.name.lower(),
        "action": transition.action.value,
        "before": transition.before.value,
        "after": transition.after.value,
        "time": transition.time.isoformat(),
        "user": transition.user,
        "comment": transition.comment,
        "tag": transition.tag,
        "area": transition.area,
    }


def _event(name: str, payload: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _presented_token(scope: ASGIScope, query: dict[str, list[str]]) -> str:
    for raw_name, raw_value in scope.get("headers", []):
        if raw_name.lower() == b"authorization":
            header = bytes(raw_value).decode("latin-1")
            kind, _, presented = header.partition(" ")
            if kind.lower() == "bearer" and presented.strip():
                return presented.strip()
    tokens = query.get("access_token", [])
    return str(tokens[0]).strip() if tokens else ""


def _authorise(tokens: TokenStore, presented: str) -> tuple[User, ApiToken]:
    if not presented:
        raise StreamRefusedError(401, "an API token is required (Authorization: Bearer …)")
    try:
        user, token = tokens.resolve(presented)
    except TokenRejectedError as err:
        raise StreamRefusedError(401, str(err)) from err
    try:
        require(user, Permission.VIEW, token.scope)
    except PermissionDeniedError as err:
        raise StreamRefusedError(403, str(err), user.name) from err
    return user, token


def stream_endpoint(
    hub: LiveHub, live: LiveView, tokens: TokenStore, journal: EventJournal
) -> ASGIApp:
    """The ASGI app serving ``STREAM_PATH`` (see the module's description)."""

    async def refuse(send: ASGISend, status: int, detail: str, headers: dict[str, str]) -> None:
        response = problem_response(status, detail, headers=headers)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in response.headers.items()
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.get_data(), "more_body": False})

    def journal_refusal(path: str, status: int, detail: str, user: str) -> None:
        message = f"API refused GET {path} ({status}): {detail}"
        journal.record(
            Event(utc_now(), EventKind.AUDIT, AUDIT_SOURCE, message[:500], user=user, severity=300)
        )

    async def app(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD"):
            await refuse(send, 405, "GET only", {"Allow": "GET"})
            return
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = parse_qs(raw_query, max_num_fields=16)
        presented = _presented_token(scope, query)
        loop = asyncio.get_running_loop()
        try:
            # The token store is a file: looked up off the loop.
            await loop.run_in_executor(None, _authorise, tokens, presented)
            names, pattern = _selection(query)
        except StreamRefusedError as err:
            await loop.run_in_executor(
                None, journal_refusal, scope.get("path", ""), err.status, err.detail, err.user
            )
            headers = (
                {"WWW-Authenticate": 'Bearer realm="controlcenter"'} if err.status == 401 else {}
            )
            await refuse(send, err.status, err.detail, headers)
            return
        known = [tag.name for tag in live.tags()]
        chosen = [n for n in known if n in names or (pattern and fnmatchcase(n, pattern))]
        chosen = chosen[:MAX_STREAM_TAGS]
        chosen_set = frozenset(chosen)

        def wanted(transition: AlarmTransition) -> bool:
            if transition.tag in chosen_set:
                return True
            return bool(pattern) and (
                fnmatchcase(transition.alarm, pattern) or fnmatchcase(transition.tag, pattern)
            )

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        stream = hub.open(chosen, transitions=True)
        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while True:
                message = await receive()
                if message.get("type") == "http.disconnect":
                    disconnected.set()
                    stream.loop.call_soon(stream.wake.set)
                    return

        watcher = asyncio.create_task(watch_disconnect())
        try:
            first = b"".join(
                _event("value", Value.of(live.latest(name)).model_dump(mode="json"))
                for name in chosen
            )
            await _body(send, first or b": no tags\n\n")
            while not disconnected.is_set() and not stream.closed:
                try:
                    async with asyncio.timeout(HEARTBEAT_S):
                        await stream.wake.wait()
                except TimeoutError:
                    await _body(send, b": heartbeat\n\n")
                    continue
                if disconnected.is_set() or stream.closed:
                    break
                pending, _, _ = hub.take(stream, alarms=True)
                transitions, dropped = hub.take_transitions(stream)
                chunk = b"".join(
                    _event("value", Value.of(sample).model_dump(mode="json"))
                    for sample in pending.values()
                )
                if dropped:
                    chunk += _event("dropped", {"alarm_transitions": dropped})
                chunk += b"".join(
                    _event("alarm", transition_document(t)) for t in transitions if wanted(t)
                )
                if chunk:
                    await _body(send, chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            if stream.closed:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            hub.close(stream)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    return app


def _selection(query: dict[str, list[str]]) -> tuple[frozenset[str], str]:
    names = frozenset(
        name.strip() for part in query.get("tags", []) for name in part.split(",") if name.strip()
    )
    patterns = query.get("pattern", [])
    pattern = patterns[0] if patterns else ""
    if len(pattern) > MAX_PATTERN or len(names) > MAX_STREAM_TAGS:
        raise StreamRefusedError(400, "too many tags or too long a pattern")
    if not names and not pattern:
        raise StreamRefusedError(400, "name tags (tags=a,b) or a pattern (pattern=water.*)")
    return names, pattern


async def _body(send: ASGISend, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})
