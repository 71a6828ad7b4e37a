"""Adversarial probes of telemetry.ingest's refusals."""

from __future__ import annotations

import uuid

import pytest

from agent_app import db, telemetry
from agent_app.errors import AgentAppError, RuleViolation
from agent_app.telemetry import StepIn, ToolCallIn, ToolResultIn
from tests.test_telemetry_checkpoints import counts, invocation


async def test_p_same_step_number_twice_in_a_batch_names_the_row() -> None:
    _, inv = await invocation()
    steps = [StepIn(inv, n, "stop") for n in range(100)]
    steps[57] = StepIn(inv, 3, "stop")
    before = await counts()
    with pytest.raises(RuleViolation) as err:
        await telemetry.ingest(steps)
    assert err.value.rule == "agent_steps_invocation_step_key"
    assert "row 57 (step)" in str(err.value), str(err.value)
    assert await counts() == before


async def test_p_a_step_number_already_stored_names_the_row() -> None:
    _, inv = await invocation()
    await telemetry.ingest([StepIn(inv, 57, "stop")])
    steps = [StepIn(inv, n, "stop") for n in range(100)]
    before = await counts()
    with pytest.raises(RuleViolation) as err:
        await telemetry.ingest(steps)
    assert err.value.rule == "agent_steps_invocation_step_key"
    assert "row 57 (step)" in str(err.value), str(err.value)
    assert await counts() == before


async def test_p_a_tool_call_id_already_stored_names_the_row() -> None:
    _, inv = await invocation()
    await telemetry.ingest([StepIn(inv, 1000, "stop", tool_calls=[ToolCallIn("c57", "ls")])])
    steps = [StepIn(inv, n, "stop", tool_calls=[ToolCallIn(f"c{n}", "ls")]) for n in range(100)]
    before = await counts()
    with pytest.raises(RuleViolation) as err:
        await telemetry.ingest(steps)
    assert err.value.rule == "tool_calls_invocation_call_key"
    assert "row 57 (step)" in str(err.value), str(err.value)
    assert await counts() == before


async def test_p_unknown_invocation_inside_piccolo_transaction() -> None:
    from piccolo.engine import engine_finder

    _, inv = await invocation()
    steps = [StepIn(inv, n, "stop") for n in range(100)]
    steps[57] = StepIn(uuid.uuid4(), 57, "stop")
    before = await counts()
    engine = engine_finder()
    assert engine is not None
    async with engine.transaction():
        with pytest.raises(RuleViolation) as err:
            await telemetry.ingest(steps)
        assert "row 57 (step)" in str(err.value)
        await telemetry.ingest([StepIn(inv, 0, "stop")])
    assert (await counts())["agent_steps"] == before["agent_steps"] + 1


async def test_p_unknown_invocations_in_results_only() -> None:
    await invocation()
    before = await counts()
    with pytest.raises(AgentAppError) as err:
        await telemetry.ingest([], [ToolResultIn(uuid.uuid4(), "c", "text", "x")])
    assert "row 0 (tool result)" in str(err.value)
    assert await counts() == before


async def test_p_unknown_invocation_in_callers_asyncpg_tx_stays_usable() -> None:
    _, inv = await invocation()
    steps = [StepIn(inv, n, "stop") for n in range(10)]
    steps[7] = StepIn(uuid.uuid4(), 7, "stop")
    async with db.connection() as c, c.transaction():
        with pytest.raises(RuleViolation) as err:
            await telemetry.ingest(steps, conn=c)
        assert "row 7 (step)" in str(err.value)
        assert await c.fetchval("SELECT 1") == 1
