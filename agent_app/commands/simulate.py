"""``piccolo agent_app simulate``: the main job - whole feature runs through the worker API."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys

from agent_app import db


async def simulate(runs: int = 20, workers: int = 4, seed: int = 1) -> None:
    """
    Drive feature runs end to end through the worker API, with concurrent workers, on
    the embedded PostgreSQL unless DATABASE_URL says otherwise (migrating first if
    needed), then print what happened. Ctrl-C stops cleanly: runs in progress are
    failed as "interrupted", their agents finished and budgets returned.

    :param runs:
        How many feature runs.
    :param workers:
        How many runs proceed at once.
    :param seed:
        The same seed tells the same story.
    """
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from agent_app.simulation import Stats
    from agent_app.simulation import simulate as run_simulation

    with contextlib.redirect_stdout(io.StringIO()):
        migrated = await run_forwards(app_name="all", migration_id="all", fake=False)
    if not migrated.success:
        sys.exit(f"migrations failed: {migrated.message}")
    await db.start_pool(min_size=1, max_size=workers * 2 + 2)

    def progress(done: int, total: int) -> None:
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    print(f"simulating {runs} feature runs with {workers} workers (seed {seed})", flush=True)
    progress(0, runs)
    stats = Stats()
    try:
        await run_simulation(runs, workers, seed, progress=progress, stats=stats)
    except asyncio.CancelledError:
        # Ctrl-C: every run in progress has been failed as "interrupted", its agents
        # finished and budgets returned; claimed messages were acked or left to expire.
        print("\n\ninterrupted: runs in progress were failed, the database is consistent")
        print(stats.summary())
        sys.exit(130)
    finally:
        await db.close_pool()
    print("\n" + stats.summary())
