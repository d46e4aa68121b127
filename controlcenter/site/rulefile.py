"""Rule files: the site's rules and calculated tags, parsed into ``RuleSetDef`` with their spots.

A site names one or more rule files (``automation.rule_files``); together they are the site's
rule set. Each file is read as a site file is (``yamlsource``: size, characters, YAML subset,
nesting and alias limits), validated by strict pydantic models (unknown keys are refused with
the closest known key), and turned into the frozen definitions of ``controlcenter.automation``.
Every problem of every file is reported at once as ``file:line:column: location: reason``.

Expressions are kept as text with the spot of their first character (see
``yamlsource.value_spot``: a plain scalar where it starts; a quoted one a column after its
quote; a block scalar on the line after its ``|`` or ``>``, at its indentation) so that the
rules package, which compiles them, can name the file, line and column of a problem inside
one. An event action's spot is that of its message's first character, for the same reason
with its ``{expression}`` parts. This module checks only what needs no compiling: the format,
names, durations, limits, and (``check_rule_set_against_site``) the tags the rules name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from controlcenter.automation import (
    Action,
    CalculatedTagDef,
    CommandAction,
    CronTrigger,
    EventAction,
    Expression,
    HysteresisControl,
    InputQualityPolicy,
    IntervalTrigger,
    RuleDef,
    RuleSetDef,
    RuleSource,
    SourceSpot,
    SunEvent,
    SunTrigger,
    TagChangeTrigger,
    Trigger,
)
from controlcenter.model import CommandPriority, DataType, TagDef
from controlcenter.site.config import (
    CENTER_VAR_DIRECTORY,
    DOTTED_NAME,
    MAX_RULE_FILES,
    load_site,
    source_spot,
)
from controlcenter.site.fields import (
    DAY_S,
    ExpressionText,
    FiniteFloat,
    Integer,
    Name,
    Text,
    parse_duration,
)
from controlcenter.site.validation import ModelVocabulary, problems_from_validation_error
from controlcenter.site.yamlsource import (
    MAX_PROBLEMS,
    LocatedDocument,
    Location,
    SourceFileError,
    SourceProblem,
    collector_paused,
    decode_source,
    parse_located_yaml,
    read_source_bytes,
)

MAX_RULES = 5000
"""Most rules in a site's rule set (all files together)."""
MAX_CALCULATED = 2000
"""Most calculated tags in a site's rule set (all files together)."""
MAX_TRIGGERS = 100
"""Most triggers of one rule."""
MAX_ACTIONS = 100
"""Most actions of one rule."""
MAX_TRIGGER_TAGS = 1000
"""Most tags one tag-change trigger watches."""


_Duration = Annotated[FiniteFloat, BeforeValidator(parse_duration)]
"""A duration in seconds, written as a number or a text with a unit (``parse_duration``)."""
SunOffset = Annotated[_Duration, Field(ge=-12 * 3600.0, le=12 * 3600.0)]
Debounce = Annotated[_Duration, Field(ge=0.0, le=DAY_S)]
Every = Annotated[_Duration, Field(ge=1.0, le=7 * DAY_S)]
HoldFor = Annotated[_Duration, Field(ge=0.0, le=7 * DAY_S)]
CommandInterval = Annotated[_Duration, Field(ge=0.0, le=DAY_S)]

TagName = Annotated[Name, Field(pattern=DOTTED_NAME)]
"""A tag's dotted name (a site tag or a calculated tag)."""
Priority = Literal["manual_operator", "safety", "automation", "schedule"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SunTriggerConfig(_Strict):
    """``sun: civil_dusk`` with an optional ``offset`` (negative: before)."""

    sun: Literal["sunrise", "sunset", "civil_dawn", "civil_dusk"]
    offset: SunOffset = 0.0


class TagTriggerConfig(_Strict):
    """``tag: name`` or ``tags: [a, b]``, with an optional ``debounce``."""

    tag: TagName | None = None
    tags: list[TagName] | None = Field(default=None, min_length=1, max_length=MAX_TRIGGER_TAGS)
    debounce: Debounce = 0.0

    @model_validator(mode="after")
    def _one_of_tag_or_tags(self) -> TagTriggerConfig:
        if (self.tag is None) == (self.tags is None):
            raise ValueError("a tag trigger has either 'tag' or 'tags', not both")
        return self

    @property
    def watched(self) -> tuple[str, ...]:
        """The tags watched."""
        return (self.tag,) if self.tag is not None else tuple(self.tags or ())


class IntervalTriggerConfig(_Strict):
    """``every: 5m`` (at least one second, at most a week)."""

    every: Every


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# A five-field crontab (POSIX): minute, hour, day of month, month, weekday.
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("weekday", 0, 7, _WEEKDAYS),
)
_CRON_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d{1,3}))?$")


def check_crontab(schedule: str) -> str:
    """Return ``schedule`` if it is a five-field crontab; raise ValueError naming the field."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(
            f"a crontab has five fields (minute hour day month weekday), not {len(fields)}"
        )
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.lower().split(","):
            match = _CRON_ITEM.match(item)
            if match is None:
                raise ValueError(f"{what} field '{text[:20]}' is not a crontab field")
            span, step = match.group(1), match.group(2)
            if step is not None and int(step) < 1:
                raise ValueError(f"{what} step must be 1 or more")
            if span == "*":
                continue
            ends = [_cron_value(part, what, low, high, names) for part in span.split("-")]
            if len(ends) == 2 and ends[0] > ends[1]:
                raise ValueError(f"{what} range '{span}' runs backwards")
    return schedule


def _cron_value(text: str, what: str, low: int, high: int, names: Sequence[str]) -> int:
    if text in names:
        return names.index(text) + (1 if what == "month" else 0)
    if not text.isdigit() or not low <= int(text) <= high:
        allowed = f"{low}-{high}" + (f" or {names[0]}..{names[-1]}" if names else "")
        raise ValueError(f"{what} '{text}' is not {allowed}")
    return int(text)


class CronTriggerConfig(_Strict):
    """``cron: "0 22 * * 1-5"`` in the site's time zone."""

    cron: Name

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        return check_crontab(value)


# Union tags never equal a key, so that they can be told from keys in an error's location.
_TRIGGER_KEYS = {
    "sun": "sun trigger",
    "tag": "tag trigger",
    "tags": "tag trigger",
    "every": "interval trigger",
    "cron": "cron trigger",
}


def _trigger_kind(value: Any) -> str | None:
    """Which trigger a mapping is, by its key; None (refused) for none or several."""
    if not isinstance(value, dict):
        return None
    kinds = {_TRIGGER_KEYS[key] for key in value if key in _TRIGGER_KEYS}
    return kinds.pop() if len(kinds) == 1 else None


TriggerConfig = Annotated[
    Annotated[SunTriggerConfig, Tag("sun trigger")]
    | Annotated[TagTriggerConfig, Tag("tag trigger")]
    | Annotated[IntervalTriggerConfig, Tag("interval trigger")]
    | Annotated[CronTriggerConfig, Tag("cron trigger")],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger_kind",
        custom_error_message="a trigger is a mapping with exactly one of sun, tag (or tags), "
        "every or cron",
    ),
]


class CommandActionConfig(_Strict):
    """``command: tag`` with a ``value`` expression at a ``priority``."""

    command: TagName
    value: ExpressionText
    priority: Priority = "automation"


class EventActionConfig(_Strict):
    """``event: text`` (``{expression}`` parts are evaluated) with a ``severity``."""

    event: Text = Field(min_length=1)
    severity: Integer = Field(default=500, ge=1, le=1000)


def _action_kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    kinds = {f"{key} action" for key in ("command", "event") if key in value}
    return kinds.pop() if len(kinds) == 1 else None


ActionConfig = Annotated[
    Annotated[CommandActionConfig, Tag("command action")]
    | Annotated[EventActionConfig, Tag("event action")],
    Discriminator(
        _action_kind,
        custom_error_type="action_kind",
        custom_error_message="an action is a mapping with exactly one of command or event",
    ),
]


class RuleConfig(_Strict):
    """An ordinary rule: when a trigger fires and the condition holds (``for`` long), act."""

    name: TagName
    description: Text = ""
    owner: Name = ""
    enabled: StrictBool = True
    triggers: list[TriggerConfig] = Field(min_length=1, max_length=MAX_TRIGGERS)
    condition: ExpressionText | None = None
    hold_for: HoldFor = Field(default=0.0, alias="for")
    inputs: Literal["good", "good_or_uncertain", "any"] = "good"
    min_command_interval: CommandInterval = 10.0
    actions: list[ActionConfig] = Field(min_length=1, max_length=MAX_ACTIONS)

    @model_validator(mode="after")
    def _hold_needs_condition(self) -> RuleConfig:
        if self.hold_for > 0 and self.condition is None:
            raise ValueError("'for' needs a condition to hold")
        return self


class HysteresisConfig(_Strict):
    """Two-position control with a differential gap: on below one level, off above another."""

    name: TagName
    kind: Literal["hysteresis"]
    description: Text = ""
    owner: Name = ""
    enabled: StrictBool = True
    input: TagName = Field(description="numeric tag watched")
    output: TagName = Field(description="writable boolean tag commanded")
    on_below: FiniteFloat
    off_above: FiniteFloat
    priority: Priority = "automation"
    min_command_interval: CommandInterval = 10.0

    @model_validator(mode="after")
    def _gap(self) -> HysteresisConfig:
        if self.on_below >= self.off_above:
            raise ValueError("on_below must be lower than off_above")
        return self


def _rule_kind(value: Any) -> str | None:
    """``hysteresis`` for that kind, ``rule`` without a kind; None (refused) otherwise."""
    if not isinstance(value, dict):
        return None
    kind = value.get("kind")
    if kind is None and "kind" not in value:
        return "ordinary rule"
    return "hysteresis rule" if kind == "hysteresis" else None


RuleEntryConfig = Annotated[
    Annotated[RuleConfig, Tag("ordinary rule")]
    | Annotated[HysteresisConfig, Tag("hysteresis rule")],
    Discriminator(
        _rule_kind,
        custom_error_type="rule_kind",
        custom_error_message="a rule is a mapping; its kind is 'hysteresis' or absent "
        "(an ordinary rule with triggers and actions)",
    ),
]


class CalculatedConfig(_Strict):
    """A calculated tag: an expression of other tags."""

    name: TagName
    expression: ExpressionText
    type: Literal["float", "int", "bool", "string"] = "float"
    unit: Name = ""
    description: Text = ""
    range: tuple[FiniteFloat, FiniteFloat] | None = None

    @model_validator(mode="after")
    def _numeric_range(self) -> CalculatedConfig:
        if self.range is not None:
            if self.type not in ("float", "int"):
                raise ValueError(f"only numeric tags can have a range, not {self.type}")
            if self.range[0] >= self.range[1]:
                raise ValueError("range must be [low, high] with low < high")
        return self


class RuleFileConfig(_Strict):
    """One rule file: calculated tags and rules (either may be absent)."""

    calculated: list[CalculatedConfig] = Field(default_factory=list, max_length=MAX_CALCULATED)
    rules: list[RuleEntryConfig] = Field(default_factory=list, max_length=MAX_RULES)


RULE_FILE_VOCABULARY = ModelVocabulary(
    root=RuleFileConfig,
    sections={
        "calculated": [CalculatedConfig],
        "rules": [RuleConfig, HysteresisConfig],
        "triggers": [
            SunTriggerConfig,
            TagTriggerConfig,
            IntervalTriggerConfig,
            CronTriggerConfig,
        ],
        "actions": [CommandActionConfig, EventActionConfig],
    },
    union_tags=frozenset(
        {
            *_TRIGGER_KEYS.values(),
            "command action",
            "event action",
            "ordinary rule",
            "hysteresis rule",
        }
    ),
    error_keys={"rule_kind": "kind"},
)
"""How a rule file's validation errors are told (see ``ModelVocabulary``)."""


def load_rule_files(paths: Sequence[Path]) -> RuleSetDef:
    """Read and parse a site's rule files into one rule set; raise SourceFileError listing
    every problem of every file (``file:line:column``). Each source is named by its path as
    given."""
    problems: list[SourceProblem] = []
    sources: list[RuleSource] = []
    if len(paths) > MAX_RULE_FILES:
        raise SourceFileError(
            [SourceProblem(str(paths[0]), None, "", f"more than {MAX_RULE_FILES} rule files")]
        )
    for path in paths:
        try:
            text = decode_source(str(path), read_source_bytes(path))
        except SourceFileError as err:
            problems.extend(err.problems)
            continue
        sources.append(RuleSource(str(path), text))
    try:
        rule_set = parse_rule_sources(sources)
    except SourceFileError as err:
        problems.extend(err.problems)
    if problems:
        # In the order the files are named (a file's unreadable bytes next to its neighbours').
        order = {str(path): index for index, path in enumerate(paths)}
        problems.sort(key=lambda problem: order.get(problem.file, len(order)))
        raise SourceFileError(_bounded(problems))
    return rule_set


def parse_rule_sources(sources: Sequence[RuleSource]) -> RuleSetDef:
    """Parse rule files' texts (e.g. a stored version of a rule set) into one rule set; raise
    SourceFileError listing every problem with its file, line and column."""
    if len(sources) > MAX_RULE_FILES:
        raise SourceFileError(
            [SourceProblem(sources[0].name, None, "", f"more than {MAX_RULE_FILES} rule files")]
        )
    with collector_paused():
        return _parse_rule_sources(sources)


def _parse_rule_sources(sources: Sequence[RuleSource]) -> RuleSetDef:
    problems: list[SourceProblem] = []
    parsed: list[tuple[LocatedDocument, RuleFileConfig]] = []
    names = [source.name for source in sources]
    for index, source in enumerate(sources):
        if source.name in names[:index]:
            problems.append(SourceProblem(source.name, None, "", "the rule file is named twice"))
            continue
        try:
            document = parse_located_yaml(source.name, source.text, record_values=True)
        except SourceFileError as err:
            problems.extend(err.problems)
            continue
        data = {} if document.data is None else document.data  # an empty file: no rules
        if not isinstance(data, dict):
            problems.append(
                document.problem((), "a rule file is a mapping with 'rules' and 'calculated' keys")
            )
            continue
        try:
            parsed.append((document, RuleFileConfig.model_validate(data)))
        except ValidationError as err:
            problems.extend(problems_from_validation_error(document, err, RULE_FILE_VOCABULARY))
    problems.extend(itertools.islice(_rule_set_problems(parsed), MAX_PROBLEMS + 1))
    if problems:
        raise SourceFileError(_bounded(problems))
    rules: list[RuleDef] = []
    calculated: list[CalculatedTagDef] = []
    for document, config in parsed:
        calculated.extend(
            _calculated_def(document, index, entry) for index, entry in enumerate(config.calculated)
        )
        rules.extend(_rule_def(document, index, entry) for index, entry in enumerate(config.rules))
    return RuleSetDef(rules=tuple(rules), calculated=tuple(calculated), sources=tuple(sources))


def _bounded(problems: list[SourceProblem]) -> list[SourceProblem]:
    """At most ``MAX_PROBLEMS`` problems, and a last line saying how many were left out."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    shown = problems[:MAX_PROBLEMS]
    left = len(problems) - MAX_PROBLEMS
    return [
        *shown,
        SourceProblem(problems[MAX_PROBLEMS].file, None, "", f"{left:,} more not shown"),
    ]


def _rule_set_problems(
    parsed: Sequence[tuple[LocatedDocument, RuleFileConfig]],
) -> Iterator[SourceProblem]:
    """Names defined twice across the files, and the set's size limits."""
    first_rule: dict[str, SourceSpot] = {}
    first_calculated: dict[str, SourceSpot] = {}
    rule_count = calculated_count = 0
    for document, config in parsed:
        for index, calculated in enumerate(config.calculated):
            calculated_count += 1
            if calculated_count == MAX_CALCULATED + 1:
                yield document.problem(
                    ("calculated", index),
                    f"the rule set has more than {MAX_CALCULATED:,} calculated tags",
                )
            yield from _duplicate(
                document, ("calculated", index), calculated.name, "calculated tag", first_calculated
            )
        for index, rule in enumerate(config.rules):
            rule_count += 1
            if rule_count == MAX_RULES + 1:
                yield document.problem(
                    ("rules", index), f"the rule set has more than {MAX_RULES:,} rules"
                )
            yield from _duplicate(document, ("rules", index), rule.name, "rule", first_rule)


def _duplicate(
    document: LocatedDocument,
    location: Location,
    name: str,
    what: str,
    first: dict[str, SourceSpot],
) -> Iterator[SourceProblem]:
    spot = source_spot(document, (*location, "name"))
    earlier = first.setdefault(name, spot)
    if earlier is not spot:
        yield document.problem(
            (*location, "name"), f"duplicate {what} name '{name}' (first at {earlier})"
        )


def _expression(document: LocatedDocument, location: Location, text: str) -> Expression:
    return Expression(text, source_spot(document, location, value=True))


def _calculated_def(
    document: LocatedDocument, index: int, entry: CalculatedConfig
) -> CalculatedTagDef:
    location: Location = ("calculated", index)
    low, high = entry.range if entry.range is not None else (None, None)
    return CalculatedTagDef(
        name=entry.name,
        expression=_expression(document, (*location, "expression"), entry.expression),
        data_type=DataType(entry.type),
        unit=entry.unit,
        description=entry.description,
        low=low,
        high=high,
        spot=source_spot(document, location),
    )


def _rule_def(
    document: LocatedDocument, index: int, entry: RuleConfig | HysteresisConfig
) -> RuleDef:
    location: Location = ("rules", index)
    spot = source_spot(document, location)
    if isinstance(entry, HysteresisConfig):
        return RuleDef(
            name=entry.name,
            description=entry.description,
            owner=entry.owner,
            enabled=entry.enabled,
            min_command_interval_s=entry.min_command_interval,
            hysteresis=HysteresisControl(
                input_tag=entry.input,
                output_tag=entry.output,
                on_below=entry.on_below,
                off_above=entry.off_above,
                priority=CommandPriority[entry.priority.upper()],
            ),
            spot=spot,
        )
    condition = (
        _expression(document, (*location, "condition"), entry.condition)
        if entry.condition is not None
        else None
    )
    return RuleDef(
        name=entry.name,
        triggers=tuple(
            _trigger_def(document, (*location, "triggers", position), trigger)
            for position, trigger in enumerate(entry.triggers)
        ),
        condition=condition,
        hold_for_s=entry.hold_for,
        actions=tuple(
            _action_def(document, (*location, "actions", position), action)
            for position, action in enumerate(entry.actions)
        ),
        description=entry.description,
        owner=entry.owner,
        enabled=entry.enabled,
        inputs_quality=InputQualityPolicy(entry.inputs),
        min_command_interval_s=entry.min_command_interval,
        spot=spot,
    )


def _trigger_def(
    document: LocatedDocument,
    location: Location,
    trigger: SunTriggerConfig | TagTriggerConfig | IntervalTriggerConfig | CronTriggerConfig,
) -> Trigger:
    spot = source_spot(document, location)
    if isinstance(trigger, SunTriggerConfig):
        return SunTrigger(SunEvent(trigger.sun), trigger.offset, spot)
    if isinstance(trigger, TagTriggerConfig):
        return TagChangeTrigger(trigger.watched, trigger.debounce, spot)
    if isinstance(trigger, IntervalTriggerConfig):
        return IntervalTrigger(trigger.every, spot)
    return CronTrigger(trigger.cron, spot)


def _action_def(
    document: LocatedDocument,
    location: Location,
    action: CommandActionConfig | EventActionConfig,
) -> Action:
    if isinstance(action, CommandActionConfig):
        return CommandAction(
            tag=action.command,
            value=_expression(document, (*location, "value"), action.value),
            priority=CommandPriority[action.priority.upper()],
            spot=source_spot(document, location),
        )
    # The message's own spot, so that a column inside one of its {parts} maps onto the file.
    return EventAction(
        action.event, action.severity, source_spot(document, (*location, "event"), value=True)
    )


def check_rule_set_against_site(
    rule_set: RuleSetDef, tags: Iterable[TagDef]
) -> list[SourceProblem]:
    """What a rule set names that the site does not have, each at its spot: trigger tags that
    are neither site nor calculated tags, commands to unknown or read-only tags, a hysteresis
    input that is unknown or not numeric, an output that is unknown, read-only or not boolean,
    and calculated tags named as site tags. Expressions are the rules package's to check."""
    site_tags = {tag.name: tag for tag in tags}
    calculated = {definition.name: definition for definition in rule_set.calculated}
    problems: list[SourceProblem] = []
    for definition in rule_set.calculated:
        if definition.name in site_tags:
            problems.append(
                _at(definition.spot, f"calculated tag '{definition.name}' has a site tag's name")
            )
    for rule in rule_set.rules:
        problems.extend(_rule_problems(rule, site_tags, calculated))
    return problems


def _rule_problems(
    rule: RuleDef, site_tags: dict[str, TagDef], calculated: dict[str, CalculatedTagDef]
) -> Iterator[SourceProblem]:
    prefix = f"rule '{rule.name}'"
    for trigger in rule.triggers:
        if isinstance(trigger, TagChangeTrigger):
            for tag in trigger.tags:
                if tag not in site_tags and tag not in calculated:
                    yield _at(trigger.spot, f"{prefix}: trigger tag '{tag}' is unknown")
    for action in rule.actions:
        if isinstance(action, CommandAction):
            problem = _commandable(action.tag, site_tags, calculated, boolean=False)
            if problem:
                yield _at(action.spot, f"{prefix}: command tag '{action.tag}' {problem}")
    control = rule.hysteresis
    if control is None:
        return
    watched = site_tags.get(control.input_tag)
    watched_type = watched.data_type if watched is not None else None
    if watched is None and control.input_tag in calculated:
        watched_type = calculated[control.input_tag].data_type
    if watched_type is None:
        yield _at(rule.spot, f"{prefix}: input tag '{control.input_tag}' is unknown")
    elif watched_type not in (DataType.FLOAT, DataType.INT):
        yield _at(rule.spot, f"{prefix}: input tag '{control.input_tag}' is not numeric")
    problem = _commandable(control.output_tag, site_tags, calculated, boolean=True)
    if problem:
        yield _at(rule.spot, f"{prefix}: output tag '{control.output_tag}' {problem}")


def _commandable(
    name: str,
    site_tags: dict[str, TagDef],
    calculated: dict[str, CalculatedTagDef],
    *,
    boolean: bool,
) -> str | None:
    """Why a tag cannot be commanded (None: it can)."""
    tag = site_tags.get(name)
    if tag is None:
        return "is a calculated tag (not writable)" if name in calculated else "is unknown"
    if not tag.writable:
        return "is not writable"
    if boolean and tag.data_type is not DataType.BOOL:
        return "is not boolean"
    return None


def _at(spot: SourceSpot, message: str) -> SourceProblem:
    return SourceProblem(spot.file, spot.line, "", message, spot.column)


def check_site_and_rules(path: Path, var_directory: Path = CENTER_VAR_DIRECTORY) -> list[str]:
    """Every problem of a site file and of the rule files it names (and of what those name
    of the site), one ``file:line:column: reason`` line each; empty when all are valid.
    Expressions are not compiled here (the rules package does that)."""
    try:
        site = load_site(path, var_directory)
        rule_set = load_rule_files(site.rule_file_paths())
    except SourceFileError as err:
        return [str(problem) for problem in err.problems]
    return [str(problem) for problem in check_rule_set_against_site(rule_set, site.tag_defs())]
