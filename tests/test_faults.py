"""The fault test: worker processes drain a few thousand messages while some are
SIGKILLed every half second (and replaced) and the test's PostgreSQL is restarted
once mid-run.

What "exactly once" means here, precisely: a SIGKILLed worker's messages come back
after their lease and are processed again (redelivery is expected). Each message
must end ``done``, acked by exactly one committed ack, and its recorded effect (a
row keyed by message id, plus a reserve(2)/commit(1) on its recipient's budget)
applied exactly once - the handler is idempotent and acks in the transaction that
applies the effect (tests/fault_worker.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.process
import os
import random
import time
from decimal import Decimal

from agent_app import budgets, db, hierarchy, queue
from agent_app.enums import AgentType, BudgetResource
from tests import fault_worker
from tests.conftest import PgServer

MESSAGES = int(os.environ.get("AGENT_APP_FAULT_MESSAGES", "2000"))
WORKERS = 8
KILL_EVERY = float(os.environ.get("AGENT_APP_FAULT_KILL_EVERY", "0.5"))  # seconds
KILLING = 60.0  # seconds of the fault phase at most
HANG_GUARD = 240.0  # seconds: only a guard against hanging


async def test_sigkills_and_a_restart_lose_nothing_and_do_nothing_twice(
    pg_server: PgServer,
) -> None:
    await db.execute("DROP SCHEMA IF EXISTS fault_test CASCADE")
    await db.execute("CREATE SCHEMA fault_test")
    await db.execute(
        "CREATE TABLE fault_test.effects (message_id bigint PRIMARY KEY, worker text NOT NULL)"
    )
    await db.execute(
        "CREATE TABLE fault_test.acks (message_id bigint NOT NULL, worker text, attempts int)"
    )
    agents = [
        (
            await hierarchy.create_root(
                AgentType.explorer, f"fault-{i}", budgets={BudgetResource.tokens: 100_000}
            )
        ).id
        for i in range(4)
    ]
    ids = await queue.send_many(
        [queue.Outgoing(agents[n % 4], "work", {"n": n}, priority=n % 3) for n in range(MESSAGES)]
    )
    arg = ",".join(map(str, agents))

    # A forkserver that has already imported the worker's code: a replacement starts in
    # a fraction of a second even on a loaded machine (a fresh interpreter takes seconds).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.fault_worker"])

    def spawn(n: int) -> multiprocessing.process.BaseProcess:
        p = ctx.Process(target=fault_worker.run, args=(arg,), name=f"fault-worker-{n}")
        p.start()
        return p

    async def done() -> int:
        return int(await db.fetchval("SELECT count(*) FROM fault_test.effects"))

    rng = random.Random(8)
    started = time.monotonic()
    spawned = WORKERS
    workers = [spawn(n) for n in range(WORKERS)]
    kills = 0
    restarted_at: int | None = None
    try:
        # The fault phase: a SIGKILL every KILL_EVERY seconds, the restart once a quarter
        # is done (or 20 s in), until 60 % is done or KILLING seconds have passed - then
        # the survivors drain the rest (a bound on the run, not an assertion).
        finished = 0
        while finished < MESSAGES * 0.6 and time.monotonic() - started < KILLING:
            await asyncio.sleep(KILL_EVERY)
            victim = rng.randrange(len(workers))
            workers[victim].kill()  # SIGKILL
            workers[victim].join()
            kills += 1
            workers[victim] = spawn(spawned)
            spawned += 1
            finished = await done()
            if restarted_at is None and (
                finished >= MESSAGES // 4 or time.monotonic() - started > 20
            ):
                restarted_at = finished
                await pg_server.restart()
        async with asyncio.timeout(HANG_GUARD):
            while await db.fetchval(
                "SELECT count(*) FROM agent.messages WHERE id = ANY($1) AND status <> 'done'", ids
            ):
                await asyncio.sleep(0.1)
    finally:
        for w in workers:
            w.kill()
            w.join()
    elapsed = time.monotonic() - started
    assert restarted_at is not None, "the run ended before the restart"

    # Every message done, nothing pending or claimed (so no lease held by a dead worker).
    statuses = await db.fetch(
        "SELECT status, count(*) AS n FROM agent.messages WHERE id = ANY($1) GROUP BY status",
        ids,
    )
    assert {r["status"]: r["n"] for r in statuses} == {"done": MESSAGES}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM agent.messages WHERE recipient_id = ANY($1) "
            "AND (lease_expires_at IS NOT NULL OR claimed_by IS NOT NULL AND status <> 'done')",
            agents,
        )
        == 0
    )
    # The effect applied once per message, and exactly one committed ack per message.
    assert await db.fetchval("SELECT count(*) FROM fault_test.effects") == MESSAGES
    per_message = await db.fetch(
        "SELECT message_id, count(*) AS n FROM fault_test.acks GROUP BY message_id"
    )
    assert len(per_message) == MESSAGES and {r["n"] for r in per_message} == {1}
    # Books balanced: one reserve(2)/commit(1) per message, nothing left reserved.
    for agent in agents:
        [books] = await budgets.books(agent)
        assert books.reserved == 0
        assert books.used == Decimal(MESSAGES // 4)
        assert books.allocated == books.used + books.reserved + books.free
    redelivered = await db.fetchval(
        "SELECT count(*) FROM agent.messages WHERE id = ANY($1) AND attempts > 1", ids
    )
    extra_attempts = (
        await db.fetchval("SELECT sum(attempts) FROM agent.messages WHERE id = ANY($1)", ids)
        - MESSAGES
    )
    print(
        f"\nfault test: {MESSAGES} messages, {WORKERS} worker processes, {kills} SIGKILLs "
        f"(one every {KILL_EVERY} s), 1 PostgreSQL restart ({pg_server.mode}) after "
        f"{restarted_at} messages, {redelivered} messages redelivered, "
        f"{extra_attempts} extra claims, {elapsed:.1f} s"
    )
    await db.execute("DROP SCHEMA fault_test CASCADE")
