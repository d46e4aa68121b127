"""The site-file example in the driver documentation is a valid site file."""

from __future__ import annotations

import re
from pathlib import Path

from controlcenter.site.config import load_site

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_driver_guide_example_site_is_valid(tmp_path: Path) -> None:
    text = (DOCS / "drivers.md").read_text(encoding="utf-8")
    [example] = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(example, encoding="utf-8")
    site = load_site(site_file)
    assert {device.protocol for device in site.devices} == {"modbus", "opcua", "bacnet"}
    assert len(site.tags) == 5
