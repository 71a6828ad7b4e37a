-- Telemetry (agent_app.telemetry): invocations, steps, tool calls and their results.
-- The hot paths (record_step, ingest) and the statements Piccolo cannot write live
-- here; other reads and plain updates go through Piccolo's query builder.

-- name: start_invocation
-- A new invocation of run $1 in attempt $2: $3 agent_type, $4 model, $5 agent_id,
-- $6 parent_invocation_id, $7 input (JSON text or null). Returns its id.
INSERT INTO agent.agent_invocations (run_id, phase_result_id, agent_type, model, agent_id,
                                     parent_invocation_id, input)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
RETURNING id;

-- name: rollup_usage
-- Set invocation $1's tokens and cost to the sums over its steps (unreported counts add
-- nothing) and return them; no row when the invocation does not exist.
UPDATE agent.agent_invocations AS i
   SET input_tokens = u.input_tokens, output_tokens = u.output_tokens, cost_usd = u.cost_usd
  FROM (SELECT coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               coalesce(sum(cost_usd), 0) AS cost_usd
          FROM agent.agent_steps WHERE invocation_id = $1) AS u
 WHERE i.id = $1
RETURNING i.input_tokens, i.output_tokens, i.cost_usd;

-- name: record_step
-- One step ($1 id, $2 invocation_id, $3 step_number, $4 finish_reason,
-- $5 raw_finish_reason, $6 text, $7 reasoning, $8-$11 token counts, $12 cost_usd,
-- $13 response_metadata as JSON text, $14 started_at or null for now, $15 finished_at)
-- and its tool calls, one per element of the arrays $16 tool_call_id, $17 tool_name,
-- $18 input (JSON text), $19 provider_executed, $20 output_type, $21 output (JSON
-- text): one statement, all or none. A call with an output type is finished now.
WITH step AS (
    INSERT INTO agent.agent_steps (id, invocation_id, step_number, finish_reason,
        raw_finish_reason, text, reasoning, input_tokens, output_tokens, cached_input_tokens,
        reasoning_tokens, cost_usd, response_metadata, started_at, finished_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb,
            coalesce($14, now()), $15)
    RETURNING id, invocation_id
)
INSERT INTO agent.tool_calls (step_id, invocation_id, tool_call_id, tool_name, input,
                              provider_executed, output_type, output, finished_at)
SELECT step.id, step.invocation_id, t.call_id, t.name, t.input::jsonb, t.provider, t.otype,
       t.output::jsonb, CASE WHEN t.otype IS NULL THEN NULL ELSE now() END
  FROM step, unnest($16::varchar[], $17::varchar[], $18::text[], $19::boolean[],
                    $20::varchar[], $21::text[]) AS t(call_id, name, input, provider, otype, output);

-- name: known_invocations
-- Which of the invocation ids $1 exist (ingest checks a batch's invocations first).
SELECT id FROM agent.agent_invocations WHERE id = ANY($1::uuid[]);

-- name: stored_steps
-- The stored steps among the pairs ($1 invocation_id, $2 step_number) (ingest names
-- the row a unique violation refused).
SELECT invocation_id, step_number
  FROM agent.agent_steps
 WHERE (invocation_id, step_number) IN (SELECT * FROM unnest($1::uuid[], $2::int[]));

-- name: stored_calls
-- The stored tool calls among the pairs ($1 invocation_id, $2 tool_call_id), with
-- their output_type (null while they have no result).
SELECT invocation_id, tool_call_id, output_type
  FROM agent.tool_calls
 WHERE (invocation_id, tool_call_id) IN (SELECT * FROM unnest($1::uuid[], $2::varchar[]));

-- name: apply_results
-- Attach results to open tool calls, one per element of $1 invocation_id,
-- $2 tool_call_id, $3 output_type, $4 output (JSON text); returns the calls updated
-- (a call that already has a result is left alone).
UPDATE agent.tool_calls AS t
   SET output_type = r.otype, output = r.output::jsonb, finished_at = now()
  FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::text[])
       AS r(invocation_id, call_id, otype, output)
 WHERE t.invocation_id = r.invocation_id AND t.tool_call_id = r.call_id
   AND t.output_type IS NULL
RETURNING t.id;
