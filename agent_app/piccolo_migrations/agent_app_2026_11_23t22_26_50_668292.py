"""Indexes and table comments of the LangGraph and Agents SDK tables

Raw SQL, frozen when this migration was written: never edit it, add a new
migration instead. Each statement runs inside the migration's transaction,
so a failure leaves the database as it was.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T22:26:50:668292"
VERSION = "1.38.0"
DESCRIPTION = 'Indexes and table comments of the LangGraph and Agents SDK tables'

FORWARDS = ['CREATE INDEX graph_threads_run_idx ON agent.graph_threads (run_id) WHERE run_id IS NOT NULL;',
 'CREATE INDEX graph_threads_agent_idx ON agent.graph_threads (agent_id) WHERE agent_id IS NOT '
 'NULL;',
 'CREATE INDEX graph_checkpoints_metadata_idx ON agent.graph_checkpoints USING gin (metadata '
 'jsonb_path_ops);',
 'CREATE INDEX session_items_session_idx ON agent.session_items (session_id, id);',
 "COMMENT ON TABLE agent.graph_threads IS 'A LangGraph thread whose checkpoints live here, "
 'optionally tied to the feature run (deleting the run deletes the thread and all its checkpoints) '
 "and the agent it belongs to. Deleting a thread deletes its checkpoints, blobs and writes.';",
 "COMMENT ON TABLE agent.graph_checkpoints IS 'One LangGraph checkpoint of a thread and namespace. "
 "The body (serialized with LangGraph''s serializer) holds the checkpoint with its primitive "
 "channel values; other channel values are graph_blobs rows named by channels/versions.';",
 "COMMENT ON TABLE agent.graph_blobs IS 'One channel value of a LangGraph thread at one version "
 "(serialized with LangGraph''s serializer). A checkpoint whose channel did not change reuses the "
 "blob of the version it names: unchanged channels are not written again.';",
 "COMMENT ON TABLE agent.graph_writes IS 'A pending write of a LangGraph task against a "
 'checkpoint, unique on (checkpoint, task_id, idx) so a retried put_writes stores it once. No '
 "foreign key to the checkpoint: LangGraph may save a step''s writes before its checkpoint.';",
 "COMMENT ON TABLE agent.session_items IS 'One item (a message, tool call or result) of an OpenAI "
 "Agents SDK session''s history. The identity column''s order is the conversation''s order.';"]

BACKWARDS = ['DROP INDEX IF EXISTS agent.session_items_session_idx;',
 'DROP INDEX IF EXISTS agent.graph_checkpoints_metadata_idx;',
 'DROP INDEX IF EXISTS agent.graph_threads_agent_idx;',
 'DROP INDEX IF EXISTS agent.graph_threads_run_idx;',
 'COMMENT ON TABLE agent.graph_threads IS NULL;',
 'COMMENT ON TABLE agent.graph_checkpoints IS NULL;',
 'COMMENT ON TABLE agent.graph_blobs IS NULL;',
 'COMMENT ON TABLE agent.graph_writes IS NULL;',
 'COMMENT ON TABLE agent.session_items IS NULL;']


async def _run(statements: list[str]) -> None:
    engine = engine_finder()
    assert engine is not None
    for statement in statements:
        await engine.run_ddl(statement)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="agent_app", description=DESCRIPTION)

    async def run_forwards() -> None:
        await _run(FORWARDS)

    async def run_backwards() -> None:
        await _run(BACKWARDS)

    manager.add_raw(run_forwards)
    manager.add_raw_backwards(run_backwards)
    return manager
