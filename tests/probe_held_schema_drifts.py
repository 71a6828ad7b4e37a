"""Probe, HELD (these pass at d8a3a2d): more drift kinds than tests/test_schema_check.py
lists, each reported with a working fix and forwards/backwards. Candidates for DRIFTS."""

from __future__ import annotations

import asyncpg
import pytest

from agent_app import schema_check as sc
from tests.test_schema_check import scratch  # noqa: F401
from tests.test_schema_check import test_each_drift_is_reported_and_the_sql_goes_both_ways as _both

CASES = [
    ("trigger WHEN changed", "DROP TRIGGER agents_reclaim ON agent.agents; CREATE TRIGGER agents_reclaim AFTER UPDATE OF status ON agent.agents FOR EACH ROW WHEN (false) EXECUTE FUNCTION agent.agents_reclaim()", "trigger", "agents.agents_reclaim", "WHEN"),
    ("trigger column list", "DROP TRIGGER messages_recipient ON agent.messages; CREATE TRIGGER messages_recipient BEFORE INSERT OR UPDATE OF status ON agent.messages FOR EACH ROW EXECUTE FUNCTION agent.messages_recipient()", "trigger", "messages.messages_recipient", "definition"),
    ("check NOT ENFORCED", "ALTER TABLE agent.messages DROP CONSTRAINT priority_range, ADD CONSTRAINT priority_range CHECK (priority >= 0 AND priority <= 9) NOT ENFORCED", "constraint", "messages.priority_range", "NOT ENFORCED"),
    ("fk NOT ENFORCED", "ALTER TABLE agent.budgets ALTER CONSTRAINT budgets_agent_id_fkey NOT ENFORCED", "constraint", "budgets.budgets_agent_id_fkey", "NOT ENFORCED"),
    ("extra check NOT VALID", "ALTER TABLE agent.messages ADD CONSTRAINT p_small CHECK (priority < 3) NOT VALID", "constraint", "messages.p_small", "not in the migrations"),
    ("check NO INHERIT", "ALTER TABLE agent.messages DROP CONSTRAINT priority_range, ADD CONSTRAINT priority_range CHECK (priority >= 0 AND priority <= 9) NO INHERIT", "constraint", "messages.priority_range", "NO INHERIT"),
    ("unique deferrable initially deferred", "ALTER TABLE agent.budgets DROP CONSTRAINT budgets_agent_resource_key, ADD CONSTRAINT budgets_agent_resource_key UNIQUE (agent_id, resource) DEFERRABLE INITIALLY DEFERRED", "constraint", "budgets.budgets_agent_resource_key", "DEFERRABLE"),
    ("unique NULLS NOT DISTINCT", "ALTER TABLE agent.budgets DROP CONSTRAINT budgets_agent_resource_key, ADD CONSTRAINT budgets_agent_resource_key UNIQUE NULLS NOT DISTINCT (agent_id, resource)", "constraint", "budgets.budgets_agent_resource_key", "NULLS NOT DISTINCT"),
    ("index partial predicate", "DROP INDEX agent.agents_run_idx; CREATE INDEX agents_run_idx ON agent.agents (run_id)", "index", "agents.agents_run_idx", "definition"),
    ("index INCLUDE", "DROP INDEX agent.agents_run_idx; CREATE INDEX agents_run_idx ON agent.agents (run_id) INCLUDE (name) WHERE run_id IS NOT NULL", "index", "agents.agents_run_idx", "INCLUDE"),
    ("index opclass", "CREATE INDEX agents_name_pat ON agent.agents (name varchar_pattern_ops)", "index", "agents.agents_name_pat", "not in the migrations"),
    ("index collation", "DROP INDEX agent.feature_runs_current_phase_idx; CREATE INDEX feature_runs_current_phase_idx ON agent.feature_runs (current_phase COLLATE \"C\")", "index", "feature_runs.feature_runs_current_phase_idx", "COLLATE"),
    ("unique index nulls not distinct", "CREATE UNIQUE INDEX u_nnd ON agent.agents (name) NULLS NOT DISTINCT", "index", "agents.u_nnd", "not in the migrations"),
    ("function LEAKPROOF", "ALTER FUNCTION agent.raise_rule(text, text) LEAKPROOF", "function", "raise_rule(rule text, message text)", "LEAKPROOF"),
    ("function PARALLEL SAFE", "ALTER FUNCTION agent.raise_rule(text, text) PARALLEL SAFE", "function", "raise_rule(rule text, message text)", "PARALLEL"),
    ("function COST", "ALTER FUNCTION agent.raise_rule(text, text) COST 1000", "function", "raise_rule(rule text, message text)", "COST"),
    ("function IMMUTABLE", "ALTER FUNCTION agent.raise_rule(text, text) IMMUTABLE", "function", "raise_rule(rule text, message text)", "IMMUTABLE"),
    ("function argument default", "CREATE OR REPLACE FUNCTION agent.raise_rule(rule text, message text DEFAULT 'x') RETURNS boolean LANGUAGE plpgsql AS $fn$ BEGIN RAISE EXCEPTION '%: %', rule, message USING ERRCODE = 'check_violation', CONSTRAINT = rule, SCHEMA = 'agent'; END $fn$", "function", "raise_rule(rule text, message text)", "DEFAULT"),
    ("constraint trigger deferred", "CREATE CONSTRAINT TRIGGER late AFTER INSERT ON agent.budgets DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION agent.set_updated_at()", "trigger", "budgets.late", "not in the migrations"),
    ("trigger ENABLE ALWAYS", "ALTER TABLE agent.budgets ENABLE ALWAYS TRIGGER budgets_guard", "trigger", "budgets.budgets_guard", "ENABLED ALWAYS"),
    ("column storage", "ALTER TABLE agent.memory_records ALTER COLUMN content SET STORAGE EXTERNAL", "column", "memory_records.content", "storage"),
    ("extra stored generated column", "ALTER TABLE agent.agents ADD COLUMN d2 int GENERATED ALWAYS AS (depth_level * 2) STORED", "column", "agents.d2", "not in the migrations"),
    ("extra virtual generated column", "ALTER TABLE agent.agents ADD COLUMN d3 int GENERATED ALWAYS AS (depth_level * 3) VIRTUAL", "column", "agents.d3", "not in the migrations"),
    ("access method heap->? (extra sequence owned)", "CREATE SEQUENCE agent.s2 OWNED BY agent.agents.name", "sequence", "s2", "not in the migrations"),
    ("trigger calling a function in public", "CREATE FUNCTION public.evil() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; CREATE TRIGGER zz BEFORE INSERT ON agent.budgets FOR EACH ROW EXECUTE FUNCTION public.evil()", "trigger", "budgets.zz", "public.evil"),
    ("extension in agent", "CREATE EXTENSION pg_trgm SCHEMA agent", "object", "extension pg_trgm", "not in the migrations"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "sql", "kind", "name", "words"), CASES, ids=[c[0] for c in CASES])
async def test_probe(
    scratch: sc.Scratch,  # noqa: F811
    conn: asyncpg.Connection,
    what: str,
    sql: str,
    kind: str,
    name: str,
    words: str,
) -> None:
    await _both(scratch, conn, what, sql, kind, name, words)
