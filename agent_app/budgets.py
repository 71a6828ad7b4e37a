"""Budgets: reserve, commit, release, charge - never past ``allocated``.

What a worker may rely on:

* Each operation is one statement that locks the budget row, checks its rule and
  updates, so it is atomic and the row lock serialises concurrent workers: however
  many reserve at once against one budget, ``used + reserved`` never exceeds
  ``allocated`` (the database's ``budget_limits`` CHECK backs this up).
* A refusal raises :class:`~agent_app.errors.BudgetExceeded` with ``asked`` and
  ``left`` (exactly what was free when the refusal was decided) and changes nothing.
* A reservation is not a row: it is an amount moved into ``reserved``. If a worker
  dies holding one, the amount stays reserved until :func:`release`, or until the
  agent finishes (finishing releases all of an agent's reservations).
* Budgets of a finished agent are closed: any change raises
  :class:`~agent_app.errors.RuleViolation` (``budget_closed``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from agent_app import db
from agent_app.enums import BudgetResource
from agent_app.errors import BudgetExceeded, NotFound, RuleViolation, translate
from agent_app.validation import validated


@dataclass(frozen=True)
class Reservation:
    """An amount held against an agent's budget; give it to :func:`commit` or :func:`release`."""

    agent_id: uuid.UUID
    resource: BudgetResource
    amount: Decimal


@dataclass(frozen=True)
class Books:
    """One budget's figures: ``allocated = used + reserved + free``."""

    agent_id: uuid.UUID
    resource: BudgetResource
    allocated: Decimal
    used: Decimal
    reserved: Decimal

    @property
    def free(self) -> Decimal:
        return self.allocated - self.used - self.reserved


# Every operation: lock the budget row, decide on its current figures, update if the
# rule allows, and report the figures the decision was made on - one statement, so
# the "left" in a refusal is exactly what was left.
_GUARDED = """
WITH b AS (
    SELECT id, allocated - used - reserved AS free, reserved AS held
      FROM agent.budgets WHERE agent_id = $1 AND resource = $2
       FOR UPDATE
), u AS (
    UPDATE agent.budgets AS t SET {set}
      FROM b
     WHERE t.id = b.id AND {allowed}
    RETURNING t.id
)
SELECT b.free, b.held, EXISTS (SELECT 1 FROM u) AS done FROM b
"""
RESERVE = _GUARDED.format(set="reserved = t.reserved + $3", allowed="b.free >= $3")
COMMIT = _GUARDED.format(
    set="reserved = t.reserved - $3, used = t.used + $4",
    allowed="b.held >= $3 AND b.free + $3 - $4 >= 0",
)
RELEASE = _GUARDED.format(set="reserved = t.reserved - $3", allowed="b.held >= $3")
CHARGE = _GUARDED.format(set="used = t.used + $3", allowed="b.free >= $3")

BOOKS = """
SELECT agent_id, resource, allocated, used, reserved FROM agent.budgets
 WHERE agent_id = $1 ORDER BY resource
"""


def _amount(value: Decimal | int | str, what: str = "amount") -> Decimal:
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise RuleViolation(
            "budget_limits", f"budget_limits: {what} must be a finite number >= 0, got {value}"
        )
    return amount


async def _guarded(
    sql: str,
    agent_id: uuid.UUID,
    resource: BudgetResource,
    *args: Decimal,
    asked: Decimal,
    by: str,
    held: Decimal | None = None,
    conn: asyncpg.Connection | None,
) -> None:
    async with db.connection(conn) as c:
        try:
            row = await c.fetchrow(sql, agent_id, resource.value, *args)
        except asyncpg.PostgresError as e:
            raise translate(e) from e
    if row is None:
        raise NotFound(f"agent {agent_id} has no {resource.value} budget")
    if row["done"]:
        return
    if held is not None and row["held"] < held:
        raise RuleViolation(
            "reservation_gone",
            f"reservation_gone: agent {agent_id} holds {row['held']} {resource.value} "
            f"reserved, less than the reservation of {held} (released already, or the agent "
            "finished)",
            table="budgets",
        )
    raise BudgetExceeded(agent_id, resource.value, asked, row["free"], by=by)


@validated
async def reserve(
    agent_id: uuid.UUID,
    resource: BudgetResource,
    amount: Decimal | int | str,
    *,
    conn: asyncpg.Connection | None = None,
) -> Reservation:
    """Hold ``amount`` of the agent's free budget. Raises :class:`BudgetExceeded`
    (asked, left) when less is free, :class:`NotFound` without such a budget."""
    value = _amount(amount)
    await _guarded(
        RESERVE, agent_id, resource, value, asked=value, by="asked to reserve", conn=conn
    )
    return Reservation(agent_id, resource, value)


@validated
async def commit(
    reservation: Reservation, actual: Decimal | int | str, *, conn: asyncpg.Connection | None = None
) -> None:
    """Turn a reservation into usage: ``reserved -= reservation.amount``,
    ``used += actual``. ``actual`` may exceed the reservation if the budget has room for
    the difference; otherwise :class:`BudgetExceeded` and nothing changes."""
    value = _amount(actual, "actual")
    await _guarded(
        COMMIT,
        reservation.agent_id,
        reservation.resource,
        reservation.amount,
        value,
        asked=value,
        by="asked to use",
        held=reservation.amount,
        conn=conn,
    )


@validated
async def release(reservation: Reservation, *, conn: asyncpg.Connection | None = None) -> None:
    """Give a reservation back unused."""
    await _guarded(
        RELEASE,
        reservation.agent_id,
        reservation.resource,
        reservation.amount,
        asked=reservation.amount,
        by="asked to release",
        held=reservation.amount,
        conn=conn,
    )


@validated
async def charge(
    agent_id: uuid.UUID,
    resource: BudgetResource,
    amount: Decimal | int | str,
    *,
    conn: asyncpg.Connection | None = None,
) -> None:
    """Record usage directly (no reservation), if the budget has room."""
    value = _amount(amount)
    await _guarded(CHARGE, agent_id, resource, value, asked=value, by="asked to use", conn=conn)


@validated
async def books(agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> list[Books]:
    """The agent's budgets, one per resource."""
    async with db.connection(conn) as c:
        rows = await c.fetch(BOOKS, agent_id)
    return [
        Books(
            r["agent_id"], BudgetResource(r["resource"]), r["allocated"], r["used"], r["reserved"]
        )
        for r in rows
    ]
