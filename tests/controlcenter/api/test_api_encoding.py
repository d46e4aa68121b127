"""The API's JSON encoding reads as Flask's own, in native code; non-finite numbers are null."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from controlcenter.api.encoding import OrjsonProvider


@dataclass
class Reading:
    tag: str
    value: float


def test_documents_read_as_with_flasks_encoder() -> None:
    app = Flask(__name__)
    fast, standard = OrjsonProvider(app), DefaultJSONProvider(app)
    document = {
        "z": [1, 2.5, True, None, "é ✓"],
        "a": {"when": datetime(2030, 1, 1, 12, tzinfo=UTC), "reading": Reading("t", 1.5)},
        "m": {3: "non-text key"},
    }
    assert json.loads(fast.dumps(document)) == json.loads(standard.dumps(document))
    assert list(json.loads(fast.dumps(document))) == ["a", "m", "z"]
    with app.app_context():
        reply = fast.response(document)
    assert reply.mimetype == "application/json"
    assert json.loads(reply.get_data()) == json.loads(standard.dumps(document))


def test_non_finite_numbers_are_written_as_null_not_as_invalid_json() -> None:
    fast = OrjsonProvider(Flask(__name__))
    text = fast.dumps({"values": [1.0, math.nan, math.inf, -math.inf]})
    assert json.loads(text) == {"values": [1.0, None, None, None]}
    assert fast.loads(text) == {"values": [1.0, None, None, None]}
