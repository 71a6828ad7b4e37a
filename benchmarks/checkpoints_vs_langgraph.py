"""Checkpoint save and load-latest against LangGraph's PostgresSaver, on the same server,
with the same states, in one run (aim: at least 2x faster, and less storage for a run of
mostly unchanged states). LangGraph is needed only here:

    pip install langgraph-checkpoint-postgres "psycopg[binary]"
    python -m benchmarks.checkpoints_vs_langgraph [--steps 600] [--threads 4]

The states: an agent's working state (a growing message list, a plan, file notes) over
``steps`` steps, where four steps in five change nothing (an agent waiting on tools or
on other agents) and the rest append a message or touch the plan.

BEST CASE for agent_app, not a fair fight (issue 13; a fair rewrite, LangGraph's saver
on a pool of the same size with interleaved rounds, is on its way): LangGraph's
``AsyncPostgresSaver`` gets one connection, which it serialises behind a lock, while
agent_app gets a pool; four saves in five are unchanged states, which agent_app
deduplicates (a read, no row) while LangGraph writes a row; one sample each, agent_app
always first. The summary reports the ratios as best cases, without a target, and the
share of saves deduplicated as its own figure.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import random
import statistics
import time
from typing import Any

from benchmarks.common import prepare, report, table


def states(steps: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    state: dict[str, Any] = {
        "messages": [{"role": "user", "content": "implement the feature " * 5}],
        "plan": {"step": 0, "todo": ["read", "edit", "test"]},
        "files": {f"src/mod{i}.py": "x" * 200 for i in range(5)},
    }
    out = []
    for i in range(steps):
        if rng.random() < 0.2:
            if rng.random() < 0.7:
                state["messages"].append({"role": "assistant", "content": f"step {i} " * 20})
            else:
                state["plan"]["step"] = i
        out.append(copy.deepcopy(state))
    return out


async def main(steps: int, threads: int, summary: str | None) -> None:
    import asyncpg
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from agent_app import checkpoints, db

    url = db.engine().config["dsn"]
    await db.start_pool(min_size=2, max_size=threads + 2)
    conn = await asyncpg.connect(url)
    runs = [states(steps, seed) for seed in range(threads)]

    async def ours() -> tuple[float, float]:
        agents = [
            await conn.fetchval(
                "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'b') RETURNING id"
            )
            for _ in range(threads)
        ]

        async def one(agent: Any, sequence: list[dict[str, Any]]) -> None:
            for state in sequence:
                await checkpoints.save(agent, state)

        start = time.perf_counter()
        await asyncio.gather(*(one(a, s) for a, s in zip(agents, runs, strict=True)))
        elapsed = time.perf_counter() - start
        samples = []
        for _ in range(200):
            t = time.perf_counter()
            latest = await checkpoints.load_latest(agents[0])
            samples.append(time.perf_counter() - t)
        assert latest is not None and latest.state == runs[0][-1]
        return threads * steps / elapsed, statistics.median(samples) * 1000

    async def langgraph() -> tuple[float, float]:
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()

            async def one(thread: str, sequence: list[dict[str, Any]]) -> None:
                config: dict[str, Any] = {
                    "configurable": {"thread_id": thread, "checkpoint_ns": ""}
                }
                versions: dict[str, int] = {}
                previous: dict[str, Any] = {}
                for n, state in enumerate(sequence):
                    changed = {k: v for k, v in state.items() if previous.get(k) != v}
                    for k in changed:
                        versions[k] = versions.get(k, 0) + 1
                    checkpoint = empty_checkpoint()
                    checkpoint["channel_values"] = state
                    checkpoint["channel_versions"] = dict(versions)
                    config = await saver.aput(
                        config, checkpoint, {"source": "loop", "step": n, "parents": {}},
                        {k: versions[k] for k in changed},
                    )  # fmt: skip
                    previous = state

            # One saver shares one connection, as LangGraph's from_conn_string sets it up.
            start = time.perf_counter()
            await asyncio.gather(*(one(f"t{i}", s) for i, s in enumerate(runs)))
            elapsed = time.perf_counter() - start
            samples = []
            for _ in range(200):
                t = time.perf_counter()
                got = await saver.aget_tuple(
                    {"configurable": {"thread_id": "t0", "checkpoint_ns": ""}}
                )
                samples.append(time.perf_counter() - t)
            assert got is not None and got.checkpoint["channel_values"] == runs[0][-1]
            return threads * steps / elapsed, statistics.median(samples) * 1000

    async def size(tables: list[str]) -> int:
        total = 0
        for t in tables:
            total += await conn.fetchval(
                "SELECT coalesce(pg_total_relation_size(to_regclass($1)), 0)", t
            )
        return total

    lg_tables = ["public.checkpoints", "public.checkpoint_blobs", "public.checkpoint_writes"]
    ours_before = await size(["agent.checkpoints"])
    ours_rate, ours_latest = await ours()
    await conn.execute("VACUUM agent.checkpoints")
    ours_bytes = await size(["agent.checkpoints"]) - ours_before
    lg_rate, lg_latest = await langgraph()
    await conn.execute("VACUUM public.checkpoints, public.checkpoint_blobs")
    lg_bytes = await size(lg_tables)
    ratio = [
        f"{ours_rate / lg_rate:.2f}x",
        f"{lg_latest / ours_latest:.2f}x faster",
        f"{ours_bytes / lg_bytes:.2f}x the space",
    ]
    rows = [
        [
            "agent_app.checkpoints",
            f"{ours_rate:,.0f}",
            f"{ours_latest:.3f}",
            f"{ours_bytes >> 10:,}",
        ],
        ["LangGraph PostgresSaver", f"{lg_rate:,.0f}", f"{lg_latest:.3f}", f"{lg_bytes >> 10:,}"],
        ["agent_app / LangGraph", *ratio],
    ]
    written = await conn.fetchval("SELECT count(*) FROM agent.checkpoints")
    dedupe = 1 - written / (threads * steps)
    print(f"checkpoints: {threads} agents/threads x {steps} steps, 4 in 5 steps unchanged")
    print("BEST CASE for agent_app (see the docstring): LangGraph on one locked connection, "
          "agent_app on a pool; unchanged states deduplicated; one sample each")  # fmt: skip
    print(table(rows, ["", "saves/s", "load latest, ms", "storage, KiB"]))
    print(
        f"agent_app wrote {written:,} rows for {threads * steps:,} saves: "
        f"{dedupe:.0%} deduplicated (LangGraph writes a checkpoint row for each)"
    )
    report(
        summary,
        [
            ("checkpoint saves vs LangGraph (BEST CASE: 1 conn vs pool)",
             ours_rate / lg_rate, "-", None),
            ("checkpoint load latest vs LangGraph (BEST CASE)", lg_latest / ours_latest, "-",
             None),
            ("checkpoint saves deduplicated (share)", dedupe, "-", None),
        ],
    )  # fmt: skip
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    asyncio.run(main(120 if args.quick else args.steps, args.threads, args.summary))
