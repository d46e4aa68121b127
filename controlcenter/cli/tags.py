"""``controlcenter tags``: list and search a site file's tags without a running center.

Each tag with its unit, range, device and whether it may be commanded; filtered by a name
pattern (``*`` and ``?``), an area of the site, a device, and writability. The names printed
are what ``value``, ``write``, ``history`` and rule expressions take.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controlcenter.cli.value import table, value_text

if TYPE_CHECKING:
    from controlcenter.model import TagDef
    from controlcenter.site.config import SiteConfig

COLUMNS = ("name", "unit", "range", "device", "writable")


def demo_site_path() -> Path:
    """The packaged demo site file (the default of ``--site``)."""
    return Path(str(resources.files("controlcenter") / "sites" / "demo.yaml"))


def select_tags(
    site: SiteConfig,
    pattern: str = "*",
    area: str | None = None,
    device: str | None = None,
    writable: bool | None = None,
) -> list[TagDef]:
    """The site's tags matching every filter given, in the file's order; raises KeyError for
    an area the site does not define."""
    patterns: tuple[str, ...] = ("*",)
    if area is not None:
        found = [a for a in site.area_defs() if a.name == area]
        if not found:
            raise KeyError(area)
        patterns = tuple(found[0].tags)
    return [
        tag
        for tag in site.tag_defs()
        if fnmatchcase(tag.name, pattern)
        and any(fnmatchcase(tag.name, p) for p in patterns)
        and (device is None or tag.device == device)
        and (writable is None or tag.writable == writable)
    ]


def tag_row(tag: TagDef) -> tuple[str, ...]:
    """One row of the listing."""
    span = (
        ""
        if tag.low is None or tag.high is None
        else f"{value_text(tag.low)}..{value_text(tag.high)}"
    )
    return (tag.name, tag.unit, span, tag.device, "yes" if tag.writable else "no")


def tags(
    pattern: Annotated[str, typer.Argument(help="Name pattern, e.g. 'water.*.level'.")] = "*",
    site: Annotated[Path | None, typer.Option(help="Site file (default: the demo city's).")] = None,
    area: Annotated[str | None, typer.Option(help="Only tags of this area of the site.")] = None,
    device: Annotated[str | None, typer.Option(help="Only tags of this device.")] = None,
    writable: Annotated[
        bool | None,
        typer.Option("--writable/--read-only", help="Only tags that may (not) be commanded."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the site's tags: name, unit, range, device, writable."""
    from controlcenter.site.config import load_site
    from controlcenter.site.yamlsource import SourceFileError

    path = site or demo_site_path()
    try:
        config = load_site(path)
    except SourceFileError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from err
    try:
        chosen = select_tags(config, pattern, area, device, writable)
    except KeyError as err:
        names = ", ".join(a.name for a in config.area_defs()) or "none"
        typer.echo(f"no area {area!r} in {path} (areas: {names})", err=True)
        raise typer.Exit(1) from err
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "unit": t.unit,
                        "low": t.low,
                        "high": t.high,
                        "device": t.device,
                        "writable": t.writable,
                        "data_type": t.data_type.value,
                        "description": t.description,
                    }
                    for t in chosen
                ],
                indent=1,
            )
        )
        return
    if not chosen:
        typer.echo("no tags match", err=True)
        raise typer.Exit(1)
    typer.echo(table(COLUMNS, [tag_row(t) for t in chosen]))
