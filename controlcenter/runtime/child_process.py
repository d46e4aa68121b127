"""A child process of the center (the simulated city, a benchmark's devices): its output read,
its CPU measured, stopped cleanly.

The demo and the benchmarks run simulated devices in their own process, as field devices run on
their own CPUs; this is what every such child has in common.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import psutil  # type: ignore[import-untyped]  # psutil ships no type hints

STDERR_LINES = 40
"""How much of a child's stderr is kept to explain a failure."""


class ChildProcess:
    """A running child process: stderr kept (its tail), stdout handed to ``on_stdout_line``."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        name: str,
        on_stdout_line: Callable[[bytes], Awaitable[None] | None],
        stderr_file: Path | None = None,
    ) -> None:
        self.process = process
        self._ps = psutil.Process(process.pid)
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        # The whole stderr, when asked for: a benchmark's processes explained after the run.
        self._stderr_file: TextIO | None = (
            stderr_file.open("a", encoding="utf-8") if stderr_file is not None else None
        )
        self._on_stdout_line = on_stdout_line
        self._readers = [
            asyncio.create_task(self._read_stdout(), name=f"{name} stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{name} stderr"),
        ]

    async def _read_stdout(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while line := await stream.readline():
            handled = self._on_stdout_line(line)
            if handled is not None:
                await handled

    async def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            if self._stderr_file is not None:
                self._stderr_file.write(text + "\n")
                self._stderr_file.flush()

    def cpu_seconds(self) -> float:
        """CPU seconds (user and system) the child has used so far."""
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def stderr_tail(self) -> str:
        """The last lines the child wrote to stderr."""
        return "\n".join(self._stderr)

    async def stop(self, grace_s: float = 30.0) -> None:
        """Terminate the child (killed after ``grace_s``) and stop reading its output."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._stderr_file is not None:
            self._stderr_file.close()


def own_cpu_seconds() -> float:
    """CPU seconds (user and system) this process has used so far."""
    times = os.times()
    return times.user + times.system
