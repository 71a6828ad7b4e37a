"""``piccolo agent_app schema_check``: review schema changes before they bite."""

from __future__ import annotations

import sys

import asyncpg

from agent_app import db
from agent_app.migration_writer import write_raw_migration
from agent_app.schema_check import database_drift, migration_drift, render


async def schema_check(write_migration: bool = False, description: str = "") -> None:
    """
    Compare the Table classes with the migration files, and the live database
    with the code; exit 1 with a report if anything differs, 0 if nothing does.

    Reported: a model change with no migration; a missing or extra table,
    column, constraint, index or trigger; a column type or nullability
    difference; an enum CHECK whose values differ from its Python enum; a
    foreign key's delete behaviour; a trigger function whose body changed.
    The report ends with the SQL that would fix the database drift.

    :param write_migration:
        Freeze that SQL into a new raw migration of agent_app.
    :param description:
        The new migration's description (with --write-migration).
    """
    engine = db.engine()
    drifts = await migration_drift()
    conn = await asyncpg.connect(**engine.config)
    try:
        drifts += await database_drift(conn)
    finally:
        await conn.close()
    print(render(drifts))
    fixes = [sql for d in drifts for sql in d.fix]
    if write_migration and fixes:
        path = write_raw_migration(fixes, [], description or "Fix drift reported by schema_check")
        print(f"\nwrote {path}")
    if drifts:
        sys.exit(1)
