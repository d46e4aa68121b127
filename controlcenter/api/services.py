"""What the API reads and acts through: the center's services, as ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from controlcenter.automation import AreaDef, AssetDef
from controlcenter.ports import (
    AlarmJournalReader,
    AlarmOperations,
    CommandOperations,
    DeviceHealthView,
    EventJournal,
    HistoryQueryReader,
    LiveView,
)
from controlcenter.security.ratelimit import RatePolicy
from controlcenter.security.tokens import TokenStore


@dataclass(frozen=True)
class ApiServices:
    """The center as the API sees it; a service a center does not run is None (its endpoints
    answer 503)."""

    live: LiveView
    history: HistoryQueryReader
    journal: EventJournal
    tokens: TokenStore
    site_name: str
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    areas: tuple[AreaDef, ...] = ()
    assets: tuple[AssetDef, ...] = ()
    alarms: AlarmOperations | None = None
    alarm_journal: AlarmJournalReader | None = None
    commands: CommandOperations | None = None
    devices: DeviceHealthView | None = None
    rate: RatePolicy = field(default_factory=RatePolicy)
