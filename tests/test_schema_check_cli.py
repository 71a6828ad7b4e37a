"""schema_check's scratch databases and errors, run as a user runs the CLI.

* Terminated (SIGTERM, what CI timeouts and ``timeout`` send) or interrupted (SIGINT)
  while it runs, it drops its ``agent_app_check_*`` scratch databases.
* Killed (SIGKILL), it leaves them; the next run drops them (their names say which
  process made them, and it is gone).
* Run by a role without CREATEDB it raises a typed error naming CREATEDB; the CLI
  prints it and exits 2 (1 means "drift found").
* A value after a space (``--live false``) is refused (exit 2), not bound to
  whatever parameter targ picks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from agent_app import schema_check as sc
from tests.conftest import REPO


async def _scratch_dbs(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'agent\\_app\\_check\\_%'"
        )
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def _drop(url: str, names: set[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _start(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "piccolo.main", "agent_app", "schema_check"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def _stop_midway(url: str, sig: signal.Signals) -> set[str]:
    before = await _scratch_dbs(url)
    proc = _start(url)
    try:
        for _ in range(600):  # hang guard: 60 s
            if await _scratch_dbs(url) - before:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("schema_check never created a scratch database")
        proc.send_signal(sig)
        await asyncio.to_thread(proc.wait, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return await _scratch_dbs(url) - before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_stopped_midway_leaves_no_scratch_database(
    database_url: str, sig: signal.Signals
) -> None:
    left = await _stop_midway(database_url, sig)
    await _drop(database_url, left)
    assert not left, f"left behind after {sig.name}: {sorted(left)}"


async def test_scratch_databases_of_a_killed_run_are_removed_by_the_next(database_url: str) -> None:
    left = await _stop_midway(database_url, signal.SIGKILL)
    assert left, "SIGKILL mid-run: expected leftovers to exist at this point"
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "piccolo.main", "agent_app", "schema_check"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        timeout=300,
    )
    still = await _scratch_dbs(database_url) & left
    await _drop(database_url, left)
    assert not still, f"a later run left the killed run's scratch databases: {sorted(still)}"


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["role"] = role  # asyncpg: a server setting, so SET ROLE at connect
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
async def no_createdb_url(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'nocreatedb_check'")
        if not exists:
            await conn.execute("CREATE ROLE nocreatedb_check NOCREATEDB")
        await conn.execute("GRANT USAGE ON SCHEMA agent, public TO nocreatedb_check")
        await conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO nocreatedb_check")
    finally:
        await conn.close()
    return _as_role(database_url, "nocreatedb_check")


async def test_without_createdb_the_api_raises_a_typed_error(no_createdb_url: str) -> None:
    with pytest.raises(sc.SchemaCheckError, match="CREATEDB"):
        await sc.check({"dsn": no_createdb_url})


def test_without_createdb_the_cli_says_so_and_does_not_claim_drift(no_createdb_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "piccolo.main", "agent_app", "schema_check"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": no_createdb_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert "CREATEDB" in out, out
    assert result.returncode not in (0, 1), f"exit {result.returncode}: 1 means drift found"


@pytest.mark.parametrize(
    "args",
    [["--live", "false"], ["--write-migration", "--description", "two words"]],
    ids=["--live false", "--description two words"],
)
async def test_option_value_after_a_space_is_refused(scratch_url: str, args: list[str]) -> None:
    """targ binds a word after a space to the command's first parameters in order
    (``--live false`` set write_migration and left live on; ``--description "two
    words"`` wrote a migration described as 'True'): the command refuses it."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "piccolo.main", "agent_app", "schema_check", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": scratch_url},  # an empty, unmigrated database
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stdout[-1500:]}"
    assert "--name=value" in result.stderr and repr(args[-1]) in result.stderr
    assert "difference" not in result.stdout


def test_stray_values_are_found_after_the_command_name() -> None:
    from agent_app.commands.schema_check import stray_values

    argv = ["piccolo", "agent_app", "check", "--live=false", "x", "--description", "a b"]
    assert stray_values(argv) == ["x", "a b"]
    assert stray_values(["piccolo", "agent_app", "schema_check", "--write-migration"]) == []
    assert stray_values(["pytest", "-q", "tests"]) == []


def test_only_scratch_databases_of_gone_processes_or_old_ones_are_stale() -> None:
    now = 2_000_000_000
    mine = sc.scratch_name()
    assert not sc.is_stale(mine), "this process's own database"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = mine.replace(f"_{os.getpid()}_", f"_{int(gone.stdout)}_")
    assert sc.is_stale(dead)
    host, pid = "00000000" if not mine.startswith(sc.SCRATCH_PREFIX + "00000000") else "11111111", 1
    other = f"{sc.SCRATCH_PREFIX}{host}_{pid}_{now - 60}_abc"
    assert not sc.is_stale(other, now=now), "another machine's, recent: maybe running"
    assert sc.is_stale(f"{sc.SCRATCH_PREFIX}{host}_{pid}_{now - 2 * 86400}_abc", now=now)
    assert not sc.is_stale(sc.SCRATCH_PREFIX + "0123456789ab"), "an unknown format is kept"
