"""Tags (list, search, metadata) and their live values (one, many, by pattern)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from flask_openapi3.openapi import OpenAPI
from pydantic import BaseModel, Field
from werkzeug.exceptions import NotFound

from controlcenter.api.auth import require
from controlcenter.api.problems import problems
from controlcenter.api.routes.common import Query
from controlcenter.api.schemas import MAX_NAMES, MAX_PATTERN, TagInfo, TagList, Value, ValueList
from controlcenter.api.services import ApiServices
from controlcenter.model import TagDef
from controlcenter.permissions import Permission

MAX_PAGE = 1000


class TagQuery(Query):
    """Which tags: a name pattern (``*`` and ``?``), an area, a unit, a page."""

    pattern: str = Field("*", max_length=MAX_PATTERN, description="fnmatch pattern on names")
    area: str = Field("", max_length=100)
    unit: str = Field("", max_length=50)
    writable: bool | None = None
    offset: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=MAX_PAGE)


class TagPath(BaseModel):
    """One tag by name."""

    name: str = Field(max_length=MAX_PATTERN)


class ValueQuery(Query):
    """Which live values: names (comma-separated) or a pattern."""

    tags: str = Field("", max_length=4000, description="comma-separated tag names")
    pattern: str = Field("", max_length=MAX_PATTERN, description="fnmatch pattern on names")
    limit: int = Field(MAX_NAMES, ge=1, le=MAX_NAMES)


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the tag and value endpoints."""
    blueprint = APIBlueprint(
        "tags",
        __name__,
        url_prefix="/api/v1",
        abp_tags=[Tag(name="tags", description="Tags and live values")],
        abp_security=[{"bearer": []}],
    )

    def areas_of(tag: str) -> list[str]:
        return [
            area.name
            for area in services.areas
            if any(fnmatchcase(tag, pattern) for pattern in area.tags)
        ]

    def matching(query: TagQuery) -> list[TagDef]:
        chosen = []
        area = next((a for a in services.areas if a.name == query.area), None)
        for tag in services.live.tags():
            if not fnmatchcase(tag.name, query.pattern):
                continue
            if query.area and (
                area is None or not any(fnmatchcase(tag.name, p) for p in area.tags)
            ):
                continue
            if query.unit and tag.unit != query.unit:
                continue
            if query.writable is not None and tag.writable != query.writable:
                continue
            chosen.append(tag)
        return chosen

    @blueprint.get("/tags", responses={200: TagList})
    def list_tags(query: TagQuery) -> dict[str, object]:
        """Tags by name pattern, area, unit and writability, a page at a time."""
        require(Permission.VIEW)
        chosen = matching(query)
        page = chosen[query.offset : query.offset + query.limit]
        return TagList(
            total=len(chosen), tags=[TagInfo.of(tag, areas_of(tag.name)) for tag in page]
        ).model_dump(mode="json")

    @blueprint.get("/tags/<name>", responses={200: TagInfo, **problems(e404="No such tag")})
    def tag_metadata(path: TagPath) -> dict[str, object]:
        """What one tag is."""
        require(Permission.VIEW)
        tag = _tag(services, path.name)
        return TagInfo.of(tag, areas_of(tag.name)).model_dump(mode="json")

    @blueprint.get("/values", responses={200: ValueList})
    def live_values(query: ValueQuery) -> dict[str, object]:
        """Live values of named tags or of a pattern (unknown names are left out)."""
        require(Permission.VIEW)
        if query.tags:
            names = [name.strip() for name in query.tags.split(",") if name.strip()]
        elif query.pattern:
            names = [t.name for t in services.live.tags() if fnmatchcase(t.name, query.pattern)]
        else:
            names = []
        values = []
        for name in dict.fromkeys(names[: query.limit]):
            try:
                values.append(Value.of(services.live.latest(name)))
            except KeyError:
                continue
        return ValueList(values=values).model_dump(mode="json")

    @blueprint.get("/values/<name>", responses={200: Value, **problems(e404="No such tag")})
    def live_value(path: TagPath) -> dict[str, object]:
        """The live value of one tag."""
        require(Permission.VIEW)
        _tag(services, path.name)
        return Value.of(services.live.latest(path.name)).model_dump(mode="json")

    api.register_api(blueprint)


def known_tag(services: ApiServices, name: str) -> TagDef:
    """The tag named ``name``; raises NotFound (404)."""
    return _tag(services, name)


def _tag(services: ApiServices, name: str) -> TagDef:
    for tag in services.live.tags():
        if tag.name == name:
            return tag
    raise NotFound(f"no tag named {name!r}")
