"""Live values pushed to the displays: elements that name their tag, and the stream that feeds them.

A display is rendered once with the values of the moment; from then on, every element that names
a tag (``data-tag``) is updated in the browser by ``assets/live.js`` from a Server-Sent Events
stream (``/live/stream?tags=…``) that carries only the tags the display shows, and only when
they change. Nothing polls the server every second, and a browser receives a few hundred bytes
when a value changes instead of the whole display (ISA-101 asks for displays that update without
redrawing; a control room keeps twenty of them open all day).

The stream is served on the HMI server's event loop (an ASGI endpoint beside the WSGI app), so
an open stream costs a coroutine, not a worker thread. The center's bus hands every batch of
samples to ``LiveHub.on_samples`` (on the center's loop); the hub keeps, per open stream, the
latest sample of each of its tags and wakes the stream, which sends them at most
``MAX_UPDATES_PER_S`` times a second. Alarm transitions bump an alarm version that every stream
forwards, so the alarm banner refreshes at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from dash import html

from controlcenter.live import LiveHub
from controlcenter.model import Quality, Sample, Severity, TagDef, User, Value
from controlcenter.ports import LiveView
from hmi.formatting import NO_VALUE, format_value, quality_text

_log = logging.getLogger(__name__)

STREAM_PATH = "/live/stream"
MAX_STREAM_TAGS = 5000
"""Tags one stream may watch (the largest display shows a few hundred)."""
MAX_UPDATES_PER_S = 10.0
MAX_ALARM_UPDATES_PER_S = 1.0
HEARTBEAT_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream and finds dead peers."""

ASGIScope = Mapping[str, Any]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]
UserForEnviron = Callable[[dict[str, Any]], User | None]
"""Resolves the logged-in user of a request (the WSGI environ of the stream's request)."""


# --- what a browser receives -------------------------------------------------------------------


def severity_name(quality: Quality) -> str:
    """``good``, ``uncertain`` or ``bad``: the CSS suffix of a quality (``q-bad``)."""
    return {Severity.GOOD: "good", Severity.UNCERTAIN: "uncertain", Severity.BAD: "bad"}[
        quality.severity
    ]


def numeric(value: Value | None) -> float | None:
    """A value as a number for indicators (booleans 1/0), or None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def wire_value(sample: Sample) -> dict[str, Any]:
    """The JSON one tag's change is sent as: text, number, severity and quality text."""
    return {
        "v": format_value(sample.value) if sample.value is not None else NO_VALUE,
        "n": numeric(sample.value),
        "s": severity_name(sample.quality),
        "q": quality_text(sample.quality),
    }


# --- elements that update themselves -------------------------------------------------------------


def data_attributes(values: Mapping[str, str]) -> Any:
    """``data-*`` attributes for a Dash element (``html.Span(**data_attributes({...}))``):
    Dash accepts them, its type stubs do not name them."""
    return dict(values)


def _sample(live: LiveView, tag: str) -> Sample | None:
    try:
        return live.latest(tag)
    except KeyError:
        return None


def live_value(live: LiveView, tag: TagDef, *, unit: bool = True, class_name: str = "") -> Any:
    """The tag's value as text (with its unit), kept current; abnormal quality colours it and
    adds its label (ISA-101: colour never alone)."""
    sample = _sample(live, tag.name)
    wire = wire_value(sample) if sample is not None else {"v": NO_VALUE, "s": "bad", "q": ""}
    children: list[Any] = [
        html.Span(
            wire["v"],
            className="live-text",
            **data_attributes({"data-tag": tag.name, "data-live": "text"}),
        )
    ]
    if unit and tag.unit:
        children.append(html.Span(f" {tag.unit}", className="unit"))
    children.append(
        html.Span(
            "" if wire["s"] == "good" else f" {wire['s'].upper()}",
            className="quality-label",
            title=wire["q"],
            **data_attributes({"data-tag": tag.name, "data-live": "quality"}),
        )
    )
    return html.Span(
        children,
        className=f"live-value q-{wire['s']} {class_name}".strip(),
        title=f"{tag.name}: {wire['q']}",
        **data_attributes({"data-tag": tag.name, "data-live": "state"}),
    )


def live_state(
    live: LiveView,
    tag: TagDef,
    *,
    on: str = "ON",
    off: str = "OFF",
    abnormal_when: bool | None = None,
) -> Any:
    """A boolean tag as words (``Running``/``Stopped``), kept current; ``abnormal_when`` marks
    the value that is abnormal (a fault) with the abnormal style and its word."""
    sample = _sample(live, tag.name)
    value = sample.value if sample is not None else None
    severity = severity_name(sample.quality) if sample is not None else "bad"
    text = NO_VALUE if not isinstance(value, bool) else (on if value else off)
    abnormal = abnormal_when is not None and isinstance(value, bool) and value == abnormal_when
    attributes: dict[str, str] = {
        "data-tag": tag.name,
        "data-live": "words",
        "data-on": on,
        "data-off": off,
    }
    if abnormal_when is not None:
        attributes["data-abnormal"] = "1" if abnormal_when else "0"
    return html.Span(
        text,
        className=f"live-state q-{severity}{' abnormal' if abnormal else ''}",
        title=tag.name,
        **data_attributes(attributes),
    )


def live_bar(
    live: LiveView,
    tag: TagDef,
    *,
    low: float | None = None,
    high: float | None = None,
    limits: Sequence[tuple[str, float]] = (),
    vertical: bool = True,
) -> Any:
    """An analogue indicator: the value as a bar between ``low`` and ``high`` (default: the
    tag's range), with limit marks (``("high", 4.8)``) drawn as ticks, kept current."""
    low = tag.low if low is None else low
    high = tag.high if high is None else high
    if low is None or high is None or not high > low:
        low, high = 0.0, 100.0
    sample = _sample(live, tag.name)
    value = numeric(sample.value) if sample is not None else None
    share = 0.0 if value is None else max(0.0, min(1.0, (value - low) / (high - low)))
    severity = severity_name(sample.quality) if sample is not None else "bad"
    size = "height" if vertical else "width"
    marks = [
        html.Div(
            className=f"bar-limit bar-limit-{name}",
            title=f"{name} {limit:g} {tag.unit}".strip(),
            style={
                ("bottom" if vertical else "left"): f"{100 * (limit - low) / (high - low):.1f}%"
            },
        )
        for name, limit in limits
        if low <= limit <= high
    ]
    return html.Div(
        [
            html.Div(
                className="bar-fill",
                style={size: f"{100 * share:.1f}%"},
                **data_attributes(
                    {
                        "data-tag": tag.name,
                        "data-live": "bar",
                        "data-low": str(low),
                        "data-high": str(high),
                        "data-size": size,
                    }
                ),
            ),
            *marks,
        ],
        className=f"live-bar {'vertical' if vertical else 'horizontal'} q-{severity}",
        title=f"{tag.name} ({low:g} to {high:g} {tag.unit})".strip(),
        **data_attributes({"data-tag": tag.name, "data-live": "state"}),
    )


def _event(name: str, payload: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def stream_endpoint(
    hub: LiveHub,
    live: LiveView,
    user_for_environ: UserForEnviron,
    run_blocking: Callable[[Callable[[], User | None]], Awaitable[User | None]] | None = None,
) -> ASGIApp:
    """The ASGI app answering ``GET /live/stream?tags=a,b`` with Server-Sent Events: first the
    current value of every tag (event ``values``), then their changes, an ``alarms`` event with
    the alarm version when alarms change, and a comment line every ``HEARTBEAT_S``.

    The request must carry a logged-in session (401 otherwise); unknown tags are left out.
    """

    async def resolve(environ: dict[str, Any]) -> User | None:
        if run_blocking is not None:
            return await run_blocking(lambda: user_for_environ(environ))
        return await asyncio.get_running_loop().run_in_executor(None, user_for_environ, environ)

    async def app(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD"):
            await _plain(send, 405, "GET only")
            return
        environ = asgi_environ(scope)
        user = await resolve(environ)
        if user is None:
            await _plain(send, 401, "login required")
            return
        if scope.get("method") == "HEAD":
            # Whether a stream would be served (the page asks after an error: 401 means the
            # session has ended). A HEAD answer has no body: it must end here, never stream,
            # or the browser, which takes the answer as complete, reuses a connection the
            # server still holds and its next request waits forever.
            await _plain(send, 200, "")
            return
        query = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=8)
        requested = [
            name for part in query.get("tags", []) for name in part.split(",") if name.strip()
        ][:MAX_STREAM_TAGS]
        known = {tag.name for tag in live.tags()}
        tags = [name for name in dict.fromkeys(requested) if name in known]
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
        stream = hub.open(tags)
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
            first = {name: wire_value(live.latest(name)) for name in tags}
            await _body(send, _event("values", first) + _event("alarms", hub.alarm_version))
            loop = asyncio.get_running_loop()
            last_sent = last_alarms = loop.time()
            while not disconnected.is_set() and not stream.closed:
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                    async with asyncio.timeout(HEARTBEAT_S):
                        await stream.wake.wait()
                except TimeoutError:
                    await _body(send, b": heartbeat\n\n")
                    continue
                if disconnected.is_set() or stream.closed:
                    break
                # At most MAX_UPDATES_PER_S messages: changes in between are merged.
                wait = last_sent + 1.0 / MAX_UPDATES_PER_S - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                # Every alarm event makes the browser redraw its banner: at most
                # MAX_ALARM_UPDATES_PER_S, however many alarms a flood changes.
                alarms_due = loop.time() - last_alarms >= 1.0 / MAX_ALARM_UPDATES_PER_S
                pending, version, held = hub.take(stream, alarms=alarms_due)
                if held:
                    delay = last_alarms + 1.0 / MAX_ALARM_UPDATES_PER_S - loop.time()
                    loop.call_later(max(0.0, delay), stream.wake.set)
                if version is not None:
                    last_alarms = loop.time()
                chunk = b""
                if pending:
                    chunk += _event("values", {name: wire_value(s) for name, s in pending.items()})
                if version is not None:
                    chunk += _event("alarms", version)
                if chunk:
                    await _body(send, chunk)
                    last_sent = loop.time()
        except (ConnectionError, OSError):
            pass
        finally:
            if stream.closed:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            hub.close(stream)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    return app


async def _body(send: ASGISend, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _plain(send: ASGISend, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode(), "more_body": False})


def asgi_environ(scope: ASGIScope) -> dict[str, Any]:
    """A minimal WSGI environ of an ASGI request (no body): enough for Flask to read the
    session cookie and check the host."""
    server = scope.get("server") or ("127.0.0.1", 0)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.get("method", "GET"),
        "SCRIPT_NAME": "",
        "PATH_INFO": scope.get("path", "/"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": None,
        "wsgi.errors": None,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
