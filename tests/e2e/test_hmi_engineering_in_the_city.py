"""The engineers' and administrators' displays against the simulated water city, in Chromium:
an engineer edits a rule's threshold, validates, applies with a reason and sees the new version
run; an administrator adds a user and disables them; maintenance reads the diagnostics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext

from controlcenter.model import Role
from controlcenter.ports import AuthenticationError, RuleVersionStatus
from tests.e2e.hmi_city_kit import HmiCity, hmi_city, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

NEW_PASSWORD = "a brand new passphrase 4"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HmiCity]:
    async with hmi_city(
        tmp_path_factory.mktemp("engineering"), domains=frozenset({"water"})
    ) as city:
        yield city


async def test_an_engineer_changes_a_threshold_and_the_center_runs_it(
    kit: HmiCity, browser_context: BrowserContext
) -> None:
    page = await browser_context.new_page()
    await log_in(page, kit.url, Role.ENGINEER, "/rules")
    await page.wait_for_selector("#rules-editor")
    await page.wait_for_selector("text=v1 (running)")
    text = await page.input_value("#rules-editor")
    assert "on_below: 1.5" in text
    await page.fill("#rules-editor", text.replace("on_below: 1.5", "on_below: 1.3"))
    await page.click("#rules-validate")
    await page.wait_for_selector("#rules-validation >> text=valid: the rule set passes")
    await page.fill("#rules-reason", "refill tank 1 a little later")
    await page.click("#rules-apply")
    await page.wait_for_selector("#rules-outcome >> text=rule set v2 applied", timeout=20_000)
    await page.wait_for_selector("#rules-versions >> text=v2 (running)")
    version = kit.center.store.rule_version(2)
    assert version.status is RuleVersionStatus.ACTIVE and version.author == "erik"
    assert version.reason == "refill tank 1 a little later"
    assert kit.center.deployment.running_version == 2
    running = kit.center.rules.rule_set.definition
    (fill,) = [rule for rule in running.rules if rule.name == "water.tank1_fill"]
    assert fill.hysteresis is not None and fill.hysteresis.on_below == 1.3

    # A broken edit is refused with its place, and nothing is stored.
    await page.fill("#rules-editor", text.replace("on_below: 1.5", "on_below: [1.5"))
    await page.click("#rules-validate")
    await page.wait_for_selector("#rules-validation .refused")
    problem = await page.inner_text("#rules-validation")
    assert problem.startswith("rules/water.yaml:") or ".yaml:" in problem.split("\n")[0], problem
    assert len(kit.center.store.rule_versions()) == 2


async def test_an_admin_adds_a_user_and_disables_them(
    kit: HmiCity, browser_context: BrowserContext
) -> None:
    page = await browser_context.new_page()
    await log_in(page, kit.url, Role.ADMIN, "/users")
    await page.fill("#users-add-name", "nina")
    await page.fill("#users-add-password", NEW_PASSWORD)
    await page.fill("#users-add-reason", "new night shift operator")
    await page.click("#users-add")
    await page.wait_for_selector("#users-add-message >> text=added user nina (viewer)")
    await page.wait_for_selector("#users-table >> text=nina")
    assert kit.users.authenticate("nina", NEW_PASSWORD).name == "nina"

    await page.click("#users-target")
    await page.keyboard.type("nina")
    await page.keyboard.press("Enter")
    await page.fill("#users-change-reason", "left before the first shift")
    await page.click("#users-change")
    await page.wait_for_selector("#users-change-message >> text=disabled nina")
    assert kit.users.account("nina").disabled
    with pytest.raises(AuthenticationError):
        kit.users.authenticate("nina", NEW_PASSWORD)
    events = kit.center.store.read_events(user="ada")
    assert any("disabled user nina" in e.message and "left before" in e.message for e in events)


async def test_maintenance_sees_one_line_per_device(
    kit: HmiCity, browser_context: BrowserContext
) -> None:
    page = await browser_context.new_page()
    await log_in(page, kit.url, Role.MAINTENANCE, "/diagnostics")
    await page.wait_for_selector(".diagnostics-row")
    rows = await page.locator(".diagnostics-row").count()
    assert rows == len(kit.center.scan_engine.diagnostics())
    assert await page.locator(".diagnostics-device").first.inner_text()
