"""Telemetry ingestion (single-row and COPY), checkpoints, memory and CTA questions."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from agent_app import checkpoints, cta, db, memory, runs, telemetry
from agent_app.enums import (
    AgentType,
    CtaKind,
    FeaturePhase,
    FinishReason,
    MemoryKind,
    ToolOutputType,
)
from agent_app.errors import AgentAppError, RuleViolation
from agent_app.telemetry import StepIn, ToolCallIn, ToolResultIn
from tests.rules import snapshot


async def invocation() -> tuple[uuid.UUID, uuid.UUID]:
    run = await runs.create_run("t", "r", "u")
    phase = await runs.start_phase(run.id, FeaturePhase.analysis)
    inv = await telemetry.start_invocation(run.id, phase.id, AgentType.explorer, "model-x")
    return run.id, inv


async def counts() -> dict[str, int]:
    async with db.connection() as c:
        return {
            t: await c.fetchval(f"SELECT count(*) FROM agent.{t}")
            for t in ("agent_steps", "tool_calls")
        }


async def test_steps_tool_calls_results_and_rollup() -> None:
    run_id, inv = await invocation()
    await telemetry.record_step(
        StepIn(inv, 0, "tool-calls", raw_finish_reason="tool_use", text="let me look",
               input_tokens=100, output_tokens=20, cost_usd=Decimal("0.001"),
               tool_calls=[ToolCallIn("call_1", "bash", {"cmd": "ls"}),
                           ToolCallIn("call_2", "read", {"path": "a.py"})])
    )  # fmt: skip
    await telemetry.record_tool_result(ToolResultIn(inv, "call_1", "text", "a.py\nb.py"))
    await telemetry.record_tool_result(ToolResultIn(inv, "call_2", "execution-denied"))
    await telemetry.record_step(
        StepIn(inv, 1, "stop", text="done", input_tokens=150, output_tokens=30,
               cached_input_tokens=None, reasoning_tokens=None, cost_usd=Decimal("0.002"))
    )  # fmt: skip
    totals = await telemetry.finish_invocation(inv, output={"answer": 42}, finish_reason="stop")
    assert totals == (250, 50, Decimal("0.003"))
    async with db.connection() as c:
        nulls = await c.fetchval(
            "SELECT count(*) FROM agent.agent_steps WHERE invocation_id = $1 "
            "AND cached_input_tokens IS NULL AND reasoning_tokens IS NULL",
            inv,
        )
        assert nulls == 2  # not reported stays null, not 0
    with pytest.raises(RuleViolation) as orphan:
        await telemetry.record_tool_result(ToolResultIn(inv, "call_404", "text", "x"))
    assert orphan.value.rule == "tool_call_missing"
    with pytest.raises(RuleViolation) as twice:
        await telemetry.record_tool_result(ToolResultIn(inv, "call_1", "text", "again"))
    assert twice.value.rule == "tool_result_once"
    tl = await runs.timeline(run_id)
    [summary] = tl.phases[0].invocations
    assert (summary.steps, summary.tool_calls, summary.input_tokens) == (2, 2, 250)
    assert tl.cost_usd == Decimal("0.003")


async def test_single_row_refusals_change_nothing() -> None:
    _, inv = await invocation()
    before = await counts()
    for bad, rule in [
        (StepIn(inv, 0, "bogus"), "finish_reason_enum"),
        (StepIn(inv, -1, "stop"), "step_number_min"),
        (StepIn(inv, 0, "stop", input_tokens=-3), "usage_non_negative"),
        (StepIn(inv, 0, "stop", tool_calls=[ToolCallIn("c", "t", output_type="weird")]), "output_type_enum"),
        (StepIn(uuid.uuid4(), 0, "stop"), "agent_steps_invocation_id_fkey"),
    ]:  # fmt: skip
        with pytest.raises(RuleViolation) as err:
            await telemetry.record_step(bad)
        assert err.value.rule == rule
    # A tool call refused by the database takes its step with it: one statement.
    await telemetry.record_step(StepIn(inv, 0, "stop"))
    with pytest.raises(RuleViolation):
        await telemetry.record_step(StepIn(inv, 0, "stop", tool_calls=[ToolCallIn("c9", "t")]))
    assert await counts() == {
        "agent_steps": before["agent_steps"] + 1,
        "tool_calls": before["tool_calls"],
    }


async def test_bulk_ingestion_stores_everything_through_copy() -> None:
    _, inv = await invocation()
    steps = [
        StepIn(inv, n, "tool-calls" if n % 2 else "stop", input_tokens=n, output_tokens=None,
               tool_calls=[ToolCallIn(f"c{n}-{k}", "grep", {"q": k}) for k in range(n % 3)])
        for n in range(200)
    ]  # fmt: skip
    result = await telemetry.ingest(steps)
    assert result == telemetry.Ingested(200, sum(n % 3 for n in range(200)), 0)
    results = [ToolResultIn(inv, f"c{n}-0", "json", {"n": n}) for n in range(200) if n % 3]
    assert (await telemetry.ingest([], results)).tool_results == len(results)
    totals = await telemetry.rollup_usage(inv)
    assert totals[0] == sum(range(200)) and totals[1] == 0


@pytest.mark.parametrize("bad_row", [0, 57, 199])
async def test_a_bulk_batch_with_one_bad_enum_stores_nothing_and_names_the_row(
    bad_row: int,
) -> None:
    _, inv = await invocation()
    steps = [StepIn(inv, n, "stop", tool_calls=[ToolCallIn(f"c{n}", "ls")]) for n in range(200)]
    steps[bad_row] = StepIn(inv, bad_row, "not-a-reason")
    before = await counts()
    with pytest.raises(RuleViolation) as err:
        await telemetry.ingest(steps)
    assert err.value.rule == "finish_reason_enum"
    assert f"row {bad_row} (step)" in str(err.value) and "not-a-reason" in str(err.value)
    assert await counts() == before


async def test_a_bulk_batch_with_an_orphan_tool_result_stores_nothing() -> None:
    _, inv = await invocation()
    steps = [StepIn(inv, n, "stop", tool_calls=[ToolCallIn(f"c{n}", "ls")]) for n in range(50)]
    results = [ToolResultIn(inv, f"c{n}", "text", "ok") for n in range(50)]
    results.insert(31, ToolResultIn(inv, "ghost", "text", "boo"))
    before = await counts()
    with pytest.raises(RuleViolation) as err:
        await telemetry.ingest(steps, results)
    assert err.value.rule == "tool_call_missing" and "row 31 (tool result)" in str(err.value)
    assert await counts() == before
    bad_type = [ToolResultIn(inv, "c1", "sparkles", "x")]
    with pytest.raises(RuleViolation) as err2:
        await telemetry.ingest(steps, bad_type)
    assert err2.value.rule == "output_type_enum" and "row 0 (tool result)" in str(err2.value)
    assert await counts() == before


@pytest.mark.parametrize(
    ("bad", "rule", "says"),
    [
        (StepIn(uuid.uuid4(), 57, "stop"), "agent_steps_invocation_id_fkey", "does not exist"),
        ("same id twice", "tool_calls_invocation_call_key", "'dup' twice"),
        ("id of row 3", "tool_calls_invocation_call_key", "'c3' also in row 3"),
        ("output, no type", "output_has_type", "'x' has no type"),
    ],
)
async def test_a_bulk_batch_with_one_bad_row_names_it_and_stores_nothing(
    bad: StepIn | str, rule: str, says: str
) -> None:
    """The rules @validated cannot see (tool call ids in the batch, outputs without a
    type) and the one only the database knows (the invocation exists) name row 57."""
    _, inv = await invocation()
    steps = [StepIn(inv, n, "stop", tool_calls=[ToolCallIn(f"c{n}", "ls")]) for n in range(200)]
    steps[57] = {
        "same id twice": StepIn(inv, 57, "stop", tool_calls=[ToolCallIn("dup", "a"),
                                                             ToolCallIn("dup", "b")]),
        "id of row 3": StepIn(inv, 57, "stop", tool_calls=[ToolCallIn("c3", "ls")]),
        "output, no type": StepIn(inv, 57, "stop", tool_calls=[ToolCallIn("x", "ls", output=1)]),
    }.get(bad, bad)  # type: ignore[call-overload]  # fmt: skip
    before = await counts()
    with pytest.raises(RuleViolation) as err:
        await telemetry.ingest(steps, [ToolResultIn(inv, "c1", "text", "ok")])
    assert err.value.rule == rule
    assert "row 57 (step)" in str(err.value) and says in str(err.value), str(err.value)
    assert await counts() == before
    # Inside a caller's transaction too, which stays usable.
    async with db.connection() as c, c.transaction():
        with pytest.raises(RuleViolation) as inside:
            await telemetry.ingest(steps, conn=c)
        assert inside.value.rule == rule and "row 57 (step)" in str(inside.value)
        assert await c.fetchval("SELECT count(*) FROM agent.agent_steps") == before["agent_steps"]
    assert await counts() == before


async def test_repeating_a_stored_bulk_batch_stores_nothing_twice() -> None:
    """A retry after an ambiguous error (the first attempt did commit) is refused whole."""
    _, inv = await invocation()
    steps = [
        StepIn(inv, n, "tool-calls", tool_calls=[ToolCallIn(f"c{n}", "ls")]) for n in range(30)
    ]
    results = [ToolResultIn(inv, f"c{n}", "text", f"out {n}") for n in range(0, 30, 2)]
    later = [ToolResultIn(inv, f"c{n}", "json", {"n": n}) for n in range(1, 30, 2)]
    assert await telemetry.ingest(steps, results) == telemetry.Ingested(30, 30, 15)
    assert (await telemetry.ingest([], later)).tool_results == 15
    stored = await counts()
    with pytest.raises(RuleViolation) as again:
        await telemetry.ingest(steps, results)
    assert again.value.rule == "agent_steps_invocation_step_key"
    with pytest.raises(RuleViolation) as results_again:
        await telemetry.ingest([], later)
    assert results_again.value.rule == "tool_result_once"
    assert await counts() == stored
    async with db.connection() as c:
        outputs = await c.fetch(
            "SELECT tool_call_id, output_type, output FROM agent.tool_calls"
            " WHERE invocation_id = $1",
            inv,
        )
    assert {r["tool_call_id"]: (r["output_type"], db.loads(r["output"])) for r in outputs} == {
        f"c{n}": ("text", f"out {n}") if n % 2 == 0 else ("json", {"n": n}) for n in range(30)
    }


async def test_bulk_and_single_row_store_the_same_values() -> None:
    """Enum values given as members or as their strings, JSON, unreported counts: a
    step stored by ingest reads back exactly as the same step stored by record_step."""
    _, one = await invocation()
    _, bulk = await invocation()
    started = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    def the_step(inv: uuid.UUID, n: int) -> StepIn:
        return StepIn(
            inv, n, "tool-calls" if n else FinishReason.length, raw_finish_reason="tool_use",
            text="t", reasoning="r", input_tokens=10, output_tokens=None,
            cached_input_tokens=0, reasoning_tokens=None, cost_usd=Decimal("0.25"),
            response_metadata={"id": "resp", "n": [1, 2.5, None]}, started_at=started,
            tool_calls=[ToolCallIn(f"a{n}", "bash", {"cmd": "ls"}),
                        ToolCallIn(f"b{n}", "read", None, True, "json", {"ok": True}),
                        ToolCallIn(f"c{n}", "web", ["q"], output_type=ToolOutputType.text)],
        )  # fmt: skip

    for n in range(2):
        await telemetry.record_step(the_step(one, n))
    assert await telemetry.ingest([the_step(bulk, n) for n in range(2)]) == telemetry.Ingested(
        2, 6, 0
    )

    async def stored(inv: uuid.UUID) -> list[list[Any]]:
        async with db.connection() as c:
            steps = await c.fetch(
                "SELECT step_number, finish_reason, raw_finish_reason, text, reasoning,"
                " input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd,"
                " response_metadata, started_at, finished_at FROM agent.agent_steps"
                " WHERE invocation_id = $1 ORDER BY step_number",
                inv,
            )
            calls = await c.fetch(
                "SELECT s.step_number, t.tool_call_id, t.tool_name, t.input, t.output_type,"
                " t.output, t.provider_executed, t.finished_at IS NOT NULL"
                " FROM agent.tool_calls t JOIN agent.agent_steps s ON s.id = t.step_id"
                " WHERE t.invocation_id = $1 ORDER BY t.tool_call_id",
                inv,
            )
        return [list(r) for r in [*steps, *calls]]

    assert await stored(bulk) == await stored(one)
    rows = await stored(bulk)
    assert rows[0][1] == "length" and rows[1][1] == "tool-calls"
    assert [r[4] for r in rows[2:]] == [None, None, "json", "json", "text", "text"]


async def test_checkpoints_save_dedupe_and_load() -> None:
    async with db.connection() as c:
        agent = await c.fetchval(
            "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'ck') RETURNING id"
        )
    assert await checkpoints.load_latest(agent) is None
    first = await checkpoints.save(agent, {"step": 1, "files": ["a"]})
    same = await checkpoints.save(agent, {"files": ["a"], "step": 1})  # same state, keys reordered
    assert same.id == first.id and not same.created and first.sequence == 1
    second = await checkpoints.save(agent, {"step": 2}, label="after tests")
    assert second.sequence == 2 and second.parent_checkpoint_id == first.id
    latest = await checkpoints.load_latest(agent)
    assert latest is not None and latest.state == {"step": 2} and latest.label == "after tests"
    assert [c.sequence for c in await checkpoints.history(agent)] == [2, 1]


async def test_history_pages_with_and_without_state_on_one_prepared_statement() -> None:
    async with db.connection() as c:
        agent = await c.fetchval(
            "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'hist') RETURNING id"
        )
    for n in range(1, 6):
        await checkpoints.save(agent, {"step": n})
    async with db.connection() as c:
        await checkpoints.history(agent, limit=1, conn=c)  # prepared (and cached) once
        prepared = await c.fetchval("SELECT count(*) FROM pg_prepared_statements")
        pages = [
            [(k.sequence, k.state) for k in await checkpoints.history(agent, **kw, conn=c)]
            for kw in (
                {"limit": 2},
                {"limit": 2, "before_sequence": 4},
                {"limit": 3, "before_sequence": 2, "with_state": True},
                {"limit": 4, "with_state": True},
                {"limit": 1, "before_sequence": 1},
            )
        ]
        # Every limit, page and state choice ran the one statement prepared above.
        assert await c.fetchval("SELECT count(*) FROM pg_prepared_statements") == prepared
    assert pages == [
        [(5, None), (4, None)],
        [(3, None), (2, None)],
        [(1, {"step": 1})],
        [(5, {"step": 5}), (4, {"step": 4}), (3, {"step": 3}), (2, {"step": 2})],
        [],
    ]


async def test_concurrent_saves_never_share_a_number() -> None:
    async with db.connection() as c:
        agent = await c.fetchval(
            "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'ck') RETURNING id"
        )
    saved = await asyncio.gather(*(checkpoints.save(agent, {"n": n}) for n in range(12)))
    assert sorted(c.sequence for c in saved) == list(range(1, 13))


async def test_prune_over_100k_checkpoints_keeps_exactly_what_it_should() -> None:
    async with db.connection() as c:
        agents = [
            r["id"]
            for r in await c.fetch(
                "INSERT INTO agent.agents (agent_type, name) "
                "SELECT 'coder', 'p' || g FROM generate_series(1, 10) g RETURNING id"
            )
        ]
        # 10 agents x 10,000 checkpoints; the older half of each agent's are two days old.
        fill = (
            "INSERT INTO agent.checkpoints (agent_id, sequence, state_snapshot, state_hash, "
            "created_at) SELECT a, s, '{}', 'h' || s, "
            "CASE WHEN s <= 5000 THEN now() - interval '2 days' ELSE now() END "
            "FROM unnest($1::uuid[]) a, generate_series($2::int, $3::int) s"
        )
        await c.execute(fill, agents, 1, 10000)
    deleted = await checkpoints.prune(
        keep_last=7000, older_than=dt.timedelta(days=1), batch_size=5000
    )
    # Deleted: outside the newest 7,000 AND older than a day -> sequences 1..3000 per agent.
    assert deleted == 10 * 3000
    async with db.connection() as c:
        kept = await c.fetch(
            "SELECT agent_id, min(sequence) AS lo, max(sequence) AS hi, count(*) AS n "
            "FROM agent.checkpoints WHERE agent_id = ANY($1) GROUP BY agent_id",
            agents,
        )
    assert {(r["lo"], r["hi"], r["n"]) for r in kept} == {(3001, 10000, 7000)}
    assert len(kept) == 10
    # keep_last alone, for one agent.
    assert await checkpoints.prune(agent_id=agents[0], keep_last=10, batch_size=999) == 6990
    assert [c.sequence for c in await checkpoints.history(agents[0], limit=100)] == list(
        range(10000, 9990, -1)
    )


async def test_memory_add_and_query_by_phase_kind_and_tags() -> None:
    run = await runs.create_run("t", "r", "u")
    await memory.add(
        run.id, FeaturePhase.analysis, MemoryKind.insight, "uses pytest", tags=["tests", "py"]
    )
    await memory.add(
        run.id, FeaturePhase.analysis, MemoryKind.constraint, "no network", tags=["env"]
    )
    await memory.add(
        run.id, FeaturePhase.judging, MemoryKind.decision, "approach 2", tags=["py", "plan"]
    )
    assert [m.content for m in await memory.query(run.id, phases=[FeaturePhase.analysis])] == [
        "no network", "uses pytest",
    ]  # fmt: skip
    assert [m.content for m in await memory.query(run.id, any_tags=["py"])] == [
        "approach 2",
        "uses pytest",
    ]
    assert [m.content for m in await memory.query(run.id, all_tags=["py", "plan"])] == [
        "approach 2"
    ]
    assert [m.content for m in await memory.query(run.id, kinds=[MemoryKind.constraint])] == [
        "no network"
    ]
    with pytest.raises(RuleViolation) as err:
        await memory.add(run.id, FeaturePhase.analysis, MemoryKind.insight, "   ")
    assert err.value.rule == "content_not_empty"


async def test_cta_answer_once_choice_and_types() -> None:
    run = await runs.create_run("t", "r", "u")
    q = await cta.ask(run.id, CtaKind.choice, "which approach?", options=["a", "b"])
    with pytest.raises(RuleViolation) as not_offered:
        await cta.answer(q.id, "c")
    assert not_offered.value.rule == "choice_not_offered"
    answered = await cta.answer(q.id, "b", responded_by="ana")
    assert answered.response == "b" and answered.responded_by == "ana"
    async with db.connection() as c:
        before = await snapshot(c, "cta_events")
    with pytest.raises(RuleViolation) as again:
        await cta.answer(q.id, "a")
    assert again.value.rule == "cta_answered_once"
    async with db.connection() as c:
        assert await snapshot(c, "cta_events") == before
    approval = await cta.ask(run.id, CtaKind.approval, "merge?")
    with pytest.raises(RuleViolation) as typed:
        await cta.answer(approval.id, "yes")
    assert typed.value.rule == "cta_response_type"
    with pytest.raises(RuleViolation):
        await cta.ask(run.id, CtaKind.choice, "pick", options=[])


async def test_two_answers_at_once_exactly_one_wins() -> None:
    run = await runs.create_run("t", "r", "u")
    for _ in range(10):
        q = await cta.ask(run.id, CtaKind.text, "name it")
        outcomes = await asyncio.gather(
            *(cta.answer(q.id, f"answer {i}", responded_by=f"p{i}") for i in range(4)),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, cta.Question)]
        assert len(winners) == 1
        assert all(isinstance(o, RuleViolation) and o.rule == "cta_answered_once"
                   for o in outcomes if o not in winners)  # fmt: skip
        assert (await cta.get(q.id)).response == winners[0].response


async def test_a_waiter_wakes_on_the_answer_and_times_out_cleanly() -> None:
    run = await runs.create_run("t", "r", "u")
    q = await cta.ask(run.id, CtaKind.approval, "ship it?")
    listening = await listeners(cta.CHANNEL)
    # An hour's timeout and no polling: only the answer's notification can end the wait.
    waiter = asyncio.create_task(cta.wait(q.id, timeout=3600))
    while await listeners(cta.CHANNEL) == listening:  # the waiter is listening
        assert not waiter.done(), waiter
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # (usually) past its first look, waiting to be woken
    await cta.answer(q.id, True, responded_by="boss")
    result = await asyncio.wait_for(waiter, 60)  # hang guard
    assert result.response is True and result.responded_by == "boss"

    quiet = await cta.ask(run.id, CtaKind.text, "anyone?")
    started = await db.fetchval("SELECT clock_timestamp()")
    with pytest.raises(cta.CtaTimeout):
        await cta.wait(quiet.id, timeout=0.4)
    # It waited its timeout out (by the database's clock), and nothing answered.
    assert await db.fetchval("SELECT clock_timestamp()") - started >= dt.timedelta(seconds=0.4)
    assert not (await cta.get(quiet.id)).answered


async def listeners(channel: str) -> int:
    """Sessions whose last statement was LISTEN on ``channel``."""
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE $1", f"LISTEN %{channel}%"
    )


async def test_expiry_refuses_late_answers_and_wakes_waiters() -> None:
    run = await runs.create_run("t", "r", "u")
    q = await cta.ask(run.id, CtaKind.text, "quick?", expires_in=dt.timedelta(milliseconds=200))
    await asyncio.sleep(0.3)
    with pytest.raises(RuleViolation) as late:
        await cta.answer(q.id, "too late")
    assert late.value.rule == "cta_expired"
    open_q = await cta.ask(run.id, CtaKind.text, "still there?")
    waiter = asyncio.create_task(cta.wait(open_q.id, timeout=30))
    await asyncio.sleep(0.2)
    assert await cta.expire(run_id=run.id) == 1
    with pytest.raises(RuleViolation) as expired:
        await asyncio.wait_for(waiter, 5)
    assert expired.value.rule == "cta_expired"
    with pytest.raises(AgentAppError):
        await cta.answer(open_q.id, "now?")
