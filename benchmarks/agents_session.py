"""AgentAppSession against the Agents SDK's SQLAlchemySession, side by side on one server.

    python -m benchmarks.agents_session [--sessions 8] [--ops 200] [--rounds 3]

Both on the same PostgreSQL, SQLAlchemy through its asyncpg driver, each with a pool of
``sessions`` connections. ``sessions`` conversations at once; each adds ``ops`` turns of
two items (a user message and an assistant message of ~500 bytes) with ``add_items``,
then reads its latest 20 items ``ops`` times with ``get_items(limit=20)``. Interleaved
rounds; medians of the operations per second. Prints the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from benchmarks.common import prepare, table


def turn(i: int) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"question {i}: " + "why does the parser fail? " * 18},
        {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": f"answer {i}: " + "look at token " * 30}],
        },
    ]


async def measure(make: Any, sessions: int, ops: int) -> dict[str, float]:
    made = [make(f"bench-{uuid.uuid4()}") for _ in range(sessions)]

    async def adds(s: Any) -> None:
        for i in range(ops):
            await s.add_items(turn(i))

    async def gets(s: Any) -> None:
        for _ in range(ops):
            items = await s.get_items(limit=20)
            assert len(items) == 20

    t0 = time.perf_counter()
    await asyncio.gather(*(adds(s) for s in made))
    t1 = time.perf_counter()
    await asyncio.gather(*(gets(s) for s in made))
    t2 = time.perf_counter()
    return {
        "add_items_per_s": sessions * ops / (t1 - t0),
        "get_items_per_s": sessions * ops / (t2 - t1),
    }


async def main(url: str, sessions: int, ops: int, rounds: int) -> None:
    import asyncpg
    from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
    from sqlalchemy.ext.asyncio import create_async_engine

    from agent_app.agents_sdk import AgentAppSession

    pool = await asyncpg.create_pool(url, min_size=sessions, max_size=sessions)
    sa_url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    engine = create_async_engine(sa_url, pool_size=sessions, max_overflow=0)
    # Tables first, so neither side pays for creating them during the run.
    await SQLAlchemySession("warmup", engine=engine, create_tables=True).get_items()

    sides = {
        "AgentAppSession": lambda sid: AgentAppSession(sid, pool=pool),
        "SQLAlchemySession": lambda sid: SQLAlchemySession(sid, engine=engine),
    }
    results: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    order = list(sides)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            results[name].append(await measure(sides[name], sessions, ops))
            print(f"round {r + 1} {name}: {results[name][-1]}", flush=True)
    await pool.close()
    await engine.dispose()

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    rows = [
        [n, f"{med(n, 'add_items_per_s'):.0f}", f"{med(n, 'get_items_per_s'):.0f}"] for n in sides
    ]
    print(f"\n{sessions} sessions x {ops} ops, pool {sessions} each, medians of {rounds} rounds")
    print(table(rows, ["session", "add_items/s", "get_items(limit=20)/s"]))
    a, b = "AgentAppSession", "SQLAlchemySession"
    print(
        f"\nratios AgentAppSession / SQLAlchemySession: add_items "
        f"{med(a, 'add_items_per_s') / med(b, 'add_items_per_s'):.2f}x, get_items(limit=20) "
        f"{med(a, 'get_items_per_s') / med(b, 'get_items_per_s'):.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(prepare(), args.sessions, args.ops, args.rounds))
