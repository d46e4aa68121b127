"""JSON uplinks: decoding, RFC 6901 pointers, tag values, payload times and downlinks.

Everything a sensor sends is hostile until checked: payloads are parsed with a size limit
(checked before this module is called) and a nesting limit, a pointer that finds nothing or a
value of the wrong type is a per-point error, never an exception that stops the driver.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson

from controlcenter.model import DataType, TagDef, Value

MAX_NESTING = 32
"""Deeper JSON is refused: no sensor nests that deep, and recursion must stay bounded."""

_EPOCH_MS_THRESHOLD = 10_000_000_000
"""Numbers above this are milliseconds since 1970 (seconds reach it only in the year 2286)."""


class PayloadError(ValueError):
    """A payload or one of its values cannot be used; the message says why."""


def decode_json(payload: bytes) -> Any:
    """Parse a JSON uplink; raise PayloadError for anything that is not JSON text."""
    # Counting brackets is cheap; the exact nesting is measured only when it could matter.
    if payload.count(b"[") + payload.count(b"{") <= MAX_NESTING:
        try:
            # orjson is strict RFC 8259 (no NaN or Infinity, UTF-8 only) and several times
            # faster than the standard parser; what it refuses goes the standard way below,
            # which names the fault and takes the integers wider than 64 bits orjson cannot.
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PayloadError(f"payload is not UTF-8 ({err.reason} at byte {err.start})") from err
    # Counting brackets is cheap; the exact nesting is measured only when it could matter.
    opened = text.count("[") + text.count("{")
    if opened > MAX_NESTING and _nesting(text) > MAX_NESTING:
        raise PayloadError(f"JSON nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, RecursionError) as err:
        raise PayloadError(f"malformed JSON: {err}") from err


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259, 6): a sensor sending them is broken.
    raise PayloadError(f"malformed JSON: {name} is not a JSON number")


def _nesting(text: str) -> int:
    """The deepest bracket nesting, ignoring brackets inside strings (cheap pre-check)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def resolve(document: Any, pointer: tuple[str, ...]) -> Any:
    """The value at a pointer (RFC 6901, 4); raise PayloadError when there is none."""
    # Uplinks are objects of objects: only a JSON object takes a text key, so indexing with
    # the tokens finds what the pointer names; anything else (an array on the way, a missing
    # member) goes the careful way, which also says what is wrong.
    current = document
    try:
        for token in pointer:
            current = current[token]
    except (KeyError, TypeError, IndexError):
        return _resolve_stepwise(document, pointer)
    return current


def _resolve_stepwise(document: Any, pointer: tuple[str, ...]) -> Any:
    current = document
    for depth, token in enumerate(pointer):
        where = _where(pointer, depth)
        if isinstance(current, dict):
            if token not in current:
                raise PayloadError(f"no member at {where}")
            current = current[token]
        elif isinstance(current, list):
            # An array index is 0 or digits without a leading zero (RFC 6901, 4).
            if not token.isdigit() or (token != "0" and token.startswith("0")):
                raise PayloadError(f"{where}: {token!r} is not an array index")
            index = int(token)
            if index >= len(current):
                raise PayloadError(f"{where}: index {index} is past the array's end")
            current = current[index]
        else:
            raise PayloadError(f"{where}: a {type(current).__name__} has no members")
    return current


def _where(pointer: tuple[str, ...], depth: int) -> str:
    return "/" + "/".join(pointer[: depth + 1])


def to_value(raw: Any, tag: TagDef) -> Value:
    """A JSON value as the tag's engineering value (scale and offset applied to numbers)."""
    kind = tag.data_type
    if kind is DataType.FLOAT and (type(raw) is float or type(raw) is int):  # the usual case
        scaled = raw * tag.scale + tag.offset
        if math.isfinite(scaled):
            return float(scaled)
    if kind is DataType.BOOL:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        raise PayloadError(f"expected a boolean, got {_describe(raw)}")
    if kind is DataType.STRING:
        if isinstance(raw, str):
            return raw
        raise PayloadError(f"expected a string, got {_describe(raw)}")
    if kind is DataType.DATETIME:
        return raw if isinstance(raw, datetime) else parse_time(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PayloadError(f"expected a number, got {_describe(raw)}")
    scaled = raw * tag.scale + tag.offset
    if not math.isfinite(scaled):
        raise PayloadError(f"value {raw!r} is not finite once scaled")
    if kind is DataType.INT:
        if isinstance(scaled, float):
            if not scaled.is_integer():
                raise PayloadError(f"expected an integer, got {raw!r}")
            return int(scaled)
        return scaled
    return float(scaled)


def to_raw(value: Value, tag: TagDef) -> Any:
    """The JSON value to send for an engineering value (the inverse of ``to_value``)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool | str):
        return value
    raw = (value - tag.offset) / tag.scale
    if tag.data_type is DataType.INT and float(raw).is_integer():
        return int(raw)
    return raw


def parse_time(raw: Any) -> datetime:
    """A payload time: ISO 8601 text (with an offset; none means UTC) or seconds or
    milliseconds since 1970."""
    kind = type(raw)
    if kind is bool:
        raise PayloadError(f"expected a time, got {_describe(raw)}")
    if kind is float or kind is int or isinstance(raw, int | float):
        seconds = raw / 1000 if abs(raw) >= _EPOCH_MS_THRESHOLD else raw
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise PayloadError(f"time {raw!r} is out of range") from err
    if isinstance(raw, str) and len(raw) <= 64:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError as err:
            raise PayloadError(f"time {raw!r} is not ISO 8601") from err
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise PayloadError(f"expected a time, got {_describe(raw)}")


def downlink(pointer: tuple[str, ...], raw: Any) -> bytes:
    """The JSON downlink that sets the value at ``pointer``: ``{"a": {"b": raw}}`` for /a/b."""
    document: Any = raw
    for token in reversed(pointer):
        document = {token: document}
    return json.dumps(document, separators=(",", ":")).encode()


def _describe(raw: Any) -> str:
    if raw is None:
        return "null"
    text = repr(raw)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(raw).__name__} {shown}"
