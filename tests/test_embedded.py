"""The embedded PostgreSQL survives what users do: two processes at once, SIGKILL and
SIGTERM of a client, a locale that is not installed, running as root. Each test uses
its own data folder and real client processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
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
        # ...and not in root's group either, nor with any supplementary group
        assert 0 not in psutil.Process(pid).gids()
        status = Path(f"/proc/{pid}/status").read_text()
        groups = next(line for line in status.splitlines() if line.startswith("Groups:"))
        assert groups.split() == ["Groups:"]
    else:
        assert owner == psutil.Process().username()
    assert client.wait(30) == 0
    _wait_stopped(pgdata)


# --- privacy: another unix user gets nothing, whatever the data path's length -----

STRANGER = 65534  # nobody


def _psql_as(uid: int, socket_dir: str) -> subprocess.CompletedProcess[str]:
    """Connect with the wheel's psql as another unix user (root switches with setpriv)."""
    from agent_app.database import _bin

    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
         _bin("psql"), "-h", socket_dir, "-U", "postgres", "-d", "postgres", "-w",
         "-c", "SELECT 1"],
        capture_output=True, text=True, timeout=60, cwd="/",
    )  # fmt: skip


def _socket_dir(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)["host"][0]


def _modes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in paths}


def _long(base: Path) -> Path:
    path = base / ("a-rather-long-folder-name-" * 3) / "agent_app" / "pgdata"
    assert len(str(path)) > 100
    return path


@pytest.mark.parametrize("length", ["short", "long"])
def test_another_unix_user_is_refused(base: Path, length: str) -> None:
    pgdata = base / "home" / "agent_app" / "pgdata" if length == "short" else _long(base)
    pgdata.parents[1].mkdir(mode=0o751)  # a folder the user already had
    from agent_app.database import _bin

    watched = [*pgdata.parents[1:4], *Path(_bin("psql")).parents[:6]]
    before = _modes(watched)
    client = _client(pgdata, 60, "owner")
    try:
        assert client.stdout is not None
        line = client.stdout.readline()
        assert line.startswith("ready"), line + (client.stderr.read() if client.stderr else "")
        socket_dir = Path(_socket_dir(line.split()[2]))
        # the socket folder is the owner's alone, and so is the socket
        assert socket_dir == pgdata if length == "short" else socket_dir != pgdata
        owner = pgdata.stat().st_uid
        assert socket_dir.stat().st_uid == owner
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((socket_dir / ".s.PGSQL.5432").stat().st_mode) == 0o700
        # the access rules: peer only, no trust line, files only the owner reads
        for name in ("pg_hba.conf", "pg_ident.conf", ".handle_pids.json"):
            assert stat.S_IMODE((pgdata / name).stat().st_mode) == 0o600, name
        rules = [
            line.split()
            for line in (pgdata / "pg_hba.conf").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        assert rules == [["local", "all", "all", "peer", "map=agent_app"]]
        if os.geteuid() == 0:
            refused = _psql_as(STRANGER, str(socket_dir))
            assert refused.returncode != 0
            assert "Permission denied" in refused.stderr, refused.stderr
            # Even with the folder opened to it, the stranger fails authentication.
            socket_dir.chmod(0o701)
            (socket_dir / ".s.PGSQL.5432").chmod(0o777)
            try:
                refused = _psql_as(STRANGER, str(socket_dir))
            finally:
                (socket_dir / ".s.PGSQL.5432").chmod(0o700)
                socket_dir.chmod(0o700)
            assert refused.returncode != 0
            assert "Peer authentication failed" in refused.stderr, refused.stderr
            assert _psql_as(0, str(socket_dir)).returncode == 0  # the owner (root) gets in
        # nothing the user already had changed mode (the wheel opened every parent)
        assert _modes(watched) == before
    finally:
        client.send_signal(signal.SIGTERM)
        client.wait(30)
    _wait_stopped(pgdata)
    if length == "long":
        assert not socket_dir.exists()  # its private socket folder went with it


def test_as_root_a_data_folder_the_server_cannot_reach_is_refused_untouched(base: Path) -> None:
    from agent_app.database import EmbeddedServerError, embedded_url

    private = base / "private"
    private.mkdir(mode=0o700)
    if os.geteuid() == 0:
        with pytest.raises(EmbeddedServerError, match=str(private)):
            embedded_url(private / "pgdata", handle_sigterm=False)
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert not (private / "pgdata").exists()
    else:  # the server runs as this user: its own private folders are fine
        client = _client(private / "pgdata", 0, "owner")
        assert _wait_ready(client) == 1
        assert client.wait(30) == 0
        _wait_stopped(private / "pgdata")


IMPORT_EVERYTHING = """
import importlib, os, pkgutil, signal, sys
import agent_app
from agent_app import database
for m in pkgutil.walk_packages(agent_app.__path__, "agent_app."):
    importlib.import_module(m.name)
try:
    database.database_url()
except database.NoDatabaseConfigured as e:
    print("refused", e.rule)
print("sigterm", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


def test_importing_agent_app_starts_nothing(base: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(AGENT_APP_PGDATA=str(base / "pgdata"), HOME=str(base), XDG_RUNTIME_DIR=str(base))
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=base, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", "database_url_missing", "sigterm", "True"]
    assert sorted(p.name for p in base.iterdir()) == []  # no data folder, no lock folder
