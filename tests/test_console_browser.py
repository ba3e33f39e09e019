"""The operator console in a real headless Chromium: log in, approve a registration, allocate, price.

Skips when no Chromium is installed (Debian's `chromium`; `.ci/run` installs it). Screenshots of each step go to
test-artifacts/console/ (git-ignored) so a failing run can be looked at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from echain.app import create_app
from echain.keys import DEPS
from echain.settings import Settings
from models.enterprises import Enterprise
from models.financing import Financing
from models.ledger import LedgerEntry
from models.people import User
from tests.support.api import enterprise_body, png_bytes
from tests.support.console import PASSWORD, make_operator
from tests.support.factories import advance, make_cast
from workflow import documents, onboarding
from workflow.financing import service
from workflow.financing.transition import CHINA_TZ
from workflow.onboarding import EnterpriseInput

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium); "
                                                         ".ci/run installs it so CI runs these tests")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[str, web.Application]]:
    """The real app on a real free port, in this test's event loop."""
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


@pytest.fixture
async def page(served):  # noqa: ANN001, ANN201 - playwright Page
    """A fresh Chromium page (its own cookies), closed after the test."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            await browser.close()


async def _shot(page, name: str) -> None:  # noqa: ANN001
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def _latest_at(financing_id: int):  # noqa: ANN202
    entry = await LedgerEntry.filter(subject=f"financing:{financing_id}").order_by("-seq").first()
    return entry.created_at


async def _nav(page, name: str) -> None:  # noqa: ANN001
    await page.locator("header nav").get_by_role("link", name=name, exact=True).click()


async def _pending_registration(app: web.Application) -> Enterprise:
    """An enterprise registered, documented, confirmed and submitted through the onboarding use cases."""
    applicant = await User.create(openid="browser-applicant", display_name="申请人")
    deps = app[DEPS]
    e = await onboarding.register(deps, applicant, EnterpriseInput.model_validate(
        enterprise_body(name="泉城待审核商贸有限公司", business_roles=["supplier"])))
    for kind in ("business_license", "id_card_front", "id_card_back"):
        await documents.upload(deps, applicant, e.id, kind, f"{kind}.png", png_bytes(240, 150))
    await onboarding.confirm_info(applicant, e.id)
    return await onboarding.submit(applicant, e.id)


async def test_operator_logs_in_approves_allocates_and_prices(served, page):  # noqa: ANN001
    base, app = served
    await make_operator()
    pending = await _pending_registration(app)
    cast = await make_cast()
    financing = await advance(cast, "confirmed")
    expect = pytest.importorskip("playwright.async_api").expect
    problems: list[str] = []  # script errors and Content-Security-Policy violations the browser reports
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    # Log in: an anonymous visitor lands on the login form and comes back to the dashboard.
    await page.goto(f"{base}/console/")
    await expect(page.get_by_role("heading", name="运营人员登录")).to_be_visible()
    await _shot(page, "01-login")
    await page.get_by_label("用户名").fill("ops.alice")
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("heading", name="业务概览")).to_be_visible()
    await expect(page.locator("svg.chart").first).to_be_visible()
    await _shot(page, "02-dashboard")

    # Approve the registration: masked ID number, document previews, the four-element result.
    await _nav(page, "待审核企业")
    await page.get_by_role("row", name="泉城待审核商贸有限公司").get_by_role("link", name="审核").click()
    await expect(page.locator(".masked")).to_have_text(pending.legal_rep_id_masked)
    await expect(page.locator(".document img")).to_have_count(3)
    assert await page.locator(".document img").first.evaluate("img => img.naturalWidth") > 0  # the preview loaded
    await _shot(page, "03-registration")
    await page.get_by_role("button", name="审核通过").click()
    await expect(page.locator(".flash.success")).to_contain_text("已审核通过：泉城待审核商贸有限公司")
    assert (await Enterprise.get(id=pending.id)).status == "approved"

    # Allocate the confirmed asset to a funder.
    await _nav(page, "待分配资产")
    await page.locator(f'a[href="/console/financings/{financing.id}"]').click()
    await page.get_by_label(cast.funder.name, exact=False).check()
    await _shot(page, "04-allocate")
    await page.get_by_role("button", name="分配", exact=True).click()
    await expect(page.locator(".flash.success")).to_contain_text("已分配资产")
    await expect(page.locator("#status")).to_have_text("已分配待认购")
    assert (await Financing.get(id=financing.id)).status == "allocated"

    # The funder subscribes elsewhere: the open page learns it live (Server-Sent Events).
    await page.wait_for_timeout(500)  # let the page's EventSource subscribe
    await service.act(app[DEPS], cast.funder_op, financing.id, "subscribe")
    await expect(page.locator("#live-notice")).to_contain_text("状态已更新：认购 → 已认购待出具合同")
    await expect(page.locator("#timeline li.new")).to_contain_text("认购")
    shown_at = await page.locator("#timeline li.new time").text_content()
    # China time, as the server renders it (not the browser's zone, not UTC).
    shown = datetime.strptime(shown_at or "", "%Y-%m-%d %H:%M").replace(tzinfo=CHINA_TZ)
    assert abs(shown - await _latest_at(financing.id)) < timedelta(minutes=1)
    await _shot(page, "05-live-update")

    # Price it: final rate, advance rate, amount; the contract is generated.
    await _nav(page, "待定价资产")
    await page.locator(f'a[href="/console/financings/{financing.id}"]').click()
    await page.get_by_label("最终年化利率").fill("0.065")
    await page.get_by_label("手续费率").fill("0.005")
    await _shot(page, "06-price")
    await page.get_by_role("button", name="出具合同").click()
    await expect(page.locator(".flash.success")).to_contain_text("已出具合同")
    await expect(page.locator("#status")).to_have_text("合同已出具待签署")
    priced = await Financing.get(id=financing.id)
    assert (priced.status, str(priced.annual_rate), priced.contract_version) == ("contract_issued", "0.065000", 1)

    await page.get_by_role("link", name="合同验签").click()
    await expect(page.locator("#contract-verdict")).to_be_visible()
    await _shot(page, "07-contract-verification")

    await page.get_by_role("button", name="退出登录").click()
    await expect(page.get_by_role("heading", name="运营人员登录")).to_be_visible()
    assert problems == []
