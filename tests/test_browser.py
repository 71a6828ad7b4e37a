"""The console and admin as a person uses them, in headless Chromium (Debian's
/usr/bin/chromium driven by Playwright): after a simulate, log in, land on the dashboard,
open a run (its totals equal the database's), follow an invocation's whole trace, read
the lists by run, answer a question and redrive a dead message (the database changes),
and find the table editor newest first with history read-only. Screenshots of each page
go to artifacts/browser/."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import uvicorn
from piccolo.apps.user.tables import BaseUser
from playwright.async_api import Page, async_playwright

from agent_app import cta, db, hierarchy, queue, runs
from agent_app.admin import create_app
from agent_app.enums import AgentType, CtaKind
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


async def totals_shown(page: Page) -> dict[str, Decimal]:
    cells = page.locator("[data-total][data-value]")
    names = await cells.evaluate_all("els => els.map(e => [e.dataset.total, e.dataset.value])")
    return {name: Decimal(value) for name, value in names}


async def test_an_operator_reads_a_run_and_acts_on_it(admin_url: str) -> None:
    stats = await simulate(4, 2, seed=21)
    assert stats.runs_completed > 0
    # A run that needs a person, and a message that died.
    waiting = await runs.create_run(
        "Feature needing a person", "r", "https://example.invalid/w.git"
    )
    root = await hierarchy.create_root(AgentType.orchestrator, "orchestrator", run_id=waiting.id)
    question = await cta.ask(
        waiting.id, CtaKind.choice, "Which approach?", options=["small", "big"]
    )
    await queue.send(root.id, "review", {"pr": 1}, run_id=waiting.id)
    [msg] = await queue.claim("browser-test", [root.id])
    await queue.fail(msg, "browser-test", "reviewer crashed", retry=False)
    await BaseUser.create_user(
        username="operator", password="operator-pw-1", email="op@example.invalid",
        active=True, admin=True, superuser=True,
    )  # fmt: skip
    async with db.connection() as c:
        run_id = await c.fetchval(
            "SELECT id FROM agent.feature_runs WHERE title LIKE 'Feature #%' "
            "AND current_phase = 'completed' ORDER BY created_at LIMIT 1"
        )
        expected = await c.fetchrow(
            "SELECT sum(s.cost_usd) AS cost_usd, sum(s.input_tokens) AS input_tokens, "
            "sum(s.output_tokens) AS output_tokens, "
            "coalesce(sum(s.cached_input_tokens), 0) AS cached_input_tokens, "
            "coalesce(sum(s.reasoning_tokens), 0) AS reasoning_tokens, count(*) AS steps, "
            "(SELECT count(*) FROM agent.agents WHERE run_id = $1) AS agents, "
            "(SELECT count(*) FROM agent.agent_invocations WHERE run_id = $1) AS invocations "
            "FROM agent.agent_steps s JOIN agent.agent_invocations i ON i.id = s.invocation_id "
            "WHERE i.run_id = $1",
            run_id,
        )
        invocation = await c.fetchrow(
            "SELECT i.id, count(s.id) AS steps FROM agent.agent_invocations i "
            "JOIN agent.agent_steps s ON s.invocation_id = i.id WHERE i.run_id = $1 "
            "GROUP BY i.id ORDER BY count(s.id) DESC, i.id LIMIT 1",
            run_id,
        )
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            await page.goto(f"{admin_url}/")
            await page.fill("input[name=username]", "operator")
            await page.fill("input[name=password]", "operator-pw-1")
            await shot(page, "01-login")
            await page.click("[data-uitest=login_button]")
            # The admin's home is the console's dashboard.
            await page.wait_for_selector("h1:has-text('Dashboard')")
            assert page.url.endswith("/console/")
            await shot(page, "02-dashboard")

            await page.click("nav a:has-text('Runs')")
            await page.wait_for_selector("table[data-table=runs]")
            await shot(page, "03-runs")

            await page.goto(f"{admin_url}/console/runs/{run_id}")
            await page.wait_for_selector("[data-section=trace]")
            shown = await totals_shown(page)
            assert {k: shown[k] for k in dict(expected)} == {
                k: Decimal(v) for k, v in dict(expected).items()
            }
            await shot(page, "04-run")

            await page.click(f"tr[data-invocation='{invocation['id']}'] a")
            await page.wait_for_selector("[data-section=steps]")
            steps = await page.locator("tr[data-step]").evaluate_all(
                "rows => rows.map(r => Number(r.dataset.step))"
            )
            assert steps == list(range(invocation["steps"]))
            await shot(page, "05-invocation-trace")

            for name, path in [("06-steps", "steps"), ("07-tool-calls", "tool-calls"),
                               ("08-budgets", "budgets")]:  # fmt: skip
                await page.goto(f"{admin_url}/console/{path}?run={run_id}")
                await page.wait_for_selector("main table")
                await shot(page, name)

            # Answer the question from the run page.
            await page.goto(f"{admin_url}/console/runs/{waiting.id}")
            form = page.locator(f"tr[data-question='{question.id}'] form")
            await form.locator("select[name=answer]").select_option("big")
            await form.locator("button").click()
            await page.wait_for_selector("[data-flash=notice]")
            await shot(page, "09-question-answered")
            answered = await cta.get(question.id)
            assert answered.response == "big" and answered.responded_by == "operator"

            # Redrive the dead message.
            await page.goto(f"{admin_url}/console/messages?status=dead")
            await page.check(f"tr[data-message='{msg.id}'] input[type=checkbox]")
            await shot(page, "10-dead-messages")
            await page.click("button:has-text('Redrive the checked dead messages')")
            await page.wait_for_selector("[data-flash=notice]")
            await shot(page, "11-redriven")
            async with db.connection() as c:
                status = await c.fetchval("SELECT status FROM agent.messages WHERE id = $1", msg.id)
            assert status == "pending"

            # The table editor is still there: newest first, history read-only.
            await page.goto(f"{admin_url}/#/feature_runs/")
            await page.wait_for_selector("tbody tr a[href^='#/feature_runs/']")
            await page.wait_for_timeout(300)
            await shot(page, "12-admin-feature-runs")
            await page.goto(f"{admin_url}/#/tool_calls/")
            await page.wait_for_selector("tbody tr a[href^='#/tool_calls/']")
            await page.wait_for_timeout(300)
            assert not await page.locator("a[href$='/add/']").is_visible()
            await shot(page, "13-admin-tool-calls-read-only")
            await page.goto(f"{admin_url}/#/feature_runs/{run_id}/")
            link = page.locator("#agent-run-link")
            await link.wait_for()
            await page.wait_for_timeout(300)
            await shot(page, "14-admin-run-row")
            await link.click()
            await page.wait_for_selector("[data-section=trace]")
            assert page.url.endswith(f"/console/runs/{run_id}")
        finally:
            await shot(page, "99-last")
            await browser.close()
