"""The tree's rules: closure rows are neither deleted nor truncated by hand (cascades pass); a message to a finished agent is refused (recipient_live) and takes its recipient's run

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T22:35:40:397768"
VERSION = "1.38.0"
DESCRIPTION = "The tree's rules: closure rows are neither deleted nor truncated by hand (cascades pass); a message to a finished agent is refused (recipient_live) and takes its recipient's run"

FORWARDS = ['CREATE OR REPLACE FUNCTION agent.hierarchies_guard() RETURNS trigger LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'BEGIN\n'
 "    IF TG_OP = 'DELETE' THEN\n"
 '        -- A closure row goes with its agents: deleting an agent (or its run) cascades\n'
 '        -- here once the agent is gone. While both agents exist, it is a delete by hand.\n'
 '        IF EXISTS (SELECT 1 FROM agent.agents WHERE id = OLD.child_id)\n'
 '           AND EXISTS (SELECT 1 FROM agent.agents WHERE id = OLD.parent_id) THEN\n'
 "            RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; "
 "delete agents instead (DELETE of % -> % by hand)', OLD.parent_id, OLD.child_id USING ERRCODE = "
 "'check_violation', CONSTRAINT = 'hierarchies_derived', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        RETURN OLD;\n'
 '    END IF;\n'
 '    -- Depth 1 is this trigger itself: the write came from outside agents_closure.\n'
 '    IF pg_trigger_depth() < 2 THEN\n'
 "        RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; insert "
 "agents instead (% % by hand)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'check_violation', "
 "CONSTRAINT = 'hierarchies_derived', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'DROP TRIGGER IF EXISTS hierarchies_guard ON agent.hierarchies;',
 'CREATE TRIGGER hierarchies_guard BEFORE INSERT OR UPDATE OR DELETE ON agent.hierarchies FOR EACH '
 'ROW EXECUTE FUNCTION agent.hierarchies_guard();',
 'CREATE OR REPLACE FUNCTION agent.hierarchies_truncate_guard() RETURNS trigger LANGUAGE plpgsql '
 'AS $fn$\n'
 'BEGIN\n'
 '    -- After the truncation: TRUNCATE agents ... CASCADE emptied both tables and passes;\n'
 '    -- the closure emptied while agents remain would lose the tree, so it is refused.\n'
 '    IF EXISTS (SELECT 1 FROM agent.agents) THEN\n'
 "        RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; % % by "
 "hand would lose the tree of the agents that remain', TG_OP, TG_TABLE_NAME USING ERRCODE = "
 "'check_violation', CONSTRAINT = 'hierarchies_derived', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NULL;\n'
 'END\n'
 '$fn$;',
 'CREATE TRIGGER hierarchies_truncate_guard AFTER TRUNCATE ON agent.hierarchies FOR EACH STATEMENT '
 'EXECUTE FUNCTION agent.hierarchies_truncate_guard();',
 'CREATE OR REPLACE FUNCTION agent.messages_recipient() RETURNS trigger LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    recipient record;\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' AND NEW.recipient_id = OLD.recipient_id\n"
 '       AND NEW.run_id IS NOT DISTINCT FROM OLD.run_id THEN\n'
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
 "        RAISE EXCEPTION 'recipient_live: agent % is %; it takes no more messages', "
 "NEW.recipient_id, recipient.status USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'recipient_live', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    -- A message belongs to its recipient's run unless it names one, so deleting the run\n"
 '    -- deletes it too.\n'
 '    IF NEW.run_id IS NULL THEN\n'
 '        NEW.run_id := recipient.run_id;\n'
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE TRIGGER messages_recipient BEFORE INSERT OR UPDATE OF recipient_id, run_id ON '
 'agent.messages FOR EACH ROW EXECUTE FUNCTION agent.messages_recipient();']

BACKWARDS = ['DROP TRIGGER IF EXISTS messages_recipient ON agent.messages;',
 'DROP FUNCTION IF EXISTS agent.messages_recipient();',
 'DROP TRIGGER IF EXISTS hierarchies_truncate_guard ON agent.hierarchies;',
 'DROP FUNCTION IF EXISTS agent.hierarchies_truncate_guard();',
 'DROP TRIGGER IF EXISTS hierarchies_guard ON agent.hierarchies;',
 'CREATE TRIGGER hierarchies_guard BEFORE INSERT OR UPDATE ON agent.hierarchies FOR EACH ROW '
 'EXECUTE FUNCTION agent.hierarchies_guard();',
 'CREATE OR REPLACE FUNCTION agent.hierarchies_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$\n'
 'BEGIN\n'
 '    -- Depth 1 is this trigger itself: the write came from outside agents_closure.\n'
 '    IF pg_trigger_depth() < 2 THEN\n'
 "        RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; insert "
 "agents instead (% % by hand)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'check_violation', "
 "CONSTRAINT = 'hierarchies_derived', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;']


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
