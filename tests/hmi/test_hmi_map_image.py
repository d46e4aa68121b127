"""The overview's small map as one SVG picture: every district and placed asset drawn, the
abnormal ones in their colour and named with their reason, texts escaped, and the picture's
alternative text saying the same in words."""

from __future__ import annotations

import base64
from dataclasses import replace
from xml.etree import ElementTree

import pytest

from controlcenter.automation import AssetDef, GeoPoint
from hmi.map_image import alt_text, compact_map_svg, svg_data_uri, symbol_svg
from hmi.map_svg import (
    ABNORMAL_COLOUR,
    COMM_LOST,
    MARKER_GREY,
    OTHER_SYMBOL,
    SYMBOLS,
    MarkerState,
    marker_states,
)
from tests.hmi.test_hmi_map import DISTRICTS, _city_assets, _context_of, context

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ElementTree.Element:
    """The SVG document as XML (raises on anything that is not well-formed)."""
    return ElementTree.fromstring(svg)


def texts(root: ElementTree.Element, colour: str | None = None) -> list[str]:
    """The texts drawn (of one fill colour, taken from the element or its group)."""
    found = []
    for group in root.iter():
        fill = group.get("fill")
        for text in group.findall(f"{SVG}text"):
            if colour is None or (text.get("fill") or fill) == colour:
                found.append(text.text or "")
    return found


def test_the_small_map_draws_every_district_and_asset_and_names_the_abnormal() -> None:
    ctx = context(lost={"water.ps1_rtu"})
    states = marker_states(ctx)
    root = parsed(compact_map_svg(ctx, states))
    assert {district.label for district in DISTRICTS} <= set(texts(root))
    placed = [asset for asset in ctx.assets if asset.position is not None]
    assert len(root.findall(f"{SVG}use")) == len(placed)
    # The abnormal asset: in the abnormal colour and with its reason in words; no other label.
    assert texts(root, ABNORMAL_COLOUR) == ["Booster station 1: COMM LOST"]
    assert texts(root, MARKER_GREY) == []
    assert "Booster station 1: COMM LOST" in alt_text(ctx, states)
    assert alt_text(context(), marker_states(context())).endswith("none abnormal.")


def test_texts_are_escaped_and_the_uri_carries_the_document() -> None:
    ctx = context()
    forged = [
        replace(asset, label="<script>alert('x')</script> & \"co\"")
        if asset.name == "water.ps1"
        else asset
        for asset in ctx.assets
    ]
    ctx = replace(ctx, assets=tuple(forged))
    states = {"water.ps1": MarkerState("water.ps1", (COMM_LOST,))}
    svg = compact_map_svg(ctx, states)
    root = parsed(svg)
    assert "<script>" not in svg
    assert texts(root, ABNORMAL_COLOUR) == ["<script>alert('x')</script> & \"co\": COMM LOST"]
    uri = svg_data_uri(svg)
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == svg


@pytest.mark.parametrize("symbol", sorted({*SYMBOLS.values(), OTHER_SYMBOL, "no-such-symbol"}))
def test_every_symbol_is_drawn(symbol: str) -> None:
    root = parsed(
        f'<g xmlns="http://www.w3.org/2000/svg">{symbol_svg(symbol, 5, 5, 8, "#000")}</g>'
    )
    assert len(root) >= 1


def test_a_city_of_thousands_of_assets_is_a_picture_of_a_few_markers() -> None:
    district = DISTRICTS[0]
    corner = district.outline[0]
    containers = tuple(
        AssetDef(
            f"waste.c{number}",
            "waste_container",
            "waste",
            f"Container {number}",
            GeoPoint(corner.latitude + 1e-5 * (number % 7), corner.longitude + 1e-5 * number),
            district.name,
        )
        for number in range(3000)
    )
    full = {f"waste.c{number}": MarkerState(f"waste.c{number}", (COMM_LOST,)) for number in (3, 4)}
    root = parsed(compact_map_svg(_context_of((*_city_assets(), *containers)), full))
    markers = len(root.findall(f"{SVG}use"))
    # Past a count per district, one counted marker: the two lost ones are drawn one by one.
    assert markers < 200
    assert sorted(texts(root, ABNORMAL_COLOUR)) == [
        "Container 3: COMM LOST",
        "Container 4: COMM LOST",
    ]
    (count,) = texts(root, MARKER_GREY)  # the normal ones: one marker with their count
    assert int(count) >= 2998
    # Each kind of marker is defined once, whatever the number placed.
    definitions = root.find(f"{SVG}defs")
    assert definitions is not None and len(definitions) <= 2 * len(SYMBOLS)
