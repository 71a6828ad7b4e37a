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

_TEMPLATE = '''"""{description_doc}

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


def _docstring_text(description: str) -> str:
    """``description`` as the body of a triple-quoted string literal: backslashes and
    double quotes escaped, control characters as escapes, so it can neither end the
    docstring, start an escape sequence nor hold a byte Python refuses in source (the
    exact text is in ``DESCRIPTION``, written with ``repr``)."""
    text = description.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(
        c if c in "\n\t" or (c.isprintable() and c not in "\x85\u2028\u2029") else repr(c)[1:-1]
        for c in text
    )


def write_raw_migration(
    forwards: list[str], backwards: list[str], description: str, directory: Path = MIGRATIONS_DIR
) -> Path:
    """Write a new raw migration running ``forwards`` (and ``backwards`` to undo it).

    ``description`` may be any text: it is written as a ``repr`` literal
    (``DESCRIPTION``) and, escaped, as the module docstring, so it never runs as code
    nor breaks the file."""
    now = datetime.datetime.now()
    migration_id = now.strftime("%Y-%m-%dT%H:%M:%S:%f")
    path = directory / f"agent_app_{now.strftime('%Y_%m_%dt%H_%M_%S_%f')}.py"
    path.write_text(
        _TEMPLATE.format(
            description_doc=_docstring_text(description),
            description_repr=repr(description),
            migration_id=migration_id,
            version=PICCOLO_VERSION,
            forwards=pprint.pformat(forwards, width=100),
            backwards=pprint.pformat(backwards, width=100),
        )
    )
    return path
