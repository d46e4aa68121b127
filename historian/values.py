"""How tag values are stored: per data type in sample columns, as JSON scalars in the journals.

A datetime value is stored in the text column as ISO 8601 in UTC with microseconds
(``2025-12-24T18:30:15.125000+00:00``): the same text on SQLite and PostgreSQL, sorting as time
sorts, and read back as the same instant to the microsecond (Python's resolution).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from controlcenter.model import DataType, Value

_MAX_EXACT_INT = 2**53
"""Largest magnitude a double holds exactly; larger integers would come back changed."""


class ValueMismatchError(ValueError):
    """A value that does not fit its tag's data type; the message says why."""


def encode_sample_value(
    data_type: DataType, value: Value | None
) -> tuple[float | None, str | None]:
    """Return the (value, text_value) columns of a value of a tag of ``data_type``.

    Raises ValueMismatchError rather than store something that would read back differently.
    """
    if value is None:
        return None, None
    if data_type is DataType.DATETIME:
        return None, encode_datetime(value)
    if isinstance(value, datetime):
        raise ValueMismatchError(f"date and time {value.isoformat()} for a {data_type.value} tag")
    if data_type is DataType.STRING:
        if not isinstance(value, str):
            raise ValueMismatchError(f"{type(value).__name__} value for a string tag")
        check_storable_text(value)
        return None, value
    if isinstance(value, str):
        raise ValueMismatchError(f"string value {value!r} for a {data_type.value} tag")
    if data_type is DataType.INT and isinstance(value, int) and abs(value) > _MAX_EXACT_INT:
        raise ValueMismatchError(f"{value!r} exceeds the 2**53 range stored exactly")
    try:
        number = float(value)
    except OverflowError as err:
        raise ValueMismatchError(f"{value!r} is beyond the range of a double") from err
    if math.isnan(number):
        # SQLite stores NaN as NULL: it would come back as a missing value. A value that is not a
        # number belongs in a sample with Bad quality and no value.
        raise ValueMismatchError("NaN is not storable; send a Bad sample without a value")
    if data_type is DataType.BOOL:
        if not isinstance(value, bool) and number not in (0.0, 1.0):
            raise ValueMismatchError(f"{value!r} for a bool tag")
        return number, None
    if data_type is DataType.INT:
        if not number.is_integer():
            raise ValueMismatchError(f"{value!r} for an int tag")
        if abs(number) > _MAX_EXACT_INT:
            raise ValueMismatchError(f"{value!r} exceeds the 2**53 range stored exactly")
        return number, None
    return number, None


def encode_datetime(value: Value) -> str:
    """A time-zone-aware datetime as stored: ISO 8601 in UTC, always with microseconds."""
    if not isinstance(value, datetime):
        raise ValueMismatchError(f"{type(value).__name__} value for a datetime tag")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time names no instant: storing it as UTC could shift it by hours.
        raise ValueMismatchError(f"{value.isoformat()} has no time zone")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def check_storable_text(text: str) -> None:
    """Raise ValueMismatchError for text a database would refuse, on every backend alike.

    PostgreSQL's text type cannot hold a NUL character, and a lone surrogate (half of a UTF-16
    pair, which a device's raw string can decode to) has no UTF-8 form for either backend.
    Refused here, the sample is rejected alone instead of failing its whole batch for ever.
    """
    if "\x00" in text:
        raise ValueMismatchError(f"text {text!r} holds a NUL character, which is not storable")
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueMismatchError(
            f"text {text!r} is not valid Unicode (a lone surrogate at {err.start})"
        ) from err


def storable_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates replaced by U+FFFD (diagnostics)."""
    try:
        check_storable_text(text)
    except ValueMismatchError:
        cleaned = text.replace("\x00", "\ufffd")
        return cleaned.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def decode_sample_value(
    data_type: DataType, value: float | None, text_value: str | None
) -> Value | None:
    """Rebuild a value of a tag of ``data_type`` from its stored columns."""
    if data_type is DataType.STRING:
        return text_value
    if data_type is DataType.DATETIME:
        return None if text_value is None else datetime.fromisoformat(text_value)
    if value is None:
        return None
    if data_type is DataType.BOOL:
        return value != 0.0
    if data_type is DataType.INT:
        return int(value)
    return float(value)


def encode_json_value(value: Value) -> str:
    """A journaled value as a JSON scalar, so its Python type survives the round trip.

    A datetime is journaled as its stored ISO 8601 text (JSON has no time type)."""
    if isinstance(value, datetime):
        return json.dumps(encode_datetime(value))
    return json.dumps(value)


def decode_json_value(text: str) -> Value:
    """The value of a JSON scalar written by ``encode_json_value``."""
    decoded: object = json.loads(text)
    if isinstance(decoded, bool | int | float | str):
        return decoded
    raise ValueError(f"journaled value {text!r} is not a scalar")


_DATETIME_KEY = "datetime"
"""The one key of the JSON object that stands for a datetime in ``encode_typed_value``."""


def encode_typed_value(value: Value) -> str:
    """A value as JSON that ``decode_typed_value`` gives back with its type: bool, int, float
    and str as JSON scalars (``1``, ``1.0`` and ``true`` stay distinct), a datetime as
    ``{"datetime": ISO 8601 in UTC}`` (JSON has no time type).

    Raises ValueMismatchError for what would not come back as it was: NaN or an infinity
    (not JSON), a naive datetime, text a database cannot hold.
    """
    if isinstance(value, datetime):
        return json.dumps({_DATETIME_KEY: encode_datetime(value)})
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueMismatchError(f"{value!r} is not a storable number")
    if isinstance(value, str):
        check_storable_text(value)
    return json.dumps(value)


def decode_typed_value(text: str) -> Value:
    """The value written by ``encode_typed_value``; raises ValueMismatchError for anything else."""
    try:
        decoded: object = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueMismatchError(f"stored value {text!r} is not JSON") from err
    if isinstance(decoded, bool | int | float | str):
        return decoded
    if isinstance(decoded, dict) and set(decoded) == {_DATETIME_KEY}:
        stamp = decoded[_DATETIME_KEY]
        if isinstance(stamp, str):
            try:
                moment = datetime.fromisoformat(stamp)
            except ValueError as err:
                raise ValueMismatchError(f"stored time {stamp!r} is not ISO 8601") from err
            if moment.utcoffset() is not None:
                return moment
    raise ValueMismatchError(f"stored value {text!r} is not a typed scalar")
