"""A worker process for tests/test_faults.py: consumes messages with the public API
(Consumer, budgets) until it is killed. Each message is handled in one transaction
that records its effect idempotently (keyed by message id), spends budget once, and
acks - so a redelivered message is acked but its effect is not applied twice.

Usage: python -m tests.fault_worker AGENT_ID[,AGENT_ID...], or ``run`` as the target of a
multiprocessing Process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import uuid

from agent_app import budgets, db, queue
from agent_app.enums import BudgetResource
from agent_app.errors import DatabaseUnavailable, LeaseLost

LEASE = dt.timedelta(seconds=2)


async def handle(consumer: queue.Consumer, m: queue.Message) -> None:
    agent = m.recipient_id
    while True:
        try:
            async with db.transaction() as c:
                first = await c.fetchval(
                    "INSERT INTO fault_test.effects (message_id, worker) VALUES ($1, $2) "
                    "ON CONFLICT (message_id) DO NOTHING RETURNING true",
                    m.id,
                    consumer.worker_id,
                )
                if first:
                    r = await budgets.reserve(agent, BudgetResource.tokens, 2, conn=c)
                    await budgets.commit(r, 1, conn=c)
                # Every committed ack leaves a row (same transaction): counting them
                # proves no message was acked twice.
                await c.execute(
                    "INSERT INTO fault_test.acks (message_id, worker, attempts) "
                    "VALUES ($1, $2, $3)",
                    m.id,
                    consumer.worker_id,
                    m.attempts,
                )
                await consumer.ack(m, conn=c)
            return
        except LeaseLost:
            return  # another worker has it now; this transaction was rolled back
        except DatabaseUnavailable:
            await asyncio.sleep(0.1)  # the server is restarting: same message, again


async def main(recipients: list[uuid.UUID]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    await db.start_pool(min_size=1, max_size=4)
    while True:
        try:
            async with queue.Consumer(
                recipients, batch_size=5, lease=LEASE, poll_interval=0.5
            ) as consumer:
                async for m in consumer:
                    await handle(consumer, m)
        except DatabaseUnavailable:
            await asyncio.sleep(0.2)  # down for longer than the consumer waits: again


def run(recipients: str) -> None:
    """Entry point of a worker process (multiprocessing target)."""
    asyncio.run(main([uuid.UUID(a) for a in recipients.split(",")]))


if __name__ == "__main__":
    run(sys.argv[1])
