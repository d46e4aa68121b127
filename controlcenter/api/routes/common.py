"""What the endpoint modules share: their blueprint, time windows and model dumps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from werkzeug.exceptions import BadRequest

API_PREFIX = "/api/v1"
DEFAULT_WINDOW = timedelta(hours=1)
MAX_TEXT = 500
"""Longest reason or comment the API accepts (the services refuse longer ones too)."""
MAX_NAME = 200


def blueprint(name: str, description: str) -> APIBlueprint:
    """An API blueprint under ``/api/v1`` whose operations need a bearer token."""
    return APIBlueprint(
        name,
        f"controlcenter.api.routes.{name}",
        url_prefix=API_PREFIX,
        abp_tags=[Tag(name=name, description=description)],
        abp_security=[{"bearer": []}],
    )


class Query(BaseModel):
    """A query string's parameters: an unknown parameter is refused (400), not ignored."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The model's JSON schema; the default one is built once per class.

        flask-openapi3 asks for the default schema on every request to tell list parameters
        from single ones (reading it only); building it anew cost more than the rest of a
        live-value request. The OpenAPI document asks with arguments and is built afresh."""
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        cached = _DEFAULT_SCHEMAS.get(cls)
        if cached is None:
            cached = _DEFAULT_SCHEMAS[cls] = super().model_json_schema()
        return cached


_DEFAULT_SCHEMAS: dict[type[Query], dict[str, Any]] = {}


class Window(BaseModel):
    """A time window (ISO 8601 with a zone, e.g. ``2030-01-01T12:00:00Z``); without ``end``
    up to now, without ``start`` the hour before ``end``."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window [start, end) of a query; raises BadRequest (400) when it is empty."""
    until = end or now
    since = start or until - DEFAULT_WINDOW
    if since >= until:
        raise BadRequest("start must be before end")
    return since, until


def optional_window(start: datetime | None, end: datetime | None) -> None:
    """Refuse (400) a window whose start is not before its end."""
    if start is not None and end is not None and start >= end:
        raise BadRequest("start must be before end")


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON document of ``model``."""
    return model.model_dump(mode="json")


class Reason(BaseModel):
    """Why (journaled with the action)."""

    reason: str = Field("", max_length=MAX_TEXT)


class RequiredReason(BaseModel):
    """Why (journaled with the action); required."""

    reason: str = Field(min_length=1, max_length=MAX_TEXT)


def limit_field(default: int, most: int) -> Any:
    """A page size field."""
    return Field(default, ge=1, le=most)
