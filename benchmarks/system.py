"""Whole-system figures: what a worker author sees end to end.

* ``Consumer`` latency, send -> yielded: a sender sends one message at a time to an idle
  ``Consumer`` (woken by NOTIFY) and times until ``async for`` yields it; p50/p95, idle
  and while 16 other workers drain a backlog of another recipient through the pool.
  Beside it, the floor: a raw asyncpg loop with LISTEN on the same channel and the same
  claim statement on a held connection (the work a consumer cannot avoid).
* Multi-recipient claims: one worker claiming for 1, 4 and 16 recipients (the
  ``= ANY($1)`` form) draining the same backlog spread over them, batch 1 and 10,
  against the one-recipient claim; messages/s.
* ``simulate`` at 20, 200 and 1,000 runs (20 and 50 with --quick), each size in its own
  process on its own database: runs/s, peak RSS of the client, peak memory of the
  server's processes (sum of their unique set sizes, sampled every 0.5 s; shared
  buffers, 128 MB, come on top), so the growth of cost with work is visible.

No baseline is fair for ``simulate`` (it is the product); its figures have no target.
Figures are medians over ``--rounds`` interleaved rounds on a loaded shared machine:
absolute numbers move between runs.

    python -m benchmarks.system [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

from benchmarks.common import REPO, median, prepare, report, table

DRAIN_WORKERS = 16


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def consumer_latency(samples: int, rounds: int) -> list[list[str]]:
    import asyncpg

    from agent_app import db, queue

    pool = await db.pool()
    target = await pool.fetchval(
        "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'lat') RETURNING id"
    )
    busy = await pool.fetchval(
        "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'busy') RETURNING id"
    )

    async def api_consumer(n: int) -> list[float]:
        out: list[float] = []
        # (start(), run by ``async with``, returns once its LISTEN is in place)
        async with queue.Consumer([target], batch_size=1, poll_interval=30) as consumer:
            for i in range(n):
                sent = time.perf_counter()
                await queue.send(target, "lat", {"i": i})
                async for message in consumer:
                    out.append(time.perf_counter() - sent)
                    await consumer.ack(message)
                    break
        return out

    async def raw_listen(n: int) -> list[float]:
        out: list[float] = []
        conn = await asyncpg.connect(**db.engine().config)
        listener = await asyncpg.connect(**db.engine().config)
        wake = asyncio.Event()
        listener_cb = lambda *_a: wake.set()  # noqa: E731
        await listener.add_listener(queue.CHANNEL, listener_cb)
        try:
            for i in range(n):
                wake.clear()
                sent = time.perf_counter()
                await queue.send(target, "lat", {"i": i})
                while True:
                    rows = await conn.fetch(queue.CLAIM_ONE, target, 1, "raw", queue.DEFAULT_LEASE)
                    if rows:
                        break
                    await wake.wait()
                    wake.clear()
                out.append(time.perf_counter() - sent)
                await queue.ack(queue.Message(*rows[0].values()), "raw", conn=conn)
        finally:
            await listener.close()
            await conn.close()
        return out

    async def under_drain(fn: object, n: int) -> list[float]:
        # 16 workers drain a backlog of another recipient meanwhile (refilled as needed).
        stop = asyncio.Event()

        async def refill() -> None:
            while not stop.is_set():
                left = await pool.fetchval(
                    "SELECT count(*) FROM agent.messages WHERE recipient_id = $1 "
                    "AND status = 'pending'",
                    busy,
                )
                if left < 2000:
                    await queue.send_many(
                        [queue.Outgoing(busy, "bg", {"i": i}) for i in range(500)]
                    )
                await asyncio.sleep(0.05)

        async def drainer() -> None:
            name = f"drain-{uuid.uuid4().hex[:6]}"
            while not stop.is_set():
                if messages := await queue.claim(name, [busy], limit=1):
                    await queue.ack(messages, name)
                else:
                    await asyncio.sleep(0.01)

        await queue.send_many([queue.Outgoing(busy, "bg", {"i": i}) for i in range(2000)])
        bg = [asyncio.create_task(refill())] + [
            asyncio.create_task(drainer()) for _ in range(DRAIN_WORKERS)
        ]
        try:
            return await fn(n)  # type: ignore[operator, no-any-return]
        finally:
            stop.set()
            await asyncio.gather(*bg)

    kinds = {
        ("Consumer", "idle"): lambda: api_consumer(samples),
        ("raw LISTEN + claim", "idle"): lambda: raw_listen(samples),
        ("Consumer", "16-worker drain"): lambda: under_drain(api_consumer, samples),
        ("raw LISTEN + claim", "16-worker drain"): lambda: under_drain(raw_listen, samples),
    }
    got: dict[tuple[str, str], list[list[float]]] = {k: [] for k in kinds}
    for rnd in range(rounds):
        for key in list(kinds)[:: 1 if rnd % 2 == 0 else -1]:
            got[key].append(await kinds[key]())
    rows = []
    for (who, load), per_round in got.items():
        p50 = median([statistics.median(r) for r in per_round]) * 1000
        p95 = median([pct(r, 0.95) for r in per_round]) * 1000
        rows.append([who, load, f"{p50:.2f}", f"{p95:.2f}"])
    return rows


async def multi_recipient(n: int, rounds: int) -> tuple[list[list[str]], str]:
    from agent_app import db, queue

    pool = await db.pool()
    agents = [
        r["id"]
        for r in await pool.fetch(
            "INSERT INTO agent.agents (agent_type, name) SELECT 'coder', 'm' "
            "FROM generate_series(1, 16) RETURNING id"
        )
    ]

    async def once(k: int, batch: int) -> float:
        await pool.execute("TRUNCATE agent.messages")
        mine = agents[:k]
        for start in range(0, n, 500):
            await queue.send_many(
                [queue.Outgoing(mine[i % k], "m", {"i": i}, priority=i % 3)
                 for i in range(start, min(n, start + 500))]
            )  # fmt: skip
        started = time.perf_counter()
        done = 0
        while messages := await queue.claim("multi", mine, limit=batch):
            await queue.ack(messages, "multi")
            done += len(messages)
        assert done == n, done
        return n / (time.perf_counter() - started)

    configs = [(k, b) for b in (1, 10) for k in (1, 4, 16)]
    got: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
    for rnd in range(rounds):
        for c in configs[:: 1 if rnd % 2 == 0 else -1]:
            got[c].append(await once(*c))
    await pool.execute("TRUNCATE agent.messages")
    await queue.send_many([queue.Outgoing(a, "m", {}) for a in agents for _ in range(50)])
    await pool.execute("ANALYZE agent.messages")
    async with pool.acquire() as c:
        tr = c.transaction()
        await tr.start()
        plan = "\n".join(
            r[0]
            for r in await c.fetch(
                "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) " + queue.CLAIM_MANY,
                agents, 10, "x", queue.DEFAULT_LEASE,
            )
        )  # fmt: skip
        await tr.rollback()
    rows = [
        [str(k), str(b), f"{median(v):,.0f}", f"{median(v) / median(got[(1, b)]):.2f}x"]
        for (k, b), v in got.items()
    ]
    return rows, plan


def simulate_one(runs: int, workers: int) -> None:
    """In a child process: simulate ``runs`` runs; print one JSON line of figures."""
    import threading

    import psutil

    from agent_app import db
    from agent_app.simulation import simulate

    async def go() -> dict[str, float]:
        await db.start_pool(min_size=1, max_size=workers * 2 + 2)
        pool = await db.pool()
        backend = await pool.fetchval("SELECT pg_backend_pid()")
        postmaster = psutil.Process(backend).parent()
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                total = 0
                for p in [postmaster, *postmaster.children()]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_full_info().uss
                peak[0] = max(peak[0], total)
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stats = await simulate(runs, workers, seed=1)
        stop.set()
        sampler.join()
        await db.close_pool()
        return {
            "runs": runs,
            "seconds": stats.elapsed,
            "messages": stats.messages,
            "steps": stats.steps,
            "client_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "server_uss_mb": peak[0] / 2**20,
        }

    print("SIMULATE " + json.dumps(asyncio.run(go())), flush=True)


def simulate_scaling(sizes: list[int], workers: int) -> list[dict[str, float]]:
    out = []
    for runs in sizes:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.system", "--simulate-one", str(runs),
             "--workers", str(workers)],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        line = [x for x in proc.stdout.splitlines() if x.startswith("SIMULATE ")]
        if proc.returncode != 0 or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"simulate {runs} failed")
        out.append(json.loads(line[0].removeprefix("SIMULATE ")))
    return out


async def main(quick: bool, rounds: int, summary: str | None) -> None:
    from agent_app import db

    await db.start_pool(min_size=DRAIN_WORKERS + 4, max_size=DRAIN_WORKERS + 4)
    lat = await consumer_latency(20 if quick else 100, rounds)
    print(f"send -> yielded latency, ms (median over {rounds} rounds of p50/p95; one message "
          "at a time; the drain: 16 workers claim+ack another recipient's backlog)")  # fmt: skip
    print("floor: raw asyncpg LISTEN on the same channel + the same claim on a held connection")
    print(table(lat, ["consumer", "load", "p50", "p95"]))
    multi, plan = await multi_recipient(200 if quick else 3000, rounds)
    print(f"\nEXPLAIN ANALYZE of the multi-recipient claim (16 recipients x 50 pending, "
          f"rolled back):\n{plan}\n")  # fmt: skip
    print("one worker draining a backlog spread over k recipients, messages/s")
    print(table(multi, ["recipients", "batch", "msg/s", "vs 1 recipient"]))
    await db.close_pool()

    # --quick: 20 and 50 runs (2.5x the work, enough to see how the rate and memory
    # grow; 200 runs alone take ~30 s here); full: 20, 200 and 1,000.
    sizes = [20, 50] if quick else [20, 200, 1000]
    sims = simulate_scaling(sizes, workers=8)
    rows = [
        [f"{s['runs']:,}", f"{s['seconds']:.1f}", f"{s['runs'] / s['seconds']:.2f}",
         f"{s['messages']:,}", f"{s['client_rss_mb']:.0f}", f"{s['server_uss_mb']:.0f}"]
        for s in sims
    ]  # fmt: skip
    print("\nsimulate, 8 workers, seed 1, each size in a fresh process and database")
    print(table(rows, ["runs", "seconds", "runs/s", "messages", "client peak RSS MB",
                       "server peak USS MB"]))  # fmt: skip
    lat_map = {(r[0], r[1]): (float(r[2]), float(r[3])) for r in lat}
    first, last = sims[0], sims[-1]
    rate_growth = (last["runs"] / last["seconds"]) / (first["runs"] / first["seconds"])
    report(
        summary,
        [
            ("Consumer send->yielded p50 ms, idle", lat_map[("Consumer", "idle")][0], "-", None),
            ("Consumer send->yielded p95 ms, idle", lat_map[("Consumer", "idle")][1], "-", None),
            ("Consumer send->yielded p50 ms, 16-worker drain",
             lat_map[("Consumer", "16-worker drain")][0], "-", None),
            ("Consumer send->yielded p95 ms, 16-worker drain",
             lat_map[("Consumer", "16-worker drain")][1], "-", None),
            (f"simulate runs/s at {int(last['runs'])} vs {int(first['runs'])} runs",
             rate_growth, "-", None),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    parser.add_argument("--simulate-one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    prepare()
    if args.simulate_one is not None:
        simulate_one(args.simulate_one, args.workers)
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        asyncio.run(main(args.quick, args.rounds or 3, args.summary))
