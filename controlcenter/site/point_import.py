"""Bulk engineering: a CSV point list becomes devices, tags and assets of a site file.

Each CSV row is one point of one asset (columns ``asset, point, address, data_type, unit, low,
high, writable, device, protocol, endpoint``; optional ``description, unit_id,
device_instance, scan_interval, type``). The tag is named ``<asset>.<point>``; every distinct
device becomes a device entry, every distinct asset an asset of the template's type (or the
row's ``type``), so the site's alarm templates for that type apply to it.

The result is written as the generated demo site is: one YAML flow mapping per line, so every
problem keeps its own line. It is then checked exactly as a site file is (``load_site``, with
the header it will be pasted under) and each problem is reported with the CSV line it came
from. Hostile lists are refused before that, with line and reason: bytes that are not UTF-8,
cells that a spreadsheet would run as a formula (``=cmd|…``, ``+``, ``@``, a leading ``-``
that is no number), oversized cells or files, and duplicate tag names.

``render_fragment`` is also what ``controlcenter discover`` prints its findings with.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from controlcenter.model import DataType, TagDef
from controlcenter.site.config import DOTTED_NAME, SiteConfig, load_site
from controlcenter.site.yamlsource import SourceFileError

MAX_FIELD = 500
"""Longest CSV cell, in characters (a description is the longest a point needs)."""
MAX_ROWS = 200_000
"""Most points one list may hold (the site file's own bound on tags)."""
MAX_BYTES = 64 * 1024 * 1024
"""Largest CSV file read."""
REQUIRED = ("asset", "point", "address", "device", "protocol", "endpoint")
OPTIONAL = (
    "data_type",
    "unit",
    "low",
    "high",
    "writable",
    "description",
    "unit_id",
    "device_instance",
    "scan_interval",
    "type",
)
FORMULA_STARTS = ("=", "+", "@", "\t", "\r", "-")
"""A cell starting so is run as a formula by spreadsheets (OWASP "CSV Injection")."""
MINIMAL_HEADER = "site: {name: Imported site, latitude: 0.0, longitude: 0.0, timezone: UTC}\n"
"""The header a fragment is checked under when the engineer gives none."""

_TRUE = frozenset({"true", "yes", "1", "y", "x"})
_FALSE = frozenset({"false", "no", "0", "n", ""})
_NAME = re.compile(DOTTED_NAME)
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True, slots=True)
class LineProblem:
    """One problem of the point list: the file, its line and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PointListError(Exception):
    """The point list was refused; ``problems`` lists each line and reason."""

    def __init__(self, problems: Sequence[LineProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A device entry of a site file (the fields its protocol needs)."""

    name: str
    protocol: str
    endpoint: str
    scan_interval_s: float | None = None
    unit_id: int | None = None
    device_instance: int | None = None

    def fields(self) -> dict[str, object]:
        """The entry's keys and values as the site file spells them."""
        entry: dict[str, object] = {
            "name": self.name,
            "protocol": self.protocol,
            "endpoint": self.endpoint,
        }
        if self.scan_interval_s is not None:
            entry["scan_interval"] = self.scan_interval_s
        if self.unit_id is not None:
            entry["unit_id"] = self.unit_id
        if self.device_instance is not None:
            entry["device_instance"] = self.device_instance
        return entry


@dataclass(frozen=True, slots=True)
class AssetEntry:
    """An asset entry: a name and a type the site's alarm templates are keyed by."""

    name: str
    type: str

    def fields(self) -> dict[str, object]:
        """The entry's keys and values."""
        return {"name": self.name, "type": self.type}


@dataclass
class Fragment:
    """Devices, tags and assets for a site file, and the source line of each entry."""

    devices: list[DeviceEntry] = field(default_factory=list)
    tags: list[TagDef] = field(default_factory=list)
    assets: list[AssetEntry] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    """Per tag name, a remark shown as a comment after its line (e.g. a guessed type)."""
    device_lines: list[int] = field(default_factory=list)
    tag_lines: list[int] = field(default_factory=list)
    asset_lines: list[int] = field(default_factory=list)


def flow(fields: Mapping[str, object]) -> str:
    """One YAML flow mapping; JSON scalars are valid YAML and quote whatever needs it."""
    return "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in fields.items()) + "}"


def tag_fields(tag: TagDef) -> dict[str, object]:
    """A tag's keys and values as the site file spells them (defaults left out)."""
    fields: dict[str, object] = {
        "name": tag.name,
        "device": tag.device,
        "address": tag.address,
        "data_type": tag.data_type.value,
    }
    if tag.unit:
        fields["unit"] = tag.unit
    if tag.low is not None and tag.high is not None and tag.low < tag.high:
        fields["range"] = [tag.low, tag.high]
    if tag.writable:
        fields["writable"] = True
    if tag.description:
        fields["description"] = tag.description
    return fields


def render_fragment(fragment: Fragment, *, heading: str = "") -> tuple[str, dict[int, int]]:
    """The fragment as site-file YAML (one entry per line) and, for each line (1-based) that
    holds an entry, the source line the entry came from (when known)."""
    lines: list[str] = []
    origin: dict[int, int] = {}
    if heading:
        lines.extend(f"# {text}" if text else "#" for text in heading.splitlines())

    def section(name: str, rows: Iterable[tuple[str, int | None]]) -> None:
        lines.append(f"{name}:")
        for text, source in rows:
            lines.append(f"  - {text}")
            if source is not None:
                origin[len(lines)] = source

    def at(sources: Sequence[int], index: int) -> int | None:
        return sources[index] if index < len(sources) else None

    section(
        "devices",
        ((flow(d.fields()), at(fragment.device_lines, i)) for i, d in enumerate(fragment.devices)),
    )
    lines.append("")
    section(
        "tags",
        (
            (_noted(flow(tag_fields(t)), fragment.notes.get(t.name, "")), at(fragment.tag_lines, i))
            for i, t in enumerate(fragment.tags)
        ),
    )
    if fragment.assets:
        lines.append("")
        section(
            "assets",
            (
                (flow(a.fields()), at(fragment.asset_lines, i))
                for i, a in enumerate(fragment.assets)
            ),
        )
    return "\n".join(lines) + "\n", origin


def _noted(text: str, note: str) -> str:
    # A YAML comment ends the line: no line break may hide in the note.
    return f"{text}  # {' '.join(note.split())}" if note else text


# -- CSV point lists --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """``--template TYPE[=FILE]``: the asset type, and a file of its alarm templates (a YAML
    list, as under ``alarm_templates.<type>`` of a site file) or None for the header's."""

    asset_type: str
    file: Path | None = None


def parse_template(text: str) -> Template:
    """``TYPE`` or ``TYPE=FILE``; raises ValueError for a type that is no name."""
    asset_type, _, file = text.partition("=")
    asset_type = asset_type.strip()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", asset_type):
        raise ValueError(f"template type {asset_type!r}: lower-case letters, digits and _")
    return Template(asset_type, Path(file) if file else None)


def read_point_list(data: bytes, file: str, template: Template) -> Fragment:
    """The fragment a CSV point list describes; raises PointListError with every refused line
    (at most 200) and why."""
    problems: list[LineProblem] = []
    if len(data) > MAX_BYTES:
        raise PointListError([LineProblem(file, 1, f"larger than {MAX_BYTES} bytes")])
    text = _decode(data, file)
    fragment = Fragment()
    devices: dict[str, tuple[DeviceEntry, int]] = {}
    assets: dict[str, int] = {}
    tags: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous_end = 0
    header: list[str] | None = None
    try:
        for row in _bounded(reader):
            line = previous_end + 1
            previous_end = reader.line_num
            if header is None:
                header = [cell.strip().lower() for cell in row]
                _check_header(header, file, line)
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(tags) >= MAX_ROWS:
                problems.append(LineProblem(file, line, f"more than {MAX_ROWS} points"))
                break
            try:
                cells = _cells(header, row)
                tag, device, asset_type = _point(cells, template)
            except ValueError as err:
                problems.append(LineProblem(file, line, str(err)))
                continue
            if tag.name in tags:
                problems.append(
                    LineProblem(
                        file,
                        line,
                        f"tag {tag.name} is defined twice (first on line {tags[tag.name]})",
                    )
                )
                continue
            known = devices.get(device.name)
            if known is not None and known[0] != device:
                problems.append(
                    LineProblem(
                        file,
                        line,
                        f"device {device.name} differs from its definition on line {known[1]} "
                        "(protocol, endpoint, unit_id, device_instance or scan_interval)",
                    )
                )
                continue
            tags[tag.name] = line
            fragment.tags.append(tag)
            fragment.tag_lines.append(line)
            if known is None:
                devices[device.name] = (device, line)
                fragment.devices.append(device)
                fragment.device_lines.append(line)
            asset = cells["asset"]
            if asset not in assets:
                assets[asset] = line
                fragment.assets.append(AssetEntry(asset, asset_type))
                fragment.asset_lines.append(line)
            if len(problems) >= 200:
                break
    except csv.Error as err:
        problems.append(LineProblem(file, previous_end + 1, f"not a readable CSV row: {err}"))
    except _TooLong as err:
        problems.append(LineProblem(file, previous_end + 1, str(err)))
    if header is None and not problems:
        problems.append(LineProblem(file, 1, "empty: a header row and one row per point"))
    if problems:
        raise PointListError(problems)
    if not fragment.tags:
        raise PointListError([LineProblem(file, 2, "no points after the header row")])
    return fragment


class _TooLong(ValueError):
    """A CSV cell beyond MAX_FIELD."""


def _bounded(reader: Iterable[list[str]]) -> Iterable[list[str]]:
    # csv's own field limit (131,072) is far above any point's; check each cell as read.
    for row in reader:
        for cell in row:
            if len(cell) > MAX_FIELD:
                raise _TooLong(f"a cell of {len(cell)} characters (at most {MAX_FIELD})")
        yield row


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise PointListError(
            [LineProblem(file, line, f"not UTF-8 (byte {data[err.start]:#04x}); save as UTF-8")]
        ) from err


def _check_header(header: list[str], file: str, line: int) -> None:
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in REQUIRED + OPTIONAL]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    reasons = []
    if missing:
        reasons.append(f"missing columns {', '.join(missing)}")
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        reasons.append(f"unknown columns {shown} (known: {', '.join(REQUIRED + OPTIONAL)})")
    if duplicated:
        reasons.append(f"columns named twice: {', '.join(duplicated)}")
    if reasons:
        raise PointListError([LineProblem(file, line, "; ".join(reasons))])


def _cells(header: list[str], row: list[str]) -> dict[str, str]:
    if len(row) > len(header):
        raise ValueError(f"{len(row)} cells, the header names {len(header)}")
    cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
    for name, value in cells.items():
        if value.startswith(FORMULA_STARTS) and not _NUMBER.match(value):
            raise ValueError(f"{name}: {value[:20]!r} would run as a spreadsheet formula")
        if any(ord(char) < 32 for char in value):
            raise ValueError(f"{name}: control characters")
    return cells


def _point(cells: Mapping[str, str], template: Template) -> tuple[TagDef, DeviceEntry, str]:
    """The tag, its device and its asset's type of one row (ValueError: why not)."""
    for name in REQUIRED:
        if not cells.get(name):
            raise ValueError(f"{name}: empty")
    asset, point = cells["asset"], cells["point"]
    name = f"{asset}.{point}"
    if not _NAME.match(asset) or not _NAME.match(name):
        raise ValueError(f"tag name {name!r}: lower-case dotted names (a-z, 0-9, _)")
    data_type = cells.get("data_type") or "float"
    try:
        kind = DataType(data_type)
    except ValueError:
        raise ValueError(
            f"data_type {data_type!r}: one of {', '.join(t.value for t in DataType)}"
        ) from None
    low, high = _number(cells, "low"), _number(cells, "high")
    if (low is None) != (high is None):
        raise ValueError("low and high go together")
    if low is not None and high is not None and not low < high:
        raise ValueError(f"low {low:g} must be below high {high:g}")
    writable = cells.get("writable", "").lower()
    if writable not in _TRUE | _FALSE:
        raise ValueError(f"writable {writable!r}: true or false")
    asset_type = cells.get("type") or template.asset_type
    if not re.fullmatch(r"[a-z][a-z0-9_]*", asset_type):
        raise ValueError(f"type {asset_type!r}: lower-case letters, digits and _")
    tag = TagDef(
        name=name,
        device=cells["device"],
        address=cells["address"],
        data_type=kind,
        unit=cells.get("unit", ""),
        low=low,
        high=high,
        writable=writable in _TRUE,
        description=cells.get("description", ""),
    )
    device = DeviceEntry(
        name=cells["device"],
        protocol=cells["protocol"].lower(),
        endpoint=cells["endpoint"],
        scan_interval_s=_number(cells, "scan_interval"),
        unit_id=_integer(cells, "unit_id"),
        device_instance=_integer(cells, "device_instance"),
    )
    return tag, device, asset_type


def _number(cells: Mapping[str, str], name: str) -> float | None:
    text = cells.get(name, "")
    if not text:
        return None
    if not _NUMBER.match(text) or len(text) > 32:
        raise ValueError(f"{name} {text[:20]!r} is no number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{name} {text!r} is not finite")
    return value


def _integer(cells: Mapping[str, str], name: str) -> int | None:
    text = cells.get(name, "")
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise ValueError(f"{name} {text[:20]!r} is no whole number")
    return int(text)


# -- checking as a site file ------------------------------------------------------------------


def header_with_templates(header_text: str, template: Template) -> str:
    """The header, with the template file's alarms added as ``alarm_templates.<type>`` (a type
    the header already defines is refused: one definition per type)."""
    if template.file is None:
        return header_text
    alarms = yaml.safe_load(template.file.read_text(encoding="utf-8"))
    if not isinstance(alarms, list):
        raise ValueError(f"{template.file}: a YAML list of alarm templates")
    document = yaml.safe_load(header_text) or {}
    if not isinstance(document, dict):
        raise ValueError("the site header must be a mapping")
    existing = document.get("alarm_templates") or {}
    if template.asset_type in existing:
        raise ValueError(
            f"the header already has alarm templates for {template.asset_type}: "
            "give the type without a file"
        )
    block = yaml.safe_dump(
        {template.asset_type: alarms}, sort_keys=False, default_flow_style=False, width=1000
    )
    indented = "".join(f"  {line}\n" for line in block.splitlines())
    if existing:
        # The header's alarm_templates section stays as written; the new type is appended by
        # re-dumping that section only.
        document["alarm_templates"] = {**existing, template.asset_type: alarms}
        return yaml.safe_dump(document, sort_keys=False, width=1000)
    return header_text.rstrip("\n") + "\n\nalarm_templates:\n" + indented


def check_as_site(
    header_text: str, fragment_text: str, origin: Mapping[int, int], file: str, directory: Path
) -> tuple[SiteConfig, str]:
    """Load ``header_text`` + ``fragment_text`` as a site file in ``directory`` (where its
    relative paths resolve); returns the site and the whole text, or raises PointListError
    with each problem at its CSV line (problems of the header at the header's line)."""
    header = header_text.rstrip("\n") + "\n\n"
    offset = header.count("\n")
    text = header + fragment_text
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", dir=directory, encoding="utf-8", delete=False
    ) as handle:
        handle.write(text)
        path = Path(handle.name)
    try:
        return load_site(path), text
    except SourceFileError as err:
        problems = []
        for problem in err.problems:
            line = problem.line - offset if problem.line is not None else None
            key = problem.location.rsplit(".", 1)[-1] if problem.location else ""
            where = f"{key}: " if key and "[" not in key else ""
            if line is not None and line in origin:
                problems.append(LineProblem(file, origin[line], f"{where}{problem.message}"))
            else:
                shown = problem.line if problem.line is not None else 1
                problems.append(LineProblem("site header", shown, f"{where}{problem.message}"))
        raise PointListError(problems) from err
    finally:
        path.unlink(missing_ok=True)
