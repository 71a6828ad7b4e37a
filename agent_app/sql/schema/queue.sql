-- The message queue's rules: a message goes to a live agent of its run, and a consumer
-- LISTENing on {MESSAGES_CHANNEL} wakes when a message for it becomes pending.
--
-- Functions that look rows up SET enable_seqscan = off (see tree.sql).

-- A message goes to a live agent, in its run; one returning to a finished agent is cancelled.
CREATE OR REPLACE FUNCTION agent.messages_recipient() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off
AS $fn$
DECLARE
    recipient record;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.recipient_id = OLD.recipient_id
       AND NEW.run_id IS NOT DISTINCT FROM OLD.run_id THEN
        -- A message coming back to pending (a retry, a released or expired claim, a
        -- redrive) for an agent that has finished is cancelled instead, as finish
        -- cancels the pending ones: a finished agent never gets a message again.
        IF NEW.status = 'pending' AND OLD.status <> 'pending' AND EXISTS (
            SELECT 1 FROM agent.agents
             WHERE id = NEW.recipient_id AND status IN ({TERMINAL_AGENT_STATUSES})) THEN
            NEW.status := 'cancelled';
            NEW.finished_at := now();
            NEW.claimed_by := NULL;
            NEW.claimed_at := NULL;
            NEW.lease_expires_at := NULL;
        END IF;
        RETURN NEW;
    END IF;
    -- FOR SHARE: the recipient cannot finish while a message to it is being added
    -- (finish then cancels it with the rest), and a finished one takes no more.
    SELECT status, run_id INTO recipient
      FROM agent.agents WHERE id = NEW.recipient_id FOR SHARE;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports a missing recipient
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.recipient_id <> OLD.recipient_id)
       AND recipient.status IN ({TERMINAL_AGENT_STATUSES}) THEN
        RAISE EXCEPTION 'recipient_live: agent % is %; it takes no more messages',
            NEW.recipient_id, recipient.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'recipient_live',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    -- Back to pending for a finished agent while the run changes too: cancelled, as above.
    IF TG_OP = 'UPDATE' AND NEW.status = 'pending' AND OLD.status <> 'pending'
       AND recipient.status IN ({TERMINAL_AGENT_STATUSES}) THEN
        NEW.status := 'cancelled';
        NEW.finished_at := now();
        NEW.claimed_by := NULL;
        NEW.claimed_at := NULL;
        NEW.lease_expires_at := NULL;
    END IF;
    -- A message belongs to its recipient's run unless it names one, so deleting the run
    -- deletes it too.
    IF NEW.run_id IS NULL THEN
        NEW.run_id := recipient.run_id;
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs messages_recipient on new messages.
CREATE TRIGGER messages_recipient
    BEFORE INSERT ON agent.messages
    FOR EACH ROW EXECUTE FUNCTION agent.messages_recipient();

-- Runs messages_recipient on a change of recipient or run and on a return to pending;
-- a claim or an ack (neither) never calls the function (the WHEN test costs far less).
CREATE TRIGGER messages_recipient_change
    BEFORE UPDATE OF recipient_id, run_id, status ON agent.messages
    FOR EACH ROW
    WHEN (NEW.recipient_id IS DISTINCT FROM OLD.recipient_id
          OR NEW.run_id IS DISTINCT FROM OLD.run_id
          OR (NEW.status = 'pending' AND OLD.status IS DISTINCT FROM 'pending'))
    EXECUTE FUNCTION agent.messages_recipient();

-- NOTIFYs each recipient of new pending messages, once per statement.
CREATE OR REPLACE FUNCTION agent.messages_notify() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- One notification per recipient per statement, so a consumer wakes at once;
    -- delayed messages are found by polling when their time comes.
    PERFORM pg_notify({MESSAGES_CHANNEL}, r.recipient_id::text)
       FROM (SELECT DISTINCT recipient_id FROM new_rows
              WHERE status = 'pending' AND available_at <= now()) AS r;
    RETURN NULL;
END
$fn$;

-- Runs messages_notify once per INSERT statement, with the inserted rows.
CREATE TRIGGER messages_notify AFTER INSERT ON agent.messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent.messages_notify();
