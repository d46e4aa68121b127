"""`controlcenter run` with --tls-cert/--tls-key: HTTPS, and every file it keeps is private."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import stat
import sys
from pathlib import Path

import pytest

from controlcenter.model import Role
from controlcenter.security.users import UserStore
from hmi.server import TlsFiles
from tests.hmi.http_support import layout_status, log_in
from tests.hmi.test_hmi_transport_security import self_signed

CLI = str(Path(sys.executable).with_name("controlcenter"))
PASSWORD = "night-shift-operator-3"
SITE = """\
site: {name: Test Town, latitude: 52.0, longitude: 5.0, timezone: Europe/Amsterdam}
devices:
  - {name: water.rtu1, protocol: modbus, endpoint: "127.0.0.1:PORT", unit_id: 1}
tags:
  - {name: water.tank1.level, device: water.rtu1, address: "hr:0:float32", unit: m}
historian:
  spool_path: var/historian.spool
"""
"""A device nobody answers for (the HMI is what is tested), and a spool."""


async def read_hmi_url(stream: asyncio.StreamReader, seen: list[str]) -> str:
    """The URL the center logs once its HMI listens."""
    while line := (await stream.readline()).decode():
        seen.append(line)
        match = re.search(r"HMI at (https?://\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("the center ended without logging its HMI URL:\n" + "".join(seen))


class RunningCenter:
    """`controlcenter run` in a child process, with its HMI on HTTPS."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, log: list[str]) -> None:
        self.process = process
        self.url = url
        self.log = log

    @classmethod
    async def start(cls, directory: Path, site: Path, tls: TlsFiles) -> RunningCenter:
        previous_umask = os.umask(0o022)  # the usual umask: files are world-readable by default
        try:
            process = await asyncio.create_subprocess_exec(
                CLI,
                "run",
                "--site",
                str(site),
                "--port",
                "0",
                "--tls-cert",
                str(tls.certificate),
                "--tls-key",
                str(tls.private_key),
                cwd=directory,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        finally:
            os.umask(previous_umask)
        log: list[str] = []
        try:
            assert process.stderr is not None
            url = await asyncio.wait_for(read_hmi_url(process.stderr, log), 60)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        return cls(process, url, log)

    async def stop(self) -> str:
        """Stop it as Ctrl-C does; return everything it logged."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        assert self.process.stderr is not None
        rest = await asyncio.wait_for(self.process.stderr.read(), 30)
        await asyncio.wait_for(self.process.wait(), 30)
        log = "".join(self.log) + rest.decode()
        assert self.process.returncode == 0, log
        assert "Traceback" not in log
        return log


@pytest.mark.timeout(120)
async def test_run_serves_https_keeps_sessions_across_a_restart_and_its_files_private(
    tmp_path: Path, closed_port: int
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE.replace("PORT", str(closed_port)))
    UserStore(tmp_path / "var" / "users.json").add_user("olga", PASSWORD, Role.OPERATOR)
    tls = self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(tls.certificate))

    first = await RunningCenter.start(tmp_path, site, tls)
    try:
        assert first.url.startswith("https://")
        reply = await asyncio.to_thread(log_in, first.url, "olga", PASSWORD, context=context)
        assert reply.status == 302
        assert "Secure" in reply.headers["Set-Cookie"]
        assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "Server" not in reply.headers
        cookie = reply.cookie()
        assert await asyncio.to_thread(layout_status, first.url, cookie, context=context) == 200
    finally:
        await first.stop()

    second = await RunningCenter.start(tmp_path, site, tls)
    try:
        # Same secret key, same sessions file: the operator is still logged in.
        assert await asyncio.to_thread(layout_status, second.url, cookie, context=context) == 200
    finally:
        await second.stop()

    var = tmp_path / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in var.iterdir()}
    for name in ("center.db", "historian.spool", "users.json", "hmi-secret.key"):
        assert name in files, files
    assert all(mode == 0o600 for mode in files.values()), files
