"""Hot reads at 10k and at ``--big`` rows (1M; 100k with --quick): a run's timeline (with
its step and tool-call counts), an agent's latest checkpoint, and a run's memory by
phase and tag, each through the API. Each must be an index lookup, so latency at the big
size should stay within 2x of 10k (issue 13's target).

"Rows" is the size of the telemetry: ``n`` agent steps and ``n`` tool calls over
``n / 10`` invocations (ten steps each, one tool call per step), beside ``n / 4``
checkpoints and ``n / 4`` memory records, spread over 1,000 background runs and agents,
so the measured run or agent is a small part of big tables. The measured run has 40
invocations with 10 steps and 10 tool calls each.

Two variants, one after the other on the same database:

* **fresh**: the tables filled by INSERT, then ``VACUUM ANALYZE`` (the best case);
* **after churn**: then every row goes through the rest of its life with no manual
  VACUUM or ANALYZE (autovacuum at the defaults a user has): every invocation finished,
  every tool call given its result, every step finished, the older half of each
  agent's checkpoints pruned and as many new ones saved, and half the memory records
  replaced. Measured at once, while dead rows are still there.

Prints the EXPLAIN (ANALYZE) of each API statement at the big size after churn.
Latency: median of 200 calls, including the round trip. No baseline: the ratio is the
figure.

    python -m benchmarks.query_scaling [--quick] [--big 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg

from benchmarks.common import prepare, report, table

# Background fills up to a size n (in telemetry rows). $1 = n, $2 = the measured run
# (or agent). Each adds only what is missing, so filling 10k then 1M works.
FILLS = [
    (
        "agent_invocations",
        """
        INSERT INTO agent.agent_invocations (run_id, phase_result_id, agent_type, model,
                                             input_tokens, output_tokens, cost_usd)
        SELECT p.run_id, p.id, 'coder', 'm', 100, 10, 0.01
          FROM (SELECT id, run_id, row_number() OVER (ORDER BY id) AS k
                  FROM agent.phase_results WHERE run_id <> $2) p,
               generate_series(1, greatest(0, $1 / 10 - (SELECT count(*)
                                 FROM agent.agent_invocations WHERE run_id <> $2))) g
         WHERE p.k = 1 + g % 1000""",
    ),
    (
        "agent_steps",
        """
        INSERT INTO agent.agent_steps (invocation_id, step_number, finish_reason, text,
                                       input_tokens, output_tokens)
        SELECT i.id, g, 'tool-calls', 'thinking', 1000, 50
          FROM agent.agent_invocations i, generate_series(0, 9) g
         WHERE NOT EXISTS (SELECT 1 FROM agent.agent_steps s WHERE s.invocation_id = i.id)""",
    ),
    (
        "tool_calls",
        """
        INSERT INTO agent.tool_calls (step_id, invocation_id, tool_call_id, tool_name, input)
        SELECT s.id, s.invocation_id, 'call_' || s.step_number, 'bash', '{"cmd": "ls"}'
          FROM agent.agent_steps s
         WHERE NOT EXISTS (SELECT 1 FROM agent.tool_calls t WHERE t.step_id = s.id)""",
    ),
    (
        "checkpoints",
        """
        INSERT INTO agent.checkpoints (agent_id, sequence, state_snapshot, state_hash)
        SELECT a.id, coalesce((SELECT max(sequence) FROM agent.checkpoints c
                                WHERE c.agent_id = a.id), 0) + g, '{"k": 1}', md5(g::text)
          FROM (SELECT id FROM agent.agents WHERE id <> $2 ORDER BY id LIMIT 1000) a,
               generate_series(1, greatest(0, ($1 / 4 - (SELECT count(*)
                                 FROM agent.checkpoints WHERE agent_id <> $2)) / 1000)) g""",
    ),
    (
        "memory_records",
        """
        INSERT INTO agent.memory_records (run_id, phase, kind, content, tags)
        SELECT r.id, 'analysis', 'insight', 'note ' || g, ARRAY['t' || (g % 50)]
          FROM (SELECT id FROM agent.feature_runs WHERE id <> $2 ORDER BY id LIMIT 1000) r,
               generate_series(1, greatest(0, ($1 / 4 - (SELECT count(*)
                                 FROM agent.memory_records WHERE run_id <> $2)) / 1000)) g""",
    ),
]

# The rest of the rows' life, with no VACUUM after it.
CHURN = [
    "UPDATE agent.agent_invocations SET finished_at = now(), finish_reason = 'stop'",
    "UPDATE agent.agent_steps SET finished_at = now(), output_tokens = output_tokens + 1",
    "UPDATE agent.tool_calls SET output_type = 'text', output = '\"ok\"', finished_at = now()",
    # prune the older half of each agent's checkpoints, and save as many new ones
    """WITH gone AS (
         DELETE FROM agent.checkpoints c
          WHERE c.sequence <= (SELECT (min(sequence) + max(sequence)) / 2
                                 FROM agent.checkpoints d WHERE d.agent_id = c.agent_id)
         RETURNING agent_id)
       INSERT INTO agent.checkpoints (agent_id, sequence, state_snapshot, state_hash)
       SELECT agent_id, (SELECT max(sequence) FROM agent.checkpoints x
                          WHERE x.agent_id = g.agent_id) + row_number() OVER
                (PARTITION BY agent_id), '{"k": 2}', 'h'
         FROM gone g""",
    """WITH gone AS (
         DELETE FROM agent.memory_records WHERE ctid IN
           (SELECT ctid FROM agent.memory_records TABLESAMPLE BERNOULLI (50))
         RETURNING run_id, phase, kind, content, tags)
       INSERT INTO agent.memory_records (run_id, phase, kind, content, tags)
       SELECT run_id, phase, kind, content || ' (again)', tags FROM gone""",
]


async def latency(fn: Callable[[], Awaitable[object]], n: int = 200) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def main(big: int, summary: str | None) -> None:
    from agent_app import checkpoints, db, memory, runs
    from agent_app.enums import FeaturePhase, MemoryKind

    await db.start_pool(min_size=2, max_size=4)
    conn: asyncpg.Connection = await asyncpg.connect(db.engine().config["dsn"])
    # Background: 1,000 runs with a phase each, 1,000 agents.
    await conn.execute(
        "INSERT INTO agent.feature_runs (title, request, repo_url) "
        "SELECT 'bg', 'r', 'u' FROM generate_series(1, 1000)"
    )
    await conn.execute(
        "INSERT INTO agent.phase_results (run_id, phase) SELECT id, 'analysis' "
        "FROM agent.feature_runs"
    )
    await conn.execute(
        "INSERT INTO agent.agents (agent_type, name) SELECT 'coder', 'bg' "
        "FROM generate_series(1, 1000)"
    )
    # The measured run: 40 invocations (10 steps and 10 tool calls each, filled with the
    # background), one agent with 200 checkpoints, 300 memories.
    run = await runs.create_run("measured", "r", "u")
    agent = await conn.fetchval(
        "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'me') RETURNING id"
    )
    phase = await runs.start_phase(run.id, FeaturePhase.analysis)
    await conn.execute(
        "INSERT INTO agent.agent_invocations (run_id, phase_result_id, agent_type, model) "
        "SELECT $1, $2, 'explorer', 'm' FROM generate_series(1, 40)",
        run.id,
        phase.id,
    )
    for i in range(200):
        await checkpoints.save(agent, {"i": i})
    for i in range(300):
        await memory.add(run.id, FeaturePhase.analysis, MemoryKind.insight, f"m{i}",
                         tags=[f"t{i % 50}"])  # fmt: skip

    queries: dict[str, tuple[Callable[[], Awaitable[object]], str, tuple[object, ...]]] = {
        "run timeline": (lambda: runs.timeline(run.id), runs.TIMELINE, (run.id,)),
        "latest checkpoint": (
            lambda: checkpoints.load_latest(agent),
            checkpoints.LOAD_LATEST,
            (agent,),
        ),
        "memory by phase + tag": (
            lambda: memory.query(run.id, phases=[FeaturePhase.analysis], any_tags=["t7"]),
            memory.QUERY,
            (run.id, ["analysis"], None, ["t7"], None, 100),
        ),
    }

    async def fill_to(total: int) -> None:
        for tbl, sql in FILLS:
            exclude = agent if tbl == "checkpoints" else run.id
            if "$1" in sql:
                await conn.execute(sql, total, exclude)
            else:
                await conn.execute(sql)
        for tbl, _ in FILLS:
            await conn.execute(f"VACUUM ANALYZE agent.{tbl}")

    async def counts() -> str:
        got = [
            f"{tbl} {await conn.fetchval(f'SELECT count(*) FROM agent.{tbl}'):,}"
            for tbl, _ in FILLS
        ]
        return ", ".join(got)

    measured: dict[str, dict[str, float]] = {k: {} for k in queries}
    plans: dict[str, str] = {}

    async def measure(label: str) -> None:
        for name, (fn, _sql, _args) in queries.items():
            measured[name][label] = await latency(fn)

    for size in (10_000, big):
        start = time.perf_counter()
        await fill_to(size)
        print(f"(fresh at {size:,}: filled in {time.perf_counter() - start:.0f} s; "
              f"{await counts()})", flush=True)  # fmt: skip
        await measure(f"{size:,} fresh")
    start = time.perf_counter()
    for sql in CHURN:
        await conn.execute(sql)
    dead = await conn.fetch(
        "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'agent' "
        "AND relname = ANY($1) ORDER BY relname",
        [t for t, _ in FILLS],
    )
    print(f"(churn at {big:,}: {time.perf_counter() - start:.0f} s; no VACUUM; dead rows: "
          + ", ".join(f"{r['relname']} {r['n_dead_tup']:,}" for r in dead) + ")")  # fmt: skip
    await measure(f"{big:,} after churn")
    for name, (_fn, sql, args) in queries.items():
        plans[name] = "\n".join(
            r[0]
            for r in await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) " + sql, *args)
        )
    for name, plan in plans.items():
        print(f"\nEXPLAIN ANALYZE of the API's {name} statement at {big:,}, after churn:\n{plan}")
    labels = [f"{10_000:,} fresh", f"{big:,} fresh", f"{big:,} after churn"]
    print("\nmedian latency, ms (API call, including the round trip; a loaded shared machine)")
    rows = [
        [name, *(f"{v[k]:.3f}" for k in labels),
         f"{v[labels[1]] / v[labels[0]]:.2f}x", f"{v[labels[2]] / v[labels[0]]:.2f}x"]
        for name, v in measured.items()
    ]  # fmt: skip
    print(table(rows, ["query", *labels, "fresh ratio", "churn ratio"]))
    summary_rows: list[tuple[str, float, str, bool | None]] = []
    for name, v in measured.items():
        for label, key in (("fresh", labels[1]), ("after churn", labels[2])):
            ratio = v[key] / v[labels[0]]
            summary_rows.append((f"{name} at {big:,} {label} vs 10k", ratio, "<= 2x", ratio <= 2))
    report(summary, summary_rows)
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--big", type=int, default=None)
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.big or (100_000 if args.quick else 1_000_000), args.summary))
