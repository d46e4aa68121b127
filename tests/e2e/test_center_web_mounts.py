"""One web server for the center: the HMI, the API and its document, operations and open data,
each at its path, with its own authentication."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from controlcenter.api.services import API_TOKENS_FILE
from controlcenter.model import Role
from controlcenter.permissions import TokenScope
from controlcenter.security.tokens import TokenStore
from tests.e2e.hmi_city_kit import USERS, hmi_city


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_every_face_of_the_center_answers_on_its_path(tmp_path: Path) -> None:
    async with hmi_city(tmp_path) as kit, httpx.AsyncClient(base_url=kit.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        # /metrics names the site's devices: a token of a user who may view diagnostics.
        assert (await client.get("/metrics")).status_code == 401
        tokens = TokenStore(tmp_path / "hmi" / API_TOKENS_FILE, kit.users)
        try:
            scraper = tokens.create(USERS[Role.MAINTENANCE], TokenScope.READ, 600, created_by="ada")
        finally:
            tokens.close()
        metrics = await client.get(
            "/metrics", headers={"Authorization": f"Bearer {scraper.secret_text}"}
        )
        assert metrics.status_code == 200
        assert "water.ps1_rtu" in metrics.text and "process_cpu_seconds_total" in metrics.text
        document = await client.get("/api/v1/docs/openapi.json")
        assert document.status_code == 200 and document.json()["openapi"].startswith("3.1")
        refused = await client.get("/api/v1/tags")
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        catalogue = await client.get("/open/v1/")
        assert catalogue.status_code == 200
        # The HMI keeps its own login: its pages redirect, its data requests say 401.
        assert (await client.get("/")).status_code == 302
        assert (await client.get("/live/stream?tags=water.tank1.level")).status_code == 401
