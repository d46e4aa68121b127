"""``controlcenter bench hmi``: operators' browsers against the scale-20 city, measured.

The simulated city runs in this process (the bench writes field values into its model, as a
drive or an operator on site would change them, and knows to the millisecond when it did); the
center with its HMI runs in a child process (``controlcenter run``), so that its CPU is its own;
a headless Chromium (Debian's, driven by Playwright) opens ``--sessions`` browser contexts, each
logged in as an operator on ``--display``. Chromium's CPU is not counted.

Figures (one JSON object):

- ``field_change_to_screen``: from the moment a value changes in the simulator to the moment its
  text changes on every session's screen (a MutationObserver in the page stamps the change with
  ``performance.timeOrigin + performance.now()``, the browser's wall clock, calibrated against
  this process's clock); p50/p95/max over every change seen by every session. The changed value
  is a writable point the display shows as text (a pump's speed setpoint on a station), written
  with a new value every change.
- ``display_switch_ms``: a maintenance session clicks the navigation links between displays
  (overview, domains, alarms, a faceplate, diagnostics); the time from the click until the
  display's content stopped changing (the last change of ``#page`` not made by the live stream,
  with no Dash callback in flight), per display (median and max of ``--switch-rounds``).
- ``live_stream`` and ``dash_callbacks``: what each browser receives (Chrome's own network
  events): the live stream's bytes and messages per second and bytes per message; Dash callback
  requests and bytes (request and response) per minute.
- ``center_cpu``: CPU seconds per wall second of the center process with no browser open and
  with every session open (same run, same city), and the difference: the HMI's share.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # psutil ships no type hints
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, async_playwright

from controlcenter.clock import WallClock
from controlcenter.model import Role, TagDef
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.city_process import CityProcess, CityProcessError, CityProcessOptions
from controlcenter.runtime.runner import QUIET_LIBRARIES
from controlcenter.security.users import UserStore
from controlcenter.site.config import SiteConfig, load_site
from drivers.base import Driver, DriverError

log = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium: Playwright's own browser download needs the internet."""
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Twenty tabs in one headless browser: none of them is throttled as a background tab.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)
CITY_START_TIMEOUT_S = 900.0
"""How long the simulated city may take to have every device listening."""
CENTER_START_TIMEOUT_S = 300.0
"""How long the center may take to listen (a scale-20 site has tens of thousands of tags)."""
SEEN_TIMEOUT_S = 10.0
"""How long every session may take to show one field change before it counts as missed."""
SETTLE_MS = 300
"""A display switch has ended when ``#page`` did not change for this long."""
SWITCH_TIMEOUT_MS = 15_000
DISPLAY_TIMEOUT_MS = 120_000
"""How long a session's first display may take (twenty of them open one after another)."""
PASSWORD_BYTES = 18
FIELD_TARGET_P95_MS = 1500.0
SWITCH_TARGET_MS = 1000.0
HMI_CPU_TARGET_CORES = 0.5

SWITCH_TOUR = ("/", "/water", "/lighting", "/heating", "/buildings", "/alarms", "", "/diagnostics")
"""Displays the switch tour visits in turn; "" stands for the faceplate (``--faceplate``)."""

_HMI_LINE = re.compile(r"HMI at (?P<url>https?://\S+)")

# Installed in every page before its scripts: stamps changes of one tag's text with the
# browser's wall clock, and times display switches (the last change of #page not made by the
# live stream, and Dash callbacks in flight).
PROBE_SCRIPT = """
(() => {
  const probe = (window.__benchProbe = {
    tag: null, changes: [], inflight: 0, lastDone: 0, lastPageChange: 0, waiters: [],
  });
  // Resolves with the wall time the tag's text first showed ``value`` after ``since`` (or
  // null after ``timeoutMs``): one round trip per change instead of polling the page.
  probe.check = () => {
    probe.waiters = probe.waiters.filter((w) => {
      const hit = probe.changes.find(
        ([t, text]) => t >= w.since && Math.abs(parseFloat(text) - w.value) < 0.051);
      if (hit === undefined) return true;
      w.resolve(hit[0]);
      return false;
    });
  };
  probe.waitFor = (value, since, timeoutMs) => new Promise((resolve) => {
    const waiter = { value: value, since: since, resolve: resolve };
    probe.waiters.push(waiter);
    probe.check();
    setTimeout(() => {
      probe.waiters = probe.waiters.filter((w) => w !== waiter);
      resolve(null);
    }, timeoutMs);
  });
  const wall = () => performance.timeOrigin + performance.now();
  const originalFetch = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    if (!url.includes("_dash-update-component")) return originalFetch(input, init);
    probe.inflight += 1;
    return originalFetch(input, init).finally(() => {
      probe.inflight -= 1;
      probe.lastDone = performance.now();
    });
  };
  const start = () => {
    new MutationObserver((mutations) => {
      for (const m of mutations) {
        const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
        if (el === null) continue;
        const live = el.closest("[data-live]");
        if (live !== null) {
          if (probe.tag !== null && live.getAttribute("data-tag") === probe.tag &&
              live.getAttribute("data-live") === "text") {
            probe.changes.push([wall(), live.textContent]);
            if (probe.changes.length > 200) probe.changes.shift();
            probe.check();
          }
          continue;
        }
        if (el.closest("#page") !== null || el.id === "page") {
          probe.lastPageChange = performance.now();
        }
      }
    }).observe(document.documentElement, { childList: true, subtree: true, characterData: true });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
"""

# Clicks a link to ``path`` (or moves the router there as a link would) and resolves with the
# milliseconds until the new display stopped changing.
SWITCH_SCRIPT = """
async ([path, settleMs, timeoutMs]) => {
  const probe = window.__benchProbe;
  const page = document.getElementById("page");
  const before = page.firstElementChild;
  const links = Array.from(document.querySelectorAll("a[href]"));
  const link = links.find((a) => a.getAttribute("href") === path) || null;
  const t0 = performance.now();
  probe.lastPageChange = 0;
  if (link !== null) {
    link.click();
  } else {
    window.history.pushState({}, "", path);
    window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
  }
  const via = link !== null ? "link" : "history";
  return await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const replaced = page.firstElementChild !== before && probe.lastPageChange > t0;
      const last = Math.max(probe.lastPageChange, probe.lastDone);
      const quiet = probe.inflight === 0 && now - last >= settleMs;
      if (replaced && quiet) {
        resolve({ ms: last - t0, via: via, ok: true });
      } else if (now - t0 > timeoutMs) {
        resolve({ ms: now - t0, via: via, ok: false });
      } else {
        setTimeout(tick, 20);
      }
    };
    setTimeout(tick, 20);
  });
}
"""


class HmiBenchError(Exception):
    """The HMI bench cannot run (no browser, the center did not start, nothing to measure)."""


@dataclass(frozen=True, slots=True)
class HmiBenchOptions:
    """What city, how many browsers, on which display, for how long."""

    scale: int = 20
    sessions: int = 20
    duration_s: float = 60.0
    """The measured window with every session open (field changes, traffic, CPU)."""
    display: str = "/asset/water.ps1"
    """The display every session shows: one with live values."""
    min_changes: int = 30
    """Field changes at least, even when the window is over."""
    idle_s: float = 20.0
    """The window measuring the center's CPU with no browser open."""
    warm_up_s: float = 10.0
    """After the center listens, before anything is measured (first scans, first alarms)."""
    switch_rounds: int = 3
    faceplate: str = "/asset/water.ps1"
    seed: int = 1
    domains: frozenset[str] | None = None
    """Only these domains of the city (None: all); the published figures use all."""

    def __post_init__(self) -> None:
        if self.scale < 1 or self.sessions < 1 or self.min_changes < 1 or self.switch_rounds < 0:
            raise ValueError("scale, sessions and changes must be at least 1")
        if not self.display.startswith("/") or not self.faceplate.startswith("/"):
            raise ValueError("displays are paths: /water, /asset/water.ps1")


# --- the center as a child process ----------------------------------------------------------------


class CenterProcess:
    """``controlcenter run`` in a child process: its HMI URL read from its log, its CPU measured."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ps = psutil.Process(process.pid)
        self._stderr: deque[str] = deque(maxlen=40)
        self._url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_stderr(), name="center stderr")

    @classmethod
    async def start(cls, site: Path, db_url: str, users: Path) -> CenterProcess:
        """Start the center for ``site`` with its HMI on a free port."""
        command = [sys.executable, "-m", "controlcenter.cli.main", "run", "--site", str(site)]
        command += ["--db", db_url, "--users", str(users), "--port", "0"]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            match = _HMI_LINE.search(text)
            if match is not None and not self._url.done():
                self._url.set_result(match["url"])
        if not self._url.done():
            self._url.set_exception(
                HmiBenchError("the center ended before its HMI listened:\n" + self.stderr_tail())
            )

    async def hmi_url(self, timeout_s: float) -> str:
        """The HMI's base URL once it listens."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._url), timeout_s)
        except TimeoutError as err:
            raise HmiBenchError(
                f"the center's HMI did not listen within {timeout_s:g} s:\n" + self.stderr_tail()
            ) from err

    def cpu_seconds(self) -> float:
        """CPU seconds (user and system) the center has used so far."""
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def stderr_tail(self) -> str:
        """The last lines of the center's log."""
        return "\n".join(self._stderr)

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop the center (SIGTERM: it shuts down cleanly; killed after ``grace_s``)."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def measure_cpu(center: CenterProcess, seconds: float) -> float:
    """The center's CPU in cores over the next ``seconds``."""
    cpu0, wall0 = center.cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)  # a measuring window, not a wait for something to happen
    return (center.cpu_seconds() - cpu0) / max(1e-9, time.monotonic() - wall0)


# --- what each browser receives -------------------------------------------------------------------


@dataclass(slots=True)
class Traffic:
    """Bytes and messages one browser received (Chrome's network events)."""

    kinds: dict[str, str] = field(default_factory=dict)
    """Request id → "stream" or "dash"."""
    stream_bytes: int = 0
    stream_messages: int = 0
    stream_message_bytes: int = 0
    value_messages: int = 0
    dash_requests: int = 0
    dash_bytes: int = 0

    def reset(self) -> None:
        """Start counting anew (open streams stay known)."""
        self.stream_bytes = self.stream_messages = self.stream_message_bytes = 0
        self.value_messages = self.dash_requests = self.dash_bytes = 0

    def on_request(self, event: dict[str, Any]) -> None:
        """Network.requestWillBeSent."""
        request = event.get("request", {})
        url = str(request.get("url", ""))
        if "/live/stream" in url:
            self.kinds[event["requestId"]] = "stream"
        elif "/_dash-update-component" in url:
            self.kinds[event["requestId"]] = "dash"
            self.dash_requests += 1
            self.dash_bytes += len(str(request.get("postData", "")).encode())

    def on_data(self, event: dict[str, Any]) -> None:
        """Network.dataReceived."""
        if self.kinds.get(event["requestId"]) == "stream":
            self.stream_bytes += int(event.get("dataLength", 0))

    def on_finished(self, event: dict[str, Any]) -> None:
        """Network.loadingFinished: a callback's whole response, headers included."""
        if self.kinds.pop(event["requestId"], None) == "dash":
            self.dash_bytes += int(event.get("encodedDataLength", 0))

    def on_message(self, event: dict[str, Any]) -> None:
        """Network.eventSourceMessageReceived."""
        self.stream_messages += 1
        data = str(event.get("data", ""))
        name = str(event.get("eventName", ""))
        # As sent: "event: NAME\\ndata: DATA\\n\\n".
        self.stream_message_bytes += len(data.encode()) + len(name) + 16
        if name == "values":
            self.value_messages += 1


@dataclass(slots=True)
class Session:
    """One browser context logged in and showing a display."""

    context: BrowserContext
    page: Page
    cdp: CDPSession
    traffic: Traffic
    clock_offset_s: float = 0.0
    """Browser wall clock minus this process's ``time.time()``."""


def _call(handler: Callable[[dict[str, Any]], None], event: dict[str, Any]) -> None:
    handler(event)


async def open_session(
    browser: Browser, url: str, user: str, password: str, display: str
) -> Session:
    """A new browser context, logged in as ``user``, on ``display``, its traffic counted."""
    context = await browser.new_context()
    await context.add_init_script(PROBE_SCRIPT)
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    traffic = Traffic()
    handlers = {
        "Network.requestWillBeSent": traffic.on_request,
        "Network.dataReceived": traffic.on_data,
        "Network.loadingFinished": traffic.on_finished,
        "Network.eventSourceMessageReceived": traffic.on_message,
    }
    for event_name, handler in handlers.items():
        # Wrapped: Playwright marks each handler with an attribute, which a bound method refuses.
        cdp.on(event_name, functools.partial(_call, handler))
    await cdp.send("Network.enable")
    # The login form posted without drawing the overview first: one display load per session.
    answer = await context.request.post(
        url + "/login", form={"username": user, "password": password}, max_redirects=0
    )
    if answer.status != 302:
        raise HmiBenchError(f"login as {user} refused: HTTP {answer.status}")
    # Not waiting for "load": a display's trend loads plotly.js, which is not what is measured.
    await page.goto(url + display, wait_until="commit")
    await page.wait_for_selector("#page > [class^=display-level]", timeout=DISPLAY_TIMEOUT_MS)
    session = Session(context, page, cdp, traffic)
    session.clock_offset_s = await clock_offset(page)
    return session


async def clock_offset(page: Page, rounds: int = 5) -> float:
    """The browser's wall clock minus ours, from the round trip with the least delay."""
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        sent = time.time()
        browser_ms = await page.evaluate("performance.timeOrigin + performance.now()")
        received = time.time()
        trip = received - sent
        offset = float(browser_ms) / 1000.0 - (sent + received) / 2
        if best is None or trip < best[0]:
            best = (trip, offset)
    assert best is not None
    return best[1]


# --- the field change -----------------------------------------------------------------------------


def writable_numbers(site: SiteConfig) -> dict[str, TagDef]:
    """Every writable float tag of the site, by name."""
    return {
        tag.name: tag
        for tag in site.tag_defs()
        if tag.writable and tag.data_type == "float" and tag.low is not None
    }


async def shown_text_tags(page: Page) -> list[str]:
    """Tags the display shows as text, in document order."""
    tags = await page.evaluate(
        "Array.from(document.querySelectorAll('#page [data-live=\"text\"][data-tag]'))"
        ".map((el) => el.getAttribute('data-tag'))"
    )
    return [str(tag) for tag in dict.fromkeys(tags)]


def choose_probe(shown: Sequence[str], writable: Mapping[str, object]) -> str:
    """The tag to change: a speed setpoint if the display shows one, else any writable number."""
    candidates = [tag for tag in shown if tag in writable]
    speeds = [tag for tag in candidates if tag.endswith(".speed")]
    if speeds:
        return speeds[0]
    if candidates:
        return candidates[0]
    raise HmiBenchError(
        "the display shows no writable number as text to change in the field "
        f"(it shows {len(shown)} values as text); pick another --display"
    )


def next_value(low: float, high: float, previous: float | None, rng: random.Random) -> float:
    """A value in the upper half of the range, at least a tenth of the range from the last."""
    span = high - low
    while True:
        value = round(low + span * rng.uniform(0.5, 1.0), 1)
        if previous is None or abs(value - previous) >= span / 10:
            return value


async def seen_at(session: Session, value: float, since_browser_ms: float) -> float | None:
    """When (our ``time.time()``) the session first showed ``value``, or None if it did not."""
    shown_ms = await session.page.evaluate(
        "([value, since, timeout]) => window.__benchProbe.waitFor(value, since, timeout)",
        [value, since_browser_ms, SEEN_TIMEOUT_S * 1000],
    )
    if shown_ms is None:
        return None
    return float(shown_ms) / 1000.0 - session.clock_offset_s


MAX_FAILED_WRITES = 5
"""Field writes that may fail in a run before it gives up."""


@dataclass(slots=True)
class FieldChanges:
    """Latencies of field changes to the screens."""

    latencies_ms: list[float] = field(default_factory=list)
    changes: int = 0
    missed: int = 0
    missed_by: set[int] = field(default_factory=set)
    """Sessions (by number) that missed at least one change."""
    failed_writes: int = 0
    """Writes the simulated device did not confirm in time (not timed; the run goes on)."""


async def change_field(
    field_device: Driver,
    sessions: Sequence[Session],
    tag: TagDef,
    until: float,
    min_changes: int,
    rng: random.Random,
) -> FieldChanges:
    """Change ``tag`` in the field again and again; time each change to every screen.

    The bench writes the value into the simulated device over its own protocol connection, as
    a local panel or a drive's keypad would change a setpoint behind the center's back.
    """
    low = tag.low if tag.low is not None else 0.0
    high = tag.high if tag.high is not None else low + 100.0
    for session in sessions:
        await session.page.evaluate("(tag) => { window.__benchProbe.tag = tag; }", tag.name)
    result = FieldChanges()
    previous: float | None = None
    while result.changes < min_changes or time.monotonic() < until:
        value = next_value(low, high, previous, rng)
        previous = value
        changed = time.time()
        try:
            await field_device.write(tag, value)
        except DriverError as err:
            # A loaded machine can make the simulated device late to confirm: that change is
            # not timed (its value may or may not have landed), the next one is.
            result.failed_writes += 1
            log.warning("the field write of %s failed: %s", tag.name, err)
            if result.failed_writes > MAX_FAILED_WRITES:
                raise HmiBenchError(f"the field writes of {tag.name} keep failing: {err}") from err
            await asyncio.sleep(1.0)
            continue
        seen = await asyncio.gather(
            *(seen_at(s, value, (changed + s.clock_offset_s) * 1000.0 - 5) for s in sessions)
        )
        result.changes += 1
        late = sum(1 for at in seen if at is None)
        log.info(
            "change %d of %s to %g: %d screens missed it", result.changes, tag.name, value, late
        )
        for number, at in enumerate(seen):
            if at is None:
                result.missed += 1
                result.missed_by.add(number)
            else:
                result.latencies_ms.append(max(0.0, (at - changed) * 1000.0))
        # A random pause: changes fall at every phase of the scan cycle.
        await asyncio.sleep(rng.uniform(0.1, 0.9))
    return result


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` percentile (nearest rank), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- display switches -----------------------------------------------------------------------------


async def switch_times(
    session: Session, tour: Sequence[str], rounds: int
) -> dict[str, dict[str, Any]]:
    """Per display: median and max milliseconds of ``rounds`` switches to it."""
    times: dict[str, list[float]] = {path: [] for path in tour}
    vias: dict[str, str] = {}
    failures: dict[str, int] = {path: 0 for path in tour}
    for _ in range(rounds):
        for path in tour:
            outcome = await session.page.evaluate(
                SWITCH_SCRIPT, [path, SETTLE_MS, SWITCH_TIMEOUT_MS]
            )
            vias[path] = str(outcome["via"])
            if outcome["ok"]:
                times[path].append(float(outcome["ms"]))
            else:
                failures[path] += 1
    return {
        path: {
            "median_ms": _ms(statistics.median(values)) if values else None,
            "max_ms": _ms(max(values)) if values else None,
            "via": vias.get(path, ""),
            "timeouts": failures[path],
        }
        for path, values in times.items()
    }


# --- the run --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_city(options: HmiBenchOptions, site_path: Path) -> AsyncIterator[CityProcess]:
    """The simulated city in a child process on free ports, its site file at ``site_path``."""
    city = await CityProcess.start(
        CityProcessOptions(
            ready_file=site_path,
            scale=options.scale,
            seed=options.seed,
            domains=options.domains,
        )
    )
    try:
        try:
            await city.listening(CITY_START_TIMEOUT_S)
        except CityProcessError as err:
            raise HmiBenchError(str(err)) from err
        yield city
    finally:
        await city.stop()


async def run_hmi_bench(options: HmiBenchOptions) -> dict[str, Any]:
    """Run the bench; return its figures."""
    for noisy in QUIET_LIBRARIES:  # the city's servers log every slow client
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before anything starts
        raise HmiBenchError(f"{CHROMIUM} is missing: apt-get install chromium")
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory(prefix="bench-hmi-") as scratch:
        root = Path(scratch)
        site_path = root / "site" / "site.yaml"
        site_path.parent.mkdir(parents=True)
        started = time.monotonic()
        async with running_city(options, site_path) as city:
            city_start_s = time.monotonic() - started
            site = await asyncio.to_thread(load_site, site_path)
            users_path = root / "hmi" / "users.json"
            users_path.parent.mkdir(parents=True)
            users = UserStore(users_path, hasher=PasswordHasher.from_parameters(CHEAPEST))
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            users.add_user("bench-operator", password, Role.OPERATOR)
            users.add_user("bench-maintenance", password, Role.MAINTENANCE)
            started = time.monotonic()
            center = await CenterProcess.start(
                site_path, f"sqlite:///{root / 'center.db'}", users_path
            )
            try:
                url = (await center.hmi_url(CENTER_START_TIMEOUT_S)).rstrip("/")
                center_start_s = time.monotonic() - started
                await asyncio.sleep(options.warm_up_s)  # first scans and alarms settle
                log.info("center listening at %s; measuring it without browsers", url)
                idle_cores = await measure_cpu(center, options.idle_s)
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
                    )
                    try:
                        sim_cpu0, wall0 = city.cpu_seconds(), time.monotonic()
                        figures = await _with_browser(
                            options, site, center, browser, url, password, rng
                        )
                        sim_cores = (city.cpu_seconds() - sim_cpu0) / (time.monotonic() - wall0)
                    finally:
                        await browser.close()
            finally:
                await center.stop()
        figures["center_cpu"]["idle_cores"] = round(idle_cores, 3)
        loaded = figures["center_cpu"]["with_sessions_cores"]
        figures["center_cpu"]["hmi_cores"] = round(loaded - idle_cores, 3)
        figures["center_cpu"]["target_hmi_cores"] = HMI_CPU_TARGET_CORES
        figures["sim_cpu_cores"] = round(sim_cores, 3)
        return {
            "scale": options.scale,
            "sessions": options.sessions,
            "display": options.display,
            "devices": len(site.devices),
            "tags": len(site.tags),
            "city_start_s": round(city_start_s, 1),
            "center_start_s": round(center_start_s, 1),
            **figures,
        }


async def _with_browser(
    options: HmiBenchOptions,
    site: SiteConfig,
    center: CenterProcess,
    browser: Browser,
    url: str,
    password: str,
    rng: random.Random,
) -> dict[str, Any]:
    sessions: list[Session] = []
    try:
        for number in range(options.sessions):
            sessions.append(
                await open_session(browser, url, "bench-operator", password, options.display)
            )
            log.info("session %d of %d open on %s", number + 1, options.sessions, options.display)
        writable = writable_numbers(site)
        tag = writable[choose_probe(await shown_text_tags(sessions[0].page), writable)]
        field_device = build_driver(site.device(tag.device), WallClock())
        await field_device.connect()
        # Every session's live stream open before anything is measured.
        for session in sessions:
            await session.page.wait_for_function(
                "() => window.hmiLive && window.hmiLive.connected", timeout=60_000
            )
        for session in sessions:
            session.traffic.reset()
        cpu0, wall0 = center.cpu_seconds(), time.monotonic()
        try:
            changes = await change_field(
                field_device,
                sessions,
                tag,
                time.monotonic() + options.duration_s,
                options.min_changes,
                rng,
            )
        finally:
            await field_device.close()
        window_s = time.monotonic() - wall0
        loaded_cores = (center.cpu_seconds() - cpu0) / window_s
        traffic = [session.traffic for session in sessions]
        # Opened on the faceplate: the tour starts with a switch away from it, to the overview.
        switcher = await open_session(
            browser, url, "bench-maintenance", password, options.faceplate
        )
        try:
            tour = [path or options.faceplate for path in SWITCH_TOUR]
            log.info("display switches: %d rounds of %s", options.switch_rounds, tour)
            switches = await switch_times(switcher, tour, options.switch_rounds)
        finally:
            await switcher.context.close()
    finally:
        for session in sessions:
            await session.context.close()
    latencies = changes.latencies_ms
    worst_switch = [v["max_ms"] for v in switches.values() if v["max_ms"] is not None]
    n = len(traffic)
    stream_bytes = sum(t.stream_bytes or t.stream_message_bytes for t in traffic) / n
    messages = sum(t.stream_messages for t in traffic) / n
    return {
        "probe_tag": tag.name,
        "field_change_to_screen": {
            "changes": changes.changes,
            "observations": len(latencies),
            "missed": changes.missed,
            "sessions_missing_some": len(changes.missed_by),
            "failed_writes": changes.failed_writes,
            "p50_ms": _ms(percentile(latencies, 0.5)),
            "p95_ms": _ms(percentile(latencies, 0.95)),
            "max_ms": _ms(max(latencies, default=None)),
            "target_p95_ms": FIELD_TARGET_P95_MS,
        },
        "display_switch_ms": switches,
        "display_switch_max_ms": _ms(max(worst_switch, default=None)),
        "display_switch_target_ms": SWITCH_TARGET_MS,
        "live_stream": {
            "window_s": round(window_s, 1),
            "bytes_per_s_per_browser": round(stream_bytes / window_s, 1),
            "messages_per_s_per_browser": round(messages / window_s, 2),
            "bytes_per_message": round(stream_bytes / messages, 1) if messages else None,
            "value_messages_per_browser": sum(t.value_messages for t in traffic) / n,
        },
        "dash_callbacks": {
            "requests_per_min_per_browser": round(
                sum(t.dash_requests for t in traffic) / n * 60.0 / window_s, 2
            ),
            "bytes_per_min_per_browser": round(
                sum(t.dash_bytes for t in traffic) / n * 60.0 / window_s, 1
            ),
        },
        "center_cpu": {"with_sessions_cores": round(loaded_cores, 3)},
    }
