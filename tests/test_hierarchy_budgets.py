"""Hierarchy and budgets through the worker API, with many workers at once."""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal

import pytest

from agent_app import budgets, db, hierarchy, queue
from agent_app.enums import AgentStatus, AgentType, BudgetResource
from agent_app.errors import (
    AlreadyFinished,
    BudgetExceeded,
    DepthLimitExceeded,
    NotFound,
    ReservationClosed,
    RuleViolation,
)
from agent_app.tables import MAX_AGENT_DEPTH
from tests.rules import snapshot

T, C = BudgetResource.tokens, BudgetResource.cost_usd
TREE_TABLES = ("agents", "hierarchies", "budgets", "messages")


async def books(agent_id: uuid.UUID, resource: BudgetResource = T) -> tuple[Decimal, ...]:
    [b] = [b for b in await budgets.books(agent_id) if b.resource == resource]
    return (b.allocated, b.used, b.reserved)


async def unchanged_by(coro: object, error: type[Exception]) -> Exception:
    async with db.connection() as c:
        before = await snapshot(c, *TREE_TABLES)
    with pytest.raises(error) as err:
        await coro  # type: ignore[misc]
    async with db.connection() as c:
        assert await snapshot(c, *TREE_TABLES) == before
    return err.value


async def test_spawn_carves_budgets_in_one_transaction() -> None:
    root = await hierarchy.create_root(AgentType.orchestrator, "root", budgets={T: 1000, C: 5})
    child = await hierarchy.spawn_child(root.id, AgentType.explorer, "e1", budgets={T: 400, C: 2})
    assert child.depth_level == 1 and child.parent_id == root.id
    assert await books(root.id) == (1000, 0, 400)
    assert await books(root.id, C) == (5, 0, 2)
    # Over budget on the second resource: no child, no reservation on the first.
    err = await unchanged_by(
        hierarchy.spawn_child(root.id, AgentType.coder, "greedy", budgets={T: 100, C: 4}),
        BudgetExceeded,
    )
    assert isinstance(err, BudgetExceeded)
    assert (err.asked, err.left, err.resource) == (4, 3, "cost_usd")
    assert "budget_limits" in str(err) and "4" in str(err) and "3 left" in str(err)


async def test_over_deep_spawn_is_refused_and_changes_nothing() -> None:
    agent = await hierarchy.create_root(AgentType.orchestrator, "root")
    for level in range(MAX_AGENT_DEPTH):
        agent = await hierarchy.spawn_child(agent.id, AgentType.explorer, f"l{level + 1}")
    assert agent.depth_level == MAX_AGENT_DEPTH
    err = await unchanged_by(
        hierarchy.spawn_child(agent.id, AgentType.coder, "too deep"), DepthLimitExceeded
    )
    assert err.rule == "depth_limit" and str(MAX_AGENT_DEPTH) in str(err)  # type: ignore[attr-defined]
    await unchanged_by(hierarchy.spawn_child(uuid.uuid4(), AgentType.coder, "orphan"), NotFound)


async def test_finish_terminates_descendants_deepest_first_and_reclaims() -> None:
    root = await hierarchy.create_root(AgentType.orchestrator, "root", budgets={T: 1000})
    a = await hierarchy.spawn_child(root.id, AgentType.explorer, "a", budgets={T: 300})
    b = await hierarchy.spawn_child(a.id, AgentType.coder, "b", budgets={T: 100})
    c = await hierarchy.spawn_child(b.id, AgentType.judge, "c", budgets={T: 40})
    r = await budgets.reserve(c.id, T, 10)
    await budgets.commit(r, 7)
    await budgets.charge(b.id, T, 20)
    await queue.send_many([queue.Outgoing(x.id, "k") for x in (a, b, c, c)])
    done = await hierarchy.finish(a.id, AgentStatus.completed)
    assert done.terminated == [c.id, b.id]  # deepest first
    assert done.cancelled_messages == 4
    assert done.agent.status == AgentStatus.completed
    statuses = {x.id: x.status for x in await hierarchy.subtree(root.id)}
    assert statuses == {a.id: "completed", b.id: "terminated", c.id: "terminated"}
    # c used 7 -> b used 20 + 7 -> a used 27 -> root used 27, nothing reserved.
    assert await books(root.id) == (1000, 27, 0)
    assert await books(a.id) == (300, 27, 0)
    err = await unchanged_by(hierarchy.finish(a.id), AlreadyFinished)
    assert err.rule == "terminal_final"  # type: ignore[attr-defined]
    await unchanged_by(hierarchy.spawn_child(a.id, AgentType.coder, "late"), AlreadyFinished)
    with pytest.raises(RuleViolation) as closed:
        await budgets.charge(a.id, T, 1)
    assert closed.value.rule == "budget_closed"


async def test_subtree_and_ancestors() -> None:
    root = await hierarchy.create_root(AgentType.orchestrator, "root")
    kids = [await hierarchy.spawn_child(root.id, AgentType.explorer, f"k{i}") for i in range(3)]
    grandkid = await hierarchy.spawn_child(kids[1].id, AgentType.coder, "g")
    assert [x.id for x in await hierarchy.subtree(root.id)] == [k.id for k in kids] + [grandkid.id]
    assert [x.id for x in await hierarchy.subtree(root.id, max_depth=1)] == [k.id for k in kids]
    assert [x.id for x in await hierarchy.ancestors(grandkid.id)] == [kids[1].id, root.id]


async def test_reserve_commit_release_charge_and_their_refusals() -> None:
    agent = await hierarchy.create_root(AgentType.coder, "solo", budgets={T: 100})
    r1 = await budgets.reserve(agent.id, T, 60)
    err = await unchanged_by(budgets.reserve(agent.id, T, 41), BudgetExceeded)
    assert (err.asked, err.left) == (41, 40)  # type: ignore[attr-defined]
    await budgets.commit(r1, 70)  # over the reservation, within the budget
    assert await books(agent.id) == (100, 70, 0)
    r2 = await budgets.reserve(agent.id, T, 30)
    released = await budgets.release(r2)
    assert await budgets.release(r2) == released  # a repeat: the same outcome, books once
    await unchanged_by(budgets.commit(r2, 30), ReservationClosed)
    await unchanged_by(budgets.charge(agent.id, T, 31), BudgetExceeded)
    await budgets.charge(agent.id, T, 30)
    assert await books(agent.id) == (100, 100, 0)
    await unchanged_by(budgets.reserve(agent.id, C, 1), NotFound)
    await unchanged_by(budgets.reserve(agent.id, T, -1), RuleViolation)


async def test_fifty_concurrent_reservers_never_overspend() -> None:
    agent = await hierarchy.create_root(AgentType.orchestrator, "shared", budgets={T: 1000})
    rng = random.Random(3)
    amounts = [Decimal(rng.randint(1, 60)) for _ in range(50)]
    used: list[Decimal] = []

    async def worker(amount: Decimal) -> None:
        for _ in range(4):
            try:
                r = await budgets.reserve(agent.id, T, amount)
            except BudgetExceeded as e:
                assert e.asked == amount and e.left < amount
                return
            actual = (amount * Decimal("0.75")).quantize(Decimal(1))
            await budgets.commit(r, actual)
            used.append(actual)

    await asyncio.gather(*(worker(a) for a in amounts))
    allocated, spent, reserved = await books(agent.id)
    assert reserved == 0 and spent == sum(used) and spent <= allocated


async def test_books_balance_after_spawns_reservations_commits_and_reclaims() -> None:
    """Many workers spawn children, reserve and commit against them and finish them;
    afterwards every budget balances and the parent holds exactly what it should."""
    root = await hierarchy.create_root(AgentType.orchestrator, "root", budgets={T: 10_000})
    rng = random.Random(11)
    finished_used: list[Decimal] = []
    live: list[uuid.UUID] = []
    refused = 0

    async def worker(w: int) -> None:
        nonlocal refused
        for i in range(3):
            try:
                child = await hierarchy.spawn_child(
                    root.id, AgentType.explorer, f"w{w}-{i}", budgets={T: rng.randint(100, 900)}
                )
            except BudgetExceeded:
                refused += 1
                continue
            spent = Decimal(0)
            for _ in range(3):
                try:
                    r = await budgets.reserve(child.id, T, rng.randint(10, 200))
                except BudgetExceeded:
                    break
                actual = Decimal(rng.randint(0, int(r.amount)))
                await budgets.commit(r, actual)
                spent += actual
            if rng.random() < 0.7:
                await hierarchy.finish(child.id)
                finished_used.append(spent)
            else:
                live.append(child.id)

    await asyncio.gather(*(worker(w) for w in range(16)))
    allocated, used, reserved = await books(root.id)
    live_allocated = sum([(await books(x))[0] for x in live], Decimal(0))
    assert allocated == 10_000 and used == sum(finished_used)
    assert reserved == live_allocated
    tree = [root.id, *(x.id for x in await hierarchy.subtree(root.id))]
    # Every budget's reserved is exactly its held reservations plus its live children's
    # allocations; nothing is held any more (every reservation was committed).
    assert await budgets.audit(tree) == []
    for x in await hierarchy.subtree(root.id):
        _, u, r = await books(x.id)
        assert r == 0
        assert u == await db.fetchval(
            "SELECT coalesce(sum(actual), 0) FROM agent.budget_reservations WHERE agent_id = $1",
            x.id,
        )
    # Whether the race itself ran out of budget depends on its interleaving; a child
    # asking for one token more than is free is refused, deterministically.
    allocated, used, reserved = await books(root.id)
    with pytest.raises(BudgetExceeded):
        await hierarchy.spawn_child(
            root.id, AgentType.explorer, "too-big", budgets={T: allocated - used - reserved + 1}
        )
    assert await books(root.id) == (allocated, used, reserved)


async def test_finish_racing_spawns_leaves_no_live_child_under_a_finished_parent() -> None:
    root = await hierarchy.create_root(AgentType.orchestrator, "root", budgets={T: 10_000})
    parent = await hierarchy.spawn_child(root.id, AgentType.explorer, "p", budgets={T: 5000})

    async def spawner(i: int) -> str:
        try:
            await hierarchy.spawn_child(parent.id, AgentType.coder, f"c{i}", budgets={T: 10})
            return "spawned"
        except AlreadyFinished:
            return "refused"

    async def finisher() -> hierarchy.Finished:
        await asyncio.sleep(0.01)
        return await hierarchy.finish(parent.id, AgentStatus.terminated)

    results = await asyncio.gather(*(spawner(i) for i in range(30)), finisher())
    done = results[-1]
    assert isinstance(done, hierarchy.Finished)
    kids = await hierarchy.subtree(parent.id)
    assert all(k.finished for k in kids)
    assert len(kids) == results.count("spawned")
    assert await books(parent.id) == (5000, 0, 0)
    assert await books(root.id) == (10_000, 0, 0)


async def test_two_workers_finishing_one_agent_exactly_one_wins() -> None:
    root = await hierarchy.create_root(AgentType.orchestrator, "root", budgets={T: 100})
    child = await hierarchy.spawn_child(root.id, AgentType.coder, "c", budgets={T: 50})
    outcomes = await asyncio.gather(
        *(hierarchy.finish(child.id) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(o, hierarchy.Finished) for o in outcomes) == 1
    assert sum(isinstance(o, AlreadyFinished) for o in outcomes) == 4
    assert await books(root.id) == (100, 0, 0)
