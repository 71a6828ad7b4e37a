-- Sandboxes, snapshots and workspaces (agent_app.sandboxes): the inserts, so ids and
-- timestamps come from the database's defaults. Reads and updates go through Piccolo.

-- name: create
-- A new pending sandbox: $1 source_type, $2 provider, $3 source_ref,
-- $4 source_snapshot_id, $5 external_id, $6 config (JSON text). Returns the columns of
-- sandboxes.Sandbox (not the config the caller just gave).
INSERT INTO agent.sandboxes (source_type, provider, source_ref, source_snapshot_id,
                             external_id, config)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
RETURNING id, status, source_type, source_ref, source_snapshot_id, provider, external_id,
          error, started_at, stopped_at;

-- name: snapshot
-- Record a snapshot of sandbox $1: $2 external_id, $3 size_bytes, $4 metadata (JSON
-- text), $5 status. Returns the columns of sandboxes.Snapshot (not the metadata).
INSERT INTO agent.sandbox_snapshots (sandbox_id, external_id, size_bytes, metadata, status)
VALUES ($1, $2, $3, $4::jsonb, $5)
RETURNING id, sandbox_id, status, external_id, size_bytes, created_at, deleted_at;

-- name: allocate_workspace
-- An active workspace for agent $1: $2 sandbox_id, $3 worktree_path, $4 branch_name,
-- $5 base_ref. The partial unique indexes refuse a path or branch already active.
INSERT INTO agent.workspaces (agent_id, sandbox_id, worktree_path, branch_name, base_ref)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;
