"""Each CHECK and UNIQUE rule refuses a violating row, names itself, and changes nothing."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests import factories
from tests.rules import refused

pytestmark = pytest.mark.asyncio


async def test_sandbox_snapshot_source_is_set_exactly_for_snapshots(
    conn: asyncpg.Connection,
) -> None:
    sandbox = await factories.sandbox(conn)
    snap = await conn.fetchval(
        "INSERT INTO agent.sandbox_snapshots (sandbox_id) VALUES ($1) RETURNING id", sandbox
    )
    ins = "INSERT INTO agent.sandboxes (source_type, provider, source_snapshot_id) VALUES ($1, 'p', $2)"
    await refused(conn, "snapshot_source", ins, "snapshot", None)
    await refused(conn, "snapshot_source", ins, "git", snap)
    await conn.execute(ins, "snapshot", snap)
    await refused(conn, "sandboxes_source_snapshot_id_fkey", ins, "snapshot", uuid.uuid4())


async def test_sandbox_external_id_unique(conn: asyncpg.Connection) -> None:
    ins = (
        "INSERT INTO agent.sandboxes (source_type, provider, external_id) VALUES ('empty', 'p', $1)"
    )
    await conn.execute(ins, "vm-1")
    await refused(conn, "sandboxes_external_id_key", ins, "vm-1")


async def test_snapshot_size_non_negative(conn: asyncpg.Connection) -> None:
    sandbox = await factories.sandbox(conn)
    await refused(
        conn,
        "size_bytes_non_negative",
        "INSERT INTO agent.sandbox_snapshots (sandbox_id, size_bytes) VALUES ($1, -1)",
        sandbox,
    )


async def test_phase_result_rules(conn: asyncpg.Connection) -> None:
    run = await factories.run(conn)
    ins = (
        "INSERT INTO agent.phase_results (run_id, phase, status, attempt, finished_at) "
        "VALUES ($1, $2, $3, $4, $5)"
    )
    await refused(conn, "phase_is_working", ins, run, "completed", "running", 1, None)
    await refused(conn, "phase_is_working", ins, run, "failed", "running", 1, None)
    await refused(conn, "attempt_min", ins, run, "analysis", "running", 0, None)
    await refused(conn, "finished_when_not_running", ins, run, "analysis", "passed", 1, None)
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    await refused(conn, "finished_when_not_running", ins, run, "analysis", "running", 1, now)
    await conn.execute(ins, run, "analysis", "passed", 1, now)
    await refused(
        conn, "phase_results_run_phase_attempt_key", ins, run, "analysis", "failed", 1, now
    )
    await conn.execute(ins, run, "analysis", "running", 2, None)


async def test_invocation_rules(conn: asyncpg.Connection) -> None:
    run, other_run = await factories.run(conn), await factories.run(conn)
    phase = await factories.phase(conn, run)
    inv = await factories.invocation(conn, run, phase)
    await refused(
        conn,
        "usage_non_negative",
        "UPDATE agent.agent_invocations SET input_tokens = -5 WHERE id = $1",
        inv,
    )
    await refused(
        conn,
        "usage_non_negative",
        "UPDATE agent.agent_invocations SET cost_usd = -0.01 WHERE id = $1",
        inv,
    )
    await refused(
        conn,
        "parent_invocation_not_self",
        "UPDATE agent.agent_invocations SET parent_invocation_id = id WHERE id = $1",
        inv,
    )
    await refused(
        conn,
        "agent_invocations_phase_same_run_fkey",
        "INSERT INTO agent.agent_invocations (run_id, phase_result_id, agent_type, model) "
        "VALUES ($1, $2, 'judge', 'm')",
        other_run,
        phase,
    )


async def test_step_rules(conn: asyncpg.Connection) -> None:
    run = await factories.run(conn)
    inv = await factories.invocation(conn, run, await factories.phase(conn, run))
    ins = (
        "INSERT INTO agent.agent_steps (invocation_id, step_number, finish_reason, "
        "cached_input_tokens) VALUES ($1, $2, 'stop', $3)"
    )
    await refused(conn, "step_number_min", ins, inv, -1, None)
    await refused(conn, "usage_non_negative", ins, inv, 0, -1)
    await conn.execute(ins, inv, 0, None)
    await refused(conn, "agent_steps_invocation_step_key", ins, inv, 0, None)
    # Null token counts mean "not reported", and stay null.
    assert await conn.fetchval(
        "SELECT cached_input_tokens IS NULL AND reasoning_tokens IS NULL FROM agent.agent_steps "
        "WHERE invocation_id = $1",
        inv,
    )


async def test_tool_call_rules(conn: asyncpg.Connection) -> None:
    run = await factories.run(conn)
    phase = await factories.phase(conn, run)
    inv, other_inv = (
        await factories.invocation(conn, run, phase),
        await factories.invocation(conn, run, phase),
    )
    step = await factories.step(conn, inv)
    ins = (
        "INSERT INTO agent.tool_calls (step_id, invocation_id, tool_call_id, tool_name, "
        "output_type, output) VALUES ($1, $2, $3, 'bash', $4, $5)"
    )
    await refused(conn, "output_has_type", ins, step, inv, "c1", None, '"done"')
    await conn.execute(ins, step, inv, "c1", None, None)
    await refused(conn, "tool_calls_invocation_call_key", ins, step, inv, "c1", None, None)
    await refused(
        conn, "tool_calls_step_same_invocation_fkey", ins, step, other_inv, "c2", None, None
    )


async def test_memory_content_not_empty(conn: asyncpg.Connection) -> None:
    run = await factories.run(conn)
    ins = "INSERT INTO agent.memory_records (run_id, phase, kind, content) VALUES ($1, 'analysis', 'insight', $2)"
    await refused(conn, "content_not_empty", ins, run, "")
    await refused(conn, "content_not_empty", ins, run, "  \t ")


async def test_cta_rules(conn: asyncpg.Connection) -> None:
    run = await factories.run(conn)
    ins = "INSERT INTO agent.cta_events (run_id, kind, prompt, options) VALUES ($1, $2, $3, $4)"
    await refused(conn, "prompt_not_empty", ins, run, "text", " ", None)
    await refused(conn, "choice_has_options", ins, run, "choice", "pick", None)
    await refused(conn, "choice_has_options", ins, run, "choice", "pick", "[]")
    await refused(conn, "choice_has_options", ins, run, "choice", "pick", '{"a": 1}')
    cta = await conn.fetchval(ins + " RETURNING id", run, "choice", "pick", '["a", "b"]')
    await refused(
        conn,
        "response_with_time",
        "UPDATE agent.cta_events SET response = '\"a\"' WHERE id = $1",
        cta,
    )


async def test_agent_rules(conn: asyncpg.Connection) -> None:
    agent = await factories.agent(conn)
    # A parent never changes; the trigger says so before the CHECK would.
    await refused(
        conn, "parent_fixed", "UPDATE agent.agents SET parent_id = id WHERE id = $1", agent
    )
    fixed = uuid.uuid4()
    await refused(
        conn,
        "parent_not_self",
        "INSERT INTO agent.agents (id, parent_id, agent_type, name) VALUES ($1, $1, 'coder', 'x')",
        fixed,
    )


async def test_budget_rules(conn: asyncpg.Connection) -> None:
    agent = await factories.agent(conn)
    ins = "INSERT INTO agent.budgets (agent_id, resource, allocated) VALUES ($1, $2, $3)"
    await refused(conn, "budget_limits", ins, agent, "tokens", -1)
    await conn.execute(ins, agent, "tokens", 10)
    await refused(conn, "budgets_agent_resource_key", ins, agent, "tokens", 10)
    # used and reserved come from reservation rows; the CHECK still holds under them.
    await factories.use(conn, agent, 6)
    await factories.hold(conn, agent, 4)
    await refused(
        conn, "budget_limits", "UPDATE agent.budgets SET allocated = 9 WHERE agent_id = $1", agent
    )
    await refused(
        conn,
        "budget_books_derived",
        "INSERT INTO agent.budgets (agent_id, resource, allocated, used, reserved) "
        "VALUES ($1, 'cost_usd', 10, 6, 4)",
        agent,
    )


async def test_message_rules(conn: asyncpg.Connection) -> None:
    agent = await factories.agent(conn)
    ins = "INSERT INTO agent.messages (recipient_id, kind, priority) VALUES ($1, 'k', $2)"
    await refused(conn, "priority_range", ins, agent, -1)
    await refused(conn, "priority_range", ins, agent, 10)
    msg = await conn.fetchval(ins + " RETURNING id", agent, 9)
    upd = "UPDATE agent.messages SET {} WHERE id = $1"
    await refused(conn, "attempts_range", upd.format("max_attempts = 0"), msg)
    await refused(conn, "attempts_range", upd.format("attempts = -1"), msg)
    await refused(conn, "claim_has_lease", upd.format("status = 'claimed'"), msg)
    await refused(
        conn,
        "claim_has_lease",
        upd.format("status = 'claimed', lease_expires_at = now()"),
        msg,
    )
    await refused(conn, "finished_when_final", upd.format("status = 'done'"), msg)
    await refused(conn, "finished_when_final", upd.format("finished_at = now()"), msg)
    # Identity: ids increase in insertion order.
    second = await conn.fetchval(ins + " RETURNING id", agent, 0)
    assert second > msg


async def test_workspace_rules(conn: asyncpg.Connection) -> None:
    agent = await factories.agent(conn)
    sandbox = await factories.sandbox(conn)
    ins = (
        "INSERT INTO agent.workspaces (agent_id, sandbox_id, worktree_path, branch_name, base_ref) "
        "VALUES ($1, $2, $3, $4, 'main') RETURNING id"
    )
    ws = await conn.fetchval(ins, agent, sandbox, "/w/1", "feat-1")
    await refused(conn, "workspaces_active_path_key", ins, agent, sandbox, "/w/1", "feat-2")
    await refused(conn, "workspaces_active_branch_key", ins, agent, sandbox, "/w/2", "feat-1")
    # Without a sandbox, the same rule holds among sandbox-less workspaces.
    await conn.fetchval(ins, agent, None, "/w/1", "feat-1")
    await refused(conn, "workspaces_active_path_key", ins, agent, None, "/w/1", "feat-9")
    # Another sandbox may reuse the path and branch.
    await conn.fetchval(ins, agent, await factories.sandbox(conn), "/w/1", "feat-1")
    await refused(
        conn,
        "released_when_released",
        "UPDATE agent.workspaces SET status = 'released' WHERE id = $1",
        ws,
    )
    await conn.execute(
        "UPDATE agent.workspaces SET status = 'released', released_at = now() WHERE id = $1", ws
    )
    # Released workspaces no longer hold their path or branch.
    await conn.fetchval(ins, agent, sandbox, "/w/1", "feat-1")


async def test_checkpoint_rules(conn: asyncpg.Connection) -> None:
    agent, other = await factories.agent(conn), await factories.agent(conn)
    ins = (
        "INSERT INTO agent.checkpoints (agent_id, sequence, state_hash, parent_checkpoint_id, "
        "schema_version) VALUES ($1, $2, 'h', $3, $4) RETURNING id"
    )
    await refused(conn, "sequence_min", ins, agent, 0, None, 1)
    await refused(conn, "schema_version_min", ins, agent, 1, None, 0)
    first = await conn.fetchval(ins, agent, 1, None, 1)
    await refused(conn, "checkpoint_sequence_increasing", ins, agent, 1, None, 1)
    second = await conn.fetchval(ins, agent, 5, first, 1)
    await refused(conn, "checkpoint_sequence_increasing", ins, agent, 3, None, 1)
    await refused(conn, "checkpoint_parent_earlier", ins, other, 1, first, 1)
    await refused(
        conn,
        "checkpoint_sequence_fixed",
        "UPDATE agent.checkpoints SET sequence = 9 WHERE id = $1",
        second,
    )
    await refused(
        conn,
        "checkpoint_parent_earlier",
        "UPDATE agent.checkpoints SET parent_checkpoint_id = id WHERE id = $1",
        first,
    )
    # Deleting a parent checkpoint keeps its children, unparented.
    await conn.execute("DELETE FROM agent.checkpoints WHERE id = $1", first)
    assert (
        await conn.fetchval(
            "SELECT parent_checkpoint_id FROM agent.checkpoints WHERE id = $1", second
        )
        is None
    )


async def test_hierarchy_checks_hold_even_without_the_guard(conn: asyncpg.Connection) -> None:
    """With triggers disabled (replication role), the closure's own CHECKs still refuse."""
    a, b = await factories.agent(conn), await factories.agent(conn)
    await conn.execute("SET LOCAL session_replication_role = replica")
    ins = "INSERT INTO agent.hierarchies (parent_id, child_id, depth) VALUES ($1, $2, $3)"
    await refused(conn, "no_self_reference", ins, a, a, 1)
    await refused(conn, "depth_min", ins, a, b, 0)
    await conn.execute(ins, a, b, 1)
    await refused(conn, "hierarchies_parent_child_key", ins, a, b, 2)
