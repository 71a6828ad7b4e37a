"""Test database set-up, against real PostgreSQL only.

* Without ``DATABASE_URL``: a fresh throwaway embedded PostgreSQL 18 cluster
  per test run, deleted afterwards.
* With ``DATABASE_URL``: a throwaway database ``agent_app_test_<random>`` is
  created on that server (the role needs CREATEDB) and dropped afterwards; the
  database named in the URL is never touched.

``DATABASE_URL`` is then pointed at the test database before ``piccolo_conf``
is imported, so Piccolo, the CLI subprocesses and raw asyncpg all use it.

The ``pg_server`` fixture stops, starts and restarts that server for the fault
tests: with ``pg_ctl`` when the server runs on this machine and we may act as its
system user (the embedded server, CI's PostgreSQL 15 cluster), else by refusing
connections to the test database and terminating its backends. CI sets
``AGENT_APP_TEST_RESTART=pg_ctl`` so that a real restart is required there.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import secrets
import shlex
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


class PgServer:
    """The test's PostgreSQL server, which a fault test may take down and bring back.

    ``mode`` is ``"pg_ctl"`` when the server runs on this machine and its data folder
    and binaries can be reached (a real stop/start: every connection is lost, the
    socket disappears, new connections are refused), else ``"refuse"`` (the test
    database refuses new connections and its backends are terminated - what a remote
    server allows)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.database = urlsplit(url).path.lstrip("/") or "postgres"
        self.mode = "refuse"
        self.data: Path | None = None
        self.pg_ctl: Path | None = None
        self.user: str | None = None
        self.restarts = 0
        self.down = False

    async def locate(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            data = Path(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()
        try:
            pid = int((data / "postmaster.pid").read_text().split()[0])
            binary = Path(os.readlink(f"/proc/{pid}/exe"))
            owner = data.stat().st_uid
        except (OSError, ValueError, IndexError):
            return  # not on this machine, or not ours to touch
        pg_ctl = binary.parent / "pg_ctl"
        if not pg_ctl.exists() or (os.geteuid() not in (0, owner)):
            return
        self.data, self.pg_ctl, self.mode = data, pg_ctl, "pg_ctl"
        self.user = pwd.getpwuid(owner).pw_name if os.geteuid() != owner else None

    def _pg_ctl(self, *args: str) -> None:
        assert self.pg_ctl is not None and self.data is not None
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        result = subprocess.run(
            [str(self.pg_ctl), "-D", str(self.data), "-w", "-t", "60", *args],
            user=self.user,
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise AssertionError(f"pg_ctl {args} failed:\n{result.stdout}\n{result.stderr}")

    def _start_options(self) -> str:
        """The server's own command line (postmaster.opts), for pg_ctl start."""
        assert self.data is not None
        argv = shlex.split((self.data / "postmaster.opts").read_text())[1:]
        options, skip = [], False
        for arg in argv:
            if skip:
                skip = False
            elif arg == "-D":
                skip = True
            else:
                options.append(arg)
        return shlex.join(options)

    async def _admin(self, sql: str, *args: object) -> None:
        admin_db = "template1" if self.database != "template1" else "postgres"
        conn = await asyncpg.connect(_with_database(self.url, admin_db))
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    async def stop(self) -> None:
        """Take the server down (every connection is lost) until :meth:`start`."""
        self.down = True
        if self.mode == "pg_ctl":
            self._options = self._start_options()
            await asyncio.to_thread(self._pg_ctl, "-m", "fast", "stop")
        else:
            await self._admin(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
            await self._admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.database,
            )

    async def start(self) -> None:
        if self.mode == "pg_ctl":
            assert self.data is not None
            log = self.data / "agent_app_test_server.log"
            await asyncio.to_thread(self._pg_ctl, "-o", self._options, "-l", str(log), "start")
        else:
            await self._admin(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')
        self.down = False
        self.restarts += 1

    async def restart(self) -> None:
        """Stop and start: every connection open now is lost; new ones work after."""
        await self.stop()
        await self.start()


@pytest.fixture(scope="session")
async def _pg_server(database_url: str) -> AsyncIterator[PgServer]:
    server = PgServer(database_url)
    await server.locate()
    required = os.environ.get("AGENT_APP_TEST_RESTART")
    if required and server.mode != required:
        raise AssertionError(
            f"AGENT_APP_TEST_RESTART={required} but the server can only be restarted "
            f"by {server.mode!r} (data folder or pg_ctl not reachable)"
        )
    yield server
    if server.mode == "refuse":
        await server._admin(f'ALTER DATABASE "{server.database}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def pg_server(_pg_server: PgServer) -> AsyncIterator[PgServer]:
    """The test's PostgreSQL, restartable (see :class:`PgServer`); back up after the test
    whatever the test did."""
    yield _pg_server
    if _pg_server.down:
        await _pg_server.start()
