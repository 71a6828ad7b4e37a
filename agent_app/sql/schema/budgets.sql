-- Budgets carved from the parent's: a child's allocation is reserved out of its parent's
-- budget in the same statement, and handed back (with what it used) when the child
-- finishes or is deleted. used and reserved are kept by these triggers and those of
-- reservations.sql only, never by hand.
--
-- Functions that look rows up SET enable_seqscan = off (see tree.sql).

-- Hands an agent's budgets back to its parent and ends its held reservations.
CREATE OR REPLACE FUNCTION agent.return_budgets(p_agent uuid, p_parent uuid) RETURNS void
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    b record;
BEGIN
    -- The lock order: the parent's budget rows, then the agent's, each by resource, then
    -- their reservations.
    IF p_parent IS NOT NULL THEN
        PERFORM 1 FROM agent.budgets WHERE agent_id = p_parent ORDER BY resource FOR UPDATE;
    END IF;
    FOR b IN SELECT id, resource, allocated, used
               FROM agent.budgets WHERE agent_id = p_agent
              ORDER BY resource FOR UPDATE
    LOOP
        -- Held reservations end with the agent (their trigger gives the amounts back):
        -- expired if their lease ended, else released.
        UPDATE agent.budget_reservations
           SET state = CASE WHEN lease_expires_at <= now() THEN 'expired' ELSE 'released' END
         WHERE budget_id = b.id AND state = 'held';
        -- Amounts reserved before reservations were rows have none to release.
        UPDATE agent.budgets SET reserved = 0 WHERE id = b.id AND reserved <> 0;
        IF p_parent IS NOT NULL THEN
            UPDATE agent.budgets
               SET reserved = reserved - b.allocated, used = used + b.used
             WHERE agent_id = p_parent AND resource = b.resource;
        END IF;
    END LOOP;
END
$fn$;

-- On reaching a terminal status, an agent's budgets go back to its parent.
CREATE OR REPLACE FUNCTION agent.agents_reclaim() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- Reached a terminal status (agents_guard makes that happen once): each budget
    -- goes back to the parent (reserved -= allocated, used += used), the agent's own
    -- reservations are released.
    PERFORM agent.return_budgets(NEW.id, NEW.parent_id);
    RETURN NULL;
END
$fn$;

-- Runs agents_reclaim when an agent reaches a terminal status.
CREATE TRIGGER agents_reclaim AFTER UPDATE OF status ON agent.agents
    FOR EACH ROW
    WHEN (OLD.status NOT IN ({TERMINAL_AGENT_STATUSES})
          AND NEW.status IN ({TERMINAL_AGENT_STATUSES}))
    EXECUTE FUNCTION agent.agents_reclaim();

-- A live agent deleted outright hands its budgets back to its parent.
CREATE OR REPLACE FUNCTION agent.agents_before_delete() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
BEGIN
    -- A live agent deleted outright hands its budgets back like a finished one. Its own
    -- reservation is not released: when a whole run is deleted, its children may still
    -- be handing their allocations back into it within the same statement. A parent
    -- already deleted by this statement (visible here as gone) needs nothing back.
    IF OLD.status NOT IN ({TERMINAL_AGENT_STATUSES}) AND OLD.parent_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM agent.agents WHERE id = OLD.parent_id) THEN
        UPDATE agent.budgets p
           SET reserved = p.reserved - c.allocated, used = p.used + c.used
          FROM agent.budgets c
         WHERE c.agent_id = OLD.id AND p.agent_id = OLD.parent_id AND p.resource = c.resource;
    END IF;
    RETURN OLD;
END
$fn$;

-- Runs agents_before_delete before an agent is deleted.
CREATE TRIGGER agents_before_delete BEFORE DELETE ON agent.agents
    FOR EACH ROW EXECUTE FUNCTION agent.agents_before_delete();

-- Carves a budget out of the parent's; refuses a finished agent's budget and books written by hand.
CREATE OR REPLACE FUNCTION agent.budgets_guard() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    owner record;
    parent_budget record;
    delta numeric;
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.agent_id <> OLD.agent_id OR NEW.resource <> OLD.resource) THEN
        RAISE EXCEPTION 'budget_identity_fixed: budget % belongs to agent % for %; it cannot move',
            OLD.id, OLD.agent_id, OLD.resource
            USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_identity_fixed',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;

    SELECT status, parent_id INTO owner FROM agent.agents WHERE id = NEW.agent_id;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports a missing agent
    END IF;

    IF owner.status IN ({TERMINAL_AGENT_STATUSES}) THEN
        IF TG_OP = 'INSERT' OR NEW.allocated <> OLD.allocated OR NEW.used <> OLD.used
           OR NEW.reserved > OLD.reserved THEN
            RAISE EXCEPTION 'budget_closed: agent % is %; its % budget was returned to its parent',
                NEW.agent_id, owner.status, NEW.resource
                USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_closed',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
    END IF;

    -- used and reserved are kept by triggers only (depth 1 is this trigger itself: the
    -- write came from outside them), so the books always equal what the rows say.
    IF pg_trigger_depth() < 2 AND (CASE TG_OP
        WHEN 'INSERT' THEN NEW.used <> 0 OR NEW.reserved <> 0
        ELSE NEW.used <> OLD.used OR NEW.reserved <> OLD.reserved END) THEN
        RAISE EXCEPTION 'budget_books_derived: agent %''s % budget: used and reserved are kept from budget_reservations and child allocations; a write by hand asked for used %, reserved %',
            NEW.agent_id, NEW.resource, NEW.used, NEW.reserved
            USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_books_derived',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    IF owner.status IN ({TERMINAL_AGENT_STATUSES}) THEN
        RETURN NEW;
    END IF;

    IF TG_OP = 'INSERT' THEN
        -- Live children budgeting this resource got their allocations while this budget
        -- did not exist: hold them now, so reserved stays what the rows say (and their
        -- return at finish cannot take reserved below 0).
        PERFORM 1 FROM agent.budgets c JOIN agent.agents a ON a.id = c.agent_id
          WHERE a.parent_id = NEW.agent_id AND a.status NOT IN ({TERMINAL_AGENT_STATUSES})
            AND c.resource = NEW.resource
          ORDER BY a.depth_level, a.id FOR SHARE OF c;
        NEW.reserved := (SELECT coalesce(sum(c.allocated), 0)
                           FROM agent.budgets c JOIN agent.agents a ON a.id = c.agent_id
                          WHERE a.parent_id = NEW.agent_id AND a.status NOT IN ({TERMINAL_AGENT_STATUSES})
                            AND c.resource = NEW.resource);
    END IF;

    delta := NEW.allocated - CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE OLD.allocated END;
    IF owner.parent_id IS NULL OR delta = 0 THEN
        RETURN NEW;
    END IF;
    SELECT id, allocated, used, reserved INTO parent_budget
      FROM agent.budgets
     WHERE agent_id = owner.parent_id AND resource = NEW.resource
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NEW;  -- the parent does not budget this resource: nothing to carve from
    END IF;
    IF delta > parent_budget.allocated - parent_budget.used - parent_budget.reserved THEN
        RAISE EXCEPTION 'budget_limits: agent % asked its parent % for % %, % left',
            NEW.agent_id, owner.parent_id, delta, NEW.resource,
            parent_budget.allocated - parent_budget.used - parent_budget.reserved
            USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    UPDATE agent.budgets SET reserved = reserved + delta WHERE id = parent_budget.id;
    RETURN NEW;
END
$fn$;

-- Runs budgets_guard on every new or changed budget.
CREATE TRIGGER budgets_guard BEFORE INSERT OR UPDATE ON agent.budgets
    FOR EACH ROW EXECUTE FUNCTION agent.budgets_guard();

-- Deleting a live agent's budget gives its allocation back to the parent.
CREATE OR REPLACE FUNCTION agent.budgets_before_delete() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    owner record;
BEGIN
    -- Deleting one budget of a live agent gives it back to the parent. (When the
    -- agent itself is deleted, agents_before_delete already did, and the agent
    -- is no longer visible here.)
    SELECT status, parent_id INTO owner FROM agent.agents WHERE id = OLD.agent_id;
    IF FOUND AND owner.parent_id IS NOT NULL AND owner.status NOT IN ({TERMINAL_AGENT_STATUSES}) THEN
        UPDATE agent.budgets
           SET reserved = reserved - OLD.allocated, used = used + OLD.used
         WHERE agent_id = owner.parent_id AND resource = OLD.resource;
    END IF;
    RETURN OLD;
END
$fn$;

-- Runs budgets_before_delete before a budget is deleted.
CREATE TRIGGER budgets_before_delete BEFORE DELETE ON agent.budgets
    FOR EACH ROW EXECUTE FUNCTION agent.budgets_before_delete();
