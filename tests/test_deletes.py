"""Deleting a run removes what it owns; deleting what is still referenced is refused."""

from __future__ import annotations

import uuid

import asyncpg

from tests import factories
from tests.rules import refused


async def _full_run(conn: asyncpg.Connection, sandbox: uuid.UUID) -> uuid.UUID:
    """A run with one row in every table it owns, and a budgeted agent tree three deep."""
    run = await factories.run(conn, sandbox)
    phase = await factories.phase(conn, run)
    root = await factories.agent(conn, run_id=run, agent_type="orchestrator")
    await factories.budget(conn, root, 1000)
    agents = [root]
    for level in range(3):
        for parent in list(agents[-(2**level) :]):
            for _ in range(2):
                child = await factories.agent(conn, parent_id=parent, run_id=run)
                await factories.budget(conn, child, 10 ** (3 - level) // 4)
                agents.append(child)
    inv = await factories.invocation(conn, run, phase, agents[1])
    await conn.execute(
        "INSERT INTO agent.agent_invocations (run_id, phase_result_id, parent_invocation_id, "
        "agent_type, model) VALUES ($1, $2, $3, 'judge', 'm')",
        run,
        phase,
        inv,
    )
    step = await factories.step(conn, inv)
    await conn.execute(
        "INSERT INTO agent.tool_calls (step_id, invocation_id, tool_call_id, tool_name) "
        "VALUES ($1, $2, 'c1', 'bash')",
        step,
        inv,
    )
    await conn.execute(
        "INSERT INTO agent.memory_records (run_id, phase, kind, content, source_invocation_id) "
        "VALUES ($1, 'analysis', 'insight', 'x', $2)",
        run,
        inv,
    )
    await conn.execute(
        "INSERT INTO agent.cta_events (run_id, kind, prompt) VALUES ($1, 'approval', 'ok?')", run
    )
    await conn.execute(
        "INSERT INTO agent.messages (run_id, sender_id, recipient_id, kind) VALUES ($1, $2, $3, 'k')",
        run,
        agents[1],
        agents[-1],
    )
    await conn.execute(
        "INSERT INTO agent.workspaces (agent_id, sandbox_id, worktree_path, branch_name, base_ref) "
        "VALUES ($1, $2, $3, $4, 'main')",
        agents[-1],
        sandbox,
        f"/w/{run}",
        f"b-{run}",
    )
    await conn.execute(
        "INSERT INTO agent.checkpoints (agent_id, sequence, state_hash) VALUES ($1, 1, 'h')",
        agents[-1],
    )
    # A LangGraph thread of the run's agent, with a checkpoint, a blob and a write.
    thread = f"lg-{run}"
    await conn.execute(
        "INSERT INTO agent.graph_threads (thread_id, run_id, agent_id) VALUES ($1, $2, $3)",
        thread,
        run,
        agents[-1],
    )
    await conn.execute(
        "INSERT INTO agent.graph_checkpoints (thread_id, checkpoint_id, type, body, channels, "
        "versions, metadata) VALUES ($1, 'c1', 'msgpack', '\\x80', '{m}', '{1}', '{}')",
        thread,
    )
    await conn.execute(
        "INSERT INTO agent.graph_blobs (thread_id, channel, version, type, blob) "
        "VALUES ($1, 'm', '1', 'msgpack', '\\x90')",
        thread,
    )
    await conn.execute(
        "INSERT INTO agent.graph_writes (thread_id, checkpoint_id, task_id, channel, type, blob) "
        "VALUES ($1, 'c1', 't', 'm', 'msgpack', '\\x90')",
        thread,
    )
    return run


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    names = [
        r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'agent'")
    ]
    return {n: await conn.fetchval(f"SELECT count(*) FROM agent.{n}") for n in names}


async def test_deleting_a_run_removes_everything_it_owns(conn: asyncpg.Connection) -> None:
    sandbox = await factories.sandbox(conn)
    before = await _counts(conn)
    keep = await _full_run(conn, sandbox)
    after_keep = await _counts(conn)
    run = await _full_run(conn, sandbox)
    # Session items belong to a conversation, not a run.
    not_owned = {"sandbox_snapshots", "session_items"}
    assert all(n > 0 for t, n in (await _counts(conn)).items() if t not in not_owned)
    await conn.execute("DELETE FROM agent.feature_runs WHERE id = $1", run)
    assert await _counts(conn) == after_keep
    await conn.execute("DELETE FROM agent.feature_runs WHERE id = $1", keep)
    assert await _counts(conn) == before  # the sandbox stays: runs use it, not own it


async def test_deleting_a_sandbox_in_use_is_refused(conn: asyncpg.Connection) -> None:
    used_by_run = await factories.sandbox(conn)
    await factories.run(conn, used_by_run)
    delete = "DELETE FROM agent.sandboxes WHERE id = $1"
    await refused(conn, "feature_runs_sandbox_id_fkey", delete, used_by_run)

    used_by_workspace = await factories.sandbox(conn)
    await conn.execute(
        "INSERT INTO agent.workspaces (agent_id, sandbox_id, worktree_path, branch_name, base_ref) "
        "VALUES ($1, $2, '/w', 'b', 'main')",
        await factories.agent(conn),
        used_by_workspace,
    )
    await refused(conn, "workspaces_sandbox_id_fkey", delete, used_by_workspace)

    with_snapshot = await factories.sandbox(conn)
    snap = await conn.fetchval(
        "INSERT INTO agent.sandbox_snapshots (sandbox_id) VALUES ($1) RETURNING id", with_snapshot
    )
    await refused(conn, "sandbox_snapshots_sandbox_id_fkey", delete, with_snapshot)
    await conn.execute(
        "INSERT INTO agent.sandboxes (source_type, provider, source_snapshot_id) "
        "VALUES ('snapshot', 'p', $1)",
        snap,
    )
    await refused(
        conn,
        "sandboxes_source_snapshot_id_fkey",
        "DELETE FROM agent.sandbox_snapshots WHERE id = $1",
        snap,
    )
    unused = await factories.sandbox(conn)
    await conn.execute(delete, unused)


async def test_deleting_an_agent_with_children_or_history_is_refused(
    conn: asyncpg.Connection,
) -> None:
    parent = await factories.agent(conn)
    child = await factories.agent(conn, parent_id=parent)
    delete = "DELETE FROM agent.agents WHERE id = $1"
    await refused(conn, "agents_parent_id_fkey", delete, parent)
    await conn.execute("INSERT INTO agent.messages (recipient_id, kind) VALUES ($1, 'k')", child)
    await refused(conn, "messages_recipient_id_fkey", delete, child)
    lonely = await factories.agent(conn)
    await factories.budget(conn, lonely, 5)
    await conn.execute(delete, lonely)  # its budget goes with it
    assert (
        await conn.fetchval("SELECT count(*) FROM agent.budgets WHERE agent_id = $1", lonely) == 0
    )
