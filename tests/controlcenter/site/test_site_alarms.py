"""The site file's alarm sections: templates per asset type, assets with overrides, single
alarms, area suppression, communication alarms and notifications, each refused with
``file:line:column`` when wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from controlcenter.automation import (
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
from controlcenter.site.alarmfile import (
    MAX_ALARMS,
    expression_syntax_problem,
)
from controlcenter.site.config import SiteConfig, load_site
from controlcenter.site.yamlsource import SourceFileError
from tests.controlcenter.site.site_samples import MODBUS_SITE

EXTRA_TAGS = """\
  - {name: water.ps1.pump1.running, device: water.rtu1, address: "di:0", data_type: bool}
  - {name: water.ps1.pump1.run_cmd, device: water.rtu1, address: "coil:1", data_type: bool}
  - {name: water.ps1.flow, device: water.rtu1, address: "hr:2:float32"}
  - {name: water.ps2.pump1.running, device: water.rtu1, address: "di:1", data_type: bool}
  - {name: water.ps2.pump1.run_cmd, device: water.rtu1, address: "coil:2", data_type: bool}
  - {name: water.ps2.flow, device: water.rtu1, address: "hr:4:float32"}
  - {name: water.tank1.level_sp, device: water.rtu1, address: "hr:6:float32"}
  - {name: water.tank1.mode, device: water.rtu1, address: "hr:8:int16", data_type: int}
"""

ALARMS = """\
alarm_templates:
  booster_station:
    - name: "{asset}.pump1.failed_to_start"
      kind: command_mismatch
      tag: "{asset}.pump1.running"
      command: "{asset}.pump1.run_cmd"
      delay: 30s
      priority: high
      message: Pump 1 of {asset} did not start
      guidance: {cause: tripped, consequence: no pressure, action: reset the drive}
    - name: "{asset}.flow.high"
      kind: high
      tag: "{asset}.flow"
      limit: 120
      deadband: 2
      on_delay: 5s
    - name: "{asset}.flow.frozen"
      kind: frozen
      tag: "{asset}.flow"
      delay: 15m
      expect_change_when: "{asset}.pump1.running"
assets:
  - {name: water.ps1, type: booster_station, area: water,
     overrides: {"{asset}.pump1.failed_to_start": {priority: critical}}}
  - {name: water.ps2, type: booster_station, disable: [water.ps2.flow.frozen],
     overrides: {water.ps2.flow.high: {limit: 90, message: ps2 limit}}}
alarms:
  - {name: water.tank1.level.high, kind: high, tag: water.tank1.level, limit: 4.6, deadband: 0.1,
     on_delay: 10s, off_delay: 30s, priority: medium, area: water, latching: true,
     suppress_when: "!water.tank1.pump_cmd"}
  - name: water.tank1.level.deviation
    kind: deviation
    tag: water.tank1.level
    setpoint: water.tank1.level_sp
    limit: 0.5
  - {name: water.tank1.mode.bad, kind: discrete, tag: water.tank1.mode, state: 3, priority: low}
  - name: water.tank1.combined
    kind: expression
    expression: water.tank1.level > 4 && water.tank1.mode == 2
alarm_suppression:
  - {area: water, when: "water.tank1.mode == 0"}
communication_alarms: {enabled: true, priority: high}
notifications:
  email: {host: 127.0.0.1, port: 2525, sender: scada@city.example, starttls: true,
          username: scada, password_env: CC_SMTP_PASSWORD}
  webhook: {secret_env: CC_WEBHOOK_SECRET, attempts: 3, backoff: 1s}
  groups:
    - {name: water-oncall, emails: [water@city.example], webhooks: ["https://hooks.example/water"]}
    - {name: duty-manager, emails: [duty@city.example]}
  routes:
    - {name: water, areas: [water], max_priority: medium, groups: [water-oncall, duty-manager],
       escalate_after: 15m, quiet_hours: "22:00-07:00", quiet_below: low}
"""


def site_text(alarms: str = ALARMS, extra_tags: str = EXTRA_TAGS) -> str:
    """The Modbus sample with more tags and the alarm sections appended."""
    head, sep, tail = MODBUS_SITE.partition("automation:\n")
    assert sep
    return head + extra_tags + sep + tail + alarms


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def spot(text: str, fragment: str, nth: int = 0) -> tuple[int, int]:
    """Line and column (from 1) of the ``nth`` occurrence of ``fragment`` in ``text``."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(fragment, offset + 1)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def refused(path: Path) -> list[str]:
    with pytest.raises(SourceFileError) as caught:
        load_site(path)
    return [str(problem) for problem in caught.value.problems]


def test_every_alarm_section_becomes_vocabulary(tmp_path: Path) -> None:
    text = site_text()
    path = write(tmp_path, text)
    site = load_site(path)
    file = str(path)
    alarms = {definition.name: definition for definition in site.alarm_defs()}
    assert list(alarms) == [
        "water.tank1.level.high",
        "water.tank1.level.deviation",
        "water.tank1.mode.bad",
        "water.tank1.combined",
        "water.ps1.pump1.failed_to_start",
        "water.ps1.flow.high",
        "water.ps1.flow.frozen",
        "water.ps2.pump1.failed_to_start",
        "water.ps2.flow.high",
        "water.rtu1.comm",
    ]
    line, column = spot(text, "{name: water.tank1.level.high")
    suppress_line, suppress_column = spot(text, "!water.tank1.pump_cmd")
    assert alarms["water.tank1.level.high"] == AlarmDef(
        name="water.tank1.level.high",
        kind=AlarmKind.HIGH,
        priority=AlarmPriority.MEDIUM,
        tag="water.tank1.level",
        device="water.rtu1",
        limit=4.6,
        deadband=0.1,
        on_delay_s=10.0,
        off_delay_s=30.0,
        latching=True,
        area="water",
        suppress_when=Expression(
            "!water.tank1.pump_cmd", SourceSpot(file, suppress_line, suppress_column)
        ),
        spot=SourceSpot(file, line, column),
    )
    template_line, template_column = spot(text, 'name: "{asset}.pump1.failed_to_start"')
    assert alarms["water.ps1.pump1.failed_to_start"] == AlarmDef(
        name="water.ps1.pump1.failed_to_start",
        kind=AlarmKind.COMMAND_MISMATCH,
        priority=AlarmPriority.CRITICAL,  # the asset's override
        tag="water.ps1.pump1.running",
        device="water.rtu1",
        command_tag="water.ps1.pump1.run_cmd",
        delay_s=30.0,
        area="water",
        asset="water.ps1",
        message="Pump 1 of water.ps1 did not start",
        guidance=AlarmGuidance("tripped", "no pressure", "reset the drive"),
        spot=SourceSpot(file, template_line, template_column),
    )
    assert alarms["water.ps2.pump1.failed_to_start"].priority is AlarmPriority.HIGH
    assert alarms["water.ps2.pump1.failed_to_start"].area == "water"  # the asset's domain
    assert (alarms["water.ps2.flow.high"].limit, alarms["water.ps1.flow.high"].limit) == (90, 120)
    assert alarms["water.ps2.flow.high"].message == "ps2 limit"
    assert (alarms["water.ps1.flow.high"].deadband, alarms["water.ps1.flow.high"].on_delay_s) == (
        2.0,
        5.0,
    )
    frozen = alarms["water.ps1.flow.frozen"]
    change_line, change_column = spot(text, '"{asset}.pump1.running"', 1)
    assert (frozen.delay_s, frozen.expect_change_when) == (
        900.0,
        Expression("water.ps1.pump1.running", SourceSpot(file, change_line, change_column + 1)),
    )
    deviation = alarms["water.tank1.level.deviation"]
    assert (deviation.setpoint_tag, deviation.limit) == ("water.tank1.level_sp", 0.5)
    assert alarms["water.tank1.mode.bad"].state == 3
    assert alarms["water.tank1.mode.bad"].priority is AlarmPriority.LOW
    combined = alarms["water.tank1.combined"]
    expression_line, expression_column = spot(text, "water.tank1.level > 4 &&")
    assert combined.expression == Expression(
        "water.tank1.level > 4 && water.tank1.mode == 2",
        SourceSpot(file, expression_line, expression_column),
    )
    assert (combined.tag, combined.device) == ("", "")
    comm = alarms["water.rtu1.comm"]
    assert (comm.kind, comm.device, comm.area, comm.priority, comm.tag) == (
        AlarmKind.COMM_LOSS,
        "water.rtu1",
        "water",
        AlarmPriority.HIGH,
        "",
    )
    when_line, when_column = spot(text, "water.tank1.mode == 0")
    assert site.area_suppressions() == (
        AreaSuppressionDef(
            "water",
            Expression("water.tank1.mode == 0", SourceSpot(file, when_line, when_column)),
            SourceSpot(file, *spot(text, "{area: water, when:")),
        ),
    )
    assert site.oncall_groups() == (
        OnCallGroupDef("water-oncall", ("water@city.example",), ("https://hooks.example/water",)),
        OnCallGroupDef("duty-manager", ("duty@city.example",)),
    )
    assert site.notification_routes() == (
        NotificationRouteDef(
            name="water",
            groups=("water-oncall", "duty-manager"),
            areas=("water",),
            max_priority=AlarmPriority.MEDIUM,
            escalate_after_s=900.0,
            quiet_hours="22:00-07:00",
            quiet_below=AlarmPriority.LOW,
        ),
    )
    assert site.email_settings() == EmailSettings(
        "127.0.0.1", 2525, "scada@city.example", True, "scada", "CC_SMTP_PASSWORD"
    )
    assert site.webhook_settings() == WebhookSettings(
        secret_env="CC_WEBHOOK_SECRET", attempts=3, backoff_s=1.0
    )


def test_a_site_without_alarm_sections_has_one_comm_alarm_per_device(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, MODBUS_SITE))
    assert [(a.name, a.kind, a.device) for a in site.alarm_defs()] == [
        ("water.rtu1.comm", AlarmKind.COMM_LOSS, "water.rtu1")
    ]
    assert site.oncall_groups() == () and site.notification_routes() == ()
    assert site.email_settings() is None and site.webhook_settings() is None


def test_communication_alarms_can_be_turned_off_or_reprioritised(tmp_path: Path) -> None:
    off = load_site(write(tmp_path, MODBUS_SITE + "communication_alarms: {enabled: false}\n"))
    assert off.alarm_defs() == ()
    low = load_site(write(tmp_path, MODBUS_SITE + "communication_alarms: {priority: low}\n"))
    assert [a.priority for a in low.alarm_defs()] == [AlarmPriority.LOW]


def test_a_site_built_in_code_gets_its_alarms_without_spots() -> None:
    data = yaml.safe_load(site_text())
    site = SiteConfig.model_validate(data)
    definitions = site.alarm_defs()
    assert len(definitions) == 10
    assert definitions[0].spot.file == "<built-in>"


def test_a_site_built_in_code_with_a_bad_alarm_raises() -> None:
    data = yaml.safe_load(site_text(ALARMS.replace("tag: water.tank1.level,", "tag: nope.x,")))
    site = SiteConfig.model_validate(data)
    with pytest.raises(SourceFileError, match=r"unknown tag 'nope\.x'"):
        site.alarm_defs()


# --- every error path, with its exact file:line:column ---------------------------------------

FLOW_ALARM = "  - {name: water.tank1.level.high, kind: high, tag: water.tank1.level, limit: 4.6,"

CASES = [
    # (id, old, new, fragment locating the spot (in the new text), location, message)
    (
        "unknown-tag",
        "tag: water.tank1.level, limit: 4.6",
        "tag: water.tank1.levl, limit: 4.6",
        "tag: water.tank1.levl",
        "alarms[0].tag",
        "unknown tag 'water.tank1.levl'",
    ),
    (
        "unknown-tag-after-expansion",
        '      tag: "{asset}.flow"\n      limit: 120',
        '      tag: "{asset}.flw"\n      limit: 120',
        'tag: "{asset}.flw"',
        "alarm_templates.booster_station[1].tag",
        "asset 'water.ps1': unknown tag 'water.ps1.flw'",
    ),
    (
        "injection-into-a-tag-name",
        '      tag: "{asset}.flow"\n      limit: 120',
        '      tag: "{asset}.flow; drop"\n      limit: 120',
        'tag: "{asset}.flow; drop"',
        "alarm_templates.booster_station[1].tag",
        "asset 'water.ps1': 'water.ps1.flow; drop' is not a tag name (a dotted name of a-z, "
        "0-9 and _)",
    ),
    (
        "injection-into-an-alarm-name",
        'name: "{asset}.flow.high"',
        'name: "{asset}.Flow High"',
        'name: "{asset}.Flow High"',
        "alarm_templates.booster_station[1].name",
        "asset 'water.ps1': alarm name 'water.ps1.Flow High' is not a dotted name of a-z, 0-9 "
        "and _",
    ),
    (
        "template-name-without-placeholder",
        'name: "{asset}.flow.high"',
        'name: "flow.high"',
        'name: "flow.high"',
        "alarm_templates.booster_station[1].name",
        "a template alarm's name holds '{asset}' (one alarm per asset), not 'flow.high' "
        "(got 'flow.high')",
    ),
    (
        "limit-missing",
        "limit: 4.6, deadband: 0.1",
        "deadband: 0.1",
        "{name: water.tank1.level.high",
        "alarms[0]",
        "a high alarm needs a limit",
    ),
    (
        "setpoint-missing",
        "    setpoint: water.tank1.level_sp\n",
        "",
        "name: water.tank1.level.deviation",
        "alarms[1]",
        "a deviation alarm needs a setpoint (tag)",
    ),
    (
        "command-missing",
        '      command: "{asset}.pump1.run_cmd"\n',
        "",
        'name: "{asset}.pump1.failed_to_start"',
        "alarm_templates.booster_station[0]",
        "a command_mismatch alarm needs a command (tag)",
    ),
    (
        "frozen-delay-missing",
        "      delay: 15m\n",
        "",
        'name: "{asset}.flow.frozen"',
        "alarm_templates.booster_station[2]",
        "a frozen alarm needs a delay above zero",
    ),
    (
        "expression-missing",
        "    expression: water.tank1.level > 4 && water.tank1.mode == 2\n",
        "",
        "name: water.tank1.combined",
        "alarms[3]",
        "an expression alarm needs an expression",
    ),
    (
        "device-missing",
        "    kind: expression\n    expression: water.tank1.level > 4 && water.tank1.mode == 2\n",
        "    kind: comm_loss\n",
        "name: water.tank1.combined",
        "alarms[3]",
        "a comm_loss alarm needs a device",
    ),
    (
        "unknown-device",
        "    kind: expression\n    expression: water.tank1.level > 4 && water.tank1.mode == 2\n",
        "    kind: comm_loss\n    device: water.rtu9\n",
        "device: water.rtu9",
        "alarms[3].device",
        "unknown device 'water.rtu9'",
    ),
    (
        "state-missing",
        "state: 3, priority: low",
        "priority: low",
        "{name: water.tank1.mode.bad",
        "alarms[2]",
        "a discrete alarm needs a state (the abnormal value)",
    ),
    (
        "state-of-the-wrong-type",
        "state: 3, priority: low",
        "state: true, priority: low",
        "state: true",
        "alarms[2].state",
        "tag 'water.tank1.mode' is numeric: state must be a number",
    ),
    (
        "non-numeric-tag",
        "tag: water.tank1.level, limit: 4.6",
        "tag: water.tank1.pump_cmd, limit: 4.6",
        "tag: water.tank1.pump_cmd",
        "alarms[0].tag",
        "a high alarm needs a numeric tag, 'water.tank1.pump_cmd' is bool",
    ),
    (
        "non-numeric-setpoint",
        "setpoint: water.tank1.level_sp",
        "setpoint: water.tank1.pump_cmd",
        "setpoint: water.tank1.pump_cmd",
        "alarms[1].setpoint",
        "setpoint tag 'water.tank1.pump_cmd' is not numeric",
    ),
    (
        "unknown-kind",
        "kind: discrete",
        "kind: sometimes",
        "kind: sometimes",
        "alarms[2].kind",
        None,
    ),
    (
        "bad-priority",
        "state: 3, priority: low",
        "state: 3, priority: urgent",
        "priority: urgent",
        "alarms[2].priority",
        "Input should be 'critical', 'high', 'medium' or 'low' (got 'urgent')",
    ),
    (
        "duplicate-after-expansion",
        "  - name: water.tank1.combined\n",
        "  - name: water.ps2.flow.high\n",
        'name: "{asset}.flow.high"',
        "alarm_templates.booster_station[1].name",
        None,
    ),
    (
        "comm-alarm-name-taken",
        "  - name: water.tank1.combined\n",
        "  - name: water.rtu1.comm\n",
        "communication_alarms:",
        "communication_alarms",
        None,
    ),
    (
        "unknown-asset-type",
        "{name: water.ps1, type: booster_station",
        "{name: water.ps1, type: booster",
        "type: booster,",
        "assets[0].type",
        "unknown asset type 'booster' (known: booster_station)",
    ),
    (
        "bad-asset-name",
        "{name: water.ps1, type",
        "{name: Water.PS1, type",
        "name: Water.PS1",
        "assets[0].name",
        None,
    ),
    (
        "override-names-no-alarm",
        'overrides: {"{asset}.pump1.failed_to_start": {priority: critical}}',
        'overrides: {"{asset}.pump2.failed_to_start": {priority: critical}}',
        '"{asset}.pump2.failed_to_start":',
        "assets[0].overrides.{asset}.pump2.failed_to_start",
        "override '{asset}.pump2.failed_to_start' names no alarm of asset type 'booster_station'",
    ),
    (
        "disable-names-no-alarm",
        "disable: [water.ps2.flow.frozen]",
        "disable: [water.ps2.flow.stuck]",
        "water.ps2.flow.stuck",
        "assets[1].disable[0]",
        "'water.ps2.flow.stuck' names no alarm of asset type 'booster_station'",
    ),
    (
        "unknown-alarm-area",
        "priority: medium, area: water,",
        "priority: medium, area: sewer,",
        "area: sewer",
        "alarms[0].area",
        "unknown area 'sewer'",
    ),
    (
        "unknown-asset-area",
        "type: booster_station, area: water,",
        "type: booster_station, area: sewer,",
        "area: sewer",
        "assets[0].area",
        "unknown area 'sewer'",
    ),
    (
        "unknown-suppression-area",
        "{area: water, when:",
        "{area: sewer, when:",
        "area: sewer",
        "alarm_suppression[0].area",
        "unknown area 'sewer'",
    ),
    (
        "unknown-route-area",
        "areas: [water], max_priority",
        "areas: [water, sewer], max_priority",
        "sewer]",
        "notifications.routes[0].areas[1]",
        "unknown area 'sewer'",
    ),
    (
        "unknown-group",
        "groups: [water-oncall, duty-manager],",
        "groups: [water-oncall, duty-mgr],",
        "duty-mgr]",
        "notifications.routes[0].groups[1]",
        "unknown on-call group 'duty-mgr'",
    ),
    (
        "bad-quiet-hours",
        'quiet_hours: "22:00-07:00"',
        'quiet_hours: "22:00-25:00"',
        "quiet_hours:",
        "notifications.routes[0].quiet_hours",
        "quiet hours '22:00-25:00' are not HH:MM-HH:MM (22:00-07:00) (got '22:00-25:00')",
    ),
    (
        "empty-quiet-hours-window",
        'quiet_hours: "22:00-07:00"',
        'quiet_hours: "22:00-22:00"',
        "quiet_hours:",
        "notifications.routes[0].quiet_hours",
        "quiet hours '22:00-22:00' start and end at the same time (got '22:00-22:00')",
    ),
    (
        "bad-email",
        "emails: [duty@city.example]",
        'emails: ["duty@city.example\\r\\nBcc: x@evil.example"]',
        '"duty@city.example',
        "notifications.groups[1].emails[0]",
        None,
    ),
    (
        "bad-sender",
        "sender: scada@city.example",
        "sender: scada",
        "sender: scada",
        "notifications.email.sender",
        "'scada' is not an e-mail address like name@example.org (got 'scada')",
    ),
    (
        "webhook-not-http",
        '"https://hooks.example/water"',
        '"file:///etc/passwd"',
        "webhooks:",
        "notifications.groups[0].webhooks",
        "webhook 'file:///etc/passwd' must be an http or https URL",
    ),
    (
        "webhook-without-host",
        '"https://hooks.example/water"',
        '"https:///water"',
        "webhooks:",
        "notifications.groups[0].webhooks",
        "webhook 'https:///water' has no host",
    ),
    (
        "email-without-smtp-server",
        "  email: {host: 127.0.0.1, port: 2525, sender: scada@city.example, starttls: true,\n"
        "          username: scada, password_env: CC_SMTP_PASSWORD}\n",
        "",
        "notifications:",
        "notifications",
        "group 'water-oncall' has e-mail addresses but notifications.email (the SMTP server) "
        "is not set",
    ),
    (
        "bad-env-name",
        "secret_env: CC_WEBHOOK_SECRET",
        "secret_env: CC-WEBHOOK",
        "secret_env: CC-WEBHOOK",
        "notifications.webhook.secret_env",
        "'CC-WEBHOOK' is not an environment variable name (got 'CC-WEBHOOK')",
    ),
    (
        "bad-duration",
        "escalate_after: 15m",
        "escalate_after: soon",
        "escalate_after: soon",
        "notifications.routes[0].escalate_after",
        None,
    ),
    (
        "unbalanced-expression",
        'when: "water.tank1.mode == 0"',
        'when: "(water.tank1.mode == 0"',
        'when: "(water',
        "alarm_suppression[0].when",
        "expression: '(' is never closed (character 1)",
    ),
    (
        "unbalanced-template-expression",
        'expect_change_when: "{asset}.pump1.running"',
        'expect_change_when: "{asset}.pump1.running)"',
        "expect_change_when:",
        "alarm_templates.booster_station[2].expect_change_when",
        "asset 'water.ps1': expression: ')' closes nothing (character 24)",
    ),
    (
        "unknown-key-suggested",
        "    setpoint: water.tank1.level_sp\n",
        "    setpiont: water.tank1.level_sp\n",
        "setpiont:",
        "alarms[1].setpiont",
        "unknown key 'setpiont' (did you mean 'setpoint'?)",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "fragment", "location", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_problem_is_named_at_its_spot(
    tmp_path: Path, old: str, new: str, fragment: str, location: str, message: str | None
) -> None:
    original = site_text()
    assert original.count(old) == 1, old
    text = original.replace(old, new)
    path = write(tmp_path, text)
    problems = refused(path)
    line, column = spot(text, fragment)
    prefix = f"{path}:{line}:{column}: {location}: "
    matching = [problem for problem in problems if problem.startswith(prefix)]
    assert matching, problems
    if message is not None:
        assert prefix + message in problems, problems


def test_a_duplicate_after_expansion_names_the_asset_and_the_first(tmp_path: Path) -> None:
    text = site_text().replace(
        "  - name: water.tank1.combined\n", "  - name: water.ps2.flow.high\n"
    )
    path = write(tmp_path, text)
    first = spot(text, "name: water.ps2.flow.high")
    line, column = spot(text, 'name: "{asset}.flow.high"')
    expected = (
        f"{path}:{line}:{column}: alarm_templates.booster_station[1].name: asset 'water.ps2': "
        f"duplicate alarm name 'water.ps2.flow.high' (first at {path}:{first[0]}:{first[1]})"
    )
    assert expected in refused(path)


def test_problems_of_every_section_are_reported_together(tmp_path: Path) -> None:
    text = (
        site_text()
        .replace("tag: water.tank1.level, limit: 4.6", "tag: water.nope, limit: 4.6")
        .replace("type: booster_station, disable", "type: pumping, disable")
        .replace("duty-manager],", "nobody],")
    )
    problems = refused(write(tmp_path, text))
    assert any("unknown tag 'water.nope'" in problem for problem in problems)
    assert any("unknown asset type 'pumping'" in problem for problem in problems)
    assert any("unknown on-call group 'nobody'" in problem for problem in problems)


# --- hostile inputs ---------------------------------------------------------------------------


def test_a_template_expanding_to_100000_alarms_is_refused_quickly(tmp_path: Path) -> None:
    template = "".join(
        f'    - {{name: "{{asset}}.a{index}", kind: high, tag: water.tank1.level, limit: 1}}\n'
        for index in range(1000)
    )
    assets = "".join(f"  - {{name: water.x{index}, type: big}}\n" for index in range(100))
    text = site_text(f"alarm_templates:\n  big:\n{template}assets:\n{assets}", "")
    path = write(tmp_path, text)
    started = time.monotonic()
    problems = refused(path)
    assert time.monotonic() - started < 5.0
    line, column = spot(text, "assets:")
    assert problems == [
        f"{path}:{line}:{column}: assets: 100,001 alarms after templates are expanded "
        f"(at most {MAX_ALARMS:,})"
    ]


def test_a_template_of_more_than_1000_alarms_is_refused(tmp_path: Path) -> None:
    template = "".join(
        f'    - {{name: "{{asset}}.a{index}", kind: high, tag: water.tank1.level, limit: 1}}\n'
        for index in range(1001)
    )
    text = site_text(f"alarm_templates:\n  big:\n{template}", "")
    path = write(tmp_path, text)
    line, column = spot(text, "  big:")
    assert any(
        problem.startswith(f"{path}:{line}:{column + 2}: alarm_templates.big: ")
        and "at most 1000" in problem
        for problem in refused(path)
    )


def test_an_asset_name_cannot_smuggle_characters_into_tag_names(tmp_path: Path) -> None:
    text = site_text().replace("{name: water.ps1, type", '{name: "water.ps1.x\\u0000", type')
    problems = refused(write(tmp_path, text))
    assert any("assets[0].name" in problem for problem in problems), problems


def test_a_placeholder_in_a_single_alarm_is_not_expanded(tmp_path: Path) -> None:
    text = site_text().replace("tag: water.tank1.level, limit: 4.6", 'tag: "{asset}", limit: 4.6')
    problems = refused(write(tmp_path, text))
    assert any("'{asset}' is not a tag name" in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("a > 1", None),
        ("f(a, [1, 2], {'k': 'v)'})", None),
        ('"unterminated', (0, "string is not terminated")),
        ("a > (1", (4, "'(' is never closed")),
        ("a]", (1, "']' closes nothing")),
        ("(a]", (2, "']' closes nothing")),
        ('"\\"" == b', None),
        ("r'\\' == c", None),
        ("'''a ' b''' == c", None),
        ("'a\nb'", (0, "string is not terminated on its line")),
    ],
)
def test_expression_shape(expression: str, problem: tuple[int, str] | None) -> None:
    assert expression_syntax_problem(expression) == problem
