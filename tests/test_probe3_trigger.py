"""Probes of the split messages_recipient triggers: a finished agent never gets a
message back to pending, whatever columns the raw UPDATE also changes."""

from __future__ import annotations

import asyncpg
import pytest

from agent_app import db, hierarchy, queue
from agent_app.enums import AgentStatus, AgentType
from agent_app.errors import RuleViolation
from tests import factories


async def _finished_with_dead_message() -> tuple[int, object, object]:
    async with db.connection() as c:
        run = await factories.run(c)
    root = await hierarchy.create_root(AgentType.orchestrator, "o", run_id=run)
    child = await hierarchy.spawn_child(root.id, AgentType.coder, "c", run_id=run)
    mid = await queue.send(child.id, "k")
    [m] = await queue.claim("w", [child.id])
    await queue.fail(m, "w", "boom", retry=False)
    await hierarchy.finish(child.id, AgentStatus.terminated)
    return mid, child, root


@pytest.mark.parametrize("extra", ["", ", run_id = NULL", ", run_id = $2"])
async def test_p3_raw_return_to_pending_with_run_change_is_cancelled(extra: str) -> None:
    mid, child, _ = await _finished_with_dead_message()
    async with db.connection() as c:
        args: list[object] = [mid]
        if "$2" in extra:
            args.append(await factories.run(c))
        await c.execute(
            "UPDATE agent.messages SET status = 'pending', finished_at = NULL"
            + extra
            + " WHERE id = $1",
            *args,
        )
        status = await c.fetchval("SELECT status FROM agent.messages WHERE id = $1", mid)
    assert status == "cancelled"
    assert await queue.claim("w2", [child.id]) == []


async def test_p3_move_to_finished_refused_and_run_null_refilled() -> None:
    _, child, root = await _finished_with_dead_message()
    live_mid = await queue.send(root.id, "k")
    with pytest.raises(RuleViolation) as err:
        async with db.connection() as c:
            await c.execute(
                "UPDATE agent.messages SET recipient_id = $2 WHERE id = $1", live_mid, child.id
            )
    assert err.value.rule == "recipient_live"
    async with db.connection() as c:
        with pytest.raises(asyncpg.CheckViolationError):
            await c.execute(
                "UPDATE agent.messages SET recipient_id = $2 WHERE id = $1", live_mid, child.id
            )
        run = await c.fetchval("SELECT run_id FROM agent.messages WHERE id = $1", live_mid)
        assert run is not None
        await c.execute("UPDATE agent.messages SET run_id = NULL WHERE id = $1", live_mid)
        assert await c.fetchval("SELECT run_id FROM agent.messages WHERE id = $1", live_mid) == run
