-- The LangGraph checkpointer (agent_app.langgraph.AgentAppSaver). A checkpoint row per
-- (thread, namespace, checkpoint id) names its channels' versions; each blob is stored
-- once per (thread, namespace, channel, version); writes hang off (checkpoint, task,
-- idx). The thread row comes into being with its first checkpoint or write.

-- name: missing_tables
-- Which of the tables $1 (schema-qualified names) the database does not have.
SELECT t.name FROM unnest($1::text[]) AS t(name) WHERE to_regclass(t.name) IS NULL;

-- name: link_thread
-- Tie thread $1 (created if new) to feature run $2 and agent $3 (null unties).
INSERT INTO agent.graph_threads (thread_id, run_id, agent_id)
VALUES ($1, $2, $3)
ON CONFLICT (thread_id) DO UPDATE
   SET run_id = excluded.run_id, agent_id = excluded.agent_id;

-- name: put_checkpoint
-- Store checkpoint $7 of thread $1, namespace $2, in one statement: its thread row (if
-- new), its new blobs (channels $3, versions $4, types $5, values $6; a blob already
-- stored is kept) and the checkpoint row (parent $8, body type $9 and bytes $10, the
-- channels $11 and versions $12 it names, metadata $13). Putting the same checkpoint id
-- again replaces its body and metadata. The foreign keys of the blob and checkpoint rows
-- are checked at the end of the statement, when the thread row is there.
WITH thread AS (
    INSERT INTO agent.graph_threads (thread_id) VALUES ($1)
    ON CONFLICT (thread_id) DO NOTHING
), blobs AS (
    INSERT INTO agent.graph_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT $1, $2, b.channel, b.version, b.type, b.blob
      FROM unnest($3::text[], $4::text[], $5::text[], $6::bytea[])
           AS b(channel, version, type, blob)
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)
INSERT INTO agent.graph_checkpoints (thread_id, checkpoint_ns, checkpoint_id,
       parent_checkpoint_id, type, body, channels, versions, metadata)
VALUES ($1, $2, $7, $8, $9, $10, $11, $12, $13::jsonb)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE
   SET type = excluded.type, body = excluded.body, channels = excluded.channels,
       versions = excluded.versions, metadata = excluded.metadata;

-- name: insert_writes
-- Store task $4's (path $5) writes against checkpoint $3 of thread $1, namespace $2:
-- indexes $6, channels $7, types $8, values $9. A write already stored (same checkpoint,
-- task and index) is kept: a retried call changes nothing.
WITH thread AS (
    INSERT INTO agent.graph_threads (thread_id) VALUES ($1)
    ON CONFLICT (thread_id) DO NOTHING
)
INSERT INTO agent.graph_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
       task_path, idx, channel, type, blob)
SELECT $1, $2, $3, $4, $5, w.idx, w.channel, w.type, w.blob
  FROM unnest($6::int[], $7::text[], $8::text[], $9::bytea[]) AS w(idx, channel, type, blob)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;

-- name: upsert_writes
-- Like insert_writes, for special channels (errors, interrupts): a write already stored
-- under the same checkpoint, task and index is replaced - the latest value wins.
WITH thread AS (
    INSERT INTO agent.graph_threads (thread_id) VALUES ($1)
    ON CONFLICT (thread_id) DO NOTHING
)
INSERT INTO agent.graph_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
       task_path, idx, channel, type, blob)
SELECT $1, $2, $3, $4, $5, w.idx, w.channel, w.type, w.blob
  FROM unnest($6::int[], $7::text[], $8::text[], $9::bytea[]) AS w(idx, channel, type, blob)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
   SET channel = excluded.channel, type = excluded.type, blob = excluded.blob;

-- name: get_latest
-- The newest checkpoint (by id) of thread $1 in namespace $2, with the blobs of the
-- channel versions it names and its pending writes as parallel arrays (one row).
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type,
       c.body, c.metadata::text AS metadata,
       b.channels AS blob_channels, b.types AS blob_types, b.blobs AS blob_values,
       w.task_ids, w.channels AS write_channels, w.types AS write_types,
       w.blobs AS write_values, w.task_paths, w.idxs
  FROM agent.graph_checkpoints c
  LEFT JOIN LATERAL (
      SELECT array_agg(bl.channel) AS channels, array_agg(bl.type) AS types,
             array_agg(bl.blob) AS blobs
        FROM unnest(c.channels, c.versions) AS v(channel, version)
        JOIN agent.graph_blobs bl
          ON bl.thread_id = c.thread_id AND bl.checkpoint_ns = c.checkpoint_ns
         AND bl.channel = v.channel AND bl.version = v.version
  ) b ON true
  LEFT JOIN LATERAL (
      SELECT array_agg(wr.task_id) AS task_ids, array_agg(wr.channel) AS channels,
             array_agg(wr.type) AS types, array_agg(wr.blob) AS blobs,
             array_agg(wr.task_path) AS task_paths, array_agg(wr.idx) AS idxs
        FROM agent.graph_writes wr
       WHERE wr.thread_id = c.thread_id AND wr.checkpoint_ns = c.checkpoint_ns
         AND wr.checkpoint_id = c.checkpoint_id
  ) w ON true
 WHERE c.thread_id = $1 AND c.checkpoint_ns = $2
 ORDER BY c.checkpoint_id DESC
 LIMIT 1;

-- name: get_by_id
-- Checkpoint $3 of thread $1 in namespace $2, as get_latest reads it (one row or none).
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type,
       c.body, c.metadata::text AS metadata,
       b.channels AS blob_channels, b.types AS blob_types, b.blobs AS blob_values,
       w.task_ids, w.channels AS write_channels, w.types AS write_types,
       w.blobs AS write_values, w.task_paths, w.idxs
  FROM agent.graph_checkpoints c
  LEFT JOIN LATERAL (
      SELECT array_agg(bl.channel) AS channels, array_agg(bl.type) AS types,
             array_agg(bl.blob) AS blobs
        FROM unnest(c.channels, c.versions) AS v(channel, version)
        JOIN agent.graph_blobs bl
          ON bl.thread_id = c.thread_id AND bl.checkpoint_ns = c.checkpoint_ns
         AND bl.channel = v.channel AND bl.version = v.version
  ) b ON true
  LEFT JOIN LATERAL (
      SELECT array_agg(wr.task_id) AS task_ids, array_agg(wr.channel) AS channels,
             array_agg(wr.type) AS types, array_agg(wr.blob) AS blobs,
             array_agg(wr.task_path) AS task_paths, array_agg(wr.idx) AS idxs
        FROM agent.graph_writes wr
       WHERE wr.thread_id = c.thread_id AND wr.checkpoint_ns = c.checkpoint_ns
         AND wr.checkpoint_id = c.checkpoint_id
  ) w ON true
 WHERE c.thread_id = $1 AND c.checkpoint_ns = $2 AND c.checkpoint_id = $3;

-- name: list
-- Checkpoints newest first (by id), as get_latest reads them; each filter applies only
-- when it is not null: thread $1, namespace $2, checkpoint id $3, metadata containing
-- $4 (GIN-indexed), ids before $5; at most $6 rows (null: all).
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type,
       c.body, c.metadata::text AS metadata,
       b.channels AS blob_channels, b.types AS blob_types, b.blobs AS blob_values,
       w.task_ids, w.channels AS write_channels, w.types AS write_types,
       w.blobs AS write_values, w.task_paths, w.idxs
  FROM agent.graph_checkpoints c
  LEFT JOIN LATERAL (
      SELECT array_agg(bl.channel) AS channels, array_agg(bl.type) AS types,
             array_agg(bl.blob) AS blobs
        FROM unnest(c.channels, c.versions) AS v(channel, version)
        JOIN agent.graph_blobs bl
          ON bl.thread_id = c.thread_id AND bl.checkpoint_ns = c.checkpoint_ns
         AND bl.channel = v.channel AND bl.version = v.version
  ) b ON true
  LEFT JOIN LATERAL (
      SELECT array_agg(wr.task_id) AS task_ids, array_agg(wr.channel) AS channels,
             array_agg(wr.type) AS types, array_agg(wr.blob) AS blobs,
             array_agg(wr.task_path) AS task_paths, array_agg(wr.idx) AS idxs
        FROM agent.graph_writes wr
       WHERE wr.thread_id = c.thread_id AND wr.checkpoint_ns = c.checkpoint_ns
         AND wr.checkpoint_id = c.checkpoint_id
  ) w ON true
 WHERE ($1::text IS NULL OR c.thread_id = $1)
   AND ($2::text IS NULL OR c.checkpoint_ns = $2)
   AND ($3::text IS NULL OR c.checkpoint_id = $3)
   AND ($4::jsonb IS NULL OR c.metadata @> $4)
   AND ($5::text IS NULL OR c.checkpoint_id < $5)
 ORDER BY c.checkpoint_id DESC
 LIMIT $6;

-- name: delete_for_runs
-- Delete the checkpoints LangGraph runs $1 saved (metadata.run_id), in every thread and
-- namespace, with their writes; returns the (thread, namespace) pairs they were in, for
-- collect_blobs.
WITH doomed AS (
    DELETE FROM agent.graph_checkpoints c
     USING unnest($1::text[]) AS r(run_id)
     WHERE c.metadata @> jsonb_build_object('run_id', r.run_id)
    RETURNING c.thread_id, c.checkpoint_ns, c.checkpoint_id
), writes AS (
    DELETE FROM agent.graph_writes w
     USING doomed d
     WHERE w.thread_id = d.thread_id AND w.checkpoint_ns = d.checkpoint_ns
       AND w.checkpoint_id = d.checkpoint_id
)
SELECT DISTINCT thread_id, checkpoint_ns FROM doomed;

-- name: prune_keep_latest
-- Of the threads $1, keep the newest checkpoint of each namespace (now without a
-- parent) and delete the older ones with their writes; writes newer than it stay (they
-- may belong to a checkpoint being saved right now). Returns the (thread, namespace)
-- pairs, for collect_blobs.
WITH latest AS (
    SELECT DISTINCT ON (thread_id, checkpoint_ns) thread_id, checkpoint_ns, checkpoint_id
      FROM agent.graph_checkpoints
     WHERE thread_id = ANY($1::text[])
     ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
), checkpoints AS (
    DELETE FROM agent.graph_checkpoints c
     USING latest l
     WHERE c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns
       AND c.checkpoint_id < l.checkpoint_id
), writes AS (
    DELETE FROM agent.graph_writes w
     USING latest l
     WHERE w.thread_id = l.thread_id AND w.checkpoint_ns = l.checkpoint_ns
       AND w.checkpoint_id < l.checkpoint_id
), orphaned AS (
    UPDATE agent.graph_checkpoints c SET parent_checkpoint_id = NULL
      FROM latest l
     WHERE c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns
       AND c.checkpoint_id = l.checkpoint_id AND c.parent_checkpoint_id IS NOT NULL
)
SELECT thread_id, checkpoint_ns FROM latest;

-- name: collect_blobs
-- Delete the blobs that no checkpoint of their thread and namespace names any more,
-- within the (thread, namespace) pairs given as parallel arrays $1, $2.
WITH scope AS (
    SELECT DISTINCT s.thread_id, s.checkpoint_ns
      FROM unnest($1::text[], $2::text[]) AS s(thread_id, checkpoint_ns)
), referenced AS (
    SELECT DISTINCT c.thread_id, c.checkpoint_ns, v.channel, v.version
      FROM scope s
      JOIN agent.graph_checkpoints c
        ON c.thread_id = s.thread_id AND c.checkpoint_ns = s.checkpoint_ns
     CROSS JOIN LATERAL unnest(c.channels, c.versions) AS v(channel, version)
)
DELETE FROM agent.graph_blobs b
 USING scope s
 WHERE b.thread_id = s.thread_id AND b.checkpoint_ns = s.checkpoint_ns
   AND NOT EXISTS (
       SELECT 1 FROM referenced r
        WHERE r.thread_id = b.thread_id AND r.checkpoint_ns = b.checkpoint_ns
          AND r.channel = b.channel AND r.version = b.version);

-- name: copy_thread_row
-- Copy thread $1: create the thread row $2 (unlinked) if $1 exists.
INSERT INTO agent.graph_threads (thread_id)
SELECT $2 WHERE EXISTS (SELECT 1 FROM agent.graph_threads WHERE thread_id = $1)
ON CONFLICT (thread_id) DO NOTHING;

-- name: copy_blobs
-- Copy thread $1: its blobs to thread $2 (those $2 already has are kept).
INSERT INTO agent.graph_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT $2, checkpoint_ns, channel, version, type, blob
  FROM agent.graph_blobs WHERE thread_id = $1
ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING;

-- name: copy_checkpoints
-- Copy thread $1: its checkpoints to thread $2 (those $2 already has are kept).
INSERT INTO agent.graph_checkpoints (thread_id, checkpoint_ns, checkpoint_id,
       parent_checkpoint_id, type, body, channels, versions, metadata)
SELECT $2, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, body, channels,
       versions, metadata
  FROM agent.graph_checkpoints WHERE thread_id = $1
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO NOTHING;

-- name: copy_writes
-- Copy thread $1: its writes to thread $2 (those $2 already has are kept).
INSERT INTO agent.graph_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
       task_path, idx, channel, type, blob)
SELECT $2, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
  FROM agent.graph_writes WHERE thread_id = $1
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;

-- name: delete_thread
-- Delete thread $1; its checkpoints, blobs and writes go with it (foreign keys cascade).
DELETE FROM agent.graph_threads WHERE thread_id = $1;

-- name: prune_delete_checkpoints
-- Prune strategy "delete", first of three (run in this order, in one transaction):
-- every checkpoint of the threads $1 (any number of ids: one array parameter).
DELETE FROM agent.graph_checkpoints WHERE thread_id = ANY($1::text[]);

-- name: prune_delete_writes
-- Prune strategy "delete", second: every write of the threads $1.
DELETE FROM agent.graph_writes WHERE thread_id = ANY($1::text[]);

-- name: prune_delete_blobs
-- Prune strategy "delete", third: every blob of the threads $1.
DELETE FROM agent.graph_blobs WHERE thread_id = ANY($1::text[]);
