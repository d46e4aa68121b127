"""The value types every field of a site file is made of, each bounded.

Every setting of a site file is one of these: a finite float, a strict integer (each field
states its bounds), a bounded string, or a path that must stay inside the directories a site
may name. Keeping the kinds few means a hostile value (NaN, a digit string of thousands of
characters, ``/etc/shadow``) is refused the same way wherever it appears.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, Strict, ValidationInfo

FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A number that is finite: NaN and infinities compare false with every limit, so a range,
scale, level or deviation that is one would silently disable the checks built on it. Strict:
a bool or a string is not a number."""

Integer = Annotated[int, Strict()]
"""An integer (not a bool, not a string of digits); every integer field states its bounds."""

NAME_MAX_CHARACTERS = 200
TEXT_MAX_CHARACTERS = 2000
PATH_MAX_CHARACTERS = 1024

# C0 and C1 control characters, surrogates and non-characters: a double-quoted YAML scalar can
# spell them as escapes ("\0", "\x07") even though the file itself holds printable text only.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _printable(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found is not None:
            raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed")
        return value

    return AfterValidator(check)


Name = Annotated[str, Field(max_length=NAME_MAX_CHARACTERS), _printable(_CONTROL)]
"""A short string: a name, an endpoint, an address, a unit, a time zone."""

Text = Annotated[str, Field(max_length=TEXT_MAX_CHARACTERS), _printable(_CONTROL_IN_TEXT)]
"""Free text for people, such as a description (tabs and line breaks allowed)."""


EXPRESSION_MAX_CHARACTERS = 2000
"""Longest expression of the rule language (the rules package refuses longer ones as well)."""


def literal_as_expression(value: object) -> object:
    """A YAML bool or number as the text of the same literal in the expression language, so that
    ``value: 1`` and ``block_when: true`` need no quotes; other values are left to the type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("an expression's number must be finite")
        return repr(value)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("an expression must not be empty")
    return value


ExpressionText = Annotated[
    str,
    Strict(),
    Field(max_length=EXPRESSION_MAX_CHARACTERS),
    BeforeValidator(literal_as_expression),
    _printable(_CONTROL_IN_TEXT),
    AfterValidator(_not_blank),
]
"""The text of an expression of the rule language (compiled by the rules package, which knows
the tags); a YAML bool or number is taken as its literal."""


@dataclass(frozen=True, slots=True)
class PathRoots:
    """The directories a site file's paths may point into (pydantic validation context).

    A relative path is taken relative to ``site_directory`` (the site file's own directory);
    once resolved (symbolic links followed) it must lie inside ``site_directory`` or inside
    ``var_directory`` (the center's ``var/``, where its database, users and spool live).
    """

    site_directory: Path
    var_directory: Path

    def resolve(self, path: Path) -> Path:
        """The absolute path ``path`` names; raise ValueError when it lies outside the roots."""
        absolute = (self.site_directory / path).resolve()
        roots = (self.site_directory.resolve(), self.var_directory.resolve())
        if not any(absolute.is_relative_to(root) for root in roots):
            raise ValueError(
                f"path '{path}' is outside the site file's directory ({roots[0]}) and the "
                f"center's var directory ({roots[1]})"
            )
        return absolute


def check_path_text(value: object) -> object:
    """Refuse a path's text when it is too long, empty or holds a control character."""
    if isinstance(value, str) and len(value) > PATH_MAX_CHARACTERS:
        raise ValueError(f"a path of {len(value):,} characters (at most {PATH_MAX_CHARACTERS})")
    if isinstance(value, str) and not value.strip():
        raise ValueError("a path must not be empty")
    if isinstance(value, str) and (found := _CONTROL.search(value)) is not None:
        raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed")
    return value


def _inside_roots(value: Path, info: ValidationInfo) -> Path:
    roots = info.context
    # Models built in code (tests, the demo) carry no roots: only a file read from disk does.
    if not isinstance(roots, PathRoots):
        return value
    try:
        return roots.resolve(value)
    except (OSError, RuntimeError) as err:
        # RuntimeError: a loop of symbolic links (Path.resolve, Python 3.11).
        raise ValueError(f"path '{value}' cannot be resolved ({type(err).__name__})") from err


SitePath = Annotated[
    Path,
    BeforeValidator(check_path_text),
    AfterValidator(_inside_roots),
]
"""A path named by a site file: resolved, and inside the site's directory or the center's var/."""


DAY_S = 86_400.0
_DURATION = re.compile(r"^(-?)(\d{1,9}(?:\.\d{1,9})?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY_S}


def parse_duration(value: object) -> object:
    """A duration in seconds from a number (seconds) or a text like ``30s``, ``5m``, ``2h``,
    ``1d``, ``-10m``; other values are left for the float type to refuse."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip()) if len(value) <= 40 else None
        if match is None:
            raise ValueError(
                f"'{value[:40]}' is not a duration: a number of seconds or a number with a "
                "unit s, m, h or d (30s, 5m, -10m)"
            )
        sign = -1.0 if match.group(1) else 1.0
        return sign * float(match.group(2)) * _UNIT_S[match.group(3)]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
