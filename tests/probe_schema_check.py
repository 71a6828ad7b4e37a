"""Probe: drifts of the live database that schema_check should report but (at d8a3a2d)
does not. Each is made by hand on the freshly migrated test database, inside the
``conn`` fixture's transaction (rolled back afterwards), and must be reported.

Run: ``pytest tests/probe_schema_check.py -q``.
"""

from __future__ import annotations

import asyncpg
import pytest

from agent_app import schema_check as sc
from tests.test_schema_check import scratch  # noqa: F401  (module fixture)

# (what, SQL making the drift, why it matters)
MISSED = [
    (
        "identity sequence of messages.id capped",
        "ALTER TABLE agent.messages ALTER COLUMN id SET MAXVALUE 5",
        "every send after the fifth message fails (nextval reached maximum)",
    ),
    (
        "identity sequence of messages.id made to cycle with increment 0-ish",
        "ALTER TABLE agent.messages ALTER COLUMN id SET INCREMENT BY 1000 SET CYCLE",
        "ids wrap around: duplicate key on send once the range is used",
    ),
    (
        "foreign key's internal trigger disabled",
        """DO $$ DECLARE t text; BEGIN
             SELECT tgname INTO t FROM pg_trigger
              WHERE tgrelid = 'agent.budgets'::regclass AND tgisinternal
                AND tgconstraint = (SELECT oid FROM pg_constraint
                                     WHERE conname = 'budgets_agent_id_fkey')
              LIMIT 1;
             EXECUTE format('ALTER TABLE agent.budgets DISABLE TRIGGER %I', t);
           END $$""",
        "budgets.agent_id no longer checked: budgets of agents that do not exist",
    ),
    (
        "child table in another schema inherits an agent table",
        "CREATE TABLE public.shadow_messages () INHERITS (agent.messages)",
        "its rows are read, claimed and counted as agent.messages rows",
    ),
    (
        "foreign key from another schema onto an agent table",
        "CREATE TABLE public.pins (agent_id uuid REFERENCES agent.agents (id))",
        "deleting an agent is refused by a constraint no migration made",
    ),
    (
        "database default session_replication_role = replica",
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET session_replication_role = replica',"
        " current_database()); END $$",
        "every new session runs with every trigger and foreign key switched off",
    ),
    (
        "event trigger",
        "CREATE FUNCTION public.no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'no'; END $$; "
        "CREATE EVENT TRIGGER no_ddl ON ddl_command_start EXECUTE FUNCTION public.no_ddl()",
        "every later migration fails",
    ),
    (
        "publication of an agent table",
        "CREATE PUBLICATION leak FOR TABLE agent.memory_records",
        "the table's rows are replicated out",
    ),
    (
        "NOT NULL replaced by a NOT VALID one",
        "ALTER TABLE agent.sandboxes ALTER COLUMN provider DROP NOT NULL; "
        "ALTER TABLE agent.sandboxes ADD CONSTRAINT provider_nn NOT NULL provider NOT VALID",
        "the column may hold NULLs the code assumes impossible",
    ),
    (
        "column n_distinct option",
        "ALTER TABLE agent.agents ALTER COLUMN name SET (n_distinct = 5)",
        "planner statistics override no migration made",
    ),
    (
        "table clustered on its primary key",
        "ALTER TABLE agent.budgets CLUSTER ON budgets_pkey",
        "an index flag the check compares for other indexes",
    ),
]


@pytest.mark.parametrize(("what", "sql", "why"), MISSED, ids=[m[0] for m in MISSED])
async def test_drift_is_reported(
    scratch: sc.Scratch,  # noqa: F811
    conn: asyncpg.Connection,
    what: str,
    sql: str,
    why: str,
) -> None:
    await conn.execute(sql)
    differences, _fix = await sc.live_drift(conn, scratch)
    assert differences, f"{what} went unnoticed ({why})"
