-- Legal status changes, one trigger per status column. Each CASE lists, per status, the
-- statuses it may change to; agent_app/transitions.py holds the same tables for the worker
-- API's friendly errors, and the test suite checks that the two agree.

-- The legal changes of feature_runs.current_phase (agent_app.transitions.RUN_PHASE).
CREATE OR REPLACE FUNCTION agent.run_phase_transition() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- One line per status: the statuses it may change to (tests/test_schema_files.py checks
    -- them against agent_app/transitions.py).
    IF NEW.current_phase IS DISTINCT FROM OLD.current_phase AND NOT (CASE OLD.current_phase
        WHEN 'analysis' THEN NEW.current_phase IN ('approaches', 'failed')
        WHEN 'approaches' THEN NEW.current_phase IN ('failed', 'judging')
        WHEN 'judging' THEN NEW.current_phase IN ('failed', 'implementation')
        WHEN 'implementation' THEN NEW.current_phase IN ('failed', 'pr')
        WHEN 'pr' THEN NEW.current_phase IN ('completed', 'failed')
        WHEN 'completed' THEN false
        WHEN 'failed' THEN false
        ELSE false END) THEN
        RAISE EXCEPTION 'run_phase_transition: % -> % is not a legal change',
            OLD.current_phase, NEW.current_phase
            USING ERRCODE = 'check_violation', CONSTRAINT = 'run_phase_transition',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs run_phase_transition when current_phase changes.
CREATE TRIGGER run_phase_transition BEFORE UPDATE OF current_phase ON agent.feature_runs
    FOR EACH ROW EXECUTE FUNCTION agent.run_phase_transition();

-- The legal changes of phase_results.status (agent_app.transitions.PHASE_STATUS).
CREATE OR REPLACE FUNCTION agent.phase_status_transition() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- One line per status: the statuses it may change to (tests/test_schema_files.py checks
    -- them against agent_app/transitions.py).
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (CASE OLD.status
        WHEN 'running' THEN NEW.status IN ('failed', 'passed')
        WHEN 'passed' THEN false
        WHEN 'failed' THEN false
        ELSE false END) THEN
        RAISE EXCEPTION 'phase_status_transition: % -> % is not a legal change',
            OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'phase_status_transition',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs phase_status_transition when a phase attempt's status changes.
CREATE TRIGGER phase_status_transition BEFORE UPDATE OF status ON agent.phase_results
    FOR EACH ROW EXECUTE FUNCTION agent.phase_status_transition();

-- The legal changes of sandboxes.status (agent_app.transitions.SANDBOX_STATUS).
CREATE OR REPLACE FUNCTION agent.sandbox_status_transition() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- One line per status: the statuses it may change to (tests/test_schema_files.py checks
    -- them against agent_app/transitions.py).
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (CASE OLD.status
        WHEN 'pending' THEN NEW.status IN ('aborted', 'failed', 'running')
        WHEN 'running' THEN NEW.status IN ('aborted', 'failed', 'snapshotting', 'stopping')
        WHEN 'snapshotting' THEN NEW.status IN ('aborted', 'failed', 'running', 'stopping')
        WHEN 'stopping' THEN NEW.status IN ('aborted', 'failed', 'stopped')
        WHEN 'stopped' THEN false
        WHEN 'failed' THEN false
        WHEN 'aborted' THEN false
        ELSE false END) THEN
        RAISE EXCEPTION 'sandbox_status_transition: % -> % is not a legal change',
            OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'sandbox_status_transition',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs sandbox_status_transition when a sandbox's status changes.
CREATE TRIGGER sandbox_status_transition BEFORE UPDATE OF status ON agent.sandboxes
    FOR EACH ROW EXECUTE FUNCTION agent.sandbox_status_transition();
