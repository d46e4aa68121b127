"""The API's JSON encoding: orjson behind Flask's JSON provider interface.

A day of one-second history is a 3.5 MB answer; the standard library's encoder spends tens of
milliseconds on it, orjson a few. Times and dataclasses are handed to Flask's own conversion,
so every answer reads as it did with Flask's encoder; a non-finite number, which JSON cannot
carry, is written as null (RFC 8259 section 6).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider on orjson: the same documents, encoded in native code."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """``obj`` as JSON text (indentation and separators are orjson's compact form)."""
        return self.encode(obj).decode("utf-8")

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """The value of a JSON text."""
        return orjson.loads(s)

    def encode(self, obj: Any) -> bytes:
        """``obj`` as UTF-8 JSON bytes."""
        # Keys sorted as Flask's encoder sorts them (``sort_keys``, on by default).
        option = _OPTIONS | orjson.OPT_SORT_KEYS if self.sort_keys else _OPTIONS
        return orjson.dumps(obj, default=self.default, option=option)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """A JSON response of the arguments (as ``flask.jsonify`` takes them)."""
        document = self._prepare_response_obj(args, kwargs)
        return Response(self.encode(document), mimetype=self.mimetype)
