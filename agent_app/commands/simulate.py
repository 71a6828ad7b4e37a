"""``piccolo agent_app simulate``: the main job - whole feature runs through the worker API."""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_app import db

if TYPE_CHECKING:
    from agent_app.simulation import Stats

COMMAND_NAMES = ("simulate", "sim")
OPTIONS = ("runs", "workers", "seed")
#: Connections one worker may hold at once: two from the pool (an agent waiting for a
#: person's answer while the person answers) and one listening for the answer.
CONNECTIONS_PER_WORKER = 3
POOL_SPARE = 2


class UsageError(Exception):
    """A command-line mistake; its message is the one line the user sees."""


@dataclass(frozen=True)
class Options:
    runs: int = 20
    workers: int = 4
    seed: int = 1


def parse(argv: list[str]) -> Options:
    """The options after ``simulate``: ``--name=value`` or ``--name value``, each at most
    once. Anything else (an unknown option, a bare value, a missing or non-integer
    value, runs < 1, workers < 1) raises :class:`UsageError` naming the option."""
    values: dict[str, int] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise UsageError(f"unexpected argument {arg!r}: give options as --name=value")
        name, eq, raw = arg[2:].partition("=")
        if name not in OPTIONS:
            known = ", ".join(f"--{o}" for o in OPTIONS)
            raise UsageError(f"unknown option --{name} (simulate takes {known})")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise UsageError(f"--{name} needs a value, e.g. --{name}=4")
            i += 1
            raw = argv[i]
        if name in values:
            raise UsageError(f"--{name} given twice")
        try:
            values[name] = int(raw)
        except ValueError:
            raise UsageError(f"--{name} must be a whole number, got {raw!r}") from None
        i += 1
    options = Options(**values)
    if options.runs < 1:
        raise UsageError(f"--runs must be at least 1, got {options.runs}")
    if options.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {options.workers}")
    return options


def _own_argv() -> list[str] | None:
    """The arguments after ``agent_app simulate`` on the command line, read here because
    targ (Piccolo's CLI) fills parameters by position from ``--name value`` and silently
    drops the name. None when not run from the command line."""
    args = sys.argv[1:]
    for i in range(len(args) - 1):
        if args[i] == "agent_app" and args[i + 1] in COMMAND_NAMES:
            return [a for a in args[i + 2 :] if a != "--trace"]
    return None


async def max_workers() -> int:
    """How many workers the server's free connections allow (max_connections minus the
    superuser reserve minus the connections open now)."""
    import asyncpg

    conn = await asyncpg.connect(**db.connect_kwargs())
    try:
        free = await conn.fetchval(
            "SELECT current_setting('max_connections')::int "
            "- current_setting('superuser_reserved_connections')::int "
            "- (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        )
    finally:
        await conn.close()
    return max(0, (free - POOL_SPARE) // CONNECTIONS_PER_WORKER)


def _fail(message: str, code: int = 2) -> None:
    print(f"simulate: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _stop_on_ctrl_c() -> None:
    """The first Ctrl-C cancels the simulation, which cleans up; a later one says once
    that the clean-up is still running instead of breaking into it (or into the embedded
    server's exit) with a traceback. Replaces asyncio.run's own handler, which raises
    KeyboardInterrupt on the second press."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    presses = 0

    def on_sigint(_signum: int, _frame: Any) -> None:
        nonlocal presses
        presses += 1
        if presses == 1 and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        elif presses == 2:
            sys.stderr.write("\nstill cleaning up; exiting when the database is consistent\n")
            sys.stderr.flush()

    signal.signal(signal.SIGINT, on_sigint)


def _cleanup_outcome(stats: Stats) -> str:
    if stats.cleanup_failures:
        return (
            f"{stats.cleanup_failures} run(s) in progress could not be cleaned up; "
            "see the errors above, then cancel them from the console"
        )
    return "runs in progress were failed, the database is consistent"


async def simulate(runs: str = "20", workers: str = "4", seed: str = "1", **unknown: Any) -> None:
    """
    Drive feature runs end to end through the worker API, with concurrent workers, on
    the embedded PostgreSQL unless DATABASE_URL says otherwise (migrating first if
    needed), then print what happened. Options: --runs=N (at least 1), --workers=N
    (1 up to what the server's free connections allow), --seed=N; "--name value" works
    too. Ctrl-C, or a crash, stops cleanly: runs in progress are failed as
    "interrupted", their invocations closed, agents finished and budgets returned.

    :param runs:
        How many feature runs (at least 1).
    :param workers:
        How many runs proceed at once (1 up to the server's free connections / 3).
    :param seed:
        The same seed tells the same story.
    """
    argv = _own_argv()
    try:
        if argv is None:  # called from Python: the parameters are the options
            argv = [
                f"--{k}={v}" for k, v in {"runs": runs, "workers": workers, "seed": seed}.items()
            ]
            argv += [f"--{k}={v}" for k, v in unknown.items()]
        options = parse(argv)
    except UsageError as e:
        _fail(str(e))
        return

    from piccolo.apps.migrations.commands.forwards import run_forwards

    from agent_app.simulation import Stats
    from agent_app.simulation import simulate as run_simulation

    with contextlib.redirect_stdout(io.StringIO()):
        migrated = await run_forwards(app_name="all", migration_id="all", fake=False)
    if not migrated.success:
        _fail(f"migrations failed: {migrated.message}", 1)
    allowed = await max_workers()
    if options.workers > allowed:
        _fail(
            f"--workers={options.workers} is more than the server's free connections allow "
            f"({allowed}: each worker needs {CONNECTIONS_PER_WORKER}; raise max_connections "
            "or use fewer workers)"
        )
    await db.start_pool(min_size=1, max_size=options.workers * 2 + POOL_SPARE)

    def progress(done: int, total: int) -> None:
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    print(
        f"simulating {options.runs} feature runs with {options.workers} workers "
        f"(seed {options.seed})",
        flush=True,
    )
    progress(0, options.runs)
    _stop_on_ctrl_c()
    stats = Stats()
    try:
        await run_simulation(
            options.runs, options.workers, options.seed, progress=progress, stats=stats
        )
    except asyncio.CancelledError:
        # Ctrl-C: every run in progress has been failed as "interrupted", its agents
        # finished and budgets returned; claimed messages were acked or left to expire.
        print("\n\ninterrupted: " + _cleanup_outcome(stats))
        print(stats.summary(), flush=True)
        sys.exit(130)
    except Exception as e:
        print(stats.summary(), flush=True)
        _fail(f"crashed: {type(e).__name__}: {e} ({_cleanup_outcome(stats)})", 1)
    finally:
        await db.close_pool()
    print("\n" + stats.summary())
