-- Checkpoints: an agent's sequence numbers only go up, and a checkpoint's parent is an
-- earlier checkpoint of the same agent.

-- An agent's checkpoints are numbered upwards, never renumbered; a parent is an earlier one.
CREATE OR REPLACE FUNCTION agent.checkpoints_guard() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.agent_id <> OLD.agent_id OR NEW.sequence <> OLD.sequence THEN
            RAISE EXCEPTION 'checkpoint_sequence_fixed: checkpoint % is number % of agent %; it cannot be renumbered',
                OLD.id, OLD.sequence, OLD.agent_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'checkpoint_sequence_fixed',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
    ELSIF (SELECT sequence FROM agent.checkpoints WHERE agent_id = NEW.agent_id
            ORDER BY sequence DESC LIMIT 1) >= NEW.sequence THEN
        RAISE EXCEPTION 'checkpoint_sequence_increasing: agent % already has a checkpoint numbered % or higher',
            NEW.agent_id, NEW.sequence
            USING ERRCODE = 'check_violation', CONSTRAINT = 'checkpoint_sequence_increasing',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    IF NEW.parent_checkpoint_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM agent.checkpoints
         WHERE id = NEW.parent_checkpoint_id AND agent_id = NEW.agent_id
           AND sequence < NEW.sequence) THEN
        RAISE EXCEPTION 'checkpoint_parent_earlier: parent checkpoint % is not an earlier checkpoint of agent %',
            NEW.parent_checkpoint_id, NEW.agent_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'checkpoint_parent_earlier',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs checkpoints_guard on every new or changed checkpoint.
CREATE TRIGGER checkpoints_guard BEFORE INSERT OR UPDATE ON agent.checkpoints
    FOR EACH ROW EXECUTE FUNCTION agent.checkpoints_guard();
