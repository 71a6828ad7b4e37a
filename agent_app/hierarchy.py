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

from agent_app import db, queue, rows, sqlfile
from agent_app.enums import TERMINAL_AGENT_STATUSES, AgentStatus, AgentType, BudgetResource
from agent_app.errors import (
    AgentAppError,
    AlreadyFinished,
    BudgetExceeded,
    DepthLimitExceeded,
    NotFound,
)
from agent_app.rows import from_record, from_records, row_type
from agent_app.tables import MAX_AGENT_DEPTH, Agent, Budget, Hierarchy
from agent_app.validation import validated

_TERMINAL = [s.value for s in TERMINAL_AGENT_STATUSES]


@row_type(Agent)
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


@row_type(Budget)
@dataclass(frozen=True)
class _Figures:
    """What a budget holds (to say how much a refused child could have had)."""

    allocated: Decimal
    used: Decimal
    reserved: Decimal


SQL = sqlfile.load("hierarchy")
INSERT_AGENT = SQL["insert_agent"]
INSERT_BUDGET = SQL["insert_budget"]
LOCK_PARENT = SQL["lock_parent"]
LOCK_AGENT = SQL["lock_agent"]
LOCK_LIVE_CHILDREN = SQL["lock_live_children"]
LOCK_BUDGETS = SQL["lock_budgets"]
SET_STATUS = SQL["set_status"]

# Plain reads, built with Piccolo and compiled once, on first use: compiling costs Piccolo
# as much client CPU as the lookup takes (a join through a foreign key, several times
# more), and callers read agents in loops. build's arguments are the parameters $1, $2.

#: Agent $1.
GET = db.Compiled(lambda agent: rows.select(AgentInfo).where(Agent.id == agent), params=1)

#: The figures of agent $1's budget of resource $2.
FIGURES = db.Compiled(
    lambda agent, resource: rows.select(_Figures).where(
        Budget.agent_id == agent, Budget.resource == resource
    ),
    params=2,
)

#: The descendants of agent $1 at most $2 levels down, nearest first.
SUBTREE = db.Compiled(
    lambda agent, depth: (
        rows.select(AgentInfo, via=Hierarchy.child_id)
        .where(Hierarchy.parent_id == agent, Hierarchy.depth <= depth)
        .order_by(
            Hierarchy.depth, rows.through(Hierarchy.child_id, Agent.created_at), Hierarchy.child_id
        )
    ),
    params=2,
)

#: The ancestors of agent $1, its parent first.
ANCESTORS = db.Compiled(
    lambda agent: (
        rows.select(AgentInfo, via=Hierarchy.parent_id)
        .where(Hierarchy.child_id == agent)
        .order_by(Hierarchy.depth)
    ),
    params=1,
)


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
                row = await db.fetchrow(FIGURES.sql, agent.parent_id, resource.value, conn=c)
                if row is not None and value >= 0:
                    f = from_record(_Figures, row)
                    raise BudgetExceeded(
                        agent.parent_id, resource.value, value, f.allocated - f.used - f.reserved,
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
        agent = from_record(
            AgentInfo, await c.fetchrow(INSERT_AGENT, run_id, None, kind, name, state)
        )
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
        parent = await c.fetchrow(LOCK_PARENT, parent_id)
        if parent is None:
            raise NotFound(f"no agent {parent_id}")
        p = from_record(AgentInfo, parent)
        if p.finished:
            raise AlreadyFinished(p.id, p.status.value)
        if p.depth_level >= MAX_AGENT_DEPTH:
            raise DepthLimitExceeded(p.id, MAX_AGENT_DEPTH)
        row = await c.fetchrow(INSERT_AGENT, run_id or p.run_id, p.id, kind, name, state)
        child = from_record(AgentInfo, row)
        await _add_budgets(c, child, budgets or {})
        return child

    return await db.run(spawn, conn)


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
    me = from_record(AgentInfo, row)
    if me.finished:
        raise AlreadyFinished(me.id, me.status.value)
    live: list[AgentInfo] = []
    level = [me.id]
    while level:
        found = from_records(AgentInfo, await c.fetch(LOCK_LIVE_CHILDREN, level))
        live += found
        level = [a.id for a in found]
    owners = [*([me.parent_id] if me.parent_id else []), me.id, *(a.id for a in live)]
    await c.execute(LOCK_BUDGETS, owners)
    live.sort(key=lambda a: (-a.depth_level, a.id))  # deepest first
    for _, group in groupby(live, key=lambda a: a.depth_level):
        await c.execute(SET_STATUS, [a.id for a in group], AgentStatus.terminated.value)
    cancelled = await queue.cancel_pending([agent_id, *(a.id for a in live)], conn=c)
    done = await c.fetchrow(SET_STATUS, [agent_id], final.value)
    return Finished(from_record(AgentInfo, done), [a.id for a in live], cancelled)


@validated
async def get(agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> AgentInfo:
    row = await db.fetchrow(GET.sql, agent_id, conn=conn)
    if row is None:
        raise NotFound(f"no agent {agent_id}")
    return from_record(AgentInfo, row)


@validated
async def subtree(
    agent_id: uuid.UUID, *, max_depth: int | None = None, conn: asyncpg.Connection | None = None
) -> list[AgentInfo]:
    """All descendants (not the agent itself), nearest first, optionally at most
    ``max_depth`` levels down."""
    depth = MAX_AGENT_DEPTH if max_depth is None else max_depth
    return from_records(AgentInfo, await db.fetch(SUBTREE.sql, agent_id, depth, conn=conn))


@validated
async def ancestors(
    agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> list[AgentInfo]:
    """The agent's parent, grandparent, … up to the root."""
    return from_records(AgentInfo, await db.fetch(ANCESTORS.sql, agent_id, conn=conn))
