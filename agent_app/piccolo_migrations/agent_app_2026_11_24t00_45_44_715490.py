"""Trigger functions re-created from agent_app/sql/schema/*.sql: the same rules and messages, laid out to read as SQL (each RAISE over a few lines; the transition functions no longer claim to be generated)

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-24T00:45:44:715490"
VERSION = "1.38.0"
DESCRIPTION = 'Trigger functions re-created from agent_app/sql/schema/*.sql: the same rules and messages, laid out to read as SQL (each RAISE over a few lines; the transition functions no longer claim to be generated)'

FORWARDS = ['CREATE OR REPLACE FUNCTION agent.agents_guard() RETURNS trigger\n'
 '    LANGUAGE plpgsql SET enable_seqscan = off\n'
 'AS $fn$\n'
 'DECLARE\n'
 '    parent record;\n'
 'BEGIN\n'
 "    IF TG_OP = 'INSERT' THEN\n"
 '        IF NEW.parent_id IS NULL THEN\n'
 '            NEW.depth_level := 0;\n'
 '        ELSE\n'
 '            -- FOR SHARE: a parent cannot finish while a child is being added under it.\n'
 '            SELECT depth_level, status INTO parent\n'
 '              FROM agent.agents WHERE id = NEW.parent_id FOR SHARE;\n'
 '            IF FOUND THEN\n'
 "                IF parent.status IN ('completed', 'failed', 'terminated') THEN\n"
 "                    RAISE EXCEPTION 'parent_live: parent agent % is %, it cannot take "
 "children',\n"
 '                        NEW.parent_id, parent.status\n'
 "                        USING ERRCODE = 'check_violation', CONSTRAINT = 'parent_live',\n"
 "                              SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '                END IF;\n'
 '                -- depth_limit (a CHECK) refuses a level past the maximum.\n'
 '                NEW.depth_level := parent.depth_level + 1;\n'
 '            END IF;\n'
 '            -- A missing parent is reported by the foreign key, a self parent by '
 'parent_not_self.\n'
 '        END IF;\n'
 "        IF NEW.status IN ('completed', 'failed', 'terminated') THEN\n"
 '            NEW.finished_at := coalesce(NEW.finished_at, now());\n'
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '\n'
 '    IF NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN\n'
 "        RAISE EXCEPTION 'parent_fixed: agent % cannot move from parent % to %',\n"
 '            OLD.id, OLD.parent_id, NEW.parent_id\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'parent_fixed',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    IF NEW.depth_level <> OLD.depth_level THEN\n'
 "        RAISE EXCEPTION 'depth_level_derived: agent % sits at depth %, it cannot be set to %',\n"
 '            OLD.id, OLD.depth_level, NEW.depth_level\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'depth_level_derived',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    IF OLD.status IN ('completed', 'failed', 'terminated') AND NEW.status <> OLD.status THEN\n"
 "        RAISE EXCEPTION 'terminal_final: agent % is already %, it cannot become %',\n"
 '            OLD.id, OLD.status, NEW.status\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'terminal_final',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    IF NEW.status IN ('completed', 'failed', 'terminated') AND OLD.status NOT IN ('completed', "
 "'failed', 'terminated') THEN\n"
 '        IF EXISTS (SELECT 1 FROM agent.agents\n'
 "                    WHERE parent_id = NEW.id AND status NOT IN ('completed', 'failed', "
 "'terminated')) THEN\n"
 "            RAISE EXCEPTION 'children_finish_first: agent % still has live children; finish them "
 "before it becomes %',\n"
 '                OLD.id, NEW.status\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'children_finish_first',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        NEW.finished_at := coalesce(NEW.finished_at, now());\n'
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.hierarchies_guard() RETURNS trigger\n'
 '    LANGUAGE plpgsql SET enable_seqscan = off\n'
 'AS $fn$\n'
 'BEGIN\n'
 "    IF TG_OP = 'DELETE' THEN\n"
 '        -- A closure row goes with its agents: deleting an agent (or its run) cascades\n'
 '        -- here once the agent is gone. While both agents exist, it is a delete by hand.\n'
 '        IF EXISTS (SELECT 1 FROM agent.agents WHERE id = OLD.child_id)\n'
 '           AND EXISTS (SELECT 1 FROM agent.agents WHERE id = OLD.parent_id) THEN\n'
 "            RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; "
 "delete agents instead (DELETE of % -> % by hand)',\n"
 '                OLD.parent_id, OLD.child_id\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'hierarchies_derived',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        RETURN OLD;\n'
 '    END IF;\n'
 '    -- Depth 1 is this trigger itself: the write came from outside agents_closure.\n'
 '    IF pg_trigger_depth() < 2 THEN\n'
 "        RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; insert "
 "agents instead (% % by hand)',\n"
 '            TG_OP, TG_TABLE_NAME\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'hierarchies_derived',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.hierarchies_truncate_guard() RETURNS trigger\n'
 '    LANGUAGE plpgsql\n'
 'AS $fn$\n'
 'BEGIN\n'
 '    -- After the truncation: TRUNCATE agents ... CASCADE emptied both tables and passes;\n'
 '    -- the closure emptied while agents remain would lose the tree, so it is refused.\n'
 '    IF EXISTS (SELECT 1 FROM agent.agents) THEN\n'
 "        RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; % % by "
 "hand would lose the tree of the agents that remain',\n"
 '            TG_OP, TG_TABLE_NAME\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'hierarchies_derived',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NULL;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.budgets_guard() RETURNS trigger\n'
 '    LANGUAGE plpgsql SET enable_seqscan = off\n'
 'AS $fn$\n'
 'DECLARE\n'
 '    owner record;\n'
 '    parent_budget record;\n'
 '    delta numeric;\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' AND (NEW.agent_id <> OLD.agent_id OR NEW.resource <> OLD.resource) THEN\n"
 "        RAISE EXCEPTION 'budget_identity_fixed: budget % belongs to agent % for %; it cannot "
 "move',\n"
 '            OLD.id, OLD.agent_id, OLD.resource\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_identity_fixed',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
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
 "parent',\n"
 '                NEW.agent_id, owner.status, NEW.resource\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_closed',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '    END IF;\n'
 '\n'
 '    -- used and reserved are kept by triggers only (depth 1 is this trigger itself: the\n'
 '    -- write came from outside them), so the books always equal what the rows say.\n'
 '    IF pg_trigger_depth() < 2 AND (CASE TG_OP\n'
 "        WHEN 'INSERT' THEN NEW.used <> 0 OR NEW.reserved <> 0\n"
 '        ELSE NEW.used <> OLD.used OR NEW.reserved <> OLD.reserved END) THEN\n'
 "        RAISE EXCEPTION 'budget_books_derived: agent %''s % budget: used and reserved are kept "
 "from budget_reservations and child allocations; a write by hand asked for used %, reserved %',\n"
 '            NEW.agent_id, NEW.resource, NEW.used, NEW.reserved\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_books_derived',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
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
 "        RAISE EXCEPTION 'budget_limits: agent % asked its parent % for % %, % left',\n"
 '            NEW.agent_id, owner.parent_id, delta, NEW.resource,\n'
 '            parent_budget.allocated - parent_budget.used - parent_budget.reserved\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    UPDATE agent.budgets SET reserved = reserved + delta WHERE id = parent_budget.id;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.budget_reservations_guard() RETURNS trigger\n'
 '    LANGUAGE plpgsql SET enable_seqscan = off\n'
 'AS $fn$\n'
 'DECLARE\n'
 '    bud record;\n'
 '    free numeric;\n'
 'BEGIN\n'
 "    IF TG_OP = 'INSERT' THEN\n"
 "        IF NEW.state IN ('released', 'expired') THEN\n"
 "            RAISE EXCEPTION 'reservation_starts_held: a reservation starts held (or committed, "
 "for usage without one), not %',\n"
 '                NEW.state\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_starts_held',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
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
 "%',\n"
 '                bud.id, bud.agent_id, bud.resource, NEW.agent_id, NEW.resource\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_budget',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        -- Reservations whose lease ended never count against a new one.\n'
 '        PERFORM agent.expire_reservations(NEW.budget_id);\n'
 '        SELECT allocated - used - reserved INTO free FROM agent.budgets WHERE id = bud.id;\n'
 "        IF NEW.state = 'held' THEN\n"
 '            IF NEW.lease_expires_at <= now() THEN\n'
 "                RAISE EXCEPTION 'reservation_lease: a lease must end after now (%), not at %',\n"
 '                    now(), NEW.lease_expires_at\n'
 "                    USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_lease',\n"
 "                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '            END IF;\n'
 '            IF NEW.amount > free THEN\n'
 "                RAISE EXCEPTION 'budget_limits: agent % asked to reserve % %, % left',\n"
 '                    NEW.agent_id, NEW.amount, NEW.resource, free\n'
 "                    USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',\n"
 "                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME,\n"
 "                          DETAIL = json_build_object('agent', NEW.agent_id,\n"
 "                                                     'resource', NEW.resource,\n"
 "                                                     'asked', NEW.amount, 'left', free,\n"
 "                                                     'by', 'asked to reserve')::text;\n"
 '            END IF;\n'
 '            UPDATE agent.budgets SET reserved = reserved + NEW.amount WHERE id = bud.id;\n'
 '        ELSE\n'
 '            IF NEW.actual > free THEN\n'
 "                RAISE EXCEPTION 'budget_limits: agent % asked to use % %, % left',\n"
 '                    NEW.agent_id, NEW.actual, NEW.resource, free\n'
 "                    USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',\n"
 "                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME,\n"
 "                          DETAIL = json_build_object('agent', NEW.agent_id,\n"
 "                                                     'resource', NEW.resource,\n"
 "                                                     'asked', NEW.actual, 'left', free,\n"
 "                                                     'by', 'asked to use')::text;\n"
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
 "lease and actual change',\n"
 '            OLD.id, OLD.amount, OLD.resource, OLD.holder\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_fixed',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    IF OLD.state <> 'held' THEN\n"
 '        IF NEW IS DISTINCT FROM OLD THEN\n'
 "            RAISE EXCEPTION 'reservation_final: reservation % is already %; it cannot become % "
 "(actual %)',\n"
 '                OLD.id, OLD.state, NEW.state, NEW.actual\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_final',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 "    IF NEW.state = 'held' THEN\n"
 '        IF NEW.lease_expires_at IS DISTINCT FROM OLD.lease_expires_at THEN\n'
 '            IF OLD.lease_expires_at <= now() THEN\n'
 "                RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its "
 "amount went back to the budget',\n"
 '                    OLD.id, OLD.lease_expires_at\n'
 "                    USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_expired',\n"
 "                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME,\n"
 "                          DETAIL = json_build_object('id', OLD.id,\n"
 "                                                     'lease_expires_at', "
 'OLD.lease_expires_at)::text;\n'
 '            END IF;\n'
 '            IF NEW.lease_expires_at <= now() THEN\n'
 "                RAISE EXCEPTION 'reservation_lease: a lease must end after now (%), not at %',\n"
 '                    now(), NEW.lease_expires_at\n'
 "                    USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_lease',\n"
 "                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
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
 "went back to the budget',\n"
 '                OLD.id, OLD.lease_expires_at\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_expired',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME,\n"
 "                      DETAIL = json_build_object('id', OLD.id,\n"
 "                                                 'lease_expires_at', "
 'OLD.lease_expires_at)::text;\n'
 '        END IF;\n'
 "        IF NOT coalesce(NEW.actual >= 0 AND NEW.actual < 'Infinity', false) THEN\n"
 '            RETURN NEW;  -- actual_when_committed names it\n'
 '        END IF;\n'
 '        SELECT allocated - used - reserved + OLD.amount INTO free\n'
 '          FROM agent.budgets WHERE id = OLD.budget_id;\n'
 '        IF NEW.actual > free THEN\n'
 "            RAISE EXCEPTION 'budget_limits: agent % asked to use % %, % left',\n"
 '                NEW.agent_id, NEW.actual, NEW.resource, free\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME,\n"
 "                      DETAIL = json_build_object('agent', NEW.agent_id,\n"
 "                                                 'resource', NEW.resource,\n"
 "                                                 'asked', NEW.actual, 'left', free,\n"
 "                                                 'by', 'asked to use')::text;\n"
 '        END IF;\n'
 '        UPDATE agent.budgets SET reserved = reserved - OLD.amount, used = used + NEW.actual\n'
 '         WHERE id = OLD.budget_id;\n'
 '    ELSE\n'
 "        IF NEW.state = 'expired' AND OLD.lease_expires_at > now() THEN\n"
 "            RAISE EXCEPTION 'reservation_not_expired: reservation %''s lease runs until %; it "
 "cannot expire before',\n"
 '                OLD.id, OLD.lease_expires_at\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_not_expired',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        UPDATE agent.budgets SET reserved = reserved - OLD.amount WHERE id = OLD.budget_id;\n'
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.budget_reservations_before_delete() RETURNS trigger\n'
 '    LANGUAGE plpgsql\n'
 'AS $fn$\n'
 'BEGIN\n'
 '    -- A held reservation deleted by hand would leave its amount reserved for ever. A\n'
 '    -- cascade (its agent or budget deleted; depth 2) takes the books with it.\n'
 "    IF OLD.state = 'held' AND pg_trigger_depth() < 2 THEN\n"
 "        RAISE EXCEPTION 'reservation_held: reservation % holds % %; commit or release it before "
 "deleting it',\n"
 '            OLD.id, OLD.amount, OLD.resource\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_held',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN OLD;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.reservation_act(\n'
 '    p_id uuid, p_holder text, p_action text, p_actual numeric, p_lease interval\n'
 ') RETURNS SETOF agent.budget_reservations\n'
 '    LANGUAGE plpgsql SET enable_seqscan = off\n'
 'AS $fn$\n'
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
 "        RAISE EXCEPTION 'reservation_holder: reservation % is held by %, not by %',\n"
 '            r.id, quote_literal(r.holder), quote_literal(p_holder)\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_holder',\n"
 "                  SCHEMA = 'agent', TABLE = 'budget_reservations',\n"
 "                  DETAIL = json_build_object('id', r.id, 'holder', r.holder,\n"
 "                                             'asked', p_holder)::text;\n"
 '    END IF;\n'
 "    IF r.state = 'expired' THEN\n"
 "        RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its amount went "
 "back to the budget',\n"
 '            r.id, r.lease_expires_at\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_expired',\n"
 "                  SCHEMA = 'agent', TABLE = 'budget_reservations',\n"
 "                  DETAIL = json_build_object('id', r.id,\n"
 "                                             'lease_expires_at', r.lease_expires_at)::text;\n"
 '    END IF;\n'
 "    IF (p_action = 'commit' AND r.state = 'committed' AND r.actual = p_actual)\n"
 "       OR (p_action = 'release' AND r.state = 'released') THEN\n"
 '        RETURN NEXT r;  -- a repeat: the first outcome, the books untouched\n'
 '        RETURN;\n'
 '    END IF;\n'
 "    IF r.state <> 'held' THEN\n"
 "        RAISE EXCEPTION 'reservation_closed: reservation % is already % (actual %); it cannot be "
 "%',\n"
 "            r.id, r.state, coalesce(r.actual::text, 'none'),\n"
 "            CASE p_action WHEN 'commit' THEN 'committed with ' || p_actual\n"
 "                          WHEN 'release' THEN 'released' ELSE 'renewed' END\n"
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_closed',\n"
 "                  SCHEMA = 'agent', TABLE = 'budget_reservations',\n"
 "                  DETAIL = json_build_object('id', r.id, 'state', r.state,\n"
 "                                             'actual', r.actual, 'action', p_action)::text;\n"
 '    END IF;\n'
 "    IF p_action = 'commit' THEN\n"
 "        UPDATE agent.budget_reservations SET state = 'committed', actual = p_actual\n"
 '         WHERE id = p_id RETURNING * INTO r;\n'
 "    ELSIF p_action = 'release' THEN\n"
 "        UPDATE agent.budget_reservations SET state = 'released'\n"
 '         WHERE id = p_id RETURNING * INTO r;\n'
 "    ELSIF p_action = 'renew' THEN\n"
 '        UPDATE agent.budget_reservations SET lease_expires_at = now() + p_lease\n'
 '         WHERE id = p_id RETURNING * INTO r;\n'
 '    ELSE\n'
 "        RAISE EXCEPTION 'reservation_act: unknown action %', p_action;\n"
 '    END IF;\n'
 '    RETURN NEXT r;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.checkpoints_guard() RETURNS trigger\n'
 '    LANGUAGE plpgsql SET enable_seqscan = off\n'
 'AS $fn$\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' THEN\n"
 '        IF NEW.agent_id <> OLD.agent_id OR NEW.sequence <> OLD.sequence THEN\n'
 "            RAISE EXCEPTION 'checkpoint_sequence_fixed: checkpoint % is number % of agent %; it "
 "cannot be renumbered',\n"
 '                OLD.id, OLD.sequence, OLD.agent_id\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'checkpoint_sequence_fixed',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '    ELSIF (SELECT sequence FROM agent.checkpoints WHERE agent_id = NEW.agent_id\n'
 '            ORDER BY sequence DESC LIMIT 1) >= NEW.sequence THEN\n'
 "        RAISE EXCEPTION 'checkpoint_sequence_increasing: agent % already has a checkpoint "
 "numbered % or higher',\n"
 '            NEW.agent_id, NEW.sequence\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'checkpoint_sequence_increasing',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    IF NEW.parent_checkpoint_id IS NOT NULL AND NOT EXISTS (\n'
 '        SELECT 1 FROM agent.checkpoints\n'
 '         WHERE id = NEW.parent_checkpoint_id AND agent_id = NEW.agent_id\n'
 '           AND sequence < NEW.sequence) THEN\n'
 "        RAISE EXCEPTION 'checkpoint_parent_earlier: parent checkpoint % is not an earlier "
 "checkpoint of agent %',\n"
 '            NEW.parent_checkpoint_id, NEW.agent_id\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'checkpoint_parent_earlier',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.run_phase_transition() RETURNS trigger\n'
 '    LANGUAGE plpgsql\n'
 'AS $fn$\n'
 'BEGIN\n'
 '    -- One line per status: the statuses it may change to (tests/test_schema_files.py checks\n'
 '    -- them against agent_app/transitions.py).\n'
 '    IF NEW.current_phase IS DISTINCT FROM OLD.current_phase AND NOT (CASE OLD.current_phase\n'
 "        WHEN 'analysis' THEN NEW.current_phase IN ('approaches', 'failed')\n"
 "        WHEN 'approaches' THEN NEW.current_phase IN ('failed', 'judging')\n"
 "        WHEN 'judging' THEN NEW.current_phase IN ('failed', 'implementation')\n"
 "        WHEN 'implementation' THEN NEW.current_phase IN ('failed', 'pr')\n"
 "        WHEN 'pr' THEN NEW.current_phase IN ('completed', 'failed')\n"
 "        WHEN 'completed' THEN false\n"
 "        WHEN 'failed' THEN false\n"
 '        ELSE false END) THEN\n'
 "        RAISE EXCEPTION 'run_phase_transition: % -> % is not a legal change',\n"
 '            OLD.current_phase, NEW.current_phase\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'run_phase_transition',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.phase_status_transition() RETURNS trigger\n'
 '    LANGUAGE plpgsql\n'
 'AS $fn$\n'
 'BEGIN\n'
 '    -- One line per status: the statuses it may change to (tests/test_schema_files.py checks\n'
 '    -- them against agent_app/transitions.py).\n'
 '    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (CASE OLD.status\n'
 "        WHEN 'running' THEN NEW.status IN ('failed', 'passed')\n"
 "        WHEN 'passed' THEN false\n"
 "        WHEN 'failed' THEN false\n"
 '        ELSE false END) THEN\n'
 "        RAISE EXCEPTION 'phase_status_transition: % -> % is not a legal change',\n"
 '            OLD.status, NEW.status\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'phase_status_transition',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.sandbox_status_transition() RETURNS trigger\n'
 '    LANGUAGE plpgsql\n'
 'AS $fn$\n'
 'BEGIN\n'
 '    -- One line per status: the statuses it may change to (tests/test_schema_files.py checks\n'
 '    -- them against agent_app/transitions.py).\n'
 '    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (CASE OLD.status\n'
 "        WHEN 'pending' THEN NEW.status IN ('aborted', 'failed', 'running')\n"
 "        WHEN 'running' THEN NEW.status IN ('aborted', 'failed', 'snapshotting', 'stopping')\n"
 "        WHEN 'snapshotting' THEN NEW.status IN ('aborted', 'failed', 'running', 'stopping')\n"
 "        WHEN 'stopping' THEN NEW.status IN ('aborted', 'failed', 'stopped')\n"
 "        WHEN 'stopped' THEN false\n"
 "        WHEN 'failed' THEN false\n"
 "        WHEN 'aborted' THEN false\n"
 '        ELSE false END) THEN\n'
 "        RAISE EXCEPTION 'sandbox_status_transition: % -> % is not a legal change',\n"
 '            OLD.status, NEW.status\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'sandbox_status_transition',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.cta_answer_rules() RETURNS trigger\n'
 '    LANGUAGE plpgsql\n'
 'AS $fn$\n'
 'BEGIN\n'
 '    IF OLD.responded_at IS NOT NULL\n'
 '       AND (NEW.response IS DISTINCT FROM OLD.response\n'
 '            OR NEW.responded_at IS DISTINCT FROM OLD.responded_at\n'
 '            OR NEW.responded_by IS DISTINCT FROM OLD.responded_by) THEN\n'
 "        RAISE EXCEPTION 'cta_answered_once: question % was already answered at %',\n"
 '            OLD.id, OLD.responded_at\n'
 "            USING ERRCODE = 'check_violation', CONSTRAINT = 'cta_answered_once',\n"
 "                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    IF NEW.responded_at IS NOT NULL AND OLD.responded_at IS NULL THEN\n'
 '        IF OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.responded_at THEN\n'
 "            RAISE EXCEPTION 'cta_expired: question % expired at %',\n"
 '                OLD.id, OLD.expires_at\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'cta_expired',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 "        IF NEW.kind = 'choice' AND NOT (NEW.options @> jsonb_build_array(NEW.response)) THEN\n"
 "            RAISE EXCEPTION 'choice_not_offered: % is not one of the options %',\n"
 '                NEW.response, NEW.options\n'
 "                USING ERRCODE = 'check_violation', CONSTRAINT = 'choice_not_offered',\n"
 "                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        -- Wakes agent_app.cta.wait() at commit (never sent if the answer rolls back).\n'
 "        PERFORM pg_notify('agent_cta', NEW.id::text);\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.messages_recipient() RETURNS trigger\n'
 '    LANGUAGE plpgsql SET enable_seqscan = off\n'
 'AS $fn$\n'
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
 '$fn$;']

BACKWARDS = ['CREATE OR REPLACE FUNCTION agent.messages_recipient() RETURNS trigger LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
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
 'CREATE OR REPLACE FUNCTION agent.cta_answer_rules() RETURNS trigger LANGUAGE plpgsql AS $fn$\n'
 'BEGIN\n'
 '    IF OLD.responded_at IS NOT NULL\n'
 '       AND (NEW.response IS DISTINCT FROM OLD.response\n'
 '            OR NEW.responded_at IS DISTINCT FROM OLD.responded_at\n'
 '            OR NEW.responded_by IS DISTINCT FROM OLD.responded_by) THEN\n'
 "        RAISE EXCEPTION 'cta_answered_once: question % was already answered at %', OLD.id, "
 "OLD.responded_at USING ERRCODE = 'check_violation', CONSTRAINT = 'cta_answered_once', SCHEMA = "
 "'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    IF NEW.responded_at IS NOT NULL AND OLD.responded_at IS NULL THEN\n'
 '        IF OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.responded_at THEN\n'
 "            RAISE EXCEPTION 'cta_expired: question % expired at %', OLD.id, OLD.expires_at USING "
 "ERRCODE = 'check_violation', CONSTRAINT = 'cta_expired', SCHEMA = 'agent', TABLE = "
 'TG_TABLE_NAME;\n'
 '        END IF;\n'
 "        IF NEW.kind = 'choice' AND NOT (NEW.options @> jsonb_build_array(NEW.response)) THEN\n"
 "            RAISE EXCEPTION 'choice_not_offered: % is not one of the options %', NEW.response, "
 "NEW.options USING ERRCODE = 'check_violation', CONSTRAINT = 'choice_not_offered', SCHEMA = "
 "'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        -- Wakes agent_app.cta.wait() at commit (never sent if the answer rolls back).\n'
 "        PERFORM pg_notify('agent_cta', NEW.id::text);\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.sandbox_status_transition() RETURNS trigger LANGUAGE plpgsql AS '
 '$fn$\n'
 'BEGIN\n'
 '    -- Generated from agent_app/transitions.py: the legal changes, one line per status.\n'
 '    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (CASE OLD.status\n'
 "        WHEN 'pending' THEN NEW.status IN ('aborted', 'failed', 'running')\n"
 "        WHEN 'running' THEN NEW.status IN ('aborted', 'failed', 'snapshotting', 'stopping')\n"
 "        WHEN 'snapshotting' THEN NEW.status IN ('aborted', 'failed', 'running', 'stopping')\n"
 "        WHEN 'stopping' THEN NEW.status IN ('aborted', 'failed', 'stopped')\n"
 "        WHEN 'stopped' THEN false\n"
 "        WHEN 'failed' THEN false\n"
 "        WHEN 'aborted' THEN false\n"
 '        ELSE false END) THEN\n'
 "        RAISE EXCEPTION 'sandbox_status_transition: % -> % is not a legal change', OLD.status, "
 "NEW.status USING ERRCODE = 'check_violation', CONSTRAINT = 'sandbox_status_transition', SCHEMA = "
 "'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.phase_status_transition() RETURNS trigger LANGUAGE plpgsql AS '
 '$fn$\n'
 'BEGIN\n'
 '    -- Generated from agent_app/transitions.py: the legal changes, one line per status.\n'
 '    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (CASE OLD.status\n'
 "        WHEN 'running' THEN NEW.status IN ('failed', 'passed')\n"
 "        WHEN 'passed' THEN false\n"
 "        WHEN 'failed' THEN false\n"
 '        ELSE false END) THEN\n'
 "        RAISE EXCEPTION 'phase_status_transition: % -> % is not a legal change', OLD.status, "
 "NEW.status USING ERRCODE = 'check_violation', CONSTRAINT = 'phase_status_transition', SCHEMA = "
 "'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.run_phase_transition() RETURNS trigger LANGUAGE plpgsql AS '
 '$fn$\n'
 'BEGIN\n'
 '    -- Generated from agent_app/transitions.py: the legal changes, one line per status.\n'
 '    IF NEW.current_phase IS DISTINCT FROM OLD.current_phase AND NOT (CASE OLD.current_phase\n'
 "        WHEN 'analysis' THEN NEW.current_phase IN ('approaches', 'failed')\n"
 "        WHEN 'approaches' THEN NEW.current_phase IN ('failed', 'judging')\n"
 "        WHEN 'judging' THEN NEW.current_phase IN ('failed', 'implementation')\n"
 "        WHEN 'implementation' THEN NEW.current_phase IN ('failed', 'pr')\n"
 "        WHEN 'pr' THEN NEW.current_phase IN ('completed', 'failed')\n"
 "        WHEN 'completed' THEN false\n"
 "        WHEN 'failed' THEN false\n"
 '        ELSE false END) THEN\n'
 "        RAISE EXCEPTION 'run_phase_transition: % -> % is not a legal change', OLD.current_phase, "
 "NEW.current_phase USING ERRCODE = 'check_violation', CONSTRAINT = 'run_phase_transition', SCHEMA "
 "= 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    RETURN NEW;\n'
 'END\n'
 '$fn$;',
 'CREATE OR REPLACE FUNCTION agent.checkpoints_guard() RETURNS trigger LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'BEGIN\n'
 "    IF TG_OP = 'UPDATE' THEN\n"
 '        IF NEW.agent_id <> OLD.agent_id OR NEW.sequence <> OLD.sequence THEN\n'
 "            RAISE EXCEPTION 'checkpoint_sequence_fixed: checkpoint % is number % of agent %; it "
 "cannot be renumbered', OLD.id, OLD.sequence, OLD.agent_id USING ERRCODE = 'check_violation', "
 "CONSTRAINT = 'checkpoint_sequence_fixed', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '    ELSIF (SELECT sequence FROM agent.checkpoints WHERE agent_id = NEW.agent_id\n'
 '            ORDER BY sequence DESC LIMIT 1) >= NEW.sequence THEN\n'
 "        RAISE EXCEPTION 'checkpoint_sequence_increasing: agent % already has a checkpoint "
 "numbered % or higher', NEW.agent_id, NEW.sequence USING ERRCODE = 'check_violation', CONSTRAINT "
 "= 'checkpoint_sequence_increasing', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    IF NEW.parent_checkpoint_id IS NOT NULL AND NOT EXISTS (\n'
 '        SELECT 1 FROM agent.checkpoints\n'
 '         WHERE id = NEW.parent_checkpoint_id AND agent_id = NEW.agent_id\n'
 '           AND sequence < NEW.sequence) THEN\n'
 "        RAISE EXCEPTION 'checkpoint_parent_earlier: parent checkpoint % is not an earlier "
 "checkpoint of agent %', NEW.parent_checkpoint_id, NEW.agent_id USING ERRCODE = "
 "'check_violation', CONSTRAINT = 'checkpoint_parent_earlier', SCHEMA = 'agent', TABLE = "
 'TG_TABLE_NAME;\n'
 '    END IF;\n'
 '    RETURN NEW;\n'
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
 'CREATE OR REPLACE FUNCTION agent.hierarchies_guard() RETURNS trigger LANGUAGE plpgsql SET '
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
 'CREATE OR REPLACE FUNCTION agent.agents_guard() RETURNS trigger LANGUAGE plpgsql SET '
 'enable_seqscan = off AS $fn$\n'
 'DECLARE\n'
 '    parent record;\n'
 'BEGIN\n'
 "    IF TG_OP = 'INSERT' THEN\n"
 '        IF NEW.parent_id IS NULL THEN\n'
 '            NEW.depth_level := 0;\n'
 '        ELSE\n'
 '            -- FOR SHARE: a parent cannot finish while a child is being added under it.\n'
 '            SELECT depth_level, status INTO parent\n'
 '              FROM agent.agents WHERE id = NEW.parent_id FOR SHARE;\n'
 '            IF FOUND THEN\n'
 "                IF parent.status IN ('completed', 'failed', 'terminated') THEN\n"
 "                    RAISE EXCEPTION 'parent_live: parent agent % is %, it cannot take children', "
 "NEW.parent_id, parent.status USING ERRCODE = 'check_violation', CONSTRAINT = 'parent_live', "
 "SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '                END IF;\n'
 '                -- depth_limit (a CHECK) refuses a level past the maximum.\n'
 '                NEW.depth_level := parent.depth_level + 1;\n'
 '            END IF;\n'
 '            -- A missing parent is reported by the foreign key, a self parent by '
 'parent_not_self.\n'
 '        END IF;\n'
 "        IF NEW.status IN ('completed', 'failed', 'terminated') THEN\n"
 '            NEW.finished_at := coalesce(NEW.finished_at, now());\n'
 '        END IF;\n'
 '        RETURN NEW;\n'
 '    END IF;\n'
 '\n'
 '    IF NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN\n'
 "        RAISE EXCEPTION 'parent_fixed: agent % cannot move from parent % to %', OLD.id, "
 "OLD.parent_id, NEW.parent_id USING ERRCODE = 'check_violation', CONSTRAINT = 'parent_fixed', "
 "SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 '    IF NEW.depth_level <> OLD.depth_level THEN\n'
 "        RAISE EXCEPTION 'depth_level_derived: agent % sits at depth %, it cannot be set to %', "
 "OLD.id, OLD.depth_level, NEW.depth_level USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'depth_level_derived', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    IF OLD.status IN ('completed', 'failed', 'terminated') AND NEW.status <> OLD.status THEN\n"
 "        RAISE EXCEPTION 'terminal_final: agent % is already %, it cannot become %', OLD.id, "
 "OLD.status, NEW.status USING ERRCODE = 'check_violation', CONSTRAINT = 'terminal_final', SCHEMA "
 "= 'agent', TABLE = TG_TABLE_NAME;\n"
 '    END IF;\n'
 "    IF NEW.status IN ('completed', 'failed', 'terminated') AND OLD.status NOT IN ('completed', "
 "'failed', 'terminated') THEN\n"
 '        IF EXISTS (SELECT 1 FROM agent.agents\n'
 "                    WHERE parent_id = NEW.id AND status NOT IN ('completed', 'failed', "
 "'terminated')) THEN\n"
 "            RAISE EXCEPTION 'children_finish_first: agent % still has live children; finish them "
 "before it becomes %', OLD.id, NEW.status USING ERRCODE = 'check_violation', CONSTRAINT = "
 "'children_finish_first', SCHEMA = 'agent', TABLE = TG_TABLE_NAME;\n"
 '        END IF;\n'
 '        NEW.finished_at := coalesce(NEW.finished_at, now());\n'
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
