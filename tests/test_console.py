"""The operator's console over HTTP (the admin app, as served): pages show what the
database holds, lists filter by run, actions go through the worker API and are refused
without an admin session or the CSRF token, logins are throttled by
agent_app.admin_security (tested in test_admin_production.py)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from piccolo.apps.user.tables import BaseUser

from agent_app import cta, db, hierarchy, queue, runs, telemetry
from agent_app.admin import create_app
from agent_app.enums import AgentType, BudgetResource, CtaKind, FeaturePhase, FinishReason
from agent_app.simulation import simulate


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app()


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def login(c: httpx.AsyncClient, *, admin: bool = True) -> str:
    """Log in as a new user; returns the CSRF token."""
    name, password = f"op{secrets.token_hex(4)}", f"pw-{secrets.token_hex(8)}"
    await BaseUser.create_user(
        username=name, password=password, email=f"{name}@example.invalid", active=True,
        admin=admin, superuser=admin,
    )  # fmt: skip
    await c.get("/public/meta/")
    token = c.cookies.get("csrftoken")
    assert token
    response = await c.post(
        "/public/login/", json={"username": name, "password": password},
        headers={"X-CSRFToken": token},
    )  # fmt: skip
    assert response.status_code in (200, 303), response.text
    return token


def totals_on(page: str) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in re.findall(r'data-total="(\w+)" data-value="([^"]*)"', page)}


@pytest.fixture(scope="module")
async def simulated() -> list[uuid.UUID]:
    await simulate(3, 2, seed=33)
    async with db.connection() as c:
        rows = await c.fetch(
            "SELECT id FROM agent.feature_runs WHERE title LIKE 'Feature #%' "
            "ORDER BY created_at DESC LIMIT 3"
        )
    return [r["id"] for r in rows]


async def test_pages_show_what_the_database_holds(
    client: httpx.AsyncClient, simulated: list[uuid.UUID]
) -> None:
    await login(client)
    home = await client.get("/console/")
    assert home.status_code == 200
    assert "Dashboard" in home.text and "Slowest phases" in home.text
    assert "Cost per model" in home.text and "model-a" in home.text

    listing = (await client.get("/console/runs")).text
    shown = re.findall(r'href="/console/runs/([0-9a-f-]{36})"', listing)
    async with db.connection() as c:
        newest = [
            r["id"]
            for r in await c.fetch(
                "SELECT id FROM agent.feature_runs ORDER BY created_at DESC, id DESC LIMIT 50"
            )
        ]
    assert shown == [str(i) for i in newest]  # newest first
    assert "E+" not in listing  # numbers plainly

    run_id = simulated[0]
    page = (await client.get(f"/console/runs/{run_id}")).text
    async with db.connection() as c:
        expected = await c.fetchrow(
            "SELECT sum(s.cost_usd) AS cost_usd, sum(s.input_tokens) AS input_tokens, "
            "sum(s.output_tokens) AS output_tokens, "
            "coalesce(sum(s.cached_input_tokens), 0) AS cached_input_tokens, "
            "coalesce(sum(s.reasoning_tokens), 0) AS reasoning_tokens, count(*) AS steps "
            "FROM agent.agent_steps s JOIN agent.agent_invocations i ON i.id = s.invocation_id "
            "WHERE i.run_id = $1",
            run_id,
        )
        agents = await c.fetchval("SELECT count(*) FROM agent.agents WHERE run_id = $1", run_id)
        invocation = await c.fetchrow(
            "SELECT id, (SELECT count(*) FROM agent.agent_steps WHERE invocation_id = i.id) AS n "
            "FROM agent.agent_invocations i WHERE run_id = $1 ORDER BY 2 DESC LIMIT 1",
            run_id,
        )
        tool_names = await c.fetch(
            "SELECT tool_call_id FROM agent.tool_calls WHERE invocation_id = $1", invocation["id"]
        )
    shown_totals = totals_on(page)
    for key, value in dict(expected).items():
        assert shown_totals[key] == Decimal(value), key
    assert shown_totals["agents"] == agents
    assert "orchestrator" in page and "Questions to a person" in page

    trace = (await client.get(f"/console/runs/{run_id}/invocations/{invocation['id']}")).text
    steps = re.findall(r'data-step="(\d+)"', trace)
    assert steps == [str(n) for n in range(invocation["n"])]
    assert {r["tool_call_id"] for r in tool_names} == set(
        re.findall(r'data-tool-call="([^"]+)"', trace)
    )

    for path in ("steps", "tool-calls", "budgets", "messages"):
        filtered = await client.get(f"/console/{path}?run={run_id}")
        assert filtered.status_code == 200, path
        linked = set(re.findall(r'href="/console/runs/([0-9a-f-]{36})"', filtered.text))
        assert linked == {str(run_id)}, path


async def test_a_long_trace_is_paged(client: httpx.AsyncClient) -> None:
    await login(client)
    run = await runs.create_run("long run", "r", "u")
    phase = await runs.start_phase(run.id, FeaturePhase.analysis)
    inv = await telemetry.start_invocation(run.id, phase.id, AgentType.coder, "model-x")
    await telemetry.ingest(
        [telemetry.StepIn(inv, n, FinishReason.stop, input_tokens=1) for n in range(120)], []
    )
    first = (await client.get(f"/console/runs/{run.id}/invocations/{inv}")).text
    third = (await client.get(f"/console/runs/{run.id}/invocations/{inv}?page=3")).text
    assert re.findall(r'data-step="(\d+)"', first) == [str(n) for n in range(50)]
    assert re.findall(r'data-step="(\d+)"', third) == [str(n) for n in range(100, 120)]
    assert totals_on((await client.get(f"/console/runs/{run.id}")).text)["steps"] == 120


async def test_actions_need_an_admin_session_and_the_csrf_token(app: Any) -> None:
    run = await runs.create_run("guarded", "r", "u")
    question = await cta.ask(run.id, CtaKind.text, "Name?")
    target = f"/console/questions/{question.id}/answer"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        anonymous_page = await c.get("/console/runs")
        assert anonymous_page.status_code == 303
        assert anonymous_page.headers["location"] == "/#/login"
        await c.get("/public/meta/")
        token = c.cookies.get("csrftoken") or ""
        anonymous = await c.post(target, data={"answer": "x", "csrftoken": token})
        assert anonymous.status_code == 401
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        await login(c, admin=False)
        token = c.cookies.get("csrftoken") or ""
        assert (await c.get("/console/runs")).status_code == 303
        non_admin = await c.post(target, data={"answer": "x", "csrftoken": token})
        assert non_admin.status_code == 401
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        await login(c)
        no_token = await c.post(target, data={"answer": "x"})
        assert no_token.status_code == 403
        wrong_token = await c.post(target, data={"answer": "x", "csrftoken": "forged"})
        assert wrong_token.status_code == 403
    assert not (await cta.get(question.id)).answered


async def test_answer_redrive_release_and_cancel_change_the_database(
    client: httpx.AsyncClient,
) -> None:
    token = await login(client)
    run = await runs.create_run("acted on", "r", "u")
    phase = await runs.start_phase(run.id, FeaturePhase.analysis)
    root = await hierarchy.create_root(
        AgentType.orchestrator, "orch", run_id=run.id, budgets={BudgetResource.tokens: 1000}
    )
    child = await hierarchy.spawn_child(
        root.id, AgentType.coder, "coder", budgets={BudgetResource.tokens: 300}
    )
    inv = await telemetry.start_invocation(
        run.id, phase.id, AgentType.coder, "m", agent_id=child.id
    )

    async def post(path: str, **data: str) -> httpx.Response:
        response = await client.post(
            path, data={"csrftoken": token, "next": f"/runs/{run.id}", **data}
        )
        assert response.status_code == 303, response.text
        return response

    choice = await cta.ask(run.id, CtaKind.choice, "Which?", options=["a", "b"])
    refused = await post(f"/console/questions/{choice.id}/answer", answer="c")
    assert "choice_not_offered" in refused.headers["location"]
    assert not (await cta.get(choice.id)).answered
    answered = await post(f"/console/questions/{choice.id}/answer", answer="b")
    assert "error" not in answered.headers["location"]
    got = await cta.get(choice.id)
    assert got.response == "b" and got.responded_by and got.responded_by.startswith("op")
    again = await post(f"/console/questions/{choice.id}/answer", answer="a")
    assert "cta_answered_once" in again.headers["location"]
    assert (await cta.get(choice.id)).response == "b"

    await queue.send(child.id, "work", {}, run_id=run.id, sender_id=root.id)
    [msg] = await queue.claim("w1", [child.id])
    await queue.fail(msg, "w1", "boom", retry=False)
    await post("/console/messages/redrive", message_id=str(msg.id))
    [again_msg] = await queue.claim("w2", [child.id], lease=dt.timedelta(hours=1))
    assert again_msg.id == msg.id and again_msg.attempts == 1
    await post(f"/console/messages/{msg.id}/release")
    async with db.connection() as c:
        row = await c.fetchrow(
            "SELECT status, claimed_by FROM agent.messages WHERE id = $1", msg.id
        )
    assert (row["status"], row["claimed_by"]) == ("pending", None)
    not_claimed = await post(f"/console/messages/{msg.id}/release")
    assert "message_not_claimed" in not_claimed.headers["location"]

    open_q = await cta.ask(run.id, CtaKind.approval, "Go?")
    await post(f"/console/runs/{run.id}/cancel", reason="stuck")
    async with db.connection() as c:
        state = await c.fetchrow(
            "SELECT r.current_phase, r.error, "
            "(SELECT count(*) FROM agent.agents WHERE run_id = r.id "
            "  AND status NOT IN ('completed', 'failed', 'terminated')) AS live, "
            "(SELECT sum(reserved) FROM agent.budgets b JOIN agent.agents a ON a.id = b.agent_id "
            "  WHERE a.run_id = r.id) AS reserved, "
            "(SELECT finished_at IS NOT NULL FROM agent.agent_invocations WHERE id = $2) AS closed, "
            "(SELECT status FROM agent.phase_results WHERE id = $3) AS attempt, "
            "(SELECT status FROM agent.messages WHERE id = $4) AS message "
            "FROM agent.feature_runs r WHERE r.id = $1",
            run.id, inv, phase.id, msg.id,
        )  # fmt: skip
    assert state["current_phase"] == "failed" and state["error"].startswith("stuck")
    assert (state["live"], state["reserved"], state["closed"]) == (0, 0, True)
    assert (state["attempt"], state["message"]) == ("failed", "cancelled")
    assert not (await cta.get(open_q.id)).answered
    with pytest.raises(Exception, match="cta_expired"):
        await cta.answer(open_q.id, True)
    page = (await client.get(f"/console/runs/{run.id}")).text
    assert 'data-action="cancel"' not in page  # a run that is over offers no cancel


async def test_the_admin_home_opens_the_console_and_history_tables_have_no_edit_buttons(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/")).text
    assert 'location.replace("./console/")' in page
    assert '["agent_steps", "tool_calls", "checkpoints", "budget_reservations"]' in page
    await login(client)
    tables = (await client.get("/api/tables/")).json()
    assert "hierarchies" not in tables and "feature_runs" in tables
    links = (await client.get("/api/links/")).json()
    assert links["Dashboard"] == "./console/"
    schema = (await client.get("/api/tables/feature_runs/schema/")).json()
    # The admin's lists sort by this unless the operator picks another order.
    assert schema["extra"]["order_by"] == [{"column": "created_at", "ascending": False}]


async def test_the_admin_command_says_it_listens_once_it_does(database_url: str) -> None:
    import asyncio
    import os
    import signal
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "piccolo.main", "agent_app", "admin", f"--port={port}"],
        cwd=REPO, env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
        assert line.startswith(f"agent_app admin listening on http://127.0.0.1:{port}/"), line
        async with httpx.AsyncClient() as c:  # at once: no retry, no wait
            assert (await c.get(f"http://127.0.0.1:{port}/public/meta/")).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(proc.wait, 60)


async def test_an_operator_releases_a_gone_workers_expired_lease() -> None:
    # The worker is gone and its lease has ended: the holder itself could no longer
    # release it, but the operator can, by the claim as read; a stale claim is refused.
    import asyncio
    import datetime as dt

    from agent_app import db, hierarchy, operator, queue
    from agent_app.enums import AgentType
    from agent_app.errors import LeaseLost

    root = await hierarchy.create_root(AgentType.orchestrator, "o")
    await queue.send(root.id, "k")
    [m] = await queue.claim("gone", [root.id], lease=dt.timedelta(milliseconds=50))
    while await db.fetchval("SELECT clock_timestamp()") <= m.lease_expires_at:
        await asyncio.sleep(0.02)
    with pytest.raises(LeaseLost):
        await queue.release(m, "gone")
    held = await operator.release_lease(m.id)
    assert held.claimed_by == "gone"
    row = await db.fetchrow("SELECT status, attempts FROM agent.messages WHERE id = $1", m.id)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    [again] = await queue.claim("w2", [root.id])
    assert again.id == m.id and again.attempts == 1
