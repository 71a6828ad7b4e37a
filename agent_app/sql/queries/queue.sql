-- The message queue's statements (agent_app.queue). Each statement is a whole
-- operation, so each operation is atomic. The lease checks read the database's clock
-- at the time of the statement (statement_timestamp()), not at the start of a
-- caller's transaction (now()).
--
-- "m.id = ANY(ARRAY(subquery))" finds rows by primary key whatever the planner
-- guesses: with "FROM chosen WHERE m.id = chosen.id", the generic plan that asyncpg's
-- prepared statement settles on after five calls guesses LIMIT $2 at 10% of the table
-- and hash-joins a sequential scan of all of it (20-60 ms per claim once the table has
-- worked for a while).
--
-- A list of ids is matched as "m.id = ANY(ARRAY(SELECT unnest($1)))", not "ANY($1)":
-- the planner then cannot see the ids, so the generic plan that asyncpg's prepared
-- statement settles on is kept. With "ANY($1)" a custom plan for the call's ids always
-- looks cheaper than the generic one (which guesses ten ids), so ack, extend and fail
-- were planned again at every call (pg_prepared_statements.custom_plans). Likewise
-- claim_one's "LIMIT (SELECT $2::int)": once the table has statistics, a custom plan
-- for "LIMIT 1" always looked cheaper than the generic plan's guess of 10% of the
-- recipient's rows, so every claim was planned again (0.3-0.6 ms, more than running
-- it). The generic plan is the same ordered scan of the claim index (checked at
-- 200,000 pending messages of one recipient). claim_many keeps "LIMIT $2" and its
-- custom plans: it sorts the recipients' pending rows, and the exact limit is what
-- keeps that sort a top-N one.
--
-- {MESSAGES_CHANNEL} is the channel the Consumer LISTENs on (agent_app.constants).

-- name: send
-- Send one message: $1 recipient, $2 kind, $3 payload (JSON text), $4 priority,
-- $5 sender (or NULL), $6 run (NULL: the recipient's run, filled in by the database),
-- $7 delay before it is claimable, $8 max attempts. Returns its id. (One recipient:
-- the messages_recipient trigger's FOR SHARE is the only agent lock, nothing to order.)
INSERT INTO agent.messages
       (recipient_id, kind, payload, priority, sender_id, run_id, available_at, max_attempts)
VALUES ($1, $2, $3::jsonb, $4, $5, $6, now() + $7::interval, $8)
RETURNING id;

-- name: send_many
-- Send a batch to one recipient in one INSERT, all or none, in sending order: one row
-- per element of $3, the payloads (JSON text). The other columns are arrays holding
-- one element per message, or a single element that is the same for every message (a
-- value shared by the batch travels once): $1 recipients, $2 kinds, $4 priorities,
-- $5 senders, $6 runs, $7 delays, $8 max attempts. Returns the ids in sending order
-- (they increase in that order). One recipient: the messages_recipient trigger's FOR
-- SHARE is the only agent lock. (unnest, not generate_series: the generic plan that
-- asyncpg's prepared statement settles on is kept, no planning per call.)
INSERT INTO agent.messages
       (recipient_id, kind, payload, priority, sender_id, run_id, available_at, max_attempts)
SELECT ($1::uuid[])[least(t.n, cardinality($1::uuid[]))],
       ($2::varchar[])[least(t.n, cardinality($2::varchar[]))],
       t.payload::jsonb,
       ($4::smallint[])[least(t.n, cardinality($4::smallint[]))],
       ($5::uuid[])[least(t.n, cardinality($5::uuid[]))],
       ($6::uuid[])[least(t.n, cardinality($6::uuid[]))],
       now() + ($7::interval[])[least(t.n, cardinality($7::interval[]))],
       ($8::int[])[least(t.n, cardinality($8::int[]))]
  FROM unnest($3::text[]) WITH ORDINALITY AS t(payload, n)
 ORDER BY t.n
RETURNING id;

-- name: send_many_locked
-- send_many for a batch to several recipients: $9, the distinct recipients, are first
-- locked FOR SHARE in the API's lock order (agents by depth_level, id; see
-- agent_app.db), in an InitPlan that runs before the first row is inserted, so the
-- messages_recipient trigger finds each one locked.
WITH recipients AS (
    SELECT id FROM agent.agents
     WHERE id = ANY($9::uuid[])
     ORDER BY depth_level, id
       FOR SHARE
)
INSERT INTO agent.messages
       (recipient_id, kind, payload, priority, sender_id, run_id, available_at, max_attempts)
SELECT ($1::uuid[])[least(t.n, cardinality($1::uuid[]))],
       ($2::varchar[])[least(t.n, cardinality($2::varchar[]))],
       t.payload::jsonb,
       ($4::smallint[])[least(t.n, cardinality($4::smallint[]))],
       ($5::uuid[])[least(t.n, cardinality($5::uuid[]))],
       ($6::uuid[])[least(t.n, cardinality($6::uuid[]))],
       now() + ($7::interval[])[least(t.n, cardinality($7::interval[]))],
       ($8::int[])[least(t.n, cardinality($8::int[]))]
  FROM unnest($3::text[]) WITH ORDINALITY AS t(payload, n)
 WHERE (SELECT count(*) FROM recipients) >= 0
 ORDER BY t.n
RETURNING id;

-- name: claim_one
-- Claim up to $2 messages of recipient $1 for worker $3 with a lease of $4 (interval),
-- best first (priority DESC, id). First requeues the recipient's expired claims (dead
-- after the last attempt) with a NOTIFY, so idle consumers claim them at once. LockRows
-- sits under the LIMIT: the statement locks exactly the rows it claims, no better
-- message is held back from a concurrent claimer. "recipient_id = $1" is an ordered scan
-- of the partial claim index. Returns the claimed messages (agent_app.queue.Message).
WITH requeued AS (
    UPDATE agent.messages
       SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
           finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
           last_error = CASE WHEN attempts >= max_attempts
                             THEN 'lease expired on the last attempt (held by ' || claimed_by || ')'
                             ELSE 'lease expired (held by ' || claimed_by || ')' END,
           lease_expires_at = NULL, claimed_by = NULL, claimed_at = NULL, available_at = now()
     WHERE id = ANY(ARRAY(SELECT id FROM agent.messages
                           WHERE status = 'claimed' AND lease_expires_at < statement_timestamp()
                             AND recipient_id = $1::uuid
                             FOR UPDATE SKIP LOCKED))
    RETURNING CASE WHEN status = 'pending'
                   THEN pg_notify({MESSAGES_CHANNEL}, recipient_id::text) END
), chosen AS (
    SELECT id FROM agent.messages
     WHERE recipient_id = $1::uuid AND status = 'pending' AND available_at <= now()
     ORDER BY priority DESC, id
     LIMIT (SELECT $2::int)
       FOR UPDATE SKIP LOCKED
)
UPDATE agent.messages AS m
   SET status = 'claimed', attempts = m.attempts + 1, claimed_by = $3, claimed_at = now(),
       lease_expires_at = statement_timestamp() + $4::interval
 WHERE m.id = ANY(ARRAY(SELECT id FROM chosen))
RETURNING m.id, m.recipient_id, m.sender_id, m.run_id, m.kind, m.payload::text AS payload,
          m.priority, m.attempts, m.max_attempts, m.claimed_by, m.lease_expires_at,
          m.created_at, m.last_error;

-- name: claim_many
-- claim_one for any of the recipients $1 (an array): the same statement, with
-- "recipient_id = ANY($1)" (a sort of their pending rows) as the recipient test.
WITH requeued AS (
    UPDATE agent.messages
       SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
           finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
           last_error = CASE WHEN attempts >= max_attempts
                             THEN 'lease expired on the last attempt (held by ' || claimed_by || ')'
                             ELSE 'lease expired (held by ' || claimed_by || ')' END,
           lease_expires_at = NULL, claimed_by = NULL, claimed_at = NULL, available_at = now()
     WHERE id = ANY(ARRAY(SELECT id FROM agent.messages
                           WHERE status = 'claimed' AND lease_expires_at < statement_timestamp()
                             AND recipient_id = ANY($1::uuid[])
                             FOR UPDATE SKIP LOCKED))
    RETURNING CASE WHEN status = 'pending'
                   THEN pg_notify({MESSAGES_CHANNEL}, recipient_id::text) END
), chosen AS (
    SELECT id FROM agent.messages
     WHERE recipient_id = ANY($1::uuid[]) AND status = 'pending' AND available_at <= now()
     ORDER BY priority DESC, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
UPDATE agent.messages AS m
   SET status = 'claimed', attempts = m.attempts + 1, claimed_by = $3, claimed_at = now(),
       lease_expires_at = statement_timestamp() + $4::interval
 WHERE m.id = ANY(ARRAY(SELECT id FROM chosen))
RETURNING m.id, m.recipient_id, m.sender_id, m.run_id, m.kind, m.payload::text AS payload,
          m.priority, m.attempts, m.max_attempts, m.claimed_by, m.lease_expires_at,
          m.created_at, m.last_error;

-- name: ack_claim_one
-- claim_one after acking the messages $5 (held by worker $3 at attempts $6, by
-- position) exactly as "ack" does: a worker's "done with these, give me the next" as
-- one statement, one round trip, one commit. The ack is all or nothing and comes first:
-- if one of $5 is no longer held, raise_rule('lease_lost') in all_acked aborts the
-- statement, so nothing is acked and nothing claimed. all_acked is a one-time filter
-- of "chosen" (evaluated before its scan, so a refused ack scans nothing) and of the
-- final UPDATE (evaluated whatever "chosen" finds: a Limit of 0 would never run its
-- child). One snapshot for all: the acked rows were claimed, never
-- among the pending ones chosen, and the acked (unexpired) and requeued (expired)
-- leases are disjoint. Otherwise the same statement as claim_one (a test compares
-- them).
WITH acked AS (
    UPDATE agent.messages AS m
       SET status = 'done', finished_at = now(), lease_expires_at = NULL
     WHERE m.id = ANY(ARRAY(SELECT unnest($5::bigint[])))
       AND m.lease_expires_at > statement_timestamp() AND m.claimed_by = $3
       AND m.attempts = ($6::int[])[array_position($5::bigint[], m.id)]
    RETURNING m.id
), all_acked AS (
    SELECT CASE WHEN count(*) = cardinality($5::bigint[]) THEN true
                ELSE agent.raise_rule('lease_lost', 'a listed message is no longer held') END AS ok
      FROM acked
), requeued AS (
    UPDATE agent.messages
       SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
           finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
           last_error = CASE WHEN attempts >= max_attempts
                             THEN 'lease expired on the last attempt (held by ' || claimed_by || ')'
                             ELSE 'lease expired (held by ' || claimed_by || ')' END,
           lease_expires_at = NULL, claimed_by = NULL, claimed_at = NULL, available_at = now()
     WHERE id = ANY(ARRAY(SELECT id FROM agent.messages
                           WHERE status = 'claimed' AND lease_expires_at < statement_timestamp()
                             AND recipient_id = $1::uuid
                             FOR UPDATE SKIP LOCKED))
    RETURNING CASE WHEN status = 'pending'
                   THEN pg_notify({MESSAGES_CHANNEL}, recipient_id::text) END
), chosen AS (
    SELECT id FROM agent.messages
     WHERE recipient_id = $1::uuid AND status = 'pending' AND available_at <= now()
       AND (SELECT ok FROM all_acked)
     ORDER BY priority DESC, id
     LIMIT (SELECT $2::int)
       FOR UPDATE SKIP LOCKED
)
UPDATE agent.messages AS m
   SET status = 'claimed', attempts = m.attempts + 1, claimed_by = $3, claimed_at = now(),
       lease_expires_at = statement_timestamp() + $4::interval
 WHERE m.id = ANY(ARRAY(SELECT id FROM chosen)) AND (SELECT ok FROM all_acked)
RETURNING m.id, m.recipient_id, m.sender_id, m.run_id, m.kind, m.payload::text AS payload,
          m.priority, m.attempts, m.max_attempts, m.claimed_by, m.lease_expires_at,
          m.created_at, m.last_error;

-- name: ack_claim_many
-- ack_claim_one for any of the recipients $1 (an array), as claim_many is claim_one.
WITH acked AS (
    UPDATE agent.messages AS m
       SET status = 'done', finished_at = now(), lease_expires_at = NULL
     WHERE m.id = ANY(ARRAY(SELECT unnest($5::bigint[])))
       AND m.lease_expires_at > statement_timestamp() AND m.claimed_by = $3
       AND m.attempts = ($6::int[])[array_position($5::bigint[], m.id)]
    RETURNING m.id
), all_acked AS (
    SELECT CASE WHEN count(*) = cardinality($5::bigint[]) THEN true
                ELSE agent.raise_rule('lease_lost', 'a listed message is no longer held') END AS ok
      FROM acked
), requeued AS (
    UPDATE agent.messages
       SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
           finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
           last_error = CASE WHEN attempts >= max_attempts
                             THEN 'lease expired on the last attempt (held by ' || claimed_by || ')'
                             ELSE 'lease expired (held by ' || claimed_by || ')' END,
           lease_expires_at = NULL, claimed_by = NULL, claimed_at = NULL, available_at = now()
     WHERE id = ANY(ARRAY(SELECT id FROM agent.messages
                           WHERE status = 'claimed' AND lease_expires_at < statement_timestamp()
                             AND recipient_id = ANY($1::uuid[])
                             FOR UPDATE SKIP LOCKED))
    RETURNING CASE WHEN status = 'pending'
                   THEN pg_notify({MESSAGES_CHANNEL}, recipient_id::text) END
), chosen AS (
    SELECT id FROM agent.messages
     WHERE recipient_id = ANY($1::uuid[]) AND status = 'pending' AND available_at <= now()
       AND (SELECT ok FROM all_acked)
     ORDER BY priority DESC, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
UPDATE agent.messages AS m
   SET status = 'claimed', attempts = m.attempts + 1, claimed_by = $3, claimed_at = now(),
       lease_expires_at = statement_timestamp() + $4::interval
 WHERE m.id = ANY(ARRAY(SELECT id FROM chosen)) AND (SELECT ok FROM all_acked)
RETURNING m.id, m.recipient_id, m.sender_id, m.run_id, m.kind, m.payload::text AS payload,
          m.priority, m.attempts, m.max_attempts, m.claimed_by, m.lease_expires_at,
          m.created_at, m.last_error;

-- name: any_available
-- Whether any of the recipients $1 has a message claimable now (claim looks once more
-- before reporting "nothing").
SELECT EXISTS (SELECT 1 FROM unnest($1::uuid[]) AS r(id)
                WHERE EXISTS (SELECT 1 FROM agent.messages
                               WHERE recipient_id = r.id AND status = 'pending'
                                 AND available_at <= now()));

-- name: next_available
-- When the earliest pending message of the recipients $1 becomes claimable (NULL: none
-- pending); an idle Consumer sleeps until then at most.
SELECT min(available_at) FROM agent.messages
 WHERE recipient_id = ANY($1::uuid[]) AND status = 'pending';

-- name: ack
-- Mark the messages $1 done, all or nothing: each must still be held by worker $2 at
-- its attempt ($3, by position in $1) under an unexpired lease, else raise_rule
-- ('lease_lost') aborts the statement and nothing changes (no explicit transaction, so
-- one round trip). "Held" is written as "has an unexpired lease" (claimed, under the
-- claim_has_lease CHECK), so the planner is not tempted to scan the partial index of all
-- claimed messages. Returns one row per message.
WITH changed AS (
    UPDATE agent.messages AS m
       SET status = 'done', finished_at = now(), lease_expires_at = NULL
     WHERE m.id = ANY(ARRAY(SELECT unnest($1::bigint[])))
       AND m.lease_expires_at > statement_timestamp()
       AND m.claimed_by = $2
       AND m.attempts = ($3::int[])[array_position($1::bigint[], m.id)]
    RETURNING m.id
)
SELECT * FROM changed
 WHERE CASE WHEN (SELECT count(*) FROM changed) = cardinality($1::bigint[]) THEN true
            ELSE agent.raise_rule('lease_lost', 'a listed message is no longer held') END;

-- name: acked_already
-- Whether every message $1 is done under the claim of worker $2 at attempts $3 (by
-- position): an ack repeated after an ambiguous error whose first try committed.
SELECT count(*) = cardinality($1::bigint[]) FROM agent.messages AS m
 WHERE m.id = ANY(ARRAY(SELECT unnest($1::bigint[])))
   AND m.status = 'done' AND m.claimed_by = $2
   AND m.attempts = ($3::int[])[array_position($1::bigint[], m.id)];

-- name: not_held
-- Which of the messages $1 (at attempts $3, by position) worker $2 no longer holds under
-- an unexpired lease, as one array in id order (to name them in LeaseLost).
SELECT array_agg(t.id ORDER BY t.id) FROM unnest($1::bigint[], $3::int[]) AS t(id, attempts)
 WHERE NOT EXISTS (SELECT 1 FROM agent.messages AS m
                    WHERE m.id = t.id AND m.lease_expires_at > statement_timestamp()
                      AND m.claimed_by = $2
                      AND m.attempts = t.attempts);

-- name: extend
-- Heartbeat, all or nothing like ack: the leases of the messages $1 (held by worker $2
-- at attempts $3) now end $4 (interval) from now. Returns each message's new expiry.
WITH changed AS (
    UPDATE agent.messages AS m
       SET lease_expires_at = statement_timestamp() + $4::interval
     WHERE m.id = ANY(ARRAY(SELECT unnest($1::bigint[])))
       AND m.lease_expires_at > statement_timestamp()
       AND m.claimed_by = $2
       AND m.attempts = ($3::int[])[array_position($1::bigint[], m.id)]
    RETURNING m.id, m.lease_expires_at
)
SELECT * FROM changed
 WHERE CASE WHEN (SELECT count(*) FROM changed) = cardinality($1::bigint[]) THEN true
            ELSE agent.raise_rule('lease_lost', 'a listed message is no longer held') END;

-- name: release
-- Give the messages $1 (held by worker $2 at attempts $3) back at once without spending
-- an attempt (shutdown, prefetch), all or nothing like ack, with a NOTIFY per message.
WITH changed AS (
    UPDATE agent.messages AS m
       SET status = 'pending', attempts = m.attempts - 1, claimed_by = NULL,
           lease_expires_at = NULL, claimed_at = NULL, available_at = now()
     WHERE m.id = ANY(ARRAY(SELECT unnest($1::bigint[])))
       AND m.lease_expires_at > statement_timestamp()
       AND m.claimed_by = $2
       AND m.attempts = ($3::int[])[array_position($1::bigint[], m.id)]
    RETURNING m.id, pg_notify({MESSAGES_CHANNEL}, m.recipient_id::text)
)
SELECT * FROM changed
 WHERE CASE WHEN (SELECT count(*) FROM changed) = cardinality($1::bigint[]) THEN true
            ELSE agent.raise_rule('lease_lost', 'a listed message is no longer held') END;

-- name: fail
-- Record a failed attempt of the messages $1 (held by worker $2 at attempts $3), all or
-- nothing like ack: with $4 (retry) and attempts left, pending again after
-- $5 * 2 ^ (attempts - 1), at most $6 (intervals); otherwise dead. $7 is the error.
-- Returns each message's id, new status and available_at.
WITH changed AS (
    UPDATE agent.messages AS m
       SET status = CASE WHEN $4 AND m.attempts < m.max_attempts THEN 'pending' ELSE 'dead' END,
           available_at = CASE WHEN $4 AND m.attempts < m.max_attempts
                               THEN now() + least($5::interval * power(2, m.attempts - 1),
                                                  $6::interval)
                               ELSE m.available_at END,
           finished_at = CASE WHEN $4 AND m.attempts < m.max_attempts THEN NULL ELSE now() END,
           claimed_by = NULL, lease_expires_at = NULL, last_error = $7
     WHERE m.id = ANY(ARRAY(SELECT unnest($1::bigint[])))
       AND m.lease_expires_at > statement_timestamp()
       AND m.claimed_by = $2
       AND m.attempts = ($3::int[])[array_position($1::bigint[], m.id)]
    RETURNING m.id, m.status, m.available_at
)
SELECT * FROM changed
 WHERE CASE WHEN (SELECT count(*) FROM changed) = cardinality($1::bigint[]) THEN true
            ELSE agent.raise_rule('lease_lost', 'a listed message is no longer held') END;

-- name: extend_held
-- The heartbeat of a Consumer's whole batch: extend by $4 (interval) the lease of every
-- message $1 still held by worker $2 at its attempt ($3, by position), skipping (not
-- refusing) the lost ones. Returns the ids extended.
UPDATE agent.messages AS m
   SET lease_expires_at = statement_timestamp() + $4::interval
 WHERE m.id = ANY(ARRAY(SELECT unnest($1::bigint[])))
   AND m.lease_expires_at > statement_timestamp()
   AND m.claimed_by = $2
   AND m.attempts = ($3::int[])[array_position($1::bigint[], m.id)]
RETURNING m.id;

-- name: release_held
-- Release what a Consumer still holds of the messages $1 (worker $2, attempts $3 by
-- position), skipping (not refusing) the lost ones, with a NOTIFY per message. Returns
-- the ids released.
UPDATE agent.messages AS m
   SET status = 'pending', attempts = m.attempts - 1, claimed_by = NULL,
       lease_expires_at = NULL, claimed_at = NULL, available_at = now()
 WHERE m.id = ANY(ARRAY(SELECT unnest($1::bigint[])))
   AND m.lease_expires_at IS NOT NULL AND m.claimed_by = $2
   AND m.attempts = ($3::int[])[array_position($1::bigint[], m.id)]
RETURNING m.id, pg_notify({MESSAGES_CHANNEL}, m.recipient_id::text);

-- name: cancel_pending
-- Cancel the pending messages of the recipients $1 (agents that were terminated),
-- locking the rows in id order (the lock order of agent_app.db) before changing them.
-- Returns one row per message cancelled.
UPDATE agent.messages
   SET status = 'cancelled', finished_at = now()
 WHERE id IN (SELECT id FROM agent.messages
               WHERE recipient_id = ANY($1::uuid[]) AND status = 'pending'
               ORDER BY id
                 FOR NO KEY UPDATE)
   AND status = 'pending'
RETURNING id;

-- name: redrive
-- Bring dead messages back to pending with attempts reset: the ids $1 (NULL: any) of
-- recipient $2 (NULL: any), each with a NOTIFY. A finished agent gets no message again
-- (the database would cancel it). Returns one row per message redriven.
WITH redriven AS (
    UPDATE agent.messages
       SET status = 'pending', attempts = 0, available_at = now(), finished_at = NULL
     WHERE status = 'dead'
       AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
       AND NOT EXISTS (SELECT 1 FROM agent.agents AS a
                        WHERE a.id = recipient_id
                          AND a.status IN ({TERMINAL_AGENT_STATUSES}))
       AND ($2::uuid IS NULL OR recipient_id = $2::uuid)
    RETURNING id, recipient_id
)
SELECT id, pg_notify({MESSAGES_CHANNEL}, recipient_id::text) FROM redriven;
