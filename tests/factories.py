"""Rows for tests, written with raw SQL (what any writer could do)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg


async def run(conn: asyncpg.Connection, sandbox_id: uuid.UUID | None = None) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO agent.feature_runs (title, request, repo_url, sandbox_id) "
        "VALUES ('t', 'do it', 'https://example.invalid/r.git', $1) RETURNING id",
        sandbox_id,
    )


async def sandbox(conn: asyncpg.Connection) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO agent.sandboxes (source_type, provider) VALUES ('empty', 'local') RETURNING id"
    )


async def agent(
    conn: asyncpg.Connection,
    parent_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    agent_type: str = "explorer",
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO agent.agents (parent_id, run_id, agent_type, name) "
        "VALUES ($1, $2, $3, 'a') RETURNING id",
        parent_id,
        run_id,
        agent_type,
    )


async def budget(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    allocated: Decimal | int,
    resource: str = "tokens",
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO agent.budgets (agent_id, resource, allocated) VALUES ($1, $2, $3) RETURNING id",
        agent_id,
        resource,
        Decimal(allocated),
    )


async def use(
    conn: asyncpg.Connection, agent_id: uuid.UUID, amount: Decimal | int, resource: str = "tokens"
) -> uuid.UUID:
    """Record usage the way raw SQL may: a reservation row born committed (the trigger
    adds it to the budget's ``used``; writing ``used`` by hand is refused)."""
    return await conn.fetchval(
        "INSERT INTO agent.budget_reservations (budget_id, agent_id, resource, amount, holder, "
        "state, actual, lease_expires_at, finished_at) "
        "SELECT id, agent_id, resource, $3, 'factory', 'committed', $3, now(), now() "
        "FROM agent.budgets WHERE agent_id = $1 AND resource = $2 RETURNING id",
        agent_id,
        resource,
        Decimal(amount),
    )


async def hold(
    conn: asyncpg.Connection, agent_id: uuid.UUID, amount: Decimal | int, resource: str = "tokens"
) -> uuid.UUID:
    """A held reservation for an hour, by raw SQL."""
    return await conn.fetchval(
        "INSERT INTO agent.budget_reservations (budget_id, agent_id, resource, amount, holder, "
        "lease_expires_at) SELECT id, agent_id, resource, $3, 'factory', now() + interval '1 hour' "
        "FROM agent.budgets WHERE agent_id = $1 AND resource = $2 RETURNING id",
        agent_id,
        resource,
        Decimal(amount),
    )


async def budget_row(
    conn: asyncpg.Connection, agent_id: uuid.UUID, resource: str = "tokens"
) -> tuple[Decimal, Decimal, Decimal]:
    r = await conn.fetchrow(
        "SELECT allocated, used, reserved FROM agent.budgets WHERE agent_id = $1 AND resource = $2",
        agent_id,
        resource,
    )
    assert r is not None
    return (r["allocated"], r["used"], r["reserved"])


async def phase(conn: asyncpg.Connection, run_id: uuid.UUID, phase: str = "analysis") -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO agent.phase_results (run_id, phase) VALUES ($1, $2) RETURNING id",
        run_id,
        phase,
    )


async def invocation(
    conn: asyncpg.Connection,
    run_id: uuid.UUID,
    phase_result_id: uuid.UUID,
    agent_id: uuid.UUID | None = None,
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO agent.agent_invocations (run_id, phase_result_id, agent_id, agent_type, model) "
        "VALUES ($1, $2, $3, 'coder', 'm') RETURNING id",
        run_id,
        phase_result_id,
        agent_id,
    )


async def step(conn: asyncpg.Connection, invocation_id: uuid.UUID, number: int = 0) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO agent.agent_steps (invocation_id, step_number, finish_reason) "
        "VALUES ($1, $2, 'stop') RETURNING id",
        invocation_id,
        number,
    )
