"""How the worker API reaches PostgreSQL.

Every operation takes an optional ``conn`` (an asyncpg connection). Without one, it
runs on the connection of the Piccolo transaction in progress, if any (so API calls
compose with ``async with DB.transaction():``), else on a connection from Piccolo's
engine pool, which is started on first use (see :func:`start_pool`) when the application
has not started it.
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

from agent_app.errors import translate

_pool_lock = asyncio.Lock()

#: Pool size used when the API starts Piccolo's pool itself.
DEFAULT_POOL_MAX = int(os.environ.get("AGENT_APP_POOL_MAX", "20"))


def engine() -> PostgresEngine:
    found = engine_finder()
    if not isinstance(found, PostgresEngine):
        raise RuntimeError("agent_app needs a PostgresEngine in piccolo_conf.py")
    return found


async def _light_reset(conn: asyncpg.Connection) -> None:
    """Released connections keep their session: asyncpg has already rolled back any open
    transaction and dropped listeners; skipping its ``RESET ALL``-style query saves a
    round trip on every release."""


async def start_pool(min_size: int = 1, max_size: int = DEFAULT_POOL_MAX) -> asyncpg.Pool:
    """Start Piccolo's engine pool the way agent_app wants it.

    Connections are not reset with a query when they go back to the pool (one round
    trip saved per operation), so code sharing this pool must not leave session state
    behind: use ``SET LOCAL`` rather than ``SET``, transaction-scoped advisory locks,
    and a dedicated connection for LISTEN (as :class:`agent_app.queue.Consumer` does).
    """
    eng = engine()
    async with _pool_lock:
        if eng.pool is None:
            await eng.start_connection_pool(
                min_size=min_size, max_size=max_size, reset=_light_reset
            )
    assert eng.pool is not None
    return eng.pool


async def pool() -> asyncpg.Pool:
    """Piccolo's asyncpg pool; started with :func:`start_pool` on first use if the
    application has not started one itself (``AGENT_APP_POOL_MAX`` connections at most)."""
    eng = engine()
    if eng.pool is None:
        return await start_pool()
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


async def fetchrow(
    sql: str, *args: Any, conn: asyncpg.Connection | None = None
) -> asyncpg.Record | None:
    """One row of ``sql`` on :func:`connection`; a refusal by the database is raised as
    the :class:`~agent_app.errors.RuleViolation` naming its rule."""
    async with connection(conn) as c:
        try:
            return await c.fetchrow(sql, *args)
        except asyncpg.PostgresError as e:
            raise translate(e) from e


async def fetchval(sql: str, *args: Any, conn: asyncpg.Connection | None = None) -> Any:
    """Like :func:`fetchrow`, for a single value."""
    async with connection(conn) as c:
        try:
            return await c.fetchval(sql, *args)
        except asyncpg.PostgresError as e:
            raise translate(e) from e


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)
