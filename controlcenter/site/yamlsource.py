"""YAML loading that remembers where every key and value came from, for error messages.

A site file comes from people and tools the center does not control, so the reader refuses, with
the file and line, everything that is not a plain YAML document of mappings, lists and scalars:

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

Plain scalars that YAML 1.1 would read as dates stay text: a site file has no date values.
At most ``MAX_PROBLEMS`` problems are reported for one file.
"""

from __future__ import annotations

import gc
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]

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
    """One problem in a source file: where it is (line None: the file as a whole) and what."""

    file: str
    line: int | None
    location: str
    message: str

    def __str__(self) -> str:
        where = f" {self.location}:" if self.location else ""
        line = f":{self.line}" if self.line is not None else ""
        return f"{self.file}{line}:{where} {self.message}"


class SourceFileError(Exception):
    """A source file was refused; ``problems`` lists every reason with its line."""

    def __init__(self, problems: list[SourceProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LocatedDocument:
    """A parsed YAML document with the line of every mapping key and value."""

    file: str
    data: Any
    lines: dict[Location, int]

    def line_of(self, location: Location) -> int:
        """Line of the nearest enclosing element of ``location`` that has one (1-based)."""
        for end in range(len(location), -1, -1):
            line = self.lines.get(location[:end])
            if line is not None:
                return line
        return 1


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

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_located_yaml(path: Path) -> LocatedDocument:
    """Parse a YAML file, recording lines; raise SourceFileError for unreadable or invalid YAML."""
    file = str(path)
    data = read_source_bytes(path)
    text = _decode(file, data)
    with collector_paused():
        return _parse(file, text)


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
    return f"larger than {limit // (1024 * 1024)} MiB, the most a site file may be"


def _os_reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _whole_file(file: str, message: str) -> SourceProblem:
    return SourceProblem(file, None, "", message)


def _decode(file: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        byte = data[err.start]
        raise SourceFileError(
            [SourceProblem(file, line, "", f"not UTF-8: byte 0x{byte:02X} cannot be decoded")]
        ) from err
    other_break = _OTHER_LINE_BREAK.search(text)
    if other_break is not None:
        line = text.count("\n", 0, other_break.start()) + 1
        raise SourceFileError(
            [
                SourceProblem(
                    file,
                    line,
                    "",
                    f"line break U+{ord(other_break.group()):04X} is not allowed "
                    "(lines end with LF or CR LF)",
                )
            ]
        )
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise SourceFileError(
            [
                SourceProblem(
                    file,
                    line,
                    "",
                    f"character U+{ord(bad.group()):04X} is not allowed "
                    "(YAML allows printable characters, tab and line breaks only)",
                )
            ]
        )
    return text


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


def _parse(file: str, text: str) -> LocatedDocument:
    loader = _LocatingLoader(text)
    builder = _Builder(file, loader)
    try:
        data = builder.document()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        # libyaml marks the end of the stream one line past the last line of a file that does
        # not end with a line break: name the last line instead.
        last_line = text.count("\n") + 1
        line = min(mark.line + 1, last_line) if mark is not None else 1
        raise SourceFileError(
            [SourceProblem(file, line, "", f"invalid YAML: {err.problem}")]
        ) from err
    except yaml.YAMLError as err:
        raise SourceFileError([SourceProblem(file, 1, "", f"invalid YAML: {err}")]) from err
    except _Refused as err:
        raise SourceFileError([SourceProblem(file, err.line, "", err.message)]) from err
    finally:
        loader.dispose()
    if builder.problems:
        raise SourceFileError(builder.problems)
    return LocatedDocument(file, data, builder.lines)


class _Builder:
    """Builds Python values straight from libyaml's parse events, with the line of every key
    and value.

    Building from events rather than from a composed node tree is faster (no node objects) and
    lets every limit stop the reading at once, at the line where it is passed, before the
    rest of a hostile file costs time or memory.
    """

    def __init__(self, file: str, loader: _LocatingLoader) -> None:
        self.file = file
        self.lines: dict[Location, int] = {}
        self.problems: list[SourceProblem] = []
        self._next_event = loader.get_event
        self._resolve = loader.resolve
        self._anchors: dict[str, tuple[Any, int]] = {}
        self._open_anchors: set[str] = set()
        self._values = 0
        self._alias_values = 0

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
            raise _Refused(_line(event), "a site file is one YAML document; another starts here")
        return value

    def _build(self, event: yaml.Event, location: Location, depth: int) -> tuple[Any, int]:
        """The value that starts with ``event`` and how many values it holds once aliases are
        expanded."""
        line = _line(event)
        self.lines.setdefault(location, line)
        if isinstance(event, yaml.AliasEvent):
            return self._alias(str(event.anchor), line)
        self._values += 1
        if self._values > MAX_VALUES:
            raise _Refused(line, f"more than {MAX_VALUES:,} values in one site file")
        if not isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            raise _Refused(line, f"unexpected {type(event).__name__}")  # the parser prevents it
        anchor = event.anchor
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = self._resolve(yaml.ScalarNode, event.value, event.implicit)
            built: tuple[Any, int] = (self._scalar(tag, event.value, line, location), 1)
        else:
            if depth >= MAX_DEPTH:
                raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels")
            if anchor is not None:
                self._open_anchors.add(anchor)
            if isinstance(event, yaml.SequenceStartEvent):
                self._check_tag(event.tag, _SEQ, "a list", line, location)
                built = self._sequence(location, depth)
            else:
                self._check_tag(event.tag, _MAP, "a mapping", line, location)
                built = self._mapping(location, depth)
            if anchor is not None:
                self._open_anchors.discard(anchor)
        if anchor is not None:
            self._anchors[anchor] = built
        return built

    def _alias(self, anchor: str, line: int) -> tuple[Any, int]:
        if anchor in self._open_anchors:
            raise _Refused(line, f"recursive alias: '*{anchor[:40]}' is inside its own anchor")
        built = self._anchors.get(anchor)
        if built is None:
            raise _Refused(line, f"alias '*{anchor[:40]}' names no anchor before it")
        # The value is shared, not rebuilt, but what it repeats still counts, so that a few
        # lines cannot stand for billions of values once validated.
        self._alias_values += built[1]
        if self._alias_values > MAX_ALIAS_EXPANSION:
            raise _Refused(
                line,
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
            key_line = _line(event)
            key = self._key(event, location, depth)
            if key is None:
                self._build(self._next_event(), location, depth + 1)  # read past its value
                continue
            child = (*location, key)
            if key in mapping:
                # PyYAML keeps the last of two equal keys silently; a site file must not.
                self._problem(key_line, child, f"duplicate key '{key[:60]}'")
            self.lines[child] = key_line
            mapping[key], value_size = self._build(self._next_event(), child, depth + 1)
            size += value_size

    def _key(self, event: yaml.Event, location: Location, depth: int) -> str | None:
        """The key that ``event`` starts, or None (with a problem) when it cannot be one."""
        line = _line(event)
        if not isinstance(event, yaml.ScalarEvent):
            self._build(event, location, depth + 1)  # read past it
            self._problem(line, location, "a key must be a plain name, not a list, map or alias")
            return None
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            self._problem(line, location, "merge keys ('<<') are not supported")
            return None
        if tag not in _SCALAR_TAGS:
            self._check_tag(tag, _STR, "a key", line, location)
            return None
        # Keys are names: their text, whatever YAML 1.1 would read it as (1, true, ~).
        return str(event.value)

    def _scalar(self, tag: str, text: str, line: int, location: Location) -> Any:
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag not in _SCALAR_TAGS:
            self._check_tag(tag, _STR, "a scalar", line, location)
            return text
        if tag == _BOOL:
            value = _CONSTRUCTOR.bool_values.get(text.lower())
            if value is None:
                self._problem(line, location, f"{_short(text)} is not a bool")
            return value
        if len(text) > MAX_NUMBER_CHARACTERS:
            self._problem(
                line,
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
            self._problem(line, location, f"{_short(text)} is not {kind}")
            return None

    def _check_tag(
        self, tag: str | None, expected: str, what: str, line: int, location: Location
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
        self._problem(line, location, message)

    def _problem(self, line: int, location: Location, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(SourceProblem(self.file, line, format_location(location), message))


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _line(event: yaml.Event) -> int:
    """The 1-based line where ``event`` starts (libyaml always marks events)."""
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."
