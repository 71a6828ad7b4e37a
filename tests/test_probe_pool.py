"""Adversarial probes of the pool's inline release (agent_app.db._Pool.release)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from agent_app import db
from agent_app.errors import AgentAppError


async def _pids_clean() -> None:
    """Every pooled connection handed out next is outside a transaction and usable."""
    for _ in range(5):
        async with db.connection() as c:
            assert not c.is_in_transaction()
            assert await c.fetchval("SELECT 1") == 1


async def test_p_connection_left_in_a_transaction_is_rolled_back() -> None:
    async with db.connection() as c:
        await c.execute("CREATE TEMP TABLE IF NOT EXISTS p_probe (x int)")
    with contextlib.suppress(RuntimeError):
        async with db.connection() as c:
            await c.execute("BEGIN")
            await c.execute("INSERT INTO p_probe VALUES (1)")
            raise RuntimeError
    tx_left = None
    async with db.connection() as c:
        tr = c.transaction()
        await tr.start()
        tx_left = c
    await _pids_clean()
    assert tx_left is not None


async def test_p_cancelled_mid_statement() -> None:
    started = asyncio.Event()

    async def slow() -> None:
        async with db.connection() as c:
            started.set()
            await c.execute("SELECT pg_sleep(30)")

    task = asyncio.create_task(slow())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.wait_for(_pids_clean(), 30)


async def test_p_expired_connections_are_not_handed_out_again() -> None:
    p = await db.pool()
    async with db.connection() as c:
        pid = await c.fetchval("SELECT pg_backend_pid()")
        await p.expire_connections()
    seen = set()
    for _ in range(5):
        async with db.connection() as c:
            seen.add(await c.fetchval("SELECT pg_backend_pid()"))
    assert pid not in seen


async def test_p_killed_while_in_use(database_url: str) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        with pytest.raises(AgentAppError):
            async with db.connection() as c:
                pid = await c.fetchval("SELECT pg_backend_pid()")
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                await c.fetchval("SELECT 1")
        # killed while idle in the pool
        async with db.connection() as c:
            pid = await c.fetchval("SELECT pg_backend_pid()")
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.2)
    finally:
        await admin.close()
    for _ in range(5):
        with contextlib.suppress(AgentAppError):
            async with db.connection() as c:
                await c.fetchval("SELECT 1")
    await _pids_clean()


async def test_p_many_concurrent_users_and_release_while_pool_busy() -> None:
    async def one(i: int) -> int:
        async with db.connection() as c:
            if i % 7 == 0:
                await c.execute("BEGIN")
            return int(await c.fetchval("SELECT $1::int", i))

    got = await asyncio.gather(*(one(i) for i in range(200)))
    assert got == list(range(200))
    await _pids_clean()
