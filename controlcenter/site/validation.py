"""pydantic's validation errors as problems of a source file, with line, column and key.

Site files and rule files are validated by pydantic models at the boundary; each error is
turned into a ``SourceProblem`` that names the file, the line and column of the key (or list
item) at fault, its location (``devices[0].scan_interval``) and a reason an engineer can act
on: an unknown key with the closest known one, a missing key, a bad value with the value shown.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from controlcenter.site.yamlsource import (
    MAX_PROBLEMS,
    LocatedDocument,
    Location,
    SourceProblem,
)


@dataclass(frozen=True, slots=True)
class ModelVocabulary:
    """What the problem texts of one kind of file need to know about its models.

    ``root`` is the model of the whole file; ``sections`` names, for a key that holds a
    mapping or a list of mappings (``devices``, ``triggers``), the models its entries may be,
    so that an unknown key gets the closest known one as a suggestion; ``union_tags`` are the
    tags pydantic puts into the location of a discriminated union's error (``modbus``), which
    are dropped so that the location points at the key in the file; ``refused_keys`` maps a
    top-level key that is no longer accepted to the reason given instead of "unknown key";
    ``error_keys`` maps an error type raised for a whole mapping (a union's discriminator) to
    the key of that mapping the error is about, so that it points at that key when present.
    """

    root: type[BaseModel]
    sections: Mapping[str, Sequence[type[BaseModel]]]
    union_tags: Collection[str] = ()
    refused_keys: Mapping[str, str] | None = None
    error_keys: Mapping[str, str] | None = None


def problems_from_validation_error(
    document: LocatedDocument, err: ValidationError, vocabulary: ModelVocabulary
) -> list[SourceProblem]:
    """Every error of ``err`` (at most ``MAX_PROBLEMS``, then a count) as a located problem."""
    errors = err.errors(include_url=False)[:MAX_PROBLEMS]
    problems = [_problem(document, error, vocabulary) for error in errors]
    return with_count(document.file, problems, err.error_count())


def with_count(file: str, problems: list[SourceProblem], total: int) -> list[SourceProblem]:
    """``problems``, and a last line saying how many more were found, if any."""
    if total <= len(problems):
        return problems
    more = f"{total - len(problems):,} more problems not shown"
    return [*problems, SourceProblem(file, None, "", more)]


def _problem(
    document: LocatedDocument, error: ErrorDetails, vocabulary: ModelVocabulary
) -> SourceProblem:
    location: Location = strip_union_tags(document.data, tuple(error["loc"]), vocabulary)
    message = error["msg"]
    key = (vocabulary.error_keys or {}).get(error["type"])
    if key is not None and isinstance(error.get("input"), dict) and key in error["input"]:
        location = (*location, key)
    refused = vocabulary.refused_keys or {}
    if error["type"] == "extra_forbidden" and len(location) == 1 and location[0] in refused:
        message = refused[str(location[0])]
    elif error["type"] == "extra_forbidden" and location:
        key = str(location[-1])
        message = f"unknown key '{short_text(key)}'"
        suggestion = suggest_key(location, vocabulary)
        if suggestion == key:
            message += " (not a key of this kind of entry)"
        elif suggestion:
            message += f" (did you mean '{suggestion}'?)"
    elif error["type"] == "missing" and location:
        message = f"missing required key '{location[-1]}'"
    elif isinstance(error.get("input"), dict | list):
        message = message.removeprefix("Value error, ")
    else:
        message = f"{message.removeprefix('Value error, ')} (got {short_value(error.get('input'))})"
    return document.problem(location, message)


def strip_union_tags(data: Any, location: Location, vocabulary: ModelVocabulary) -> Location:
    """``location`` without the union tags pydantic added to it (see ``ModelVocabulary``)."""
    kept: list[str | int] = []
    node = data
    for part in location:
        in_mapping = isinstance(node, dict) and part in node
        in_sequence = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_mapping or in_sequence:
            kept.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in node:
            # Either a union tag ('modbus') or a missing/extra key: keep a key that is not a tag.
            if part not in vocabulary.union_tags:
                kept.append(part)
                node = None
        else:
            kept.append(part)
            node = None
    return tuple(kept)


def suggest_key(location: Location, vocabulary: ModelVocabulary) -> str | None:
    """The known key closest to the last part of ``location`` (an unknown key), if any."""
    parent = next((part for part in reversed(location[:-1]) if isinstance(part, str)), None)
    models = [vocabulary.root] if parent is None else vocabulary.sections.get(parent, [])
    candidates = [
        field.alias or name for model in models for name, field in model.model_fields.items()
    ]
    matches = difflib.get_close_matches(str(location[-1]), candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def short_value(value: Any) -> str:
    """``repr(value)``, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def short_text(text: str) -> str:
    """``text``, cut to 60 characters."""
    return text if len(text) <= 60 else text[:57] + "..."
