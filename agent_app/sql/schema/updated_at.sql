-- updated_at is the time of the row's last UPDATE, whoever writes it.

-- Sets updated_at to now() on every UPDATE of the row.
CREATE OR REPLACE FUNCTION agent.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;

-- sandboxes.updated_at follows every UPDATE.
CREATE TRIGGER sandboxes_set_updated_at BEFORE UPDATE ON agent.sandboxes
    FOR EACH ROW EXECUTE FUNCTION agent.set_updated_at();

-- feature_runs.updated_at follows every UPDATE.
CREATE TRIGGER feature_runs_set_updated_at BEFORE UPDATE ON agent.feature_runs
    FOR EACH ROW EXECUTE FUNCTION agent.set_updated_at();

-- agents.updated_at follows every UPDATE.
CREATE TRIGGER agents_set_updated_at BEFORE UPDATE ON agent.agents
    FOR EACH ROW EXECUTE FUNCTION agent.set_updated_at();

-- budgets.updated_at follows every UPDATE.
CREATE TRIGGER budgets_set_updated_at BEFORE UPDATE ON agent.budgets
    FOR EACH ROW EXECUTE FUNCTION agent.set_updated_at();

-- workspaces.updated_at follows every UPDATE.
CREATE TRIGGER workspaces_set_updated_at BEFORE UPDATE ON agent.workspaces
    FOR EACH ROW EXECUTE FUNCTION agent.set_updated_at();
