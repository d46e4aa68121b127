"""The historian's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Design notes for what comes next:

- ``samples`` is keyed by (tag_id, server_time): a tag's history is one contiguous index
  range, which is what raw and trend queries scan. On SQLite the table is WITHOUT ROWID, so that
  key *is* the table's b-tree and no second index is kept up to date on insert. On PostgreSQL the
  key includes the time column, which native partitioning by time (or a TimescaleDB hypertable)
  requires.
- ``samples`` has no foreign key to ``tags``: the store resolves every tag id from its own
  registry before writing, and a per-row foreign-key check would slow ingest for nothing.
- Quality is the OPC UA status code (Part 4, 7.39). Codes of Bad qualities exceed 2**31, so the
  column is a BIGINT (PostgreSQL's INTEGER is signed 32-bit).
- Times are UTC to the microsecond on both backends (``historian.timetypes.UtcDateTime``).
  History is ordered and keyed by ``server_time``, the time the center received or produced the
  sample: it only moves forward for a tag on one center, whatever the device's clock says, so a
  value re-read unchanged after an outage (same source time as before it) still lands after the
  outage's Bad samples. ``source_time`` is the device's own stamp, returned with every raw
  read as an OPC UA HistoryRead asked for both timestamps returns them (Part 4, 5.10.3); it is
  NULL when it equals the server time (every Modbus and BACnet sample, whose devices send no
  time), which costs nothing on either backend.
- Values of numeric and boolean tags go to ``value`` (a double); string tags use ``text_value``.
  A Bad sample with no value has both NULL.
- Version 2 added each tag's compression settings (the ones its stored samples went through,
  so a reader knows how far an interpolated value may be off) and the audit journal.
- Version 3 renamed ``time`` to ``server_time`` and added ``source_time`` (rows stored before
  keep their one time as both).
- Version 4 added the rule-set versions (``rule_versions`` with one ``rule_version_files`` row
  per rule file, and the single-row ``rule_deployment`` pointer to the version the center is
  asked to run) and the operators' active overrides (``command_overrides``): tables of their
  own, so the migration creates them and touches no existing row.
- Version 5 added alarm management: the state of every alarm (``alarm_states``, one row per
  alarm, so that a restart restores active, acknowledged, shelved and out-of-service alarms), the
  alarm journal (``alarm_journal``, every transition: the alarm history of ISA-18.2 that the
  EEMUA 191 performance figures are computed from), the queue of operators' requests from the
  command line to the running center (``alarm_requests``), and the nullable ``tag``, ``device``
  and ``area`` columns of ``event_journal`` (filled for alarm events, so that the event journal
  alone answers "what happened at 03:12" in a district or on a device).
- Version 6 added what the leak detector has learnt (``leak_baselines``, one row per night-flow
  alarm: its baseline nights and daily means as a JSON document, rewritten after every night),
  so a restart of the center does not forget a week of learning. A new table: the migration
  creates it empty.
- On PostgreSQL ``samples`` is created by ``historian.postgres`` rather than from this metadata:
  range-partitioned by day, or a TimescaleDB hypertable where that extension is installed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    false,
    text,
)

from historian.timetypes import UtcDateTime

SCHEMA_VERSION = 6
"""The version of the schema this code creates and expects; bump it with every migration."""

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    # A single row: the CHECK makes a second row impossible.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
    CheckConstraint("id = 1", name="schema_version_single_row"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("unit", Text, nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("data_type", Text, nullable=False),
    Column("low", Double, nullable=True),
    Column("high", Double, nullable=True),
    # Compression the tag's samples went through (historian.compression.CompressionSettings).
    # Server defaults, so that ALTER TABLE ... ADD COLUMN fills the rows of an older database.
    Column("compression_mode", Text, nullable=False, server_default="raw"),
    Column("exception_deviation", Double, nullable=False, server_default=text("0")),
    Column("exception_is_percent", Boolean, nullable=False, server_default=false()),
    Column("compression_deviation", Double, nullable=False, server_default=text("0")),
    Column("compression_is_percent", Boolean, nullable=False, server_default=false()),
    Column("max_interval_s", Double, nullable=False, server_default=text("3600")),
)

TAG_COMPRESSION_COLUMNS = (
    "compression_mode",
    "exception_deviation",
    "exception_is_percent",
    "compression_deviation",
    "compression_is_percent",
    "max_interval_s",
)
"""The columns of ``tags`` added by schema version 2."""

samples = Table(
    "samples",
    metadata,
    Column("tag_id", Integer, nullable=False),
    # When the center received or produced the sample: the order and the key of history.
    Column("server_time", UtcDateTime, nullable=False),
    # The device's own time of the value; NULL when it is the server time.
    Column("source_time", UtcDateTime, nullable=True),
    Column("value", Double, nullable=True),
    Column("text_value", Text, nullable=True),
    Column("quality", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    PrimaryKeyConstraint("tag_id", "server_time", name="samples_pkey"),
    sqlite_with_rowid=False,
)

command_journal = Table(
    "command_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("command_id", Text, nullable=False, unique=True),
    Column("tag", Text, nullable=False),
    # Commanded and read-back values are JSON scalars so that bool/int/float/str come back as sent.
    Column("value", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("result_reason", Text, nullable=False),
    Column("readback", Text, nullable=True),
    Column("completed_at", UtcDateTime, nullable=False),
)
Index("command_journal_issued_at", command_journal.c.issued_at)
Index("command_journal_tag_issued_at", command_journal.c.tag, command_journal.c.issued_at)

event_journal = Table(
    "event_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime, nullable=False),
    Column("kind", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("message", Text, nullable=False),
    # Not "user": that is a reserved word in PostgreSQL and would need quoting in raw SQL (COPY).
    Column("user_name", Text, nullable=False, default=""),
    Column("severity", Integer, nullable=False, default=0),
    # Version 5: what an alarm event concerns; NULL for the other events.
    Column("tag", Text, nullable=True),
    Column("device", Text, nullable=True),
    Column("area", Text, nullable=True),
)
Index("event_journal_time", event_journal.c.time)
Index("event_journal_kind_time", event_journal.c.kind, event_journal.c.time)

EVENT_SUBJECT_COLUMNS = ("tag", "device", "area")
"""The columns of ``event_journal`` added by schema version 5."""

audit_journal = Table(
    "audit_journal",
    metadata,
    # Who did what to the system itself: logins, configuration and rule changes, user changes.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime, nullable=False),
    Column("action", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("target", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("succeeded", Boolean, nullable=False, default=True),
)
Index("audit_journal_time", audit_journal.c.time)
Index("audit_journal_action_time", audit_journal.c.action, audit_journal.c.time)


def _rollup_table(name: str) -> Table:
    """A rollup table: one row per (tag, bucket) of fixed width, maintained by historian.rollups.

    Min and max (with their times, so trends draw spikes where they happened), first and last
    (with their qualities), counts, and the integral over the bucket's own samples: what is
    needed to merge buckets exactly, including the time-weighted average (OPC UA Part 13,
    TimeAverage). Segments between two buckets are rebuilt from one's last and the next's first.
    """
    return Table(
        name,
        metadata,
        Column("tag_id", Integer, nullable=False),
        Column("bucket", UtcDateTime, nullable=False),
        Column("count", Integer, nullable=False),
        Column("good_count", Integer, nullable=False),
        Column("min", Double, nullable=True),
        Column("min_time", UtcDateTime, nullable=True),
        Column("max", Double, nullable=True),
        Column("max_time", UtcDateTime, nullable=True),
        Column("first_time", UtcDateTime, nullable=False),
        Column("first_value", Double, nullable=True),
        Column("first_quality", BigInteger, nullable=False),
        Column("last_time", UtcDateTime, nullable=False),
        Column("last_value", Double, nullable=True),
        Column("last_quality", BigInteger, nullable=False),
        # Value-seconds and seconds of the segments inside the bucket that start on a Good value.
        Column("integral", Double, nullable=False),
        Column("good_seconds", Double, nullable=False),
        Column("twa", Double, nullable=True),
        PrimaryKeyConstraint("tag_id", "bucket", name=f"{name}_pkey"),
        sqlite_with_rowid=False,
    )


rollup_1m = _rollup_table("rollup_1m")
rollup_1h = _rollup_table("rollup_1h")


rule_versions = Table(
    "rule_versions",
    metadata,
    # Every version of the whole rule set ever stored; never updated but for its status.
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("author", Text, nullable=False),
    Column("reason", Text, nullable=False),
    # controlcenter.ports.RuleVersionStatus: pending, active, superseded, refused.
    Column("status", Text, nullable=False),
    # For a refused version: every problem, file:line:column: reason, one per line.
    Column("detail", Text, nullable=False, default=""),
    Column("decided_at", UtcDateTime, nullable=True),
    CheckConstraint("version >= 1", name="rule_versions_positive"),
)

rule_version_files = Table(
    "rule_version_files",
    metadata,
    # One row per rule file of a version, in the order the site lists them: the full text, so
    # that any version can be shown, compared, re-activated or backtested later as it was.
    Column("version", Integer, ForeignKey("rule_versions.version"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("text", Text, nullable=False),
    PrimaryKeyConstraint("version", "position", name="rule_version_files_pkey"),
)

rule_deployment = Table(
    "rule_deployment",
    metadata,
    # A single row: the version the center is asked to run (the command line writes it, the
    # running center polls it).
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("requested_version", Integer, ForeignKey("rule_versions.version"), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    CheckConstraint("id = 1", name="rule_deployment_single_row"),
)

command_overrides = Table(
    "command_overrides",
    metadata,
    # The operators' active manual overrides (the manual-operator slot of a BACnet priority
    # array, ASHRAE 135 19.2), kept so that they survive a restart of the center.
    Column("tag", Text, primary_key=True),
    # historian.values.encode_typed_value: JSON that gives back bool, int, float, str or a
    # datetime as it was.
    Column("value", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("until", UtcDateTime, nullable=True),
    Column("priority", Integer, nullable=False),
)


alarm_states = Table(
    "alarm_states",
    metadata,
    # One row per alarm (controlcenter.automation.AlarmState), rewritten on every transition.
    Column("name", Text, primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("acknowledged", Boolean, nullable=False),
    Column("latched", Boolean, nullable=False),
    Column("shelved_by", Text, nullable=False),
    Column("shelve_reason", Text, nullable=False),
    Column("shelved_until", UtcDateTime, nullable=True),
    Column("one_shot", Boolean, nullable=False),
    Column("suppressed", Boolean, nullable=False),
    Column("suppressed_reason", Text, nullable=False),
    Column("out_of_service_by", Text, nullable=False),
    Column("out_of_service_reason", Text, nullable=False),
    Column("activated_at", UtcDateTime, nullable=True),
    Column("changed_at", UtcDateTime, nullable=True),
    # historian.values.encode_typed_value (the value keeps its type), NULL without one.
    Column("value", Text, nullable=True),
    Column("message", Text, nullable=False),
)

alarm_journal = Table(
    "alarm_journal",
    metadata,
    # Every alarm transition (controlcenter.automation.AlarmTransition), never updated: the
    # alarm history the EEMUA 191 figures are computed from (activations: action 'activate').
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime, nullable=False),
    Column("alarm", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("before", Text, nullable=False),
    Column("after", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("area", Text, nullable=False),
    Column("tag", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("value", Text, nullable=True),
)
Index("alarm_journal_time", alarm_journal.c.time)
Index("alarm_journal_alarm_time", alarm_journal.c.alarm, alarm_journal.c.time)
Index("alarm_journal_area_time", alarm_journal.c.area, alarm_journal.c.time)

alarm_requests = Table(
    "alarm_requests",
    metadata,
    # Operators' actions queued by the command line; the running center polls the pending
    # ones, applies them with its own role checks and journaling, and records the outcome.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("action", Text, nullable=False),
    # The alarm names as a JSON array of strings.
    Column("alarms", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("duration_s", Double, nullable=True),
    Column("one_shot", Boolean, nullable=False),
    # controlcenter.ports.AlarmRequestStatus: pending, done, refused.
    Column("status", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
)
Index("alarm_requests_status_id", alarm_requests.c.status, alarm_requests.c.id)

leak_baselines = Table(
    "leak_baselines",
    metadata,
    # One row per night-flow alarm (alarms.leaks.NightFlowDetector.state(), that alarm's part):
    # a JSON document the detector checks when it takes it back; rewritten after every night.
    Column("alarm", Text, primary_key=True),
    Column("document", Text, nullable=False),
    Column("saved_at", UtcDateTime, nullable=False),
)
