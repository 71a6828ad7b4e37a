-- The operator's console reads the database with these queries, and only these.
-- Each starts with "-- name: <name>" and a line saying what it returns; $n are
-- parameters. Usage (tokens, cost) is summed from agent_steps, the source of truth,
-- so totals include invocations still running.

-- name: runs_by_phase
-- How many runs are in each phase.
SELECT current_phase AS phase, count(*) AS runs
  FROM agent.feature_runs GROUP BY current_phase ORDER BY count(*) DESC;

-- name: queue_depth
-- Messages by status, with the oldest pending one's age.
SELECT status, count(*) AS messages,
       now() - min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending
  FROM agent.messages GROUP BY status ORDER BY status;

-- name: stuck_leases
-- Claimed messages whose lease ran out: their worker is stuck or gone.
SELECT count(*) FROM agent.messages WHERE status = 'claimed' AND lease_expires_at < now();

-- name: open_questions
-- Questions to a person that are neither answered nor expired, oldest first.
SELECT q.id, q.run_id, r.title, q.phase, q.kind, q.prompt, q.options::text AS options,
       q.created_at, q.expires_at
  FROM agent.cta_events q JOIN agent.feature_runs r ON r.id = q.run_id
 WHERE q.responded_at IS NULL AND (q.expires_at IS NULL OR q.expires_at > now())
 ORDER BY q.created_at LIMIT $1;

-- name: cost_per_day
-- Cost and tokens per day over the last $1 days, newest first.
SELECT date_trunc('day', s.started_at)::date AS day, sum(s.cost_usd) AS cost_usd,
       sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens
  FROM agent.agent_steps s
 WHERE s.started_at > now() - make_interval(days => $1)
 GROUP BY 1 ORDER BY 1 DESC;

-- name: cost_per_model
-- Cost, tokens and invocations per model.
SELECT model, count(*) AS invocations, sum(cost_usd) AS cost_usd,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
  FROM agent.agent_invocations GROUP BY model ORDER BY sum(cost_usd) DESC NULLS LAST;

-- name: slowest_phases
-- Duration of finished phase attempts per phase: p50, p95, max.
SELECT phase, count(*) AS attempts,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS p95,
       max(extract(epoch FROM finished_at - started_at)) AS slowest
  FROM agent.phase_results WHERE finished_at IS NOT NULL
 GROUP BY phase ORDER BY p95 DESC;

-- name: count_runs
-- How many runs there are (in phase $1, or all).
SELECT count(*) FROM agent.feature_runs WHERE ($1::varchar IS NULL OR current_phase = $1);

-- name: runs
-- A page of runs, newest first (in phase $1, or all; $2 rows from $3), with usage,
-- duration, agent count and error.
SELECT r.id, r.title, r.current_phase, r.error, r.pr_url, r.created_at, r.completed_at,
       extract(epoch FROM coalesce(r.completed_at, now()) - r.created_at) AS seconds,
       u.cost_usd, u.input_tokens, u.output_tokens, u.steps, a.agents
  FROM (SELECT * FROM agent.feature_runs
         WHERE ($1::varchar IS NULL OR current_phase = $1)
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) r
  LEFT JOIN LATERAL (
       SELECT coalesce(sum(s.cost_usd), 0) AS cost_usd,
              coalesce(sum(s.input_tokens), 0) AS input_tokens,
              coalesce(sum(s.output_tokens), 0) AS output_tokens, count(s.id) AS steps
         FROM agent.agent_invocations i JOIN agent.agent_steps s ON s.invocation_id = i.id
        WHERE i.run_id = r.id) u ON true
  LEFT JOIN LATERAL (SELECT count(*) AS agents FROM agent.agents WHERE run_id = r.id) a ON true
 ORDER BY r.created_at DESC, r.id DESC;

-- name: run
-- One run.
SELECT r.*, extract(epoch FROM coalesce(r.completed_at, now()) - r.created_at) AS seconds,
       s.status AS sandbox_status
  FROM agent.feature_runs r LEFT JOIN agent.sandboxes s ON s.id = r.sandbox_id
 WHERE r.id = $1;

-- name: run_totals
-- A run's totals: usage summed over its steps, counts of what it holds and what failed.
SELECT coalesce(sum(s.cost_usd), 0) AS cost_usd,
       coalesce(sum(s.input_tokens), 0) AS input_tokens,
       coalesce(sum(s.output_tokens), 0) AS output_tokens,
       coalesce(sum(s.cached_input_tokens), 0) AS cached_input_tokens,
       coalesce(sum(s.reasoning_tokens), 0) AS reasoning_tokens,
       count(s.id) AS steps,
       (SELECT count(*) FROM agent.agent_invocations WHERE run_id = $1) AS invocations,
       (SELECT count(*) FROM agent.tool_calls t JOIN agent.agent_invocations i
           ON i.id = t.invocation_id WHERE i.run_id = $1) AS tool_calls,
       (SELECT count(*) FROM agent.tool_calls t JOIN agent.agent_invocations i
           ON i.id = t.invocation_id
         WHERE i.run_id = $1 AND t.output_type IN ('error-text', 'error-json')) AS tool_errors,
       (SELECT count(*) FROM agent.tool_calls t JOIN agent.agent_invocations i
           ON i.id = t.invocation_id
         WHERE i.run_id = $1 AND t.output_type = 'execution-denied') AS tool_denials,
       (SELECT count(*) FROM agent.agents WHERE run_id = $1) AS agents,
       (SELECT count(*) FROM agent.phase_results
         WHERE run_id = $1 AND status = 'failed') AS failed_attempts,
       (SELECT count(*) FROM agent.agent_invocations
         WHERE run_id = $1 AND (error IS NOT NULL OR finish_reason = 'error'))
         AS failed_invocations
  FROM agent.agent_invocations i JOIN agent.agent_steps s ON s.invocation_id = i.id
 WHERE i.run_id = $1;

-- name: run_phases
-- A run's phase attempts in order, with duration and invocation count.
SELECT p.id, p.phase, p.attempt, p.status, p.summary, p.error, p.started_at, p.finished_at,
       extract(epoch FROM coalesce(p.finished_at, now()) - p.started_at) AS seconds,
       (SELECT count(*) FROM agent.agent_invocations i WHERE i.phase_result_id = p.id)
         AS invocations
  FROM agent.phase_results p WHERE p.run_id = $1
 ORDER BY p.started_at, p.id;

-- name: count_run_invocations
-- How many invocations a run has.
SELECT count(*) FROM agent.agent_invocations WHERE run_id = $1;

-- name: run_invocations
-- A page of a run's invocations in start order ($2 rows from $3), with usage and counts.
SELECT i.id, i.phase_result_id, i.parent_invocation_id, i.agent_type, i.model,
       i.finish_reason, i.error, i.started_at, i.finished_at, a.name AS agent_name,
       extract(epoch FROM coalesce(i.finished_at, now()) - i.started_at) AS seconds,
       u.steps, u.cost_usd, u.input_tokens, u.output_tokens, t.tool_calls, t.tool_failures
  FROM (SELECT * FROM agent.agent_invocations WHERE run_id = $1
         ORDER BY started_at, id LIMIT $2 OFFSET $3) i
  LEFT JOIN agent.agents a ON a.id = i.agent_id
  LEFT JOIN LATERAL (
       SELECT count(*) AS steps, coalesce(sum(cost_usd), 0) AS cost_usd,
              coalesce(sum(input_tokens), 0) AS input_tokens,
              coalesce(sum(output_tokens), 0) AS output_tokens
         FROM agent.agent_steps WHERE invocation_id = i.id) u ON true
  LEFT JOIN LATERAL (
       SELECT count(*) AS tool_calls,
              count(*) FILTER (WHERE output_type IN ('error-text', 'error-json',
                                                     'execution-denied')) AS tool_failures
         FROM agent.tool_calls WHERE invocation_id = i.id) t ON true
 ORDER BY i.started_at, i.id;

-- name: invocation
-- One invocation with its agent, phase attempt and usage.
SELECT i.*, i.input::text AS input_json, i.output::text AS output_json,
       a.name AS agent_name, p.phase, p.attempt,
       extract(epoch FROM coalesce(i.finished_at, now()) - i.started_at) AS seconds,
       (SELECT count(*) FROM agent.agent_steps WHERE invocation_id = i.id) AS steps
  FROM agent.agent_invocations i
  JOIN agent.phase_results p ON p.id = i.phase_result_id
  LEFT JOIN agent.agents a ON a.id = i.agent_id
 WHERE i.id = $1 AND i.run_id = $2;

-- name: invocation_steps
-- A page of an invocation's steps in order ($2 rows from $3).
SELECT s.id, s.step_number, s.finish_reason, s.raw_finish_reason, s.text, s.reasoning,
       s.input_tokens, s.output_tokens, s.cached_input_tokens, s.reasoning_tokens,
       s.cost_usd, s.started_at, s.finished_at,
       extract(epoch FROM s.finished_at - s.started_at) AS seconds
  FROM agent.agent_steps s WHERE s.invocation_id = $1
 ORDER BY s.step_number LIMIT $2 OFFSET $3;

-- name: steps_tool_calls
-- The tool calls of the given steps, in order, with their results.
SELECT t.step_id, t.tool_call_id, t.tool_name, t.input::text AS input_json, t.output_type,
       t.output::text AS output_json, t.provider_executed,
       extract(epoch FROM t.finished_at - t.started_at) AS seconds
  FROM agent.tool_calls t WHERE t.step_id = ANY($1::uuid[])
 ORDER BY t.started_at, t.tool_call_id;

-- name: run_agents
-- A run's agents as a tree (depth-first, siblings by creation), with their budgets
-- per resource as allocated / used / reserved.
WITH RECURSIVE tree AS (
    SELECT a.*, ARRAY[a.created_at::text || a.id::text] AS path
      FROM agent.agents a WHERE a.run_id = $1 AND a.parent_id IS NULL
    UNION ALL
    SELECT c.*, t.path || (c.created_at::text || c.id::text)
      FROM agent.agents c JOIN tree t ON c.parent_id = t.id
)
SELECT t.id, t.name, t.agent_type, t.status, t.depth_level, t.created_at, t.finished_at,
       coalesce(jsonb_object_agg(b.resource, jsonb_build_object(
           'allocated', b.allocated, 'used', b.used, 'reserved', b.reserved))
           FILTER (WHERE b.id IS NOT NULL), '{}')::text AS budgets
  FROM tree t LEFT JOIN agent.budgets b ON b.agent_id = t.id
 GROUP BY t.id, t.name, t.agent_type, t.status, t.depth_level, t.created_at, t.finished_at,
          t.path
 ORDER BY t.path;

-- name: run_questions
-- A run's questions to a person, in the order asked.
SELECT id, phase, kind, prompt, options::text AS options, response::text AS response,
       responded_by, created_at, responded_at, expires_at,
       responded_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS open
  FROM agent.cta_events WHERE run_id = $1 ORDER BY created_at, id;

-- name: count_messages
-- How many messages match the filters (run $1, status $2; NULL: any).
SELECT count(*) FROM agent.messages
 WHERE ($1::uuid IS NULL OR run_id = $1) AND ($2::varchar IS NULL OR status = $2);

-- name: messages
-- A page of messages, newest first (run $1, status $2; NULL: any; $3 rows from $4),
-- with sender and recipient names.
SELECT m.id, m.run_id, m.kind, m.priority, m.status, m.attempts, m.max_attempts,
       m.claimed_by, m.lease_expires_at, m.last_error, m.created_at, m.finished_at,
       m.payload::text AS payload, s.name AS sender, r.name AS recipient,
       m.status = 'claimed' AND m.lease_expires_at < now() AS lease_expired
  FROM agent.messages m
  LEFT JOIN agent.agents s ON s.id = m.sender_id
  JOIN agent.agents r ON r.id = m.recipient_id
 WHERE ($1::uuid IS NULL OR m.run_id = $1) AND ($2::varchar IS NULL OR m.status = $2)
 ORDER BY m.id DESC LIMIT $3 OFFSET $4;

-- name: count_steps
-- How many steps a run has (or all runs).
SELECT count(*) FROM agent.agent_steps s JOIN agent.agent_invocations i
    ON i.id = s.invocation_id WHERE ($1::uuid IS NULL OR i.run_id = $1);

-- name: steps
-- A page of steps, newest first, of a run (or all), with their run and agent.
SELECT s.id, s.step_number, s.finish_reason, s.input_tokens, s.output_tokens,
       s.cached_input_tokens, s.reasoning_tokens, s.cost_usd, s.started_at,
       extract(epoch FROM s.finished_at - s.started_at) AS seconds,
       i.id AS invocation_id, i.run_id, i.agent_type, i.model, r.title,
       (SELECT count(*) FROM agent.tool_calls t WHERE t.step_id = s.id) AS tool_calls
  FROM agent.agent_steps s
  JOIN agent.agent_invocations i ON i.id = s.invocation_id
  JOIN agent.feature_runs r ON r.id = i.run_id
 WHERE ($1::uuid IS NULL OR i.run_id = $1)
 ORDER BY s.started_at DESC, s.id DESC LIMIT $2 OFFSET $3;

-- name: count_tool_calls
-- How many tool calls a run has (or all runs), with output type $2 (NULL: any).
SELECT count(*) FROM agent.tool_calls t JOIN agent.agent_invocations i
    ON i.id = t.invocation_id
 WHERE ($1::uuid IS NULL OR i.run_id = $1) AND ($2::varchar IS NULL OR t.output_type = $2);

-- name: tool_calls
-- A page of tool calls, newest first, of a run (or all), output type $2 (NULL: any).
SELECT t.tool_call_id, t.tool_name, t.input::text AS input_json, t.output_type,
       t.output::text AS output_json, t.started_at,
       extract(epoch FROM t.finished_at - t.started_at) AS seconds,
       i.id AS invocation_id, i.run_id, i.agent_type, r.title
  FROM agent.tool_calls t
  JOIN agent.agent_invocations i ON i.id = t.invocation_id
  JOIN agent.feature_runs r ON r.id = i.run_id
 WHERE ($1::uuid IS NULL OR i.run_id = $1) AND ($2::varchar IS NULL OR t.output_type = $2)
 ORDER BY t.started_at DESC, t.id DESC LIMIT $3 OFFSET $4;

-- name: count_budgets
-- How many budgets the agents of a run (or all agents) hold.
SELECT count(*) FROM agent.budgets b JOIN agent.agents a ON a.id = b.agent_id
 WHERE ($1::uuid IS NULL OR a.run_id = $1);

-- name: budgets
-- A page of budgets, newest first, of a run's agents (or all), with agent and run.
SELECT b.resource, b.allocated, b.used, b.reserved, b.updated_at, a.id AS agent_id,
       a.name, a.agent_type, a.status, a.run_id, r.title
  FROM agent.budgets b
  JOIN agent.agents a ON a.id = b.agent_id
  LEFT JOIN agent.feature_runs r ON r.id = a.run_id
 WHERE ($1::uuid IS NULL OR a.run_id = $1)
 ORDER BY b.created_at DESC, b.id DESC LIMIT $2 OFFSET $3;
