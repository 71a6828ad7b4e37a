"""messages: vacuum after ~1,000 finished messages, unthrottled, so claims do not walk a long head of dead index entries

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T22:36:48:254961"
VERSION = "1.38.0"
DESCRIPTION = 'messages: vacuum after ~1,000 finished messages, unthrottled, so claims do not walk a long head of dead index entries'

FORWARDS = ['ALTER TABLE agent.messages SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold '
 '= 2000, autovacuum_vacuum_cost_delay = 0);']

BACKWARDS = ['ALTER TABLE agent.messages RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, '
 'autovacuum_vacuum_cost_delay);']


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
