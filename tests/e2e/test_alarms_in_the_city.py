"""Alarms against the simulated city over Modbus: a tripped pump raises its alarm, which is
e-mailed to a real local SMTP server and escalated, acknowledged with a comment, shelved with a
reason and back when the shelf expires; a device taken offline raises exactly one communication
alarm; a flood sends one summary; and the center's alarm states survive a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from controlcenter.automation import AlarmAction, AlarmDisplayState
from controlcenter.model import Role, User
from controlcenter.runtime.app import ControlCenter
from controlcenter.runtime.demo_site import city_devices, render_site
from controlcenter.security.users import UserStore
from controlcenter.site.config import SiteConfig, load_site
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.device import FaultKind
from tests.alarms.notify_testkit import SmtpReceiver, smtp_receiver

__all__ = ["smtp_receiver"]  # the fixture, used by name

SPEED = 60.0
"""A minute of simulated time per second of the test."""
SCAN_S = 10.0
TRIPPED = "water.ps1.pump1.tripped"
OFFLINE_DEVICE = "water.ps2_rtu"
OLGA = User("olga", Role.OPERATOR)

OVERLAY = """
site:
  name: Alarm test city
  latitude: 52.37
  longitude: 4.90
  timezone: Europe/Amsterdam
areas:
  - {{name: water, tags: ["water.*"]}}
alarms:
  - name: water.ps1.pump1.tripped
    kind: discrete
    tag: water.ps1.pump1.fault
    state: true
    priority: high
    area: water
    message: Pump 1 of station 1 tripped
    guidance: {{cause: "Drive fault", consequence: "Less supply to reservoir 2",
               action: "Reset the drive on site"}}
communication_alarms: {{enabled: true, priority: high}}
notifications:
  email: {{host: 127.0.0.1, port: {smtp_port}, sender: scada@city.example}}
  flood_threshold: 5
  flood_window: 3m
  groups:
    - {{name: operators, emails: [ops@city.example]}}
    - {{name: duty-manager, emails: [duty@city.example]}}
  routes:
    - {{name: water, areas: [water], groups: [operators, duty-manager], escalate_after: 2m}}
"""


@dataclass
class Running:
    """The city and a running center, and what the test needs to restart the center."""

    city: SimulatedCity
    clock: SimClock
    site: SiteConfig
    db_url: str
    users: UserStore
    smtp: SmtpReceiver
    center: ControlCenter | None = None
    stop: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None

    async def start_center(self) -> ControlCenter:
        """Start a center on the shared database."""
        store = await asyncio.to_thread(SqlHistorian, self.db_url)
        self.center = ControlCenter(self.site, store, self.clock, users=self.users)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.center.run(self.stop))
        await asyncio.wait_for(self.center.ready.wait(), 30)
        return self.center

    async def stop_center(self) -> None:
        """Stop the center cleanly and close its database."""
        assert self.center is not None and self.stop is not None and self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        await asyncio.to_thread(self.center.store.close)
        self.center = None


@pytest_asyncio.fixture(loop_scope="session")
async def running(tmp_path: Path, smtp_receiver: SmtpReceiver) -> AsyncIterator[Running]:
    """The water network on free ports, and a center watching it with e-mail notifications."""
    clock = SimClock(speed=SPEED, start=datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    city = SimulatedCity(clock, CityOptions(seed=7, domains=frozenset({"water"})))
    await city.start()
    try:
        site_path = tmp_path / "site.yaml"
        overlay = OVERLAY.format(smtp_port=smtp_receiver.port)
        text = render_site(overlay, city_devices(city, scan_interval_s=SCAN_S), city.points())
        site_path.write_text(text, encoding="utf-8")
        site = await asyncio.to_thread(load_site, site_path)
        users = UserStore(tmp_path / "users.json")
        users.add_user("olga", "a long operator passphrase 1", Role.OPERATOR)
        running = Running(
            city, clock, site, f"sqlite:///{tmp_path / 'center.db'}", users, smtp_receiver
        )
        await running.start_center()
        try:
            yield running
        finally:
            if running.center is not None:
                await running.stop_center()
    finally:
        await city.stop()


async def _until(what: str, found: Callable[[], object], wall_timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + wall_timeout_s
    while not await asyncio.to_thread(found):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _display(center: ControlCenter, name: str) -> AlarmDisplayState:
    return center.alarms.state(name).display


def _mail_to(smtp: SmtpReceiver, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.messages() if address in str(m["To"])]


@pytest.mark.e2e
@pytest.mark.timeout(150)
async def test_alarms_of_the_running_city_from_field_to_mail_and_back(running: Running) -> None:
    first = running.center
    assert first is not None
    center: ControlCenter = first
    water = running.city.water
    assert water is not None

    # A tripped pump raises its alarm over Modbus; the operators are mailed at once.
    water.trip_pump(1, 1)
    await _until(
        "the trip alarm",
        lambda: _display(center, TRIPPED) is AlarmDisplayState.UNACKNOWLEDGED,
    )
    await _until("the operators' mail", lambda: _mail_to(running.smtp, "ops@city.example"))
    assert any("tripped" in subject.lower() for subject in _mail_to(running.smtp, "ops@"))
    # Unacknowledged for two simulated minutes: escalated to the duty manager.
    await _until("the escalation", lambda: _mail_to(running.smtp, "duty@city.example"))

    # Acknowledged with a comment, shelved with a reason, back when the shelf expires.
    await asyncio.to_thread(center.alarms.acknowledge, [TRIPPED], OLGA, "crew on the way")
    assert _display(center, TRIPPED) is AlarmDisplayState.ACKNOWLEDGED
    until = center.clock.now() + timedelta(minutes=3)
    await asyncio.to_thread(
        center.alarms.shelve, TRIPPED, OLGA, "drive being replaced", until=until
    )
    assert _display(center, TRIPPED) is AlarmDisplayState.SHELVED
    await _until(
        "the shelf to expire",
        lambda: _display(center, TRIPPED) is AlarmDisplayState.UNACKNOWLEDGED,
    )
    journal = center.store.read_alarm_journal(
        running.clock.start, center.clock.now() + timedelta(minutes=1), alarm=TRIPPED
    )
    actions = [(t.action, t.user) for t in journal]
    assert (AlarmAction.ACTIVATE, "") in actions
    assert (AlarmAction.ACKNOWLEDGE, "olga") in actions
    assert (AlarmAction.SHELVE, "olga") in actions
    assert (AlarmAction.SHELF_EXPIRED, "") in actions
    acknowledged = next(t for t in journal if t.action is AlarmAction.ACKNOWLEDGE)
    assert acknowledged.comment == "crew on the way"
    shelved = next(t for t in journal if t.action is AlarmAction.SHELVE)
    assert shelved.comment == "drive being replaced"
    expired = next(t for t in journal if t.action is AlarmAction.SHELF_EXPIRED)
    assert abs((expired.time - until).total_seconds()) < 1.0
    events = center.store.read_events(kind=None)
    assert any(e.source == "notifications" and "escalat" in e.message for e in events)

    # A device taken offline: exactly one alarm, its communication alarm.
    before = center.clock.now()
    running.city.set_fault(OFFLINE_DEVICE, FaultKind.OFFLINE)
    comm = f"{OFFLINE_DEVICE}.comm"
    await _until("the communication alarm", lambda: center.alarms.state(comm).active)
    activations = [
        t
        for t in center.store.read_alarm_journal(before, center.clock.now() + timedelta(hours=1))
        if t.action is AlarmAction.ACTIVATE
    ]
    assert [t.alarm for t in activations] == [comm]

    # The states survive a restart: active and unacknowledged, active comm alarm, a shelf.
    comm_shelf_until = center.clock.now() + timedelta(hours=2)
    await asyncio.to_thread(
        center.alarms.shelve, comm, OLGA, "link works in progress", until=comm_shelf_until
    )
    await running.stop_center()
    center = await running.start_center()
    await _until("the restored states", lambda: center.alarms.state(comm).shelved)
    restored = center.alarms.state(comm)
    assert restored.shelved_until == comm_shelf_until and restored.shelved_by == "olga"
    assert center.alarms.state(TRIPPED).active

    # A flood: every other device offline at once sends the operators one summary. Their ten
    # communication alarms come within a few scans (seconds of simulated time), well inside the
    # 3-minute flood window; the summary goes out when that window closes.
    mails_before = len(_mail_to(running.smtp, "ops@city.example"))
    for device in sorted(d.name for d in running.site.devices if d.name != OFFLINE_DEVICE):
        running.city.set_fault(device, FaultKind.OFFLINE)
    await _until(
        "the flood summary",
        lambda: any(
            "summary" in s.lower() or "flood" in s.lower()
            for s in _mail_to(running.smtp, "ops@city.example")[mails_before:]
        ),
        wall_timeout_s=60.0,
    )
