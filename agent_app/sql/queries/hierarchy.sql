-- The agent tree (agent_app.hierarchy): creating agents with their budgets, and finishing
-- them. Every statement that locks rows follows the lock order in agent_app.db: runs,
-- then agents shallow to deep (depth_level, id), then budgets by owner in that order
-- and by resource, then reservations and messages.

-- name: insert_agent
-- Create agent $4 of type $3 with status $5 in run $1 under parent $2 (null for a root).
-- The agents_guard trigger derives depth_level from the parent (refusing past the
-- depth limit) and the closure trigger fills hierarchies. Returns the agent.
INSERT INTO agent.agents (run_id, parent_id, agent_type, name, status)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: insert_budget
-- Give agent $1 an allocation $3 of resource $2. For a child, the budgets_guard trigger
-- carves it out of the parent's budget of that resource in the same statement (locking
-- that row), refusing with budget_limits when the parent has too little free.
INSERT INTO agent.budgets (agent_id, resource, allocated)
VALUES ($1, $2, $3);

-- name: lock_parent
-- Spawn, step 1: the parent $1, FOR SHARE - it cannot finish until the child exists,
-- and a spawn under a parent that is finishing waits for the finish and sees it.
SELECT * FROM agent.agents WHERE id = $1 FOR SHARE;

-- name: lock_agent
-- Finish, step 1: the agent $1 itself, in the strongest mode finish needs on an agent
-- row (FOR NO KEY UPDATE: it blocks spawning under it and sending to it, both FOR SHARE,
-- but not the foreign-key checks - FOR KEY SHARE - of rows that merely refer to it).
SELECT * FROM agent.agents WHERE id = $1 FOR NO KEY UPDATE;

-- name: lock_live_children
-- Finish, step 2, once per level: the live children of the agents $1 (the level just
-- locked), in id order. Read after their parents are locked, so no child can be added
-- unseen: a spawn holds its parent FOR SHARE until it commits, and we waited for it.
SELECT * FROM agent.agents
 WHERE parent_id = ANY($1::uuid[]) AND status NOT IN ({TERMINAL_AGENT_STATUSES})
 ORDER BY id
   FOR NO KEY UPDATE;

-- name: lock_budgets
-- Finish, step 3: every budget row of the agents $1 - the parent's, the agent's, its
-- live descendants' - which the reclaim triggers will touch, parents' before children's,
-- then by resource, before any status changes.
SELECT b.id
  FROM agent.budgets b
  JOIN agent.agents a ON a.id = b.agent_id
 WHERE b.agent_id = ANY($1::uuid[])
 ORDER BY a.depth_level, a.id, b.resource
   FOR UPDATE OF b;

-- name: set_status
-- Finish, step 4: give the agents $1 (already locked; one level of live descendants at
-- a time, deepest first, then the agent itself) status $2. The agents_reclaim trigger
-- returns each one's budgets to its parent. Returns the agents.
UPDATE agent.agents SET status = $2 WHERE id = ANY($1::uuid[]) RETURNING *;
