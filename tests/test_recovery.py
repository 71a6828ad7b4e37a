"""After a server restart: typed errors while it is down, the next call works once it
is back (in a Piccolo transaction too), and the Consumer recovers by itself.

Every test here really stops or restarts the test's PostgreSQL (the ``pg_server``
fixture), so the faults are the ones a platform meets, not simulations.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from agent_app import budgets, checkpoints, cta, db, hierarchy, queue, runs
from agent_app.enums import AgentType, BudgetResource
from agent_app.errors import DatabaseUnavailable, LeaseLost
from tests.conftest import PgServer

HANG_GUARD = 30.0  # seconds; only a guard against hanging, never a measure


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for an event observed in the database or the consumer (hang guard only)."""
    async with asyncio.timeout(HANG_GUARD):
        while not await predicate():
            await asyncio.sleep(0.05)


async def new_agent() -> uuid.UUID:
    info = await hierarchy.create_root(
        AgentType.explorer, "recovery", budgets={BudgetResource.tokens: 1000}
    )
    return info.id


def operations(agent: uuid.UUID) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    """A cross-section of the API, reads and writes, each taking ``conn``."""
    nowhere = uuid.uuid4()
    return {
        "queue.send": lambda c: queue.send(agent, "k", conn=c),
        "queue.claim": lambda c: queue.claim("w", [agent], conn=c),
        "queue.redrive": lambda c: queue.redrive(recipient_id=agent, conn=c),
        "queue.cancel_pending": lambda c: queue.cancel_pending([nowhere], conn=c),
        "budgets.books": lambda c: budgets.books(agent, conn=c),
        "budgets.reserve": lambda c: budgets.reserve(agent, BudgetResource.tokens, 1, conn=c),
        "hierarchy.get": lambda c: hierarchy.get(agent, conn=c),
        "hierarchy.subtree": lambda c: hierarchy.subtree(agent, conn=c),
        "hierarchy.spawn_child": lambda c: hierarchy.spawn_child(
            agent, AgentType.explorer, "child", conn=c
        ),
        "checkpoints.history": lambda c: checkpoints.history(agent, conn=c),
        "checkpoints.save": lambda c: checkpoints.save(agent, {"s": 1}, conn=c),
        "cta.expire": lambda c: cta.expire(run_id=nowhere, conn=c),
        "runs.create_run": lambda c: runs.create_run(
            "t", "r", "https://example.invalid/r.git", conn=c
        ),
        "db.fetchval": lambda c: db.fetchval("SELECT 1", conn=c),
    }


@pytest.mark.parametrize("path", ["pool", "own connection", "piccolo transaction"])
async def test_while_the_server_is_down_every_operation_raises_database_unavailable(
    pg_server: PgServer, database_url: str, path: str
) -> None:
    agent = await new_agent()
    ops = operations(agent)
    for name, op in ops.items():
        own = await asyncpg.connect(database_url) if path == "own connection" else None
        if path == "piccolo transaction":
            with pytest.raises(DatabaseUnavailable):
                async with db.engine().transaction():
                    await pg_server.stop()
                    with pytest.raises(DatabaseUnavailable):
                        await op(None)
                    # Inside the dead block, later calls keep saying so (never quietly
                    # running outside the transaction the caller thinks it is in).
                    with pytest.raises(DatabaseUnavailable):
                        await op(None)
        else:
            await pg_server.stop()
            with pytest.raises(DatabaseUnavailable):
                await op(own)
            if own is not None:
                own.terminate()
        await pg_server.start()
        assert db.engine().current_transaction.get() is None, name
        # Back: the very next call works, on the pool and in a new Piccolo transaction.
        await op(None)
        async with db.engine().transaction():
            await op(None)


async def test_a_new_piccolo_transaction_works_after_one_died_mid_call(
    pg_server: PgServer,
) -> None:
    """Piccolo's own rollback fails on the dead connection (its query, not ours, met the
    fault); the next ``DB.transaction()`` must be a fresh, working transaction."""
    agent = await new_agent()
    eng = db.engine()
    with pytest.raises(DatabaseUnavailable):
        async with eng.transaction() as tx:
            await queue.send(agent, "lost")
            await pg_server.restart()
            await tx.connection.fetchval("SELECT 1")  # the caller's own query dies
    assert eng.current_transaction.get() is None
    sent = await queue.send(agent, "kept")
    # A real transaction again: what it did is rolled back with it.
    with pytest.raises(RuntimeError):
        async with eng.transaction():
            await queue.send(agent, "rolled back")
            raise RuntimeError("undo")
    async with eng.transaction():
        [claimed] = await queue.claim("w", [agent], limit=5)
    assert claimed.id == sent and claimed.kind == "kept"


async def test_a_plain_piccolo_engine_recovers_on_the_call_after_the_dead_block(
    pg_server: PgServer, database_url: str
) -> None:
    """A platform whose piccolo_conf uses Piccolo's own PostgresEngine: the dead block
    stays its task's transaction (Piccolo's behaviour); agent_app ends it on the first
    call, which says DatabaseUnavailable, and the call after that works."""
    from piccolo.engine.postgres import PostgresEngine

    plain = PostgresEngine(config={"dsn": database_url})
    await plain.start_connection_pool(min_size=1, max_size=2)
    saved, db._engine = db._engine, plain
    try:
        with pytest.raises(asyncpg.InterfaceError):  # Piccolo's own rollback fails
            async with plain.transaction() as tx:
                await pg_server.restart()
                await tx.connection.fetchval("SELECT 1")
        assert plain.current_transaction.get() is not None  # left behind by Piccolo
        with pytest.raises(DatabaseUnavailable):
            await db.fetchval("SELECT 1")
        assert plain.current_transaction.get() is None
        assert await db.fetchval("SELECT 1") == 1
    finally:
        db._engine = saved
        await plain.close_connection_pool()


# --------------------------------------------------------------------------- #
# Consumer
# --------------------------------------------------------------------------- #


async def listening_backends() -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        )
    )


async def test_consumer_listens_again_after_a_restart(pg_server: PgServer) -> None:
    """Wake-ups come by NOTIFY again after the restart: the poll is an hour away."""
    agent = await new_agent()
    got: asyncio.Queue[queue.Message] = asyncio.Queue()
    async with queue.Consumer([agent], poll_interval=3600) as consumer:

        async def consume() -> None:
            async for m in consumer:
                await consumer.ack(m)
                await got.put(m)

        task = asyncio.create_task(consume())
        await until(lambda: _true(consumer._listening.is_set()), "listening")
        await pg_server.restart()
        await until(lambda: _true(consumer.listener_connects >= 2), "listening again")
        await until(lambda: _positive(listening_backends()), "LISTEN on the server")
        # Let the reconnect's own look for work finish, so only NOTIFY can wake it now.
        await asyncio.sleep(0.2)
        sent = await queue.send(agent, "after the restart")
        message = await asyncio.wait_for(got.get(), HANG_GUARD)
        assert message.id == sent
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _true(value: bool) -> bool:
    return value


async def _positive(value: Awaitable[int]) -> bool:
    return await value > 0


async def lease_of(message_id: int) -> tuple[str, dt.datetime | None]:
    row = await db.fetchrow(
        "SELECT status, lease_expires_at FROM agent.messages WHERE id = $1", message_id
    )
    assert row is not None
    return row["status"], row["lease_expires_at"]


async def test_consumer_heartbeat_survives_a_restart_and_extends_the_batch_at_once(
    pg_server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    agent = await new_agent()
    ids = await queue.send_many([queue.Outgoing(agent, "k", {"n": n}) for n in range(4)])
    lease = dt.timedelta(seconds=3)
    consumer = queue.Consumer([agent], batch_size=4, lease=lease, poll_interval=3600)
    await consumer.start()
    try:
        first = await anext(aiter(consumer))  # one handed out, three buffered
        with caplog.at_level(logging.WARNING, logger="agent_app.queue"):
            await pg_server.stop()
            await until(lambda: _true(consumer.heartbeat_failures >= 1), "a failed beat")
            await pg_server.start()
            restarted_at = await db.fetchval("SELECT now()")

            async def extended_after_restart() -> bool:
                leases = [await lease_of(i) for i in ids]
                return all(e is not None and e > restarted_at + lease * 0.9 for _, e in leases)

            await until(extended_after_restart, "the heartbeat to come back")
        assert "heartbeat failed" in caplog.text
        # One statement extends the whole batch (in flight + buffered): one now().
        leases = {await lease_of(i) for i in ids}
        assert len(leases) == 1, leases
        assert await queue.claim("thief", [agent]) == []
        await consumer.ack(first)
    finally:
        await consumer.stop()


async def test_consumer_never_yields_a_message_whose_lease_it_lost(
    pg_server: PgServer,
) -> None:
    agent = await new_agent()
    ids = await queue.send_many([queue.Outgoing(agent, "k", {"n": n}) for n in range(5)])
    lease = dt.timedelta(seconds=1)
    consumer = queue.Consumer(
        [agent], batch_size=5, lease=lease, poll_interval=0.2, unavailable_timeout=HANG_GUARD
    )
    await consumer.start()
    iterator = aiter(consumer)
    first = await anext(iterator)
    try:
        await pg_server.stop()
        # No heartbeat for a whole lease: the buffer is dropped, not handed out later.
        await until(lambda: _true(not consumer._buffer), "the buffer to be dropped")
        await pg_server.start()
        buffered = set(ids) - {first.id}
        await until(lambda: _expired(sorted(buffered)), "the dropped leases to run out")
        stolen = await queue.claim("thief", [agent], limit=10)
        assert {m.id for m in stolen} >= buffered
        if first.id in {m.id for m in stolen}:
            with pytest.raises(LeaseLost):  # its lease ran out before the heartbeat came back
                await consumer.ack(first)
        else:
            await consumer.ack(first)  # the heartbeat came back in time and kept it
        after = await queue.send(agent, "new")
        nxt = await asyncio.wait_for(anext(iterator), HANG_GUARD)
        assert nxt.id not in {m.id for m in stolen} and nxt.id == after
        await consumer.ack(nxt)
        await queue.ack(stolen, "thief")
    finally:
        await consumer.stop()


async def _expired(ids: list[int]) -> bool:
    return bool(
        await db.fetchval(
            "SELECT bool_and(lease_expires_at < now()) FROM agent.messages "
            "WHERE id = ANY($1) AND status = 'claimed'",
            ids,
        )
    )


async def test_consumer_checks_a_buffered_lease_before_yielding_it(pg_server: PgServer) -> None:
    """The heartbeat is late (here: it is not running at all); a buffered message whose
    lease ran out and was taken by another worker is not handed out."""
    agent = await new_agent()
    await queue.send_many([queue.Outgoing(agent, "k", {"n": n}) for n in range(3)])
    lease = dt.timedelta(seconds=3)
    consumer = queue.Consumer([agent], batch_size=3, lease=lease, poll_interval=0.2)
    await consumer.start()
    assert consumer._heartbeat is not None
    consumer._heartbeat.cancel()  # a stalled heartbeat
    iterator = aiter(consumer)
    first = await anext(iterator)
    try:
        # Another worker takes the buffered ones after their leases end.
        await db.execute(
            "UPDATE agent.messages SET lease_expires_at = now() - interval '1 second' "
            "WHERE claimed_by = $1",
            consumer.worker_id,
        )
        consumer._held_until = 0.0  # what the clock says once the lease has passed
        stolen = await queue.claim("thief", [agent], limit=10)
        assert len(stolen) == 3
        after = await queue.send(agent, "new")
        nxt = await asyncio.wait_for(anext(iterator), HANG_GUARD)
        assert nxt.id == after
        with pytest.raises(LeaseLost):
            await consumer.ack(first)
    finally:
        await consumer.stop()


async def test_consumer_stop_after_faults_releases_and_closes_without_raising(
    pg_server: PgServer,
) -> None:
    agent = await new_agent()
    await queue.send_many([queue.Outgoing(agent, "k", {"n": n}) for n in range(5)])
    lease = dt.timedelta(seconds=3)
    consumer = queue.Consumer([agent], batch_size=5, lease=lease, poll_interval=3600)
    await consumer.start()
    first = await anext(aiter(consumer))
    await pg_server.stop()
    await until(lambda: _true(consumer.heartbeat_failures >= 1), "a failed heartbeat")
    await pg_server.start()
    await consumer.stop()  # never re-raises the heartbeat's old error
    assert consumer._listener is None and consumer._heartbeat is None
    assert await listening_backends() == 0
    # The four buffered are back at once, attempts not spent; the handed-out one is
    # still the handler's to ack.
    rest = await queue.claim("next", [agent], limit=10)
    assert len(rest) == 4 and all(m.attempts == 1 for m in rest)
    await consumer.ack(first)
    await queue.ack(rest, "next")


async def test_consumer_raises_database_unavailable_when_the_server_stays_down(
    pg_server: PgServer,
) -> None:
    agent = await new_agent()
    consumer = queue.Consumer([agent], poll_interval=0.1, unavailable_timeout=0.5)
    await consumer.start()
    try:
        await pg_server.stop()
        with pytest.raises(DatabaseUnavailable):
            async with asyncio.timeout(HANG_GUARD):
                async for _ in consumer:
                    raise AssertionError("nothing to yield")
        await pg_server.start()
        # A new iteration works once the server is back.
        sent = await queue.send(agent, "back")
        m = await asyncio.wait_for(anext(aiter(consumer)), HANG_GUARD)
        assert m.id == sent
        await consumer.ack(m)
    finally:
        await consumer.stop()


async def test_budget_books_are_readable_after_a_restart(pg_server: PgServer) -> None:
    agent = await new_agent()
    await budgets.charge(agent, BudgetResource.tokens, 5)
    await pg_server.restart()
    [books] = await budgets.books(agent)
    assert books.used == Decimal(5)
