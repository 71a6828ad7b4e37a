"""Probe: schema_check's scratch databases and errors, run as a user runs the CLI.

* Terminated (SIGTERM, what CI timeouts and ``timeout`` send) or interrupted (SIGINT)
  while it runs, it leaves its ``agent_app_check_*`` scratch databases on the server.
* Killed (SIGKILL), it leaves them too, and no later run removes them: they pile up.
* Run by a role without CREATEDB it fails with the driver's words ("permission denied
  to create database"), Piccolo's full help text, and exit status 1 - the status that
  means "drift found" - instead of a typed, readable refusal.
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
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'probe_nocreatedb'")
        if not exists:
            await conn.execute("CREATE ROLE probe_nocreatedb NOCREATEDB")
        await conn.execute("GRANT USAGE ON SCHEMA agent, public TO probe_nocreatedb")
        await conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO probe_nocreatedb")
    finally:
        await conn.close()
    return _as_role(database_url, "probe_nocreatedb")


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


async def test_option_value_after_a_space_is_not_silently_misbound(scratch_url: str) -> None:
    """``--live false`` (the space form most CLIs take) binds "false" to the first
    positional parameter (write_migration) and leaves live=True: the live database is
    compared although the user said not to. Same mechanism: ``--write-migration
    --description "two words"`` writes a migration described as 'True'. The command
    should refuse a stray positional value (exit 2) or honour it."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "piccolo.main", "agent_app", "schema_check", "--live", "false"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": scratch_url},  # an empty, unmigrated database
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    honoured = result.returncode == 0 and "live database differs" not in out
    refused = result.returncode == 2
    assert honoured or refused, f"exit {result.returncode}:\n{out[-1500:]}"
