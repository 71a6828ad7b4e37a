"""messages: the recipient trigger runs on new messages, a change of recipient or run
and a return to pending only (a claim or an ack no longer calls the function)

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-24T04:52:22:599087"
VERSION = "1.38.0"
DESCRIPTION = 'messages_recipient trigger: not on claims and acks'

FORWARDS = ['DROP TRIGGER "messages_recipient" ON "agent"."messages"',
 'CREATE TRIGGER messages_recipient BEFORE INSERT ON agent.messages FOR EACH ROW EXECUTE FUNCTION '
 'agent.messages_recipient()',
 'CREATE TRIGGER messages_recipient_change BEFORE UPDATE OF recipient_id, run_id, status ON '
 'agent.messages FOR EACH ROW WHEN (((new.recipient_id IS DISTINCT FROM old.recipient_id) OR '
 "(new.run_id IS DISTINCT FROM old.run_id) OR (((new.status)::text = 'pending'::text) AND "
 "((old.status)::text IS DISTINCT FROM 'pending'::text)))) EXECUTE FUNCTION "
 'agent.messages_recipient()']

BACKWARDS = ['DROP TRIGGER "messages_recipient" ON "agent"."messages"',
 'DROP TRIGGER "messages_recipient_change" ON "agent"."messages"',
 'CREATE TRIGGER messages_recipient BEFORE INSERT OR UPDATE OF recipient_id, run_id, status ON '
 'agent.messages FOR EACH ROW EXECUTE FUNCTION agent.messages_recipient()']


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
