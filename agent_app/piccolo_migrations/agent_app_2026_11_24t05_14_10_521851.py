"""messages_recipient: back to pending with a change of run, for a finished agent, is cancelled

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-24T05:14:10:521851"
VERSION = "1.38.0"
DESCRIPTION = 'messages_recipient: back to pending with a change of run, for a finished agent, is cancelled'

FORWARDS = ['SET LOCAL check_function_bodies = off',
 'CREATE OR REPLACE FUNCTION agent.messages_recipient()\n'
 ' RETURNS trigger\n'
 ' LANGUAGE plpgsql\n'
 " SET enable_seqscan TO 'off'\n"
 'AS $function$\n'
 'DECLARE\n'
 '    recipient record;\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' AND NEW.recipient_id = OLD.recipient_id\n"
 '       AND NEW.run_id IS NOT DISTINCT FROM OLD.run_id THEN\n'
 '        -- A message coming back to pending (a retry, a released or expired claim, a\n'
 '        -- redrive) for an agent that has finished is cancelled instead, as finish\n'
 '        -- cancels the pending ones: a finished agent never gets a message again.\n'
 "        IF NEW.status = 'pending' AND OLD.status <> 'pending' AND EXISTS (\n"
 '            SELECT 1 FROM agent.agents\n'
 "             WHERE id = NEW.recipient_id AND status IN ('completed', 'failed', 'terminated')) "
 'THEN\n'
 "            NEW.status := 'cancelled';\n"
 '            NEW.finished_at := now();\n'
 '            NEW.claimed_by := NULL;\n'
 '            NEW.claimed_at := NULL;\n'
 '            NEW.lease_expires_at := NULL;\n'
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '    -- FOR SHARE: the recipient cannot finish while a message to it is being added\n'
 '    -- (finish then cancels it with the rest), and a finished one takes no more.\n'
 '    SELECT status, run_id INTO recipient\n'
 '      FROM agent.agents WHERE id = NEW.recipient_id FOR SHARE;\n'
 '    IF NOT FOUND THEN\n'
 '        RETURN NEW;  -- the foreign key reports a missing recipient\n'
 '    END IF;\n'
 "    IF (TG_OP = 'INSERT' OR NEW.recipient_id <> OLD.recipient_id)\n"
 "       AND recipient.status IN ('completed', 'failed', 'terminated') THEN\n"
 "        RAISE EXCEPTION 'recipient_live: agent % is %; it takes no more messages',\n"
 '            NEW.recipient_id, recipient.status\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'recipient_live',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    -- Back to pending for a finished agent while the run changes too: cancelled, as above.\n'
 "    IF TG_OP = 'UPDATE' AND NEW.status = 'pending' AND OLD.status <> 'pending'\n"
 "       AND recipient.status IN ('completed', 'failed', 'terminated') THEN\n"
 "        NEW.status := 'cancelled';\n"
 '        NEW.finished_at := now();\n'
 '        NEW.claimed_by := NULL;\n'
 '        NEW.claimed_at := NULL;\n'
 '        NEW.lease_expires_at := NULL;\n'
 '    END IF;\n'
 "    -- A message belongs to its recipient's run unless it names one, so deleting the run\n"
 '    -- deletes it too.\n'
 '    IF NEW.run_id IS NULL THEN\n'
 '        NEW.run_id := recipient.run_id;\n'
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$function$']

BACKWARDS = ['SET LOCAL check_function_bodies = off',
 'CREATE OR REPLACE FUNCTION agent.messages_recipient()\n'
 ' RETURNS trigger\n'
 ' LANGUAGE plpgsql\n'
 " SET enable_seqscan TO 'off'\n"
 'AS $function$\n'
 'DECLARE\n'
 '    recipient record;\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' AND NEW.recipient_id = OLD.recipient_id\n"
 '       AND NEW.run_id IS NOT DISTINCT FROM OLD.run_id THEN\n'
 '        -- A message coming back to pending (a retry, a released or expired claim, a\n'
 '        -- redrive) for an agent that has finished is cancelled instead, as finish\n'
 '        -- cancels the pending ones: a finished agent never gets a message again.\n'
 "        IF NEW.status = 'pending' AND OLD.status <> 'pending' AND EXISTS (\n"
 '            SELECT 1 FROM agent.agents\n'
 "             WHERE id = NEW.recipient_id AND status IN ('completed', 'failed', 'terminated')) "
 'THEN\n'
 "            NEW.status := 'cancelled';\n"
 '            NEW.finished_at := now();\n'
 '            NEW.claimed_by := NULL;\n'
 '            NEW.claimed_at := NULL;\n'
 '            NEW.lease_expires_at := NULL;\n'
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '    -- FOR SHARE: the recipient cannot finish while a message to it is being added\n'
 '    -- (finish then cancels it with the rest), and a finished one takes no more.\n'
 '    SELECT status, run_id INTO recipient\n'
 '      FROM agent.agents WHERE id = NEW.recipient_id FOR SHARE;\n'
 '    IF NOT FOUND THEN\n'
 '        RETURN NEW;  -- the foreign key reports a missing recipient\n'
 '    END IF;\n'
 "    IF (TG_OP = 'INSERT' OR NEW.recipient_id <> OLD.recipient_id)\n"
 "       AND recipient.status IN ('completed', 'failed', 'terminated') THEN\n"
 "        RAISE EXCEPTION 'recipient_live: agent % is %; it takes no more messages',\n"
 '            NEW.recipient_id, recipient.status\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'recipient_live',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    -- A message belongs to its recipient's run unless it names one, so deleting the run\n"
 '    -- deletes it too.\n'
 '    IF NEW.run_id IS NULL THEN\n'
 '        NEW.run_id := recipient.run_id;\n'
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$function$']


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
