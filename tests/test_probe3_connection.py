"""Probes of db.connection's plain classes: typed errors and the connection always
given back, under random cancellation and killed backends, with from_pool too."""

from __future__ import annotations

import asyncio
import contextlib
import random

import asyncpg

from agent_app import db
from agent_app.errors import DatabaseUnavailable, RuleViolation


async def _churn(p: asyncpg.Pool | None, killer: asyncpg.Connection) -> None:
    rng = random.Random(7)
    lock = asyncio.Lock()

    async def one(i: int) -> None:
        async with db.connection(from_pool=p) as c:
            if i % 5 == 0:
                async with lock:
                    await killer.execute("SELECT pg_terminate_backend($1)", c.get_server_pid())
            if i % 7 == 0:
                await c.execute("SELECT 1/0")
            await c.execute("SELECT pg_sleep($1)", rng.random() / 20)

    for _ in range(4):
        tasks = [asyncio.ensure_future(one(i)) for i in range(30)]
        await asyncio.sleep(rng.random() / 20)
        for t in tasks:
            if rng.random() < 0.5:
                t.cancel()
        for r in await asyncio.gather(*tasks, return_exceptions=True):
            assert r is None or isinstance(
                r, (asyncio.CancelledError, DatabaseUnavailable, RuleViolation)
            ), repr(r)


async def _all_back(p: asyncpg.Pool, size: int) -> None:
    held = [await asyncio.wait_for(p.acquire(), 30) for _ in range(size)]
    try:
        for c in held:
            assert not c.is_in_transaction()
            assert await c.fetchval("SELECT 1") == 1
    finally:
        for c in held:
            await p.release(c)


async def test_p3_churn_own_pool(database_url: str) -> None:
    killer = await asyncpg.connect(database_url)
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        await _churn(p, killer)
        await _all_back(p, 4)
    finally:
        await p.close()
        await killer.close()


async def test_p3_churn_agent_app_pool(database_url: str) -> None:
    killer = await asyncpg.connect(database_url)
    try:
        await _churn(None, killer)
        p = await db.pool()
        await _all_back(p, p.get_max_size())
    finally:
        await killer.close()


async def test_p3_given_connection_in_asyncpg_transaction_typed(database_url: str) -> None:
    own = await asyncpg.connect(database_url)
    killer = await asyncpg.connect(database_url)
    try:
        with contextlib.suppress(RuleViolation):
            async with own.transaction(), db.connection(own) as c:
                await c.execute("SELECT 1/0")
        tx = own.transaction()
        await tx.start()
        lost = None
        try:
            async with db.connection(own) as c:
                await killer.execute("SELECT pg_terminate_backend($1)", c.get_server_pid())
                await c.execute("SELECT 1")
        except DatabaseUnavailable as e:
            lost = e
        assert lost is not None
    finally:
        await killer.close()
        own.terminate()
