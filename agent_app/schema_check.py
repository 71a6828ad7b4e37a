"""Compare the code, the migration files and the live database, over the whole catalog.

Three databases are compared with one differ (:mod:`agent_app.catalog`):

* **migrations**: a scratch database built by running agent_app's migration files
  (``piccolo migrations forwards agent_app``, in a subprocess with a configuration
  of its own that points at the scratch database and nothing else);
* **code**: a scratch database built from the code: the Table classes' own
  ``CREATE TABLE`` DDL (with Piccolo's ``index=True`` indexes and constraints), then
  :func:`agent_app.raw_schema.forwards_statements`;
* **live**: the database ``piccolo_conf.py`` points at (read only).

Code against migrations answers "does the code say something no migration says
yet?"; live against migrations answers "has someone changed the database by hand, or
not run the migrations?". Scratch databases are created on the live database's
server (``CREATE DATABASE``, so the role needs CREATEDB) and dropped afterwards,
also when the check is interrupted or terminated; their names say which machine and
process made them and when, so a run killed outright (SIGKILL) has its scratch
databases dropped by the next run (:func:`drop_stale_scratch`).

:func:`write_migration` writes the next raw migration from the code against the
migrations - never from a live database - and proves it on a scratch database
before saving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from piccolo.table import Table, sort_table_classes

from agent_app.catalog import (
    SCHEMA,
    Difference,
    Plan,
    Snapshot,
    canonicalise,
    diff,
    ident,
    plan,
    snapshot,
)
from agent_app.database import pid_alive
from agent_app.errors import AgentAppError

SCRATCH_PREFIX = "agent_app_check_"
APP_NAME = "agent_app"

_SCRATCH_CONF = '''"""The piccolo_conf of a schema_check scratch database: agent_app only."""
import json
import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

DB = PostgresEngine(config=json.loads(os.environ["AGENT_APP_SCRATCH_CONFIG"]))
APP_REGISTRY = AppRegistry(apps=["agent_app.piccolo_app"])
'''


class SchemaCheckError(AgentAppError):
    """The check could not be made: the role may not create the scratch databases
    (it needs CREATEDB), or a scratch database failed to build. Nothing was compared;
    the CLI exits 2 with this message."""

    rule = "schema_check"


def live_config() -> dict[str, Any]:
    """Connection arguments of the database ``piccolo_conf.py`` points at."""
    from agent_app import db

    return db.connect_kwargs()


# --------------------------------------------------------------------------- #
# Scratch databases
# --------------------------------------------------------------------------- #


async def _admin(config: dict[str, Any], sql: str) -> None:
    conn = await asyncpg.connect(**config)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


#: Scratch database names: prefix, this machine (hash of host name and pid namespace),
#: the creating process's pid, its creation time (unix seconds), a random tail.
_SCRATCH_NAME = re.compile(
    re.escape(SCRATCH_PREFIX) + r"(?P<host>[0-9a-f]{8})_(?P<pid>[0-9]+)_(?P<t>[0-9]+)_[0-9a-f]+\Z"
)
#: A scratch database of another machine is stale after this long without connections.
STALE_AFTER_SECONDS = 24 * 3600


def _machine() -> str:
    """This machine and pid namespace, as 8 hex digits: a pid in a scratch database's
    name means something only where this is the same."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def scratch_name() -> str:
    """A new scratch database name that says who made it and when (see
    :func:`drop_stale_scratch`)."""
    return f"{SCRATCH_PREFIX}{_machine()}_{os.getpid()}_{int(time.time())}_{secrets.token_hex(3)}"


def is_stale(name: str, now: float | None = None) -> bool:
    """Whether the scratch database ``name`` belongs to no running check: made on this
    machine by a process that is gone, or made anywhere more than
    :data:`STALE_AFTER_SECONDS` ago. Names in another format are never stale."""
    match = _SCRATCH_NAME.match(name)
    if match is None:
        return False
    now = time.time() if now is None else now
    if now - int(match["t"]) > STALE_AFTER_SECONDS:
        return True
    pid = int(match["pid"])
    return match["host"] == _machine() and pid != os.getpid() and not pid_alive(pid)


async def drop_stale_scratch(config: dict[str, Any]) -> list[str]:
    """Drop the scratch databases left by checks that were killed (see
    :func:`is_stale`) and that nobody is connected to; returns their names. A database
    still in use is left alone (the next check tries again)."""
    conn = await asyncpg.connect(**config)
    dropped: list[str] = []
    try:
        names = await conn.fetch(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) "
            "AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.datname = pg_database.datname)",
            SCRATCH_PREFIX,
        )
        for (name,) in names:
            if not is_stale(name):
                continue
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {ident(name)}")
            except asyncpg.PostgresError:
                continue  # in use after all, or not ours to drop
            dropped.append(name)
    finally:
        await conn.close()
    return dropped


async def _sweep(config: dict[str, Any]) -> None:
    """:func:`drop_stale_scratch`, best effort: the check does not fail over it."""
    with contextlib.suppress(asyncpg.PostgresError, OSError):
        await drop_stale_scratch(config)


async def _create(config: dict[str, Any], sql: str) -> None:
    try:
        await _admin(config, sql)
    except asyncpg.InsufficientPrivilegeError as e:
        raise SchemaCheckError(
            "the role may not create the scratch databases the check is made in: it needs "
            f"CREATEDB (ALTER ROLE ... CREATEDB) - PostgreSQL said: {e}"
        ) from None


async def _drop(config: dict[str, Any], name: str) -> None:
    """Drop scratch database ``name``, even while the task is being cancelled."""
    drop = asyncio.ensure_future(
        _admin(config, f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
    )
    try:
        await asyncio.shield(drop)
    except asyncio.CancelledError:
        await drop  # cancelled again while dropping: finish the drop first
        raise


@contextlib.asynccontextmanager
async def scratch_database(
    config: dict[str, Any], template: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """A new empty database on the server of ``config`` (a copy of ``template`` if
    given), yielding its connection arguments; dropped on exit, also when the task is
    cancelled (SIGINT, SIGTERM in the CLI) while it is being created. A run killed
    outright leaves it to :func:`drop_stale_scratch` of the next run.
    :class:`SchemaCheckError` if the role lacks CREATEDB."""
    name = scratch_name()
    copy = f" TEMPLATE {ident(template)}" if template else ""
    try:
        await _create(config, f"CREATE DATABASE {ident(name)}{copy}")
        yield {**config, "database": name}
    finally:
        await _drop(config, name)


async def migrate(config: dict[str, Any]) -> None:
    """Run agent_app's migration files forwards on the database of ``config``.

    Runs ``piccolo migrations forwards agent_app`` in a subprocess whose
    ``piccolo_conf`` is written here and knows only that database, so the caller's
    own configuration (which may point at production) is never consulted."""
    try:
        config_json = json.dumps(config)
    except TypeError as e:
        raise SchemaCheckError(f"the engine's config cannot be passed on: {e}") from None
    with tempfile.TemporaryDirectory(prefix="agent_app_check_") as folder:
        Path(folder, "agent_app_scratch_conf.py").write_text(_SCRATCH_CONF)
        path = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH", "")) if p)
        env = {
            **os.environ,
            "PICCOLO_CONF": "agent_app_scratch_conf",
            "PYTHONPATH": path,
            "AGENT_APP_SCRATCH_CONFIG": config_json,
        }
        env.pop("DATABASE_URL", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "piccolo.main",
            "migrations",
            "forwards",
            APP_NAME,
            env=env,
            cwd=folder,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
    if proc.returncode != 0:
        raise SchemaCheckError(
            "the migration files failed on a scratch database:\n" + out.decode(errors="replace")
        )


def code_statements(
    tables: Iterable[type[Table]] | None = None, raw: Sequence[str] | None = None
) -> list[str]:
    """The DDL the code declares: each Table's ``CREATE TABLE`` (constraints and
    ``index=True`` indexes included) in dependency order, then the raw objects."""
    if tables is None:
        from agent_app.tables import TABLES

        tables = TABLES
    if raw is None:
        from agent_app.raw_schema import forwards_statements

        raw = forwards_statements()
    statements: list[str] = []
    for table in sort_table_classes(list(tables)):
        statements += table.create_table().ddl
    return statements + list(raw)


async def build_from_code(config: dict[str, Any], statements: Sequence[str]) -> None:
    """Run ``statements`` (see :func:`code_statements`) on the database of ``config``."""
    conn = await asyncpg.connect(**config)
    try:
        async with conn.transaction():
            for statement in statements:
                try:
                    await conn.execute(statement)
                except asyncpg.PostgresError as e:
                    raise SchemaCheckError(
                        f"the code's schema does not build: {e}\n  in: {statement}"
                    ) from None
    finally:
        await conn.close()


async def read(config: dict[str, Any]) -> Snapshot:
    """The catalog snapshot of schema ``agent`` in the database of ``config``."""
    conn = await asyncpg.connect(**config)
    try:
        return await snapshot(conn)
    finally:
        await conn.close()


@dataclass
class Scratch:
    """The two scratch databases and their snapshots (definitions canonicalised, see
    :func:`agent_app.catalog.canonicalise`, on the migrations database)."""

    migrations_config: dict[str, Any]
    code_config: dict[str, Any]
    migrations: Snapshot
    code: Snapshot
    cache: dict[tuple[str, str], str] = field(default_factory=dict)

    async def observe(self, conn: asyncpg.Connection) -> Snapshot:
        """The snapshot of the database ``conn`` is connected to, comparable with
        :attr:`migrations` and :attr:`code`. Reads only."""
        return await self.canonical(await snapshot(conn))

    async def canonical(self, snap: Snapshot) -> Snapshot:
        sandbox = await asyncpg.connect(**self.migrations_config)
        try:
            return await canonicalise(snap, sandbox, self.cache)
        finally:
            await sandbox.close()


@contextlib.asynccontextmanager
async def scratch_pair(
    config: dict[str, Any], statements: Sequence[str] | None = None
) -> AsyncIterator[Scratch]:
    """Build the migrations and the code scratch databases side by side (``statements``
    defaults to :func:`code_statements`), read both; both are dropped on exit. Stale
    scratch databases of killed runs are dropped before and after
    (:func:`drop_stale_scratch`)."""
    if statements is None:
        statements = code_statements()
    await _sweep(config)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_sweep, config)
        mig = await stack.enter_async_context(scratch_database(config))
        code = await stack.enter_async_context(scratch_database(config))
        await asyncio.gather(migrate(mig), build_from_code(code, statements))
        mig_snap, code_snap = await asyncio.gather(read(mig), read(code))
        scratch = Scratch(mig, code, mig_snap, code_snap)
        scratch.migrations = await scratch.canonical(mig_snap)
        scratch.code = await scratch.canonical(code_snap)
        yield scratch


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #


async def piccolo_drift(app_name: str = APP_NAME) -> list[str]:
    """What ``piccolo migrations new <app> --auto`` would write now (Piccolo's own,
    name-only differ of Table classes against migration files): empty when it would
    write nothing."""
    from piccolo.apps.migrations.commands.new import AutoMigrationManager
    from piccolo.conf.apps import Finder

    app_config = Finder().get_app_config(app_name)
    with contextlib.redirect_stdout(io.StringIO()):
        alter = await AutoMigrationManager(auto_input="n").get_alter_statements(app_config)
    return [str(s) for group in alter for s in group.statements]


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """agent_app's migration files not recorded as run in the live database."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager
    from piccolo.conf.apps import Finder

    app_config = Finder().get_app_config(APP_NAME)
    ids = set(BaseMigrationManager().get_migration_modules(str(app_config.migrations_folder_path)))
    exists = await conn.fetchval("SELECT to_regclass('public.migration') IS NOT NULL")
    done: set[str] = set()
    if exists:
        done = {
            r["name"]
            for r in await conn.fetch(
                "SELECT name FROM public.migration WHERE app_name = $1", APP_NAME
            )
        }
    return sorted(ids - done)


@dataclass
class Report:
    """What ``schema_check`` found. ``code`` and ``live`` are differences against the
    migrations; ``live_fix`` the SQL that would bring the live database back to them."""

    code: list[Difference] = field(default_factory=list)
    piccolo: list[str] = field(default_factory=list)
    live: list[Difference] | None = None
    live_fix: Plan | None = None
    pending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.code or self.piccolo or self.live)

    def render(self) -> str:
        if self.ok:
            where = ", the live database" if self.live is not None else ""
            return f"schema_check: no drift (code{where} and migrations agree)."
        n = len(self.code) + len(self.live or [])
        lines = [f"schema_check: {n} difference(s) found", ""]
        if self.code or self.piccolo:
            lines.append(
                "The code differs from the migration files (a scratch database built from "
                "the Table classes and raw_schema against one built from the migrations):"
            )
            lines += [_indent(str(d)) for d in self.code]
            if self.piccolo:
                lines += [
                    "",
                    "  Piccolo's auto-migration differ sees changes to the Table classes; run "
                    f"`piccolo migrations new {APP_NAME} --auto` for them first:",
                ]
                lines += [f"      {s}" for s in self.piccolo]
            lines += [
                "",
                "  `piccolo agent_app schema_check --write-migration` writes the migration "
                "for what remains (from the code, proven on a scratch database).",
                "",
            ]
        if self.live:
            lines.append("The live database differs from the migration files:")
            if self.pending:
                lines.append(
                    f"  ({len(self.pending)} migration(s) not yet run there: "
                    "`piccolo migrations forwards agent_app`)"
                )
            lines += [_indent(str(d)) for d in self.live]
            if self.live_fix and self.live_fix.statements:
                lines += [
                    "",
                    "  SQL that would bring the live database back to the migrations' state "
                    "(review it; it is never frozen into a migration):",
                    "",
                ]
                lines += [f"    {s};" for s in self.live_fix.statements]
            for note in self.live_fix.manual if self.live_fix else []:
                lines.append(f"  by hand: {note}")
        return "\n".join(lines).rstrip()


def _indent(text: str) -> str:
    first, *rest = text.splitlines()
    return "\n".join([f"  - {first}", *(f"  {line}" for line in rest)])


async def live_drift(conn: asyncpg.Connection, scratch: Scratch) -> tuple[list[Difference], Plan]:
    """The live database's differences from the migrations' snapshot, and the SQL that
    would remove them. Reads only."""
    live = await scratch.observe(conn)
    return (
        diff(scratch.migrations, live, "migrations", "live database"),
        plan(live, scratch.migrations),
    )


async def check(
    config: dict[str, Any] | None = None,
    statements: Sequence[str] | None = None,
    live: bool = True,
) -> Report:
    """Compare code, migrations and (with ``live``) the database of ``config``
    (default: ``piccolo_conf.py``'s)."""
    config = config or live_config()
    report = Report(piccolo=await piccolo_drift())
    async with scratch_pair(config, statements) as scratch:
        report.code = diff(scratch.migrations, scratch.code, "migrations", "code")
        if live:
            conn = await asyncpg.connect(**config)
            try:
                report.live, report.live_fix = await live_drift(conn, scratch)
                if report.live:
                    report.pending = await pending_migrations(conn)
            finally:
                await conn.close()
    return report


# --------------------------------------------------------------------------- #
# The next migration
# --------------------------------------------------------------------------- #


class MigrationRefused(Exception):
    """No migration was written; the message says why and what to do instead."""


@dataclass
class NextMigration:
    forwards: list[str]
    backwards: list[str]


async def next_migration(scratch: Scratch) -> NextMigration | None:
    """Forwards (migrations -> code) and backwards (code -> migrations) statements,
    proven on a fresh copy of the migrations' scratch database: forwards must reach
    the code's catalog exactly, backwards must bring back the migrations' exactly.
    None when code and migrations agree; :class:`MigrationRefused` when some change
    cannot be written (tables are Piccolo's to create) or the proof fails."""
    forwards = plan(scratch.migrations, scratch.code)
    backwards = plan(scratch.code, scratch.migrations)
    if not forwards.statements and not forwards.manual and not backwards.manual:
        return None
    if forwards.manual or backwards.manual:
        raise MigrationRefused(
            "not written - these need Piccolo's migrations or a hand-written one:\n"
            + "\n".join(f"  - {m}" for m in dict.fromkeys(forwards.manual + backwards.manual))
        )
    base = {k: v for k, v in scratch.migrations_config.items() if k != "database"}
    async with scratch_database(base, template=scratch.migrations_config["database"]) as proof:
        conn = await asyncpg.connect(**proof)
        try:
            for label, statements, want in (
                ("forwards", forwards.statements, scratch.code),
                ("backwards", backwards.statements, scratch.migrations),
            ):
                try:
                    async with conn.transaction():
                        for statement in statements:
                            await conn.execute(statement)
                except asyncpg.PostgresError as e:
                    raise MigrationRefused(
                        f"not written - its {label} failed on a scratch database: {e}"
                    ) from None
                left = diff(want, await scratch.observe(conn), "expected", f"after {label}")
                if left:
                    raise MigrationRefused(
                        f"not written - after its {label} a scratch database still differs:\n"
                        + "\n".join(_indent(str(d)) for d in left)
                    )
        finally:
            await conn.close()
    return NextMigration(forwards.statements, backwards.statements)


async def write_migration(
    scratch: Scratch, description: str, directory: Path | None = None
) -> Path | None:
    """Write :func:`next_migration` as a new raw migration file (None when there is
    nothing to write)."""
    from agent_app.migration_writer import MIGRATIONS_DIR, write_raw_migration

    migration = await next_migration(scratch)
    if migration is None:
        return None
    return write_raw_migration(
        migration.forwards, migration.backwards, description, directory or MIGRATIONS_DIR
    )


__all__ = [
    "SCHEMA",
    "Difference",
    "MigrationRefused",
    "Report",
    "SchemaCheckError",
    "Scratch",
    "check",
    "code_statements",
    "live_drift",
    "next_migration",
    "scratch_pair",
    "write_migration",
]
