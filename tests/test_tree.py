"""The agent tree under concurrency and by hand: one lock order (no deadlock between
API operations, none surfacing), finish(root) against racing spawns, and the tree's
rules kept by the database (closure rows, messages to finished agents, a message's
run)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from decimal import Decimal

import asyncpg
import pytest

from agent_app import budgets, db, hierarchy, queue
from agent_app.enums import AgentStatus, AgentType, BudgetResource
from agent_app.errors import (
    AgentAppError,
    AlreadyFinished,
    BudgetExceeded,
    DepthLimitExceeded,
    RuleViolation,
)
from agent_app.tables import MAX_AGENT_DEPTH
from tests import factories
from tests.rules import refused, snapshot

T, C = BudgetResource.tokens, BudgetResource.cost_usd


async def _deadlocks(conn: asyncpg.Connection) -> int:
    """Deadlocks PostgreSQL detected in this database so far (as flushed to its stats)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(
        await conn.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
    )


async def _close_and_flush(pool: asyncpg.Pool, pids: set[int], conn: asyncpg.Connection) -> None:
    """Close the race's pool and wait until its backends have exited: a backend flushes
    its statistics (the deadlock counter among them) when it exits."""
    await pool.close()
    for _ in range(500):  # hang guard only
        alive = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
        )
        if alive == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"backends {pids} did not exit")


async def test_tree_race_spawn_send_finish_reserve_has_no_deadlock_and_balances(
    database_url: str,
) -> None:
    """16 workers spawn (budgets in either mapping order), send, finish and reserve
    against one tree at once. No operation surfaces a deadlock or Contention, the
    server records no deadlock, and once the root finishes its books hold exactly what
    was committed anywhere in the tree."""
    watcher = await asyncpg.connect(database_url)
    race = await asyncpg.create_pool(database_url, min_size=16, max_size=16)
    assert race is not None
    pids: set[int] = set()
    try:
        deadlocks_before = await _deadlocks(watcher)
        root = await hierarchy.create_root(
            AgentType.orchestrator, "race-root", budgets={T: 1_000_000, C: 10_000}
        )
        agents: list[hierarchy.AgentInfo] = [root]
        committed: list[Decimal] = []
        outcomes: Counter[str] = Counter()
        unexpected: list[BaseException] = []

        gone: set[uuid.UUID] = set()  # finished, as far as the workers know

        def pick(rng: random.Random, among: list[hierarchy.AgentInfo]) -> hierarchy.AgentInfo:
            # Mostly agents believed live; sometimes any (stale knowledge is part of a race).
            live = [a for a in among if a.id not in gone]
            return rng.choice(live if live and rng.random() < 0.85 else among)

        async def spawn(c: asyncpg.Connection, rng: random.Random) -> None:
            parent = pick(rng, agents)
            share = 5 ** (parent.depth_level + 1)  # each level asks for a fifth or less
            want = [
                (T, rng.randint(1, max(1, 10**6 // share))),
                (C, rng.randint(1, max(1, 10**4 // share))),
            ]
            rng.shuffle(want)  # the caller's mapping order must not matter
            try:
                child = await hierarchy.spawn_child(
                    parent.id, AgentType.explorer, "w", budgets=dict(want), conn=c
                )
            except (AlreadyFinished, DepthLimitExceeded, BudgetExceeded) as e:
                outcomes[f"spawn refused {e.rule}"] += 1
                return
            agents.append(child)
            outcomes["spawned"] += 1

        async def send(c: asyncpg.Connection, rng: random.Random) -> None:
            batch = [
                queue.Outgoing(
                    pick(rng, agents).id, "note", {"n": i}, sender_id=pick(rng, agents).id
                )
                for i in range(rng.randint(1, 3))
            ]
            try:
                await queue.send_many(batch, conn=c)
            except RuleViolation as e:
                assert e.rule == "recipient_live", e
                outcomes["send refused"] += 1
                return
            outcomes["sent"] += 1

        async def finish(c: asyncpg.Connection, rng: random.Random) -> None:
            if len(agents) < 2:
                return
            target = pick(rng, agents[max(1, len(agents) // 3) :])  # mostly the younger
            try:
                done = await hierarchy.finish(target.id, conn=c)
            except AlreadyFinished:
                outcomes["finish refused"] += 1
                return
            gone.update([target.id, *done.terminated])
            outcomes["finished"] += 1

        async def reserve(c: asyncpg.Connection, rng: random.Random) -> None:
            agent = pick(rng, agents)
            try:
                r = await budgets.reserve(agent.id, T, 10, conn=c)
                actual = Decimal(rng.randint(0, 10))
                await budgets.commit(r, actual, conn=c)
            except (BudgetExceeded, RuleViolation) as e:
                # The agent finished between reserve and commit: finish released it.
                assert isinstance(e, BudgetExceeded) or e.rule in (
                    "budget_closed",
                    "reservation_closed",
                ), e
                outcomes["reserve refused"] += 1
                return
            committed.append(actual)
            outcomes["committed"] += 1

        operations = [spawn] * 7 + [send] * 6 + [finish] * 3 + [reserve] * 4

        async def worker(w: int) -> None:
            rng = random.Random(w)
            async with race.acquire() as c:
                pids.add(c.get_server_pid())
                for _ in range(30):
                    try:
                        await rng.choice(operations)(c, rng)
                    except AgentAppError as e:  # Contention, or any refusal not expected
                        unexpected.append(e)
                    except Exception as e:  # a raw driver error: never acceptable
                        unexpected.append(e)

        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(16))), 300)
        await _close_and_flush(race, pids, watcher)

        assert unexpected == [], unexpected
        assert outcomes["spawned"] > 20 and outcomes["finished"] > 5 and outcomes["sent"] > 20
        assert await _deadlocks(watcher) == deadlocks_before, outcomes

        done = await hierarchy.finish(root.id)
        assert done.agent.status == AgentStatus.completed
        tree = [root.id, *(a.id for a in await hierarchy.subtree(root.id))]
        assert len(tree) == len(agents)
        # Books: the root took back every allocation; what was used anywhere is its used.
        [tokens] = [b for b in await budgets.books(root.id) if b.resource == T]
        assert (tokens.allocated, tokens.used, tokens.reserved) == (1_000_000, sum(committed), 0)
        assert (
            await watcher.fetchval(
                "SELECT count(*) FROM agent.budgets WHERE agent_id = ANY($1) AND reserved <> 0",
                tree,
            )
            == 0
        )
        # Nothing is left waiting for an agent that will never read it.
        assert (
            await watcher.fetchval(
                "SELECT count(*) FROM agent.messages WHERE recipient_id = ANY($1) "
                "AND status = 'pending'",
                tree,
            )
            == 0
        )
    finally:
        await race.close()
        await watcher.close()


async def test_finish_root_completes_while_spawns_race_it() -> None:
    """A finished parent refuses children, and finish locks each level of the subtree
    before reading the next: finish(root) completes at once, however many spawns race
    it, and leaves no live descendant."""
    root = await hierarchy.create_root(AgentType.orchestrator, "busy", budgets={T: 100_000})
    tree = [root]
    spawned = asyncio.Event()
    finished = asyncio.Event()
    refusals: list[AgentAppError] = []

    async def spawner(i: int) -> None:
        rng = random.Random(i)
        while True:
            parent = rng.choice([a for a in tree if a.depth_level < MAX_AGENT_DEPTH])
            carve = {T: 5} if parent.id == root.id else {}  # budgets in the race too
            try:
                tree.append(
                    await hierarchy.spawn_child(parent.id, AgentType.coder, f"s{i}", budgets=carve)
                )
            except AlreadyFinished as e:
                refusals.append(e)
                if finished.is_set():
                    return
            if len(tree) > 30:
                spawned.set()

    async def finisher() -> hierarchy.Finished:
        await spawned.wait()
        try:
            return await hierarchy.finish(root.id, AgentStatus.terminated)
        finally:
            finished.set()

    results = await asyncio.wait_for(
        asyncio.gather(finisher(), *(spawner(i) for i in range(12))), 300
    )
    done = results[0]
    assert isinstance(done, hierarchy.Finished) and done.agent.status == AgentStatus.terminated
    below = await hierarchy.subtree(root.id)
    assert len(below) == len(tree) - 1 and len(below) > 30
    assert [a for a in below if not a.finished] == []
    assert set(done.terminated) == {a.id for a in below}
    [tokens] = await budgets.books(root.id)
    assert (tokens.used, tokens.reserved) == (0, 0)
    assert refusals and all(e.rule == "terminal_final" for e in refusals)


# --------------------------------------------------------------------------- #
# The tree's rules, by hand
# --------------------------------------------------------------------------- #


async def test_closure_rows_cannot_be_deleted_or_truncated_by_hand(
    conn: asyncpg.Connection,
) -> None:
    root = await factories.agent(conn)
    child = await factories.agent(conn, parent_id=root)
    await factories.agent(conn, parent_id=child)
    await refused(conn, "hierarchies_derived", "DELETE FROM agent.hierarchies")
    await refused(
        conn, "hierarchies_derived", "DELETE FROM agent.hierarchies WHERE child_id = $1", child
    )
    before = await snapshot(conn, "hierarchies", "agents")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as err:
        async with conn.transaction():
            await conn.execute("TRUNCATE agent.hierarchies")
    assert err.value.constraint_name == "hierarchies_derived", str(err.value)
    assert await snapshot(conn, "hierarchies", "agents") == before
    assert len(await hierarchy.subtree(root, conn=conn)) == 2


async def test_closure_rows_go_with_their_agents(conn: asyncpg.Connection) -> None:
    """Deleting a leaf agent or a whole run takes its closure rows with it (cascades pass)."""
    root = await factories.agent(conn)
    child = await factories.agent(conn, parent_id=root)
    leaf = await factories.agent(conn, parent_id=child)
    await conn.execute("DELETE FROM agent.agents WHERE id = $1", leaf)
    assert [a.id for a in await hierarchy.subtree(root, conn=conn)] == [child]

    run = await factories.run(conn)
    run_root = await factories.agent(conn, run_id=run)
    mid = await factories.agent(conn, parent_id=run_root, run_id=run)
    await factories.agent(conn, parent_id=mid, run_id=run)
    await conn.execute("DELETE FROM agent.feature_runs WHERE id = $1", run)
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM agent.hierarchies WHERE parent_id = $1 OR child_id = $1", run_root
        )
        == 0
    )
    # TRUNCATE of the agents themselves (cascading to the closure) passes too.
    savepoint = conn.transaction()
    await savepoint.start()
    await conn.execute("TRUNCATE agent.agents CASCADE")
    assert await conn.fetchval("SELECT count(*) FROM agent.hierarchies") == 0
    await savepoint.rollback()


async def test_a_message_to_a_finished_agent_is_refused() -> None:
    root = await hierarchy.create_root(AgentType.orchestrator, "r")
    child = await hierarchy.spawn_child(root.id, AgentType.coder, "c")
    await hierarchy.finish(child.id)
    with pytest.raises(RuleViolation) as err:
        await queue.send(child.id, "late", sender_id=root.id)
    assert err.value.rule == "recipient_live" and str(child.id) in str(err.value)
    # In a batch, one finished recipient refuses the whole batch.
    with pytest.raises(RuleViolation) as err:
        await queue.send_many([queue.Outgoing(root.id, "ok"), queue.Outgoing(child.id, "late")])
    assert err.value.rule == "recipient_live"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM agent.messages WHERE recipient_id = ANY($1)", [root.id, child.id]
        )
        == 0
    )


async def test_a_raw_insert_to_a_finished_agent_is_refused(conn: asyncpg.Connection) -> None:
    agent = await factories.agent(conn)
    await conn.execute("UPDATE agent.agents SET status = 'failed' WHERE id = $1", agent)
    message = await refused(
        conn,
        "recipient_live",
        "INSERT INTO agent.messages (recipient_id, kind) VALUES ($1, 'k')",
        agent,
    )
    assert str(agent) in message and "failed" in message
    # Moving a message onto a finished agent is the same rule.
    live = await factories.agent(conn)
    mid = await conn.fetchval(
        "INSERT INTO agent.messages (recipient_id, kind) VALUES ($1, 'k') RETURNING id", live
    )
    await refused(
        conn, "recipient_live", "UPDATE agent.messages SET recipient_id = $2 WHERE id = $1",
        mid, agent,
    )  # fmt: skip


async def test_a_message_takes_its_recipients_run_and_the_run_can_be_deleted(
    conn: asyncpg.Connection,
) -> None:
    run = await factories.run(conn)
    agent = await factories.agent(conn, run_id=run)
    other = await factories.run(conn)
    raw = await conn.fetchval(
        "INSERT INTO agent.messages (recipient_id, kind) VALUES ($1, 'k') RETURNING run_id", agent
    )
    assert raw == run
    sent = await queue.send(agent, "k", conn=conn)
    explicit = await queue.send(agent, "k", run_id=other, conn=conn)  # given: kept
    runs = dict(
        await conn.fetch(
            "SELECT id, run_id FROM agent.messages WHERE id = ANY($1)", [sent, explicit]
        )
    )
    assert runs == {sent: run, explicit: other}
    await conn.execute("DELETE FROM agent.messages WHERE id = $1", explicit)
    await conn.execute("DELETE FROM agent.feature_runs WHERE id = $1", run)
    assert (
        await conn.fetchval("SELECT count(*) FROM agent.messages WHERE recipient_id = $1", agent)
        == 0
    )
    # An agent of no run: the message has no run either.
    loner = await factories.agent(conn)
    assert (
        await conn.fetchval(
            "INSERT INTO agent.messages (recipient_id, kind) VALUES ($1, 'k') RETURNING run_id",
            loner,
        )
        is None
    )


async def test_a_finished_agents_message_never_comes_back_to_pending() -> None:
    # Retries, released or expired claims and redrives all put a message back to
    # pending; for an agent that has finished, the database cancels it instead.
    root = await hierarchy.create_root(AgentType.orchestrator, "o")
    child = await hierarchy.spawn_child(root.id, AgentType.coder, "c")
    ids = await queue.send_many([queue.Outgoing(child.id, "k", max_attempts=5)] * 3)
    claimed = await queue.claim("w", [child.id], limit=3)
    await queue.fail(claimed[0], "w", "boom", retry=False)  # dead
    await hierarchy.finish(child.id, AgentStatus.terminated)
    # fail(retry=True) and release of claims still held: cancelled, not pending.
    [(_, status, _)] = await queue.fail(claimed[1], "w", "again", retry=True)
    await queue.release(claimed[2], "w")
    # redrive skips the finished agent's dead message.
    assert await queue.redrive([ids[0]]) == 0
    async with db.connection() as c:
        rows = await c.fetch(
            "SELECT id, status FROM agent.messages WHERE id = ANY($1) ORDER BY id", ids
        )
        # Raw SQL cannot bring one back either.
        await c.execute(
            "UPDATE agent.messages SET status = 'pending', finished_at = NULL WHERE id = $1",
            ids[0],
        )
        raw = await c.fetchval("SELECT status FROM agent.messages WHERE id = $1", ids[0])
    assert [r["status"] for r in rows] == ["dead", "cancelled", "cancelled"]
    assert status == "cancelled"
    assert raw == "cancelled"
    assert await queue.claim("w2", [child.id], limit=10) == []
