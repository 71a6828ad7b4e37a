-- Questions to a person (cta_events): answered once, before expiry, with an offered choice;
-- the answer wakes agent_app.cta.wait() through NOTIFY on {CTA_CHANNEL}.

-- A question is answered once, before it expires, with an offered option; NOTIFYs the waiter.
CREATE OR REPLACE FUNCTION agent.cta_answer_rules() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    IF OLD.responded_at IS NOT NULL
       AND (NEW.response IS DISTINCT FROM OLD.response
            OR NEW.responded_at IS DISTINCT FROM OLD.responded_at
            OR NEW.responded_by IS DISTINCT FROM OLD.responded_by) THEN
        RAISE EXCEPTION 'cta_answered_once: question % was already answered at %',
            OLD.id, OLD.responded_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'cta_answered_once',
                  SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
    END IF;
    IF NEW.responded_at IS NOT NULL AND OLD.responded_at IS NULL THEN
        IF OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.responded_at THEN
            RAISE EXCEPTION 'cta_expired: question % expired at %',
                OLD.id, OLD.expires_at
                USING ERRCODE = 'check_violation', CONSTRAINT = 'cta_expired',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        IF NEW.kind = 'choice' AND NOT (NEW.options @> jsonb_build_array(NEW.response)) THEN
            RAISE EXCEPTION 'choice_not_offered: % is not one of the options %',
                NEW.response, NEW.options
                USING ERRCODE = 'check_violation', CONSTRAINT = 'choice_not_offered',
                      SCHEMA = 'agent', TABLE = TG_TABLE_NAME;
        END IF;
        -- Wakes agent_app.cta.wait() at commit (never sent if the answer rolls back).
        PERFORM pg_notify({CTA_CHANNEL}, NEW.id::text);
    END IF;
    RETURN NEW;
END
$fn$;

-- Runs cta_answer_rules on every change of a question.
CREATE TRIGGER cta_answer_rules BEFORE UPDATE ON agent.cta_events
    FOR EACH ROW EXECUTE FUNCTION agent.cta_answer_rules();
