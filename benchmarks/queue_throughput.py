"""Queue throughput: the API against a raw-asyncpg loop with the same semantics, in one
run on one server, with 1, 4 and 16 workers (16 only with --quick), batch 1 and 50.

Baseline: plain SQL on the same table (same indexes, CHECKs and NOTIFY trigger), one
held connection per worker; its claim requeues the recipient's expired leases and sets
the lease columns, its ack is fenced by worker, attempt and an unexpired lease, like the
API's; like the API's, its statements keep their generic plans (the limit and ids are
hidden from the planner). Payloads are serialised with json.dumps on both sides.
``raw+cols`` is the same loop returning the 13 columns of the API's Message (a
reference, to attribute the gap).
The API runs twice: through its pool (the recommended path) and on one held connection
per worker. Rounds are interleaved (the order of the implementations alternates),
figures are medians of ``--rounds``.
Targets (issue 13): claim+ack >= 0.9x the raw loop at batch 1 and 50 with 16 workers;
the pool path within 10% of the held connection.

    python -m benchmarks.queue_throughput [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from benchmarks.common import median, prepare, report, table, timed

RAW_SEND = """
INSERT INTO agent.messages (recipient_id, kind, payload, priority) VALUES ($1, $2, $3::jsonb, $4)
RETURNING id
"""
RAW_SEND_MANY = """
INSERT INTO agent.messages (recipient_id, kind, payload, priority)
SELECT $1, $2, p::jsonb, pr FROM unnest($3::text[], $4::smallint[]) AS t(p, pr)
RETURNING id
"""
# The raw loop does what the API does, as plain SQL on the same table: requeue this
# recipient's expired leases, claim in priority-FIFO order with a lease, and ack only
# while still holding the lease (same worker, same attempt). Its limit and ids are
# hidden from the planner as the API's are (agent_app/sql/queries/queue.sql), so both
# keep their prepared statements' generic plans and the ratio is the API's own cost,
# not a difference in planning.
RAW_CLAIM = """
WITH requeued AS (
    UPDATE agent.messages
       SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
           finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
           last_error = 'lease expired', lease_expires_at = NULL, claimed_by = NULL,
           claimed_at = NULL, available_at = now()
     WHERE id = ANY(ARRAY(SELECT id FROM agent.messages
                           WHERE status = 'claimed' AND lease_expires_at < now()
                             AND recipient_id = $1 FOR UPDATE SKIP LOCKED))
)
UPDATE agent.messages
   SET status = 'claimed', attempts = attempts + 1, claimed_by = $2, claimed_at = now(),
       lease_expires_at = now() + interval '30 seconds'
 WHERE id = ANY(ARRAY(SELECT id FROM agent.messages
                       WHERE recipient_id = $1 AND status = 'pending' AND available_at <= now()
                       ORDER BY priority DESC, id LIMIT (SELECT $3::int)
                         FOR UPDATE SKIP LOCKED))
RETURNING id, attempts, payload
"""
# The same claim returning what the API's Message carries (13 columns: ids, kind, payload
# as text, lease, timestamps), to show what decoding a whole message costs.
RAW_CLAIM_FULL = RAW_CLAIM.replace(
    "RETURNING id, attempts, payload",
    "RETURNING id, recipient_id, sender_id, run_id, kind, payload::text AS payload, priority, "
    "attempts, max_attempts, claimed_by, lease_expires_at, created_at, last_error",
)
RAW_ACK = """
UPDATE agent.messages SET status = 'done', finished_at = now(), lease_expires_at = NULL
 WHERE id = ANY(ARRAY(SELECT unnest($1::bigint[]))) AND claimed_by = $2
   AND lease_expires_at > now()
   AND attempts = ($3::int[])[array_position($1::bigint[], id)]
"""


async def explain_both(c: Any, recipient: Any) -> None:
    """EXPLAIN ANALYZE of what each side runs per message at batch 1 (the claim, then
    the ack of what it claimed), API and raw, on the same table."""
    from agent_app import queue

    await c.execute("TRUNCATE agent.messages")
    await c.fetch(RAW_SEND_MANY, recipient, "bench", ["{}"] * 2000, [0] * 2000)
    await c.execute("ANALYZE agent.messages")  # the plans of a queue that has been running
    options = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) "
    sides = (
        ("API", queue.CLAIM_ONE, (recipient, 1, "x", queue.DEFAULT_LEASE), queue.ACK),
        ("raw", RAW_CLAIM, (recipient, "x", 1), RAW_ACK),
    )
    for side, claim, args, ack in sides:
        [row] = await c.fetch(claim, *args)  # what the EXPLAIN of the ack acks
        plan = await c.fetch(options + ack, [row["id"]], "x", [row["attempts"]])
        print(f"EXPLAIN ANALYZE of the {side} ack:\n" + "\n".join(r[0] for r in plan))
        plan = await c.fetch(options + claim, *args)
        print(f"EXPLAIN ANALYZE of the {side} claim:\n" + "\n".join(r[0] for r in plan) + "\n")


async def main(rounds: int, quick: bool, summary: str | None) -> None:
    import asyncpg

    from agent_app import db, queue

    await db.start_pool(min_size=17, max_size=17)
    raw_pool = await asyncpg.create_pool(
        db.engine().config["dsn"], min_size=17, max_size=17, reset=db._light_reset
    )
    assert raw_pool is not None
    async with raw_pool.acquire() as c:
        recipient = await c.fetchval(
            "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'bench') RETURNING id"
        )

    async def api_send(n: int, batch: int) -> None:
        if batch == 1:
            for i in range(n):
                await queue.send(recipient, "bench", {"i": i}, priority=i % 10)
        else:
            for start in range(0, n, batch):
                await queue.send_many(
                    [queue.Outgoing(recipient, "bench", {"i": i}, priority=i % 10)
                     for i in range(start, min(n, start + batch))]
                )  # fmt: skip

    async def api_conn_send(n: int, batch: int) -> None:
        async with raw_pool.acquire() as c:
            if batch == 1:
                for i in range(n):
                    await queue.send(recipient, "bench", {"i": i}, priority=i % 10, conn=c)
            else:
                for start in range(0, n, batch):
                    await queue.send_many(
                        [queue.Outgoing(recipient, "bench", {"i": i}, priority=i % 10)
                         for i in range(start, min(n, start + batch))],
                        conn=c,
                    )  # fmt: skip

    async def api_conn_drain(batch: int) -> int:
        worker = f"apic-{uuid.uuid4().hex[:6]}"
        done = 0
        async with raw_pool.acquire() as c:
            while messages := await queue.claim(worker, [recipient], limit=batch, conn=c):
                await queue.ack(messages, worker, conn=c)
                done += len(messages)
        return done

    async def raw_send(n: int, batch: int) -> None:
        async with raw_pool.acquire() as c:
            if batch == 1:
                for i in range(n):
                    await c.fetchval(RAW_SEND, recipient, "bench", json.dumps({"i": i}), i % 10)
            else:
                for start in range(0, n, batch):
                    idx = range(start, min(n, start + batch))
                    payloads = [json.dumps({"i": i}) for i in idx]
                    await c.fetch(
                        RAW_SEND_MANY, recipient, "bench", payloads, [i % 10 for i in idx]
                    )

    async def api_drain(batch: int) -> int:
        worker = f"api-{uuid.uuid4().hex[:6]}"
        done = 0
        while messages := await queue.claim(worker, [recipient], limit=batch):
            await queue.ack(messages, worker)
            done += len(messages)
        return done

    async def raw_drain(batch: int) -> int:
        worker = f"raw-{uuid.uuid4().hex[:6]}"
        done = 0
        async with raw_pool.acquire() as c:
            while rows := await c.fetch(RAW_CLAIM, recipient, worker, batch):
                ids, attempts = [r["id"] for r in rows], [r["attempts"] for r in rows]
                status = await c.execute(RAW_ACK, ids, worker, attempts)
                assert status == f"UPDATE {len(ids)}", status  # fenced: all were held
                done += len(rows)
        return done

    async def raw_full_drain(batch: int) -> int:
        worker = f"rawf-{uuid.uuid4().hex[:6]}"
        done = 0
        async with raw_pool.acquire() as c:
            while rows := await c.fetch(RAW_CLAIM_FULL, recipient, worker, batch):
                ids, attempts = [r["id"] for r in rows], [r["attempts"] for r in rows]
                status = await c.execute(RAW_ACK, ids, worker, attempts)
                assert status == f"UPDATE {len(ids)}", status
                done += len(rows)
        return done

    impls = {
        "api": (api_send, api_drain),
        "api+conn": (api_conn_send, api_conn_drain),
        "raw": (raw_send, raw_drain),
        "raw+cols": (raw_send, raw_full_drain),
    }

    async def run_once(impl: str, workers: int, batch: int, n: int) -> tuple[float, float]:
        send, drain = impls[impl]
        async with raw_pool.acquire() as c:
            await c.execute("TRUNCATE agent.messages")
        per = n // workers
        t_send = await timed(lambda: asyncio.gather(*(send(per, batch) for _ in range(workers))))
        counts: list[int] = []

        async def drain_all() -> None:
            counts.extend(await asyncio.gather(*(drain(batch) for _ in range(workers))))

        t_drain = await timed(drain_all)
        assert sum(counts) == per * workers, (impl, sum(counts))
        return per * workers / t_send, sum(counts) / t_drain

    results: dict[tuple[str, int, str, str], list[float]] = {}
    configs = [(w, b) for b in (1, 50) for w in ((16,) if quick else (1, 4, 16))]
    for rnd in range(rounds):
        for workers, batch in configs:
            mode = "single" if batch == 1 else "batch"
            for impl in ["api", "api+conn", "raw", "raw+cols"][:: 1 if rnd % 2 == 0 else -1]:
                n = 1600 if batch == 1 else (6400 if quick else 32000)
                sent, drained = await run_once(impl, workers, batch, n)
                results.setdefault((impl, workers, mode, "send"), []).append(sent)
                results.setdefault((impl, workers, mode, "claim+ack"), []).append(drained)

    rows = []
    for mode in ("single", "batch"):
        for op in ("send", "claim+ack"):
            for workers in sorted({w for w, _ in configs}):
                api, conn, raw, full = (
                    median(results[(impl, workers, mode, op)])
                    for impl in ("api", "api+conn", "raw", "raw+cols")
                )
                full_cell = f"{full:,.0f}" if op == "claim+ack" else "-"
                full_ratio = f"{conn / full:.2f}x" if op == "claim+ack" else "-"
                rows.append([op, mode if mode == "single" else "batch of 50", workers,
                             f"{api:,.0f}", f"{conn:,.0f}", f"{raw:,.0f}", full_cell,
                             f"{api / raw:.2f}x", f"{conn / raw:.2f}x", full_ratio])  # fmt: skip
    print(f"queue throughput, messages/s (median of {rounds} rounds, interleaved)")
    print(
        "api: a pool connection per call (the recommended path); api+conn: the API on one "
        "held connection per worker"
    )
    print(
        "baseline (raw asyncpg): the same table, one held connection per worker, the same "
        "semantics as the API: expired-lease requeue in the claim, lease columns, fenced ack "
        "(claimed_by + attempts); the API's all-or-nothing refusal is left out (never hit); "
        "raw+cols: the same loop returning the 13 columns the API's Message carries"
    )
    print(table(rows, ["operation", "mode", "workers", "api", "api+conn", "raw asyncpg",
                       "raw+cols", "api/raw", "api+conn/raw", "api+conn/raw+cols"]))  # fmt: skip
    summary_rows = []
    for mode, label in (("single", "batch 1"), ("batch", "batch 50")):
        ratio = median(results[("api+conn", 16, mode, "claim+ack")]) / median(
            results[("raw", 16, mode, "claim+ack")]
        )
        pool_cost = median(results[("api", 16, mode, "claim+ack")]) / median(
            results[("api+conn", 16, mode, "claim+ack")]
        )
        full = median(results[("api+conn", 16, mode, "claim+ack")]) / median(
            results[("raw+cols", 16, mode, "claim+ack")]
        )
        summary_rows += [
            (f"claim+ack vs same-semantics raw, 16 workers, {label}", ratio, ">= 0.9x",
             ratio >= 0.9),
            (f"claim+ack vs raw returning the Message's columns, 16 workers, {label}", full,
             "reference", None),
            (f"claim+ack pool path vs held connection, 16 workers, {label}", pool_cost, ">= 0.9x",
             pool_cost >= 0.9),
        ]  # fmt: skip
    report(summary, summary_rows)
    async with raw_pool.acquire() as c:
        await explain_both(c, recipient)
    await raw_pool.close()
    await db.close_pool()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.rounds, args.quick, args.summary))
