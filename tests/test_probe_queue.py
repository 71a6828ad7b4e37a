"""Adversarial probes of claim(ack=), Consumer.ack prefetch and lease validation."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from agent_app import db, queue
from agent_app.errors import AgentAppError, LeaseLost
from tests.test_queue import new_agents, status_of


async def test_p_dup_ids_in_ack_claim() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    [m] = await queue.claim("w", [r])
    nxt = await queue.claim("w", [r], ack=[m, m])
    assert (await status_of(m.id))["status"] == "done"
    assert len(nxt) == 1


async def test_p_dup_ids_in_ack() -> None:
    [r] = await new_agents(1)
    await queue.send(r, "k")
    [m] = await queue.claim("w", [r])
    await queue.ack([m, m], "w")
    assert (await status_of(m.id))["status"] == "done"


async def test_p_dup_ids_in_extend_release_fail() -> None:
    [r] = await new_agents(1)
    await queue.send(r, "k")
    [m] = await queue.claim("w", [r])
    await queue.extend_lease([m, m], "w")
    await queue.fail([m, m], "w", "x")
    assert (await status_of(m.id))["status"] == "pending"


async def test_p_huge_ack_batch() -> None:
    [r] = await new_agents(1)
    n = 5000
    await queue.send_many([queue.Outgoing(r, "k", {"n": i}) for i in range(n + 1)])
    ms = await queue.claim("w", [r], limit=n)
    assert len(ms) == n
    nxt = await queue.claim("w", [r], limit=1, ack=ms)
    assert len(nxt) == 1
    async with db.connection() as c:
        assert (
            await c.fetchval(
                "SELECT count(*) FROM agent.messages WHERE recipient_id=$1 AND status='done'", r
            )
            == n
        )


@pytest.mark.parametrize(
    "change",
    [
        {"id": 2**63},
        {"id": -1},
        {"id": True},
        {"id": None},
        {"id": "1"},
        {"attempts": 2**31},
        {"attempts": -5},
        {"attempts": None},
        {"id": 1.0},
    ],
)
async def test_p_garbage_identity(change: dict[str, object]) -> None:
    [r] = await new_agents(1)
    await queue.send(r, "k")
    [m] = await queue.claim("w", [r])
    bad = dataclasses.replace(m)
    for k, v in change.items():
        setattr(bad, k, v)
    for call in (
        lambda: queue.ack(bad, "w"),
        lambda: queue.claim("w", [r], ack=bad),
        lambda: queue.extend_lease(bad, "w"),
        lambda: queue.fail(bad, "w", "e"),
        lambda: queue.release(bad, "w"),
    ):
        with pytest.raises(AgentAppError):
            await call()
    assert (await status_of(m.id))["status"] == "claimed"


async def test_p_garbage_other_fields_ok() -> None:
    [r] = await new_agents(1)
    await queue.send(r, "k")
    [m] = await queue.claim("w", [r])
    bad = dataclasses.replace(m)
    bad.recipient_id = "garbage"  # type: ignore[assignment]
    bad.payload_json = object()  # type: ignore[assignment]
    bad.kind = None  # type: ignore[assignment]
    await queue.claim("w", [r], ack=bad)
    assert (await status_of(m.id))["status"] == "done"


@pytest.mark.parametrize("ack", [None, "abc", [None], [1, 2], object(), b"xx"])
async def test_p_garbage_ack_arg(ack: object) -> None:
    [r] = await new_agents(1)
    await queue.send(r, "k")
    with pytest.raises(AgentAppError):
        await queue.claim("w", [r], ack=ack)  # type: ignore[arg-type]
    assert await queue.claim("w", [r])


async def test_p_mixed_held_expired_other_worker() -> None:
    [r, r2] = await new_agents(2)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(4)])
    await queue.send_many([queue.Outgoing(r2, "k", {"n": n}) for n in range(2)])
    mine = await queue.claim("w", [r], limit=2)
    theirs = await queue.claim("x", [r], limit=1)
    other_recipient = await queue.claim("w", [r2], limit=1)
    with pytest.raises(LeaseLost) as e:
        await queue.claim("w", [r], ack=[*mine, *theirs])
    assert e.value.message_ids == [theirs[0].id]
    for m in mine:
        assert (await status_of(m.id))["status"] == "claimed"
    # ack of a different recipient's message while claiming for r
    got = await queue.claim("w", [r], ack=[*mine, *other_recipient])
    assert len(got) == 1
    for m in [*mine, *other_recipient]:
        assert (await status_of(m.id))["status"] == "done"


async def test_p_terminate_mid_ack_claim(database_url: str) -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    [m] = await queue.claim("w", [r])
    locker = await asyncpg.connect(database_url)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("SELECT 1 FROM agent.messages WHERE id=$1 FOR UPDATE", m.id)
        task = asyncio.create_task(queue.claim("w", [r], ack=m))
        # wait until the claim is blocked on the lock
        for _ in range(200):
            pid = await locker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type='Lock' "
                "AND query LIKE '%acked%'"
            )
            if pid:
                break
            await asyncio.sleep(0.05)
        assert pid
        await locker.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(AgentAppError):
            await asyncio.wait_for(task, 30)
        await tx.rollback()
    finally:
        await locker.close()
    assert (await status_of(m.id))["status"] == "claimed"
    [again] = await queue.claim("w", [r], ack=m)
    assert (await status_of(m.id))["status"] == "done"
    assert (await status_of(again.id))["status"] == "claimed"


async def test_p_cancel_mid_ack_claim(database_url: str) -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    [m] = await queue.claim("w", [r])
    locker = await asyncpg.connect(database_url)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("SELECT 1 FROM agent.messages WHERE id=$1 FOR UPDATE", m.id)
        task = asyncio.create_task(queue.claim("w", [r], ack=m))
        for _ in range(200):
            pid = await locker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type='Lock' "
                "AND query LIKE '%acked%'"
            )
            if pid:
                break
            await asyncio.sleep(0.05)
        assert pid
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tx.rollback()
    finally:
        await locker.close()
    assert (await status_of(m.id))["status"] == "claimed"
    # the pool is still fine
    [again] = await queue.claim("w", [r], ack=m)
    assert (await status_of(m.id))["status"] == "done"
    assert (await status_of(again.id))["status"] == "claimed"


async def test_p_piccolo_tx_refusal_leaves_usable() -> None:
    from piccolo.engine import engine_finder

    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    [m] = await queue.claim("w", [r])
    engine = engine_finder()
    assert engine is not None
    async with engine.transaction():
        with pytest.raises(LeaseLost):
            await queue.claim("thief", [r], ack=m)
        [nxt] = await queue.claim("w", [r], ack=m)
    assert (await status_of(m.id))["status"] == "done"
    assert (await status_of(nxt.id))["status"] == "claimed"


async def test_p_piccolo_tx_repeat_inside() -> None:
    # repeat inside a transaction: acked already under this claim in the same tx
    from piccolo.engine import engine_finder

    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    [m] = await queue.claim("w", [r])
    engine = engine_finder()
    assert engine is not None
    async with engine.transaction():
        [a] = await queue.claim("w", [r], ack=m)
        [b] = await queue.claim("w", [r], ack=m)
        assert a.id != b.id
