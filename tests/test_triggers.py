"""The triggers do what the contract says: updated_at, depth_level, the closure table,
budget allocation and reclaim."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_app.tables import MAX_AGENT_DEPTH
from tests import factories
from tests.conftest import SyncDB
from tests.rules import refused

OLD = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("table", "insert", "change"),
    [
        ("sandboxes", "(source_type, provider, updated_at) VALUES ('git', 'p', $1)", "provider = 'q'"),
        ("feature_runs", "(title, request, repo_url, updated_at) VALUES ('t', 'r', 'u', $1)", "title = 'x'"),
        ("agents", "(agent_type, name, updated_at) VALUES ('coder', 'n', $1)", "status = 'running'"),
    ],
)  # fmt: skip
async def test_updated_at_is_set_by_the_database_on_raw_update(
    conn: asyncpg.Connection, table: str, insert: str, change: str
) -> None:
    row = await conn.fetchval(f"INSERT INTO agent.{table} {insert} RETURNING id", OLD)
    assert await conn.fetchval(f"SELECT updated_at FROM agent.{table} WHERE id = $1", row) == OLD
    # Even an UPDATE that tries to set updated_at itself gets the database's time.
    await conn.execute(
        f"UPDATE agent.{table} SET {change}, updated_at = $2 WHERE id = $1", row, OLD
    )
    updated = await conn.fetchval(f"SELECT updated_at FROM agent.{table} WHERE id = $1", row)
    assert updated == await conn.fetchval("SELECT now()")


async def test_updated_at_on_budgets_and_workspaces(conn: asyncpg.Connection) -> None:
    agent = await factories.agent(conn)
    budget = await conn.fetchval(
        "INSERT INTO agent.budgets (agent_id, resource, allocated, updated_at) "
        "VALUES ($1, 'tokens', 10, $2) RETURNING id",
        agent,
        OLD,
    )
    ws = await conn.fetchval(
        "INSERT INTO agent.workspaces (agent_id, worktree_path, branch_name, base_ref, updated_at)"
        " VALUES ($1, '/w', 'b', 'main', $2) RETURNING id",
        agent,
        OLD,
    )
    await conn.execute("UPDATE agent.budgets SET allocated = 11 WHERE id = $1", budget)
    await conn.execute("UPDATE agent.workspaces SET head_commit = 'abc' WHERE id = $1", ws)
    now = await conn.fetchval("SELECT now()")
    assert await conn.fetchval("SELECT updated_at FROM agent.budgets WHERE id = $1", budget) == now
    assert await conn.fetchval("SELECT updated_at FROM agent.workspaces WHERE id = $1", ws) == now


async def test_updated_at_through_the_orm() -> None:
    from agent_app.tables import FeatureRun

    run = FeatureRun(title="orm", request="r", repo_url="u", updated_at=OLD)
    await run.save()
    await FeatureRun.update({FeatureRun.title: "orm2"}).where(FeatureRun.id == run.id)
    row = await FeatureRun.select(FeatureRun.updated_at).where(FeatureRun.id == run.id).first()
    assert row is not None and row["updated_at"] > OLD
    await FeatureRun.delete().where(FeatureRun.id == run.id)


async def test_depth_level_is_derived_from_the_parent(conn: asyncpg.Connection) -> None:
    root = await factories.agent(conn, agent_type="orchestrator")
    # A writer that states a wrong depth is corrected, not trusted.
    child = await conn.fetchval(
        "INSERT INTO agent.agents (parent_id, agent_type, name, depth_level) "
        "VALUES ($1, 'explorer', 'c', 4) RETURNING id",
        root,
    )
    depths = dict(
        await conn.fetch(
            "SELECT id, depth_level FROM agent.agents WHERE id IN ($1, $2)", root, child
        )
    )
    assert depths == {root: 0, child: 1}
    await refused(
        conn, "depth_level_derived", "UPDATE agent.agents SET depth_level = 3 WHERE id = $1", child
    )
    await refused(
        conn, "parent_fixed", "UPDATE agent.agents SET parent_id = NULL WHERE id = $1", child
    )


async def test_depth_limit_refuses_one_level_too_deep(conn: asyncpg.Connection) -> None:
    parent = await factories.agent(conn, agent_type="orchestrator")
    for _ in range(MAX_AGENT_DEPTH):
        parent = await factories.agent(conn, parent_id=parent)
    assert (
        await conn.fetchval("SELECT depth_level FROM agent.agents WHERE id = $1", parent)
        == MAX_AGENT_DEPTH
    )
    message = await refused(
        conn,
        "depth_limit",
        "INSERT INTO agent.agents (parent_id, agent_type, name) VALUES ($1, 'coder', 'deep')",
        parent,
    )
    assert str(MAX_AGENT_DEPTH + 1) in message  # the failing row shows the depth it would take


async def test_closure_rows_for_a_chain(conn: asyncpg.Connection) -> None:
    a = await factories.agent(conn)
    b = await factories.agent(conn, parent_id=a)
    c = await factories.agent(conn, parent_id=b)
    rows = await conn.fetch(
        "SELECT parent_id, child_id, depth FROM agent.hierarchies WHERE child_id IN ($1, $2, $3)",
        a,
        b,
        c,
    )
    assert {(r["parent_id"], r["child_id"], r["depth"]) for r in rows} == {
        (a, b, 1),
        (b, c, 1),
        (a, c, 2),
    }
    await refused(
        conn,
        "hierarchies_derived",
        "INSERT INTO agent.hierarchies (parent_id, child_id, depth) VALUES ($1, $2, 1)",
        c,
        a,
    )
    await refused(
        conn,
        "hierarchies_derived",
        "UPDATE agent.hierarchies SET depth = 5 WHERE child_id = $1",
        c,
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parents=st.lists(
        st.one_of(st.none(), st.integers(min_value=0, max_value=40)), min_size=1, max_size=25
    )
)
def test_any_tree_keeps_depth_and_closure_exact(sync_db: SyncDB, parents: list[int | None]) -> None:
    """For any sequence of inserts, depth_level and the closure equal what the tree implies,
    and an insert past the depth limit is refused without changing anything."""

    async def scenario(conn: asyncpg.Connection) -> None:
        tx = conn.transaction()
        await tx.start()
        try:
            ids: list[uuid.UUID] = []
            parent_of: dict[uuid.UUID, uuid.UUID | None] = {}
            for choice in parents:
                parent = ids[choice % len(ids)] if (choice is not None and ids) else None
                depth = 0
                p = parent
                while p is not None:
                    depth += 1
                    p = parent_of[p]
                if depth > MAX_AGENT_DEPTH:
                    with pytest.raises(asyncpg.CheckViolationError) as err:
                        async with conn.transaction():
                            await factories.agent(conn, parent_id=parent)
                    assert err.value.constraint_name == "depth_limit"
                    continue
                new = await factories.agent(conn, parent_id=parent)
                ids.append(new)
                parent_of[new] = parent

            expected_closure = set()
            expected_depth = {}
            for agent in ids:
                d, p = 0, parent_of[agent]
                while p is not None:
                    d += 1
                    expected_closure.add((p, agent, d))
                    p = parent_of[p]
                expected_depth[agent] = d
            rows = await conn.fetch(
                "SELECT parent_id, child_id, depth FROM agent.hierarchies WHERE child_id = ANY($1)",
                ids,
            )
            assert {(r[0], r[1], r[2]) for r in rows} == expected_closure
            depths = await conn.fetch(
                "SELECT id, depth_level FROM agent.agents WHERE id = ANY($1)", ids
            )
            assert dict(depths) == expected_depth
        finally:
            await tx.rollback()

    sync_db.run(scenario)


async def test_allocation_reserves_from_parent_and_refusal_changes_nothing(
    conn: asyncpg.Connection,
) -> None:
    parent = await factories.agent(conn, agent_type="orchestrator")
    await factories.budget(conn, parent, 1000)
    await factories.use(conn, parent, 100)
    child = await factories.agent(conn, parent_id=parent)
    await factories.budget(conn, child, 600)
    assert await factories.budget_row(conn, parent) == (1000, 100, 600)
    other = await factories.agent(conn, parent_id=parent)
    message = await refused(
        conn,
        "budget_limits",
        "INSERT INTO agent.budgets (agent_id, resource, allocated) VALUES ($1, 'tokens', 301)",
        other,
    )
    assert "301" in message and "300 left" in message
    assert await factories.budget_row(conn, parent) == (1000, 100, 600)
    # Exactly the headroom fits.
    await factories.budget(conn, other, 300)
    assert await factories.budget_row(conn, parent) == (1000, 100, 900)


async def test_allocation_changes_move_the_parent_reservation(conn: asyncpg.Connection) -> None:
    parent = await factories.agent(conn)
    await factories.budget(conn, parent, 100, "cost_usd")
    child = await factories.agent(conn, parent_id=parent)
    await factories.budget(conn, child, Decimal("10.50"), "cost_usd")
    upd = "UPDATE agent.budgets SET allocated = $2 WHERE agent_id = $1 AND resource = 'cost_usd'"
    await conn.execute(upd, child, Decimal("40.25"))
    assert await factories.budget_row(conn, parent, "cost_usd") == (100, 0, Decimal("40.25"))
    await refused(conn, "budget_limits", upd, child, Decimal("100.01"))
    await conn.execute(upd, child, Decimal("5"))
    assert await factories.budget_row(conn, parent, "cost_usd") == (100, 0, 5)


async def test_a_child_without_a_parent_budget_is_not_limited_by_it(
    conn: asyncpg.Connection,
) -> None:
    parent = await factories.agent(conn)
    await factories.budget(conn, parent, 10, "tokens")
    child = await factories.agent(conn, parent_id=parent)
    await factories.budget(conn, child, 99, "tool_calls")  # the parent has no tool_calls budget
    assert await factories.budget_row(conn, parent) == (10, 0, 0)


async def test_reclaim_returns_exact_amounts_and_closes_the_child(conn: asyncpg.Connection) -> None:
    parent = await factories.agent(conn, agent_type="orchestrator")
    await factories.budget(conn, parent, Decimal("12.345678"), "cost_usd")
    child = await factories.agent(conn, parent_id=parent)
    await factories.budget(conn, child, Decimal("5.000001"), "cost_usd")
    await factories.use(conn, child, Decimal("1.234567"), "cost_usd")
    held = await factories.hold(conn, child, Decimal("0.5"), "cost_usd")
    await conn.execute("UPDATE agent.agents SET status = 'completed' WHERE id = $1", child)
    assert await factories.budget_row(conn, parent, "cost_usd") == (
        Decimal("12.345678"),
        Decimal("1.234567"),
        Decimal("0"),
    )
    # The child's own reservation is released; its usage stays on record.
    assert await factories.budget_row(conn, child, "cost_usd") == (
        Decimal("5.000001"),
        Decimal("1.234567"),
        Decimal("0"),
    )
    assert (
        await conn.fetchval("SELECT state FROM agent.budget_reservations WHERE id = $1", held)
        == "released"
    )
    assert await conn.fetchval(
        "SELECT finished_at IS NOT NULL FROM agent.agents WHERE id = $1", child
    )
    # A finished agent is final, and so are its budgets.
    await refused(
        conn, "terminal_final", "UPDATE agent.agents SET status = 'running' WHERE id = $1", child
    )
    await refused(
        conn, "terminal_final", "UPDATE agent.agents SET status = 'failed' WHERE id = $1", child
    )
    await refused(
        conn, "budget_closed", "UPDATE agent.budgets SET used = used + 1 WHERE agent_id = $1", child
    )
    await refused(
        conn,
        "budget_closed",
        "INSERT INTO agent.budgets (agent_id, resource, allocated) VALUES ($1, 'tokens', 1)",
        child,
    )
    await refused(
        conn,
        "parent_live",
        "INSERT INTO agent.agents (parent_id, agent_type, name) VALUES ($1, 'coder', 'late')",
        child,
    )


async def test_a_parent_cannot_finish_before_its_children(conn: asyncpg.Connection) -> None:
    parent = await factories.agent(conn)
    child = await factories.agent(conn, parent_id=parent)
    await refused(
        conn,
        "children_finish_first",
        "UPDATE agent.agents SET status = 'terminated' WHERE id = $1",
        parent,
    )
    await conn.execute("UPDATE agent.agents SET status = 'terminated' WHERE id = $1", child)
    await conn.execute("UPDATE agent.agents SET status = 'completed' WHERE id = $1", parent)


async def test_deleting_a_live_childs_budget_or_the_child_gives_it_back(
    conn: asyncpg.Connection,
) -> None:
    parent = await factories.agent(conn)
    await factories.budget(conn, parent, 100)
    a = await factories.agent(conn, parent_id=parent)
    b = await factories.agent(conn, parent_id=parent)
    await factories.budget(conn, a, 30)
    await factories.budget(conn, b, 20)
    await factories.use(conn, a, 7)
    assert await factories.budget_row(conn, parent) == (100, 0, 50)
    await conn.execute("DELETE FROM agent.budgets WHERE agent_id = $1", a)
    assert await factories.budget_row(conn, parent) == (100, 7, 20)
    await conn.execute("DELETE FROM agent.agents WHERE id = $1", b)
    assert await factories.budget_row(conn, parent) == (100, 7, 0)


RESOURCE_AMOUNTS = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    allocated=RESOURCE_AMOUNTS,
    children=st.lists(st.tuples(RESOURCE_AMOUNTS, st.floats(min_value=0, max_value=1)), max_size=8),
    finish_order=st.randoms(use_true_random=False),
)
def test_budget_books_balance_for_any_allocations_and_reclaims(
    sync_db: SyncDB,
    allocated: Decimal,
    children: list[tuple[Decimal, float]],
    finish_order: object,
) -> None:
    """Allocations are accepted exactly while they fit; refusals change nothing; after all
    children finish, the parent holds exactly the sum of their usage and no reservation."""

    async def scenario(conn: asyncpg.Connection) -> None:
        tx = conn.transaction()
        await tx.start()
        try:
            parent = await factories.agent(conn)
            await factories.budget(conn, parent, allocated)
            free = allocated
            spent = Decimal(0)
            accepted: list[uuid.UUID] = []
            for amount, use_fraction in children:
                child = await factories.agent(conn, parent_id=parent)
                before = await factories.budget_row(conn, parent)
                if amount > free:
                    with pytest.raises(asyncpg.CheckViolationError) as err:
                        async with conn.transaction():
                            await factories.budget(conn, child, amount)
                    assert err.value.constraint_name == "budget_limits"
                    assert await factories.budget_row(conn, parent) == before
                else:
                    await factories.budget(conn, child, amount)
                    used = (amount * Decimal(str(use_fraction))).quantize(Decimal("0.0001"))
                    used = min(used, amount)
                    if used:
                        await factories.use(conn, child, used)
                    free -= amount
                    spent += used
                    accepted.append(child)
                a, u, r = await factories.budget_row(conn, parent)
                assert a == allocated and u == 0 and r == allocated - free
            finish_order.shuffle(accepted)  # type: ignore[attr-defined]
            for child in accepted:
                await conn.execute(
                    "UPDATE agent.agents SET status = 'completed' WHERE id = $1", child
                )
            assert await factories.budget_row(conn, parent) == (allocated, spent, 0)
        finally:
            await tx.rollback()

    sync_db.run(scenario)


async def test_concurrent_allocations_never_overspend_the_parent(pool: asyncpg.Pool) -> None:
    """30 workers carve 10 each out of a parent with room for 100: exactly 10 succeed."""
    async with pool.acquire() as c:
        run = await factories.run(c)
        parent = await factories.agent(c, run_id=run, agent_type="orchestrator")
        await factories.budget(c, parent, 100)

    async def spawn() -> bool:
        async with pool.acquire() as c, c.transaction():
            child = await factories.agent(c, parent_id=parent, run_id=run)
            try:
                async with c.transaction():
                    await factories.budget(c, child, 10)
                return True
            except asyncpg.CheckViolationError as e:
                assert e.constraint_name == "budget_limits"
                return False

    results = await asyncio.gather(*(spawn() for _ in range(30)))
    async with pool.acquire() as c:
        assert sum(results) == 10
        assert await factories.budget_row(c, parent) == (100, 0, 100)
        total = await c.fetchval(
            "SELECT sum(b.allocated) FROM agent.budgets b JOIN agent.agents a ON a.id = b.agent_id "
            "WHERE a.parent_id = $1",
            parent,
        )
        assert total == 100
        await c.execute("DELETE FROM agent.feature_runs WHERE id = $1", run)
