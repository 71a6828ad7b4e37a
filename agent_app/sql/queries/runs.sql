-- Feature runs and their phase attempts (agent_app.runs). Reads and plain updates go
-- through Piccolo's query builder; these are the statements it cannot write.

-- name: create_run
-- A new run in phase analysis (id, timestamps and defaults from the database):
-- $1 title, $2 request, $3 repo_url, $4 base_branch, $5 sandbox_id. Returns the
-- columns of runs.Run (not the request: it can be long, and the caller has it).
INSERT INTO agent.feature_runs (title, request, repo_url, base_branch, sandbox_id)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, title, repo_url, base_branch, current_phase, sandbox_id, branch_name, pr_url,
          error, created_at, completed_at;

-- name: start_phase
-- The next attempt at phase $2 of run $1, numbered max(attempt) + 1 in one statement
-- (the caller holds the run row locked, so two starts never share a number). Returns
-- the columns of runs.Phase.
INSERT INTO agent.phase_results (run_id, phase, attempt)
SELECT $1, $2::varchar, coalesce(max(attempt), 0) + 1
  FROM agent.phase_results
 WHERE run_id = $1 AND phase = $2::varchar
RETURNING id, run_id, phase, status, attempt, summary, started_at, finished_at;

-- name: timeline
-- Run $1 with its attempts and each attempt's invocations with their step and tool-call
-- counts, in one statement (one snapshot): one row per invocation, or one per attempt
-- without any, or one for a run without attempts. run_*, phase_* and inv_* are the
-- run's, the attempt's and the invocation's columns.
SELECT r.id AS run_id, r.title AS run_title, r.repo_url AS run_repo_url,
       r.base_branch AS run_base_branch, r.current_phase AS run_current_phase,
       r.sandbox_id AS run_sandbox_id, r.branch_name AS run_branch_name,
       r.pr_url AS run_pr_url, r.error AS run_error, r.created_at AS run_created_at,
       r.completed_at AS run_completed_at,
       p.id AS phase_id, p.run_id AS phase_run_id, p.phase AS phase_phase,
       p.status AS phase_status, p.attempt AS phase_attempt, p.summary AS phase_summary,
       p.started_at AS phase_started_at, p.finished_at AS phase_finished_at,
       i.id AS inv_id, i.phase_result_id AS inv_phase_result_id, i.agent_id AS inv_agent_id,
       i.agent_type AS inv_agent_type, i.model AS inv_model,
       i.finish_reason AS inv_finish_reason, i.input_tokens AS inv_input_tokens,
       i.output_tokens AS inv_output_tokens, i.cost_usd AS inv_cost_usd,
       (SELECT count(*) FROM agent.agent_steps s WHERE s.invocation_id = i.id) AS inv_steps,
       (SELECT count(*) FROM agent.tool_calls t WHERE t.invocation_id = i.id)
           AS inv_tool_calls,
       i.started_at AS inv_started_at, i.finished_at AS inv_finished_at
  FROM agent.feature_runs r
  LEFT JOIN agent.phase_results p ON p.run_id = r.id
  LEFT JOIN agent.agent_invocations i ON i.phase_result_id = p.id AND i.run_id = r.id
 WHERE r.id = $1
 ORDER BY p.started_at, p.attempt, p.id, i.started_at, i.id;
