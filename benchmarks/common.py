"""A private database for a benchmark run, and small timing helpers.

Like the test suite: without ``DATABASE_URL`` a throwaway embedded cluster; with it, a
throwaway database on that server. Call :func:`prepare` before importing anything that
imports ``piccolo_conf``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


#: Set by ``python -m benchmarks``: a migrated database on the ``DATABASE_URL`` server
#: that :func:`prepare` copies (``CREATE DATABASE ... TEMPLATE``) instead of migrating.
TEMPLATE_ENV = "AGENT_APP_BENCH_TEMPLATE"


def _admin(server: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def database_on(server: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server`` (a URL)."""
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def prepare() -> str:
    """Point DATABASE_URL at a fresh, migrated database and return its URL: a copy of
    the template of ``python -m benchmarks`` when there is one, else a new database on
    the ``DATABASE_URL`` server, else a throwaway embedded cluster (migrated here)."""
    server = os.environ.get("DATABASE_URL")
    template = os.environ.get(TEMPLATE_ENV) if server else None
    if server:
        name = f"agent_app_bench_{secrets.token_hex(4)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        _admin(server, f'CREATE DATABASE "{name}"{copy}')
        atexit.register(_admin, server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        url = database_on(server, name)
    else:
        from agent_app.database import embedded_url, scratch_pgdata

        url = embedded_url(scratch_pgdata("agent_app_bench_"), throwaway=True)
    os.environ["DATABASE_URL"] = url
    os.chdir(REPO)
    if not template:
        migrate()
    return url


def make_template(server: str) -> str:
    """Create and migrate the template database on ``server`` (in a child process, so
    no connection to it stays open); returns its name."""
    import subprocess

    name = f"agent_app_bench_template_{secrets.token_hex(4)}"
    _admin(server, f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": database_on(server, name)}
    env.pop(TEMPLATE_ENV, None)
    subprocess.run(
        [sys.executable, "-c", "from benchmarks.common import migrate; migrate()"],
        cwd=REPO, env=env, check=True,
    )  # fmt: skip
    return name


def drop_database(server: str, name: str) -> None:
    _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate() -> None:
    """Run every migration forwards on the ``DATABASE_URL`` database (quietly)."""
    os.chdir(REPO)
    from piccolo.apps.migrations.commands.forwards import run_forwards

    async def forwards() -> None:
        response = await run_forwards(app_name="all", migration_id="all", fake=False)
        assert response.success, response.message

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        asyncio.run(forwards())


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def report(path: str | None, rows: list[tuple[str, float, str, bool | None]]) -> None:
    """Append summary rows (figure, value, target, met?) for ``python -m benchmarks``.
    ``met`` is None for figures that have no target (references, best cases)."""
    import json

    for name, value, target, _met in rows:
        print(f"summary: {name}: {value:.2f} (target {target})")
    if path:
        with open(path, "a") as f:
            for name, value, target, met in rows:
                f.write(json.dumps({"figure": name, "value": value, "target": target,
                                    "met": met}) + "\n")  # fmt: skip
