"""AgentAppSaver with a real compiled LangGraph graph, and what it promises beyond the
conformance suite: storage per channel and version, links to runs and agents, the sync
bridge, idempotent writes, Piccolo transactions, typed errors."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, TypedDict

import asyncpg
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

from agent_app import db
from agent_app.errors import RuleViolation
from agent_app.langgraph import AgentAppSaver, InvalidThreadConfig, SchemaMissing
from agent_app.tables import GraphThread


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    approved: bool


def build_graph() -> StateGraph:
    def draft(state: State) -> dict:
        return {"messages": [AIMessage(content="plan: refactor the parser", id="ai-1")]}

    def review(state: State) -> dict:
        answer = interrupt({"question": "approve the plan?"})
        return {
            "approved": answer == "yes",
            "messages": [HumanMessage(content=f"reviewer said {answer}", id="h-2")],
        }

    def implement(state: State) -> dict:
        return {"messages": [AIMessage(content="done", id="ai-3")]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_node("implement", implement)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "implement")
    return builder


async def new_run(c: asyncpg.Connection) -> uuid.UUID:
    return await c.fetchval(
        "INSERT INTO agent.feature_runs (title, request, repo_url) VALUES ('lg', 'r', 'u') RETURNING id"
    )


async def test_graph_with_messages_interrupt_and_resume(pool: asyncpg.Pool) -> None:
    saver = AgentAppSaver(pool)
    graph = build_graph().compile(checkpointer=saver)
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}

    first = await graph.ainvoke(
        {"messages": [HumanMessage(content="add a --json flag", id="h-0")]}, config
    )
    assert "__interrupt__" in first
    assert first["__interrupt__"][0].value == {"question": "approve the plan?"}
    paused = await graph.aget_state(config)
    assert paused.next == ("review",)
    assert [type(m) for m in paused.values["messages"]] == [HumanMessage, AIMessage]

    # A fresh saver and graph (as another worker would) resumes from the database.
    graph2 = build_graph().compile(checkpointer=AgentAppSaver(pool))
    final = await graph2.ainvoke(Command(resume="yes"), config)
    assert final["approved"] is True
    assert [(type(m), m.content) for m in final["messages"]] == [
        (HumanMessage, "add a --json flag"),
        (AIMessage, "plan: refactor the parser"),
        (HumanMessage, "reviewer said yes"),
        (AIMessage, "done"),
    ]
    assert (await graph2.aget_state(config)).next == ()
    history = [s async for s in graph2.aget_state_history(config)]
    assert len(history) >= 4

    thread_id = config["configurable"]["thread_id"]
    async with pool.acquire() as c:
        blobs = await c.fetch(
            "SELECT channel, version, type, blob FROM agent.graph_blobs WHERE thread_id = $1",
            thread_id,
        )
        checkpoints = await c.fetchval(
            "SELECT count(*) FROM agent.graph_checkpoints WHERE thread_id = $1", thread_id
        )
    # Channel values are msgpack bytea, one row per channel and version: the messages
    # channel got a new version at each step that changed it, not at every checkpoint.
    assert {b["type"] for b in blobs} == {"msgpack"}
    message_versions = [b for b in blobs if b["channel"] == "messages"]
    assert 1 < len(message_versions) < checkpoints
    assert len({b["version"] for b in message_versions}) == len(message_versions)


async def test_unchanged_channels_are_not_written_again(pool: asyncpg.Pool) -> None:
    saver = AgentAppSaver(pool)
    thread = f"t-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    cp1 = {
        "v": 4, "id": "1f0-a", "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": {"big": {"x": list(range(100))}, "small": "s"},
        "channel_versions": {"big": "1", "small": "1"}, "versions_seen": {},
        "updated_channels": None,
    }  # fmt: skip
    stored = await saver.aput(cfg, cp1, {"step": 0}, {"big": "1", "small": "1"})
    cp2 = {**cp1, "id": "1f0-b", "channel_values": {"big": {"x": list(range(100))}, "small": "t"},
           "channel_versions": {"big": "1", "small": "2"}}  # fmt: skip
    stored2 = await saver.aput(stored, cp2, {"step": 1}, {"small": "2"})
    async with pool.acquire() as c:
        assert (
            await c.fetchval("SELECT count(*) FROM agent.graph_blobs WHERE thread_id = $1", thread)
            == 1
        )  # "big" once; primitives travel inline in the checkpoint row
    tup = await saver.aget_tuple(stored2)
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"big": {"x": list(range(100))}, "small": "t"}
    assert tup.parent_config is not None
    assert tup.parent_config["configurable"]["checkpoint_id"] == "1f0-a"


async def test_deleting_the_run_deletes_its_threads(pool: asyncpg.Pool) -> None:
    saver = AgentAppSaver(pool)
    graph = build_graph().compile(checkpointer=saver)
    async with pool.acquire() as c:
        run_id = await new_run(c)
        agent_id = await c.fetchval(
            "INSERT INTO agent.agents (run_id, agent_type, name) VALUES ($1, 'coder', 'c') RETURNING id",
            run_id,
        )
    linked, other = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    await saver.link_thread(linked, run_id=run_id, agent_id=agent_id)
    for thread in (linked, other):
        await graph.ainvoke(
            {"messages": [HumanMessage(content="hi")]}, {"configurable": {"thread_id": thread}}
        )
    row = await GraphThread.select().where(GraphThread.thread_id == linked).first()
    assert row is not None and row["run_id"] == run_id and row["agent_id"] == agent_id

    async with pool.acquire() as c:
        await c.execute("DELETE FROM agent.feature_runs WHERE id = $1", run_id)
        for table in ("graph_threads", "graph_checkpoints", "graph_blobs", "graph_writes"):
            assert (
                await c.fetchval(f"SELECT count(*) FROM agent.{table} WHERE thread_id = $1", linked)
                == 0
            ), table
    assert await saver.aget_tuple({"configurable": {"thread_id": linked}}) is None
    assert await saver.aget_tuple({"configurable": {"thread_id": other}}) is not None


async def test_linking_to_an_unknown_run_is_refused_and_changes_nothing(pool: asyncpg.Pool) -> None:
    saver = AgentAppSaver(pool)
    thread = f"t-{uuid.uuid4()}"
    with pytest.raises(RuleViolation) as e:
        await saver.link_thread(thread, run_id=uuid.uuid4())
    assert e.value.rule == "graph_threads_run_id_fkey"
    async with pool.acquire() as c:
        assert (
            await c.fetchval(
                "SELECT count(*) FROM agent.graph_threads WHERE thread_id = $1", thread
            )
            == 0
        )


async def test_a_config_without_thread_id_gets_a_typed_error(pool: asyncpg.Pool) -> None:
    saver = AgentAppSaver(pool)
    with pytest.raises(InvalidThreadConfig, match="graph_thread_id"):
        await saver.aget_tuple({"configurable": {}})


async def test_setup_checks_the_schema_and_names_what_is_missing(scratch_url: str) -> None:
    pool = await asyncpg.create_pool(scratch_url, min_size=1, max_size=1)
    try:
        with pytest.raises(SchemaMissing, match=r"agent\.graph_threads"):
            await AgentAppSaver(pool).setup()
    finally:
        await pool.close()


async def test_put_writes_retried_concurrently_stores_each_write_once(pool: asyncpg.Pool) -> None:
    saver = AgentAppSaver(pool)
    thread = f"t-{uuid.uuid4()}"
    # Writes may land before their checkpoint: no checkpoint row is needed.
    cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": "1f0-x"}}
    writes = [("a", {"n": 1}), ("b", [1, 2]), ("a", "again")]
    await asyncio.gather(*(saver.aput_writes(cfg, writes, "task-1") for _ in range(8)))
    async with pool.acquire() as c:
        rows = await c.fetch(
            "SELECT idx, channel FROM agent.graph_writes WHERE thread_id = $1 ORDER BY idx", thread
        )
    assert [(r["idx"], r["channel"]) for r in rows] == [(0, "a"), (1, "b"), (2, "a")]


async def test_runs_inside_the_callers_piccolo_transaction() -> None:
    engine = db.engine()
    saver = AgentAppSaver()  # agent_app's own connections: joins the transaction
    thread = f"t-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    cp = {"v": 4, "id": "1f0-a", "ts": "2026-01-01T00:00:00+00:00", "channel_values": {},
          "channel_versions": {}, "versions_seen": {}, "updated_channels": None}  # fmt: skip

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with engine.transaction():
            await saver.aput(cfg, cp, {"step": 0}, {})
            assert await saver.aget_tuple(cfg) is not None  # visible inside
            raise Abort
    assert await saver.aget_tuple(cfg) is None  # rolled back with the caller's transaction


async def test_sync_methods_are_bridged_from_another_thread(pool: asyncpg.Pool) -> None:
    saver = AgentAppSaver(pool)
    graph = build_graph().compile(checkpointer=saver)
    thread = f"t-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}

    def run_sync() -> tuple[int, int]:
        graph.invoke({"messages": [HumanMessage(content="sync")]}, config)
        listed = list(saver.list(config))
        tup = saver.get_tuple(config)
        assert tup is not None
        saver.copy_thread(thread, thread + "-copy")
        copied = len(list(saver.list({"configurable": {"thread_id": thread + "-copy"}})))
        saver.prune([thread], strategy="keep_latest")
        saver.delete_for_runs([])
        saver.delete_thread(thread + "-copy")
        return len(listed), copied

    listed, copied = await asyncio.to_thread(run_sync)
    assert listed >= 3 and copied == listed
    assert len([t async for t in saver.alist(config)]) == 1  # pruned to the latest
    assert [t async for t in saver.alist({"configurable": {"thread_id": thread + "-copy"}})] == []
    # All threads at once: alist(None).
    everywhere = [
        t.config["configurable"]["thread_id"] async for t in saver.alist(None, limit=1000)
    ]
    assert thread in everywhere
    # On the loop's own thread a sync call would deadlock: it is refused instead.
    with pytest.raises(asyncio.InvalidStateError):
        saver.get_tuple(config)


async def test_prune_takes_more_thread_ids_than_a_statement_has_parameters(
    pool: asyncpg.Pool,
) -> None:
    """PostgreSQL's protocol allows 32,767 parameters per statement: the thread ids of a
    prune travel as one array, so 40,000 of them (one real) are pruned in one call."""
    saver = AgentAppSaver(pool)
    graph = build_graph().compile(checkpointer=saver)
    real, kept = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    for thread in (real, kept):
        await graph.ainvoke(
            {"messages": [HumanMessage(content="hi")]}, {"configurable": {"thread_id": thread}}
        )
    ids = [f"absent-{n}" for n in range(39_999)] + [real]
    await saver.aprune(ids, strategy="delete")
    await saver.aprune(ids, strategy="keep_latest")
    assert await saver.aget_tuple({"configurable": {"thread_id": real}}) is None
    assert await saver.aget_tuple({"configurable": {"thread_id": kept}}) is not None
    async with pool.acquire() as c:
        for table in ("graph_checkpoints", "graph_blobs", "graph_writes"):
            assert (
                await c.fetchval(f"SELECT count(*) FROM agent.{table} WHERE thread_id = $1", real)
                == 0
            ), table
        assert await c.fetchval(
            "SELECT count(*) FROM agent.graph_threads WHERE thread_id = $1", real
        )
