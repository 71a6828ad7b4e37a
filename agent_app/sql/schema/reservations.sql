-- Budget reservations, the rows a budget's books are kept from: a held reservation counts
-- in reserved until it is committed (its actual moves to used), released, or expired
-- when its lease ends. The lock order everywhere: the budget row, then its reservations.
--
-- Functions that look rows up SET enable_seqscan = off (see tree.sql).

-- Expires one budget's held reservations whose lease ended; returns how many.
CREATE OR REPLACE FUNCTION agent.expire_reservations(p_budget uuid) RETURNS integer
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    n integer;
BEGIN
    -- Held reservations of one budget whose lease ended become expired; their trigger
    -- gives the amounts back. The caller holds the budget row's lock (the lock order:
    -- a budget, then its reservations), so there is no janitor and no race.
    UPDATE agent.budget_reservations SET state = 'expired'
     WHERE budget_id = p_budget AND state = 'held' AND lease_expires_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

-- Keeps a budget's used and reserved from its reservations: reserve, commit, release, expire.
CREATE OR REPLACE FUNCTION agent.budget_reservations_guard() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    bud record;
    free numeric;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state IN ('released', 'expired') THEN
            RAISE EXCEPTION 'reservation_starts_held: a reservation starts held (or committed, for usage without one), not %',
                NEW.state
                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_starts_held',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        IF NEW.state NOT IN ('held', 'committed')
           OR NOT coalesce(NEW.amount > 0 AND NEW.amount < 'Infinity', false)
           OR (NEW.state = 'committed'
               AND NOT coalesce(NEW.actual >= 0 AND NEW.actual < 'Infinity', false)) THEN
            RETURN NEW;  -- the CHECKs name what is wrong
        END IF;
        SELECT id, agent_id, resource INTO bud
          FROM agent.budgets WHERE id = NEW.budget_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NEW;  -- the foreign key reports a missing budget
        END IF;
        IF bud.agent_id <> NEW.agent_id OR bud.resource <> NEW.resource THEN
            RAISE EXCEPTION 'reservation_budget: budget % is agent %''s % budget, not agent %''s %',
                bud.id, bud.agent_id, bud.resource, NEW.agent_id, NEW.resource
                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_budget',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        -- Reservations whose lease ended never count against a new one.
        PERFORM agent.expire_reservations(NEW.budget_id);
        SELECT allocated - used - reserved INTO free FROM agent.budgets WHERE id = bud.id;
        IF NEW.state = 'held' THEN
            IF NEW.lease_expires_at <= now() THEN
                RAISE EXCEPTION 'reservation_lease: a lease must end after now (%), not at %',
                    now(), NEW.lease_expires_at
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_lease',
                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
            END IF;
            IF NEW.amount > free THEN
                RAISE EXCEPTION 'budget_limits: agent % asked to reserve % %, % left',
                    NEW.agent_id, NEW.amount, NEW.resource, free
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',
                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME,
                          DETAIL = json_build_object('agent', NEW.agent_id,
                                                     'resource', NEW.resource,
                                                     'asked', NEW.amount, 'left', free,
                                                     'by', 'asked to reserve')::text;
            END IF;
            UPDATE agent.budgets SET reserved = reserved + NEW.amount WHERE id = bud.id;
        ELSE
            IF NEW.actual > free THEN
                RAISE EXCEPTION 'budget_limits: agent % asked to use % %, % left',
                    NEW.agent_id, NEW.actual, NEW.resource, free
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',
                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME,
                          DETAIL = json_build_object('agent', NEW.agent_id,
                                                     'resource', NEW.resource,
                                                     'asked', NEW.actual, 'left', free,
                                                     'by', 'asked to use')::text;
            END IF;
            UPDATE agent.budgets SET used = used + NEW.actual WHERE id = bud.id;
        END IF;
        RETURN NEW;
    END IF;

    IF (NEW.id, NEW.agent_id, NEW.resource, NEW.budget_id, NEW.amount, NEW.holder,
        NEW.created_at) IS DISTINCT FROM (OLD.id, OLD.agent_id, OLD.resource, OLD.budget_id,
        OLD.amount, OLD.holder, OLD.created_at) THEN
        RAISE EXCEPTION 'reservation_fixed: reservation % of % % held by %: only its state, lease and actual change',
            OLD.id, OLD.amount, OLD.resource, OLD.holder
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_fixed',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    IF OLD.state <> 'held' THEN
        IF NEW IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION 'reservation_final: reservation % is already %; it cannot become % (actual %)',
                OLD.id, OLD.state, NEW.state, NEW.actual
                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_final',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.state = 'held' THEN
        IF NEW.lease_expires_at IS DISTINCT FROM OLD.lease_expires_at THEN
            IF OLD.lease_expires_at <= now() THEN
                RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its amount went back to the budget',
                    OLD.id, OLD.lease_expires_at
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_expired',
                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME,
                          DETAIL = json_build_object('id', OLD.id,
                                                     'lease_expires_at', OLD.lease_expires_at)::text;
            END IF;
            IF NEW.lease_expires_at <= now() THEN
                RAISE EXCEPTION 'reservation_lease: a lease must end after now (%), not at %',
                    now(), NEW.lease_expires_at
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_lease',
                          SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
            END IF;
        END IF;
        RETURN NEW;  -- the CHECKs refuse an actual or finished_at while held
    END IF;
    IF NEW.state NOT IN ('committed', 'released', 'expired') THEN
        RETURN NEW;  -- state_enum names it
    END IF;

    -- held -> committed / released / expired: the budget's books move with the row.
    PERFORM 1 FROM agent.budgets WHERE id = OLD.budget_id FOR UPDATE;
    NEW.finished_at := now();
    IF NEW.state = 'committed' THEN
        IF OLD.lease_expires_at <= now() THEN
            RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its amount went back to the budget',
                OLD.id, OLD.lease_expires_at
                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_expired',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME,
                      DETAIL = json_build_object('id', OLD.id,
                                                 'lease_expires_at', OLD.lease_expires_at)::text;
        END IF;
        IF NOT coalesce(NEW.actual >= 0 AND NEW.actual < 'Infinity', false) THEN
            RETURN NEW;  -- actual_when_committed names it
        END IF;
        SELECT allocated - used - reserved + OLD.amount INTO free
          FROM agent.budgets WHERE id = OLD.budget_id;
        IF NEW.actual > free THEN
            RAISE EXCEPTION 'budget_limits: agent % asked to use % %, % left',
                NEW.agent_id, NEW.actual, NEW.resource, free
                USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_limits',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME,
                      DETAIL = json_build_object('agent', NEW.agent_id,
                                                 'resource', NEW.resource,
                                                 'asked', NEW.actual, 'left', free,
                                                 'by', 'asked to use')::text;
        END IF;
        UPDATE agent.budgets SET reserved = reserved - OLD.amount, used = used + NEW.actual
         WHERE id = OLD.budget_id;
    ELSE
        IF NEW.state = 'expired' AND OLD.lease_expires_at > now() THEN
            RAISE EXCEPTION 'reservation_not_expired: reservation %''s lease runs until %; it cannot expire before',
                OLD.id, OLD.lease_expires_at
                USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_not_expired',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        UPDATE agent.budgets SET reserved = reserved - OLD.amount WHERE id = OLD.budget_id;
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs budget_reservations_guard on every new or changed reservation.
CREATE TRIGGER budget_reservations_guard BEFORE INSERT OR UPDATE ON agent.budget_reservations
    FOR EACH ROW EXECUTE FUNCTION agent.budget_reservations_guard();

-- Refuses deleting a held reservation by hand.
CREATE OR REPLACE FUNCTION agent.budget_reservations_before_delete() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- A held reservation deleted by hand would leave its amount reserved for ever. A
    -- cascade (its agent or budget deleted; depth 2) takes the books with it.
    IF OLD.state = 'held' AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'reservation_held: reservation % holds % %; commit or release it before deleting it',
            OLD.id, OLD.amount, OLD.resource
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_held',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN OLD;
END
$fn$;

-- Runs budget_reservations_before_delete before a reservation is deleted.
CREATE TRIGGER budget_reservations_before_delete BEFORE DELETE ON agent.budget_reservations
    FOR EACH ROW EXECUTE FUNCTION agent.budget_reservations_before_delete();

-- Commits, releases or renews one reservation for its holder; a repeat returns the first outcome.
CREATE OR REPLACE FUNCTION agent.reservation_act(
    p_id uuid, p_holder text, p_action text, p_actual numeric, p_lease interval
) RETURNS SETOF agent.budget_reservations
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    r agent.budget_reservations;
BEGIN
    -- commit / release / renew one reservation by id, for its holder. A repeated commit
    -- (same actual) or release returns the row as the first call left it; every
    -- refusal raises, so the statement (expiry included) changes nothing.
    SELECT * INTO r FROM agent.budget_reservations WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The lock order: the budget row, then its reservations.
    PERFORM 1 FROM agent.budgets WHERE id = r.budget_id FOR UPDATE;
    PERFORM agent.expire_reservations(r.budget_id);
    SELECT * INTO r FROM agent.budget_reservations WHERE id = p_id FOR UPDATE;
    IF r.holder <> p_holder THEN
        RAISE EXCEPTION 'reservation_holder: reservation % is held by %, not by %',
            r.id, quote_literal(r.holder), quote_literal(p_holder)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_holder',
                  SCHEMA = 'agent', TABLE = 'budget_reservations',
                  DETAIL = json_build_object('id', r.id, 'holder', r.holder,
                                             'asked', p_holder)::text;
    END IF;
    IF r.state = 'expired' THEN
        RAISE EXCEPTION 'reservation_expired: reservation %''s lease ended at %; its amount went back to the budget',
            r.id, r.lease_expires_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_expired',
                  SCHEMA = 'agent', TABLE = 'budget_reservations',
                  DETAIL = json_build_object('id', r.id,
                                             'lease_expires_at', r.lease_expires_at)::text;
    END IF;
    IF (p_action = 'commit' AND r.state = 'committed' AND r.actual = p_actual)
       OR (p_action = 'release' AND r.state = 'released') THEN
        RETURN NEXT r;  -- a repeat: the first outcome, the books untouched
        RETURN;
    END IF;
    IF r.state <> 'held' THEN
        RAISE EXCEPTION 'reservation_closed: reservation % is already % (actual %); it cannot be %',
            r.id, r.state, coalesce(r.actual::text, 'none'),
            CASE p_action WHEN 'commit' THEN 'committed with ' || p_actual
                          WHEN 'release' THEN 'released' ELSE 'renewed' END
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reservation_closed',
                  SCHEMA = 'agent', TABLE = 'budget_reservations',
                  DETAIL = json_build_object('id', r.id, 'state', r.state,
                                             'actual', r.actual, 'action', p_action)::text;
    END IF;
    IF p_action = 'commit' THEN
        UPDATE agent.budget_reservations SET state = 'committed', actual = p_actual
         WHERE id = p_id RETURNING * INTO r;
    ELSIF p_action = 'release' THEN
        UPDATE agent.budget_reservations SET state = 'released'
         WHERE id = p_id RETURNING * INTO r;
    ELSIF p_action = 'renew' THEN
        UPDATE agent.budget_reservations SET lease_expires_at = now() + p_lease
         WHERE id = p_id RETURNING * INTO r;
    ELSE
        RAISE EXCEPTION 'reservation_act: unknown action %', p_action;
    END IF;
    RETURN NEXT r;
END
$fn$;

-- An agent's budgets in one snapshot, with overdue reservations counted as expired.
CREATE OR REPLACE FUNCTION agent.budget_books(p_agent uuid)
    RETURNS TABLE(resource varchar, allocated numeric, used numeric, reserved numeric, held numeric)
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    b record;
BEGIN
    -- Expire what is overdue first (budget rows locked by resource: the lock order), unless
    -- the caller's transaction is read-only; then the figures read as if expired.
    IF current_setting('transaction_read_only') = 'off' AND EXISTS (
        SELECT 1 FROM agent.budgets x JOIN agent.budget_reservations r ON r.budget_id = x.id
         WHERE x.agent_id = p_agent AND r.state = 'held' AND r.lease_expires_at <= now()) THEN
        FOR b IN SELECT x.id FROM agent.budgets x WHERE x.agent_id = p_agent
                  ORDER BY x.resource FOR UPDATE
        LOOP
            PERFORM agent.expire_reservations(b.id);
        END LOOP;
    END IF;
    -- One statement: one snapshot of all the agent's budgets.
    RETURN QUERY
    SELECT x.resource, x.allocated, x.used, x.reserved - coalesce(o.overdue, 0),
           coalesce(o.held, 0)
      FROM agent.budgets x
      LEFT JOIN LATERAL (
            SELECT sum(r.amount) FILTER (WHERE r.lease_expires_at <= now()) AS overdue,
                   sum(r.amount) FILTER (WHERE r.lease_expires_at > now()) AS held
              FROM agent.budget_reservations r WHERE r.budget_id = x.id AND r.state = 'held') o ON true
     WHERE x.agent_id = p_agent
     ORDER BY x.resource;
END
$fn$;
