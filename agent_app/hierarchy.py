"""The agent tree: spawn children with budgets, finish agents, walk the tree.

What a worker may rely on:

* :func:`spawn_child` is one transaction: the child and its budgets exist together,
  each budget carved out of the parent's budget of the same resource, or nothing
  exists (:class:`~agent_app.errors.DepthLimitExceeded`,
  :class:`~agent_app.errors.BudgetExceeded` with what was asked and what was left,
  :class:`~agent_app.errors.AlreadyFinished` for a finished parent).
* :func:`finish` is one transaction: live descendants are terminated deepest first,
  everyone's pending messages are cancelled, every budget goes back up the tree
  (reserved -= allocated, used += used), then the agent takes its final status.
  Finishing twice raises :class:`~agent_app.errors.AlreadyFinished` and changes
  nothing. It completes while children are being spawned under the subtree and
  messages sent into it: those land before it (and are finished/cancelled with the
  rest) or are refused after it.
* Every operation here takes its row locks in the lock order of :mod:`agent_app.db`,
  so spawns, sends, finishes and reservations never deadlock each other; a deadlock or
  serialization failure that still happens (with other writers) is retried, then
  raised as :class:`~agent_app.errors.Contention` (retryable).
* :func:`subtree` and :func:`ancestors` are single indexed lookups in the closure table.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby

import asyncpg

from agent_app import db, queue
from agent_app.enums import TERMINAL_AGENT_STATUSES, AgentStatus, AgentType, BudgetResource
from agent_app.errors import (
    AgentAppError,
    AlreadyFinished,
    BudgetExceeded,
    DepthLimitExceeded,
    NotFound,
)
from agent_app.tables import MAX_AGENT_DEPTH
from agent_app.validation import validated

_TERMINAL = [s.value for s in TERMINAL_AGENT_STATUSES]
_COLUMNS = "id, run_id, parent_id, depth_level, agent_type, name, status"


@dataclass(frozen=True)
class AgentInfo:
    id: uuid.UUID
    run_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    depth_level: int
    agent_type: AgentType
    name: str
    status: AgentStatus

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_AGENT_STATUSES


@dataclass(frozen=True)
class Finished:
    """What :func:`finish` did."""

    agent: AgentInfo
    terminated: list[uuid.UUID]  # live descendants, deepest first
    cancelled_messages: int


def _info(row: asyncpg.Record) -> AgentInfo:
    return AgentInfo(
        row["id"],
        row["run_id"],
        row["parent_id"],
        row["depth_level"],
        AgentType(row["agent_type"]),
        row["name"],
        AgentStatus(row["status"]),
    )


INSERT_AGENT = f"""
INSERT INTO agent.agents (run_id, parent_id, agent_type, name, status)
VALUES ($1, $2, $3, $4, $5)
RETURNING {_COLUMNS}
"""

INSERT_BUDGET = """
INSERT INTO agent.budgets (agent_id, resource, allocated) VALUES ($1, $2, $3)
"""


async def _add_budgets(
    c: asyncpg.Connection, agent: AgentInfo, budgets: Mapping[BudgetResource, Decimal | int]
) -> None:
    # Resource order, whatever the caller's mapping order: each insert locks the parent's
    # budget of that resource (budgets_guard), and the lock order says ORDER BY resource.
    wanted = sorted(
        ((BudgetResource(r), Decimal(a)) for r, a in budgets.items()), key=lambda x: x[0].value
    )
    for resource, value in wanted:
        try:
            async with c.transaction():
                await c.execute(INSERT_BUDGET, agent.id, resource.value, value)
        except asyncpg.CheckViolationError as e:
            if e.constraint_name == "budget_limits" and agent.parent_id is not None:
                left = await c.fetchval(
                    "SELECT allocated - used - reserved FROM agent.budgets "
                    "WHERE agent_id = $1 AND resource = $2",
                    agent.parent_id,
                    resource.value,
                )
                if left is not None and value >= 0:
                    raise BudgetExceeded(
                        agent.parent_id, resource.value, value, left,
                        by=f"was asked by child {agent.name!r} for",
                    ) from e  # fmt: skip
            raise


@validated
async def create_root(
    agent_type: AgentType,
    name: str,
    *,
    run_id: uuid.UUID | None = None,
    budgets: Mapping[BudgetResource, Decimal | int] | None = None,
    status: AgentStatus = AgentStatus.running,
    conn: asyncpg.Connection | None = None,
) -> AgentInfo:
    """Create a root agent (depth 0), usually a run's orchestrator, with its budgets.
    One transaction (a savepoint inside the caller's): the agent and all its budgets,
    or nothing."""
    kind, state = AgentType(agent_type).value, AgentStatus(status).value

    async def create(c: asyncpg.Connection) -> AgentInfo:
        agent = _info(await c.fetchrow(INSERT_AGENT, run_id, None, kind, name, state))
        await _add_budgets(c, agent, budgets or {})
        return agent

    return await db.run(create, conn)


@validated
async def spawn_child(
    parent_id: uuid.UUID,
    agent_type: AgentType,
    name: str,
    *,
    budgets: Mapping[BudgetResource, Decimal | int] | None = None,
    run_id: uuid.UUID | None = None,
    status: AgentStatus = AgentStatus.running,
    conn: asyncpg.Connection | None = None,
) -> AgentInfo:
    """Create a child of ``parent_id`` one level deeper, in the parent's run unless
    ``run_id`` says otherwise, with ``budgets`` reserved out of the parent's.

    Locks (see :mod:`agent_app.db`): the parent ``FOR SHARE`` - so it cannot finish
    until the child exists, and a parent that finished first refuses with
    :class:`~agent_app.errors.AlreadyFinished` - then the parent's budgets in resource
    order, whatever the order of ``budgets``."""
    kind, state = AgentType(agent_type).value, AgentStatus(status).value

    async def spawn(c: asyncpg.Connection) -> AgentInfo:
        parent = await c.fetchrow(
            f"SELECT {_COLUMNS} FROM agent.agents WHERE id = $1 FOR SHARE", parent_id
        )
        if parent is None:
            raise NotFound(f"no agent {parent_id}")
        p = _info(parent)
        if p.finished:
            raise AlreadyFinished(p.id, p.status.value)
        if p.depth_level >= MAX_AGENT_DEPTH:
            raise DepthLimitExceeded(p.id, MAX_AGENT_DEPTH)
        child = _info(await c.fetchrow(INSERT_AGENT, run_id or p.run_id, p.id, kind, name, state))
        await _add_budgets(c, child, budgets or {})
        return child

    return await db.run(spawn, conn)


#: Finish, step 1: the agent itself, in the strongest mode finish needs on an agent row
#: (FOR NO KEY UPDATE: it blocks spawning under it and sending to it, both FOR SHARE,
#: but not the foreign-key checks - FOR KEY SHARE - of rows that merely refer to it).
LOCK_AGENT = f"SELECT {_COLUMNS} FROM agent.agents WHERE id = $1 FOR NO KEY UPDATE"

#: Finish, step 2, once per level: the live children of the level just locked, in id
#: order. Read after their parents are locked, so no child can be added unseen: a spawn
#: holds its parent FOR SHARE until it commits, and we waited for it.
LOCK_LIVE_CHILDREN = f"""
SELECT {_COLUMNS} FROM agent.agents
 WHERE parent_id = ANY($1::uuid[]) AND status NOT IN ({", ".join(f"'{s}'" for s in _TERMINAL)})
 ORDER BY id
   FOR NO KEY UPDATE
"""

#: Finish, step 3: every budget row the reclaim triggers will touch - the parent's,
#: the agent's, its live descendants' - parents' before children's, then by resource.
LOCK_BUDGETS = """
SELECT b.id FROM agent.budgets b JOIN agent.agents a ON a.id = b.agent_id
 WHERE b.agent_id = ANY($1::uuid[])
 ORDER BY a.depth_level, a.id, b.resource
   FOR UPDATE OF b
"""


@validated
async def finish(
    agent_id: uuid.UUID,
    status: AgentStatus = AgentStatus.completed,
    *,
    conn: asyncpg.Connection | None = None,
) -> Finished:
    """Give the agent its terminal ``status`` (completed, failed or terminated); see the
    module docstring for what happens to its descendants, messages and budgets.

    Completes however many spawns and sends race it: it locks the agent, then each
    level of its live subtree before reading the next (a spawn holds its parent
    ``FOR SHARE``, so none slips in unseen), then the budgets in the lock order of
    :mod:`agent_app.db`. Raises :class:`~agent_app.errors.AlreadyFinished`
    (``terminal_final``) if the agent had finished, :class:`~agent_app.errors.NotFound`.
    Inside a caller's REPEATABLE READ transaction the caller's snapshot decides which
    children exist: finish the subtree in a READ COMMITTED transaction."""
    final = AgentStatus(status)
    if final not in TERMINAL_AGENT_STATUSES:
        raise AgentAppError(
            f"terminal_status: finish() needs one of {_TERMINAL}, got {final.value!r}",
            rule="terminal_status",
        )
    return await db.run(lambda c: _finish(c, agent_id, final), conn)


async def _finish(c: asyncpg.Connection, agent_id: uuid.UUID, final: AgentStatus) -> Finished:
    row = await c.fetchrow(LOCK_AGENT, agent_id)
    if row is None:
        raise NotFound(f"no agent {agent_id}")
    me = _info(row)
    if me.finished:
        raise AlreadyFinished(me.id, me.status.value)
    live: list[AgentInfo] = []
    level = [me.id]
    while level:
        found = [_info(r) for r in await c.fetch(LOCK_LIVE_CHILDREN, level)]
        live += found
        level = [a.id for a in found]
    owners = [*([me.parent_id] if me.parent_id else []), me.id, *(a.id for a in live)]
    await c.execute(LOCK_BUDGETS, owners)
    live.sort(key=lambda a: (-a.depth_level, a.id))  # deepest first
    for _, group in groupby(live, key=lambda a: a.depth_level):
        await c.execute(
            "UPDATE agent.agents SET status = 'terminated' WHERE id = ANY($1)",
            [a.id for a in group],
        )
    cancelled = await queue.cancel_pending([agent_id, *(a.id for a in live)], conn=c)
    done = await c.fetchrow(
        f"UPDATE agent.agents SET status = $2 WHERE id = $1 RETURNING {_COLUMNS}",
        agent_id,
        final.value,
    )
    return Finished(_info(done), [a.id for a in live], cancelled)


@validated
async def get(agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> AgentInfo:
    async with db.connection(conn) as c:
        row = await c.fetchrow(f"SELECT {_COLUMNS} FROM agent.agents WHERE id = $1", agent_id)
    if row is None:
        raise NotFound(f"no agent {agent_id}")
    return _info(row)


@validated
async def subtree(
    agent_id: uuid.UUID, *, max_depth: int | None = None, conn: asyncpg.Connection | None = None
) -> list[AgentInfo]:
    """All descendants (not the agent itself), nearest first, optionally at most
    ``max_depth`` levels down."""
    async with db.connection(conn) as c:
        rows = await c.fetch(
            f"SELECT a.{_COLUMNS.replace(', ', ', a.')} FROM agent.hierarchies h "
            "JOIN agent.agents a ON a.id = h.child_id "
            "WHERE h.parent_id = $1 AND ($2::int IS NULL OR h.depth <= $2) "
            "ORDER BY h.depth, a.created_at, a.id",
            agent_id,
            max_depth,
        )
    return [_info(r) for r in rows]


@validated
async def ancestors(
    agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> list[AgentInfo]:
    """The agent's parent, grandparent, … up to the root."""
    async with db.connection(conn) as c:
        rows = await c.fetch(
            f"SELECT a.{_COLUMNS.replace(', ', ', a.')} FROM agent.hierarchies h "
            "JOIN agent.agents a ON a.id = h.parent_id "
            "WHERE h.child_id = $1 ORDER BY h.depth",
            agent_id,
        )
    return [_info(r) for r in rows]
