"""The message queue, with many workers at once, against real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import re
import time
import uuid
from collections import defaultdict

import asyncpg
import pytest

from agent_app import db, operator, queue
from agent_app.errors import LeaseLost, RuleViolation
from tests import factories
from tests.rules import snapshot


async def new_agents(n: int) -> list[uuid.UUID]:
    async with db.connection() as c:
        rows = await c.fetch(
            "INSERT INTO agent.agents (agent_type, name) "
            "SELECT 'explorer', 'q' || g FROM generate_series(1, $1) g RETURNING id",
            n,
        )
    return [r["id"] for r in rows]


async def status_of(message_id: int) -> asyncpg.Record:
    async with db.connection() as c:
        return await c.fetchrow("SELECT * FROM agent.messages WHERE id = $1", message_id)


async def test_claim_order_is_priority_then_fifo() -> None:
    [r] = await new_agents(1)
    sent = []
    for i, p in enumerate([0, 5, 9, 5, 0, 9, 1]):
        sent.append((p, await queue.send(r, "k", {"i": i}, priority=p)))
    order = []
    while batch := await queue.claim("w", [r], limit=2):
        order += batch
        await queue.ack(batch, "w")
    assert [m.id for m in order] == [i for _, i in sorted(sent, key=lambda x: (-x[0], x[1]))]
    assert order[0].payload == {"i": 2} and order[0].attempts == 1


async def test_send_many_is_one_batch_in_order_and_all_or_nothing() -> None:
    [r] = await new_agents(1)
    ids = await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(50)])
    assert ids == sorted(ids) and len(set(ids)) == 50
    with pytest.raises(RuleViolation) as err:
        await queue.send_many([queue.Outgoing(r, "k"), queue.Outgoing(uuid.uuid4(), "k")])
    assert err.value.rule == "messages_recipient_id_fkey"
    assert len(await queue.claim("w", [r], limit=100)) == 50  # the failed batch left nothing


async def test_send_many_of_identical_messages_sends_each() -> None:
    [r] = await new_agents(1)
    ids = await queue.send_many([queue.Outgoing(r, "same", {"x": 1})] * 7)
    assert len(set(ids)) == 7
    claimed = await queue.claim("w", [r], limit=10)
    assert [m.id for m in claimed] == ids and all(m.payload == {"x": 1} for m in claimed)


async def test_each_message_keeps_its_own_fields_and_a_claim_returns_them() -> None:
    a, b = await new_agents(2)
    async with db.connection() as c:
        run_id = await factories.run(c)
    hour = dt.timedelta(hours=1)
    batch = [
        queue.Outgoing(a, "first", {"n": 1}, 3, sender_id=b, run_id=run_id, max_attempts=2),
        queue.Outgoing(b, "second", None),
        queue.Outgoing(a, "later", [1, "two"], 9, delay=hour, max_attempts=7),
    ]
    ids = await queue.send_many(batch)
    one = queue.Outgoing(b, "single", "text", 4, sender_id=a, run_id=run_id, max_attempts=3)
    single = await queue.send(
        one.recipient_id,
        one.kind,
        one.payload,
        priority=one.priority,
        sender_id=one.sender_id,
        run_id=one.run_id,
        max_attempts=one.max_attempts,
    )
    assert ids == sorted(ids) and single > ids[-1]
    sent = dict(zip([*ids, single], [*batch, one], strict=True))
    rows = await db.fetch(
        "SELECT *, payload::text AS text FROM agent.messages WHERE id = ANY($1)", list(sent)
    )
    for row in rows:
        m = sent[row["id"]]
        assert (row["recipient_id"], row["kind"], row["priority"], row["sender_id"]) == (
            m.recipient_id,
            m.kind,
            m.priority,
            m.sender_id,
        )
        assert row["max_attempts"] == m.max_attempts and row["run_id"] == m.run_id
        assert db.loads(row["text"]) == ({} if m.payload is None else m.payload)
        assert (row["available_at"] - row["created_at"] >= hour) == (m.delay == hour)
    claimed = await queue.claim("w", [a, b], limit=10)
    assert [m.id for m in claimed] == [single, ids[0], ids[1]]  # priority 4, 3, 0; not later
    first = claimed[1]
    assert (first.recipient_id, first.sender_id, first.run_id, first.kind) == (
        a,
        b,
        run_id,
        "first",
    )
    assert (first.priority, first.attempts, first.max_attempts) == (3, 1, 2)
    assert first.payload == {"n": 1} and db.loads(first.payload_json) == {"n": 1}
    assert first.claimed_by == "w" and first.last_error is None
    row = await status_of(first.id)
    assert (first.lease_expires_at, first.created_at) == (
        row["lease_expires_at"],
        row["created_at"],
    )


def test_the_statements_that_give_messages_back_notify_the_consumers_channel() -> None:
    notified = {
        (file.path.rsplit("/", 1)[-1], name): re.findall(r"pg_notify\('([^']*)'", statement.sql)
        for file in (queue.SQL, operator.SQL)
        for name, statement in file.statements.items()
    }
    assert {key for key, channels in notified.items() if channels} == {
        ("queue.sql", "claim_one"),  # an expired lease requeued
        ("queue.sql", "claim_many"),
        ("queue.sql", "ack_claim_one"),
        ("queue.sql", "ack_claim_many"),
        ("queue.sql", "release"),
        ("queue.sql", "release_held"),
        ("queue.sql", "redrive"),
        ("operator.sql", "requeue_claim"),
    }
    assert {c for channels in notified.values() for c in channels} == {queue.CHANNEL}


async def test_bad_priority_is_refused_before_the_database() -> None:
    [r] = await new_agents(1)
    with pytest.raises(RuleViolation) as err:
        await queue.send(r, "k", priority=10)
    assert err.value.rule == "priority_range" and "got 10" in str(err.value)


async def test_sixteen_workers_drain_5000_messages_exactly_once_in_order() -> None:
    recipients = await new_agents(3)
    rng = random.Random(7)
    outgoing = [
        queue.Outgoing(rng.choice(recipients), "work", {"n": n}, priority=rng.randint(0, 9))
        for n in range(5000)
    ]
    for i in range(0, len(outgoing), 1000):
        await queue.send_many(outgoing[i : i + 1000])

    claims: list[tuple[float, float, list[queue.Message]]] = []

    async def worker(w: int) -> None:
        name = f"worker-{w}"
        while True:
            start = time.monotonic()
            batch = await queue.claim(name, recipients, limit=rng.randint(1, 20))
            end = time.monotonic()
            if not batch:
                return
            claims.append((start, end, batch))
            await queue.ack(batch, name)

    await asyncio.gather(*(worker(w) for w in range(16)))

    claimed = [m.id for _, _, batch in claims for m in batch]
    assert len(claimed) == 5000 and len(set(claimed)) == 5000  # each exactly once, none lost
    async with db.connection() as c:
        counts = await c.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'done') AS done, "
            "count(*) FILTER (WHERE attempts <> 1) AS retried "
            "FROM agent.messages WHERE recipient_id = ANY($1)",
            recipients,
        )
    assert counts["done"] == 5000 and counts["retried"] == 0

    # Per recipient, a claim that started after another ended never takes a message
    # that ranks before one the earlier claim took: (priority desc, id) order holds
    # between claims that did not overlap in time.
    def key(m: queue.Message) -> tuple[int, int]:
        return (-m.priority, m.id)

    by_end = sorted(claims, key=lambda c: c[1])
    best_done: dict[uuid.UUID, tuple[int, int]] = {}
    j = 0
    for start, _, batch in sorted(claims, key=lambda c: c[0]):
        while j < len(by_end) and by_end[j][1] < start:
            for m in by_end[j][2]:
                best_done[m.recipient_id] = max(best_done.get(m.recipient_id, key(m)), key(m))
            j += 1
        for m in batch:
            if m.recipient_id in best_done:
                assert key(m) > best_done[m.recipient_id], (m, best_done[m.recipient_id])
    # Within one claim, messages come best first.
    for _, _, batch in claims:
        assert [key(m) for m in batch] == sorted(key(m) for m in batch)


async def test_a_dead_workers_messages_come_back_after_the_lease(database_url: str) -> None:
    [r] = await new_agents(1)
    mid = await queue.send(r, "k")
    doomed = await asyncpg.connect(database_url)
    held = await queue.claim("doomed", [r], lease=dt.timedelta(seconds=1), conn=doomed)
    assert [m.id for m in held] == [mid]

    async def stuck() -> None:
        await asyncio.sleep(3600)  # the handler never finishes...

    task = asyncio.create_task(stuck())
    task.cancel()  # ...its task is cancelled and its connection closed
    doomed.terminate()
    assert await queue.claim("rescuer", [r]) == []  # not before the lease ends
    await asyncio.sleep(1.1)
    [again] = await queue.claim("rescuer", [r])
    assert again.id == mid and again.attempts == 2
    assert "lease expired (held by doomed)" in (again.last_error or "")
    before = await status_of(mid)
    with pytest.raises(LeaseLost) as err:
        await queue.ack(held, "doomed")
    assert err.value.message_ids == [mid] and err.value.rule == "lease_lost"
    assert await status_of(mid) == before  # nothing changed
    await queue.ack(again, "rescuer")
    assert (await status_of(mid))["status"] == "done"


async def test_a_heartbeat_keeps_a_slow_message() -> None:
    [r] = await new_agents(1)
    await queue.send(r, "slow")
    lease = dt.timedelta(seconds=1)
    [m] = await queue.claim("slow-worker", [r], lease=lease)
    for _ in range(12):  # 3 s of work, three leases long
        await asyncio.sleep(0.25)
        expires = await queue.extend_lease(m, "slow-worker", lease)
        stolen = await queue.claim("thief", [r], lease=lease)
        if stolen:
            # Only a machine stalled past the whole lease lets the thief in - and then
            # only once the extended lease had run out, by the database's clock.
            assert stolen[0].lease_expires_at - lease >= expires
            return
    await queue.ack(m, "slow-worker")


async def test_retries_back_off_then_die_and_redrive_brings_them_back() -> None:
    [r] = await new_agents(1)
    mid = await queue.send(r, "flaky", max_attempts=3)
    base = dt.timedelta(milliseconds=100)
    delays = []
    for attempt in (1, 2, 3):
        deadline = time.monotonic() + 5
        while not (batch := await queue.claim("w", [r])):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        [m] = batch
        assert m.attempts == attempt
        async with db.transaction() as c:
            [(_, status, available_at)] = await queue.fail(
                m, "w", f"boom {attempt}", base_delay=base, conn=c
            )
            now = await c.fetchval("SELECT now()")
        if attempt < 3:
            assert status == "pending"
            delays.append(available_at - now)
        else:
            assert status == "dead"
    assert delays == [base, base * 2]  # exponential: base * 2 ** (attempts - 1)
    row = await status_of(mid)
    assert row["status"] == "dead" and row["last_error"] == "boom 3" and row["finished_at"]
    assert await queue.claim("w", [r]) == []
    assert await queue.redrive(recipient_id=r) == 1
    [m] = await queue.claim("w", [r])
    assert m.id == mid and m.attempts == 1 and m.last_error == "boom 3"


async def test_an_expired_lease_on_the_last_attempt_goes_dead() -> None:
    [r] = await new_agents(1)
    mid = await queue.send(r, "k", max_attempts=1)
    await queue.claim("w1", [r], lease=dt.timedelta(milliseconds=50))
    await asyncio.sleep(0.1)
    assert await queue.claim("w2", [r]) == []
    row = await status_of(mid)
    assert row["status"] == "dead" and "last attempt" in row["last_error"]


async def test_release_gives_back_without_spending_an_attempt() -> None:
    [r] = await new_agents(1)
    await queue.send(r, "k")
    [m] = await queue.claim("w", [r])
    await queue.release(m, "w")
    [again] = await queue.claim("w2", [r])
    assert again.attempts == 1


async def test_cancel_pending_of_a_terminated_agent() -> None:
    a, b = await new_agents(2)
    await queue.send_many([queue.Outgoing(a, "k")] * 3 + [queue.Outgoing(b, "k")])
    [claimed] = await queue.claim("w", [a])
    assert await queue.cancel_pending([a]) == 2
    assert (await status_of(claimed.id))["status"] == "claimed"  # in-flight work finishes
    assert [m.recipient_id for m in await queue.claim("w", [a, b], limit=10)] == [b]


async def test_lease_checks_change_nothing_when_refused() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k")] * 2)
    mine = await queue.claim("me", [r], limit=2)
    async with db.connection() as c:
        before = await snapshot(c, "messages")
    stolen = [mine[0], dataclasses.replace(mine[1], attempts=7)]
    for op in (
        queue.ack(stolen, "me"),
        queue.fail(stolen, "me", "x"),
        queue.extend_lease(stolen, "me"),
        queue.release(stolen, "me"),
        queue.ack(mine, "someone-else"),
    ):
        with pytest.raises(LeaseLost):
            await op
    async with db.connection() as c:
        assert await snapshot(c, "messages") == before
        # Inside the caller's own transaction, a refusal leaves that transaction usable.
        async with c.transaction():
            with pytest.raises(LeaseLost):
                await queue.ack(stolen, "me", conn=c)
            assert await c.fetchval("SELECT 1") == 1
    await queue.ack(mine, "me")


async def test_consumer_wakes_on_notify_without_polling() -> None:
    [r] = await new_agents(1)
    # Polling once an hour: only the send's notification can wake it in time.
    async with queue.Consumer([r], poll_interval=3600) as consumer:

        async def consume() -> queue.Message:
            async for message in consumer:
                await consumer.ack(message)
                return message
            raise AssertionError("stopped")

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)  # (usually) the consumer is idle by now, waiting
        mid = await queue.send(r, "wake up")
        message = await asyncio.wait_for(task, 60)  # hang guard
    assert message.id == mid


async def test_consumer_still_finds_work_when_notifications_are_lost() -> None:
    [r] = await new_agents(1)
    async with queue.Consumer([r], poll_interval=0.3) as consumer:

        async def consume() -> queue.Message:
            async for message in consumer:
                await consumer.ack(message)
                return message
            raise AssertionError("stopped")

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        async with db.transaction() as c:
            # With triggers off, the insert sends no notification at all.
            await c.execute("SET LOCAL session_replication_role = replica")
            mid = await c.fetchval(
                "INSERT INTO agent.messages (recipient_id, kind) VALUES ($1, 'quiet') RETURNING id",
                r,
            )
        message = await asyncio.wait_for(task, 5)
    assert message.id == mid


async def test_consumer_heartbeat_and_clean_stop() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(5)])
    lease = dt.timedelta(milliseconds=900)
    consumer = queue.Consumer([r], batch_size=5, lease=lease, poll_interval=0.1)
    await consumer.start()
    iterator = aiter(consumer)
    first = await anext(iterator)
    await asyncio.sleep(2.0)  # slow handler, longer than two leases
    assert await queue.claim("thief", [r]) == []  # heartbeat kept all five
    await consumer.ack(first)
    await consumer.stop()
    # The four never handed out are back, attempts not spent, claimable at once.
    rest = await queue.claim("next", [r], limit=10)
    assert len(rest) == 4 and all(m.attempts == 1 for m in rest)


async def test_many_consumers_process_everything_once() -> None:
    recipients = await new_agents(2)
    seen: defaultdict[int, int] = defaultdict(int)
    total = 400
    done = asyncio.Event()

    async def run_consumer() -> None:
        async with queue.Consumer(recipients, batch_size=8, poll_interval=0.2) as consumer:
            async for m in consumer:
                seen[m.id] += 1
                await consumer.ack(m)
                if sum(seen.values()) >= total:
                    done.set()
                if done.is_set():
                    return

    tasks = [asyncio.create_task(run_consumer()) for _ in range(6)]
    await asyncio.sleep(0.2)
    await queue.send_many(
        [queue.Outgoing(recipients[n % 2], "k", {"n": n}, priority=n % 3) for n in range(total)]
    )
    await asyncio.wait_for(done.wait(), 30)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert len(seen) == total and set(seen.values()) == {1}


async def test_an_ack_repeated_after_an_ambiguous_error_succeeds_and_changes_nothing() -> None:
    # The first ack committed but its reply was lost (DatabaseUnavailable): the worker
    # repeats it. That must not raise LeaseLost (the work was acked) nor change anything.
    [r] = await new_agents(1)
    await queue.send(r, "k")
    [m] = await queue.claim("w", [r])
    await queue.ack(m, "w")
    async with db.connection() as c:
        before = await snapshot(c, "messages")
    await queue.ack(m, "w")
    async with db.connection() as c:
        assert await snapshot(c, "messages") == before
    # Someone else's claim of a done message, or a later attempt, is still refused.
    with pytest.raises(LeaseLost):
        await queue.ack(m, "other")
    with pytest.raises(LeaseLost):
        await queue.ack(dataclasses.replace(m, attempts=2), "w")


async def test_an_idle_consumer_does_not_spin_on_a_row_locked_message(
    database_url: str,
) -> None:
    # A due message held by another transaction's row lock is skipped by claim; the
    # consumer must wait between claims rather than loop at full speed.
    [r] = await new_agents(1)
    mid = await queue.send(r, "k")
    locker = await asyncpg.connect(database_url)
    claims = 0
    real_claim = queue.claim

    async def counting_claim(*args: object, **kwargs: object) -> list[queue.Message]:
        nonlocal claims
        claims += 1
        return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

    queue.claim = counting_claim  # type: ignore[assignment]
    try:
        async with locker.transaction():
            await locker.execute("SELECT 1 FROM agent.messages WHERE id = $1 FOR UPDATE", mid)
            async with queue.Consumer([r], poll_interval=1.0) as consumer:
                task = asyncio.ensure_future(consumer.__aiter__().__anext__())
                # Let the consumer idle for a while (10 of its 0.1 s idle floors).
                for _ in range(20):
                    await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    finally:
        queue.claim = real_claim  # type: ignore[assignment]
        await locker.close()
    # At most one claim per floor (plus start-up); a spinning consumer claims hundreds.
    assert claims <= 15, claims


async def test_leases_run_on_statement_time_inside_a_long_caller_transaction(
    database_url: str,
) -> None:
    # now() is the start of the caller's transaction: a claim made late in a long
    # transaction must still get its whole lease, and an ack after the lease ended must
    # be refused even inside that transaction.
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k")] * 2)
    c = await asyncpg.connect(database_url)
    try:
        async with c.transaction():
            started = await c.fetchval("SELECT now()")
            # Wait, by the database's clock, until the transaction is 1 s old.
            while await c.fetchval("SELECT clock_timestamp() - now()") < dt.timedelta(seconds=1):
                await asyncio.sleep(0.05)
            [m] = await queue.claim("w", [r], lease=dt.timedelta(seconds=1), conn=c)
            assert m.lease_expires_at > started + dt.timedelta(seconds=1)
            # Let that lease end by the database's clock, still inside the transaction.
            while await c.fetchval("SELECT clock_timestamp()") <= m.lease_expires_at:
                await asyncio.sleep(0.05)
            with pytest.raises(LeaseLost):
                await queue.ack(m, "w", conn=c)
    finally:
        await c.close()


async def test_leaving_a_consumer_on_an_error_fails_each_abandoned_message_it_still_holds() -> None:
    # One abandoned message lost its lease meanwhile; the others must still be failed
    # (back to pending with the error), not left claimed until their leases expire.
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k")] * 2)
    taken: list[queue.Message] = []
    with pytest.raises(RuntimeError):
        async with queue.Consumer([r], batch_size=2, poll_interval=3600) as consumer:
            async for m in consumer:
                taken.append(m)
                if len(taken) == 2:
                    # Someone else took the first one over (its claim changed hands).
                    async with db.connection() as c:
                        await c.execute(
                            "UPDATE agent.messages SET claimed_by = 'thief' WHERE id = $1",
                            taken[0].id,
                        )
                    raise RuntimeError("handler crashed")
    first, second = await status_of(taken[0].id), await status_of(taken[1].id)
    assert first["status"] == "claimed" and first["claimed_by"] == "thief"
    assert second["status"] == "pending" and "handler crashed" in second["last_error"]


# --------------------------------------------------------------------------- #
# claim(..., ack=): "done with these, give me the next" in one statement
# --------------------------------------------------------------------------- #


def _sql_words(sql: str) -> list[str]:
    return re.sub(r"--[^\n]*", "", sql).split()


@pytest.mark.parametrize("name", ["claim_one", "claim_many"])
def test_an_ack_claim_statement_is_its_claim_statement_with_the_ack_first(name: str) -> None:
    # The claim part of ack_claim_* is a copy of claim_*: a change to one must reach the
    # other. Taking away the ack CTEs and the one-time filter gives the claim back.
    combined = _sql_words(queue.SQL[f"ack_{name}"])
    start = combined.index("requeued")
    assert combined[:2] == ["WITH", "acked"] and combined[start - 1] == "),"
    rest = " ".join(["WITH", *combined[start:]]).replace(" AND (SELECT ok FROM all_acked)", "")
    assert rest == " ".join(_sql_words(queue.SQL[name]))


@pytest.mark.parametrize("recipients", [1, 2])
async def test_claim_with_ack_acks_then_claims_the_next_in_order(recipients: int) -> None:
    agents = await new_agents(2)
    targets = agents[:recipients]
    ids = await queue.send_many(
        [queue.Outgoing(agents[n % recipients], "k", {"n": n}, priority=n % 3) for n in range(9)]
    )
    expected = sorted(ids, key=lambda i: (-(ids.index(i) % 3), i))
    seen: list[int] = []
    messages = await queue.claim("w", targets, limit=2)
    while messages:
        seen += [m.id for m in messages]
        previous = messages
        messages = await queue.claim("w", targets, limit=2, ack=messages)
        for m in previous:
            row = await status_of(m.id)
            assert (row["status"], row["claimed_by"], row["lease_expires_at"]) == (
                "done",
                "w",
                None,
            )
        for m in messages:
            assert (await status_of(m.id))["status"] == "claimed" and m.claimed_by == "w"
    assert seen == expected


async def test_claim_with_a_lost_ack_acks_nothing_and_claims_nothing() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(4)])
    mine = await queue.claim("w", [r], limit=2)
    async with db.connection() as c:
        # The second lease ran out (and someone else may be redoing it).
        await c.execute(
            "UPDATE agent.messages SET lease_expires_at = now() - interval '1 second' "
            "WHERE id = $1",
            mine[1].id,
        )
        before = await snapshot(c, "messages")
    with pytest.raises(LeaseLost) as err:
        await queue.claim("w", [r], limit=2, ack=mine)
    assert err.value.message_ids == [mine[1].id] and err.value.rule == "lease_lost"
    async with db.connection() as c:
        assert await snapshot(c, "messages") == before  # the first one not acked either


async def test_claim_with_ack_repeated_after_an_ambiguous_error_acks_once_and_claims() -> None:
    # The first try committed (ack + claim) but its reply was lost: the worker repeats
    # the same call. The ack is not refused (it happened under this claim), the next
    # messages are claimed; what the lost reply claimed comes back when its lease ends.
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    [m] = await queue.claim("w", [r])
    [lost_reply] = await queue.claim("w", [r], ack=m)
    [again] = await queue.claim("w", [r], ack=m)
    assert again.id not in (m.id, lost_reply.id)
    assert (await status_of(m.id))["status"] == "done"
    # Acked by identity: another worker's ack, or a later attempt, is still refused.
    with pytest.raises(LeaseLost):
        await queue.claim("other", [r], ack=m)
    with pytest.raises(LeaseLost):
        await queue.claim("w", [r], ack=dataclasses.replace(m, attempts=2))


async def test_claim_with_ack_inside_a_caller_transaction_leaves_it_usable(
    database_url: str,
) -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    [m] = await queue.claim("w", [r])
    c = await asyncpg.connect(database_url)
    try:
        async with c.transaction():
            with pytest.raises(LeaseLost):
                await queue.claim("thief", [r], ack=m, conn=c)
            assert await c.fetchval("SELECT 1") == 1  # a savepoint took the refusal
            [nxt] = await queue.claim("w", [r], ack=m, conn=c)
            raise_rollback = nxt.id
            assert (await c.fetchval(
                "SELECT status FROM agent.messages WHERE id = $1", m.id)) == "done"  # fmt: skip
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    finally:
        await c.close()
    # The caller rolled back: neither the ack nor the claim happened.
    assert (await status_of(m.id))["status"] == "claimed"
    assert (await status_of(raise_rollback))["status"] == "pending"


async def test_claim_with_ack_and_nothing_to_claim_still_acks() -> None:
    [r] = await new_agents(1)
    await queue.send(r, "k")
    [m] = await queue.claim("w", [r])
    assert await queue.claim("w", [r], ack=[m]) == []
    assert (await status_of(m.id))["status"] == "done"


async def test_workers_draining_with_claim_ack_take_each_message_once() -> None:
    recipients = await new_agents(2)
    total = 300
    await queue.send_many(
        [queue.Outgoing(recipients[n % 2], "k", {"n": n}, priority=n % 4) for n in range(total)]
    )
    seen: defaultdict[int, int] = defaultdict(int)

    async def worker(name: str, batch: int, targets: list[uuid.UUID]) -> None:
        messages = await queue.claim(name, targets, limit=batch)
        while messages:
            for m in messages:
                seen[m.id] += 1
            messages = await queue.claim(name, targets, limit=batch, ack=messages)

    await asyncio.wait_for(
        asyncio.gather(
            # claim_many for some workers, claim_one (either recipient) for the others
            *(worker(f"w{k}", 1 + k % 3, [recipients[k % 2]] if k % 4 else recipients)
              for k in range(8))
        ),
        120,
    )  # hang guard  # fmt: skip
    assert len(seen) == total and set(seen.values()) == {1}
    async with db.connection() as c:
        done = await c.fetchval(
            "SELECT count(*) FROM agent.messages WHERE recipient_id = ANY($1) AND status = 'done'",
            recipients,
        )
    assert done == total


async def test_the_lease_checked_statements_keep_their_generic_plan(database_url: str) -> None:
    # A list of ids written as "ANY($1)" (and a claim's "LIMIT $2") made PostgreSQL
    # plan ack/extend/fail/claim again at every call (a custom plan for the call's
    # values always looked cheaper); the statements hide those values from the planner
    # so the prepared statement's generic plan is kept.
    [r] = await new_agents(1)
    c = await asyncpg.connect(database_url)
    try:
        # With statistics saying a recipient has many messages waiting (one busy agent),
        # a claim's "LIMIT 1" made the custom plan look much cheaper than the generic one.
        await c.execute(
            "INSERT INTO agent.messages (recipient_id, kind) "
            "SELECT $1, 'k' FROM generate_series(1, 20000)",
            r,
        )
        await c.execute(
            "ALTER TABLE agent.messages ALTER COLUMN recipient_id SET (n_distinct = 1);"
            "ANALYZE agent.messages"
        )
        [m] = await queue.claim("w", [r], conn=c)
        for _ in range(8):
            await queue.extend_lease(m, "w", conn=c)
            [m] = await queue.claim("w", [r], ack=m, conn=c)
            await queue.fail(m, "w", "x", retry=False, conn=c)
            [m] = await queue.claim("w", [r], conn=c)
            await queue.ack(m, "w", conn=c)
            [m] = await queue.claim("w", [r], conn=c)
        plans = {
            row["statement"]: (row["generic_plans"], row["custom_plans"])
            for row in await c.fetch(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            )
        }
    finally:
        await c.execute("DELETE FROM agent.messages WHERE recipient_id = $1", r)
        await c.execute(
            "ALTER TABLE agent.messages ALTER COLUMN recipient_id RESET (n_distinct);"
            "ANALYZE agent.messages"
        )
        await c.close()
    for sql in (queue.ACK, queue.EXTEND, queue.FAIL, queue.ACK_CLAIM_ONE, queue.CLAIM_ONE):
        generic, custom = plans[sql]
        assert generic > 0 and custom <= 5, (sql.split()[:6], generic, custom)


async def test_a_consumer_ack_claims_the_next_batch_in_the_same_statement() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    async with queue.Consumer([r], batch_size=1, poll_interval=3600) as consumer:
        iterator = aiter(consumer)
        first = await anext(iterator)
        await consumer.ack(first)
        # Before the iteration asks again, the next message is already this consumer's.
        async with db.connection() as c:
            rows = await c.fetch(
                "SELECT id, status, claimed_by FROM agent.messages WHERE recipient_id = $1 "
                "ORDER BY id",
                r,
            )
        assert [(row["status"], row["claimed_by"]) for row in rows] == [
            ("done", consumer.worker_id),
            ("claimed", consumer.worker_id),
            ("pending", None),
        ]
        second = await anext(iterator)
        assert second.id == rows[1]["id"]
        await consumer.ack(second)  # prefetches the third ...
    # ... which stop() gave back, its attempt not spent.
    third = await status_of(rows[2]["id"])
    assert (third["status"], third["attempts"], third["claimed_by"]) == ("pending", 0, None)


async def test_a_consumer_ack_inside_a_transaction_claims_nothing_more(database_url: str) -> None:
    # A claim made in the handler's transaction would be undone by its rollback while
    # the consumer buffered the messages: inside a transaction the ack only acks.
    from piccolo.engine import engine_finder

    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    async with queue.Consumer([r], batch_size=1, poll_interval=3600) as consumer:
        iterator = aiter(consumer)
        first = await anext(iterator)
        engine = engine_finder()
        assert engine is not None
        async with engine.transaction():
            await consumer.ack(first)
        second = await anext(iterator)
        c = await asyncpg.connect(database_url)
        try:
            async with c.transaction():
                await consumer.ack(second, conn=c)
        finally:
            await c.close()
        async with db.connection() as conn:
            statuses = await conn.fetch(
                "SELECT status FROM agent.messages WHERE recipient_id = $1 ORDER BY id", r
            )
        assert [row["status"] for row in statuses] == ["done", "done", "pending"]


@pytest.mark.parametrize("recipients", [1, 2])
async def test_claim_with_a_lost_ack_and_nothing_to_claim_acks_nothing(recipients: int) -> None:
    # The ack's check runs before the claim's scan, not per row it finds: with nothing
    # pending for the claimed recipients the refusal still comes and the held one stays.
    a, b, empty, other = await new_agents(4)
    await queue.send_many([queue.Outgoing(a, "k"), queue.Outgoing(b, "k")])
    [held] = await queue.claim("w", [a])
    [lost] = await queue.claim("w", [b])
    async with db.connection() as c:
        await c.execute(
            "UPDATE agent.messages SET lease_expires_at = now() - interval '1 second' "
            "WHERE id = $1",
            lost.id,
        )
    with pytest.raises(LeaseLost) as err:
        await queue.claim("w", [empty, other][:recipients], ack=[held, lost])
    assert err.value.message_ids == [lost.id]
    assert (await status_of(held.id))["status"] == "claimed"


async def test_a_lost_ack_claims_nothing_even_when_the_limit_is_zero(database_url: str) -> None:
    # The database, not only the API's validation of limit, holds the promise: the
    # check runs whatever the claim part finds (a LIMIT 0 never runs its child).
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k")] * 2)
    held, stolen = await queue.claim("w", [r], limit=2)
    c = await asyncpg.connect(database_url)
    try:
        await c.execute("UPDATE agent.messages SET claimed_by = 'thief' WHERE id = $1", stolen.id)
        for sql, who in ((queue.ACK_CLAIM_ONE, r), (queue.ACK_CLAIM_MANY, [r])):
            with pytest.raises(asyncpg.CheckViolationError, match="lease_lost"):
                await c.fetch(
                    sql, who, 0, "w", queue.DEFAULT_LEASE,
                    [held.id, stolen.id], [held.attempts, stolen.attempts],
                )  # fmt: skip
    finally:
        await c.close()
    assert (await status_of(held.id))["status"] == "claimed"


async def test_a_message_listed_twice_is_one_lease_not_a_lost_one() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k")] * 3)
    a, b = await queue.claim("w", [r], limit=2)
    await queue.extend_lease([a, a], "w")
    [c] = await queue.claim("w", [r], ack=[a, b, a])
    await queue.ack([c, c], "w")
    assert {(await status_of(m.id))["status"] for m in (a, b, c)} == {"done"}


async def test_a_cancelled_prefetching_ack_still_lands_and_stop_gives_the_batch_back() -> None:
    # A handler cancelled while its ack (which claims the next batch) is in flight: the
    # statement runs to its end, its batch is buffered, and stop() gives it back - no
    # message stays claimed until its lease ends, no attempt is spent.
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(4)])
    consumer = queue.Consumer([r], batch_size=2, poll_interval=3600)
    await consumer.start()
    iterator = aiter(consumer)
    first = await anext(iterator)
    second = await anext(iterator)
    await consumer.ack(first)  # the buffer is empty now
    acking = asyncio.create_task(consumer.ack(second))
    await asyncio.sleep(0)  # the ack's statement is on its way
    acking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await acking
    await consumer.stop()
    async with db.connection() as c:
        rows = await c.fetch(
            "SELECT id, status, attempts FROM agent.messages WHERE recipient_id = $1 ORDER BY id",
            r,
        )
    by_id = {row["id"]: (row["status"], row["attempts"]) for row in rows}
    assert by_id.pop(first.id)[0] == "done" and by_id.pop(second.id)[0] == "done"
    assert set(by_id.values()) == {("pending", 0)}


async def test_stop_waits_for_an_ack_claiming_the_next_batch() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(3)])
    consumer = queue.Consumer([r], batch_size=1, poll_interval=3600)
    await consumer.start()
    first = await anext(aiter(consumer))
    acking = asyncio.create_task(consumer.ack(first))
    await asyncio.sleep(0)
    await consumer.stop()  # while the ack (and its claim) may still be running
    await acking
    async with db.connection() as c:
        claimed = await c.fetchval(
            "SELECT count(*) FROM agent.messages WHERE recipient_id = $1 AND status = 'claimed'",
            r,
        )
    assert claimed == 0 and (await status_of(first.id))["status"] == "done"


async def test_a_consumer_without_prefetch_acks_only() -> None:
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(2)])
    async with queue.Consumer([r], batch_size=1, poll_interval=3600, prefetch=False) as consumer:
        await consumer.ack(await anext(aiter(consumer)))
        async with db.connection() as c:
            statuses = await c.fetch(
                "SELECT status FROM agent.messages WHERE recipient_id = $1 ORDER BY id", r
            )
        assert [row["status"] for row in statuses] == ["done", "pending"]


async def test_claims_and_acks_do_not_call_the_recipient_trigger(database_url: str) -> None:
    # The messages_recipient function matters on a new message, a change of recipient or
    # run, and a return to pending; the trigger's WHEN keeps it off claims and acks (the
    # hot path). Counted by PostgreSQL itself, inside one transaction.
    [r] = await new_agents(1)
    c = await asyncpg.connect(database_url)
    try:
        async with c.transaction():
            await c.execute("SET LOCAL track_functions = 'pl'")

            async def calls() -> int:
                return await c.fetchval(
                    "SELECT pg_stat_get_xact_function_calls('agent.messages_recipient'::regproc)"
                )

            await queue.send_many([queue.Outgoing(r, "k")] * 3, conn=c)
            sent = await calls()
            assert sent == 3
            [m] = await queue.claim("w", [r], conn=c)
            [m2] = await queue.claim("w", [r], ack=m, conn=c)
            await queue.extend_lease(m2, "w", conn=c)
            await queue.ack(m2, "w", conn=c)
            assert await calls() == sent  # none for two claims, two acks, a heartbeat
            [m3] = await queue.claim("w", [r], conn=c)
            await queue.release(m3, "w", conn=c)  # back to pending: checked again
            assert await calls() == sent + 1
    finally:
        await c.close()


async def test_a_consumer_iterated_inside_a_piccolo_transaction_claims_outside_it() -> None:
    # Its claim must not join the caller's transaction: a rollback would undo the claim
    # while the consumer still buffered (and handed out) the batch.
    from piccolo.engine import engine_finder

    engine = engine_finder()
    assert engine is not None
    [r] = await new_agents(1)
    await queue.send_many([queue.Outgoing(r, "k", {"n": n}) for n in range(2)])
    async with queue.Consumer([r], batch_size=2, poll_interval=3600, prefetch=False) as consumer:
        iterator = aiter(consumer)
        with pytest.raises(RuntimeError):
            async with engine.transaction():
                first = await anext(iterator)
                raise RuntimeError("roll back")
        second = await anext(iterator)
        rows = {m.id: await status_of(m.id) for m in (first, second)}
        assert {(row["status"], row["claimed_by"]) for row in rows.values()} == {
            ("claimed", consumer.worker_id)
        }
        await consumer.ack(first)
        await consumer.ack(second)
