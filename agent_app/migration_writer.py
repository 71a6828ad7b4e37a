"""Freezes SQL statements into a new Piccolo migration of the agent_app app.

Piccolo's auto-migrations never see indexes, triggers or functions; their
changes go into raw migrations whose SQL is written out literally, so the
migration keeps doing exactly what it did when it landed, whatever the code
says later. ``schema_check --write-migration`` uses this to turn a drift it
found into the migration that fixes it.
"""

from __future__ import annotations

import datetime
import pprint
from pathlib import Path

from piccolo import __VERSION__ as PICCOLO_VERSION

MIGRATIONS_DIR = Path(__file__).parent / "piccolo_migrations"

_TEMPLATE = '''"""{description}

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "{migration_id}"
VERSION = "{version}"
DESCRIPTION = {description_repr}

FORWARDS = {forwards}

BACKWARDS = {backwards}


async def _run(statements: list[str]) -> None:
    engine = engine_finder()
    assert engine is not None
    for statement in statements:
        await engine.run_ddl(statement)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="agent_app", description=DESCRIPTION)

    async def run_forwards() -> None:
        await _run(FORWARDS)

    async def run_backwards() -> None:
        await _run(BACKWARDS)

    manager.add_raw(run_forwards)
    manager.add_raw_backwards(run_backwards)
    return manager
'''


def write_raw_migration(
    forwards: list[str], backwards: list[str], description: str, directory: Path = MIGRATIONS_DIR
) -> Path:
    """Write a new raw migration running ``forwards`` (and ``backwards`` to undo it)."""
    now = datetime.datetime.now()
    migration_id = now.strftime("%Y-%m-%dT%H:%M:%S:%f")
    path = directory / f"agent_app_{now.strftime('%Y_%m_%dt%H_%M_%S_%f')}.py"
    path.write_text(
        _TEMPLATE.format(
            description=description,
            description_repr=repr(description),
            migration_id=migration_id,
            version=PICCOLO_VERSION,
            forwards=pprint.pformat(forwards, width=100),
            backwards=pprint.pformat(backwards, width=100),
        )
    )
    return path
