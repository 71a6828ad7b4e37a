"""How the worker API reaches PostgreSQL.

Every operation takes an optional ``conn`` (an asyncpg connection). Without one, it
runs on the connection of the Piccolo transaction in progress, if any (so API calls
compose with ``async with DB.transaction():``), else on a connection from Piccolo's
engine pool, which is started on first use when the application has not started it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

_pool_lock = asyncio.Lock()

#: Pool size used when the API starts Piccolo's pool itself.
DEFAULT_POOL_MAX = int(os.environ.get("AGENT_APP_POOL_MAX", "20"))


def engine() -> PostgresEngine:
    found = engine_finder()
    if not isinstance(found, PostgresEngine):
        raise RuntimeError("agent_app needs a PostgresEngine in piccolo_conf.py")
    return found


async def pool() -> asyncpg.Pool:
    """Piccolo's asyncpg pool, started (min 1, max ``AGENT_APP_POOL_MAX``) if need be."""
    eng = engine()
    if eng.pool is None:
        async with _pool_lock:
            if eng.pool is None:
                await eng.start_connection_pool(min_size=1, max_size=DEFAULT_POOL_MAX)
    assert eng.pool is not None
    return eng.pool


@asynccontextmanager
async def connection(conn: asyncpg.Connection | None = None) -> AsyncIterator[asyncpg.Connection]:
    """The connection an operation runs on (see the module docstring)."""
    if conn is not None:
        yield conn
        return
    eng = engine()
    current = eng.current_transaction.get()
    if current is not None:
        yield current.connection
        return
    async with (await pool()).acquire() as acquired:
        yield acquired


@asynccontextmanager
async def transaction(conn: asyncpg.Connection | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A transaction (a savepoint when one is already open) on :func:`connection`."""
    async with connection(conn) as c, c.transaction():
        yield c


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)
