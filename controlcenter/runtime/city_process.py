"""The simulated city as a child process, as field devices run on their own CPUs.

``controlcenter demo`` and ``controlcenter bench city`` start the city this way
(``python -m controlcenter.cli.sim … --ready-file``): it writes the site file of the running
city once every device listens, prints where its fault-control endpoint listens, and ends with
its parent. The center then runs in its own process on the machine's other core, so the city's
physics and servers never hold up acquisition, and the other way round.
"""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controlcenter.runtime.child_process import ChildProcess

_CONTROL_LINE = re.compile(r"^fault control: (?P<host>[^\s:]+):(?P<port>\d+)")


class CityProcessError(Exception):
    """The simulated city did not start (it exited, or took too long to listen)."""


@dataclass(frozen=True, slots=True)
class CityProcessOptions:
    """What city the child runs, where, and on which clock."""

    ready_file: Path
    """Where the child writes the site file of the running city."""
    scale: int = 1
    seed: int = 1
    speed: float = 1.0
    base_port: int = 0
    """0: every device on any free port; otherwise device i on base_port + i."""
    control: str = "127.0.0.1:0"
    """host:port of the fault-injection endpoint (port 0: any free)."""
    domains: frozenset[str] | None = None
    """Only these domains (None: the whole city)."""
    scan_interval_s: float | None = None
    """Scan interval of every device in the site file (None: each domain's scan class)."""
    start: datetime | None = None
    """Simulated time at ``clock_origin`` (None: the child's own clock from now)."""
    clock_origin: float | None = None
    """The ``time.monotonic()`` reading at which the shared clock read ``start``."""
    duration_s: float | None = None
    """A safety net: the child ends by itself after this many seconds."""


class CityProcess(ChildProcess):
    """A running ``controlcenter sim`` child: waited for until it listens, then stopped."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.control: tuple[str, int] | None = None
        """Where the city's fault-control endpoint listens (known once it listens)."""
        self._listening = asyncio.Event()
        super().__init__(process, "simulated city", self._on_line)

    @classmethod
    async def start(cls, options: CityProcessOptions) -> CityProcess:
        """Start the child; it is still starting its devices when this returns."""
        command = [sys.executable, "-m", "controlcenter.cli.sim", "--exit-with-parent"]
        command += ["--scale", str(options.scale), "--seed", str(options.seed)]
        command += ["--speed", repr(options.speed), "--base-port", str(options.base_port)]
        command += ["--control", options.control, "--ready-file", str(options.ready_file)]
        for domain in sorted(options.domains or ()):
            command += ["--domain", domain]
        if options.scan_interval_s is not None:
            command += ["--scan-interval", repr(options.scan_interval_s)]
        if options.start is not None:
            command += ["--start", options.start.isoformat()]
        if options.clock_origin is not None:
            command += ["--clock-origin", repr(options.clock_origin)]
        if options.duration_s is not None:
            command += ["--duration", repr(options.duration_s)]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def _on_line(self, line: bytes) -> None:
        match = _CONTROL_LINE.match(line.decode(errors="replace"))
        if match is not None:
            self.control = (match["host"], int(match["port"]))
            self._listening.set()

    async def listening(self, timeout_s: float) -> None:
        """Return once every device listens; CityProcessError if the city exits or is late."""
        exited = asyncio.create_task(self.process.wait())
        ready = asyncio.create_task(self._listening.wait())
        try:
            await asyncio.wait({exited, ready}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            exited.cancel()
            ready.cancel()
        if not self._listening.is_set():
            why = "exited" if self.process.returncode is not None else f"took over {timeout_s:g} s"
            raise CityProcessError(
                f"the simulated city {why} before listening:\n{self.stderr_tail()}"
            )
