-- Foreign keys Piccolo cannot declare: a cycle between two tables, and composite keys
-- that tie a row's parent to the row's own run or invocation. The unique indexes they
-- reference are declared on the Table classes (``_indexes``).

-- sandboxes and snapshots refer to each other; Piccolo cannot order the cycle.
ALTER TABLE agent.sandboxes ADD CONSTRAINT sandboxes_source_snapshot_id_fkey
    FOREIGN KEY (source_snapshot_id) REFERENCES agent.sandbox_snapshots (id)
    ON UPDATE CASCADE;

-- An invocation's phase attempt belongs to the invocation's run.
ALTER TABLE agent.agent_invocations ADD CONSTRAINT agent_invocations_phase_same_run_fkey
    FOREIGN KEY (phase_result_id, run_id) REFERENCES agent.phase_results (id, run_id)
    ON UPDATE CASCADE ON DELETE CASCADE;

-- A tool call's step belongs to the tool call's invocation.
ALTER TABLE agent.tool_calls ADD CONSTRAINT tool_calls_step_same_invocation_fkey
    FOREIGN KEY (step_id, invocation_id) REFERENCES agent.agent_steps (id, invocation_id)
    ON UPDATE CASCADE ON DELETE CASCADE;
