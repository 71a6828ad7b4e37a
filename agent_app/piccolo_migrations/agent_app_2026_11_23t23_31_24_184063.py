"""Budget reservations as rows: triggers keep the books from them (held, committed, released, expired), expiry without a janitor, reservation_act / budget_books, used and reserved written by triggers only

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T23:31:24:184063"
VERSION = "1.38.0"
DESCRIPTION = 'Budget reservations as rows: triggers keep the books from them (held, committed, released, expired), expiry without a janitor, reservation_act / budget_books, used and reserved written by triggers only'

FORWARDS = ['CREATE INDEX budget_reservations_budget_idx ON agent.budget_reservations (budget_id, state, '
 'lease_expires_at);',
 'CREATE OR REPLACE FUNCTION agent.return_budgets(p_agent uuid, p_parent uuid) RETURNS void '
 'LANGUAGE plpgsql SET enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    b record;\n'
 'BEGIN\n'
 "    -- The lock order: the parent's budget rows, then the agent's, each by resource, then\n"
 '    -- their reservations.\n'
 '    IF p_parent IS NOT NULL THEN\n'
 '        PERFORM 1 FROM agent.budgets WHERE agent_id = p_parent ORDER BY resource FOR UPDATE;\n'
 '    END IF;\n'
 '    FOR b IN SELECT id, resource, allocated, used\n'
 '               FROM agent.budgets WHERE agent_id = p_agent\n'
 '              ORDER BY resource FOR UPDATE\n'
 '    LOOP\n'
 '        -- Held reservations end with the agent (their trigger gives the amounts back):\n'
 '        -- expired if their lease ended, else released.\n'
 '        UPDATE agent.budget_reservations\n'
 "           SET state = CASE WHEN lease_expires_at <= now() THEN 'expired' ELSE 'released' END\n"
 "         WHERE budget_id = b.id AND state = 'held';\n"
 '        -- Amounts reserved before reservations were rows have none to release.\n'
 '        UPDATE agent.budgets SET reserved = 0 WHERE id = b.id AND reserved <> 0;\n'
 '        IF p_parent IS NOT NULL THEN\n'
 '            UPDATE agent.budgets\n'
 '               SET reserved = reserved - b.allocated, used = used + b.used\n'
 '             WHERE agent_id = p_parent AND resource = b.resource;\n'
 '        END IF;\n'
 '    END LOOP;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.budgets_guard() RETURNS trigger LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    owner record;\n'
 '    parent_budget record;\n'
 '    delta numeric;\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' AND (NEW.agent_id <> OLD.agent_id OR NEW.resource <> OLD.resource) THEN\n"
 "        RAISE EXCEPTION 'budget_identity_fixed: budget % belongs to agent % for %; it cannot "
 "move', OLD.id, OLD.agent_id, OLD.resource USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'budget_identity_fixed', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '\n'
 '    SELECT status, parent_id INTO owner FROM agent.agents WHERE id = NEW.agent_id;\n'
 '    IF NOT FOUND THEN\n'
 '        RETURN NEW;  -- the foreign key reports a missing agent\n'
 '    END IF;\n'
 '\n'
 "    IF owner.status IN ('completed', 'failed', 'terminated') THEN\n"
 "        IF TG_OP = 'INSERT' OR NEW.allocated <> OLD.allocated OR NEW.used <> OLD.used\n"
 '           OR NEW.reserved > OLD.reserved THEN\n'
 "            RAISE EXCEPTION 'budget_closed: agent % is %; its % budget was returned to its "
 "parent', NEW.agent_id, owner.status, NEW.resource USING ERRCODE = 'check_violation', CONSTRAINT "
 "= 'budget_closed', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '    END IF;\n'
 '\n'
 '    -- used and reserved are kept by triggers only (depth 1 is this trigger itself: the\n'
 '    -- write came from outside them), so the books always equal what the rows say.\n'
 '    IF pg_trigger_depth() < 2 AND (CASE TG_OP\n'
 "        WHEN 'INSERT' THEN NEW.used <> 0 OR NEW.reserved <> 0\n"
 '        ELSE NEW.used <> OLD.used OR NEW.reserved <> OLD.reserved END) THEN\n'
 "        RAISE EXCEPTION 'budget_books_derived: agent %''s % budget: used and reserved are kept "
 "from budget_reservations and child allocations; a write by hand asked for used %, reserved %', "
 "NEW.agent_id, NEW.resource, NEW.used, NEW.reserved USING ERRCODE = 'check_violation', CONSTRAINT "
 "= 'budget_books_derived', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    IF owner.status IN ('completed', 'failed', 'terminated') THEN\n"
 '        RETURN NEW;\n'
 '    END IF;\n'
 '\n'
 "    IF TG_OP = 'INSERT' THEN\n"
 '        -- Live children budgeting this resource got their allocations while this budget\n'
 '        -- did not exist: hold them now, so reserved stays what the rows say (and their\n'
 '        -- return at finish cannot take reserved below 0).\n'
 '        PERFORM 1 FROM agent.budgets c JOIN agent.agents a ON a.id = c.agent_id\n'
 "          WHERE a.parent_id = NEW.agent_id AND a.status NOT IN ('completed', 'failed', "
 "'terminated')\n"
 '            AND c.resource = NEW.resource\n'
 '          ORDER BY a.depth_level, a.id FOR SHARE OF c;\n'
 '        NEW.reserved := (SELECT coalesce(sum(c.allocated), 0)\n'
 '                           FROM agent.budgets c JOIN agent.agents a ON a.id = c.agent_id\n'
 "                          WHERE a.parent_id = NEW.agent_id AND a.status NOT IN ('completed', "
 "'failed', 'terminated')\n"
 '                            AND c.resource = NEW.resource);\n'
 '    END IF;\n'
 '\n'
 "    delta := NEW.allocated - CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE OLD.allocated END;\n"
 '    IF owner.parent_id IS NULL OR delta = 0 THEN\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '    SELECT id, allocated, used, reserved INTO parent_budget\n'
 '      FROM agent.budgets\n'
 '     WHERE agent_id = owner.parent_id AND resource = NEW.resource\n'
 '       FOR UPDATE;\n'
 '    IF NOT FOUND THEN\n'
 '        RETURN NEW;  -- the parent does not budget this resource: nothing to carve from\n'
 '    END IF;\n'
 '    IF delta > parent_budget.allocated - parent_budget.used - parent_budget.reserved THEN\n'
 "        RAISE EXCEPTION 'budget_limits: agent % asked its parent % for % %, % left', "
 'NEW.agent_id, owner.parent_id, delta, NEW.resource, parent_budget.allocated - parent_budget.used '
 "- parent_budget.reserved USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits', SCHEMA "
 "= 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    UPDATE agent.budgets SET reserved = reserved + delta WHERE id = parent_budget.id;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.expire_reservations(p_budget uuid) RETURNS integer LANGUAGE '
 'plpgsql SET enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    n integer;\n'
 'BEGIN\n'
 '    -- Held reservations of one budget whose lease ended become expired; their trigger\n'
 "    -- gives the amounts back. The caller holds the budget row's lock (the lock order:\n"
 '    -- a budget, then its reservations), so there is no janitor and no race.\n'
 "    UPDATE agent.budget_reservations SET state = 'expired'\n"
 "     WHERE budget_id = p_budget AND state = 'held' AND lease_expires_at <= now();\n"
 '    GET DIAGNOSTICS n = ROW_COUNT;\n'
 '    RETURN n;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.budget_reservations_guard() RETURNS trigger LANGUAGE plpgsql '
 'SET enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    bud record;\n'
 '    free numeric;\n'
 'BEGIN\n'
 "    IF TG_OP = 'INSERT' THEN\n"
 "        IF NEW.state IN ('released', 'expired') THEN\n"
 "            RAISE EXCEPTION 'reservation_starts_held: a reservation starts held (or committed, "
 "for usage without one), not %', NEW.state USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'reservation_starts_held', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 "        IF NEW.state NOT IN ('held', 'committed')\n"
 "           OR NOT coalesce(NEW.amount > 0 AND NEW.amount < 'Infinity', false)\n"
 "           OR (NEW.state = 'committed'\n"
 "               AND NOT coalesce(NEW.actual >= 0 AND NEW.actual < 'Infinity', false)) THEN\n"
 '            RETURN NEW;  -- the CHECKs name what is wrong\n'
 '        END IF;\n'
 '        SELECT id, agent_id, resource INTO bud\n'
 '          FROM agent.budgets WHERE id = NEW.budget_id FOR UPDATE;\n'
 '        IF NOT FOUND THEN\n'
 '            RETURN NEW;  -- the foreign key reports a missing budget\n'
 '        END IF;\n'
 '        IF bud.agent_id <> NEW.agent_id OR bud.resource <> NEW.resource THEN\n'
 "            RAISE EXCEPTION 'reservation_budget: budget % is agent %''s % budget, not agent %''s "
 "%', bud.id, bud.agent_id, bud.resource, NEW.agent_id, NEW.resource USING ERRCODE = "
 "'check_violation', CONSTRAINT = 'reservation_budget', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        -- Reservations whose lease ended never count against a new one.\n'
 '        PERFORM agent.expire_reservations(NEW.budget_id);\n'
 '        SELECT allocated - used - reserved INTO free FROM agent.budgets WHERE id = bud.id;\n'
 "        IF NEW.state = 'held' THEN\n"
 '            IF NEW.lease_expires_at <= now() THEN\n'
 "                RAISE EXCEPTION 'reservation_lease: a lease must end after now (%), not at %', "
 "now(), NEW.lease_expires_at USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_lease', "
 "SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '            END IF;\n'
 '            IF NEW.amount > free THEN\n'
 "                RAISE EXCEPTION 'budget_limits: agent % asked to reserve % %, % left', "
 "NEW.agent_id, NEW.amount, NEW.resource, free USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'budget_limits', SCHEMA = 'agent', TABLE = TG_TABLE_NAME, DETAIL = json_build_object('agent', "
 "NEW.agent_id, 'resource', NEW.resource, 'asked', NEW.amount, 'left', free, 'by', 'asked to "
 "reserve')::text;\n"
 '            END IF;\n'
 '            UPDATE agent.budgets SET reserved = reserved + NEW.amount WHERE id = bud.id;\n'
 '        ELSE\n'
 '            IF NEW.actual > free THEN\n'
 "                RAISE EXCEPTION 'budget_limits: agent % asked to use % %, % left', NEW.agent_id, "
 "NEW.actual, NEW.resource, free USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits', "
 "SCHEMA = 'agent', TABLE = TG_TABLE_NAME, DETAIL = json_build_object('agent', NEW.agent_id, "
 "'resource', NEW.resource, 'asked', NEW.actual, 'left', free, 'by', 'asked to use')::text;\n"
 '            END IF;\n'
 '            UPDATE agent.budgets SET used = used + NEW.actual WHERE id = bud.id;\n'
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '\n'
 '    IF (NEW.id, NEW.agent_id, NEW.resource, NEW.budget_id, NEW.amount, NEW.holder,\n'
 '        NEW.created_at) IS DISTINCT FROM (OLD.id, OLD.agent_id, OLD.resource, OLD.budget_id,\n'
 '        OLD.amount, OLD.holder, OLD.created_at) THEN\n'
 "        RAISE EXCEPTION 'reservation_fixed: reservation % of % % held by %: only its state, "
 "lease and actual change', OLD.id, OLD.amount, OLD.resource, OLD.holder USING ERRCODE = "
 "'check_violation', CONSTRAINT = 'reservation_fixed', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    IF OLD.state <> 'held' THEN\n"
 '        IF NEW IS DISTINCT FROM OLD THEN\n'
 "            RAISE EXCEPTION 'reservation_final: reservation % is already %; it cannot become % "
 "(actual %)', OLD.id, OLD.state, NEW.state, NEW.actual USING ERRCODE = 'check_violation', "
 "CONSTRAINT = 'reservation_final', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 "    IF NEW.state = 'held' THEN\n"
 '        IF NEW.lease_expires_at IS DISTINCT FROM OLD.lease_expires_at THEN\n'
 '            IF OLD.lease_expires_at <= now() THEN\n'
 "                RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its "
 "amount went back to the budget', OLD.id, OLD.lease_expires_at USING ERRCODE = 'check_violation', "
 "CONSTRAINT = 'reservation_expired', SCHEMA = 'agent', TABLE = TG_TABLE_NAME, DETAIL = "
 "json_build_object('id', OLD.id, 'lease_expires_at', OLD.lease_expires_at)::text;\n"
 '            END IF;\n'
 '            IF NEW.lease_expires_at <= now() THEN\n'
 "                RAISE EXCEPTION 'reservation_lease: a lease must end after now (%), not at %', "
 "now(), NEW.lease_expires_at USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_lease', "
 "SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '            END IF;\n'
 '        END IF;\n'
 '        RETURN NEW;  -- the CHECKs refuse an actual or finished_at while held\n'
 '    END IF;\n'
 "    IF NEW.state NOT IN ('committed', 'released', 'expired') THEN\n"
 '        RETURN NEW;  -- state_enum names it\n'
 '    END IF;\n'
 '\n'
 "    -- held -> committed / released / expired: the budget's books move with the row.\n"
 '    PERFORM 1 FROM agent.budgets WHERE id = OLD.budget_id FOR UPDATE;\n'
 '    NEW.finished_at := now();\n'
 "    IF NEW.state = 'committed' THEN\n"
 '        IF OLD.lease_expires_at <= now() THEN\n'
 "            RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its amount "
 "went back to the budget', OLD.id, OLD.lease_expires_at USING ERRCODE = 'check_violation', "
 "CONSTRAINT = 'reservation_expired', SCHEMA = 'agent', TABLE = TG_TABLE_NAME, DETAIL = "
 "json_build_object('id', OLD.id, 'lease_expires_at', OLD.lease_expires_at)::text;\n"
 '        END IF;\n'
 "        IF NOT coalesce(NEW.actual >= 0 AND NEW.actual < 'Infinity', false) THEN\n"
 '            RETURN NEW;  -- actual_when_committed names it\n'
 '        END IF;\n'
 '        SELECT allocated - used - reserved + OLD.amount INTO free\n'
 '          FROM agent.budgets WHERE id = OLD.budget_id;\n'
 '        IF NEW.actual > free THEN\n'
 "            RAISE EXCEPTION 'budget_limits: agent % asked to use % %, % left', NEW.agent_id, "
 "NEW.actual, NEW.resource, free USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits', "
 "SCHEMA = 'agent', TABLE = TG_TABLE_NAME, DETAIL = json_build_object('agent', NEW.agent_id, "
 "'resource', NEW.resource, 'asked', NEW.actual, 'left', free, 'by', 'asked to use')::text;\n"
 '        END IF;\n'
 '        UPDATE agent.budgets SET reserved = reserved - OLD.amount, used = used + NEW.actual\n'
 '         WHERE id = OLD.budget_id;\n'
 '    ELSE\n'
 "        IF NEW.state = 'expired' AND OLD.lease_expires_at > now() THEN\n"
 "            RAISE EXCEPTION 'reservation_not_expired: reservation %''s lease runs until %; it "
 "cannot expire before', OLD.id, OLD.lease_expires_at USING ERRCODE = 'check_violation', "
 "CONSTRAINT = 'reservation_not_expired', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        UPDATE agent.budgets SET reserved = reserved - OLD.amount WHERE id = OLD.budget_id;\n'
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.budget_reservations_before_delete() RETURNS trigger LANGUAGE '
 'plpgsql AS $fn$\n'
 'BEGIN\n'
 '    -- A held reservation deleted by hand would leave its amount reserved for ever. A\n'
 '    -- cascade (its agent or budget deleted; depth 2) takes the books with it.\n'
 "    IF OLD.state = 'held' AND pg_trigger_depth() < 2 THEN\n"
 "        RAISE EXCEPTION 'reservation_held: reservation % holds % %; commit or release it before "
 "deleting it', OLD.id, OLD.amount, OLD.resource USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'reservation_held', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN OLD;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.reservation_act(p_id uuid, p_holder text, p_action text, '
 'p_actual numeric, p_lease interval) RETURNS SETOF agent.budget_reservations LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    r agent.budget_reservations;\n'
 'BEGIN\n'
 '    -- commit / release / renew one reservation by id, for its holder. A repeated commit\n'
 '    -- (same actual) or release returns the row as the first call left it; every\n'
 '    -- refusal raises, so the statement (expiry included) changes nothing.\n'
 '    SELECT * INTO r FROM agent.budget_reservations WHERE id = p_id;\n'
 '    IF NOT FOUND THEN\n'
 '        RETURN;\n'
 '    END IF;\n'
 '    -- The lock order: the budget row, then its reservations.\n'
 '    PERFORM 1 FROM agent.budgets WHERE id = r.budget_id FOR UPDATE;\n'
 '    PERFORM agent.expire_reservations(r.budget_id);\n'
 '    SELECT * INTO r FROM agent.budget_reservations WHERE id = p_id FOR UPDATE;\n'
 '    IF r.holder <> p_holder THEN\n'
 "        RAISE EXCEPTION 'reservation_holder: reservation % is held by %, not by %', r.id, "
 "quote_literal(r.holder), quote_literal(p_holder) USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'reservation_holder', SCHEMA = 'agent', TABLE = 'budget_reservations', DETAIL = "
 "json_build_object('id', r.id, 'holder', r.holder, 'asked', p_holder)::text;\n"
 '    END IF;\n'
 "    IF r.state = 'expired' THEN\n"
 "        RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its amount went "
 "back to the budget', r.id, r.lease_expires_at USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'reservation_expired', SCHEMA = 'agent', TABLE = 'budget_reservations', DETAIL = "
 "json_build_object('id', r.id, 'lease_expires_at', r.lease_expires_at)::text;\n"
 '    END IF;\n'
 "    IF (p_action = 'commit' AND r.state = 'committed' AND r.actual = p_actual)\n"
 "       OR (p_action = 'release' AND r.state = 'released') THEN\n"
 '        RETURN NEXT r;  -- a repeat: the first outcome, the books untouched\n'
 '        RETURN;\n'
 '    END IF;\n'
 "    IF r.state <> 'held' THEN\n"
 "        RAISE EXCEPTION 'reservation_closed: reservation % is already % (actual %); it cannot be "
 "%', r.id, r.state, coalesce(r.actual::text, 'none'), CASE p_action WHEN 'commit' THEN 'committed "
 "with ' || p_actual WHEN 'release' THEN 'released' ELSE 'renewed' END USING ERRCODE = "
 "'check_violation', CONSTRAINT = 'reservation_closed', SCHEMA = 'agent', TABLE = "
 "'budget_reservations', DETAIL = json_build_object('id', r.id, 'state', r.state, 'actual', "
 "r.actual, 'action', p_action)::text;\n"
 '    END IF;\n'
 "    IF p_action = 'commit' THEN\n"
 "        UPDATE agent.budget_reservations SET state = 'committed', actual = p_actual WHERE id = "
 'p_id RETURNING * INTO r;\n'
 "    ELSIF p_action = 'release' THEN\n"
 "        UPDATE agent.budget_reservations SET state = 'released' WHERE id = p_id RETURNING * INTO "
 'r;\n'
 "    ELSIF p_action = 'renew' THEN\n"
 '        UPDATE agent.budget_reservations SET lease_expires_at = now() + p_lease WHERE id = p_id '
 'RETURNING * INTO r;\n'
 '    ELSE\n'
 "        RAISE EXCEPTION 'reservation_act: unknown action %', p_action;\n"
 '    END IF;\n'
 '    RETURN NEXT r;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.budget_books(p_agent uuid) RETURNS TABLE(resource varchar, '
 'allocated numeric, used numeric, reserved numeric, held numeric) LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    b record;\n'
 'BEGIN\n'
 '    -- Expire what is overdue first (budget rows locked by resource: the lock order), unless\n'
 "    -- the caller's transaction is read-only; then the figures read as if expired.\n"
 "    IF current_setting('transaction_read_only') = 'off' AND EXISTS (\n"
 '        SELECT 1 FROM agent.budgets x JOIN agent.budget_reservations r ON r.budget_id = x.id\n'
 "         WHERE x.agent_id = p_agent AND r.state = 'held' AND r.lease_expires_at <= now()) THEN\n"
 '        FOR b IN SELECT x.id FROM agent.budgets x WHERE x.agent_id = p_agent\n'
 '                  ORDER BY x.resource FOR UPDATE\n'
 '        LOOP\n'
 '            PERFORM agent.expire_reservations(b.id);\n'
 '        END LOOP;\n'
 '    END IF;\n'
 "    -- One statement: one snapshot of all the agent's budgets.\n"
 '    RETURN QUERY\n'
 '    SELECT x.resource, x.allocated, x.used, x.reserved - coalesce(o.overdue, 0),\n'
 '           coalesce(o.held, 0)\n'
 '      FROM agent.budgets x\n'
 '      LEFT JOIN LATERAL (\n'
 '            SELECT sum(r.amount) FILTER (WHERE r.lease_expires_at <= now()) AS overdue,\n'
 '                   sum(r.amount) FILTER (WHERE r.lease_expires_at > now()) AS held\n'
 "              FROM agent.budget_reservations r WHERE r.budget_id = x.id AND r.state = 'held') o "
 'ON true\n'
 '     WHERE x.agent_id = p_agent\n'
 '     ORDER BY x.resource;\n'
 'END\n'
 '$fn$;',
 'CREATE TRIGGER budget_reservations_guard BEFORE INSERT OR UPDATE ON agent.budget_reservations '
 'FOR EACH ROW EXECUTE FUNCTION agent.budget_reservations_guard();',
 'CREATE TRIGGER budget_reservations_before_delete BEFORE DELETE ON agent.budget_reservations FOR '
 'EACH ROW EXECUTE FUNCTION agent.budget_reservations_before_delete();',
 "COMMENT ON TABLE agent.budgets IS 'How much of one resource (tokens, cost_usd, tool_calls) an "
 "agent may spend: used and reserved never exceed allocated (constraint budget_limits). A child''s "
 "allocation is reserved out of its parent''s budget of the same resource. used and reserved are "
 "kept by triggers only: reserved is the held budget_reservations plus the live children''s "
 "allocations, used the committed reservations plus the usage of finished children.';",
 "COMMENT ON TABLE agent.budget_reservations IS 'An amount held against one budget by a named "
 'holder until its lease ends: held, then committed (turned into usage), released or expired, each '
 "final. Triggers keep the budget''s reserved and used from these rows; a charge without a "
 "reservation is a row born committed.';"]

BACKWARDS = ['COMMENT ON TABLE agent.budget_reservations IS NULL;',
 "COMMENT ON TABLE agent.budgets IS 'How much of one resource (tokens, cost_usd, tool_calls) an "
 "agent may spend: used and reserved never exceed allocated (constraint budget_limits). A child''s "
 "allocation is reserved out of its parent''s budget of the same resource.';",
 'DROP TRIGGER IF EXISTS budget_reservations_before_delete ON agent.budget_reservations;',
 'DROP TRIGGER IF EXISTS budget_reservations_guard ON agent.budget_reservations;',
 'DROP FUNCTION IF EXISTS agent.budget_books(p_agent uuid);',
 'DROP FUNCTION IF EXISTS agent.reservation_act(p_id uuid, p_holder text, p_action text, p_actual '
 'numeric, p_lease interval);',
 'DROP FUNCTION IF EXISTS agent.budget_reservations_before_delete();',
 'DROP FUNCTION IF EXISTS agent.budget_reservations_guard();',
 'DROP FUNCTION IF EXISTS agent.expire_reservations(p_budget uuid);',
 'CREATE OR REPLACE FUNCTION agent.budgets_guard() RETURNS trigger LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    owner record;\n'
 '    parent_budget record;\n'
 '    delta numeric;\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' AND (NEW.agent_id <> OLD.agent_id OR NEW.resource <> OLD.resource) THEN\n"
 "        RAISE EXCEPTION 'budget_identity_fixed: budget % belongs to agent % for %; it cannot "
 "move', OLD.id, OLD.agent_id, OLD.resource USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'budget_identity_fixed', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '\n'
 '    SELECT status, parent_id INTO owner FROM agent.agents WHERE id = NEW.agent_id;\n'
 '    IF NOT FOUND THEN\n'
 '        RETURN NEW;  -- the foreign key reports a missing agent\n'
 '    END IF;\n'
 '\n'
 "    IF owner.status IN ('completed', 'failed', 'terminated') THEN\n"
 "        IF TG_OP = 'INSERT' OR NEW.allocated <> OLD.allocated OR NEW.used <> OLD.used\n"
 '           OR NEW.reserved > OLD.reserved THEN\n'
 "            RAISE EXCEPTION 'budget_closed: agent % is %; its % budget was returned to its "
 "parent', NEW.agent_id, owner.status, NEW.resource USING ERRCODE = 'check_violation', CONSTRAINT "
 "= 'budget_closed', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '\n'
 "    delta := NEW.allocated - CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE OLD.allocated END;\n"
 '    IF owner.parent_id IS NULL OR delta = 0 THEN\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '    SELECT id, allocated, used, reserved INTO parent_budget\n'
 '      FROM agent.budgets\n'
 '     WHERE agent_id = owner.parent_id AND resource = NEW.resource\n'
 '       FOR UPDATE;\n'
 '    IF NOT FOUND THEN\n'
 '        RETURN NEW;  -- the parent does not budget this resource: nothing to carve from\n'
 '    END IF;\n'
 '    IF delta > parent_budget.allocated - parent_budget.used - parent_budget.reserved THEN\n'
 "        RAISE EXCEPTION 'budget_limits: agent % asked its parent % for % %, % left', "
 'NEW.agent_id, owner.parent_id, delta, NEW.resource, parent_budget.allocated - parent_budget.used '
 "- parent_budget.reserved USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits', SCHEMA "
 "= 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    UPDATE agent.budgets SET reserved = reserved + delta WHERE id = parent_budget.id;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.return_budgets(p_agent uuid, p_parent uuid) RETURNS void '
 'LANGUAGE plpgsql SET enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    b record;\n'
 'BEGIN\n'
 "    -- Child rows first, then the parent's: the same lock order as an allocation change.\n"
 '    FOR b IN SELECT id, resource, allocated, used, reserved\n'
 '               FROM agent.budgets WHERE agent_id = p_agent\n'
 '              ORDER BY resource FOR UPDATE\n'
 '    LOOP\n'
 '        IF p_parent IS NOT NULL THEN\n'
 '            UPDATE agent.budgets\n'
 '               SET reserved = reserved - b.allocated, used = used + b.used\n'
 '             WHERE agent_id = p_parent AND resource = b.resource;\n'
 '        END IF;\n'
 '        IF b.reserved <> 0 THEN\n'
 '            UPDATE agent.budgets SET reserved = 0 WHERE id = b.id;\n'
 '        END IF;\n'
 '    END LOOP;\n'
 'END\n'
 '$fn$;',
 'DROP INDEX IF EXISTS agent.budget_reservations_budget_idx;']


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
