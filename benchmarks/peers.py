"""agent_app's queue beside procrastinate, a PostgreSQL job queue, in one database.

Both drain the same backlog (``--n`` messages/jobs, already enqueued) with the same
number of workers (16 concurrent consumers; one process, one event loop):

* agent_app: 16 tasks looping ``claim`` -> ``ack`` through the API's pool (the
  recommended path), batch 1 and batch 50;
* procrastinate (pip-installed only for this benchmark; not a dependency of agent_app):
  ``run_worker_async(concurrency=16, wait=False)`` with a no-op task, as it ships
  (jobs kept, batch 1 is all it fetches), and its best mode for throughput
  (``delete_jobs="successful"``, LISTEN/NOTIFY off, as the backlog is already there).

Enqueueing is measured too: ``send_many`` vs ``batch_defer_async`` (50 per call).
Rounds are interleaved (the order of the four drains alternates); medians of
``--rounds``. Targets (issue 13): drain >= 10x procrastinate batched, >= 2x single.

    pip install procrastinate      # only for this benchmark
    python -m benchmarks.peers [--quick] [--n 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid

from benchmarks.common import median, prepare, report, table, timed

WORKERS = 16


async def main(n: int, rounds: int, summary: str | None) -> None:
    import procrastinate

    from agent_app import db, queue

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    dsn = db.engine().config["dsn"]
    await db.start_pool(min_size=WORKERS + 1, max_size=WORKERS + 1)
    pool = await db.pool()
    recipient = await pool.fetchval(
        "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'peer') RETURNING id"
    )
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=dsn, min_size=WORKERS + 1, max_size=WORKERS + 1
        )
    )

    @app.task(queue="bench", name="noop")
    async def noop(i: int) -> None:
        return None

    async def fill_agent_app() -> float:
        await pool.execute("TRUNCATE agent.messages")

        async def go() -> None:
            for start in range(0, n, 50):
                await queue.send_many(
                    [queue.Outgoing(recipient, "bench", {"i": i}) for i in range(start, start + 50)]
                )

        return n / await timed(go)

    async def fill_procrastinate() -> float:
        await pool.execute("TRUNCATE procrastinate_jobs CASCADE")

        async def go() -> None:
            for start in range(0, n, 50):
                await noop.batch_defer_async(*({"i": i} for i in range(start, start + 50)))

        return n / await timed(go)

    async def drain_agent_app(batch: int) -> float:
        async def worker() -> int:
            name = f"peer-{uuid.uuid4().hex[:6]}"
            done = 0
            while messages := await queue.claim(name, [recipient], limit=batch):
                await queue.ack(messages, name)
                done += len(messages)
            return done

        counts: list[int] = []

        async def go() -> None:
            counts.extend(await asyncio.gather(*(worker() for _ in range(WORKERS))))

        seconds = await timed(go)
        assert sum(counts) == n, sum(counts)
        return n / seconds

    async def drain_procrastinate(best: bool) -> float:
        options: dict[str, object] = {"delete_jobs": "successful", "listen_notify": False}
        seconds = await timed(
            lambda: app.run_worker_async(
                queues=["bench"],
                concurrency=WORKERS,
                wait=False,
                install_signal_handlers=False,
                **(options if best else {}),
            )
        )
        left = await pool.fetchval("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
        assert left == 0, left
        return n / seconds

    drains = {
        "agent_app batch 1": lambda: drain_agent_app(1),
        "agent_app batch 50": lambda: drain_agent_app(50),
        "procrastinate as shipped": lambda: drain_procrastinate(False),
        "procrastinate best mode": lambda: drain_procrastinate(True),
    }
    results: dict[str, list[float]] = {k: [] for k in drains}
    fills: dict[str, list[float]] = {"agent_app send_many(50)": [],
                                     "procrastinate batch_defer(50)": []}  # fmt: skip
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for rnd in range(rounds):
            order = list(drains)[:: 1 if rnd % 2 == 0 else -1]
            for name in order:
                if name.startswith("agent_app"):
                    fills["agent_app send_many(50)"].append(await fill_agent_app())
                else:
                    fills["procrastinate batch_defer(50)"].append(await fill_procrastinate())
                results[name].append(await drains[name]())
        plan = await pool.fetch(
            "EXPLAIN (COSTS OFF) " + queue.CLAIM_ONE, recipient, 50, "x", queue.DEFAULT_LEASE
        )
    print("EXPLAIN of agent_app's claim:\n" + "\n".join(r[0] for r in plan) + "\n")
    print("procrastinate claims with procrastinate_fetch_job_v2(queues, worker_id): one job")
    print(f"drain of {n:,} enqueued messages/jobs, {WORKERS} workers, per second "
          f"(median of {rounds} rounds, interleaved)")  # fmt: skip
    rows = [[k, f"{median(v):,.0f}"] for k, v in {**results, **fills}.items()]
    print(table(rows, ["what", "per second"]))
    single = median(results["agent_app batch 1"]) / median(results["procrastinate as shipped"])
    batched = median(results["agent_app batch 50"]) / median(results["procrastinate best mode"])
    report(
        summary,
        [
            ("drain vs procrastinate, single (batch 1 vs as shipped)", single, ">= 2x",
             single >= 2),
            ("drain vs procrastinate, batched (50 vs its best mode)", batched, ">= 10x",
             batched >= 10),
        ],
    )  # fmt: skip
    await db.close_pool()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    rounds = args.rounds or (1 if args.quick else 3)
    asyncio.run(main(args.n or (1000 if args.quick else 10_000), rounds, args.summary))
