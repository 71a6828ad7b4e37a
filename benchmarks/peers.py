"""agent_app's queue beside procrastinate, a PostgreSQL job queue, in one database.

Both drain the same backlog (``--n`` messages/jobs, already enqueued) with 16 consumers
in one process and one event loop, over a pool of 17 connections each:

* agent_app: 16 tasks through the API's pool (the recommended path), batch 1 and
  batch 50, three ways: looping ``claim(ack=previous)`` (the ack of one batch and the
  claim of the next in one statement: one round trip and one commit per batch; what
  the targets use), looping ``claim`` -> ``ack`` (two statements per batch; a
  reference), and 16 ``Consumer`` objects (batch_size 1, each acking in its
  handler; its ack claims the next batch in the same statement).
* procrastinate (pip-installed only for this benchmark; not a dependency of agent_app),
  two ways:

  - **as shipped**: one worker, ``run_worker_async(concurrency=16)``, its connector's
    own pool (17 connections). Its worker fetches one job at a time and waits for each
    fetch before the next (``_fetch_and_process_jobs``), so at most one fetch is in
    flight whatever the concurrency; its pool checks every connection on checkout (an
    extra round trip) and wraps each statement in BEGIN/COMMIT. Profiled: ~20 ms per
    fetch on this machine (a commit is ~5 ms here), so it drains ~50-60 jobs/s.
  - **tuned** (its best mode; the figure the targets use): 16 workers of
    concurrency 1, so 16 fetches are in flight like our 16 claimers, sharing one
    psycopg pool of 17 connections handed to ``App.open_async(pool=...)`` (documented)
    with autocommit and no checkout check; finished jobs deleted
    (``delete_jobs="successful"``) and LISTEN/NOTIFY off (the backlog is already
    there; nothing waits). procrastinate has no batch fetch (``procrastinate_fetch_job_v2``
    returns one job), so this is its best batch mode; its enqueue is batched
    (``batch_defer_async``, 50 per call).

Enqueueing is measured too: ``send_many`` vs ``batch_defer_async`` (50 per call).
Both tables are analyzed after each fill (untimed), as autovacuum would have done in
a queue that has been running: without it, procrastinate's fetch plans a freshly
truncated-and-filled table as empty and slows down with the backlog (at 4,000 jobs it
drained at a third of its speed at 1,000).
Rounds are interleaved (the order of the drains alternates); medians of ``--rounds``.
Targets (issue 13): drain >= 10x procrastinate batched (our batch 50 vs its tuned mode),
>= 2x single (our batch 1 vs its tuned mode), both with ``claim(ack=)``: procrastinate
has no counterpart (its fetch and finish are two calls, two commits), so the figure
says what a worker loop gets from agent_app, not that the same protocol is faster. The
two-statement loop, the Consumer and procrastinate as shipped are printed beside,
without a target.

    pip install procrastinate      # only for this benchmark
    python -m benchmarks.peers [--quick] [--n 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid

from benchmarks.common import median, prepare, report, table, timed

WORKERS = 16


async def main(n: int, rounds: int, summary: str | None, shipped_n: int | None = None) -> None:
    import procrastinate
    import psycopg_pool

    from agent_app import db, queue

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    shipped_jobs = shipped_n or n
    dsn = db.engine().config["dsn"]
    await db.start_pool(min_size=WORKERS + 1, max_size=WORKERS + 1)
    pool = await db.pool()
    recipient = await pool.fetchval(
        "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'peer') RETURNING id"
    )
    shipped = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=dsn, min_size=WORKERS + 1, max_size=WORKERS + 1
        )
    )
    tuned = procrastinate.App(connector=procrastinate.PsycopgConnector())
    tuned_pool = psycopg_pool.AsyncConnectionPool(
        dsn, min_size=WORKERS + 1, max_size=WORKERS + 1, open=False,
        kwargs={"autocommit": True},
    )  # fmt: skip

    @shipped.task(queue="bench", name="noop")
    async def noop(i: int) -> None:
        return None

    @tuned.task(queue="bench", name="noop")
    async def noop_tuned(i: int) -> None:
        return None

    async def fill_agent_app() -> float:
        await pool.execute("TRUNCATE agent.messages")

        async def go() -> None:
            for start in range(0, n, 50):
                await queue.send_many(
                    [queue.Outgoing(recipient, "bench", {"i": i}) for i in range(start, start + 50)]
                )

        seconds = await timed(go)
        await pool.execute("ANALYZE agent.messages")
        return n / seconds

    async def fill_procrastinate(count: int) -> float:
        await pool.execute("TRUNCATE procrastinate_jobs CASCADE")

        async def go() -> None:
            for start in range(0, count, 50):
                await noop.batch_defer_async(*({"i": i} for i in range(start, start + 50)))

        seconds = await timed(go)
        await pool.execute("ANALYZE procrastinate_jobs")
        return count / seconds

    async def drain_agent_app(batch: int, combined: bool) -> float:
        async def worker() -> int:
            name = f"peer-{uuid.uuid4().hex[:6]}"
            done = 0
            if combined:
                messages = await queue.claim(name, [recipient], limit=batch)
                while messages:
                    done += len(messages)
                    messages = await queue.claim(name, [recipient], limit=batch, ack=messages)
                return done
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

    async def drain_consumers() -> float:
        done = 0
        finished = asyncio.Event()

        async def consume(consumer: queue.Consumer) -> None:
            nonlocal done
            async for message in consumer:
                await consumer.ack(message)
                done += 1
                if done >= n:
                    finished.set()

        consumers = [queue.Consumer([recipient], batch_size=1) for _ in range(WORKERS)]

        async def go() -> None:
            for consumer in consumers:
                await consumer.start()
            tasks = [asyncio.create_task(consume(consumer)) for consumer in consumers]
            await finished.wait()
            for consumer in consumers:
                await consumer.stop()
            await asyncio.gather(*tasks)

        seconds = await timed(go)
        assert done == n, done
        return n / seconds

    async def drain_procrastinate(best: bool) -> float:
        if best:
            runs = [
                tuned.run_worker_async(
                    queues=["bench"],
                    concurrency=1,
                    wait=False,
                    name=f"w{k}",
                    install_signal_handlers=False,
                    delete_jobs="successful",
                    listen_notify=False,
                )
                for k in range(WORKERS)
            ]
        else:
            runs = [
                shipped.run_worker_async(
                    queues=["bench"],
                    concurrency=WORKERS,
                    wait=False,
                    install_signal_handlers=False,
                )
            ]
        seconds = await timed(lambda: asyncio.gather(*runs))
        left = await pool.fetchval("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
        assert left == 0, left
        return (n if best else shipped_jobs) / seconds

    drains = {
        "agent_app batch 1": lambda: drain_agent_app(1, True),
        "agent_app batch 50": lambda: drain_agent_app(50, True),
        "agent_app batch 1, claim then ack": lambda: drain_agent_app(1, False),
        "agent_app batch 50, claim then ack": lambda: drain_agent_app(50, False),
        "agent_app Consumer, batch_size 1": drain_consumers,
        "procrastinate as shipped (1 worker x 16)": lambda: drain_procrastinate(False),
        "procrastinate tuned (16 workers x 1)": lambda: drain_procrastinate(True),
    }
    results: dict[str, list[float]] = {k: [] for k in drains}
    fills: dict[str, list[float]] = {"agent_app send_many(50)": [],
                                     "procrastinate batch_defer(50)": []}  # fmt: skip
    spent: dict[str, float] = {}
    await tuned_pool.open(wait=True)
    async with shipped.open_async(), tuned.open_async(pool=tuned_pool):
        await shipped.schema_manager.apply_schema_async()
        for rnd in range(rounds):
            order = list(drains)[:: 1 if rnd % 2 == 0 else -1]
            for name in order:
                started = time.perf_counter()
                if name.startswith("agent_app"):
                    fills["agent_app send_many(50)"].append(await fill_agent_app())
                else:
                    count = n if "tuned" in name else shipped_jobs
                    fills["procrastinate batch_defer(50)"].append(await fill_procrastinate(count))
                results[name].append(await drains[name]())
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
        # The statement the targets run (claim with ack=).
        plan = await pool.fetch(
            "EXPLAIN (COSTS OFF) " + queue.ACK_CLAIM_ONE,
            recipient, 1, "x", queue.DEFAULT_LEASE, [1], [1],
        )  # fmt: skip
    await tuned_pool.close()
    print("EXPLAIN of agent_app's claim with ack=:\n"
          + "\n".join(r[0] for r in plan) + "\n")  # fmt: skip
    print("procrastinate claims with procrastinate_fetch_job_v2(queues, worker_id): one job")
    print("agent_app batch 1/50: claim(ack=previous), one statement per batch; 'claim then "
          "ack': two")  # fmt: skip
    if shipped_jobs != n:
        print(f"(procrastinate as shipped, a reference without a target, drains {shipped_jobs:,} "
              "jobs: it is the slowest by far)")  # fmt: skip
    print(f"drain of {n:,} enqueued messages/jobs, {WORKERS} consumers, per second "
          f"(median of {rounds} rounds, interleaved; a loaded shared machine: compare "
          "ratios, not absolute figures)")  # fmt: skip
    rows = [[k, f"{median(v):,.0f}"] for k, v in {**results, **fills}.items()]
    print(table(rows, ["what", "per second"]))
    print("seconds spent (fill + drain, all rounds): "
          + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()))  # fmt: skip
    best = median(results["procrastinate tuned (16 workers x 1)"])
    as_shipped = median(results["procrastinate as shipped (1 worker x 16)"])
    single = median(results["agent_app batch 1"]) / best
    batched = median(results["agent_app batch 50"]) / best
    report(
        summary,
        [
            ("drain vs procrastinate tuned, single (our batch 1, claim(ack=))", single, ">= 2x",
             single >= 2),
            ("drain vs procrastinate tuned, batched (our batch 50, claim(ack=))", batched, ">= 10x",
             batched >= 10),
            ("drain vs procrastinate tuned, claim then ack, batch 1 (reference)",
             median(results["agent_app batch 1, claim then ack"]) / best, "-", None),
            ("drain vs procrastinate tuned, Consumer batch_size 1 (reference)",
             median(results["agent_app Consumer, batch_size 1"]) / best, "-", None),
            ("drain vs procrastinate as shipped, batch 1 (reference)",
             median(results["agent_app batch 1"]) / as_shipped, "-", None),
            ("drain vs procrastinate as shipped, batch 50 (reference)",
             median(results["agent_app batch 50"]) / as_shipped, "-", None),
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
    rounds = args.rounds or 3
    n = args.n or (2000 if args.quick else 10_000)
    asyncio.run(main(n, rounds, args.summary, shipped_n=300 if args.quick else None))
