"""The vocabulary of automation: rules, triggers, actions, calculated tags and interlocks.

Rule files and the site file are parsed (``controlcenter.site``) into these frozen definitions;
the rules package compiles and runs them, the command pipeline enforces interlocks, the rule-set
versions store their text. Every definition carries the spot of the file it came from, so that
whoever finds a problem in it later (an expression that does not compile, an unknown tag) can
name ``file:line:column``. This module imports only the standard library and the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum

from controlcenter.model import CommandPriority, DataType, Value


@dataclass(frozen=True, slots=True)
class SourceSpot:
    """Where a definition was written: file, line and column, both counted from 1."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class SiteLocation:
    """Where the site is, for sun events and local time: degrees north and east, IANA zone."""

    latitude: float
    longitude: float
    timezone: str = "UTC"


NOWHERE = SourceSpot("<built-in>", 1, 1)
"""The spot of definitions made by the program itself (tests, benchmarks)."""


@dataclass(frozen=True, slots=True)
class Expression:
    """An expression in the rule language as written, and where: the spot of its first
    character, so that a column inside it maps onto the file."""

    text: str
    spot: SourceSpot = NOWHERE


class SunEvent(StrEnum):
    """The sun events a rule can be triggered by (civil twilight: the sun 6 degrees below the
    horizon)."""

    SUNRISE = "sunrise"
    SUNSET = "sunset"
    CIVIL_DAWN = "civil_dawn"
    CIVIL_DUSK = "civil_dusk"


@dataclass(frozen=True, slots=True)
class TagChangeTrigger:
    """Fires when one of ``tags`` changes value or quality; with a debounce, only once the
    tags have been still for that long."""

    tags: tuple[str, ...]
    debounce_s: float = 0.0
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class IntervalTrigger:
    """Fires every ``every_s`` seconds of the center's clock."""

    every_s: float
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """Fires on a five-field crontab schedule (minute hour day month weekday) in the site's
    time zone."""

    schedule: str
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class SunTrigger:
    """Fires at a sun event at the site's location, shifted by ``offset_s`` (negative:
    before)."""

    event: SunEvent
    offset_s: float = 0.0
    spot: SourceSpot = NOWHERE


Trigger = TagChangeTrigger | IntervalTrigger | CronTrigger | SunTrigger


@dataclass(frozen=True, slots=True)
class CommandAction:
    """Command ``tag`` to the value of ``value`` at ``priority``."""

    tag: str
    value: Expression
    priority: CommandPriority = CommandPriority.AUTOMATION
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class EventAction:
    """Raise an event in the journal; ``message`` may hold ``{expression}`` parts."""

    message: str
    severity: int = 500
    spot: SourceSpot = NOWHERE


Action = CommandAction | EventAction


class InputQualityPolicy(StrEnum):
    """Which input qualities a rule acts on."""

    GOOD = "good"
    """Act only when every input is Good (the default)."""
    GOOD_OR_UNCERTAIN = "good_or_uncertain"
    """Act on Uncertain inputs too; hold on Bad ones."""
    ANY = "any"
    """Act whatever the inputs' quality (the expression checks ``quality()`` itself)."""


@dataclass(frozen=True, slots=True)
class HysteresisControl:
    """Two-position control with a differential gap: switch ``output_tag`` on below
    ``on_below``, off above ``off_above``, keep it in between."""

    input_tag: str
    output_tag: str
    on_below: float
    off_above: float
    priority: CommandPriority = CommandPriority.AUTOMATION


@dataclass(frozen=True, slots=True)
class RuleDef:
    """One rule: when a trigger fires and the condition holds (for ``hold_for_s``), act."""

    name: str
    triggers: tuple[Trigger, ...] = ()
    condition: Expression | None = None
    """None: always true."""
    hold_for_s: float = 0.0
    """The ``for:`` duration the condition must hold before the rule acts."""
    actions: tuple[Action, ...] = ()
    description: str = ""
    owner: str = ""
    enabled: bool = True
    inputs_quality: InputQualityPolicy = InputQualityPolicy.GOOD
    min_command_interval_s: float = 10.0
    """A rule does not command one tag more often than this."""
    hysteresis: HysteresisControl | None = None
    """Set for the hysteresis rule kind, which has no condition or actions of its own."""
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class CalculatedTagDef:
    """A tag whose value is an expression of other tags, evaluated when an input changes."""

    name: str
    expression: Expression
    data_type: DataType = DataType.FLOAT
    unit: str = ""
    description: str = ""
    low: float | None = None
    high: float | None = None
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class RuleSource:
    """The full text of one rule file, as a version stores it."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class RuleSetDef:
    """A site's whole rule set: rules and calculated tags, and the identity the rules act as."""

    rules: tuple[RuleDef, ...] = ()
    calculated: tuple[CalculatedTagDef, ...] = ()
    identity: str = ""
    """The user whose role and areas authorise the rules' commands (granted by an engineer)."""
    sources: tuple[RuleSource, ...] = ()


@dataclass(frozen=True, slots=True)
class InterlockDef:
    """Blocks commands to ``tags`` while ``block_when`` holds; the rejection names it."""

    name: str
    tags: tuple[str, ...]
    """Tag names or ``fnmatch`` patterns (``water.ps1.pump*.run_cmd``)."""
    block_when: Expression
    message: str = ""
    applies_to: str = "any"
    """Which commanded values it blocks: ``any``, ``true`` (starts, openings), ``false``."""
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class AreaDef:
    """A part of the site (a domain, a district) whose tags a user may be allowed to command."""

    name: str
    tags: tuple[str, ...]
    """Tag names or ``fnmatch`` patterns."""


# --- the site's plant items and their places (displays, the map) ------------------------------


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A place on the earth (WGS 84 degrees)."""

    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class AssetDef:
    """A plant item: a booster station, a reservoir, a lighting cabinet, a substation, a
    building. Its tags are the tags whose names start with its name and a dot."""

    name: str
    """Dotted, the prefix of its tags: ``water.ps1``."""
    type: str
    """The asset type: ``booster_station``, ``reservoir``, ``metering_area``, ``lighting_cabinet``,
    ``substation``, ``heating_plant``, ``treatment_plant``, ``storage_tank``, ``building``..."""
    area: str
    label: str = ""
    """The name operators use (default: the asset's name)."""
    position: GeoPoint | None = None
    district: str = ""
    """The district (of ``DistrictDef``) the asset stands in, if any."""
    feeds: tuple[str, ...] = ()
    """The assets this one supplies (water: plant, stations, reservoirs, metering areas;
    heating: plant, substations): the edges of the domain schematics."""

    @property
    def title(self) -> str:
        """The label, or the name when the asset has none."""
        return self.label or self.name


@dataclass(frozen=True, slots=True)
class DistrictDef:
    """A district of the city drawn on the map: an outline and a name."""

    name: str
    label: str
    outline: tuple[GeoPoint, ...]
    """The polygon's corners, in order (closed implicitly)."""


# --- alarms (ISA-18.2 / IEC 62682; state names after OPC UA Part 9) ---------------------------


class AlarmPriority(IntEnum):
    """Four priorities, 1 the most urgent; EEMUA 191 aims at about 5 % / 15 % / 80 % of
    alarms for the top three below critical (high / medium / low)."""

    CRITICAL = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4


class AlarmKind(StrEnum):
    """What condition an alarm watches."""

    HIGH = "high"
    HIGH_HIGH = "high_high"
    LOW = "low"
    LOW_LOW = "low_low"
    DEVIATION = "deviation"
    """|tag - setpoint_tag| above ``limit``."""
    RATE = "rate_of_change"
    """|change of tag per minute| above ``limit``."""
    DISCRETE = "discrete"
    """tag equal to ``state``."""
    COMMAND_MISMATCH = "command_mismatch"
    """``command_tag`` on and ``tag`` (the feedback) not following after ``delay_s``
    ("failed to start"), or off and still running ("failed to stop")."""
    FROZEN = "frozen"
    """tag unchanged for ``delay_s`` while ``expect_change_when`` (if any) holds."""
    EXPRESSION = "expression"
    """``expression`` (the rule language) true."""
    COMM_LOSS = "comm_loss"
    """The device ``device`` cannot be reached: one alarm per device, not one per tag."""
    NIGHT_FLOW = "night_flow"
    """A metering area's minimum night flow (``tag``: its inflow) above its own baseline of
    earlier nights by more than ``limit`` (a share: 0.05 is 5 %): a leak."""


@dataclass(frozen=True, slots=True)
class AlarmGuidance:
    """What the master alarm database tells the operator: why, what if not, what to do."""

    cause: str = ""
    consequence: str = ""
    action: str = ""


@dataclass(frozen=True, slots=True)
class AlarmDef:
    """One alarm as engineered (after templates are expanded for their assets)."""

    name: str
    kind: AlarmKind
    priority: AlarmPriority = AlarmPriority.MEDIUM
    tag: str = ""
    """The measured tag (the feedback for a command mismatch); empty for comm loss."""
    device: str = ""
    """Comm loss: the device; otherwise the measured tag's device (filled from the site)."""
    limit: float | None = None
    """Limit kinds: the limit; deviation: the largest allowed |difference|; rate: per minute."""
    setpoint_tag: str = ""
    command_tag: str = ""
    state: bool | float | str | None = None
    """Discrete: the value that is abnormal."""
    expression: Expression | None = None
    expect_change_when: Expression | None = None
    """Frozen: only while this holds is a still value abnormal (None: always)."""
    delay_s: float = 0.0
    """Command mismatch: the start delay; frozen: how long without change."""
    deadband: float = 0.0
    """The condition clears only once the value is back inside the limit by this much."""
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    latching: bool = False
    """Stays active (latched) after the condition clears until an operator resets it."""
    area: str = ""
    asset: str = ""
    message: str = ""
    guidance: AlarmGuidance = AlarmGuidance()
    suppress_when: Expression | None = None
    """Suppression by design: while this holds the alarm is suppressed (not shown, not
    notified, still recorded)."""
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class AreaSuppressionDef:
    """Suppression by design of every alarm of an area while ``when`` holds."""

    area: str
    when: Expression
    spot: SourceSpot = NOWHERE


@dataclass(frozen=True, slots=True)
class OnCallGroupDef:
    """People notified together: e-mail addresses and webhook URLs."""

    name: str
    emails: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NotificationRouteDef:
    """Alarms of ``areas`` (empty: all) at ``max_priority`` or more urgent go to ``groups`` in
    order: the first at once, each next one when the alarm stays unacknowledged for
    ``escalate_after_s``. ``quiet_hours`` (local "22:00-07:00") hold back alarms of priority
    ``quiet_below`` and less urgent until they end."""

    name: str
    groups: tuple[str, ...]
    areas: tuple[str, ...] = ()
    max_priority: AlarmPriority = AlarmPriority.LOW
    escalate_after_s: float = 900.0
    quiet_hours: str = ""
    quiet_below: AlarmPriority = AlarmPriority.LOW


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """How to reach the mail relay. The password is never in the configuration: ``password_env``
    names the environment variable that holds it (empty: no login)."""

    host: str
    port: int = 25
    sender: str = "scada@localhost"
    starttls: bool = False
    username: str = ""
    password_env: str = ""
    timeout_s: float = 10.0
    attempts: int = 3
    """Tries per message when the relay cannot be reached or answers 4xx (transient, RFC 5321
    4.2.1); a 5xx answer is final."""
    backoff_s: float = 2.0
    """The wait before the second try; doubled before each further one."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How webhooks are signed and retried. The secret is never in the configuration:
    ``secret_env`` names the environment variable that holds it."""

    secret_env: str
    timeout_s: float = 10.0
    attempts: int = 5
    backoff_s: float = 2.0
    """The wait before the second try; doubled before each further one."""


class AlarmDisplayState(StrEnum):
    """The state an operator sees, after OPC UA Part 9 (5.8) and ISA-18.2 (figure 7): the
    first that applies of out of service, shelved, suppressed, latched, active unacknowledged,
    active acknowledged, returned to normal unacknowledged, normal."""

    NORMAL = "normal"
    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    RETURNED_UNACKNOWLEDGED = "returned_unacknowledged"
    LATCHED = "latched"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class AlarmAction(StrEnum):
    """What changed an alarm: its condition, time, or a person."""

    ACTIVATE = "activate"
    CLEAR = "clear"
    ACKNOWLEDGE = "acknowledge"
    RESET = "reset"
    """An operator resets a latched alarm whose condition has cleared."""
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELF_EXPIRED = "shelf_expired"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    COMMENT = "comment"


@dataclass(frozen=True, slots=True)
class AlarmState:
    """Everything the center remembers of one alarm (persisted: it survives a restart)."""

    name: str
    active: bool = False
    """The condition, after on- and off-delays."""
    acknowledged: bool = True
    latched: bool = False
    """A latching alarm whose condition cleared, waiting for an operator's reset."""
    shelved_by: str = ""
    shelve_reason: str = ""
    shelved_until: datetime | None = None
    """Timed shelving: when the shelf expires (None with ``one_shot`` or when not shelved)."""
    one_shot: bool = False
    """Shelved until the condition next clears."""
    suppressed: bool = False
    """Suppressed by design (an expression or the device's communication alarm)."""
    suppressed_reason: str = ""
    out_of_service_by: str = ""
    out_of_service_reason: str = ""
    activated_at: datetime | None = None
    changed_at: datetime | None = None
    value: Value | None = None
    """The value that raised the alarm."""
    message: str = ""

    @property
    def shelved(self) -> bool:
        """Whether an operator has shelved the alarm."""
        return bool(self.shelved_by)

    @property
    def out_of_service(self) -> bool:
        """Whether maintenance has taken the alarm out of service."""
        return bool(self.out_of_service_by)

    @property
    def display(self) -> AlarmDisplayState:
        """The state shown to operators (see ``AlarmDisplayState``)."""
        if self.out_of_service:
            return AlarmDisplayState.OUT_OF_SERVICE
        if self.shelved:
            return AlarmDisplayState.SHELVED
        if self.suppressed:
            return AlarmDisplayState.SUPPRESSED
        if self.latched:
            return AlarmDisplayState.LATCHED
        if self.active:
            if self.acknowledged:
                return AlarmDisplayState.ACKNOWLEDGED
            return AlarmDisplayState.UNACKNOWLEDGED
        if not self.acknowledged:
            return AlarmDisplayState.RETURNED_UNACKNOWLEDGED
        return AlarmDisplayState.NORMAL


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """One journaled change of an alarm: what, when, who and why, and the states around it."""

    time: datetime
    alarm: str
    action: AlarmAction
    before: AlarmDisplayState
    after: AlarmDisplayState
    user: str = ""
    comment: str = ""
    priority: AlarmPriority = AlarmPriority.MEDIUM
    area: str = ""
    tag: str = ""
    device: str = ""
    value: Value | None = None
