"""The site file's alarm sections: templates per asset type, assets, single alarms, area
suppression, communication alarms and notifications.

An alarm is engineered once per asset type (``alarm_templates``) and expanded for every asset
of that type (``assets``): ``{asset}`` in a template is replaced by the asset's name. Single
alarms (``alarms``) need no template. Every alarm is checked against the site after expansion
(its tags exist and fit its kind, its name is unique, its area is known), and every problem is
reported at the spot it was written: for an expanded alarm, the template's line, naming the
asset. The result is the frozen vocabulary of ``controlcenter.automation`` (``AlarmDef`` and
friends, after ISA-18.2's master alarm database: priority, guidance, delays, deadband,
suppression by design) and two plain settings records for the notifier.

Expressions (``expression``, ``expect_change_when``, ``suppress_when``, ``when``) are checked
here only for size and balanced brackets and quotes; the alarm engine compiles them against the
tags and names the ``file:line:column`` of a problem inside one from the spot kept with each.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from controlcenter.automation import (
    NOWHERE,
    AlarmDef,
    AlarmGuidance,
    AlarmKind,
    AlarmPriority,
    AreaSuppressionDef,
    EmailSettings,
    Expression,
    NotificationRouteDef,
    OnCallGroupDef,
    SourceSpot,
    WebhookSettings,
)
from controlcenter.model import DataType, TagDef
from controlcenter.site.fields import (
    DAY_S,
    ExpressionText,
    FiniteFloat,
    Integer,
    Name,
    Text,
    parse_duration,
)
from controlcenter.site.yamlsource import LocatedDocument, Location

DOTTED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
"""A dotted name (tags, devices, alarms, assets), as the site file's ``DOTTED_NAME``."""

MAX_ALARMS = 75_000
"""Most alarms of a site after templates are expanded and communication alarms added: above
the 60,000 of the benchmark (30,000 tags with two limit alarms each), bounded so that a few
lines of templates cannot make the center watch millions of alarms."""
MAX_TEMPLATE_ALARMS = 1000
"""Most alarms of one asset type's template."""
MAX_ASSET_TYPES = 1000
MAX_ASSETS = 50_000
MAX_SINGLE_ALARMS = 75_000
MAX_SUPPRESSIONS = 1000
MAX_GROUPS = 1000
MAX_ROUTES = 1000
MAX_RECIPIENTS = 100
"""Most e-mail addresses or webhooks of one on-call group."""
URL_MAX_CHARACTERS = 2000
PLACEHOLDER = "{asset}"

PriorityName = Literal["critical", "high", "medium", "low"]
_PRIORITIES: dict[str, AlarmPriority] = {
    "critical": AlarmPriority.CRITICAL,
    "high": AlarmPriority.HIGH,
    "medium": AlarmPriority.MEDIUM,
    "low": AlarmPriority.LOW,
}

_NUMERIC = (DataType.FLOAT, DataType.INT)
_LIMIT_KINDS = frozenset(
    {
        AlarmKind.HIGH,
        AlarmKind.HIGH_HIGH,
        AlarmKind.LOW,
        AlarmKind.LOW_LOW,
        AlarmKind.DEVIATION,
        AlarmKind.RATE,
        AlarmKind.NIGHT_FLOW,
    }
)
"""Kinds that need a ``limit`` and a numeric tag."""
_TAGLESS_KINDS = frozenset({AlarmKind.EXPRESSION, AlarmKind.COMM_LOSS})

Duration = Annotated[FiniteFloat, BeforeValidator(parse_duration), Field(ge=0.0, le=7 * DAY_S)]
"""A duration of at most a week, as seconds or ``30s`` / ``15m`` / ``2h`` / ``1d``."""

_QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
# Deliberately narrower than RFC 5322: an address that a mail server accepts in an SMTP envelope
# without quoting, and that cannot smuggle a header (no spaces, no line breaks, no commas).
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_ENV_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)?$")


def check_quiet_hours(value: str) -> str:
    """``HH:MM-HH:MM`` in local time (may wrap past midnight), or empty for none."""
    if value == "":
        return value
    match = _QUIET_HOURS.match(value)
    if match is None:
        raise ValueError(f"quiet hours '{value[:40]}' are not HH:MM-HH:MM (22:00-07:00)")
    if match.group(1, 2) == match.group(3, 4):
        raise ValueError(f"quiet hours '{value}' start and end at the same time")
    return value


def check_email(value: str) -> str:
    """A plain e-mail address (local@domain.tld), refused when it could carry anything else."""
    if len(value) > 254 or _EMAIL.match(value) is None:
        raise ValueError(f"'{value[:60]}' is not an e-mail address like name@example.org")
    return value


def check_webhook_url(value: str) -> str:
    """An absolute http or https URL with a host (no other scheme: no file:, no gopher:)."""
    if len(value) > URL_MAX_CHARACTERS or any(c.isspace() for c in value):
        raise ValueError(f"'{value[:60]}' is not a webhook URL (too long or has spaces)")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
    except ValueError as err:
        raise ValueError(f"'{value[:60]}' is not a URL: {err}") from err
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook '{value[:60]}' must be an http or https URL")
    if not parts.hostname:
        raise ValueError(f"webhook '{value[:60]}' has no host")
    return value


def check_env_name(value: str) -> str:
    """The name of an environment variable (or empty): letters, digits and underscores."""
    if _ENV_NAME.match(value) is None:
        raise ValueError(f"'{value[:60]}' is not an environment variable name")
    return value


_CLOSING = {"(": ")", "[": "]", "{": "}"}


def expression_syntax_problem(text: str) -> tuple[int, str] | None:
    """The offset and reason of the first unbalanced bracket or unterminated string in an
    expression (CEL string literals: single or double quotes, backslash escapes, raw strings
    and triple quotes), or None. Only the lexical shape is checked here: the alarm engine's
    compiler knows the tags and the functions."""
    stack: list[tuple[str, int]] = []
    index = 0
    while index < len(text):
        character = text[index]
        if character in "'\"":
            raw = index > 0 and text[index - 1] in "rR"
            quote = (
                text[index : index + 3] if text[index : index + 3] == character * 3 else character
            )
            end = index + len(quote)
            while True:
                if end >= len(text):
                    return index, "string is not terminated"
                if text[end] == "\\" and not raw:
                    end += 2
                    continue
                if text.startswith(quote, end):
                    break
                if text[end] == "\n" and len(quote) == 1:
                    return index, "string is not terminated on its line"
                end += 1
            index = end + len(quote)
            continue
        if character in _CLOSING:
            stack.append((character, index))
        elif character in ")]}":
            if not stack or _CLOSING[stack[-1][0]] != character:
                return index, f"'{character}' closes nothing"
            stack.pop()
        index += 1
    if stack:
        opener, offset = stack[-1]
        return offset, f"'{opener}' is never closed"
    return None


Email = Annotated[Name, Field(max_length=254)]
EnvName = Annotated[Name, Field(max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuidanceConfig(_Strict):
    """What the operator reads with the alarm: cause, consequence, action (ISA-18.2 11.6)."""

    cause: Text = ""
    consequence: Text = ""
    action: Text = ""


AlarmState = StrictBool | FiniteFloat | Annotated[Integer, Field(ge=-(2**53), le=2**53)] | Name
"""A discrete alarm's abnormal value."""


class _AlarmFields(_Strict):
    """What single alarms and template alarms share."""

    kind: AlarmKind
    tag: Name = ""
    limit: FiniteFloat | None = None
    setpoint: Name = Field(default="", description="deviation: the setpoint tag")
    command: Name = Field(default="", description="command mismatch: the command tag")
    state: AlarmState | None = Field(default=None, description="discrete: the abnormal value")
    expression: ExpressionText | None = None
    expect_change_when: ExpressionText | None = None
    device: Name = Field(default="", description="comm loss: the device")
    delay: Duration = 0.0
    deadband: FiniteFloat = Field(default=0.0, ge=0.0)
    on_delay: Duration = 0.0
    off_delay: Duration = 0.0
    priority: PriorityName = "medium"
    latching: StrictBool = False
    message: Text = ""
    guidance: GuidanceConfig = Field(default_factory=GuidanceConfig)
    suppress_when: ExpressionText | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> _AlarmFields:
        kind = self.kind
        if kind not in _TAGLESS_KINDS and not self.tag:
            raise ValueError(f"a {kind.value} alarm needs a tag")
        if kind in _LIMIT_KINDS and self.limit is None:
            raise ValueError(f"a {kind.value} alarm needs a limit")
        if kind is AlarmKind.DEVIATION and not self.setpoint:
            raise ValueError("a deviation alarm needs a setpoint (tag)")
        if kind is AlarmKind.COMMAND_MISMATCH and not self.command:
            raise ValueError("a command_mismatch alarm needs a command (tag)")
        if kind is AlarmKind.FROZEN and self.delay <= 0:
            raise ValueError("a frozen alarm needs a delay above zero")
        if kind is AlarmKind.EXPRESSION and self.expression is None:
            raise ValueError("an expression alarm needs an expression")
        if kind is AlarmKind.DISCRETE and self.state is None:
            raise ValueError("a discrete alarm needs a state (the abnormal value)")
        if kind is AlarmKind.COMM_LOSS and not self.device:
            raise ValueError("a comm_loss alarm needs a device")
        if kind is not AlarmKind.COMM_LOSS and self.device:
            raise ValueError("only a comm_loss alarm names a device (others take their tag's)")
        if kind in _TAGLESS_KINDS and self.tag:
            raise ValueError(f"a {kind.value} alarm has no tag")
        return self


class AlarmConfig(_AlarmFields):
    """One alarm written out in full (no template)."""

    name: Name = Field(pattern=DOTTED.pattern)
    area: Name = Field(default="", description="default: the first part of the name")


def _template_name(value: str) -> str:
    if PLACEHOLDER not in value:
        raise ValueError(
            f"a template alarm's name holds '{PLACEHOLDER}' (one alarm per asset), not "
            f"'{value[:60]}'"
        )
    return value


class TemplateAlarmConfig(_AlarmFields):
    """One alarm of an asset type; ``{asset}`` in its texts is the asset's name."""

    name: Name

    @field_validator("name")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        return _template_name(value)


class OverrideConfig(_Strict):
    """What an asset changes of one alarm of its template."""

    priority: PriorityName | None = None
    limit: FiniteFloat | None = None
    deadband: FiniteFloat | None = Field(default=None, ge=0.0)
    delay: Duration | None = None
    on_delay: Duration | None = None
    off_delay: Duration | None = None
    latching: StrictBool | None = None
    message: Text | None = None
    guidance: GuidanceConfig | None = None


MAX_FEEDS = 1000
"""Most assets one asset supplies (a treatment plant feeds every booster station)."""
MAX_OUTLINE_CORNERS = 1000
MAX_DISTRICTS = 10_000

PLAIN_ASSET_TYPES = frozenset(
    {
        "booster_station",
        "building",
        "heating_plant",
        "lighting_cabinet",
        "metering_area",
        "reservoir",
        "storage_tank",
        "substation",
        "treatment_plant",
        # The domains beyond the utilities (plc_sim's sensor networks and charge points).
        "air_quality_station",
        "camera",
        "charge_point",
        "parking_garage",
        "parking_zone",
        "pricing_zone",
        "river_gauge",
        "road_segment",
        "shore_power",
        "waste_container",
    }
)
"""Asset types a site may use without an alarm template (they are drawn on displays and the
map and carry no alarms); any other type needs a template, so that a misspelt type is refused
instead of silently losing its alarms."""

Latitude = Annotated[FiniteFloat, Field(ge=-90.0, le=90.0)]
Longitude = Annotated[FiniteFloat, Field(ge=-180.0, le=180.0)]
Position = tuple[Latitude, Longitude]
"""``[latitude, longitude]`` in WGS 84 degrees."""


class AssetConfig(_Strict):
    """A plant item of an asset type: it gets every alarm of that type's template, and is
    drawn where it stands (``position``, in ``district``) with the assets it supplies
    (``feeds``)."""

    name: Name = Field(pattern=DOTTED.pattern)
    type: Name = Field(min_length=1)
    area: Name = Field(default="", description="default: the first part of the name")
    label: Text = Field(default="", max_length=200, description="the name operators use")
    position: Position | None = Field(default=None, description="[latitude, longitude]")
    district: Name = Field(default="", description="the district (districts) it stands in")
    feeds: list[Name] = Field(
        default_factory=list, max_length=MAX_FEEDS, description="the assets it supplies"
    )
    overrides: dict[Name, OverrideConfig] = Field(default_factory=dict, max_length=1000)
    disable: list[Name] = Field(default_factory=list, max_length=1000)


class DistrictConfig(_Strict):
    """A district of the site drawn on the map: its name, label and outline."""

    name: Name = Field(pattern=DOTTED.pattern)
    label: Text = Field(default="", max_length=200, description="default: the name")
    outline: list[Position] = Field(
        min_length=3,
        max_length=MAX_OUTLINE_CORNERS,
        description="the polygon's corners, [latitude, longitude] each, in order",
    )


class SuppressionConfig(_Strict):
    """Suppress every alarm of an area while ``when`` holds (suppression by design)."""

    area: Name = Field(min_length=1)
    when: ExpressionText


class CommunicationAlarmsConfig(_Strict):
    """One communication-loss alarm per device, named ``<device>.comm``."""

    enabled: StrictBool = True
    priority: PriorityName = "high"


class EmailConfig(_Strict):
    """The SMTP server alarms are mailed through."""

    host: Name = Field(min_length=1)
    port: Integer = Field(default=25, ge=1, le=65535)
    sender: Email
    starttls: StrictBool = False
    username: Name = ""
    password_env: EnvName = Field(default="", description="variable holding the password")

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_email(value)

    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return check_env_name(value)

    @model_validator(mode="after")
    def _password_needs_user(self) -> EmailConfig:
        if self.password_env and not self.username:
            raise ValueError("password_env needs a username")
        return self


class WebhookConfig(_Strict):
    """How webhooks are signed (HMAC-SHA256, secret from the environment) and retried."""

    secret_env: EnvName = ""
    attempts: Integer = Field(default=5, ge=1, le=20)
    backoff: Annotated[Duration, Field(gt=0.0, le=3600.0)] = 2.0

    @field_validator("secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return check_env_name(value)


class GroupConfig(_Strict):
    """An on-call group: who is told together."""

    name: Name = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    emails: list[Email] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    webhooks: list[Name] = Field(default_factory=list, max_length=MAX_RECIPIENTS)

    @field_validator("emails")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            check_email(address)
        return value

    @field_validator("webhooks", mode="before")
    @classmethod
    def _urls(cls, value: object) -> object:
        if isinstance(value, list):
            for url in value:
                if isinstance(url, str):
                    check_webhook_url(url)
        return value

    @model_validator(mode="after")
    def _someone(self) -> GroupConfig:
        if not self.emails and not self.webhooks:
            raise ValueError("an on-call group needs an e-mail address or a webhook")
        return self


class RouteConfig(_Strict):
    """Which alarms go to which groups, with escalation and quiet hours."""

    name: Name = Field(min_length=1)
    areas: list[Name] = Field(default_factory=list, max_length=1000, description="empty: all")
    max_priority: PriorityName = "low"
    groups: list[Name] = Field(min_length=1, max_length=100)
    escalate_after: Annotated[Duration, Field(gt=0.0)] = 900.0
    quiet_hours: Name = ""
    quiet_below: PriorityName = "low"

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        return check_quiet_hours(value)


class NotificationsConfig(_Strict):
    """Where alarms are sent: e-mail and webhook settings, on-call groups and routes."""

    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None
    groups: list[GroupConfig] = Field(default_factory=list, max_length=MAX_GROUPS)
    routes: list[RouteConfig] = Field(default_factory=list, max_length=MAX_ROUTES)
    flood_threshold: Integer = Field(default=10, ge=1, le=10_000)
    """More new notifications than this for one group within ``flood_window`` is a flood:
    one summary is sent instead of a message each (EEMUA 191: 10 alarms in 10 minutes)."""
    flood_window: Duration = 60.0


@dataclass(frozen=True, slots=True)
class AlarmBook:
    """Every alarm-related definition of a site, ready for the alarm engine and notifier."""

    alarms: tuple[AlarmDef, ...] = ()
    suppressions: tuple[AreaSuppressionDef, ...] = ()
    groups: tuple[OnCallGroupDef, ...] = ()
    routes: tuple[NotificationRouteDef, ...] = ()
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None


@dataclass(frozen=True, slots=True)
class AlarmSections:
    """The alarm sections of a site file, as validated."""

    templates: Mapping[str, Sequence[TemplateAlarmConfig]]
    assets: Sequence[AssetConfig]
    alarms: Sequence[AlarmConfig]
    suppressions: Sequence[SuppressionConfig]
    communication: CommunicationAlarmsConfig
    notifications: NotificationsConfig


Problem = tuple[Location, str]
_Fail = Callable[[str | None, str], None]
"""Records a problem at a key of the alarm being built (None: the alarm itself)."""


class _Spots:
    """Spots of a document's locations (a site built in code has none: ``NOWHERE``)."""

    def __init__(self, document: LocatedDocument | None) -> None:
        self._document = document

    def at(self, location: Location, *, value: bool = False) -> SourceSpot:
        document = self._document
        if document is None:
            return NOWHERE
        if value:
            recorded = document.value_spots.get(location)
            if recorded is not None:
                return SourceSpot(document.file, recorded[0], recorded[1])
        line, column = document.spot_of(location)
        return SourceSpot(document.file, line, column)


def _first_part(name: str) -> str:
    return name.split(".", 1)[0]


def build_alarm_book(
    sections: AlarmSections,
    tags: Sequence[TagDef],
    devices: Sequence[str],
    areas: Collection[str],
    document: LocatedDocument | None,
) -> tuple[AlarmBook, list[Problem]]:
    """Expand the templates, add the communication alarms and check everything against the
    site's tags, devices and areas; return the definitions and every problem found (each at
    the location it was written). ``areas``: the names an alarm's area may take."""
    builder = _Builder(sections, tags, devices, areas, _Spots(document))
    book = builder.build()
    return book, builder.problems


class _Builder:
    def __init__(
        self,
        sections: AlarmSections,
        tags: Sequence[TagDef],
        devices: Sequence[str],
        areas: Collection[str],
        spots: _Spots,
    ) -> None:
        self.sections = sections
        self.tags = {tag.name: tag for tag in tags}
        self.devices = list(devices)
        self.known_devices = frozenset(devices)
        self.areas = frozenset(areas)
        self.spots = spots
        self.problems: list[Problem] = []
        self.names: dict[str, str] = {}
        """Alarm names seen, and where (for duplicates)."""

    def build(self) -> AlarmBook:
        sections = self.sections
        if not self._within_limit():
            return AlarmBook()
        alarms: list[AlarmDef] = []
        for index, entry in enumerate(sections.alarms):
            location: Location = ("alarms", index)
            definition = self._alarm(entry, location, entry.name, "", entry.area, None)
            if definition is not None:
                alarms.append(definition)
        for kind, template in sections.templates.items():
            self._check_template(kind, template)
        for index, asset in enumerate(sections.assets):
            alarms.extend(self._asset_alarms(index, asset))
        if sections.communication.enabled:
            alarms.extend(self._communication_alarms())
        return AlarmBook(
            alarms=tuple(alarms),
            suppressions=tuple(self._suppressions()),
            groups=tuple(self._groups()),
            routes=tuple(self._routes()),
            email=self._email(),
            webhook=self._webhook(),
        )

    def _within_limit(self) -> bool:
        """Count the alarms before building any, so a hostile file costs no memory."""
        sections = self.sections
        total = len(sections.alarms)
        if sections.communication.enabled:
            total += len(self.devices)
        for asset in sections.assets:
            total += len(sections.templates.get(asset.type, ()))
        if total > MAX_ALARMS:
            location: Location = ("assets",) if sections.assets else ("alarms",)
            self.problems.append(
                (
                    location,
                    f"{total:,} alarms after templates are expanded (at most {MAX_ALARMS:,})",
                )
            )
            return False
        return True

    def _check_template(self, kind: str, template: Sequence[TemplateAlarmConfig]) -> None:
        seen: set[str] = set()
        for index, entry in enumerate(template):
            if entry.name in seen:
                self.problems.append(
                    (
                        ("alarm_templates", kind, index, "name"),
                        f"duplicate template alarm name '{entry.name}'",
                    )
                )
            seen.add(entry.name)

    def _asset_alarms(self, index: int, asset: AssetConfig) -> Iterator[AlarmDef]:
        location: Location = ("assets", index)
        template = self.sections.templates.get(asset.type)
        if template is None and asset.type in PLAIN_ASSET_TYPES:
            # A plant item without alarms of its own (a treatment plant, a storage tank).
            if asset.overrides or asset.disable:
                key = "overrides" if asset.overrides else "disable"
                self.problems.append(
                    (
                        (*location, key),
                        f"asset type '{asset.type}' has no alarm template: "
                        "nothing to override or disable",
                    )
                )
            if asset.area:
                self._check_area((*location, "area"), asset.area)
            return
        if template is None:
            known = ", ".join(sorted(self.sections.templates)[:10]) or "none"
            self.problems.append(
                ((*location, "type"), f"unknown asset type '{asset.type}' (known: {known})")
            )
            return
        names = {entry.name for entry in template}
        expanded = {entry.name.replace(PLACEHOLDER, asset.name): entry.name for entry in template}

        def template_name(written: str) -> str | None:
            if written in names:
                return written
            return expanded.get(written)

        overrides: dict[str, OverrideConfig] = {}
        for key, override in asset.overrides.items():
            name = template_name(key)
            if name is None:
                self.problems.append(
                    (
                        (*location, "overrides", key),
                        f"override '{key}' names no alarm of asset type '{asset.type}'",
                    )
                )
            else:
                overrides[name] = override
        disabled: set[str] = set()
        for position, key in enumerate(asset.disable):
            name = template_name(key)
            if name is None:
                self.problems.append(
                    (
                        (*location, "disable", position),
                        f"'{key}' names no alarm of asset type '{asset.type}'",
                    )
                )
            else:
                disabled.add(name)
        if asset.area:
            self._check_area((*location, "area"), asset.area)
        for position, entry in enumerate(template):
            if entry.name in disabled:
                continue
            written = overrides.get(entry.name)
            effective = entry if written is None else _overridden(entry, written)
            definition = self._alarm(
                effective,
                ("alarm_templates", asset.type, position),
                entry.name.replace(PLACEHOLDER, asset.name),
                asset.name,
                asset.area or _first_part(asset.name),
                asset.name,
                area_checked=True,
            )
            if definition is not None:
                yield definition

    def _alarm(
        self,
        entry: _AlarmFields,
        location: Location,
        name: str,
        asset: str,
        area: str,
        expand: str | None,
        *,
        area_checked: bool = False,
    ) -> AlarmDef | None:
        """The definition of one alarm (``expand``: the asset whose name replaces
        ``{asset}``), or None with problems recorded at ``location``."""
        before = len(self.problems)
        prefix = f"asset '{expand}': " if expand is not None else ""

        def text(value: str) -> str:
            return value.replace(PLACEHOLDER, expand) if expand is not None else value

        def fail(key: str | None, message: str) -> None:
            where = location if key is None else (*location, key)
            self.problems.append((where, prefix + message))

        if expand is not None and DOTTED.match(name) is None:
            fail("name", f"alarm name '{name[:80]}' is not a dotted name of a-z, 0-9 and _")
        if name in self.names:
            fail("name", f"duplicate alarm name '{name}' (first at {self.names[name]})")
        else:
            self.names[name] = str(self.spots.at(location))
        if not area_checked and area:
            self._check_area((*location, "area"), area)
        tag_name = text(entry.tag)
        device = ""
        if entry.tag:
            tag = self._tag(tag_name, "tag", fail)
            if tag is not None:
                device = tag.device
                if entry.kind in _LIMIT_KINDS and tag.data_type not in _NUMERIC:
                    fail(
                        "tag",
                        f"a {entry.kind.value} alarm needs a numeric tag, "
                        f"'{tag_name}' is {tag.data_type.value}",
                    )
                if entry.kind is AlarmKind.DISCRETE:
                    problem = _state_problem(entry.state, tag)
                    if problem:
                        fail("state", problem)
        setpoint = text(entry.setpoint)
        if setpoint:
            tag = self._tag(setpoint, "setpoint", fail)
            if tag is not None and tag.data_type not in _NUMERIC:
                fail("setpoint", f"setpoint tag '{setpoint}' is not numeric")
        command = text(entry.command)
        if command:
            self._tag(command, "command", fail)
        if entry.kind is AlarmKind.COMM_LOSS:
            device = text(entry.device)
            if device not in self.known_devices:
                fail("device", f"unknown device '{device}'")
        expressions: dict[str, Expression | None] = {}
        for key in ("expression", "expect_change_when", "suppress_when"):
            written = getattr(entry, key)
            if written is None:
                expressions[key] = None
                continue
            spot = self.spots.at((*location, key), value=True)
            expression_text = text(written)
            syntax = expression_syntax_problem(expression_text)
            if syntax is not None:
                fail(key, f"expression: {syntax[1]} (character {syntax[0] + 1})")
            expressions[key] = Expression(expression_text, spot)
        if len(self.problems) > before:
            return None
        guidance = entry.guidance
        return AlarmDef(
            name=name,
            kind=entry.kind,
            priority=_PRIORITIES[entry.priority],
            tag=tag_name,
            device=device,
            limit=entry.limit,
            setpoint_tag=setpoint,
            command_tag=command,
            state=entry.state,
            expression=expressions["expression"],
            expect_change_when=expressions["expect_change_when"],
            delay_s=entry.delay,
            deadband=entry.deadband,
            on_delay_s=entry.on_delay,
            off_delay_s=entry.off_delay,
            latching=entry.latching,
            area=area or _first_part(name),
            asset=asset,
            message=text(entry.message),
            guidance=AlarmGuidance(
                text(guidance.cause), text(guidance.consequence), text(guidance.action)
            ),
            suppress_when=expressions["suppress_when"],
            spot=self.spots.at(location),
        )

    def _tag(self, name: str, key: str, fail: _Fail) -> TagDef | None:
        tag = self.tags.get(name)
        if tag is None:
            if DOTTED.match(name) is None:
                fail(key, f"'{name[:80]}' is not a tag name (a dotted name of a-z, 0-9 and _)")
            else:
                fail(key, f"unknown tag '{name}'")
        return tag

    def _check_area(self, location: Location, area: str) -> None:
        if area not in self.areas:
            self.problems.append((location, f"unknown area '{area}'"))

    def _communication_alarms(self) -> Iterator[AlarmDef]:
        priority = _PRIORITIES[self.sections.communication.priority]
        location: Location = ("communication_alarms",)
        for device in self.devices:
            name = f"{device}.comm"
            if name in self.names:
                self.problems.append(
                    (
                        location,
                        f"communication alarm '{name}' has the name of the alarm at "
                        f"{self.names[name]}",
                    )
                )
                continue
            self.names[name] = str(self.spots.at(location))
            yield AlarmDef(
                name=name,
                kind=AlarmKind.COMM_LOSS,
                priority=priority,
                device=device,
                area=_first_part(device),
                message=f"No communication with {device}",
                guidance=AlarmGuidance(
                    cause="The device does not answer: network, power or the device itself.",
                    consequence="Its values are not updated and it cannot be commanded; its "
                    "other alarms are suppressed meanwhile.",
                    action="Check the device's power and network link; send maintenance.",
                ),
                spot=self.spots.at(location),
            )

    def _suppressions(self) -> Iterator[AreaSuppressionDef]:
        for index, entry in enumerate(self.sections.suppressions):
            location: Location = ("alarm_suppression", index)
            self._check_area((*location, "area"), entry.area)
            syntax = expression_syntax_problem(entry.when)
            if syntax is not None:
                self.problems.append(
                    ((*location, "when"), f"expression: {syntax[1]} (character {syntax[0] + 1})")
                )
            yield AreaSuppressionDef(
                entry.area,
                Expression(entry.when, self.spots.at((*location, "when"), value=True)),
                self.spots.at(location),
            )

    def _groups(self) -> Iterator[OnCallGroupDef]:
        seen: set[str] = set()
        for index, group in enumerate(self.sections.notifications.groups):
            if group.name in seen:
                self.problems.append(
                    (("notifications", "groups", index, "name"), f"duplicate group '{group.name}'")
                )
            seen.add(group.name)
            yield OnCallGroupDef(group.name, tuple(group.emails), tuple(group.webhooks))

    def _routes(self) -> Iterator[NotificationRouteDef]:
        notifications = self.sections.notifications
        groups = {group.name for group in notifications.groups}
        seen: set[str] = set()
        for index, route in enumerate(notifications.routes):
            location: Location = ("notifications", "routes", index)
            if route.name in seen:
                self.problems.append(((*location, "name"), f"duplicate route '{route.name}'"))
            seen.add(route.name)
            for position, group in enumerate(route.groups):
                if group not in groups:
                    self.problems.append(
                        ((*location, "groups", position), f"unknown on-call group '{group}'")
                    )
            for position, area in enumerate(route.areas):
                self._check_area((*location, "areas", position), area)
            yield NotificationRouteDef(
                name=route.name,
                groups=tuple(route.groups),
                areas=tuple(route.areas),
                max_priority=_PRIORITIES[route.max_priority],
                escalate_after_s=route.escalate_after,
                quiet_hours=route.quiet_hours,
                quiet_below=_PRIORITIES[route.quiet_below],
            )
        email_groups = [group.name for group in notifications.groups if group.emails]
        if email_groups and notifications.email is None:
            self.problems.append(
                (
                    ("notifications",),
                    f"group '{email_groups[0]}' has e-mail addresses but notifications.email "
                    "(the SMTP server) is not set",
                )
            )

    def _email(self) -> EmailSettings | None:
        email = self.sections.notifications.email
        if email is None:
            return None
        return EmailSettings(
            host=email.host,
            port=email.port,
            sender=email.sender,
            starttls=email.starttls,
            username=email.username,
            password_env=email.password_env,
        )

    def _webhook(self) -> WebhookSettings | None:
        webhook = self.sections.notifications.webhook
        if webhook is None:
            if any(group.webhooks for group in self.sections.notifications.groups):
                return WebhookSettings(secret_env="")  # nothing is posted unsigned
            return None
        return WebhookSettings(
            secret_env=webhook.secret_env, attempts=webhook.attempts, backoff_s=webhook.backoff
        )


def _state_problem(state: object, tag: TagDef) -> str:
    """Why a discrete alarm's abnormal ``state`` cannot be a value of ``tag`` (empty: it can)."""
    kind = tag.data_type
    if kind is DataType.BOOL and not isinstance(state, bool):
        return f"tag '{tag.name}' is boolean: state must be true or false"
    if kind in _NUMERIC and (isinstance(state, bool) or not isinstance(state, int | float)):
        return f"tag '{tag.name}' is numeric: state must be a number"
    if kind in _NUMERIC and isinstance(state, float) and not math.isfinite(state):
        return "state must be finite"
    if kind is DataType.STRING and not isinstance(state, str):
        return f"tag '{tag.name}' is text: state must be a text"
    if kind is DataType.DATETIME:
        return f"tag '{tag.name}' holds times: a discrete alarm cannot watch it"
    return ""


def _overridden(entry: TemplateAlarmConfig, override: OverrideConfig) -> TemplateAlarmConfig:
    changes = {
        key: value
        for key, value in override.model_dump(exclude_none=True).items()
        if key != "guidance"
    }
    if override.guidance is not None:
        changes["guidance"] = override.guidance
    return entry.model_copy(update=changes)
