-- The agent tree: depth_level derived from the parent (the depth_limit CHECK caps it), a
-- parent fixed for life, a terminal status final, children finished before their parent,
-- and the closure table hierarchies kept by triggers only.
--
-- Functions that look rows up SET enable_seqscan = off: their lookups are index lookups by
-- design, and a plan cached while a table was small would scan it on every later call.

-- Derives depth_level; keeps the parent and a terminal status fixed; children finish first.
CREATE OR REPLACE FUNCTION agent.agents_guard() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    parent record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.parent_id IS NULL THEN
            NEW.depth_level := 0;
        ELSE
            -- FOR SHARE: a parent cannot finish while a child is being added under it.
            SELECT depth_level, status INTO parent
              FROM agent.agents WHERE id = NEW.parent_id FOR SHARE;
            IF FOUND THEN
                IF parent.status IN ({TERMINAL_AGENT_STATUSES}) THEN
                    RAISE EXCEPTION 'parent_live: parent agent % is %, it cannot take children',
                        NEW.parent_id, parent.status
                        USING ERRCODE = 'check_violation', CONSTRAINT = 'parent_live',
                              SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
                END IF;
                -- depth_limit (a CHECK) refuses a level past the maximum.
                NEW.depth_level := parent.depth_level + 1;
            END IF;
            -- A missing parent is reported by the foreign key, a self parent by parent_not_self.
        END IF;
        IF NEW.status IN ({TERMINAL_AGENT_STATUSES}) THEN
            NEW.finished_at := coalesce(NEW.finished_at, now());
        END IF;
        RETURN NEW;
    END IF;

    IF NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        RAISE EXCEPTION 'parent_fixed: agent % cannot move from parent % to %',
            OLD.id, OLD.parent_id, NEW.parent_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'parent_fixed',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    IF NEW.depth_level <> OLD.depth_level THEN
        RAISE EXCEPTION 'depth_level_derived: agent % sits at depth %, it cannot be set to %',
            OLD.id, OLD.depth_level, NEW.depth_level
            USING ERRCODE = 'check_violation', CONSTRAINT = 'depth_level_derived',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    IF OLD.status IN ({TERMINAL_AGENT_STATUSES}) AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'terminal_final: agent % is already %, it cannot become %',
            OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'terminal_final',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    IF NEW.status IN ({TERMINAL_AGENT_STATUSES}) AND OLD.status NOT IN ({TERMINAL_AGENT_STATUSES}) THEN
        IF EXISTS (SELECT 1 FROM agent.agents
                    WHERE parent_id = NEW.id AND status NOT IN ({TERMINAL_AGENT_STATUSES})) THEN
            RAISE EXCEPTION 'children_finish_first: agent % still has live children; finish them before it becomes %',
                OLD.id, NEW.status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'children_finish_first',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        NEW.finished_at := coalesce(NEW.finished_at, now());
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs agents_guard on every new or changed agent.
CREATE TRIGGER agents_guard BEFORE INSERT OR UPDATE ON agent.agents
    FOR EACH ROW EXECUTE FUNCTION agent.agents_guard();

-- Adds the new agent's rows to hierarchies: one per ancestor.
CREATE OR REPLACE FUNCTION agent.agents_closure() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
BEGIN
    -- One row per ancestor: the parent's ancestors one level further, and the parent.
    INSERT INTO agent.hierarchies (parent_id, child_id, depth)
    SELECT h.parent_id, NEW.id, h.depth + 1
      FROM agent.hierarchies h
     WHERE h.child_id = NEW.parent_id
    UNION ALL
    SELECT NEW.parent_id, NEW.id, 1
     WHERE NEW.parent_id IS NOT NULL;
    RETURN NULL;
END
$fn$;

-- Runs agents_closure after each new agent.
CREATE TRIGGER agents_closure AFTER INSERT ON agent.agents
    FOR EACH ROW EXECUTE FUNCTION agent.agents_closure();

-- Refuses writes to hierarchies by hand: only agents_closure and deletes of agents change it.
CREATE OR REPLACE FUNCTION agent.hierarchies_guard() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A closure row goes with its agents: deleting an agent (or its run) cascades
        -- here once the agent is gone. While both agents exist, it is a delete by hand.
        IF EXISTS (SELECT 1 FROM agent.agents WHERE id = OLD.child_id)
           AND EXISTS (SELECT 1 FROM agent.agents WHERE id = OLD.parent_id) THEN
            RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; delete agents instead (DELETE of % -> % by hand)',
                OLD.parent_id, OLD.child_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'hierarchies_derived',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        RETURN OLD;
    END IF;
    -- Depth 1 is this trigger itself: the write came from outside agents_closure.
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; insert agents instead (% % by hand)',
            TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'check_violation', CONSTRAINT = 'hierarchies_derived',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs hierarchies_guard on every write to hierarchies.
CREATE TRIGGER hierarchies_guard BEFORE INSERT OR UPDATE OR DELETE ON agent.hierarchies
    FOR EACH ROW EXECUTE FUNCTION agent.hierarchies_guard();

-- Refuses TRUNCATE hierarchies while agents remain.
CREATE OR REPLACE FUNCTION agent.hierarchies_truncate_guard() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- After the truncation: TRUNCATE agents ... CASCADE emptied both tables and passes;
    -- the closure emptied while agents remain would lose the tree, so it is refused.
    IF EXISTS (SELECT 1 FROM agent.agents) THEN
        RAISE EXCEPTION 'hierarchies_derived: hierarchies is kept by the agents trigger; % % by hand would lose the tree of the agents that remain',
            TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'check_violation', CONSTRAINT = 'hierarchies_derived',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$fn$;

-- Runs hierarchies_truncate_guard after TRUNCATE hierarchies.
CREATE TRIGGER hierarchies_truncate_guard AFTER TRUNCATE ON agent.hierarchies
    FOR EACH STATEMENT EXECUTE FUNCTION agent.hierarchies_truncate_guard();
