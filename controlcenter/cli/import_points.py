"""``controlcenter import``: a CSV point list turned into devices, tags and assets.

The list is read and checked as ``controlcenter.site.point_import`` describes; what is printed
(or written with ``--output``) is a site-file fragment, or with ``--header`` a whole site file,
that ``controlcenter check`` accepts. Nothing is printed for a list with problems: each is
reported with its CSV line, and the command exits 1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer


def import_points(
    points: Annotated[Path, typer.Argument(help="CSV point list (UTF-8, header row first).")],
    template: Annotated[
        str,
        typer.Option(
            help="Asset type of the points' assets (TYPE), optionally with a YAML file of its "
            "alarm templates (TYPE=FILE); the site's templates for TYPE then apply.",
        ),
    ],
    header: Annotated[
        Path | None,
        typer.Option(
            help="Site header (site:, areas:, alarm_templates:, …) to check under and print "
            "first: the output is then a whole site file."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of printing.")
    ] = None,
) -> None:
    """Turn a CSV point list into devices, tags and assets, checked as a site file."""
    from controlcenter.site.point_import import (
        MAX_BYTES,
        MINIMAL_HEADER,
        PointListError,
        check_as_site,
        header_with_templates,
        parse_template,
        read_point_list,
        render_fragment,
    )

    try:
        chosen = parse_template(template)
    except ValueError as err:
        typer.echo(f"--template: {err}", err=True)
        raise typer.Exit(2) from err
    try:
        with points.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        if header is not None:
            header_text = header_with_templates(header.read_text(encoding="utf-8"), chosen)
        elif chosen.file is not None:
            header_text = header_with_templates(MINIMAL_HEADER, chosen)
        else:
            header_text = MINIMAL_HEADER
    except (OSError, UnicodeDecodeError, ValueError) as err:
        typer.echo(f"cannot read: {err}", err=True)
        raise typer.Exit(1) from err
    file = str(points)
    try:
        fragment = read_point_list(data, file, chosen)
        heading = f"Imported from {points.name}."
        text, origin = render_fragment(fragment, heading=heading)
        directory = (header or output or Path("x")).absolute().parent
        checked = text
        if header is None and chosen.file is None:
            # The assets' type is defined by the site the fragment is pasted into: checked
            # alone, the devices and tags are (assets come last, so their lines stay put).
            checked, _ = render_fragment(
                replace(fragment, assets=[], asset_lines=[]), heading=heading
            )
        site, whole = check_as_site(header_text, checked, origin, file, directory)
    except PointListError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from err
    result = whole if header is not None else text
    if chosen.file is not None and header is None:
        # The template file's alarms go with the fragment, or its assets would have none.
        result = header_with_templates("", chosen).lstrip("\n") + "\n" + text
    if output is not None:
        output.write_text(result, encoding="utf-8")
    else:
        typer.echo(result, nl=False)
    typer.echo(
        f"{len(site.devices)} devices, {len(site.tags)} tags, {len(fragment.assets)} assets "
        f"({chosen.asset_type})",
        err=True,
    )
