"""schema_check passes on a freshly migrated database, reports each kind of drift with
SQL that fixes it, and catches a model change nobody wrote a migration for."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import asyncpg
import pytest
from piccolo.columns import Integer
from piccolo.table import create_table_class

from agent_app.ddl import enum_values
from agent_app.enums import AgentStatus
from agent_app.migration_writer import write_raw_migration
from agent_app.schema_check import Drift, database_drift, migration_drift, render
from agent_app.tables import TABLES, Sandbox
from tests.conftest import piccolo

ALL_BUT_ONE_STATUS = ", ".join(f"'{v}'" for v in enum_values(AgentStatus)[:-1])

# (what changed, SQL that makes the database drift, kind reported, words in the report)
DRIFTS = [
    ("missing column", "ALTER TABLE agent.agents DROP COLUMN finished_at", "column", "agents.finished_at"),
    ("extra column", "ALTER TABLE agent.agents ADD COLUMN nickname text", "column", "agents.nickname"),
    ("type", "ALTER TABLE agent.agents ALTER COLUMN name TYPE text", "column", "type is text"),
    ("nullability", "ALTER TABLE agent.sandboxes ALTER COLUMN provider DROP NOT NULL", "column", "nullable"),
    (
        "enum values",
        "ALTER TABLE agent.agents DROP CONSTRAINT status_enum; ALTER TABLE agent.agents ADD "
        f"CONSTRAINT status_enum CHECK (status IN ({ALL_BUT_ONE_STATUS}, 'zombie')) NOT VALID",
        "constraint",
        "missing ['terminated'], extra ['zombie']",
    ),
    ("missing check", "ALTER TABLE agent.budgets DROP CONSTRAINT budget_limits", "constraint", "budget_limits"),
    ("missing unique", "ALTER TABLE agent.budgets DROP CONSTRAINT budgets_agent_resource_key", "constraint", "budgets_agent_resource_key"),
    ("missing composite index", "DROP INDEX agent.agent_invocations_phase_result_type_idx", "index", "missing"),
    ("missing partial index", "DROP INDEX agent.messages_claim_idx", "index", "messages_claim_idx"),
    (
        "partial index lost its predicate",
        "DROP INDEX agent.messages_claim_idx; CREATE INDEX messages_claim_idx ON agent.messages "
        "(recipient_id, priority DESC, id)",
        "index",
        "the code says",
    ),
    ("extra index", "CREATE INDEX my_idx ON agent.agents (name)", "index", "my_idx"),
    ("missing trigger", "DROP TRIGGER agents_closure ON agent.agents", "trigger", "agents_closure"),
    (
        "trigger timing",
        "DROP TRIGGER budgets_guard ON agent.budgets; CREATE TRIGGER budgets_guard BEFORE INSERT "
        "ON agent.budgets FOR EACH ROW EXECUTE FUNCTION agent.budgets_guard()",
        "trigger",
        "budgets_guard",
    ),
    (
        "function body",
        "CREATE OR REPLACE FUNCTION agent.set_updated_at() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NEW; END $$",
        "function",
        "set_updated_at",
    ),
    (
        "function settings",
        "ALTER FUNCTION agent.checkpoints_guard() RESET enable_seqscan",
        "function",
        "settings",
    ),
    (
        "delete behaviour",
        "ALTER TABLE agent.feature_runs DROP CONSTRAINT feature_runs_sandbox_id_fkey; "
        "ALTER TABLE agent.feature_runs ADD CONSTRAINT feature_runs_sandbox_id_fkey FOREIGN KEY "
        "(sandbox_id) REFERENCES agent.sandboxes (id) ON DELETE CASCADE",
        "foreign key",
        "ON DELETE NO ACTION",
    ),
    ("raw foreign key", "ALTER TABLE agent.tool_calls DROP CONSTRAINT tool_calls_step_same_invocation_fkey", "foreign key", "missing"),
    ("comment", "COMMENT ON TABLE agent.budgets IS 'money'", "comment", "docstring"),
    ("autovacuum settings lost", "ALTER TABLE agent.messages RESET (autovacuum_vacuum_threshold)", "storage", "autovacuum_vacuum_threshold"),
    ("extra storage setting", "ALTER TABLE agent.agents SET (fillfactor = 50)", "storage", "fillfactor"),
    ("extra table", "CREATE TABLE agent.scratch (x int)", "table", "scratch"),
]  # fmt: skip


async def test_passes_on_a_freshly_migrated_database(conn: asyncpg.Connection) -> None:
    assert await database_drift(conn) == []
    assert await migration_drift() == []
    assert render([]) == "schema_check: code, migrations and database agree."


@pytest.mark.parametrize(("what", "sql", "kind", "words"), DRIFTS, ids=[d[0] for d in DRIFTS])
async def test_reports_each_kind_of_drift_and_its_fix_works(
    conn: asyncpg.Connection, what: str, sql: str, kind: str, words: str
) -> None:
    await conn.execute(sql)
    drifts = await database_drift(conn)
    assert drifts, f"{what} went unnoticed"
    assert any(d.kind == kind and words in str(d) for d in drifts), render(drifts)
    report = render(drifts)
    assert "difference(s) found" in report
    fixes = [s for d in drifts for s in d.fix]
    if kind != "table":
        assert fixes
        for statement in fixes:
            await conn.execute(statement)
        assert await database_drift(conn) == [], "the printed SQL did not fix the drift"


async def test_catalog_is_untouched_by_the_check(conn: asyncpg.Connection) -> None:
    before = await conn.fetchval("SELECT count(*) FROM pg_class")
    await database_drift(conn)
    # The temporary probe tables were rolled back.
    assert await conn.fetchval("SELECT count(*) FROM pg_class") == before


async def test_a_model_change_without_a_migration_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_app.piccolo_app import APP_CONFIG

    members = {c._meta.name: c.copy() for c in Sandbox._meta.columns}
    members["surprise"] = Integer(default=0)
    changed = create_table_class(
        "Sandbox",
        class_kwargs={"tablename": "sandboxes", "schema": "agent"},
        class_members=members,
    )
    tables = [changed if t is Sandbox else t for t in TABLES]
    monkeypatch.setattr(APP_CONFIG, "table_classes", tables)
    drifts = await migration_drift()
    assert drifts and all(d.kind == "migrations" for d in drifts)
    assert any("surprise" in d.detail for d in drifts), render(drifts)
    assert "piccolo migrations new agent_app --auto" in render(drifts)


async def test_cli_exits_1_with_a_report_then_0_once_fixed(scratch_url: str) -> None:
    piccolo(scratch_url, "migrations", "forwards", "all")
    ok = piccolo(scratch_url, "agent_app", "schema_check")
    assert ok.returncode == 0 and "agree" in ok.stdout
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute("DROP INDEX agent.workspaces_active_branch_key")
        failed = piccolo(scratch_url, "agent_app", "schema_check", check=False)
        assert failed.returncode == 1
        assert "workspaces.workspaces_active_branch_key: missing" in failed.stdout
        fix_line = next(
            line.strip() for line in failed.stdout.splitlines() if "CREATE UNIQUE INDEX" in line
        )
        await conn.execute(fix_line)
    finally:
        await conn.close()
    assert piccolo(scratch_url, "agent_app", "schema_check").returncode == 0


async def test_write_migration_freezes_the_fix(tmp_path: Path, conn: asyncpg.Connection) -> None:
    drift = Drift("index", "x", "missing", ["SELECT 1;", "SELECT 2;"])
    path = write_raw_migration(drift.fix, ["SELECT 3;"], "fix it", directory=tmp_path)
    spec = importlib.util.spec_from_file_location("frozen", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.FORWARDS == ["SELECT 1;", "SELECT 2;"] and module.BACKWARDS == ["SELECT 3;"]
    manager = await module.forwards()
    assert manager.app_name == "agent_app" and manager.raw and manager.raw_backwards
