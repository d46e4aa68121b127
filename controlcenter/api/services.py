"""What the API reads and acts through: the center's services, as ports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from controlcenter.automation import AreaDef, AssetDef
from controlcenter.model import utc_now
from controlcenter.ports import (
    AlarmJournalReader,
    AlarmOperations,
    CommandOperations,
    DeviceHealthView,
    EventJournal,
    HistoryQueryReader,
    LiveView,
    RuleOperations,
    UserAdministration,
)
from controlcenter.security.ratelimit import RatePolicy
from controlcenter.security.tokens import TokenStore

API_TOKENS_FILE = "api-tokens.sqlite"
"""The API tokens (hashed), in the center's state directory beside the users file."""


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
    rules: RuleOperations | None = None
    users: UserAdministration | None = None
    now: Callable[[], datetime] = utc_now
    """The center's clock (simulated time in the demo): shelving durations count on it."""
