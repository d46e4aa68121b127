"""node-opcua scripts run as child processes: started, awaited until ready, and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SETUP_SCRIPT = ".ci/setup.d/30-opcua-interop.sh"
START_TIMEOUT_S = 60.0


def node_opcua_or_fail() -> str:
    """The node executable; fail (never skip) when node or node-opcua is missing."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "node-opcua").is_dir():
        pytest.fail(f"node-opcua is not installed in {HERE}: run {SETUP_SCRIPT}")
    return node


@dataclass
class NodeScript:
    """A running node script that printed ``READY <detail>`` on stdout."""

    process: asyncio.subprocess.Process
    ready: str

    async def send(self, line: str, timeout_s: float = 10.0) -> str:
        """Write a command line to the script's stdin and return its one-line answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        async with asyncio.timeout(timeout_s):
            while True:
                answer = (await self.process.stdout.readline()).decode().strip()
                if not answer:
                    raise RuntimeError(f"the script ended while answering {line!r}")
                if answer.startswith(("ok", "error", "{", "[")):
                    return answer

    async def stop(self) -> None:
        """Close stdin (the script shuts down), and kill it if it does not end in time."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def start_script(script: str, *args: str) -> NodeScript:
    """Start ``node <script> <args>`` here and wait for its ``READY`` line."""
    node = node_opcua_or_fail()
    process = await asyncio.create_subprocess_exec(
        node,
        str(HERE / script),
        *args,
        cwd=HERE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"{script} ended before it was ready")
                if line.startswith("READY "):
                    return NodeScript(process, line.removeprefix("READY ").strip())
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
