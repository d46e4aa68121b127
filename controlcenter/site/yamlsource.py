"""YAML loading that remembers where every key and value came from, for error messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """One problem in a source file: where it is and what is wrong."""

    file: str
    line: int
    location: str
    message: str

    def __str__(self) -> str:
        where = f" {self.location}:" if self.location else ""
        return f"{self.file}:{self.line}:{where} {self.message}"


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


_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_located_yaml(path: Path) -> LocatedDocument:
    """Parse a YAML file, recording lines; raise SourceFileError for unreadable or invalid YAML."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SourceFileError([SourceProblem(file, 1, "", f"cannot read: {err.strerror}")]) from err
    # libyaml's parser (CSafeLoader) where PyYAML was built with it: a site of thousands of
    # tags parses in a fraction of the pure-Python time; the nodes carry the same line marks.
    loader = _SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        lines: dict[Location, int] = {}
        problems: list[SourceProblem] = []
        data = _construct(loader, node, (), lines, problems, file) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SourceFileError(
            [SourceProblem(file, line, "", f"invalid YAML: {err.problem}")]
        ) from err
    finally:
        loader.dispose()
    if problems:
        raise SourceFileError(problems)
    return LocatedDocument(file, data, lines)


def _construct(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    location: Location,
    lines: dict[Location, int],
    problems: list[SourceProblem],
    file: str,
) -> Any:
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            child = (*location, key)
            if key in mapping:
                # PyYAML keeps the last of two equal keys silently; a site file must not.
                problems.append(
                    SourceProblem(
                        file,
                        key_node.start_mark.line + 1,
                        format_location(child),
                        f"duplicate key '{key}'",
                    )
                )
            lines[child] = key_node.start_mark.line + 1
            mapping[key] = _construct(loader, value_node, child, lines, problems, file)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(loader, item, (*location, index), lines, problems, file)
            for index, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)
