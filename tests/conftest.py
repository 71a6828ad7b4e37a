"""Test database set-up, against real PostgreSQL only.

* Without ``DATABASE_URL``: a fresh throwaway embedded PostgreSQL 18 cluster
  per test run, deleted afterwards.
* With ``DATABASE_URL``: a throwaway database ``agent_app_test_<random>`` is
  created on that server (the role needs CREATEDB) and dropped afterwards; the
  database named in the URL is never touched.

``DATABASE_URL`` is then pointed at the test database before ``piccolo_conf``
is imported, so Piccolo, the CLI subprocesses and raw asyncpg all use it.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

T = TypeVar("T")

_SERVER_URL = os.environ.get("DATABASE_URL")
_TEST_DB: str | None = None
_TMP: str | None = None


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _admin(url: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on its own connection."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pytest_configure(config: pytest.Config) -> None:
    global _TEST_DB, _TMP
    if os.environ.get("AGENT_APP_TEST_CONFIGURED"):
        return
    os.environ["AGENT_APP_TEST_CONFIGURED"] = "1"
    if _SERVER_URL:
        _TEST_DB = f"agent_app_test_{secrets.token_hex(4)}"
        asyncio.run(_admin(_SERVER_URL, f'CREATE DATABASE "{_TEST_DB}"'))
        os.environ["DATABASE_URL"] = _with_database(_SERVER_URL, _TEST_DB)
    else:
        from agent_app.database import embedded_url, scratch_pgdata

        pgdata = scratch_pgdata("agent_app_test_")
        _TMP = str(pgdata.parent)
        # atexit runs last-registered first: the server stops (and deletes its data folder)
        # before this removes the parent. Removing it earlier, in pytest_unconfigure, took
        # the server's list of users with it, and the server was never stopped.
        atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
        os.environ["AGENT_APP_PGDATA"] = str(pgdata)
        os.environ["DATABASE_URL"] = embedded_url(pgdata, throwaway=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER_URL and _TEST_DB:
        asyncio.run(_admin(_SERVER_URL, f'DROP DATABASE IF EXISTS "{_TEST_DB}" WITH (FORCE)'))


def server_url() -> str:
    """The server the suite runs against, for tests that make more scratch databases."""
    return _SERVER_URL or os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ["DATABASE_URL"]


@pytest.fixture(scope="session", autouse=True)
async def migrated(database_url: str) -> AsyncIterator[None]:
    """Run every migration once, and start Piccolo's pool for ORM tests."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from agent_app import db

    response = await run_forwards(app_name="all", migration_id="all", fake=False)
    assert response.success, response.message
    await db.start_pool(min_size=1, max_size=20)
    # Piccolo's own pool, for the tests' ORM queries (agent_app never starts it).
    await db.engine().start_connection_pool(min_size=1, max_size=5)
    yield
    await db.close_pool()
    await db.engine().close_connection_pool()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection inside a transaction that is rolled back after the test."""
    connection = await asyncpg.connect(database_url)
    tx = connection.transaction()
    await tx.start()
    try:
        yield connection
    finally:
        await tx.rollback()
        await connection.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of committed-work connections for concurrency tests."""
    p = await asyncpg.create_pool(database_url, min_size=2, max_size=25)
    assert p is not None
    yield p
    await p.close()


class SyncDB:
    """Runs coroutines on a private event loop, for hypothesis tests (which are sync)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(url))

    def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return self.loop.run_until_complete(fn(self.conn))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


@pytest.fixture
def sync_db(database_url: str) -> Iterator[SyncDB]:
    db = SyncDB(database_url)
    yield db
    db.close()


REPO = Path(__file__).resolve().parent.parent


def piccolo(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``piccolo`` CLI as a user would, against the database at ``url``."""
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "piccolo.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"piccolo {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
async def scratch_url(database_url: str) -> AsyncIterator[str]:
    """An empty database of its own on the test server, dropped afterwards."""
    name = f"scratch_{secrets.token_hex(4)}"
    await _admin(database_url, f'CREATE DATABASE "{name}"')
    yield _with_database(database_url, name)
    await _admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
