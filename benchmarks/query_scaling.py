"""Read paths at 10k and at 1M rows: a run's timeline, an agent's latest checkpoint and a
run's memory by phase and tag. Each must be an index lookup, so latency at 1M should stay
within 2x of 10k. Prints the EXPLAIN of each at 1M.

    python -m benchmarks.query_scaling [--big 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg

from benchmarks.common import prepare, table

# Background rows, spread over many runs and agents, so that the one measured run or agent
# is a small part of a big table. Each fill adds `n` rows to the table it names.
FILLS = {
    "agent_invocations": """
        INSERT INTO agent.agent_invocations (run_id, phase_result_id, agent_type, model,
                                             input_tokens, output_tokens, cost_usd)
        SELECT p.run_id, p.id, 'coder', 'm', 100, 10, 0.01
          FROM (SELECT id, run_id, row_number() OVER () AS k FROM agent.phase_results
                 WHERE run_id <> $2) p, generate_series(1, $1) g
         WHERE p.k = 1 + g % (SELECT count(*) FROM agent.phase_results WHERE run_id <> $2)""",
    "checkpoints": """
        INSERT INTO agent.checkpoints (agent_id, sequence, state_snapshot, state_hash)
        SELECT a.id, coalesce((SELECT max(sequence) FROM agent.checkpoints c
                                WHERE c.agent_id = a.id), 0) + g, '{"k": 1}', md5(g::text)
          FROM (SELECT id FROM agent.agents WHERE id <> $2 ORDER BY id LIMIT 1000) a,
               generate_series(1, $1 / 1000) g""",
    "memory_records": """
        INSERT INTO agent.memory_records (run_id, phase, kind, content, tags)
        SELECT r.id, 'analysis', 'insight', 'note ' || g, ARRAY['t' || (g % 50)]
          FROM (SELECT id FROM agent.feature_runs WHERE id <> $2 ORDER BY id LIMIT 1000) r,
               generate_series(1, $1 / 1000) g""",
}


async def latency(fn: Callable[[], Awaitable[object]], n: int = 200) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def main(big: int) -> None:
    from agent_app import checkpoints, db, memory, runs, telemetry
    from agent_app.enums import AgentType, FeaturePhase, MemoryKind

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
    # The measured run: 5 phases' worth of attempts with 40 invocations; one agent with
    # 200 checkpoints; 300 memories.
    run = await runs.create_run("measured", "r", "u")
    agent = await conn.fetchval(
        "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'me') RETURNING id"
    )
    phase = await runs.start_phase(run.id, FeaturePhase.analysis)
    for _ in range(40):
        await telemetry.start_invocation(run.id, phase.id, AgentType.explorer, "m")
    for i in range(200):
        await checkpoints.save(agent, {"i": i})
    for i in range(300):
        await memory.add(run.id, FeaturePhase.analysis, MemoryKind.insight, f"m{i}",
                         tags=[f"t{i % 50}"])  # fmt: skip

    queries: dict[str, tuple[Callable[[], Awaitable[object]], str, tuple[object, ...]]] = {
        "run timeline": (
            lambda: runs.timeline(run.id),
            runs.TIMELINE_INVOCATIONS,
            (run.id,),
        ),
        "latest checkpoint": (
            lambda: checkpoints.load_latest(agent),
            "SELECT * FROM agent.checkpoints WHERE agent_id = $1 ORDER BY sequence DESC LIMIT 1",
            (agent,),
        ),
        "memory by phase + tag": (
            lambda: memory.query(run.id, phases=[FeaturePhase.analysis], any_tags=["t7"]),
            memory.QUERY,
            (run.id, ["analysis"], None, ["t7"], None, 100),
        ),
    }

    async def fill_to(total: int) -> None:
        for tbl, sql in FILLS.items():
            have = await conn.fetchval(f"SELECT count(*) FROM agent.{tbl}")
            if total > have:
                await conn.execute(sql, total - have, run.id if tbl != "checkpoints" else agent)
            await conn.execute(f"VACUUM ANALYZE agent.{tbl}")

    measured: dict[str, list[float]] = {k: [] for k in queries}
    plans: dict[str, str] = {}
    sizes = [10_000, big]
    for size in sizes:
        start = time.perf_counter()
        await fill_to(size)
        print(f"(tables at {size:,} rows, filled in {time.perf_counter() - start:.0f} s)")
        for name, (fn, sql, args) in queries.items():
            measured[name].append(await latency(fn))
            plans[name] = "\n".join(
                r[0] for r in await conn.fetch("EXPLAIN (COSTS OFF) " + sql, *args)
            )
    for name, plan in plans.items():
        print(f"\nEXPLAIN {name} at {big:,} rows:\n{plan}")
    print("\nmedian latency, ms (API call, including the round trips)")
    rows = [
        [name, f"{v[0]:.3f}", f"{v[1]:.3f}", f"{v[1] / v[0]:.2f}x"] for name, v in measured.items()
    ]
    print(table(rows, ["query", "10k rows", f"{big:,} rows", "ratio"]))
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.big))
