"""The live schema matches DATA_MODEL.md, written out here independently of the code."""

from __future__ import annotations

import asyncpg
import pytest

from agent_app import enums
from agent_app.ddl import enum_values
from agent_app.tables import TABLES

#: Tables beyond the contract (allowed by DATA_MODEL.md).
EXTRA_TABLES = {"budget_reservations"}

# "?" marks a nullable column. Enum columns are varchar + CHECK.
V, T, U, J, TS = "varchar", "text", "uuid", "jsonb", "timestamptz"
CONTRACT: dict[str, dict[str, str]] = {
    "sandboxes": {
        "id": U, "status": V, "source_type": V, "source_ref": T + "?",
        "source_snapshot_id": U + "?", "provider": V, "external_id": V + "?", "config": J,
        "error": T + "?", "created_at": TS, "updated_at": TS, "started_at": TS + "?",
        "stopped_at": TS + "?",
    },
    "sandbox_snapshots": {
        "id": U, "sandbox_id": U, "status": V, "external_id": V + "?", "size_bytes": "bigint?",
        "metadata": J, "created_at": TS, "deleted_at": TS + "?",
    },
    "feature_runs": {
        "id": U, "title": V, "request": T, "repo_url": T, "base_branch": V, "current_phase": V,
        "sandbox_id": U + "?", "branch_name": V + "?", "pr_url": T + "?", "error": T + "?",
        "created_at": TS, "updated_at": TS, "completed_at": TS + "?",
    },
    "phase_results": {
        "id": U, "run_id": U, "phase": V, "status": V, "attempt": "integer",
        "summary": T + "?", "output": J + "?", "error": T + "?", "started_at": TS,
        "finished_at": TS + "?",
    },
    "agent_invocations": {
        "id": U, "run_id": U, "phase_result_id": U, "agent_id": U + "?",
        "parent_invocation_id": U + "?", "agent_type": V, "model": V, "input": J + "?",
        "output": J + "?", "finish_reason": V + "?", "error": T + "?", "input_tokens": "bigint",
        "output_tokens": "bigint", "cost_usd": "numeric", "started_at": TS,
        "finished_at": TS + "?",
    },
    "agent_steps": {
        "id": U, "invocation_id": U, "step_number": "integer", "finish_reason": V,
        "raw_finish_reason": V + "?", "text": T + "?", "reasoning": T + "?",
        "input_tokens": "integer?", "output_tokens": "integer?",
        "cached_input_tokens": "integer?", "reasoning_tokens": "integer?",
        "cost_usd": "numeric?", "response_metadata": J + "?", "started_at": TS,
        "finished_at": TS + "?",
    },
    "tool_calls": {
        "id": U, "step_id": U, "invocation_id": U, "tool_call_id": V, "tool_name": V,
        "input": J, "output_type": V + "?", "output": J + "?", "provider_executed": "boolean",
        "started_at": TS, "finished_at": TS + "?",
    },
    "memory_records": {
        "id": U, "run_id": U, "phase": V, "kind": V, "content": T,
        "source_invocation_id": U + "?", "tags": "varchar[]", "created_at": TS,
    },
    "cta_events": {
        "id": U, "run_id": U, "phase": V + "?", "kind": V, "prompt": T, "options": J + "?",
        "response": J + "?", "responded_by": V + "?", "created_at": TS,
        "responded_at": TS + "?", "expires_at": TS + "?",
    },
    "agents": {
        "id": U, "run_id": U + "?", "parent_id": U + "?", "depth_level": "integer",
        "agent_type": V, "name": V, "status": V, "created_at": TS, "updated_at": TS,
        "finished_at": TS + "?",
    },
    "budgets": {
        "id": U, "agent_id": U, "resource": V, "allocated": "numeric", "used": "numeric",
        "reserved": "numeric", "created_at": TS, "updated_at": TS,
    },
    "messages": {
        "id": "bigint", "run_id": U + "?", "sender_id": U + "?", "recipient_id": U,
        "priority": "smallint", "status": V, "kind": V, "payload": J, "attempts": "integer",
        "max_attempts": "integer", "available_at": TS, "lease_expires_at": TS + "?",
        "claimed_by": V + "?", "last_error": T + "?", "created_at": TS,
        "claimed_at": TS + "?", "finished_at": TS + "?",
    },
    "workspaces": {
        "id": U, "agent_id": U, "sandbox_id": U + "?", "worktree_path": T, "branch_name": V,
        "base_ref": V, "head_commit": V + "?", "status": V, "created_at": TS,
        "updated_at": TS, "released_at": TS + "?",
    },
    "checkpoints": {
        "id": U, "agent_id": U, "sequence": "integer", "parent_checkpoint_id": U + "?",
        "state_snapshot": J, "state_hash": V, "schema_version": "integer", "label": V + "?",
        "created_at": TS,
    },
    "hierarchies": {"id": U, "parent_id": U, "child_id": U, "depth": "integer"},
}  # fmt: skip

CONTRACT_ENUMS: dict[str, list[str]] = {
    "SandboxStatus": ["pending", "running", "stopping", "stopped", "failed", "aborted", "snapshotting"],
    "SandboxSourceType": ["git", "tarball", "snapshot", "empty"],
    "SnapshotStatus": ["created", "deleted", "failed"],
    "FeaturePhase": ["analysis", "approaches", "judging", "implementation", "pr", "completed", "failed"],
    "PhaseStatus": ["running", "passed", "failed"],
    "AgentType": ["orchestrator", "explorer", "coder", "judge", "meta_judge"],
    "FinishReason": ["stop", "length", "content-filter", "tool-calls", "error", "other"],
    "ToolOutputType": ["text", "json", "execution-denied", "error-text", "error-json", "content"],
    "MemoryKind": ["insight", "failure", "decision", "constraint"],
    "CtaKind": ["approval", "text", "choice"],
    "AgentStatus": ["pending", "running", "waiting", "completed", "failed", "terminated"],
    "MessageStatus": ["pending", "claimed", "done", "dead", "cancelled"],
    "WorkspaceStatus": ["active", "released"],
    "BudgetResource": ["tokens", "cost_usd", "tool_calls"],
}  # fmt: skip

# (table, column) -> enum, per the contract.
ENUM_COLUMNS: dict[tuple[str, str], str] = {
    ("sandboxes", "status"): "SandboxStatus",
    ("sandboxes", "source_type"): "SandboxSourceType",
    ("sandbox_snapshots", "status"): "SnapshotStatus",
    ("feature_runs", "current_phase"): "FeaturePhase",
    ("phase_results", "phase"): "FeaturePhase",
    ("phase_results", "status"): "PhaseStatus",
    ("agent_invocations", "agent_type"): "AgentType",
    ("agent_invocations", "finish_reason"): "FinishReason",
    ("agent_steps", "finish_reason"): "FinishReason",
    ("tool_calls", "output_type"): "ToolOutputType",
    ("memory_records", "phase"): "FeaturePhase",
    ("memory_records", "kind"): "MemoryKind",
    ("cta_events", "phase"): "FeaturePhase",
    ("cta_events", "kind"): "CtaKind",
    ("agents", "agent_type"): "AgentType",
    ("agents", "status"): "AgentStatus",
    ("budgets", "resource"): "BudgetResource",
    ("messages", "status"): "MessageStatus",
    ("workspaces", "status"): "WorkspaceStatus",
}


def _short(pg_type: str) -> str:
    return pg_type.replace("character varying(255)", "varchar").replace(
        "timestamp with time zone", "timestamptz"
    )


async def _columns(conn: asyncpg.Connection) -> dict[str, dict[str, str]]:
    rows = await conn.fetch(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'agent' AND c.relkind = 'r' AND a.attnum > 0
              AND NOT a.attisdropped"""
    )
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["relname"], {})[r["attname"]] = _short(r["type"]) + (
            "" if r["attnotnull"] else "?"
        )
    return out


async def test_every_contract_table_and_column_exists_with_its_type(
    conn: asyncpg.Connection,
) -> None:
    # The contract allows extra tables (the framework integrations' own): its tables are
    # compared exactly, and nothing else in the schema is missing from the code.
    columns = await _columns(conn)
    assert {t: columns.get(t) for t in CONTRACT} == CONTRACT
    assert set(columns) == {t._meta.tablename for t in TABLES}


def test_table_classes_cover_the_contract() -> None:
    # Beyond the contract: the reservations budgets are kept from, and the integrations'.
    extra = {"graph_threads", "graph_checkpoints", "graph_blobs", "graph_writes", "session_items"}
    extra |= EXTRA_TABLES
    assert {t._meta.tablename for t in TABLES} == set(CONTRACT) | extra
    assert all(t._meta.schema == "agent" for t in TABLES)


def test_python_enums_equal_the_contract_in_order() -> None:
    assert {e.__name__ for e in enums.ALL_ENUMS} == set(CONTRACT_ENUMS)
    for enum in enums.ALL_ENUMS:
        assert enum_values(enum) == CONTRACT_ENUMS[enum.__name__]
        assert all(isinstance(m, str) for m in enum)


@pytest.mark.parametrize(("table", "column"), sorted(ENUM_COLUMNS))
async def test_database_enum_set_equals_python_enum(
    conn: asyncpg.Connection, table: str, column: str
) -> None:
    """Each enum column accepts exactly its enum's values, asked of the database itself."""
    enum = getattr(enums, ENUM_COLUMNS[(table, column)])
    definition = await conn.fetchval(
        """SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
             JOIN pg_class c ON c.oid = k.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'agent' AND c.relname = $1 AND k.conname = $2""",
        table,
        f"{column}_enum",
    )
    assert definition is not None, f"{table}.{column} has no enum CHECK"
    import re

    db_values = set(re.findall(r"'([^']*)'::character varying", definition))
    assert db_values == set(enum_values(enum))


async def test_table_comments_explain_the_schema(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        """SELECT c.relname, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'agent' AND c.relkind = 'r'"""
    )
    assert len(rows) == len(TABLES)
    for r in rows:
        assert r["comment"] and len(r["comment"]) > 30, r["relname"]


async def test_messages_id_is_a_bigint_identity(conn: asyncpg.Connection) -> None:
    identity = await conn.fetchval(
        """SELECT a.attidentity::text FROM pg_attribute a
            WHERE a.attrelid = 'agent.messages'::regclass AND a.attname = 'id'"""
    )
    assert identity == "d"


async def test_required_indexes_exist(conn: asyncpg.Connection) -> None:
    """The contract's required indexes, by their leading columns."""
    rows = await conn.fetch("SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'agent'")
    defs = [(r["tablename"], r["indexdef"]) for r in rows]

    def has(table: str, cols: str, where: str | None = None) -> bool:
        return any(
            t == table and f"({cols}" in d and (where is None or where in d) for t, d in defs
        )

    assert has("feature_runs", "current_phase")
    assert has("phase_results", "run_id, phase")
    assert has("agent_invocations", "phase_result_id, agent_type")
    assert has("agent_steps", "invocation_id, step_number")
    assert has("tool_calls", "step_id")
    assert has("tool_calls", "invocation_id")
    assert has("memory_records", "run_id, phase")
    assert has("cta_events", "run_id")
    assert has("messages", "recipient_id, priority DESC, id", "WHERE ((status)::text = 'pending'")
    assert has("hierarchies", "parent_id, child_id")
    assert has("hierarchies", "child_id")
    assert has("checkpoints", "agent_id, sequence")
    assert has("workspaces", "agent_id", "'active'")
