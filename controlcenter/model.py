"""The shared vocabulary of the control center: tags, samples, quality, commands and events.

Every value that crosses a layer is one of these frozen, slotted dataclasses. This module imports
only the standard library so that every part of the system can depend on it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, TypeVar, overload

Value = float | int | bool | str | datetime
"""A tag value as the field delivers it after decoding and scaling (a datetime is time-zone
aware, e.g. an OPC UA DateTime, which is UTC)."""

_Item = TypeVar("_Item")


def utc_now() -> datetime:
    """Return the current wall-clock time in UTC (for components that run on real time)."""
    return datetime.now(UTC)


class Severity(Enum):
    """OPC UA status code severity (OPC UA Part 4, 7.39: the two top bits of a StatusCode)."""

    GOOD = 0x00000000
    UNCERTAIN = 0x40000000
    BAD = 0x80000000


class Substatus(StrEnum):
    """Why a value is not simply Good; each maps to one OPC UA status code (Part 4, 7.39)."""

    NON_SPECIFIC = "non_specific"
    LOCAL_OVERRIDE = "local_override"
    LAST_USABLE = "last_usable"
    NO_COMM_LAST_USABLE = "no_comm_last_usable"
    SENSOR_NOT_ACCURATE = "sensor_not_accurate"
    ENGINEERING_UNITS_EXCEEDED = "engineering_units_exceeded"
    NOT_CONNECTED = "not_connected"
    COMM_FAILURE = "comm_failure"
    TIMEOUT = "timeout"
    DEVICE_FAILURE = "device_failure"
    SENSOR_FAILURE = "sensor_failure"
    OUT_OF_SERVICE = "out_of_service"
    CONFIG_ERROR = "config_error"
    WAITING_FOR_INITIAL_DATA = "waiting_for_initial_data"


# OPC UA Part 6, Annex A (StatusCode.csv): the numeric codes of the sub-statuses above.
_STATUS_CODES: dict[tuple[Severity, Substatus], int] = {
    (Severity.GOOD, Substatus.NON_SPECIFIC): 0x00000000,
    (Severity.GOOD, Substatus.LOCAL_OVERRIDE): 0x00960000,
    (Severity.UNCERTAIN, Substatus.NON_SPECIFIC): 0x40000000,
    (Severity.UNCERTAIN, Substatus.NO_COMM_LAST_USABLE): 0x408F0000,
    (Severity.UNCERTAIN, Substatus.LAST_USABLE): 0x40900000,
    (Severity.UNCERTAIN, Substatus.SENSOR_NOT_ACCURATE): 0x40930000,
    (Severity.UNCERTAIN, Substatus.ENGINEERING_UNITS_EXCEEDED): 0x40940000,
    (Severity.BAD, Substatus.NON_SPECIFIC): 0x80000000,
    (Severity.BAD, Substatus.COMM_FAILURE): 0x80050000,
    (Severity.BAD, Substatus.TIMEOUT): 0x800A0000,
    (Severity.BAD, Substatus.WAITING_FOR_INITIAL_DATA): 0x80320000,
    (Severity.BAD, Substatus.CONFIG_ERROR): 0x80890000,
    (Severity.BAD, Substatus.NOT_CONNECTED): 0x808A0000,
    (Severity.BAD, Substatus.DEVICE_FAILURE): 0x808B0000,
    (Severity.BAD, Substatus.SENSOR_FAILURE): 0x808C0000,
    (Severity.BAD, Substatus.OUT_OF_SERVICE): 0x808D0000,
}
_FROM_STATUS_CODE: dict[int, tuple[Severity, Substatus]] = {
    code: key for key, code in _STATUS_CODES.items()
}


@dataclass(frozen=True, slots=True)
class Quality:
    """How far a value can be trusted: severity, sub-status and a human-readable reason."""

    severity: Severity
    substatus: Substatus = Substatus.NON_SPECIFIC
    reason: str = ""

    def __post_init__(self) -> None:
        if (self.severity, self.substatus) not in _STATUS_CODES:
            raise ValueError(f"{self.substatus.value} is not a {self.severity.name} sub-status")

    @classmethod
    def good(cls) -> Quality:
        """Return Good quality."""
        return _GOOD

    @classmethod
    def uncertain(cls, substatus: Substatus, reason: str) -> Quality:
        """Return Uncertain quality with a sub-status and a reason."""
        return cls(Severity.UNCERTAIN, substatus, reason)

    @classmethod
    def bad(cls, substatus: Substatus, reason: str) -> Quality:
        """Return Bad quality with a sub-status and a reason."""
        return cls(Severity.BAD, substatus, reason)

    @classmethod
    def from_status_code(cls, code: int, reason: str = "") -> Quality:
        """Rebuild a quality from its OPC UA status code; unknown codes keep their severity."""
        known = _FROM_STATUS_CODE.get(code)
        if known is not None:
            return cls(known[0], known[1], reason)
        severity = Severity(code & 0xC0000000) if code & 0xC0000000 != 0xC0000000 else Severity.BAD
        return cls(severity, Substatus.NON_SPECIFIC, reason or f"status 0x{code:08X}")

    @property
    def is_good(self) -> bool:
        """Whether the value is Good."""
        return self.severity is Severity.GOOD

    @property
    def status_code(self) -> int:
        """The OPC UA status code of this quality (Part 6, Annex A)."""
        return _STATUS_CODES[(self.severity, self.substatus)]

    def label(self) -> str:
        """Short text for tables and exports, e.g. ``good`` or ``bad:comm_failure``."""
        if self.substatus is Substatus.NON_SPECIFIC:
            return self.severity.name.lower()
        return f"{self.severity.name.lower()}:{self.substatus.value}"


_GOOD = Quality(Severity.GOOD)


class DataType(StrEnum):
    """Engineering data type of a tag, independent of how a protocol encodes it."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    DATETIME = "datetime"


@dataclass(frozen=True, slots=True)
class TagDef:
    """What a tag is: its name, where it lives, its unit, range and whether it may be commanded."""

    name: str
    device: str
    address: str
    data_type: DataType
    unit: str = ""
    low: float | None = None
    high: float | None = None
    writable: bool = False
    description: str = ""
    scale: float = 1.0
    """Engineering value = raw device value x ``scale`` + ``offset``; writes apply the inverse."""
    offset: float = 0.0
    """Added after scaling (see ``scale``)."""
    max_step: float | None = None
    """Largest change one command may make to a numeric tag (None: no limit)."""
    min_command_interval_s: float = 0.0
    """Shortest time between two commands written to this tag."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one tag with its quality and both timestamps (as an OPC UA DataValue)."""

    tag: str
    value: Value | None
    quality: Quality
    source_time: datetime
    server_time: datetime

    def __post_init__(self) -> None:
        # A Good sample always carries a value; a Bad one may not, and its quality says why.
        if self.value is None and self.quality.is_good:
            raise ValueError(f"Good sample of {self.tag} has no value")

    @property
    def numeric(self) -> float | None:
        """The value as a float for trends and rules, or None for non-numeric or missing values."""
        if isinstance(self.value, bool | int | float):
            return float(self.value)
        return None


class JsonArray(Sequence[_Item]):
    """A column kept as the JSON array text a database produced (RFC 8259: numbers, text, null):
    an answer in JSON carries the text as it is, and it is parsed only when a value is read.

    A day of one-second values is 86,400 numbers: parsing and encoding them again costs more
    than the database took to write them. ``loads`` parses the text (the standard library's
    by default; it must read every number back as the same double)."""

    __slots__ = ("_items", "_length", "_loads", "text")

    def __init__(self, text: str, length: int, loads: Callable[[str], Any] = json.loads) -> None:
        self.text = text
        """The JSON array, as text."""
        self._length = length
        self._loads = loads
        self._items: list[_Item] | None = None

    @property
    def items(self) -> list[_Item]:
        """The values as a list (parsed on first use; ValueError if the text is no such array)."""
        if self._items is None:
            items = self._loads(self.text)
            if not isinstance(items, list) or len(items) != self._length:
                raise ValueError(f"not a JSON array of {self._length} values")
            self._items = items
        return self._items

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> _Item: ...

    @overload
    def __getitem__(self, index: slice) -> list[_Item]: ...

    def __getitem__(self, index: int | slice) -> _Item | list[_Item]:
        return self.items[index]

    def __iter__(self) -> Iterator[_Item]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        # Equal to another JSON array or a list of the same values, as a list would be.
        if isinstance(other, JsonArray):
            return self.items == other.items
        return isinstance(other, list) and self.items == other

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which have no hash

    def __repr__(self) -> str:
        return f"JsonArray({self._length} values)"


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """Stored samples of one tag as parallel columns, times in milliseconds since 1970 UTC.

    The compact shape of a long read (a day of one-second values is 86,400 rows): no ``Sample``
    or datetime is built per row. Row ``i`` has quality ``qualities[quality_index[i]]``. A
    column may be a ``JsonArray``, the database's own JSON text, encoded as it is."""

    tag: str
    server_time_ms: Sequence[int]
    source_time_ms: Sequence[int]
    values: Sequence[Value | None]
    quality_index: Sequence[int]
    qualities: Sequence[Quality]

    def __post_init__(self) -> None:
        rows = len(self.server_time_ms)
        if not (len(self.source_time_ms) == len(self.values) == len(self.quality_index) == rows):
            raise ValueError(f"columns of {self.tag} differ in length")

    def __len__(self) -> int:
        return len(self.server_time_ms)

    def head(self, count: int) -> SampleColumns:
        """The first ``count`` rows (all of them when there are fewer)."""
        if count >= len(self):
            return self
        return SampleColumns(
            self.tag,
            self.server_time_ms[:count],
            self.source_time_ms[:count],
            self.values[:count],
            self.quality_index[:count],
            self.qualities,
        )

    @classmethod
    def of(cls, tag: str, samples: Sequence[Sample]) -> SampleColumns:
        """The columns of ``samples`` (all of ``tag``)."""
        indexes: dict[Quality, int] = {}
        quality_index: list[int] = []
        for sample in samples:
            index = indexes.get(sample.quality)
            if index is None:
                index = indexes[sample.quality] = len(indexes)
            quality_index.append(index)
        return cls(
            tag,
            [epoch_ms(sample.server_time) for sample in samples],
            [epoch_ms(sample.source_time) for sample in samples],
            [sample.value for sample in samples],
            quality_index,
            list(indexes),
        )


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since 1970 UTC of a timezone-aware time, rounded to the nearest."""
    return round(moment.timestamp() * 1000)


class CommandOrigin(StrEnum):
    """Who asked for a command."""

    OPERATOR = "operator"
    RULE = "rule"
    SCHEDULE = "schedule"


class CommandPriority(int, Enum):
    """Arbitration priority, lower wins, as in a BACnet priority array (ASHRAE 135, 19.2)."""

    MANUAL_OPERATOR = 8
    SAFETY = 10
    AUTOMATION = 12
    SCHEDULE = 14


class CommandStatus(StrEnum):
    """The outcome of a command."""

    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    OVERRIDDEN = "overridden"
    """Not written: a writer of higher priority holds the tag (a BACnet priority array's
    lower slot, ASHRAE 135 19.2)."""


def _new_command_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Command:
    """A request to write a value to a tag, with who asked, why and at which priority."""

    tag: str
    value: Value
    origin: CommandOrigin
    requested_by: str
    reason: str
    issued_at: datetime
    priority: CommandPriority = CommandPriority.AUTOMATION
    command_id: str = field(default_factory=_new_command_id)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of a command: status, reason and the value read back from the field."""

    command: Command
    status: CommandStatus
    reason: str
    completed_at: datetime
    readback: Value | None = None

    @property
    def confirmed(self) -> bool:
        """Whether the field confirmed the commanded value."""
        return self.status is CommandStatus.CONFIRMED


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's manual override of a tag: it holds against rules until released or
    ``until`` (None: until released), as the manual-operator slot of a BACnet priority array."""

    tag: str
    value: Value
    user: str
    reason: str
    since: datetime
    until: datetime | None = None
    priority: CommandPriority = CommandPriority.MANUAL_OPERATOR


@dataclass(frozen=True, slots=True)
class CommandLimits:
    """The limits a command to one tag must respect, as shown to an operator who selects it."""

    data_type: DataType
    low: float | None
    high: float | None
    unit: str
    max_step: float | None
    min_command_interval_s: float

    @classmethod
    def of(cls, tag: TagDef) -> CommandLimits:
        """The limits of ``tag``."""
        return cls(
            tag.data_type,
            tag.low,
            tag.high,
            tag.unit,
            tag.max_step,
            tag.min_command_interval_s,
        )


@dataclass(frozen=True, slots=True)
class Selection:
    """A point reserved for one user, and what an operate would act on now."""

    selection_id: str
    tag: str
    user: str
    current: Sample | None
    """The latest value and quality of the point, or None when none is known."""
    limits: CommandLimits
    blocking_interlock: str | None
    """The interlock that would block a command to the point now, or None."""
    selected_at: datetime
    expires_at: datetime


SCAN_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the scan latency histogram's buckets (wall seconds; +Inf is implied)."""


class ScanMode(StrEnum):
    """How a device's values reach the center."""

    POLL = "poll"
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True, slots=True)
class ScanDiagnostics:
    """Health of one device's acquisition for the HMI and metrics."""

    device: str
    healthy: bool
    scans: int
    scans_on_time: int
    failed_scans: int
    last_good_scan: datetime | None
    last_error: str
    latency_mean_ms: float
    latency_p95_ms: float
    connected: bool = False
    mode: ScanMode = ScanMode.POLL
    requests_per_s: float = 0.0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    """Failed scans by quality sub-status (e.g. ``not_connected``, ``timeout``)."""
    abandoned_reads: int = 0
    """Reads given up after their timeout."""
    stale_points: int = 0
    """Subscribed points currently Uncertain for lack of updates."""
    missed_scans: int = 0
    """Scans skipped because the previous one overran (counted as late in ``on_time_pct``)."""
    outages: int = 0
    """Times the device went from healthy to failed (each logged once, with its recovery)."""
    reconnects: int = 0
    """Times the connection was re-established after it had been lost."""
    latency_buckets: tuple[int, ...] = ()
    """Successful reads since start per ``SCAN_LATENCY_BUCKETS_S`` bucket (not cumulative;
    one more for +Inf): a histogram that, unlike the means, never forgets."""
    latency_sum_s: float = 0.0
    """Total wall seconds of the successful reads since start."""

    @property
    def on_time_pct(self) -> float:
        """Share of due scans started within one interval of their due time, in percent."""
        due = self.scans + self.missed_scans
        return 100.0 * self.scans_on_time / due if due else 100.0


class EventKind(StrEnum):
    """Journal categories of events."""

    ALARM = "alarm"
    COMMAND = "command"
    RULE = "rule"
    SYSTEM = "system"
    AUDIT = "audit"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that belongs in a journal: an alarm transition, a login, a rule change."""

    time: datetime
    kind: EventKind
    source: str
    message: str
    user: str = ""
    severity: int = 0


class Role(StrEnum):
    """What a user may do; each role includes the rights of the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    MAINTENANCE = "maintenance"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < maintenance < engineer < admin."""
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        """Whether this role has every right of ``other``."""
        return self.rank >= other.rank


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated person."""

    name: str
    role: Role
    areas: tuple[str, ...] = ()
    """The areas this user may command; empty: every area."""


@dataclass(frozen=True, slots=True)
class LoginGrant:
    """A successful login: the user and the token of the server-side session opened for them."""

    user: User
    session_token: str
