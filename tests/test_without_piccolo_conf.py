"""The framework integrations given a pool of the caller's own need no Piccolo engine:
a program with no ``piccolo_conf.py`` anywhere (a LangGraph or Agents SDK user who only
has a connection string) can use every method of the saver and the session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import asyncpg

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib.util, sys

    import asyncpg
    from langgraph.checkpoint.base import empty_checkpoint

    from agent_app.agents_sdk import AgentAppSession
    from agent_app.langgraph import AgentAppSaver

    url, gone, pruned, session_id = sys.argv[1:]
    assert importlib.util.find_spec("piccolo_conf") is None, "piccolo_conf is importable"


    def config(thread):
        return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


    async def main():
        async with AgentAppSaver.from_conn_string(url) as saver:
            await saver.setup()
            for thread in (gone, pruned):
                checkpoint = empty_checkpoint()
                checkpoint["channel_values"] = {"c": [1, 2]}  # a list: stored as a blob
                checkpoint["channel_versions"] = {"c": "1"}
                saved = await saver.aput(config(thread), checkpoint, {}, {"c": "1"})
                await saver.aput_writes(saved, [("c", [3])], "task")
                stored = await saver.aget_tuple(config(thread))
                assert stored.checkpoint["channel_values"] == {"c": [1, 2]}
                assert stored.pending_writes == [("task", "c", [3])]
            await saver.adelete_thread(gone)
            await saver.aprune([pruned], strategy="delete")
            await saver.aprune([pruned], strategy="keep_latest")
            await saver.adelete_for_runs(["no-such-run"])
            await saver.acopy_thread(pruned, pruned + "-copy")
            assert await saver.aget_tuple(config(pruned)) is None
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            session = AgentAppSession(session_id, pool=pool)
            await session.add_items([{"role": "user", "content": "hi"}] * 3)
            assert await session.pop_item() == {"role": "user", "content": "hi"}
            assert len(await session.get_items(1)) == 1
            await session.clear_session()
            assert await session.get_items() == []
        finally:
            await pool.close()


    asyncio.run(main())
    print("ok")
    """
)


async def test_saver_and_session_on_a_pool_of_their_own_need_no_piccolo_conf(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool
) -> None:
    gone, pruned = f"no-conf-{uuid.uuid4()}", f"no-conf-{uuid.uuid4()}"
    session_id = f"no-conf-{uuid.uuid4()}"
    async with pool.acquire() as c:
        await c.execute(
            "INSERT INTO agent.session_items (session_id, item) VALUES ($1, '1')", session_id
        )
    # No piccolo_conf.py in the working directory, none on the path, none named.
    env = {k: v for k, v in os.environ.items() if k not in ("PICCOLO_CONF", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, database_url, gone, pruned, session_id],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    async with pool.acquire() as c:
        assert not await c.fetchval(
            "SELECT count(*) FROM agent.graph_threads WHERE thread_id = $1", gone
        )
        # "delete" keeps the thread row, and nothing else of it.
        assert await c.fetchval(
            "SELECT count(*) FROM agent.graph_threads WHERE thread_id = $1", pruned
        )
        for table in ("graph_checkpoints", "graph_writes", "graph_blobs"):
            assert not await c.fetchval(
                f"SELECT count(*) FROM agent.{table} WHERE thread_id = ANY($1::text[])",
                [gone, pruned],
            ), table
        assert not await c.fetchval(
            "SELECT count(*) FROM agent.session_items WHERE session_id = $1", session_id
        )
