"""Errors as RFC 9457 problem documents (``application/problem+json``)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Response
from pydantic import BaseModel, Field

PROBLEM_TYPE_BASE = "https://controlcenter.invalid/problems/"
"""Problem types are URIs naming the kind of problem; they need not resolve (RFC 9457 3.1.1)."""


class Problem(BaseModel):
    """An RFC 9457 problem: what kind, a short title, the status and what happened here."""

    type: str = Field(description="A URI naming the kind of problem")
    title: str
    status: int
    detail: str = ""
    instance: str = ""


def problem_response(
    status: int,
    detail: str = "",
    *,
    kind: str = "",
    instance: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response; ``kind`` defaults to the status's phrase (``not-found``)."""
    phrase = HTTPStatus(status).phrase
    slug = kind or phrase.lower().replace(" ", "-")
    body = Problem(
        type=PROBLEM_TYPE_BASE + slug,
        title=phrase,
        status=status,
        detail=detail,
        instance=instance,
    )
    response = Response(
        json.dumps(body.model_dump(exclude_defaults=False)),
        status=status,
        mimetype="application/problem+json",
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_doc(description: str) -> dict[str, object]:
    """The OpenAPI response object of a problem answer (``application/problem+json``)."""
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }


def problems(**described: str) -> dict[Any, Any]:
    """Problem answers an operation documents besides the ones every operation has, e.g.
    ``problems(e404="no such tag", e409="the alarm's state does not allow it")``."""
    return {int(key.removeprefix("e")): problem_doc(text) for key, text in described.items()}
