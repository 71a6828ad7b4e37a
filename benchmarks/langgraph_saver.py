"""AgentAppSaver against LangGraph's own AsyncPostgresSaver, side by side on one server.

    python -m benchmarks.langgraph_saver [--threads 8] [--steps 200] [--rounds 3]

The workload is what a chat-style graph saves: ``threads`` LangGraph threads at once,
each ``steps`` checkpoints long, each step appending one 2 KB LangChain message to the
``messages`` channel (so its value grows every step and is stored as a new blob version,
as LangGraph stores it), plus two primitive channels. Both savers get a pool of the same
size (one connection per concurrent thread), the same checkpoints, and run in
interleaved rounds (A B, B A, A B ...); the figures are medians over the rounds.

Printed: puts per second (all threads together), ``aget_tuple`` latency p50/p95 (each
thread reading random checkpoints of its own history, so values of 1 to ``steps``
messages), bytes on disk per thread (tables, TOAST and indexes), and the ratios
(aims: >= 1.5x puts, <= 0.7x p50, <= bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from typing import Any

from benchmarks.common import prepare, table

WORDS = (
    "the parser reads each token and the planner decides which file to edit next while tests",
    "run in the sandbox and report failures back to the coder agent for a retry",
)
VOCABULARY = " ".join(WORDS).split()


def messages(steps: int, seed: int) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage

    rng = random.Random(seed)
    out: list[Any] = []
    for i in range(steps):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 2048:
            words.append(rng.choice(VOCABULARY))
        text = " ".join(words)[:2048]
        cls = HumanMessage if i % 2 == 0 else AIMessage
        out.append(cls(content=text, id=str(uuid.UUID(int=rng.getrandbits(128)))))
    return out


def checkpoint(step: int, msgs: list[Any], versions: dict[str, str]) -> dict[str, Any]:
    from langgraph.checkpoint.base.id import uuid6

    return {
        "v": 4,
        "id": str(uuid6(clock_seq=step)),
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": {"messages": msgs, "step": step, "branch:to:agent": None},
        "channel_versions": dict(versions),
        "versions_seen": {"agent": {"messages": versions["messages"]}},
        "updated_channels": ["messages", "step"],
    }


async def run_thread(saver: Any, thread_id: str, msgs: list[Any]) -> list[str]:
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    versions: dict[str, str] = {}
    ids = []
    for step in range(len(msgs)):
        new = {
            "messages": saver.get_next_version(versions.get("messages"), None),
            "step": saver.get_next_version(versions.get("step"), None),
        }
        if step == 0:
            new["branch:to:agent"] = saver.get_next_version(None, None)
        versions.update(new)
        cp = checkpoint(step, msgs[: step + 1], versions)
        config = await saver.aput(config, cp, {"source": "loop", "step": step}, new)
        ids.append(cp["id"])
    return ids


async def measure(saver: Any, threads: int, msgs: list[Any], seed: int) -> dict[str, Any]:
    names = [f"bench-{uuid.uuid4()}" for _ in range(threads)]
    start = time.perf_counter()
    ids = await asyncio.gather(*(run_thread(saver, n, msgs) for n in names))
    elapsed = time.perf_counter() - start
    puts = threads * len(msgs)

    rng = random.Random(seed)
    latencies: list[float] = []

    async def reader(name: str, own: list[str]) -> None:
        for _ in range(60):
            cfg = {"configurable": {"thread_id": name, "checkpoint_ns": ""}}
            if rng.random() < 0.8:
                cfg["configurable"]["checkpoint_id"] = rng.choice(own)
            t0 = time.perf_counter()
            tup = await saver.aget_tuple(cfg)
            latencies.append(time.perf_counter() - t0)
            assert tup is not None

    await asyncio.gather(*(reader(n, i) for n, i in zip(names, ids, strict=True)))
    latencies.sort()
    return {
        "puts_per_s": puts / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
    }


async def table_bytes(url: str, tables: list[str]) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest($1::text[]) t",
                tables,
            )
        )
    finally:
        await conn.close()


async def main(url: str, threads: int, steps: int, rounds: int) -> None:
    import asyncpg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from agent_app.langgraph import AgentAppSaver

    msgs = messages(steps, seed=1)
    pool = await asyncpg.create_pool(url, min_size=threads, max_size=threads)
    pg_pool = AsyncConnectionPool(
        url,
        min_size=threads,
        max_size=threads,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pg_pool.open()
    ours = AgentAppSaver(pool)
    theirs = AsyncPostgresSaver(pg_pool)  # type: ignore[arg-type]
    await ours.setup()
    await theirs.setup()

    results: dict[str, list[dict[str, Any]]] = {"AgentAppSaver": [], "AsyncPostgresSaver": []}
    sides = [("AgentAppSaver", ours), ("AsyncPostgresSaver", theirs)]
    for r in range(rounds):
        for name, saver in sides if r % 2 == 0 else sides[::-1]:
            results[name].append(await measure(saver, threads, msgs, seed=r))
            print(f"round {r + 1} {name}: {results[name][-1]}", flush=True)

    total_threads = threads * rounds
    bytes_ours = await table_bytes(
        url, ["agent.graph_threads", "agent.graph_checkpoints", "agent.graph_blobs",
              "agent.graph_writes"],
    ) / total_threads  # fmt: skip
    bytes_theirs = (
        await table_bytes(url, ["checkpoints", "checkpoint_blobs", "checkpoint_writes"])
        / total_threads
    )
    await pool.close()
    await pg_pool.close()

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    rows = []
    for name, b in (("AgentAppSaver", bytes_ours), ("AsyncPostgresSaver", bytes_theirs)):
        rows.append([
            name, f"{med(name, 'puts_per_s'):.0f}", f"{med(name, 'p50_ms'):.2f}",
            f"{med(name, 'p95_ms'):.2f}", f"{b / 1e6:.1f} MB",
        ])  # fmt: skip
    print(f"\n{threads} threads x {steps} steps, 2 KB messages, pool {threads} each, "
          f"medians of {rounds} interleaved rounds")  # fmt: skip
    print(table(rows, ["saver", "puts/s", "get p50 ms", "get p95 ms", "bytes/thread"]))
    a, b = "AgentAppSaver", "AsyncPostgresSaver"
    puts = med(a, "puts_per_s") / med(b, "puts_per_s")
    print(
        f"\nratios AgentAppSaver / AsyncPostgresSaver: puts {puts:.2f}x "
        f"(aim >= 1.5), get p50 {med(a, 'p50_ms') / med(b, 'p50_ms'):.2f}x (aim <= 0.7), "
        f"p95 {med(a, 'p95_ms') / med(b, 'p95_ms'):.2f}x, bytes {bytes_ours / bytes_theirs:.2f}x "
        "(aim <= 1)"
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(prepare(), args.threads, args.steps, args.rounds))
