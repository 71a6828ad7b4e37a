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
  nothing. Rows are locked deepest first, so concurrent finishes of overlapping
  subtrees never deadlock.
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
    RuleViolation,
    translate,
)
from agent_app.tables import MAX_AGENT_DEPTH

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
    for resource, amount in budgets.items():
        value = Decimal(amount)
        try:
            async with c.transaction():
                await c.execute(INSERT_BUDGET, agent.id, BudgetResource(resource).value, value)
        except asyncpg.CheckViolationError as e:
            if e.constraint_name == "budget_limits" and agent.parent_id is not None:
                left = await c.fetchval(
                    "SELECT allocated - used - reserved FROM agent.budgets "
                    "WHERE agent_id = $1 AND resource = $2",
                    agent.parent_id,
                    BudgetResource(resource).value,
                )
                if left is not None and value >= 0:
                    raise BudgetExceeded(
                        agent.parent_id, BudgetResource(resource).value, value, left,
                        by=f"was asked by child {agent.name!r} for",
                    ) from e  # fmt: skip
            raise translate(e) from e


async def create_root(
    agent_type: AgentType,
    name: str,
    *,
    run_id: uuid.UUID | None = None,
    budgets: Mapping[BudgetResource, Decimal | int] | None = None,
    status: AgentStatus = AgentStatus.running,
    conn: asyncpg.Connection | None = None,
) -> AgentInfo:
    """Create a root agent (depth 0), usually a run's orchestrator, with its budgets."""
    async with db.transaction(conn) as c:
        try:
            row = await c.fetchrow(INSERT_AGENT, run_id, None, AgentType(agent_type).value, name,
                                   AgentStatus(status).value)  # fmt: skip
        except asyncpg.PostgresError as e:
            raise translate(e) from e
        agent = _info(row)
        await _add_budgets(c, agent, budgets or {})
    return agent


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
    ``run_id`` says otherwise, with ``budgets`` reserved out of the parent's."""
    async with db.transaction(conn) as c:
        # FOR SHARE: the parent cannot finish while its child is being added.
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
        try:
            row = await c.fetchrow(
                INSERT_AGENT, run_id or p.run_id, p.id, AgentType(agent_type).value, name,
                AgentStatus(status).value,
            )  # fmt: skip
        except asyncpg.PostgresError as e:
            raise translate(e) from e
        child = _info(row)
        await _add_budgets(c, child, budgets or {})
    return child


LOCK_SUBTREE = f"""
SELECT {_COLUMNS} FROM agent.agents
 WHERE id = $1 OR id IN (SELECT child_id FROM agent.hierarchies WHERE parent_id = $1)
 ORDER BY depth_level DESC, id
   FOR UPDATE
"""


async def finish(
    agent_id: uuid.UUID,
    status: AgentStatus = AgentStatus.completed,
    *,
    conn: asyncpg.Connection | None = None,
) -> Finished:
    """Give the agent its terminal ``status`` (completed, failed or terminated); see the
    module docstring for what happens to its descendants, messages and budgets."""
    final = AgentStatus(status)
    if final not in TERMINAL_AGENT_STATUSES:
        raise AgentAppError(
            f"terminal_status: finish() needs one of {_TERMINAL}, got {final.value!r}",
            rule="terminal_status",
        )
    for attempt in range(3):
        try:
            return await _finish_once(agent_id, final, conn)
        except RuleViolation as e:
            # A child was added between our lock and our update: look again.
            if e.rule != "children_finish_first" or attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _finish_once(
    agent_id: uuid.UUID, final: AgentStatus, conn: asyncpg.Connection | None
) -> Finished:
    async with db.transaction(conn) as c:
        rows = [_info(r) for r in await c.fetch(LOCK_SUBTREE, agent_id)]
        me = next((a for a in rows if a.id == agent_id), None)
        if me is None:
            raise NotFound(f"no agent {agent_id}")
        if me.finished:
            raise AlreadyFinished(me.id, me.status.value)
        live = [a for a in rows if a.id != agent_id and not a.finished]
        for _, level in groupby(live, key=lambda a: a.depth_level):  # deepest first
            await c.execute(
                "UPDATE agent.agents SET status = 'terminated' WHERE id = ANY($1)",
                [a.id for a in level],
            )
        cancelled = await queue.cancel_pending([agent_id, *(a.id for a in live)], conn=c)
        row = await c.fetchrow(
            f"UPDATE agent.agents SET status = $2 WHERE id = $1 RETURNING {_COLUMNS}",
            agent_id,
            final.value,
        )
    return Finished(_info(row), [a.id for a in live], cancelled)


async def get(agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> AgentInfo:
    async with db.connection(conn) as c:
        row = await c.fetchrow(f"SELECT {_COLUMNS} FROM agent.agents WHERE id = $1", agent_id)
    if row is None:
        raise NotFound(f"no agent {agent_id}")
    return _info(row)


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
