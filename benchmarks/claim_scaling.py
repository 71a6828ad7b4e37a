"""Claim latency with 10k and with 1M messages in the table (almost all done): the claim
must use the partial index over pending messages, so its latency should not grow with
the table (target: 1M within 2x of 10k). Prints the EXPLAIN of both.

BEST CASE for the table's size: the extra rows are ``done`` messages inserted directly
(never in the partial claim index) and the table is vacuumed before measuring. The
worst case, messages that went through their life without a VACUUM, is
``claim_churn``. No baseline: the ratio is the figure.

    python -m benchmarks.claim_scaling [--quick] [--big 1000000]
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

PENDING = 1000
FILL_DONE = """
INSERT INTO agent.messages (recipient_id, kind, payload, priority, status, attempts, finished_at)
SELECT ($1::uuid[])[1 + g % cardinality($1::uuid[])], 'old', '{"done": true}', g % 10,
       'done', 1, now()
  FROM generate_series(1, $2) AS g
"""
FILL_PENDING = """
INSERT INTO agent.messages (recipient_id, kind, payload, priority)
SELECT $1, 'work', '{}', g % 10 FROM generate_series(1, $2) AS g
"""


async def measure(
    conn: asyncpg.Connection, recipient: uuid.UUID, iterations: int = 300
) -> tuple[float, float, str]:
    from agent_app import queue

    await conn.execute("VACUUM ANALYZE agent.messages")
    args = (recipient, 10, "bench", dt.timedelta(seconds=30))
    tx = conn.transaction()
    await tx.start()
    plan = "\n".join(
        r[0]
        for r in await conn.fetch(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + queue.CLAIM_ONE, *args
        )
    )
    await tx.rollback()  # every claim here is rolled back: the table stays as it was
    samples = []
    for _ in range(iterations):
        tx = conn.transaction()
        await tx.start()
        start = time.perf_counter()
        rows = await conn.fetch(queue.CLAIM_ONE, *args)
        samples.append(time.perf_counter() - start)
        await tx.rollback()
        assert len(rows) == 10
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.95)] * 1000, plan


async def main(big: int, summary: str | None) -> None:
    from agent_app import db

    conn = await asyncpg.connect(db.engine().config["dsn"])
    agents = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO agent.agents (agent_type, name) "
            "SELECT 'coder', 'a' || g FROM generate_series(1, 100) g RETURNING id"
        )
    ]
    target = agents[0]
    await conn.execute(FILL_PENDING, target, PENDING)
    await conn.execute(FILL_DONE, agents, 10_000 - PENDING)
    small = await measure(conn, target)
    start = time.perf_counter()
    await conn.execute(FILL_DONE, agents, big - 10_000)
    print(f"(filled {big - 10_000:,} more done messages in {time.perf_counter() - start:.0f} s)")
    large = await measure(conn, target)
    total = await conn.fetchval("SELECT count(*) FROM agent.messages")
    print(f"\nEXPLAIN ANALYZE of the claim at {total:,} messages:\n{large[2]}\n")
    print(f"claim of 10 messages ({PENDING} pending for the recipient), ms per claim")
    print(
        table(
            [
                ["10,000", f"{small[0]:.3f}", f"{small[1]:.3f}", "1.00x"],
                [f"{total:,}", f"{large[0]:.3f}", f"{large[1]:.3f}", f"{large[0] / small[0]:.2f}x"],
            ],
            ["messages in table", "median", "p95", "vs 10k"],
        )
    )
    uses_index = "messages_claim_idx" in large[2]
    print(f"\nclaim uses the partial index messages_claim_idx: {uses_index}")
    ratio = large[0] / small[0]
    report(summary, [(f"claim p50 at {total:,} done rows vs 10k (BEST CASE: vacuumed)", ratio,
                      "<= 2x", ratio <= 2)])  # fmt: skip
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.big or (100_000 if args.quick else 1_000_000), args.summary))
