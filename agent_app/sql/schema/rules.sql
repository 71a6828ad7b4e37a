-- Refusals under a rule's name: SQLSTATE 23514 (check_violation) with the constraint set
-- to the rule, as every trigger in these files raises them, so callers catch them like any
-- CHECK violation.

-- Raises a check_violation named rule, for plain SQL statements that must refuse.
CREATE OR REPLACE FUNCTION agent.raise_rule(rule text, message text) RETURNS boolean
    LANGUAGE plpgsql
AS $fn$
BEGIN
    -- Lets a single SQL statement refuse (and so roll itself back) under a named rule,
    -- e.g. "CASE WHEN <all held> THEN true ELSE agent.raise_rule(...) END".
    RAISE EXCEPTION '%: %', rule, message
          USING ERRCODE = 'check_violation', CONSTRAINT = rule, SCHEMA = 'agent';
END
$fn$;
