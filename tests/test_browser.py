"""The admin as a person uses it, in headless Chromium (Debian's /usr/bin/chromium driven
by Playwright): log in, open feature runs after a simulate, filter by phase, open a run,
follow it to its invocations. Screenshots go to artifacts/browser/."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator

import pytest
import uvicorn
from piccolo.apps.user.tables import BaseUser
from playwright.async_api import Page, async_playwright

from agent_app import db
from agent_app.admin import create_app
from agent_app.simulation import simulate
from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "browser"
# Chromium as root, offline: no sandbox, no GPU, no calls home.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _ensure_chromium() -> None:
    """Debian's chromium is the browser; as root on a fresh machine, install it."""
    if os.path.exists(CHROMIUM):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"the browser test needs Debian's chromium at {CHROMIUM}: apt-get install chromium"
        )


@pytest.fixture
async def admin_url() -> AsyncIterator[str]:
    _ensure_chromium()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the admin server did not start"
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_an_operator_follows_a_completed_run_to_its_invocations(admin_url: str) -> None:
    stats = await simulate(4, 2, seed=21)
    assert stats.runs_completed > 0
    await BaseUser.create_user(
        username="operator", password="operator-pw-1", email="op@example.invalid",
        active=True, admin=True, superuser=True,
    )  # fmt: skip
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            await page.goto(f"{admin_url}/")
            await page.fill("input[name=username]", "operator")
            await page.fill("input[name=password]", "operator-pw-1")
            await shot(page, "01-login")
            await page.click("[data-uitest=login_button]")
            await page.wait_for_selector("a[href='#/feature_runs/']")

            await page.goto(f"{admin_url}/#/feature_runs/")
            await page.wait_for_selector(
                "a[href^='#/feature_runs/'][href$='/']:has-text('Feature #')"
            )
            await shot(page, "02-feature-runs")

            await page.click("[data-uitest=filter_button]")
            await page.select_option("select[name=current_phase]", "completed")
            await page.click("[data-uitest=submit_filter_button]")
            rows = page.locator("tbody tr:has(a[href^='#/feature_runs/'])")
            texts: list[str] = []
            for _ in range(100):  # until the list shows the filtered rows
                texts = [t.lower() for t in await rows.all_inner_texts()]
                if texts and all("completed" in t for t in texts):
                    break
                await asyncio.sleep(0.1)
            await shot(page, "03-filtered-completed")
            assert texts and all("completed" in t and "failed" not in t for t in texts), texts

            run_link = page.locator("tbody tr a[href^='#/feature_runs/']").first
            title = await run_link.inner_text()
            href = await run_link.get_attribute("href")
            assert href is not None
            run_id = href.strip("#/").split("/")[1]
            await run_link.click()
            await page.wait_for_url(f"**/feature_runs/{run_id}/**")
            await page.wait_for_timeout(500)
            await shot(page, "04-run")
            assert title.startswith("Feature #")

            # Its invocations: the run's related rows, filtered by run.
            await page.goto(f"{admin_url}/#/agent_invocations/?run_id={run_id}")
            # Each row names its run by title (a readable link back to the run).
            invocation_rows = f"tbody tr:has(a[href='#/feature_runs/{run_id}/'])"
            await page.wait_for_selector(invocation_rows)
            await page.wait_for_timeout(500)
            await shot(page, "05-invocations")
            shown = await page.locator(invocation_rows).count()
            async with db.connection() as c:
                expected = await c.fetchval(
                    "SELECT count(*) FROM agent.agent_invocations WHERE run_id = $1", run_id
                )
            assert shown == min(expected, 15)
            body = " ".join(await page.locator(invocation_rows).all_inner_texts())
            assert "model-a" in body or "model-b" in body
        finally:
            await shot(page, "99-last")
            await browser.close()
