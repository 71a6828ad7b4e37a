-- name: add
-- Store one memory record (id and created_at from the database) and return it.
INSERT INTO agent.memory_records (run_id, phase, kind, content, tags, source_invocation_id)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: query
-- A run's records, newest first; each filter applies only when its array is not null:
-- phases ($2), kinds ($3), any of the tags ($4), all of the tags ($5); at most $6 rows.
-- The (run_id, phase) index finds the run's rows; tags are matched among them.
SELECT * FROM agent.memory_records
 WHERE run_id = $1
   AND ($2::varchar[] IS NULL OR phase = ANY($2))
   AND ($3::varchar[] IS NULL OR kind = ANY($3))
   AND ($4::varchar[] IS NULL OR tags && $4)
   AND ($5::varchar[] IS NULL OR tags @> $5)
 ORDER BY created_at DESC, id DESC
 LIMIT $6;
