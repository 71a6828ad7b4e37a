-- Questions to a person (agent_app.cta): the statements Piccolo cannot write. Reads
-- and the answer go through Piccolo's query builder.

-- name: ask
-- A new question of run $1: $2 phase (or null), $3 kind, $4 prompt, $5 options (JSON
-- text or null), expiring $6 (an interval, or null for never) after now.
INSERT INTO agent.cta_events (run_id, phase, kind, prompt, options, expires_at)
VALUES ($1, $2, $3, $4, $5::jsonb, now() + $6::interval)
RETURNING *;

-- name: expire
-- Close every unanswered, unexpired question now (of run $1, or all when it is null),
-- waking each one's waiters with a NOTIFY on channel $2 (payload: the question's id).
UPDATE agent.cta_events
   SET expires_at = now()
 WHERE responded_at IS NULL
   AND (expires_at IS NULL OR expires_at > now())
   AND ($1::uuid IS NULL OR run_id = $1)
RETURNING id, pg_notify($2, id::text);
