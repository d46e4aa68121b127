"""Compiling a rule set: every expression, trigger and target checked before anything runs.

A rule set is activated only whole and only when it has no problem at all; ``compile_rule_set``
collects every problem (not just the first) with its ``file:line:column``, so an engineer fixes a
file in one pass. Calculated tags are compiled first and ordered so that each is computed after
the calculated tags it reads; rules may read them like any site tag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from controlcenter.automation import (
    CalculatedTagDef,
    CommandAction,
    CronTrigger,
    EventAction,
    Expression,
    IntervalTrigger,
    RuleDef,
    RuleSetDef,
    SiteLocation,
    SourceSpot,
    SunTrigger,
    TagChangeTrigger,
)
from controlcenter.model import CommandPriority, DataType, TagDef
from rules.expressions import (
    CompiledExpression,
    ExpressionCompiler,
    ExpressionError,
    TagSignature,
    ValueKind,
)
from rules.hysteresis import HysteresisRule
from rules.schedule import CronSchedule, ScheduleError, SunSchedule

CALCULATED_DEVICE = "calculated"
"""The device name of calculated tags' ``TagDef``s: they have no field device."""

_VALUE_KINDS: Mapping[DataType, ValueKind] = {
    DataType.FLOAT: ValueKind.NUMBER,
    DataType.INT: ValueKind.NUMBER,
    DataType.BOOL: ValueKind.BOOL,
    DataType.STRING: ValueKind.STRING,
}


class RuleSetError(Exception):
    """A rule set that cannot be activated; ``problems`` lists every problem, in file order."""

    def __init__(self, problems: Sequence[ExpressionError]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (p.spot.file, p.spot.line, p.spot.column, p.reason)
        )
        count = len(self.problems)
        lines = "\n".join(str(problem) for problem in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the rule set:\n{lines}")


@dataclass(frozen=True, slots=True, eq=False)
class CompiledCommandAction:
    """Command ``tag`` (of ``data_type``) to the value of ``value`` at ``priority``."""

    tag: str
    value: CompiledExpression
    priority: CommandPriority
    data_type: DataType


@dataclass(frozen=True, slots=True, eq=False)
class CompiledEventAction:
    """Journal an event whose message is ``parts`` joined (text, and expressions evaluated)."""

    parts: tuple[str | CompiledExpression, ...]
    severity: int


CompiledAction = CompiledCommandAction | CompiledEventAction

TimedSchedule = IntervalTrigger | CronSchedule | SunSchedule


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready to evaluate: its expressions compiled and its triggers resolved."""

    definition: RuleDef
    condition: CompiledExpression | None
    actions: tuple[CompiledAction, ...]
    hysteresis: HysteresisRule | None
    change_triggers: tuple[TagChangeTrigger, ...]
    timed_triggers: tuple[TimedSchedule, ...]
    inputs: frozenset[str]
    """The tags whose quality the rule's input-quality policy judges (values it reads)."""
    watched: frozenset[str]
    """Every tag whose change matters to the rule: trigger tags, inputs, command targets."""
    targets: frozenset[str]
    """The tags it commands."""

    @property
    def name(self) -> str:
        """The rule's unique name."""
        return self.definition.name


@dataclass(frozen=True, slots=True, eq=False)
class CompiledCalculatedTag:
    """A calculated tag ready to evaluate."""

    definition: CalculatedTagDef
    expression: CompiledExpression
    inputs: frozenset[str]
    """Every tag the expression names (values, qualities, windows): a change re-evaluates it."""

    @property
    def name(self) -> str:
        """The calculated tag's name."""
        return self.definition.name


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRuleSet:
    """A whole rule set, checked and compiled: what the evaluator and the engine run."""

    definition: RuleSetDef
    rules: tuple[CompiledRule, ...]
    calculated: tuple[CompiledCalculatedTag, ...]
    """In evaluation order: each after every calculated tag it reads."""
    site: SiteLocation
    data_types: Mapping[str, DataType]
    """The data type of every tag the set may read (site tags and calculated tags)."""
    window_needs: Mapping[str, float] = field(default_factory=dict)
    """Tag -> the longest window (seconds) any expression of the set needs of it."""

    @property
    def identity(self) -> str:
        """The user the rules' commands are requested by."""
        return self.definition.identity

    def calculated_tag_defs(self) -> tuple[TagDef, ...]:
        """The calculated tags as tag definitions, so they are historized and shown like any."""
        return tuple(
            TagDef(
                name=calc.name,
                device=CALCULATED_DEVICE,
                address=calc.definition.expression.text,
                data_type=calc.definition.data_type,
                unit=calc.definition.unit,
                low=calc.definition.low,
                high=calc.definition.high,
                writable=False,
                description=calc.definition.description,
            )
            for calc in self.calculated
        )


def compile_rule_set(
    definition: RuleSetDef, tags: Sequence[TagDef], site: SiteLocation
) -> CompiledRuleSet:
    """Check and compile ``definition`` against the site's ``tags``; raise ``RuleSetError``
    listing every problem with its ``file:line:column``."""
    return _RuleSetCompiler(definition, tags, site).compile()


class _RuleSetCompiler:
    """One compilation: collects problems instead of stopping at the first."""

    def __init__(self, definition: RuleSetDef, tags: Sequence[TagDef], site: SiteLocation) -> None:
        self._definition = definition
        self._site = site
        self._site_tags = {tag.name: tag for tag in tags}
        self._problems: list[ExpressionError] = []
        self._signatures: dict[str, TagSignature] = {
            tag.name: TagSignature(tag.name, tag.data_type, tag.writable) for tag in tags
        }
        self._calculated_names: set[str] = set()
        self._windows: dict[str, float] = {}
        for calc in definition.calculated:
            if calc.name in self._site_tags:
                self._problem(calc.spot, f"calculated tag {calc.name} clashes with a site tag")
            elif calc.name in self._calculated_names:
                self._problem(calc.spot, f"calculated tag {calc.name} is defined twice")
            else:
                self._calculated_names.add(calc.name)
                self._signatures[calc.name] = TagSignature(calc.name, calc.data_type, False)
        self._compiler = ExpressionCompiler(self._signatures, site)

    def compile(self) -> CompiledRuleSet:
        calculated = self._compile_calculated()
        rules = self._compile_rules()
        if self._problems:
            raise RuleSetError(self._problems)
        return CompiledRuleSet(
            definition=self._definition,
            rules=rules,
            calculated=calculated,
            site=self._site,
            data_types=MappingProxyType(
                {name: sig.data_type for name, sig in self._signatures.items()}
            ),
            window_needs=MappingProxyType(dict(self._windows)),
        )

    # -- problems ---------------------------------------------------------------------------

    def _problem(self, spot: SourceSpot, reason: str) -> None:
        self._problems.append(ExpressionError(spot, reason))

    def _expression(
        self, expression: Expression, expect: ValueKind, label: str
    ) -> CompiledExpression | None:
        try:
            compiled = self._compiler.compile(expression, expect=expect)
        except ExpressionError as err:
            # Say which part of which rule the expression is, as well as where it is.
            labelled = ExpressionError(err.spot, f"{label}: {err.reason}")
            labelled.__cause__ = err
            self._problems.append(labelled)
            return None
        for tag, seconds in compiled.windows.items():
            self._windows[tag] = max(seconds, self._windows.get(tag, 0.0))
        return compiled

    # -- calculated tags -----------------------------------------------------------------------

    def _compile_calculated(self) -> tuple[CompiledCalculatedTag, ...]:
        compiled: dict[str, CompiledCalculatedTag] = {}
        for calc in self._definition.calculated:
            if calc.name not in self._calculated_names or calc.name in compiled:
                continue
            if calc.data_type not in _VALUE_KINDS:
                self._problem(
                    calc.spot, f"calculated tag {calc.name}: type {calc.data_type} not supported"
                )
                continue
            if calc.low is not None and calc.high is not None and calc.low >= calc.high:
                self._problem(calc.spot, f"calculated tag {calc.name}: range low must be < high")
            expression = self._expression(
                calc.expression, _VALUE_KINDS[calc.data_type], f"calculated tag {calc.name}"
            )
            if expression is None:
                continue
            if calc.name in expression.referenced:
                self._problem(
                    calc.expression.spot,
                    f"calculated tag {calc.name} reads itself (cycle {calc.name} -> {calc.name})",
                )
                continue
            compiled[calc.name] = CompiledCalculatedTag(calc, expression, expression.referenced)
        return self._topological(compiled)

    def _topological(
        self, compiled: Mapping[str, CompiledCalculatedTag]
    ) -> tuple[CompiledCalculatedTag, ...]:
        """Order calculated tags inputs-first; report each cycle once, naming it."""
        depends = {
            name: sorted(calc.inputs & self._calculated_names) for name, calc in compiled.items()
        }
        ordered: list[CompiledCalculatedTag] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        reported: set[frozenset[str]] = set()

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = [*path[path.index(name) :], name]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    first = compiled[cycle[0]].definition
                    self._problem(
                        first.expression.spot,
                        f"calculated tags form a cycle: {' -> '.join(cycle)}",
                    )
                return
            state[name] = 1
            path.append(name)
            for dependency in depends.get(name, ()):
                if dependency in compiled:
                    visit(dependency, path)
            path.pop()
            state[name] = 2
            ordered.append(compiled[name])

        for name in compiled:
            visit(name, [])
        return tuple(ordered)

    # -- rules ---------------------------------------------------------------------------------

    def _compile_rules(self) -> tuple[CompiledRule, ...]:
        seen: set[str] = set()
        rules: list[CompiledRule] = []
        for rule in self._definition.rules:
            if rule.name in seen:
                self._problem(rule.spot, f"rule {rule.name} is defined twice")
                continue
            seen.add(rule.name)
            compiled = self._compile_rule(rule)
            if compiled is not None:
                rules.append(compiled)
        return tuple(rules)

    def _compile_rule(self, rule: RuleDef) -> CompiledRule | None:
        before = len(self._problems)
        if rule.min_command_interval_s < 0:
            self._problem(rule.spot, f"rule {rule.name}: min_command_interval must be >= 0")
        if rule.hold_for_s < 0:
            self._problem(rule.spot, f"rule {rule.name}: for: must not be negative")
        hysteresis = self._hysteresis(rule) if rule.hysteresis is not None else None
        if rule.hysteresis is None and not rule.triggers:
            self._problem(rule.spot, f"rule {rule.name} has no trigger")
        change_triggers, timed = self._triggers(rule)
        condition = None
        if rule.condition is not None:
            condition = self._expression(
                rule.condition, ValueKind.BOOL, f"rule {rule.name}: condition"
            )
        actions = tuple(
            action
            for action in (self._action(rule, action) for action in rule.actions)
            if action is not None
        )
        if len(self._problems) > before:
            return None
        inputs: set[str] = set()
        targets: set[str] = set()
        for expression in _expressions(condition, actions):
            inputs |= expression.inputs | set(expression.windows)
        for action in actions:
            if isinstance(action, CompiledCommandAction):
                targets.add(action.tag)
        if rule.hysteresis is not None:
            inputs.add(rule.hysteresis.input_tag)
            targets.add(rule.hysteresis.output_tag)
        watched = set(inputs) | targets
        for trigger in change_triggers:
            watched.update(trigger.tags)
        for expression in _expressions(condition, actions):
            watched |= expression.referenced
        return CompiledRule(
            definition=rule,
            condition=condition,
            actions=actions,
            hysteresis=hysteresis,
            change_triggers=change_triggers,
            timed_triggers=timed,
            inputs=frozenset(inputs),
            watched=frozenset(watched),
            targets=frozenset(targets),
        )

    def _known(self, tag: str, spot: SourceSpot, rule: str) -> bool:
        if tag in self._signatures:
            return True
        self._problem(spot, f"rule {rule}: unknown tag {tag}")
        return False

    def _hysteresis(self, rule: RuleDef) -> HysteresisRule | None:
        control = rule.hysteresis
        assert control is not None
        problems = len(self._problems)
        if rule.triggers or rule.condition is not None or rule.actions:
            self._problem(
                rule.spot,
                f"rule {rule.name}: a hysteresis rule has no triggers, condition or actions",
            )
        numeric = (DataType.FLOAT, DataType.INT)
        if (
            self._known(control.input_tag, rule.spot, rule.name)
            and self._signatures[control.input_tag].data_type not in numeric
        ):
            self._problem(
                rule.spot,
                f"rule {rule.name}: hysteresis input {control.input_tag} is not numeric",
            )
        if self._known(control.output_tag, rule.spot, rule.name):
            output = self._signatures[control.output_tag]
            if not output.writable:
                self._problem(rule.spot, f"rule {rule.name}: {control.output_tag} is read-only")
            elif output.data_type is not DataType.BOOL:
                self._problem(
                    rule.spot,
                    f"rule {rule.name}: hysteresis output {control.output_tag} is not bool",
                )
        if control.on_below >= control.off_above:
            self._problem(rule.spot, f"rule {rule.name}: on_below must be lower than off_above")
        if len(self._problems) > problems:
            return None
        return HysteresisRule(
            name=rule.name,
            input_tag=control.input_tag,
            output_tag=control.output_tag,
            on_below=control.on_below,
            off_above=control.off_above,
            min_command_interval_s=rule.min_command_interval_s,
            description=rule.description,
            enabled=rule.enabled,
        )

    def _triggers(
        self, rule: RuleDef
    ) -> tuple[tuple[TagChangeTrigger, ...], tuple[TimedSchedule, ...]]:
        changes: list[TagChangeTrigger] = []
        timed: list[TimedSchedule] = []
        for trigger in rule.triggers:
            match trigger:
                case TagChangeTrigger():
                    if not trigger.tags:
                        self._problem(trigger.spot, f"rule {rule.name}: tag trigger names no tag")
                    for tag in trigger.tags:
                        self._known(tag, trigger.spot, rule.name)
                    if trigger.debounce_s < 0:
                        self._problem(trigger.spot, f"rule {rule.name}: debounce must be >= 0")
                    changes.append(trigger)
                case IntervalTrigger():
                    if not trigger.every_s > 0:
                        self._problem(trigger.spot, f"rule {rule.name}: every must be > 0")
                    timed.append(trigger)
                case CronTrigger():
                    try:
                        timed.append(CronSchedule(trigger.schedule, self._site.timezone))
                    except ScheduleError as err:
                        self._problem(trigger.spot, f"rule {rule.name}: {err}")
                case SunTrigger():
                    timed.append(SunSchedule(trigger.event, trigger.offset_s, self._site))
        return tuple(changes), tuple(timed)

    def _action(self, rule: RuleDef, action: CommandAction | EventAction) -> CompiledAction | None:
        if isinstance(action, EventAction):
            return self._event(rule, action)
        if not self._known(action.tag, action.spot, rule.name):
            return None
        target = self._signatures[action.tag]
        if not target.writable:
            why = "a calculated tag" if action.tag in self._calculated_names else "read-only"
            self._problem(action.spot, f"rule {rule.name}: cannot command {action.tag}: {why}")
            return None
        kind = _VALUE_KINDS.get(target.data_type)
        if kind is None:
            self._problem(
                action.spot,
                f"rule {rule.name}: cannot command {action.tag} of type {target.data_type}",
            )
            return None
        value = self._expression(action.value, kind, f"rule {rule.name}: value for {action.tag}")
        if value is None:
            return None
        return CompiledCommandAction(action.tag, value, action.priority, target.data_type)

    def _event(self, rule: RuleDef, action: EventAction) -> CompiledEventAction | None:
        try:
            pieces = split_message(action.message)
        except ValueError as err:
            self._problem(action.spot, f"rule {rule.name}: event message: {err}")
            return None
        parts: list[str | CompiledExpression] = []
        failed = False
        for text, offset, is_expression in pieces:
            if not is_expression:
                parts.append(text)
                continue
            spot = SourceSpot(action.spot.file, action.spot.line, action.spot.column + offset)
            compiled = self._expression(
                Expression(text, spot), ValueKind.ANY, f"rule {rule.name}: event message"
            )
            if compiled is None:
                failed = True
            else:
                parts.append(compiled)
        return None if failed else CompiledEventAction(tuple(parts), action.severity)


def split_message(message: str) -> list[tuple[str, int, bool]]:
    """Split an event message into (text, offset of its first character, is an expression);
    ``{{`` and ``}}`` stand for literal braces. Raises ValueError for an unbalanced brace."""
    pieces: list[tuple[str, int, bool]] = []
    literal: list[str] = []
    literal_start = 0
    index = 0
    while index < len(message):
        char = message[index]
        if char in "{}" and message[index : index + 2] == char * 2:
            literal.append(char)
            index += 2
            continue
        if char == "}":
            raise ValueError(f"unmatched '}}' at position {index + 1}")
        if char == "{":
            end = message.find("}", index + 1)
            if end < 0:
                raise ValueError(f"unmatched '{{' at position {index + 1}")
            text = message[index + 1 : end]
            if not text.strip():
                raise ValueError(f"empty {{}} at position {index + 1}")
            if literal:
                pieces.append(("".join(literal), literal_start, False))
                literal = []
            pieces.append((text, index + 1, True))
            index = end + 1
            literal_start = index
            continue
        literal.append(char)
        index += 1
    if literal:
        pieces.append(("".join(literal), literal_start, False))
    return pieces


def _expressions(
    condition: CompiledExpression | None, actions: Sequence[CompiledAction]
) -> list[CompiledExpression]:
    found = [condition] if condition is not None else []
    for action in actions:
        if isinstance(action, CompiledCommandAction):
            found.append(action.value)
        else:
            found.extend(part for part in action.parts if not isinstance(part, str))
    return found
