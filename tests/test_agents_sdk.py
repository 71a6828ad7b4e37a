"""AgentAppSession (the Agents SDK's Session protocol) and TelemetryHooks, against real
PostgreSQL. The session tests port the semantics of the SDK's own session tests."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import pytest
from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.memory import Session, SessionSettings
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agent_app.agents_sdk import AgentAppSession, InvalidSessionId, TelemetryHooks

set_tracing_disabled(True)


def new_session(pool: asyncpg.Pool | None = None, **kwargs: object) -> AgentAppSession:
    return AgentAppSession(f"s-{uuid.uuid4()}", pool=pool, **kwargs)  # type: ignore[arg-type]


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


async def test_implements_the_session_protocol() -> None:
    assert isinstance(new_session(), Session)


async def test_add_get_and_clear(pool: asyncpg.Pool) -> None:
    s = new_session(pool)
    assert await s.get_items() == []
    items = [msg("user", "Hello"), msg("assistant", "Hi there!")]
    await s.add_items(items)
    assert await s.get_items() == items
    await s.add_items([msg("user", "How are you?")])
    assert await s.get_items() == [*items, msg("user", "How are you?")]
    await s.add_items([])  # nothing to add: no error, nothing changes
    assert len(await s.get_items()) == 3
    await s.clear_session()
    assert await s.get_items() == []


async def test_get_items_with_limit_returns_the_latest_in_order(pool: asyncpg.Pool) -> None:
    s = new_session(pool)
    items = [msg("user" if i % 2 == 0 else "assistant", f"Message {i}") for i in range(1, 7)]
    await s.add_items(items)
    assert await s.get_items(limit=2) == items[-2:]
    assert await s.get_items(limit=4) == items[-4:]
    assert await s.get_items(limit=10) == items
    assert await s.get_items(limit=0) == []
    assert await s.get_items() == items
    empty = new_session(pool)
    assert await empty.get_items(limit=2) == []


async def test_session_settings_limit_is_the_default(pool: asyncpg.Pool) -> None:
    s = new_session(pool, session_settings=SessionSettings(limit=3))
    items = [msg("user", str(i)) for i in range(5)]
    await s.add_items(items)
    assert await s.get_items() == items[-3:]
    assert await s.get_items(limit=5) == items  # an explicit limit wins


async def test_pop_item_returns_newest_first_then_none(pool: asyncpg.Pool) -> None:
    s = new_session(pool)
    assert await s.pop_item() is None
    items = [msg("user", "1"), msg("assistant", "2"), msg("user", "3")]
    await s.add_items(items)
    assert await s.pop_item() == items[2]
    assert await s.get_items() == items[:2]
    assert await s.pop_item() == items[1]
    assert await s.pop_item() == items[0]
    assert await s.pop_item() is None
    assert await s.get_items() == []


async def test_sessions_are_isolated(pool: asyncpg.Pool) -> None:
    a, b = new_session(pool), new_session(pool)
    await a.add_items([msg("user", "for a")])
    await b.add_items([msg("user", "for b")])
    assert await a.get_items() == [msg("user", "for a")]
    assert await b.get_items() == [msg("user", "for b")]
    assert await a.pop_item() == msg("user", "for a")
    assert await b.get_items() == [msg("user", "for b")]
    await b.clear_session()
    await a.add_items([msg("user", "again")])
    assert await a.get_items() == [msg("user", "again")]


async def test_unicode_and_injection_strings_round_trip(pool: asyncpg.Pool) -> None:
    s = new_session(pool)
    items = [
        msg("user", "こんにちは 😀 Ünïcödé — \u2028 \\ \" '"),
        msg("assistant", "'; DROP TABLE agent.session_items; --"),
        msg("user", "Robert'); DELETE FROM agent.session_items WHERE ('1'='1"),
        {"type": "function_call_output", "call_id": "c1", "output": '{"nested": [1, 2]}'},
    ]
    await s.add_items(items)
    assert await s.get_items() == items
    assert await s.pop_item() == items[-1]
    # The injection attempt in a session id is just an id.
    evil = AgentAppSession("x'; DELETE FROM agent.session_items; --", pool=pool)
    await evil.add_items([msg("user", "ok")])
    assert await evil.get_items() == [msg("user", "ok")]
    assert len(await s.get_items()) == 3
    await evil.clear_session()


async def test_empty_session_id_is_refused() -> None:
    with pytest.raises(InvalidSessionId, match="session_id_not_empty"):
        AgentAppSession("")


async def test_concurrent_adds_keep_each_batch_in_order(pool: asyncpg.Pool) -> None:
    s = new_session(pool)
    batches = [[msg("user", f"{b}-{i}") for i in range(5)] for b in range(10)]
    await asyncio.gather(*(s.add_items(batch) for batch in batches))
    got = await s.get_items()
    assert len(got) == 50
    for batch in batches:  # batches interleave, but each keeps its own order
        positions = [got.index(item) for item in batch]
        assert positions == sorted(positions)


async def test_concurrent_pops_return_each_item_once(pool: asyncpg.Pool) -> None:
    s = new_session(pool)
    items = [msg("user", str(i)) for i in range(30)]
    await s.add_items(items)
    popped = await asyncio.gather(*(new_pop(pool, s.session_id) for _ in range(40)))
    got = [p for p in popped if p is not None]
    assert len(got) == 30 and popped.count(None) == 10
    assert sorted(got, key=lambda m: int(m["content"])) == items
    assert await s.get_items() == []


async def new_pop(pool: asyncpg.Pool, session_id: str) -> dict | None:
    return await AgentAppSession(session_id, pool=pool).pop_item()  # type: ignore[return-value]


async def test_on_agent_app_own_connections() -> None:
    s = new_session()
    await s.add_items([msg("user", "via Piccolo's pool")])
    assert await s.get_items() == [msg("user", "via Piccolo's pool")]
    await s.clear_session()


# --------------------------------------------------------------------------- #
# Runner.run with the SDK's scripted model: no API key, no network
# --------------------------------------------------------------------------- #


@function_tool
def count_files(folder: str) -> str:
    """Count the files in a folder."""
    return f"{folder} holds 12 files"


def usage(inp: int, out: int, cached: int, reasoning: int) -> Usage:
    return Usage(
        requests=1,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning),
    )


def scripted_model() -> ScriptedModel:
    return ScriptedModel(
        [
            ModelStep(
                output=[function_call("count_files", {"folder": "src"}, call_id="call-1")],
                usage=usage(100, 20, 40, 7),
            ),
            ModelStep(
                output=[assistant_message("src holds 12 files.")], usage=usage(150, 10, 100, 0)
            ),
            ModelStep(
                output=[assistant_message("You asked about src.")], usage=usage(200, 8, 150, 3)
            ),
        ]
    )


async def test_two_turns_on_one_session_carry_the_history(pool: asyncpg.Pool) -> None:
    model = scripted_model()
    agent = Agent(name="helper", instructions="Be brief.", model=model, tools=[count_files])
    session = new_session(pool)

    first = await Runner.run(agent, "How many files in src?", session=session)
    assert first.final_output == "src holds 12 files."
    after_first = await session.get_items()
    assert after_first[0] == {"role": "user", "content": "How many files in src?"}
    kinds = [i.get("type", "message") for i in after_first]
    assert "function_call" in kinds and "function_call_output" in kinds

    second = await Runner.run(agent, "Which folder did I ask about?", session=session)
    assert second.final_output == "You asked about src."
    model.assert_complete()

    # The second turn's model input is the whole first turn, then the new question.
    second_input = model.last_call.input
    assert isinstance(second_input, list)
    assert second_input[: len(after_first)] == after_first
    assert second_input[len(after_first)]["content"] == "Which folder did I ask about?"
    assert any(
        i.get("type") == "function_call_output" and "12 files" in i.get("output", "")
        for i in second_input
    )
    stored = await session.get_items()
    assert len(stored) == len(after_first) + 2
    assert stored[-1]["role"] == "assistant"


async def test_telemetry_hooks_record_the_run(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as c:
        run_id = await c.fetchval(
            "INSERT INTO agent.feature_runs (title, request, repo_url) VALUES ('sdk', 'r', 'u') RETURNING id"
        )
        phase_id = await c.fetchval(
            "INSERT INTO agent.phase_results (run_id, phase) VALUES ($1, 'implementation') RETURNING id",
            run_id,
        )
    hooks = TelemetryHooks(run_id, phase_id, model="gpt-test", input={"task": "count"})
    agent = Agent(name="helper", model=scripted_model(), tools=[count_files])
    result = await Runner.run(agent, "How many files in src?", hooks=hooks)
    assert result.final_output == "src holds 12 files."
    assert hooks.invocation_id is not None

    async with pool.acquire() as c:
        inv = await c.fetchrow(
            "SELECT * FROM agent.agent_invocations WHERE id = $1", hooks.invocation_id
        )
        steps = await c.fetch(
            "SELECT * FROM agent.agent_steps WHERE invocation_id = $1 ORDER BY step_number",
            hooks.invocation_id,
        )
        calls = await c.fetch(
            "SELECT * FROM agent.tool_calls WHERE invocation_id = $1", hooks.invocation_id
        )
    assert inv["run_id"] == run_id and inv["phase_result_id"] == phase_id
    assert inv["agent_type"] == "coder" and inv["model"] == "gpt-test"
    assert inv["finish_reason"] == "stop" and inv["finished_at"] is not None
    assert (inv["input_tokens"], inv["output_tokens"], inv["cost_usd"]) == (250, 30, Decimal(0))

    assert [s["step_number"] for s in steps] == [0, 1]
    first, second = steps
    assert (first["finish_reason"], first["raw_finish_reason"]) == ("tool-calls", "function_call")
    assert (second["finish_reason"], second["raw_finish_reason"]) == ("stop", "completed")
    assert (
        first["input_tokens"], first["output_tokens"],
        first["cached_input_tokens"], first["reasoning_tokens"],
    ) == (100, 20, 40, 7)  # fmt: skip
    assert (second["cached_input_tokens"], second["reasoning_tokens"]) == (100, 0)
    assert second["text"] == "src holds 12 files."

    assert len(calls) == 1
    call = calls[0]
    assert call["step_id"] == first["id"]
    assert (call["tool_call_id"], call["tool_name"]) == ("call-1", "count_files")
    assert call["input"] == '{"folder": "src"}'
    assert call["output_type"] == "text" and call["output"] == '"src holds 12 files"'
    assert call["finished_at"] is not None


async def test_unreported_usage_is_null_not_zero(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as c:
        run_id = await c.fetchval(
            "INSERT INTO agent.feature_runs (title, request, repo_url) VALUES ('sdk', 'r', 'u') RETURNING id"
        )
        phase_id = await c.fetchval(
            "INSERT INTO agent.phase_results (run_id, phase) VALUES ($1, 'analysis') RETURNING id",
            run_id,
        )
    hooks = TelemetryHooks(run_id, phase_id)
    agent = Agent(name="quiet", model=ScriptedModel([[assistant_message("ok")]]))
    await Runner.run(agent, "hi", hooks=hooks)
    async with pool.acquire() as c:
        step = await c.fetchrow(
            "SELECT * FROM agent.agent_steps WHERE invocation_id = $1", hooks.invocation_id
        )
        model = await c.fetchval(
            "SELECT model FROM agent.agent_invocations WHERE id = $1", hooks.invocation_id
        )
    assert step["input_tokens"] is None and step["cached_input_tokens"] is None
    assert model == "ScriptedModel"
