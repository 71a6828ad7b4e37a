"""Probe (confirmed breaks): drifts that schema_check misses, or whose printed live fix /
written forwards-backwards SQL fails. Reuses the suite's own harness
(tests/test_schema_check.py::test_each_drift_is_reported_and_the_sql_goes_both_ways)."""

from __future__ import annotations

import asyncpg
import pytest

from agent_app import schema_check as sc
from tests.test_schema_check import scratch  # noqa: F401
from tests.test_schema_check import test_each_drift_is_reported_and_the_sql_goes_both_ways as _both

CASES = [
    ("unique with fillfactor", "ALTER TABLE agent.budgets DROP CONSTRAINT budgets_agent_resource_key, ADD CONSTRAINT budgets_agent_resource_key UNIQUE (agent_id, resource) WITH (fillfactor=50)", "constraint", "budgets.budgets_agent_resource_key", "fillfactor"),
    ("column compression", "ALTER TABLE agent.memory_records ALTER COLUMN content SET COMPRESSION pglz", "column", "memory_records.content", "compression"),
    ("replica identity using index", "CREATE UNIQUE INDEX agents_ri ON agent.agents (id); ALTER TABLE agent.agents REPLICA IDENTITY USING INDEX agents_ri", "table", "agents", "replica identity"),
    ("agent table inherits another", "CREATE TABLE public.base (zz int); ALTER TABLE agent.agents ADD COLUMN zz int; ALTER TABLE agent.agents INHERIT public.base", "table", "agents", "inherits"),
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
