"""Budget reserve+commit throughput with 16 workers: all on one budget (every operation
waits for the same row lock) against each on its own budget, in one run. Each pair
inserts a reservation row and commits it by id. Prints operations/s and the ratio;
checks the books balance afterwards. Baseline: the same API without contention (each
worker its own budget). No target: the figure shows what one hot budget costs.

    python -m benchmarks.budget_contention [--quick] [--ops 300] [--workers 16]
"""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal

from benchmarks.common import median, prepare, report, table, timed


async def main(ops: int, workers: int, rounds: int, summary: str | None) -> None:
    from agent_app import budgets, db, hierarchy
    from agent_app.enums import AgentType, BudgetResource

    T = BudgetResource.tokens
    await db.start_pool(min_size=workers + 1, max_size=workers + 1)

    async def worker(agent_id: object) -> None:
        holder = f"bench-{id(asyncio.current_task())}"
        for _ in range(ops):
            r = await budgets.reserve(agent_id, T, 10, holder=holder)  # type: ignore[arg-type]
            await budgets.commit(r, 7)

    results: dict[str, list[float]] = {"one budget": [], "separate budgets": []}
    for _ in range(rounds):
        shared = await hierarchy.create_root(AgentType.orchestrator, "shared", budgets={T: 10**9})
        own = [
            await hierarchy.create_root(AgentType.coder, f"own{i}", budgets={T: 10**9})
            for i in range(workers)
        ]
        t = await timed(lambda: asyncio.gather(*(worker(shared.id) for _ in range(workers))))  # noqa: B023
        results["one budget"].append(workers * ops / t)
        t = await timed(lambda: asyncio.gather(*(worker(a.id) for a in own)))  # noqa: B023
        results["separate budgets"].append(workers * ops / t)
        [b] = await budgets.books(shared.id)
        assert b.used == Decimal(7 * ops * workers) and b.reserved == 0

    one, separate = median(results["one budget"]), median(results["separate budgets"])
    print(f"budget reserve+commit pairs/s, {workers} workers x {ops} pairs (median of {rounds})")
    print(
        table(
            [
                ["one shared budget", f"{one:,.0f}", f"{one / separate:.2f}x"],
                ["one budget each", f"{separate:,.0f}", "1.00x"],
            ],
            ["", "pairs/s", "vs separate"],
        )
    )
    report(summary, [("budget pairs/s, one shared budget vs one each", one / separate, "-",
                      None)])  # fmt: skip
    await db.close_pool()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    ops = 30 if args.quick else args.ops
    asyncio.run(main(ops, args.workers, args.rounds, args.summary))
