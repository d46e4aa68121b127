"""What the displays read and act through: the center's ports, the site's model, the time zone.

Every display and callback receives one ``HmiContext``. The ports are the center's services
(the live view, the historian's queries, the alarm service, the command pipeline, the scan
engine's diagnostics); the HMI holds no second copy of their logic. A port that a center does
not provide is None and the displays that need it say so instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from controlcenter.automation import AreaDef, AssetDef, DistrictDef, GeoPoint
from controlcenter.model import Sample, TagDef, utc_now
from controlcenter.ports import (
    AlarmJournalReader,
    AlarmOperations,
    CollectionPlanner,
    CommandOperations,
    DeviceHealthView,
    EventJournal,
    HistoryQueryReader,
    LiveView,
    RuleOperations,
    UserAdministration,
)


@dataclass(frozen=True)
class HmiContext:
    """The center as the HMI sees it."""

    live: LiveView
    history: HistoryQueryReader
    journal: EventJournal
    site_name: str
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    location: GeoPoint | None = None
    assets: tuple[AssetDef, ...] = ()
    districts: tuple[DistrictDef, ...] = ()
    areas: tuple[AreaDef, ...] = ()
    alarms: AlarmOperations | None = None
    alarm_journal: AlarmJournalReader | None = None
    commands: CommandOperations | None = None
    devices: DeviceHealthView | None = None
    featured: tuple[str, ...] = ()
    """Tags the site file features (``hmi.featured``): shown first on the tag display."""
    users: UserAdministration | None = None
    """The administration of users (the users display)."""
    rules: RuleOperations | None = None
    """The rule set for engineers (the rules display)."""
    collection: CollectionPlanner | None = None
    """The next waste collection round (the environment display)."""
    now: Callable[[], datetime] = utc_now
    """The center's clock (simulated in the demo): shelf ends and "the last hour" count on it."""
    clock_speed: float = 1.0
    """Seconds of the center's clock per wall-clock second (the header's clock ticks at it)."""

    def tag(self, name: str) -> TagDef:
        """The definition of tag ``name``; raises KeyError."""
        return self.tags_by_name()[name]

    def tags_by_name(self) -> Mapping[str, TagDef]:
        """Every tag of the live view by name (calculated tags appear when deployed)."""
        tags = self.live.tags()
        cached = _TAG_CACHE.get(id(self))
        if cached is None or cached[0] != len(tags):
            cached = (len(tags), {tag.name: tag for tag in tags})
            _TAG_CACHE[id(self)] = cached
        return cached[1]

    def asset(self, name: str) -> AssetDef:
        """The asset ``name``; raises KeyError."""
        for asset in self.assets:
            if asset.name == name:
                return asset
        raise KeyError(name)

    def asset_tags(self, asset: AssetDef) -> list[TagDef]:
        """The tags of ``asset`` (named ``<asset>.…``), in name order."""
        prefix = asset.name + "."
        return sorted(
            (tag for name, tag in self.tags_by_name().items() if name.startswith(prefix)),
            key=lambda tag: tag.name,
        )

    def sample(self, name: str) -> Sample | None:
        """The latest sample of tag ``name``, or None for an unknown tag."""
        try:
            return self.live.latest(name)
        except KeyError:
            return None

    def local(self, moment: datetime) -> datetime:
        """``moment`` in the site's time zone (every time an operator reads is local)."""
        return moment.astimezone(self.timezone)

    def local_text(self, moment: datetime, *, seconds: bool = True) -> str:
        """``moment`` as site-local text, e.g. ``2030-01-01 13:00:03 CET``."""
        pattern = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"
        return self.local(moment).strftime(pattern)


_TAG_CACHE: dict[int, tuple[int, dict[str, TagDef]]] = {}
