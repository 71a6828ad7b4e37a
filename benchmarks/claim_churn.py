"""Claim latency on a queue that has worked for a while (target: p50 after churn <= 2x
fresh, nobody running VACUUM, autovacuum at the server's defaults plus the per-table
settings the migrations give ``agent.messages``).

What is measured: a claim of 10 messages for a recipient with 1,000 waiting priority-0
messages, on a warm pool connection (its prepared statement has run many times, so
PostgreSQL may have settled on the generic plan, as on any long-lived pool connection).
Each sample claim is rolled back, so the table stays as it was.

* **fresh**: nothing else has ever passed through the table;
* **after churn, higher priority first**: N messages of priority 5 for the same recipient
  went pending -> claimed -> done through the API (send_many / claim / ack, batches of
  100, 4 workers), so their dead entries sit at the head of the claim index, before the
  waiting messages (the worst case for the index);
* **after churn, spread**: the same for a second recipient with priorities 0-9;
* then the same claims while autovacuum catches up (full mode only), until its first
  pass over ``agent.messages`` after the churn.

Baseline: the same claim in the same run on the fresh table (ratios are side by side;
the machine is shared, so absolute figures move between runs). As a reference, main's
claim statement before this branch (``FROM chosen WHERE m.id = chosen.id``) is measured
on the same table with the same connection history.

    python -m benchmarks.claim_churn [--quick] [--churn 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
import uuid

import asyncpg

from benchmarks.common import prepare, report, table

WAITING = 1000
LEASE = dt.timedelta(seconds=30)

# main's claim before issue 13, kept to show what the generic plan did to it.
OLD_CLAIM = """
WITH requeued AS (
    UPDATE agent.messages
       SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
           finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
           last_error = 'lease expired', lease_expires_at = NULL, claimed_by = NULL,
           claimed_at = NULL, available_at = now()
     WHERE id IN (SELECT id FROM agent.messages
                   WHERE status = 'claimed' AND lease_expires_at < now() AND recipient_id = $1
                     FOR UPDATE SKIP LOCKED)
    RETURNING CASE WHEN status = 'pending'
                   THEN pg_notify('agent_messages', recipient_id::text) END
), chosen AS (
    SELECT id FROM agent.messages
     WHERE recipient_id = $1 AND status = 'pending' AND available_at <= now()
     ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE agent.messages AS m
   SET status = 'claimed', attempts = m.attempts + 1, claimed_by = $3, claimed_at = now(),
       lease_expires_at = now() + $4::interval
  FROM chosen WHERE m.id = chosen.id
RETURNING m.id
"""


async def claim_p50(
    conn: asyncpg.Connection, sql: str, recipient: uuid.UUID, n: int
) -> tuple[float, float]:
    """Median and p95 (ms) of ``n`` claims of 10, each rolled back."""
    samples = []
    for _ in range(n):
        tx = conn.transaction()
        await tx.start()
        start = time.perf_counter()
        rows = await conn.fetch(sql, recipient, 10, "bench", LEASE)
        samples.append(time.perf_counter() - start)
        await tx.rollback()
        assert len(rows) == 10, len(rows)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.95)] * 1000


async def explain(conn: asyncpg.Connection, sql: str, recipient: uuid.UUID) -> str:
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE bench_claim(uuid, int, text, interval) AS {sql}")
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) "
            f"EXECUTE bench_claim('{recipient}', 10, 'bench', '30 seconds')"
        )
        return "\n".join(r[0] for r in rows)
    finally:
        await tx.rollback()
        await conn.execute("DEALLOCATE bench_claim")


async def churn(recipient: uuid.UUID, n: int, priorities: list[int], workers: int = 4) -> float:
    """Push ``n`` messages through their whole life with the API, ``workers`` at once."""
    from agent_app import queue

    async def take(name: str) -> bool:
        """Claim 100; ack the churn, give waiting messages back. False once no churn."""
        claimed = await queue.claim(name, [recipient], limit=100)
        work = [m for m in claimed if m.kind == "churn"]
        if work:
            await queue.ack(work, name)
        if len(work) < len(claimed):
            await queue.release([m for m in claimed if m.kind != "churn"], name)
        return bool(work)

    async def worker(w: int) -> None:
        name = f"churn-{w}"
        for b in range(n // 100 // workers):
            batch = [
                queue.Outgoing(recipient, "churn", {"b": b}, priorities[(b + i) % len(priorities)])
                for i in range(100)
            ]
            await queue.send_many(batch)
            await take(name)
        while await take(name):
            pass

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return time.perf_counter() - start


async def vacuum_stats(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT n_dead_tup, autovacuum_count, "
        "pg_relation_size('agent.messages_claim_idx') / 8192 AS claim_idx_pages "
        "FROM pg_stat_user_tables WHERE relid = 'agent.messages'::regclass"
    )


async def main(n_churn: int, quick: bool, summary: str | None) -> None:
    from agent_app import db, queue

    await db.start_pool(min_size=5, max_size=5)
    pool = await db.pool()
    conn: asyncpg.Connection = await pool.acquire()  # a warm pool connection
    settings = await conn.fetchval(
        "SELECT array_to_string(reloptions, ', ') FROM pg_class "
        "WHERE oid = 'agent.messages'::regclass"
    )
    naptime = await conn.fetchval("SHOW autovacuum_naptime")
    hi, spread = [
        await conn.fetchval(
            "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', $1) RETURNING id", name
        )
        for name in ("hi", "spread")
    ]
    for r in (hi, spread):
        await conn.execute(
            "INSERT INTO agent.messages (recipient_id, kind, payload, priority) "
            "SELECT $1, 'waiting', '{}', 0 FROM generate_series(1, $2)",
            r,
            WAITING,
        )
    await conn.execute("ANALYZE agent.messages")
    samples = 40 if quick else 100
    stmts = {"claim": queue.CLAIM_ONE, "main's claim": OLD_CLAIM}
    # Warm the prepared statements as a pool connection that has worked would be.
    for sql in stmts.values():
        for r in (hi, spread):
            await claim_p50(conn, sql, r, 20)
    fresh = {(k, r): await claim_p50(conn, sql, r, samples) for k, sql in stmts.items()
             for r in (hi, spread)}  # fmt: skip

    t_hi = await churn(hi, n_churn, [5])
    t_spread = await churn(spread, n_churn, list(range(10)))
    after = {(k, r): await claim_p50(conn, sql, r, samples) for k, sql in stmts.items()
             for r in (hi, spread)}  # fmt: skip
    stats = await vacuum_stats(conn)
    plan = await explain(conn, queue.CLAIM_ONE, hi)
    old_plan = await explain(conn, OLD_CLAIM, hi)

    settled: tuple[float, float] | None = None
    waited = 0.0
    if not quick:
        start_count = stats["autovacuum_count"]
        start = time.perf_counter()
        while time.perf_counter() - start < 90:
            await asyncio.sleep(5)
            if (await vacuum_stats(conn))["autovacuum_count"] > start_count:
                waited = time.perf_counter() - start
                settled = await claim_p50(conn, queue.CLAIM_ONE, hi, samples)
                break

    print(f"agent.messages storage settings: {settings}; autovacuum_naptime {naptime}")
    print(
        f"churn: {n_churn:,} messages per recipient through send_many/claim/ack "
        f"({t_hi:.0f} s higher-priority, {t_spread:.0f} s spread); then n_dead_tup "
        f"{stats['n_dead_tup']:,}, autovacuum passes so far {stats['autovacuum_count']}, "
        f"claim index {stats['claim_idx_pages']:,} pages"
    )
    print(f"\nEXPLAIN (generic plan) of the claim after churn, higher priority first:\n{plan}\n")
    print(f"EXPLAIN (generic plan) of main's claim after churn:\n{old_plan}\n")
    rows = []
    for k in stmts:
        for r, label in ((hi, "higher priority first"), (spread, "spread over 0-9")):
            f, a = fresh[(k, r)], after[(k, r)]
            rows.append([k, label, f"{f[0]:.2f}", f"{a[0]:.2f}", f"{a[1]:.2f}",
                         f"{a[0] / f[0]:.2f}x"])  # fmt: skip
    print(f"claim of 10 (of {WAITING:,} waiting), ms; median of {samples}, rolled back")
    print(table(rows, ["statement", "churn order", "fresh p50", "after p50", "after p95",
                       "after/fresh"]))  # fmt: skip
    if settled is not None:
        print(
            f"after autovacuum's first pass ({waited:.0f} s after the churn): claim p50 "
            f"{settled[0]:.2f} ms = {settled[0] / fresh[('claim', hi)][0]:.2f}x fresh"
        )
    elif not quick:
        print("autovacuum did not pass over agent.messages within 90 s")
    worst = max(after[("claim", r)][0] / fresh[("claim", r)][0] for r in (hi, spread))
    report(
        summary,
        [
            ("claim p50 after churn / fresh (worst order)", worst, "<= 2x", worst <= 2),
            (
                "main's claim after churn / fresh",
                after[("main's claim", hi)][0] / fresh[("main's claim", hi)][0],
                "reference",
                None,
            ),
        ],
    )
    await pool.release(conn)
    await db.close_pool()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--churn", type=int, default=None)
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.churn or (20_000 if args.quick else 100_000), args.quick, args.summary))
