"""Queue throughput: the API against a minimal raw-asyncpg loop with the same semantics
(SKIP LOCKED claim, ack; payloads serialised with json.dumps on both sides), in one
run on one server, with 1, 4 and 16 workers, single
and batched. Prints messages/s and the API/raw ratio (aim: >= 0.8; batched claim+ack
above 5,000 messages/s).

    python -m benchmarks.queue_throughput [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid

from benchmarks.common import median, prepare, table, timed

RAW_SEND = """
INSERT INTO agent.messages (recipient_id, kind, payload, priority) VALUES ($1, $2, $3::jsonb, $4)
RETURNING id
"""
RAW_SEND_MANY = """
INSERT INTO agent.messages (recipient_id, kind, payload, priority)
SELECT $1, $2, p::jsonb, pr FROM unnest($3::text[], $4::smallint[]) AS t(p, pr)
RETURNING id
"""
RAW_CLAIM = """
UPDATE agent.messages
   SET status = 'claimed', attempts = attempts + 1, claimed_by = $2, claimed_at = now(),
       lease_expires_at = now() + interval '30 seconds'
 WHERE id IN (SELECT id FROM agent.messages
               WHERE recipient_id = $1 AND status = 'pending' AND available_at <= now()
               ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING id, payload
"""
RAW_ACK = """
UPDATE agent.messages SET status = 'done', finished_at = now(), lease_expires_at = NULL
 WHERE id = ANY($1::bigint[])
"""


async def main(rounds: int) -> None:
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
                await c.execute(RAW_ACK, [r["id"] for r in rows])
                done += len(rows)
        return done

    impls = {
        "api": (api_send, api_drain),
        "api+conn": (api_conn_send, api_conn_drain),
        "raw": (raw_send, raw_drain),
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
    configs = [(w, b) for b in (1, 100) for w in (1, 4, 16)]
    for rnd in range(rounds):
        for workers, batch in configs:
            mode = "single" if batch == 1 else "batch"
            for impl in ["api", "api+conn", "raw"][:: 1 if rnd % 2 == 0 else -1]:
                sent, drained = await run_once(impl, workers, batch, 1600 if batch == 1 else 32000)
                results.setdefault((impl, workers, mode, "send"), []).append(sent)
                results.setdefault((impl, workers, mode, "claim+ack"), []).append(drained)

    rows = []
    for mode in ("single", "batch"):
        for op in ("send", "claim+ack"):
            for workers in (1, 4, 16):
                api, conn, raw = (
                    median(results[(impl, workers, mode, op)])
                    for impl in ("api", "api+conn", "raw")
                )
                rows.append([op, mode if mode == "single" else "batch of 100", workers,
                             f"{api:,.0f}", f"{conn:,.0f}", f"{raw:,.0f}",
                             f"{api / raw:.2f}x", f"{conn / raw:.2f}x"])  # fmt: skip
    print(f"queue throughput, messages/s (median of {rounds} rounds, interleaved)")
    print("api: a pool connection per call; api+conn: the API on one held connection, as raw")
    print(table(rows, ["operation", "mode", "workers", "api", "api+conn", "raw asyncpg",
                       "api/raw", "api+conn/raw"]))  # fmt: skip
    await raw_pool.close()
    await db.close_pool()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.rounds))
