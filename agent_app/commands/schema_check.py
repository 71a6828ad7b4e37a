"""``piccolo agent_app schema_check``: review schema changes before they bite."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

#: Options the command takes; ``-`` and ``_`` are the same letter in their names.
OPTIONS = ("write_migration", "description", "live")


def _truth(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "t", "1", "yes")


def parse_options(
    write_migration: Any, description: Any, live: Any, options: dict[str, Any]
) -> tuple[bool, str, bool]:
    """The command's options, whichever spelling (``--write-migration`` or
    ``--write_migration``) was used; ValueError names an unknown one."""
    values = {"write_migration": write_migration, "description": description, "live": live}
    for name, value in options.items():
        key = name.replace("-", "_")
        if key not in OPTIONS:
            known = ", ".join(f"--{o.replace('_', '-')}" for o in OPTIONS)
            raise ValueError(f"unknown option --{name} (schema_check takes {known})")
        values[key] = value
    return _truth(values["write_migration"]), str(values["description"]), _truth(values["live"])


#: The words the command is called by, after ``piccolo agent_app``.
COMMAND_NAMES = ("schema_check", "check")


def stray_values(argv: Sequence[str]) -> list[str]:
    """Words after ``piccolo agent_app schema_check`` that are not ``--options``.

    targ binds such a word to the command's first parameters in order (``--live
    false`` would set write_migration and leave live on), so the command refuses
    them instead: options take their value after ``=``."""
    for i, word in enumerate(argv[:-1]):
        if word == "agent_app" and argv[i + 1] in COMMAND_NAMES:
            return [w for w in argv[i + 2 :] if not w.startswith("--")]
    return []


def _fail(message: str) -> NoReturn:
    print(f"schema_check: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


async def schema_check(
    write_migration: bool = False, description: str = "", live: bool = True, **options: Any
) -> None:
    """
    Compare the whole catalog of schema agent (columns with types, defaults and
    identity; constraints by full definition; indexes and their validity; triggers
    and whether they are enabled; functions with arguments, security, settings and
    body; views, sequences, policies, row level security, rules, types, comments,
    anything extra) between a scratch database built from the migration files, one
    built from the code, and the live database. Prints every difference; exits 1 if
    there is any, 0 with one line if there is none. For the live database it prints
    the SQL that would bring it back to the migrations' state (never frozen).

    :param write_migration:
        Write the next raw migration from the code against the migration files
        (never from the live database): forwards and backwards, every name quoted,
        proven on a scratch database before it is saved. Also --write-migration.
    :param description:
        The new migration's description (with --write-migration).
    :param live:
        Compare the live database too (--live=false: code and migrations only).

    Options take their value after ``=`` (``--description="two words"``); a value
    after a space is refused. Exit 2 when the check cannot be made (an unknown
    option, a role without CREATEDB, a scratch database that does not build).
    Interrupted (SIGINT) or terminated (SIGTERM), it drops its scratch databases.
    """
    stray = stray_values(sys.argv)
    if stray:
        _fail(
            f"unexpected value(s) {', '.join(map(repr, stray))}: give options as "
            "--name=value (e.g. --live=false, --description='two words')"
        )
    try:
        write_migration, description, live = parse_options(
            write_migration, description, live, options
        )
    except ValueError as e:
        _fail(str(e))

    from agent_app import schema_check as sc

    # SIGTERM (CI timeouts, `timeout`, `kill`) cancels the check like SIGINT does, so
    # the scratch databases are dropped on the way out.
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def _terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, _terminate)
    try:
        await _check(sc, write_migration, description, live)
    except sc.SchemaCheckError as e:
        _fail(str(e))
    except asyncio.CancelledError:
        if terminated:
            print("schema_check: terminated", file=sys.stderr, flush=True)
            sys.exit(128 + signal.SIGTERM)
        raise
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


async def _check(sc: ModuleType, write_migration: bool, description: str, live: bool) -> None:

    config = sc.live_config()
    # Piccolo's differ is CPU-bound: it runs beside the scratch databases being built.
    piccolo_drift = asyncio.create_task(asyncio.to_thread(asyncio.run, sc.piccolo_drift()))
    report = sc.Report()
    written = None
    async with sc.scratch_pair(config) as scratch:
        report.piccolo = await piccolo_drift
        report.code = sc.diff(scratch.migrations, scratch.code, "migrations", "code")
        if live:
            import asyncpg

            conn = await asyncpg.connect(**config)
            try:
                report.live, report.live_fix = await sc.live_drift(conn, scratch)
                if report.live:
                    report.pending = await sc.pending_migrations(conn)
            finally:
                await conn.close()
        print(report.render(), flush=True)
        if write_migration:
            if report.piccolo:
                print(
                    "\nno migration written: run `piccolo migrations new agent_app --auto` "
                    "for the Table changes Piccolo sees first, then this again."
                )
                sys.exit(1)
            try:
                written = await sc.write_migration(
                    scratch, description or "Schema changes found by schema_check"
                )
            except sc.MigrationRefused as e:
                print(f"\n{e}")
                sys.exit(1)
            if written is None:
                print("\nno migration written: the code and the migration files agree.")
            else:
                print(
                    f"\nwrote {written}\n(proven on a scratch database: forwards reaches the "
                    "code's catalog, backwards the migrations'; run `piccolo migrations "
                    "forwards agent_app` to apply it)"
                )
    if report.live or report.piccolo or (report.code and written is None):
        sys.exit(1)
