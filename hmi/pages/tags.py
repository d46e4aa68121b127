"""All tags: the site's featured tags as tiles, then every tag in a searchable, paged table.

A city has thousands of tags; the table shows one page of ``PAGE_SIZE`` at a time, so the
display (and the live stream, which carries exactly the tags on the display) holds only those.
Values are live elements (``hmi.live``): drawn once, then kept current by the stream. With
"abnormal first", tags of Bad quality come first, then Uncertain, as of the moment the page was
drawn. Each tag links to its trend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, ctx, dcc, html

from controlcenter.model import Sample, Severity, TagDef, User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.formatting import element_id, quality_text
from hmi.guard import viewing_user
from hmi.live import data_attributes, live_value, severity_name
from hmi.page import Page, PageRequest

PATH = "/tags"
FILTER_ID = "tags-filter"
ABNORMAL_ID = "tags-abnormal-first"
PREVIOUS_ID = "tags-previous"
NEXT_ID = "tags-next"
PAGE_NUMBER_ID = "tags-page-number"
PAGER_ID = "tags-pager"
TABLE_ID = "tags-table"
TABLE_BODY_ID = "tags-table-body"
TILES_ID = "tags-tiles"
PAGE_SIZE = 100
"""Rows of one page: enough to scan, few enough to draw and stream at once."""
MAX_FILTER = 100
_RANK = {Severity.BAD: 0, Severity.UNCERTAIN: 1, Severity.GOOD: 2}


def tile_id(tag: str) -> str:
    """DOM id of a featured tag's tile."""
    return f"tags-tile-{element_id(tag)}"


def trend_href(*tags: str) -> str:
    """The trend display's URL with ``tags`` as its pens."""
    return "/trends?" + urlencode({"tags": ",".join(tags)})


def render_tile(context: HmiContext, tag: TagDef) -> Any:
    """A featured tag's tile: its description, live value and quality, a link to its trend.

    The tile itself carries the tag (``data-live="state"``), so its frame takes the quality's
    colour as the value does, with the quality's word beside the value."""
    sample = context.sample(tag.name)
    severity = severity_name(sample.quality) if sample is not None else "bad"
    quality = quality_text(sample.quality) if sample is not None else "no data"
    return html.Div(
        id=tile_id(tag.name),
        className=f"tile tags-tile q-{severity}",
        title=f"{tag.name}: {quality}",
        children=[
            html.Div(tag.description or tag.name, className="tile-title"),
            html.Div(
                live_value(context.live, tag, class_name="tile-value"), className="tile-reading"
            ),
            dcc.Link("Trend", href=trend_href(tag.name), className="tags-tile-trend"),
        ],
        **data_attributes({"data-tag": tag.name, "data-live": "state"}),
    )


def filtered_tags(
    tags: Sequence[TagDef],
    snapshot: Mapping[str, Sample],
    text: str,
    *,
    abnormal_first: bool,
) -> list[TagDef]:
    """The tags whose name or description holds ``text`` (any case), in name order; with
    ``abnormal_first`` Bad (or never read) first, then Uncertain, then Good."""
    needle = text.strip().lower()[:MAX_FILTER]
    chosen = [
        tag
        for tag in tags
        if not needle or needle in tag.name.lower() or needle in tag.description.lower()
    ]
    if abnormal_first:

        def rank(tag: TagDef) -> tuple[int, str]:
            sample = snapshot.get(tag.name)
            return (_RANK[sample.quality.severity] if sample is not None else 0, tag.name)

        return sorted(chosen, key=rank)
    return sorted(chosen, key=lambda tag: tag.name)


def page_count(total: int) -> int:
    """Pages of ``PAGE_SIZE`` rows for ``total`` tags (at least one)."""
    return max(1, -(-total // PAGE_SIZE))


def render_rows(context: HmiContext, tags: Sequence[TagDef]) -> list[Any]:
    """One row per tag: its name (a link to its trend), description, live value and unit."""
    return [
        html.Tr(
            className="tags-row",
            children=[
                html.Td(dcc.Link(tag.name, href=trend_href(tag.name)), className="tags-name"),
                html.Td(tag.description, className="tags-description"),
                html.Td(live_value(context.live, tag, unit=False), className="tags-value"),
                html.Td(tag.unit, className="tags-unit"),
            ],
        )
        for tag in tags
    ]


def render_table_page(
    context: HmiContext, text: str, abnormal_first: bool, page: int
) -> tuple[list[Any], str, int]:
    """The rows of page ``page`` (0-based, clamped) of the filtered tags, the pager's text and
    the page shown."""
    snapshot = context.live.snapshot() if abnormal_first else {}
    tags = filtered_tags(
        list(context.tags_by_name().values()), snapshot, text, abnormal_first=abnormal_first
    )
    pages = page_count(len(tags))
    page = max(0, min(page, pages - 1))
    shown = tags[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    if not tags:
        return [], "No tag matches.", 0
    first = page * PAGE_SIZE + 1
    last = first + len(shown) - 1
    pager = f"Tags {first:,} to {last:,} of {len(tags):,} (page {page + 1} of {pages})"
    return render_rows(context, shown), pager, page


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The display: featured tiles, then the filter, the pager and the table's first page."""
    known = context.tags_by_name()
    featured = [known[name] for name in context.featured if name in known]
    text = str(request.query.get("q", ""))[:MAX_FILTER]
    rows, pager, page = render_table_page(context, text, False, 0)
    return html.Div(
        className="tags-display",
        children=[
            html.Section(
                id=TILES_ID,
                className="tiles tags-tiles",
                children=[render_tile(context, tag) for tag in featured],
            ),
            html.Section(
                className="panel tags-panel",
                children=[
                    html.H2("All tags"),
                    html.Div(
                        className="tags-tools",
                        children=[
                            dcc.Input(
                                id=FILTER_ID,
                                type="search",
                                value=text,
                                placeholder="Filter by name or description",
                                debounce=True,
                                maxLength=MAX_FILTER,
                                className="tags-filter",
                            ),
                            dcc.Checklist(
                                id=ABNORMAL_ID,
                                options=[{"label": " Abnormal quality first", "value": "yes"}],
                                value=[],
                                className="tags-abnormal-first",
                            ),
                            html.Button("Previous", id=PREVIOUS_ID, className="tags-previous"),
                            html.Span(pager, id=PAGER_ID, className="tags-pager"),
                            html.Button("Next", id=NEXT_ID, className="tags-next"),
                            dcc.Store(id=PAGE_NUMBER_ID, data=page),
                        ],
                    ),
                    html.Table(
                        id=TABLE_ID,
                        className="tags-table",
                        children=[
                            html.Thead(
                                html.Tr(
                                    [
                                        html.Th("Tag"),
                                        html.Th("Description"),
                                        html.Th("Value"),
                                        html.Th("Unit"),
                                    ]
                                )
                            ),
                            html.Tbody(rows, id=TABLE_BODY_ID),
                        ],
                    ),
                ],
            ),
        ],
    )


def register(app: dash.Dash, context: HmiContext) -> None:
    """The table's callback: filter, order and page."""

    @app.callback(
        Output(TABLE_BODY_ID, "children"),
        Output(PAGER_ID, "children"),
        Output(PAGE_NUMBER_ID, "data"),
        Input(FILTER_ID, "value"),
        Input(ABNORMAL_ID, "value"),
        Input(PREVIOUS_ID, "n_clicks"),
        Input(NEXT_ID, "n_clicks"),
        State(PAGE_NUMBER_ID, "data"),
        prevent_initial_call=True,
    )
    def table(
        text: object, abnormal: object, _previous: object, _next: object, page: object
    ) -> tuple[Any, ...]:
        viewing_user()
        number = page if isinstance(page, int) and not isinstance(page, bool) else 0
        if ctx.triggered_id == NEXT_ID:
            number += 1
        elif ctx.triggered_id == PREVIOUS_ID:
            number -= 1
        else:
            number = 0  # a new filter or order starts at its first page
        return render_table_page(
            context,
            text if isinstance(text, str) else "",
            isinstance(abnormal, list) and "yes" in abnormal,
            number,
        )


PAGE = Page(
    path=PATH,
    title="All tags",
    level=4,
    permission=Permission.VIEW,
    render=render,
    nav_label="Tags",
    register=register,
)
