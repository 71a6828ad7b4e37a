-- Agents' checkpoints (agent_app.checkpoints): saving, the latest one, pruning.
-- Other reads go through Piccolo's query builder.

-- name: save
-- Agent $1's next checkpoint of state $2 (canonical JSON text) with hash $3,
-- schema_version $4 and label $5, numbered after the latest and pointing at it - unless
-- the latest has the same hash. Either way, returns the checkpoint that now holds this
-- state (without the state) and whether it was created.
WITH latest AS (
    SELECT id, sequence, state_hash FROM agent.checkpoints
     WHERE agent_id = $1 ORDER BY sequence DESC LIMIT 1
), created AS (
    INSERT INTO agent.checkpoints (agent_id, sequence, parent_checkpoint_id, state_snapshot,
                                   state_hash, schema_version, label)
    SELECT $1, coalesce((SELECT sequence FROM latest), 0) + 1, (SELECT id FROM latest),
           $2::jsonb, $3::varchar, $4, $5
     WHERE NOT EXISTS (SELECT 1 FROM latest WHERE state_hash = $3::varchar)
    RETURNING id, agent_id, sequence, parent_checkpoint_id, state_hash, schema_version,
              label, created_at
)
SELECT id, agent_id, sequence, parent_checkpoint_id, state_hash, schema_version, label,
       created_at, true AS created
  FROM created
UNION ALL
SELECT c.id, c.agent_id, c.sequence, c.parent_checkpoint_id, c.state_hash,
       c.schema_version, c.label, c.created_at, false
  FROM agent.checkpoints AS c JOIN latest ON c.id = latest.id
 WHERE latest.state_hash = $3::varchar;

-- name: lock_agent
-- Wait for agent $1's (text) turn to save: a transaction-scoped advisory lock.
SELECT pg_advisory_xact_lock(hashtextextended($1, 0));

-- name: load_latest
-- Agent $1's newest checkpoint with its state: one backward step on the
-- (agent_id, sequence) key.
SELECT * FROM agent.checkpoints
 WHERE agent_id = $1
 ORDER BY sequence DESC
 LIMIT 1;

-- name: history
-- Agent $1's checkpoints newest first, those numbered below $2 only (null: from the
-- newest), at most $4; the state only when $3 is true (null otherwise: not read). The
-- limit and the page start are parameters, so every call runs one prepared statement.
SELECT id, agent_id, sequence, parent_checkpoint_id, state_hash, schema_version, label,
       created_at, CASE WHEN $3::boolean THEN state_snapshot END AS state_snapshot
  FROM agent.checkpoints
 WHERE agent_id = $1
   AND sequence < coalesce($2::bigint, 9223372036854775807)
 ORDER BY sequence DESC
 LIMIT $4;

-- name: prune_batch
-- Delete at most $4 checkpoints (of agent $1, or all when it is null) that are not
-- their agent's latest, not among its $2 newest (when $2 is not null) and older than
-- $3 (an interval, when not null).
WITH ranked AS (
    SELECT id, created_at,
           row_number() OVER (PARTITION BY agent_id ORDER BY sequence DESC) AS newness
      FROM agent.checkpoints
     WHERE ($1::uuid IS NULL OR agent_id = $1)
), doomed AS (
    SELECT id FROM ranked
     WHERE newness > 1
       AND ($2::int IS NULL OR newness > $2)
       AND ($3::interval IS NULL OR created_at < now() - $3)
     LIMIT $4
)
DELETE FROM agent.checkpoints AS c USING doomed WHERE c.id = doomed.id;
