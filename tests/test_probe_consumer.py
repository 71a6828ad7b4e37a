"""Adversarial probes of Consumer.ack's prefetch (claim with ack=)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from agent_app import db, queue
from tests.test_queue import new_agents


class SyncDB:
    """A connection on an event loop of its own thread: ``run`` blocks the caller's
    loop (so the code under test cannot read its answers meanwhile)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.conn: asyncpg.Connection = self.run(lambda _c: asyncpg.connect(url))

    def run(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        conn = getattr(self, "conn", None)
        return asyncio.run_coroutine_threadsafe(fn(conn), self.loop).result(120)

    def close(self) -> None:
        self.run(lambda c: c.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def held_by(worker: str) -> list[int]:
    async with db.connection() as c:
        rows = await c.fetch(
            "SELECT id FROM agent.messages WHERE claimed_by = $1 AND status = 'claimed'", worker
        )
    return [r["id"] for r in rows]


async def _wait_blocked() -> None:
    for _ in range(400):
        async with db.connection() as c:
            if await c.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%acked%'"
            ):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the ack never blocked")


def _commit_and_wait_done(sync_db: SyncDB, message_id: int) -> None:
    """Blocking (the test's event loop does not run): let the blocked statement go and
    wait until it has committed on the server, before the client reads its answer."""
    sync_db.run(lambda c: c.execute("COMMIT"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = sync_db.run(
            lambda c: c.fetchval("SELECT status FROM agent.messages WHERE id = $1", message_id)
        )
        if status == "done":
            return
        time.sleep(0.02)
    raise AssertionError("the ack never committed")


async def test_p_handler_cancelled_after_its_ack_committed_leaves_nothing_claimed(
    database_url: str,
) -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    sync_db = SyncDB(database_url)
    try:
        async with queue.Consumer([r], batch_size=1, poll_interval=3600) as consumer:
            first = await anext(aiter(consumer))
            sync_db.run(lambda c: c.execute("BEGIN"))
            sync_db.run(
                lambda c: c.execute(
                    "SELECT 1 FROM agent.messages WHERE id = $1 FOR UPDATE", first.id
                )
            )
            handler = asyncio.create_task(consumer.ack(first))
            await _wait_blocked()
            _commit_and_wait_done(sync_db, first.id)
            handler.cancel()  # the handler is cancelled before it reads the answer
            with contextlib.suppress(asyncio.CancelledError):
                await handler
        # stop() gave back everything this consumer held.
        assert await held_by(consumer.worker_id) == []
    finally:
        sync_db.close()


async def test_p_concurrent_handlers_each_message_once_none_left() -> None:
    recipients = await new_agents(2)
    total = 300
    await queue.send_many([queue.Outgoing(recipients[n % 2], "k", {"n": n}) for n in range(total)])
    seen: defaultdict[int, int] = defaultdict(int)
    done = asyncio.Event()
    async with queue.Consumer(recipients, batch_size=3, poll_interval=0.2) as consumer:
        acked: set[int] = set()

        async def handle(m: queue.Message) -> None:
            await asyncio.sleep(0)
            await consumer.ack(m)
            acked.add(m.id)
            if len(acked) >= total:
                done.set()

        async def loop() -> None:
            async with asyncio.TaskGroup() as tg:
                async for m in consumer:
                    seen[m.id] += 1
                    tg.create_task(handle(m))

        it = asyncio.create_task(loop())
        await asyncio.wait_for(done.wait(), 60)
        it.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await it
    assert len(seen) == total and set(seen.values()) == {1}
    assert await held_by(consumer.worker_id) == []


async def test_p_exception_in_async_with_after_prefetch_leaves_nothing_claimed() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(5)])
    try:
        async with queue.Consumer([r], batch_size=2, poll_interval=3600) as consumer:
            it = aiter(consumer)
            a = await anext(it)
            b = await anext(it)
            await consumer.ack(a)
            await consumer.ack(b)  # prefetches two
            await anext(it)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert await held_by(consumer.worker_id) == []


async def test_p_stop_racing_acks() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(40)])
    consumer = queue.Consumer([r], batch_size=4, poll_interval=3600)
    await consumer.start()
    it = aiter(consumer)
    got = [await anext(it) for _ in range(4)]
    acks = [asyncio.create_task(consumer.ack(m)) for m in got]
    await asyncio.sleep(0)
    await consumer.stop()
    await asyncio.gather(*acks, return_exceptions=True)
    await asyncio.sleep(0.2)
    assert await held_by(consumer.worker_id) == []


async def test_p_iterating_task_cancelled_while_claiming(database_url: str) -> None:
    # The iterating task's claim committed; the task is cancelled before it reads the
    # answer (it is checked between turns of the event loop, blocking it).
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    sync_db = SyncDB(database_url)
    try:
        async with queue.Consumer([r], batch_size=1, poll_interval=3600) as consumer:
            it = aiter(consumer)
            first = await anext(it)
            await queue.ack(first, consumer.worker_id)  # (no prefetch: the iteration claims)
            nxt = asyncio.create_task(anext(it))
            for _ in range(100000):
                await asyncio.sleep(0)
                assert not nxt.done(), "inconclusive: the answer was read"
                held = sync_db.run(
                    lambda c: c.fetchval(
                        "SELECT count(*) FROM agent.messages WHERE claimed_by = $1 "
                        "AND status = 'claimed'",
                        consumer.worker_id,
                    )
                )
                if held:
                    break
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await nxt
        assert await held_by(consumer.worker_id) == []
    finally:
        sync_db.close()
