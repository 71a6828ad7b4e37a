"""Telemetry ingestion: steps + tool calls per second through the API (one step at a time,
and bulk with COPY) against bare ``copy_records_to_table`` of the same rows, in one run.

Baseline: the same rows (a step and its two tool calls), built in Python from the same
``StepIn`` objects (building those is timed on both sides) and written with asyncpg's
``copy_records_to_table`` into the same tables (same indexes, foreign keys and CHECKs:
the database's work is identical), 1,000 steps per transaction, exactly as
``telemetry.ingest`` is called here. What the API adds, and the baseline lacks: every
field validated by ``@validated`` (enum values converted, JSON checked to round-trip,
ranges), the batch's own rules (one call per tool call id, no output without a type),
its row building from the validated steps, a pool connection acquired per call (the
baseline holds one across its transactions: the API cannot across calls), and the
error path that names a bad row. Rounds interleaved, medians of ``--rounds``.
Target (issue 13): bulk ingestion >= 0.9x bare COPY.

    python -m benchmarks.ingestion [--quick] [--steps 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import uuid

from benchmarks.common import median, prepare, report, table, timed


async def main(n_steps: int, rounds: int, summary: str | None) -> None:
    from agent_app import db, runs, telemetry
    from agent_app.enums import AgentType, FeaturePhase
    from agent_app.telemetry import STEP_COLUMNS, TOOL_CALL_COLUMNS, StepIn, ToolCallIn

    await db.start_pool(min_size=2, max_size=4)
    run = await runs.create_run("bench", "r", "u")
    phase = await runs.start_phase(run.id, FeaturePhase.analysis)

    async def new_invocation() -> uuid.UUID:
        return await telemetry.start_invocation(run.id, phase.id, AgentType.coder, "m")

    def steps_for(inv: uuid.UUID, n: int) -> list[StepIn]:
        return [
            StepIn(inv, i, "tool-calls", text="thinking " * 8, input_tokens=1200 + i,
                   output_tokens=80, cost_usd=None,
                   tool_calls=[ToolCallIn(f"call_{i}_{k}", "bash", {"cmd": f"ls {k}"})
                               for k in range(2)])
            for i in range(n)
        ]  # fmt: skip

    def rows_per(n: int) -> int:
        return n * 3  # a step and its two tool calls

    async def api_single(inv: uuid.UUID, n: int) -> None:
        for step in steps_for(inv, n):
            await telemetry.record_step(step)

    async def api_bulk(inv: uuid.UUID, n: int) -> None:
        batch = steps_for(inv, n)
        for start in range(0, n, 1000):
            await telemetry.ingest(batch[start : start + 1000])

    async def bare_copy(inv: uuid.UUID, n: int) -> None:
        now = dt.datetime.now(dt.UTC)
        steps, calls = [], []
        for s in steps_for(inv, n):
            sid = uuid.uuid4()
            steps.append((sid, inv, s.step_number, "tool-calls", None, s.text, None,
                          s.input_tokens, s.output_tokens, None, None, None, None, now,
                          None))  # fmt: skip
            for t in s.tool_calls:
                calls.append((uuid.uuid4(), sid, inv, t.tool_call_id, t.tool_name,
                              db.dumps(t.input), False, None, None, now, None))  # fmt: skip
        async with db.connection() as c:
            for start in range(0, n, 1000):
                async with c.transaction():
                    await c.copy_records_to_table("agent_steps", schema_name="agent",
                        columns=STEP_COLUMNS, records=steps[start : start + 1000])  # fmt: skip
                    chunk = calls[start * 2 : (start + 1000) * 2]
                    await c.copy_records_to_table("tool_calls", schema_name="agent",
                        columns=TOOL_CALL_COLUMNS, records=chunk)  # fmt: skip

    impls = {
        "api, one step per call": (api_single, n_steps // 10),
        "api bulk (COPY)": (api_bulk, n_steps),
        "bare copy_records_to_table": (bare_copy, n_steps),
    }
    results: dict[str, list[float]] = {k: [] for k in impls}
    for rnd in range(rounds):
        for name in list(impls)[:: 1 if rnd % 2 == 0 else -1]:
            fn, n = impls[name]
            inv = await new_invocation()
            t = await timed(lambda: fn(inv, n))  # noqa: B023
            results[name].append(rows_per(n) / t)
    bare = median(results["bare copy_records_to_table"])
    rows = [[name, f"{median(v):,.0f}", f"{median(v) / bare:.2f}x"] for name, v in results.items()]
    print(f"telemetry ingestion, rows/s (a step + 2 tool calls = 3 rows; median of {rounds})")
    print(table(rows, ["path", "rows/s", "vs bare COPY"]))
    bulk = median(results["api bulk (COPY)"]) / bare
    report(summary, [("ingestion bulk vs bare COPY", bulk, ">= 0.9x", bulk >= 0.9)])
    await db.close_pool()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    asyncio.run(main(4000 if args.quick else args.steps, args.rounds, args.summary))
