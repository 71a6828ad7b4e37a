"""The operator's view: only logged-in admin users get in, CSRF is enforced, passwords are
hashed, history tables are read-only, enum columns show their choices."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from piccolo.apps.user.tables import BaseUser

from agent_app import db, runs
from agent_app.admin import create_app
from agent_app.tables import FeatureRun


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app()


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def user(*, admin: bool) -> tuple[str, str]:
    name, password = f"u{secrets.token_hex(4)}", f"pw-{secrets.token_hex(8)}"
    await BaseUser.create_user(
        username=name, password=password, email=f"{name}@example.invalid", active=True,
        admin=admin, superuser=admin,
    )  # fmt: skip
    return name, password


async def csrf(c: httpx.AsyncClient) -> str:
    await c.get("/public/meta/")
    token = c.cookies.get("csrftoken")
    assert token, "the admin sets a csrftoken cookie"
    return token


async def login(c: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    token = await csrf(c)
    return await c.post(
        "/public/login/", json={"username": name, "password": password},
        headers={"X-CSRFToken": token},
    )  # fmt: skip


API_ROUTES = [
    "/api/tables/",
    "/api/tables/grouped/",
    "/api/tables/feature_runs/",
    "/api/tables/agents/?__page=1",
    "/api/tables/tool_calls/schema/",
    "/api/user/",
    "/api/meta/",
]


@pytest.mark.parametrize("path", API_ROUTES)
async def test_anonymous_requests_get_nothing(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401, (path, response.status_code)


async def test_a_non_admin_user_gets_no_access(client: httpx.AsyncClient) -> None:
    name, password = await user(admin=False)
    await login(client, name, password)
    for path in API_ROUTES:
        assert (await client.get(path)).status_code in (401, 403), path


async def test_wrong_password_and_missing_csrf_are_refused(client: httpx.AsyncClient) -> None:
    name, password = await user(admin=True)
    assert (await login(client, name, "not-" + password)).status_code in (401, 403)
    await csrf(client)
    no_token = await client.post("/public/login/", json={"username": name, "password": password})
    assert no_token.status_code == 403
    assert (await client.get("/api/tables/")).status_code == 401


async def test_passwords_are_stored_hashed() -> None:
    name, password = await user(admin=True)
    async with db.connection() as c:
        stored = await c.fetchval("SELECT password FROM piccolo_user WHERE username = $1", name)
    assert stored != password and password not in stored
    assert stored.startswith("pbkdf2_sha256$")


async def test_an_admin_sees_grouped_tables_filters_runs_and_history_is_read_only(
    client: httpx.AsyncClient,
) -> None:
    done = await runs.create_run("admin-visible run", "r", "u")
    name, password = await user(admin=True)
    assert (await login(client, name, password)).status_code in (200, 303)
    tables = (await client.get("/api/tables/")).json()
    assert {"feature_runs", "agents", "messages", "tool_calls", "checkpoints"} <= set(tables)
    assert "hierarchies" not in tables  # the run page shows the agent tree instead
    grouped = (await client.get("/api/tables/grouped/")).json()
    assert {"Pipeline", "Hierarchy", "Telemetry"} <= set(grouped["grouped"])
    rows = (
        await client.get("/api/tables/feature_runs/?current_phase=analysis&__page_size=100")
    ).json()
    assert rows["rows"] and all(r["current_phase"] == "analysis" for r in rows["rows"])
    assert str(done.id) in {str(r["id"]) for r in rows["rows"]}
    schema = (await client.get("/api/tables/feature_runs/schema/")).json()
    assert "analysis" in str(schema["properties"]["current_phase"])  # choices offered
    token = client.cookies.get("csrftoken") or ""
    refused = await client.post(
        "/api/tables/tool_calls/", json={"tool_name": "x"}, headers={"X-CSRFToken": token}
    )
    assert refused.status_code == 405
    no_csrf = await client.post("/api/tables/memory_records/", json={"content": "x"})
    assert no_csrf.status_code == 403


async def test_langgraph_threads_and_session_items_show_in_the_admin(
    client: httpx.AsyncClient,
) -> None:
    from agent_app.agents_sdk import AgentAppSession
    from agent_app.langgraph import AgentAppSaver

    thread = f"admin-{secrets.token_hex(4)}"
    await AgentAppSaver().aput(
        {"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
        {"v": 4, "id": "1f0-admin", "ts": "2026-01-01T00:00:00+00:00", "channel_values": {},
         "channel_versions": {}, "versions_seen": {}, "updated_channels": None},
        {"source": "input", "step": -1},
        {},
    )  # fmt: skip
    session = AgentAppSession(f"admin-{secrets.token_hex(4)}")
    await session.add_items([{"role": "user", "content": "hello admin"}])
    assert (await login(client, *await user(admin=True))).status_code == 200

    grouped = (await client.get("/api/tables/grouped/")).json()
    assert set(grouped["grouped"]["Frameworks"]) == {
        "graph_threads", "session_items",
    }  # fmt: skip
    threads = (await client.get(f"/api/tables/graph_threads/?thread_id={thread}")).json()
    assert [r["thread_id"] for r in threads["rows"]] == [thread]
    items = (await client.get(f"/api/tables/session_items/?session_id={session.session_id}")).json()
    assert len(items["rows"]) == 1
    token = client.cookies.get("csrftoken") or ""
    refused = await client.delete(
        f"/api/tables/session_items/{items['rows'][0]['id']}/",
        headers={"X-CSRFToken": token},
    )
    assert refused.status_code == 405
    await session.clear_session()


async def test_an_admin_edits_a_feature_run_and_the_request_column_round_trips(
    client: httpx.AsyncClient,
) -> None:
    """The edit form is built from the schema and filled from the row: every schema key is
    a row key, so the contract's ``request`` column shows its text and a save (which
    sends the whole form) is accepted and keeps it."""
    from piccolo_api.fastapi.endpoints import FastAPIWrapper

    marker = secrets.token_hex(4)
    run = await runs.create_run(f"edit me {marker}", f"the request {marker}", "u")
    assert (await login(client, *await user(admin=True))).status_code == 200
    token = client.cookies.get("csrftoken") or ""
    schema = (await client.get("/api/tables/feature_runs/schema/")).json()
    row = (await client.get(f"/api/tables/feature_runs/{run.id}/")).json()
    assert set(schema["properties"]) <= set(row), "a form field the row does not fill"
    assert row["request"] == f"the request {marker}"
    form = {key: row[key] for key in schema["properties"]}
    form["title"] = f"edited {marker}"
    saved = await client.patch(
        f"/api/tables/feature_runs/{run.id}/", json=form, headers={"X-CSRFToken": token}
    )
    assert saved.status_code == 200, saved.text
    stored = (
        await FeatureRun.select(FeatureRun.title, FeatureRun.request)
        .where(FeatureRun.id == run.id)
        .first()
    )
    assert stored == {"title": f"edited {marker}", "request": f"the request {marker}"}
    found = (await client.get(f"/api/tables/feature_runs/?request={marker}")).json()
    assert [r["id"] for r in found["rows"]] == [str(run.id)]
    # The OpenAPI document is served, and building the admin left piccolo-api unpatched.
    openapi = await client.get("/api/openapi.json")
    assert openapi.status_code == 200 and "/tables/feature_runs/" in openapi.json()["paths"]
    assert FastAPIWrapper.__dict__["modify_signature"].__func__.__module__ == (
        "piccolo_api.fastapi.endpoints"
    )


async def test_the_admin_shows_each_columns_help_text(client: httpx.AsyncClient) -> None:
    """piccolo-admin shows a column's ``help_text`` beside its field: the schema endpoint
    of every listed table carries it for every column."""
    from agent_app.tables import TABLES

    by_name = {t._meta.tablename: t for t in TABLES}
    assert (await login(client, *await user(admin=True))).status_code == 200
    listed = [t for t in (await client.get("/api/tables/")).json() if t in by_name]
    assert {"feature_runs", "budgets", "messages"} <= set(listed)
    for tablename in listed:
        schema = (await client.get(f"/api/tables/{tablename}/schema/")).json()
        for column in by_name[tablename]._meta.columns:
            if column._meta.primary_key:
                continue  # not a form field
            shown = schema["properties"][column._meta.name]["extra"]["help_text"]
            assert shown == column._meta.help_text, (tablename, column._meta.name)
    budget = (await client.get("/api/tables/budgets/schema/")).json()
    assert "Kept by triggers only" in budget["properties"]["used"]["extra"]["help_text"]
