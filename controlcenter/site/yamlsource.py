"""YAML loading that remembers where every key and value came from, for error messages.

Site and rule files come from people and tools the center does not control, so the reader
refuses, with the file, line and column, everything that is not a plain YAML document of
mappings, lists and scalars:

- anything that is not a regular file (FIFOs and devices are refused before they are read, and a
  file is opened non-blocking so that a FIFO swapped in meanwhile cannot hang the reader);
- files over ``MAX_FILE_BYTES``;
- bytes that are not UTF-8, and characters YAML does not allow (YAML 1.1, 5.1: printable
  characters only; NUL and the other C0 controls except tab, LF and CR are refused); line
  breaks other than LF and CR LF;
- tags other than the core scalar, sequence and mapping tags, and values that do not fit their
  tag (``!!int abc``, ``!!bool maybe``);
- mapping keys that are not scalars (``? [a, b]``), merge keys (``<<``);
- nesting deeper than ``MAX_DEPTH``, recursive or undefined aliases, aliases that would add
  more than ``MAX_ALIAS_EXPANSION`` values to the document (the "billion laughs" attack), more
  than ``MAX_VALUES`` values in all, a second document;
- numbers longer than ``MAX_NUMBER_CHARACTERS`` characters.

Plain scalars that YAML 1.1 would read as dates stay text: these files have no date values.
At most ``MAX_PROBLEMS`` problems are reported for one file. Every problem names the file, and
where it can, the line and column (both counted from 1; a column counts characters, not bytes):
``file:line:column: location: reason``.
"""

from __future__ import annotations

import gc
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]
Spot = tuple[int, int]
"""A line and a column, both counted from 1."""

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest site file read. The largest site the center is benchmarked with (the simulated city
at scale 35, 49,555 tags) is 8.6 MB; anything much larger is not a site file."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists (a site file needs fewer than ten levels)."""
MAX_ALIAS_EXPANSION = 100_000
"""Most values that aliases may add to a document, counting every value an alias repeats."""
MAX_VALUES = 1_000_000
"""Most values (scalars, lists and mappings) in one file; the simulated city at scale 35 has
about 410,000."""
MAX_PROBLEMS = 200
"""Most problems reported for one file: enough to fix a file in a pass, bounded for a hostile
one."""
MAX_NUMBER_CHARACTERS = 64
"""Longest integer or float literal (Python refuses integer strings over 4,300 digits, and no
site setting needs more than a few digits)."""


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """One problem in a source file: where it is (line None: the file as a whole; column None:
    the line as a whole) and what."""

    file: str
    line: int | None
    location: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = f" {self.location}:" if self.location else ""
        line = f":{self.line}" if self.line is not None else ""
        column = f":{self.column}" if self.line is not None and self.column is not None else ""
        return f"{self.file}{line}{column}:{where} {self.message}"


class SourceFileError(Exception):
    """A source file was refused; ``problems`` lists every reason with its line."""

    def __init__(self, problems: list[SourceProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LocatedDocument:
    """A parsed YAML document with the spot (line, column) of every mapping key and value.

    ``spots`` maps a location to where it is written: for a mapping key's location, the key;
    for a list item, the item's first character. ``value_spots`` (recorded only when asked
    for, see ``parse_located_yaml``) maps the location of every scalar to the spot of the first
    character of its text, as ``value_spot`` describes.
    """

    file: str
    data: Any
    spots: dict[Location, Spot]
    value_spots: dict[Location, Spot] = field(default_factory=dict)

    def spot_of(self, location: Location) -> Spot:
        """Spot of the nearest enclosing element of ``location`` that has one."""
        for end in range(len(location), -1, -1):
            spot = self.spots.get(location[:end])
            if spot is not None:
                return spot
        return (1, 1)

    def line_of(self, location: Location) -> int:
        """Line of the nearest enclosing element of ``location`` that has one (1-based)."""
        return self.spot_of(location)[0]

    def problem(self, location: Location, message: str) -> SourceProblem:
        """A problem at ``location`` of this document (its key's or item's line and column)."""
        line, column = self.spot_of(location)
        return SourceProblem(self.file, line, format_location(location), message, column)


def format_location(location: Location) -> str:
    """Render a location as ``devices[0].scan_interval``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


_BASE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + name for name in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE, _TIMESTAMP, _VALUE = (
    _TAG + name for name in ("seq", "map", "merge", "timestamp", "value")
)
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL})
_MEMO_MAX_CHARACTERS = 64

# YAML 1.1, 5.1 (c-printable): tab, LF, CR, x20-x7E, NEL, xA0-xD7FF, xE000-xFFFD, x10000 up.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# YAML 1.1 (5.4) also breaks lines at a lone CR, NEL, LS and PS, where editors and this
# reader's own line count do not: such a file's line numbers would disagree with the editor's.
_OTHER_LINE_BREAK = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


class _LocatingLoader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """libyaml's parser (where PyYAML was built with it) with a memo of implicit resolution.

    A site of thousands of tags repeats the same keys and values; resolving each distinct plain
    scalar once against YAML 1.1's regular expressions instead of at every occurrence is a large
    part of the time of a big file. Dates stay text (a site file has none, and a bad date such
    as 2020-02-30 is then a bad value of its key, not a parser failure).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.resolved: dict[tuple[str, bool], str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        """The tag of an untagged node, memoised for short plain scalars."""
        if kind is not yaml.ScalarNode or len(value) > _MEMO_MAX_CHARACTERS:
            return self._resolve_uncached(kind, value, implicit)
        key = (value, implicit[0])
        tag = self.resolved.get(key)
        if tag is None:
            tag = self._resolve_uncached(kind, value, implicit)
            self.resolved[key] = tag
        return tag

    def _resolve_uncached(
        self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]
    ) -> str:
        tag = str(super().resolve(kind, value, implicit))
        return _STR if tag in (_TIMESTAMP, _VALUE) else tag


class _Refused(Exception):
    """Construction stops at once: the document cannot be read further (depth, aliases)."""

    def __init__(self, spot: Spot, message: str) -> None:
        super().__init__(message)
        self.spot = spot
        self.message = message


ValueSections = bool | frozenset[str]
"""Whose scalars' text spots to record: none (False), all (True), or those under these
top-level keys."""


def load_located_yaml(path: Path, *, record_values: ValueSections = False) -> LocatedDocument:
    """Parse a YAML file, recording spots; raise SourceFileError for unreadable or invalid YAML
    (``record_values``: see ``parse_located_yaml``)."""
    file = str(path)
    text = decode_source(file, read_source_bytes(path))
    with collector_paused():
        return _parse(file, text, record_values)


def parse_located_yaml(
    file: str, text: str, *, record_values: ValueSections = False, limit: int = MAX_FILE_BYTES
) -> LocatedDocument:
    """Parse YAML text named ``file`` (e.g. a stored version of a file) as a file is parsed.

    The text is held to the same rules as a file's bytes: at most ``limit`` bytes as UTF-8,
    printable characters and LF or CR LF line breaks only. With ``record_values``, the spot of
    the first character of every scalar's text (or of those under the named top-level keys) is
    recorded too (``LocatedDocument.value_spots``, see ``value_spot``), for values that are
    expressions.
    """
    if len(text) > limit or len(text.encode("utf-8", errors="surrogatepass")) > limit:
        raise SourceFileError([_whole_file(file, _too_large(limit))])
    check_source_text(file, text)
    with collector_paused():
        return _parse(file, text, record_values)


def read_source_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; raise SourceFileError otherwise.

    The file is checked before it is opened, opened non-blocking and checked again, so neither
    a FIFO (which would block) nor a device (``/dev/zero`` never ends) is ever read.
    """
    file = str(path)
    try:
        status = os.stat(path)
        _check_regular(file, status, limit)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC
        descriptor = os.open(path, flags)
    except OSError as err:
        raise SourceFileError([_whole_file(file, f"cannot read: {_os_reason(err)}")]) from err
    try:
        _check_regular(file, os.fstat(descriptor), limit)
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as err:
        raise SourceFileError([_whole_file(file, f"cannot read: {_os_reason(err)}")]) from err
    finally:
        os.close(descriptor)
    if total > limit:
        raise SourceFileError([_whole_file(file, _too_large(limit))])
    return b"".join(chunks)


def _check_regular(file: str, status: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise SourceFileError([_whole_file(file, f"not a regular file ({_kind(status.st_mode)})")])
    if status.st_size > limit:
        raise SourceFileError([_whole_file(file, _too_large(limit))])


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def _too_large(limit: int) -> str:
    return f"larger than {limit // (1024 * 1024)} MiB, the most a site or rule file may be"


def _os_reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _whole_file(file: str, message: str) -> SourceProblem:
    return SourceProblem(file, None, "", message)


def decode_source(file: str, data: bytes) -> str:
    """The text of a source file's bytes; raise SourceFileError (with the line and column of
    the first offending character) unless it is UTF-8 text that ``check_source_text`` accepts."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        column = len(data[line_start : err.start].decode("utf-8", errors="replace")) + 1
        byte = data[err.start]
        raise SourceFileError(
            [
                SourceProblem(
                    file, line, "", f"not UTF-8: byte 0x{byte:02X} cannot be decoded", column
                )
            ]
        ) from err
    check_source_text(file, text)
    return text


def check_source_text(file: str, text: str) -> None:
    """Raise SourceFileError at the first line break other than LF or CR LF, or the first
    character YAML does not allow (its line and column)."""
    other_break = _OTHER_LINE_BREAK.search(text)
    if other_break is not None:
        raise SourceFileError(
            [
                _at_offset(
                    file,
                    text,
                    other_break.start(),
                    f"line break U+{ord(other_break.group()):04X} is not allowed "
                    "(lines end with LF or CR LF)",
                )
            ]
        )
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        raise SourceFileError(
            [
                _at_offset(
                    file,
                    text,
                    bad.start(),
                    f"character U+{ord(bad.group()):04X} is not allowed "
                    "(YAML allows printable characters, tab and line breaks only)",
                )
            ]
        )


def _at_offset(file: str, text: str, offset: int, message: str) -> SourceProblem:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return SourceProblem(file, line, "", message, column)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a document is built and validated.

    Parsing and validation allocate hundreds of thousands of small objects and no cycles; the
    collector's repeated passes over them took most of the time of a large site file. The
    file's size is bounded (MAX_FILE_BYTES), so is what is allocated meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(file: str, text: str, record_values: ValueSections) -> LocatedDocument:
    loader = _LocatingLoader(text)
    builder = _Builder(file, loader, text, record_values)
    try:
        data = builder.document()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        # libyaml marks the end of the stream one line past the last line of a file that does
        # not end with a line break: name the end of the last line instead.
        lines = text.split("\n")
        if mark is None:
            line, column = 1, 1
        elif mark.line >= len(lines):
            line, column = len(lines), len(lines[-1].rstrip("\r")) + 1
        else:
            line, column = mark.line + 1, mark.column + 1
        raise SourceFileError(
            [SourceProblem(file, line, "", f"invalid YAML: {err.problem}", column)]
        ) from err
    except yaml.YAMLError as err:
        raise SourceFileError([SourceProblem(file, 1, "", f"invalid YAML: {err}", 1)]) from err
    except _Refused as err:
        line, column = err.spot
        raise SourceFileError([SourceProblem(file, line, "", err.message, column)]) from err
    finally:
        loader.dispose()
    if builder.problems:
        raise SourceFileError(builder.problems)
    return LocatedDocument(file, data, builder.spots, builder.value_spots)


class _Builder:
    """Builds Python values straight from libyaml's parse events, with the spot of every key
    and value.

    Building from events rather than from a composed node tree is faster (no node objects) and
    lets every limit stop the reading at once, at the spot where it is passed, before the
    rest of a hostile file costs time or memory.
    """

    def __init__(
        self, file: str, loader: _LocatingLoader, text: str, record_values: ValueSections
    ) -> None:
        self.file = file
        self.spots: dict[Location, Spot] = {}
        self.value_spots: dict[Location, Spot] = {}
        self.problems: list[SourceProblem] = []
        self._next_event = loader.get_event
        self._resolve = loader.resolve
        self._anchors: dict[str, tuple[Any, int]] = {}
        self._open_anchors: set[str] = set()
        self._values = 0
        self._alias_values = 0
        self._record_all = record_values is True
        self._record_sections = record_values if isinstance(record_values, frozenset) else None
        self._text = text
        self._text_lines: list[str] | None = None

    def document(self) -> Any:
        """The value of the stream's single document (None for an empty file)."""
        self._next_event()  # stream start
        event = self._next_event()
        if isinstance(event, yaml.StreamEndEvent):
            return None
        first = self._next_event()
        value, _ = self._build(first, (), 0)
        self._next_event()  # document end
        event = self._next_event()
        if not isinstance(event, yaml.StreamEndEvent):
            raise _Refused(_spot(event), "a file is one YAML document; another starts here")
        return value

    def _build(self, event: yaml.Event, location: Location, depth: int) -> tuple[Any, int]:
        """The value that starts with ``event`` and how many values it holds once aliases are
        expanded."""
        spot = _spot(event)
        self.spots.setdefault(location, spot)
        if isinstance(event, yaml.AliasEvent):
            return self._alias(str(event.anchor), spot)
        self._values += 1
        if self._values > MAX_VALUES:
            raise _Refused(spot, f"more than {MAX_VALUES:,} values in one file")
        if not isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            raise _Refused(spot, f"unexpected {type(event).__name__}")  # the parser prevents it
        anchor = event.anchor
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = self._resolve(yaml.ScalarNode, event.value, event.implicit)
            if self._record_all or (
                self._record_sections is not None
                and location
                and location[0] in self._record_sections
            ):
                if self._text_lines is None:
                    self._text_lines = self._text.split("\n")
                self.value_spots[location] = value_spot(event, self._text_lines)
            built: tuple[Any, int] = (self._scalar(tag, event.value, spot, location), 1)
        else:
            if depth >= MAX_DEPTH:
                raise _Refused(spot, f"nested deeper than {MAX_DEPTH} levels")
            if anchor is not None:
                self._open_anchors.add(anchor)
            if isinstance(event, yaml.SequenceStartEvent):
                self._check_tag(event.tag, _SEQ, "a list", spot, location)
                built = self._sequence(location, depth)
            else:
                self._check_tag(event.tag, _MAP, "a mapping", spot, location)
                built = self._mapping(location, depth)
            if anchor is not None:
                self._open_anchors.discard(anchor)
        if anchor is not None:
            self._anchors[anchor] = built
        return built

    def _alias(self, anchor: str, spot: Spot) -> tuple[Any, int]:
        if anchor in self._open_anchors:
            raise _Refused(spot, f"recursive alias: '*{anchor[:40]}' is inside its own anchor")
        built = self._anchors.get(anchor)
        if built is None:
            raise _Refused(spot, f"alias '*{anchor[:40]}' names no anchor before it")
        # The value is shared, not rebuilt, but what it repeats still counts, so that a few
        # lines cannot stand for billions of values once validated.
        self._alias_values += built[1]
        if self._alias_values > MAX_ALIAS_EXPANSION:
            raise _Refused(
                spot,
                f"aliases repeat more than {MAX_ALIAS_EXPANSION:,} values (alias expansion limit)",
            )
        return built

    def _sequence(self, location: Location, depth: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        size = 1
        while True:
            event = self._next_event()
            if isinstance(event, yaml.SequenceEndEvent):
                return items, size
            value, value_size = self._build(event, (*location, len(items)), depth + 1)
            items.append(value)
            size += value_size

    def _mapping(self, location: Location, depth: int) -> tuple[dict[str, Any], int]:
        mapping: dict[str, Any] = {}
        size = 1
        while True:
            event = self._next_event()
            if isinstance(event, yaml.MappingEndEvent):
                return mapping, size
            key_spot = _spot(event)
            key = self._key(event, location, depth)
            if key is None:
                self._build(self._next_event(), location, depth + 1)  # read past its value
                continue
            child = (*location, key)
            if key in mapping:
                # PyYAML keeps the last of two equal keys silently; a site file must not.
                self._problem(key_spot, child, f"duplicate key '{key[:60]}'")
            self.spots[child] = key_spot
            mapping[key], value_size = self._build(self._next_event(), child, depth + 1)
            size += value_size

    def _key(self, event: yaml.Event, location: Location, depth: int) -> str | None:
        """The key that ``event`` starts, or None (with a problem) when it cannot be one."""
        spot = _spot(event)
        if not isinstance(event, yaml.ScalarEvent):
            self._build(event, location, depth + 1)  # read past it
            self._problem(spot, location, "a key must be a plain name, not a list, map or alias")
            return None
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            self._problem(spot, location, "merge keys ('<<') are not supported")
            return None
        if tag not in _SCALAR_TAGS:
            self._check_tag(tag, _STR, "a key", spot, location)
            return None
        # Keys are names: their text, whatever YAML 1.1 would read it as (1, true, ~).
        return str(event.value)

    def _scalar(self, tag: str, text: str, spot: Spot, location: Location) -> Any:
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag not in _SCALAR_TAGS:
            self._check_tag(tag, _STR, "a scalar", spot, location)
            return text
        if tag == _BOOL:
            value = _CONSTRUCTOR.bool_values.get(text.lower())
            if value is None:
                self._problem(spot, location, f"{_short(text)} is not a bool")
            return value
        if len(text) > MAX_NUMBER_CHARACTERS:
            self._problem(
                spot,
                location,
                f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARACTERS})",
            )
            return None
        node = yaml.ScalarNode(tag, text)
        try:
            if tag == _INT:
                return _CONSTRUCTOR.construct_yaml_int(node)
            return _CONSTRUCTOR.construct_yaml_float(node)
        except (ValueError, ArithmeticError, LookupError):
            # The text does not fit its explicit tag (!!int abc; PyYAML's constructors raise
            # IndexError for an empty or sign-only '!!int ""'): a problem of this value.
            kind = "an integer" if tag == _INT else "a number"
            self._problem(spot, location, f"{_short(text)} is not {kind}")
            return None

    def _check_tag(
        self, tag: str | None, expected: str, what: str, spot: Spot, location: Location
    ) -> None:
        """Record a problem unless ``tag`` is absent, non-specific or ``expected``."""
        if tag is None or tag in ("!", expected):
            return
        shown = _short(tag.replace(_TAG, "!!"))
        if tag in _SCALAR_TAGS or tag in (_SEQ, _MAP):
            message = f"tag {shown} does not fit {what}"
        else:
            message = (
                f"tag {shown} is not allowed (only !!str, !!int, !!float, !!bool, !!null, "
                "!!seq and !!map)"
            )
        self._problem(spot, location, message)

    def _problem(self, spot: Spot, location: Location, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            line, column = spot
            self.problems.append(
                SourceProblem(self.file, line, format_location(location), message, column)
            )


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _spot(event: yaml.Event) -> Spot:
    """The 1-based line and column where ``event`` starts (libyaml always marks events)."""
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def value_spot(event: yaml.ScalarEvent, text_lines: list[str]) -> Spot:
    """The spot of the first character of a scalar's text (for an expression's columns).

    - plain scalar: where it starts;
    - single- or double-quoted scalar: one column after the opening quote (a column further
      into the text maps one to one onto the file while the text stays on one line and holds
      no escapes);
    - literal (``|``) or folded (``>``) block scalar: the line after the indicator, at the
      block's indentation (its content lines are the file's lines without that indentation).
    """
    line, column = _spot(event)
    style = event.style
    if style in ("'", '"'):
        return (line, column + 1)
    if style in ("|", ">"):
        content = next(
            (
                text_lines[index]
                for index in range(line, len(text_lines))
                if text_lines[index].strip(" \r")
            ),
            "",
        )
        indent = len(content) - len(content.lstrip(" "))
        first_value_line = event.value.split("\n", 1)[0]
        # An explicit indentation indicator (|2) may leave spaces at the start of the text.
        indent -= len(first_value_line) - len(first_value_line.lstrip(" "))
        return (line + 1, max(indent, 0) + 1)
    return (line, column)


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."
