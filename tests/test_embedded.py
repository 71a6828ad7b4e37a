"""The embedded PostgreSQL survives what users do: two processes at once, SIGKILL and
SIGTERM of a client, a locale that is not installed, running as root. Each test uses
its own data folder and real client processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent_app.database import scratch_pgdata
from tests.conftest import REPO

CLIENT = """
import asyncio, sys, time
from pathlib import Path
import asyncpg
from agent_app.database import embedded_url

url = embedded_url(Path(sys.argv[1]))

async def main():
    conn = await asyncpg.connect(url)
    # Concurrent CREATE TABLE IF NOT EXISTS can collide; serialise the clients' set-up.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(42)")
        await conn.execute("CREATE TABLE IF NOT EXISTS seen (who text)")
    await conn.execute("INSERT INTO seen VALUES ($1)", sys.argv[3])
    n = await conn.fetchval("SELECT count(*) FROM seen")
    await conn.close()
    print("ready", n, url, flush=True)

asyncio.run(main())
time.sleep(float(sys.argv[2]))
"""


def _client(
    pgdata: Path, hold: float, who: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(pgdata), str(hold), who],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.wait(10)
        raise AssertionError(f"client failed: {line}{proc.stderr.read() if proc.stderr else ''}")
    return int(line.split()[1])


def _server_pid(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().splitlines()[0])
    return pid if psutil.pid_exists(pid) else None


def _wait_stopped(pgdata: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _server_pid(pgdata) is not None:
        assert time.monotonic() < deadline, "the embedded server was left running"
        time.sleep(0.1)


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder of the test's own, traversable (0711) for the server's system user, as
    a home folder would be; removed afterwards."""
    folder = scratch_pgdata("agent_app_embedded_").parent
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pgdata(base: Path) -> Path:
    return base / "home" / "agent_app" / "pgdata"


def test_starts_reuses_its_data_and_stops_after_the_last_client(pgdata: Path) -> None:
    first = _client(pgdata, 0, "first")
    assert _wait_ready(first) == 1
    assert first.wait(30) == 0
    _wait_stopped(pgdata)
    second = _client(pgdata, 0, "second")
    assert _wait_ready(second) == 2  # the first client's row survived the restart
    assert second.wait(30) == 0
    _wait_stopped(pgdata)
    assert oct(pgdata.stat().st_mode & 0o777) == "0o700"


def test_two_processes_starting_at_once_share_one_server(pgdata: Path) -> None:
    clients = [_client(pgdata, 1.5, f"c{i}") for i in range(2)]
    counts = sorted(_wait_ready(c) for c in clients)
    assert counts[-1] == 2
    pid = _server_pid(pgdata)
    assert pid is not None
    assert [c.wait(30) for c in clients] == [0, 0]
    _wait_stopped(pgdata)


def test_a_sigkilled_client_does_not_keep_the_server_forever(pgdata: Path) -> None:
    victim = _client(pgdata, 60, "victim")
    _wait_ready(victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert _server_pid(pgdata) is not None  # nobody stopped it
    assert victim.pid in json.loads((pgdata / ".handle_pids.json").read_text())
    survivor = _client(pgdata, 0, "survivor")
    assert _wait_ready(survivor) == 2
    assert survivor.wait(30) == 0
    _wait_stopped(pgdata)  # the dead pid was pruned, so the last live client stopped it


def test_a_sigtermed_client_exits_cleanly_and_stops_the_server(pgdata: Path) -> None:
    client = _client(pgdata, 60, "terminated")
    _wait_ready(client)
    client.send_signal(signal.SIGTERM)
    assert client.wait(30) == 128 + signal.SIGTERM
    _wait_stopped(pgdata)
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def test_a_locale_that_is_not_installed_does_not_break_initdb(pgdata: Path) -> None:
    env = {"LANG": "xx_YY.UTF-8", "LC_ALL": "xx_YY.UTF-8", "LC_CTYPE": "xx_YY.UTF-8"}
    client = _client(pgdata, 0, "elsewhere", env)
    assert _wait_ready(client) == 1
    assert client.wait(30) == 0
    _wait_stopped(pgdata)


def test_as_root_the_server_runs_as_its_own_user(pgdata: Path) -> None:
    client = _client(pgdata, 2, "root-or-not")
    _wait_ready(client)
    pid = _server_pid(pgdata)
    assert pid is not None
    owner = psutil.Process(pid).username()
    if os.geteuid() == 0:
        assert owner != "root"  # PostgreSQL refuses to run as root; the wheel uses its own user
    else:
        assert owner == psutil.Process().username()
    assert client.wait(30) == 0
    _wait_stopped(pgdata)
