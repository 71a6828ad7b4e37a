"""agent_app's pool gives connections back inline when nothing is left to do on them,
and through asyncpg's own release (rollback, replacement) otherwise."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from agent_app import db
from agent_app.errors import DatabaseUnavailable


async def _all_idle(pool: asyncpg.Pool) -> bool:
    for _ in range(200):  # hang guard: a release done in a task lands a turn later
        if pool.get_idle_size() == pool.get_size():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_released_connection_goes_back_at_once_and_keeps_working() -> None:
    pool = await db.pool()
    async with db.connection() as c:
        pid = await c.fetchval("SELECT pg_backend_pid()")
    # Given back inline: idle again before this task yields to the loop.
    assert pool.get_idle_size() == pool.get_size()
    for _ in range(3):
        async with db.connection() as c:
            assert await c.fetchval("SELECT 1") == 1
    async with db.connection() as c:
        assert await c.fetchval("SELECT pg_backend_pid()") > 0
    assert pool.get_idle_size() == pool.get_size() and pid > 0


async def test_a_connection_left_in_a_transaction_is_rolled_back_on_release() -> None:
    pool = await db.pool()
    c = await pool.acquire()
    try:
        await c.execute("BEGIN")
        await c.execute("CREATE TEMP TABLE left_open (x int)")
        await c.execute("INSERT INTO left_open VALUES (1)")
    finally:
        await pool.release(c)
    assert await _all_idle(pool)
    # Every idle connection is outside a transaction and the table never existed.
    held = [await pool.acquire() for _ in range(pool.get_size())]
    try:
        for conn in held:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        for conn in held:
            await pool.release(conn)


async def test_a_dead_connection_is_replaced_not_given_back(database_url: str) -> None:
    pool = await db.pool()
    async with db.connection() as c:
        victim = await c.fetchval("SELECT pg_backend_pid()")
    killer = await asyncpg.connect(database_url)
    try:
        await killer.execute("SELECT pg_terminate_backend($1)", victim)
    finally:
        await killer.close()
    # The dead connection costs at most one call (DatabaseUnavailable, retryable);
    # it is replaced, never handed out again.
    failures = 0
    for _ in range(pool.get_size() + 2):
        try:
            async with db.connection() as c:
                assert await c.fetchval("SELECT pg_backend_pid()") != victim
        except DatabaseUnavailable:
            failures += 1
    assert failures <= 1
    assert await _all_idle(pool)
    held = [await pool.acquire() for _ in range(pool.get_size())]
    try:
        pids = [await conn.fetchval("SELECT pg_backend_pid()") for conn in held]
    finally:
        for conn in held:
            await pool.release(conn)
    assert victim not in pids


async def test_a_caller_cancelled_mid_statement_leaves_the_pool_whole() -> None:
    pool = await db.pool()
    started = asyncio.Event()

    async def slow() -> None:
        async with db.connection() as c:
            started.set()
            await c.execute("SELECT pg_sleep(30)")

    task = asyncio.create_task(slow())
    await asyncio.wait_for(started.wait(), 30)
    for _ in range(300):  # hang guard: until the server runs the statement
        async with db.connection() as c:
            if await c.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
                "AND state = 'active'"
            ):
                break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the statement never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _all_idle(pool)
    for _ in range(pool.get_size() + 1):
        async with db.connection() as c:
            assert await c.fetchval("SELECT 1") == 1


async def test_expired_and_worn_out_connections_are_replaced() -> None:
    # Released connections of an older generation (expire_connections) or past
    # max_queries take asyncpg's own release, which closes them.
    pool = await db.pool()
    async with db.connection() as c:
        old = await c.fetchval("SELECT pg_backend_pid()")
    await pool.expire_connections()
    async with db.connection() as c:
        assert await c.fetchval("SELECT pg_backend_pid()") != old
    # A pool whose connections wear out after 3 queries, released inline otherwise.
    small = await db._Pool(
        **db.connect_kwargs(), min_size=1, max_size=1, max_queries=3,
        max_inactive_connection_lifetime=300.0, reset=db._light_reset, loop=None,
        connection_class=asyncpg.Connection, record_class=asyncpg.Record,
    )  # fmt: skip
    try:
        pids = []
        for _ in range(8):
            async with db.connection(from_pool=small) as c:
                pids.append(await c.fetchval("SELECT pg_backend_pid()"))
        assert len(set(pids)) >= 2, pids  # worn-out connections were replaced
    finally:
        await small.close()
