"""Running a command-line service: logging for operators, and a loop that stops cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from controlcenter.runtime.logformat import LogFormat, log_formatter

log = logging.getLogger("controlcenter")


class ServiceFailedError(Exception):
    """A service stopped for a reason it has already logged; the command exits with 1."""


QUIET_LIBRARIES = ("pymodbus", "asyncua", "bacpypes3", "werkzeug")
"""Protocol and web libraries that log every field fault with a traceback; the center logs
each fault once, in its own words."""


def freeze_startup_objects() -> None:
    """Keep the objects alive now (drivers, tag tables, address spaces) out of full collections.

    A started center holds hundreds of thousands of long-lived objects; every full garbage
    collection walks them all and stalls the event loop for 100 ms or more, late scans and
    late notifications included. Frozen once started, they are never walked again.
    """
    gc.collect()
    gc.freeze()


def configure_logging(verbose: bool, log_format: LogFormat = "text") -> None:
    """Log to stderr for operators (``json``: one JSON object per line for log collectors);
    libraries' own chatter only with ``verbose``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(log_format))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


def run_until_stopped(
    body: Callable[[asyncio.Event], Awaitable[None]], duration: float | None
) -> int:
    """Run ``body`` until Ctrl-C, SIGTERM or ``duration`` seconds of wall time; return exit code."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        try:
            await body(stop)
        except ServiceFailedError as err:
            log.error("stopped: %s", err)
            return 1
        return 0

    return asyncio.run(main())
