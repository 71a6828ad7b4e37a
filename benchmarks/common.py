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


def prepare() -> str:
    """Point DATABASE_URL at a fresh database, migrate it, and return its URL."""
    server = os.environ.get("DATABASE_URL")
    if server:
        name = f"agent_app_bench_{secrets.token_hex(4)}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(server)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        atexit.register(
            lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        )
        url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    else:
        from agent_app.database import embedded_url, scratch_pgdata

        url = embedded_url(scratch_pgdata("agent_app_bench_"), throwaway=True)
    os.environ["DATABASE_URL"] = url
    os.chdir(REPO)

    from piccolo.apps.migrations.commands.forwards import run_forwards

    async def migrate() -> None:
        response = await run_forwards(app_name="all", migration_id="all", fake=False)
        assert response.success, response.message

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        asyncio.run(migrate())
    return url


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
