"""Budgets: reserve, commit, release, renew, charge - never past ``allocated``.

A reservation is a row of ``budget_reservations`` with an id, a holder, a state
(held, then committed / released / expired, each final) and a lease. The database keeps
each budget's books from those rows: triggers move ``reserved`` and ``used`` when a row
is inserted or leaves ``held``, and refuse any other write of ``used`` or ``reserved``
(``budget_books_derived``), so raw SQL cannot unbalance them either. At every moment
``reserved`` = the held reservations + the live children's allocations.

What a worker may rely on:

* **Atomic, serialised.** Each operation is one statement that locks the budget row
  before its reservations (the lock order in :mod:`agent_app.db`): however many
  workers reserve at once, ``used + reserved`` never exceeds ``allocated``. A deadlock
  or serialization failure is retried inside the call, then raised as
  :class:`~agent_app.errors.Contention`.
* **By identity, safe to repeat.** :func:`commit` and :func:`release` act on the
  reservation's id. A repeat (after a :class:`~agent_app.errors.DatabaseUnavailable`,
  say) returns the first outcome and never moves the books twice: commit with the same
  actual returns the committed row, release returns the released row. Anything else
  on a closed reservation raises :class:`~agent_app.errors.ReservationClosed` naming its
  state (release after commit, commit after release, commit with another actual).
* **Holders.** Only the holder named at :func:`reserve` (default: this process,
  :func:`default_holder`) may commit, release or renew; anyone else gets
  :class:`~agent_app.errors.NotReservationHolder`. Passing the :class:`Reservation`
  itself acts as its holder.
* **Leases, without a janitor.** A held reservation whose lease ended is expired - its
  amount returned - by the next reserve, charge, commit, release, renew or
  :func:`books` on that budget, in the same statement, so it never counts against a
  new reservation. A worker that died holding one frees it when its lease ends; a
  live worker that needs longer calls :func:`renew`. Acting on an expired reservation
  raises :class:`~agent_app.errors.ReservationExpired`.
* **Finishing an agent** releases its held reservations (expired if their lease had
  ended) and returns its budgets to the parent; its budgets are closed afterwards
  (``budget_closed``).
* **Refusals** raise a typed error naming the rule and the value -
  :class:`~agent_app.errors.BudgetExceeded` carries ``asked`` and ``left`` (exactly
  what was free when the refusal was decided) - and change nothing.
* **Composition.** Every operation works inside a caller's asyncpg transaction or
  Piccolo's ``DB.transaction()`` (in a savepoint); if the caller rolls back, the
  reservation is as it was and the call may be made again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import socket
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from agent_app import db, rows, sqlfile
from agent_app.enums import TERMINAL_AGENT_STATUSES, BudgetResource, ReservationState
from agent_app.errors import (
    AgentAppError,
    BudgetExceeded,
    Contention,
    NotFound,
    NotReservationHolder,
    ReservationClosed,
    ReservationExpired,
    RuleViolation,
    translate,
)
from agent_app.rows import extra, from_record, from_records, row_type
from agent_app.tables import Agent, Budget, BudgetReservation
from agent_app.validation import validated

#: How long a reservation is held unless renewed: a worker that dies frees it then.
DEFAULT_LEASE = dt.timedelta(minutes=10)

#: The longest lease accepted (a reservation is for one piece of work, not for ever).
MAX_LEASE = dt.timedelta(days=7)

#: The longest holder name (the column is a varchar(255)).
MAX_HOLDER = 255


def default_holder() -> str:
    """The holder used when a call names none: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@row_type(BudgetReservation)
@dataclass(frozen=True)
class Reservation:
    """One reservation, as the database holds it. Give it (or its ``id``) to
    :func:`commit`, :func:`release` or :func:`renew`."""

    id: uuid.UUID
    agent_id: uuid.UUID
    resource: BudgetResource
    budget_id: uuid.UUID
    amount: Decimal
    holder: str
    state: ReservationState
    actual: Decimal | None
    lease_expires_at: dt.datetime
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def held(self) -> bool:
        return self.state is ReservationState.held


@row_type(Budget, held=extra())
@dataclass(frozen=True)
class Books:
    """One budget's figures: ``allocated = used + reserved + free``. ``held`` is the part
    of ``reserved`` held by the agent's own live reservations; the rest is carved out for
    its live children."""

    agent_id: uuid.UUID
    resource: BudgetResource
    allocated: Decimal
    used: Decimal
    reserved: Decimal
    held: Decimal = Decimal(0)

    @property
    def free(self) -> Decimal:
        return self.allocated - self.used - self.reserved


@row_type(Budget, budget_id=Budget.id, expected=extra())
@dataclass(frozen=True)
class Imbalance:
    """A budget whose ``reserved`` differs from what its rows say (see :func:`audit`)."""

    budget_id: uuid.UUID
    agent_id: uuid.UUID
    resource: BudgetResource
    reserved: Decimal
    expected: Decimal


SQL = sqlfile.load("budgets")
RESERVE = SQL["reserve"]
CHARGE = SQL["charge"]
ACT = SQL["act"]
BOOKS = SQL["books"]
AUDIT = SQL["audit"]

_TERMINAL = [s.value for s in TERMINAL_AGENT_STATUSES]

# Plain reads, built with Piccolo and compiled once, on first use (compiling costs Piccolo
# as much client CPU as the read takes; a join through a foreign key, several times more).
# build's arguments are the parameters $1, $2.

#: Reservation $1.
GET = db.Compiled(
    lambda reservation: rows.select(Reservation).where(BudgetReservation.id == reservation),
    params=1,
)

#: The status of the agent owning budget ($1 the agent, $2 the resource); no row without
#: such a budget.
OWNER_STATUS = db.Compiled(
    lambda agent, resource: (
        Budget.select(rows.through(Budget.agent_id, Agent.status))
        .where(Budget.agent_id == agent, Budget.resource == resource)
        .first()
    ),
    params=2,
)


# --------------------------------------------------------------------------- #
# Validation and errors
# --------------------------------------------------------------------------- #


def _amount(value: Decimal | int | str, what: str = "amount", *, positive: bool = True) -> Decimal:
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or (positive and amount == 0):
        rule = "amount_positive" if what == "amount" else "actual_when_committed"
        bound = "> 0" if positive else ">= 0"
        raise RuleViolation(
            rule, f"{rule}: {what} must be a finite number {bound}, got {value!r}",
            table=BudgetReservation._meta.tablename,
        )  # fmt: skip
    return amount


def _holder(holder: str | None, reservation: Reservation | uuid.UUID | None = None) -> str:
    if holder is None:
        return reservation.holder if isinstance(reservation, Reservation) else default_holder()
    if not isinstance(holder, str) or not holder.strip() or len(holder) > MAX_HOLDER:
        raise RuleViolation(
            "holder_not_empty",
            f"holder_not_empty: a holder is a non-blank name of at most {MAX_HOLDER} "
            f"characters, got {holder!r}",
            table=BudgetReservation._meta.tablename,
        )
    return holder


def _lease(lease: dt.timedelta) -> dt.timedelta:
    value = lease if isinstance(lease, dt.timedelta) else dt.timedelta(0)
    if not dt.timedelta(0) < value <= MAX_LEASE:
        raise RuleViolation(
            "reservation_lease",
            f"reservation_lease: a lease is longer than 0 and at most {MAX_LEASE}, got {lease!r}",
            table=BudgetReservation._meta.tablename,
        )
    return value


def _id(reservation: Reservation | uuid.UUID) -> uuid.UUID:
    if isinstance(reservation, Reservation):
        return reservation.id
    if isinstance(reservation, uuid.UUID):
        return reservation
    try:
        return uuid.UUID(str(reservation))
    except ValueError:
        raise NotFound(f"no reservation {reservation!r} (not a uuid)") from None


def _refusal(error: asyncpg.PostgresError) -> AgentAppError | asyncpg.PostgresError:
    """A database refusal as the typed error naming its rule and values."""
    rule = getattr(error, "constraint_name", None)
    message = str(error)
    try:
        d: dict[str, Any] = json.loads(getattr(error, "detail", None) or "{}")
    except ValueError:
        d = {}
    if rule == "budget_limits" and "asked" in d:
        return BudgetExceeded(
            uuid.UUID(d["agent"]), d["resource"], Decimal(str(d["asked"])),
            Decimal(str(d["left"])), by=d["by"],
        )  # fmt: skip
    if rule == "reservation_closed" and "state" in d:
        actual = None if d.get("actual") is None else Decimal(str(d["actual"]))
        return ReservationClosed(uuid.UUID(d["id"]), d["state"], actual, message)
    if rule == "reservation_expired" and "id" in d:
        return ReservationExpired(uuid.UUID(d["id"]), d["lease_expires_at"], message)
    if rule == "reservation_holder" and "holder" in d:
        return NotReservationHolder(uuid.UUID(d["id"]), d["holder"], d["asked"], message)
    return translate(error)


async def _rows(sql: str, *args: Any, conn: asyncpg.Connection | None) -> list[asyncpg.Record]:
    """One statement: in a savepoint inside a caller's transaction, retried after a
    deadlock or serialization failure (then :class:`Contention`), refusals typed."""
    async with db.connection(conn) as c:
        for attempt in range(1, db.RETRIES + 1):
            try:
                if c.is_in_transaction():
                    async with c.transaction():
                        return list(await c.fetch(sql, *args))
                return list(await c.fetch(sql, *args))
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as e:
                if attempt == db.RETRIES:
                    raise Contention(
                        f"gave up after {attempt} attempts: {type(e).__name__}: {e}"
                    ) from e
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except asyncpg.IntegrityConstraintViolationError as e:
                refusal = _refusal(e)
                if refusal is e:
                    raise
                raise refusal from e
    raise AssertionError("unreachable")


async def _row(sql: str, *args: Any, conn: asyncpg.Connection | None) -> asyncpg.Record | None:
    rows = await _rows(sql, *args, conn=conn)
    return rows[0] if rows else None


def _no_budget(agent_id: uuid.UUID, resource: BudgetResource) -> NotFound:
    return NotFound(f"agent {agent_id} has no {resource.value} budget")


# --------------------------------------------------------------------------- #
# Operations
# --------------------------------------------------------------------------- #


@validated
async def reserve(
    agent_id: uuid.UUID,
    resource: BudgetResource,
    amount: Decimal | int | str,
    *,
    holder: str | None = None,
    lease: dt.timedelta = DEFAULT_LEASE,
    conn: asyncpg.Connection | None = None,
) -> Reservation:
    """Hold ``amount`` (> 0) of the agent's free budget for ``holder`` until ``lease``
    has passed, unless renewed. Returns the held
    :class:`Reservation`. Raises :class:`BudgetExceeded` (asked, left) when less is free
    (after expiring overdue reservations), :class:`NotFound` without such a budget,
    :class:`RuleViolation` ``budget_closed`` once the agent finished."""
    resource = BudgetResource(resource)
    row = await _row(
        RESERVE, agent_id, resource.value, _amount(amount), _holder(holder), _lease(lease),
        conn=conn,
    )  # fmt: skip
    if row is None:
        raise _no_budget(agent_id, resource)
    return from_record(Reservation, row)


async def _act(
    reservation: Reservation | uuid.UUID,
    action: str,
    holder: str | None,
    actual: Decimal | None,
    lease: dt.timedelta | None,
    conn: asyncpg.Connection | None,
) -> Reservation:
    rid = _id(reservation)
    row = await _row(ACT, rid, _holder(holder, reservation), action, actual, lease, conn=conn)
    if row is None:
        raise NotFound(f"no reservation {rid}")
    return from_record(Reservation, row)


@validated
async def commit(
    reservation: Reservation | uuid.UUID,
    actual: Decimal | int | str,
    *,
    holder: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Reservation:
    """Turn a held reservation into usage: ``reserved -= amount``, ``used += actual``
    (``actual`` may exceed the amount if the budget has room for the difference, else
    :class:`BudgetExceeded`). Returns the committed row; a repeat with the same
    ``actual`` returns it again and changes nothing. Raises
    :class:`ReservationClosed` (released, or committed with another actual),
    :class:`ReservationExpired`, :class:`NotReservationHolder`, :class:`NotFound`."""
    value = _amount(actual, "actual", positive=False)
    return await _act(reservation, "commit", holder, value, None, conn)


@validated
async def release(
    reservation: Reservation | uuid.UUID,
    *,
    holder: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Reservation:
    """Give a held reservation back unused. Returns the released row; a repeat returns
    it again and changes nothing. Raises :class:`ReservationClosed` (committed),
    :class:`ReservationExpired`, :class:`NotReservationHolder`, :class:`NotFound`."""
    return await _act(reservation, "release", holder, None, None, conn)


@validated
async def renew(
    reservation: Reservation | uuid.UUID,
    lease: dt.timedelta = DEFAULT_LEASE,
    *,
    holder: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Reservation:
    """Extend a held reservation's lease to now + ``lease``. Raises
    :class:`ReservationExpired` if it already ended (the amount is gone: reserve again),
    :class:`ReservationClosed`, :class:`NotReservationHolder`, :class:`NotFound`."""
    return await _act(reservation, "renew", holder, None, _lease(lease), conn)


@validated
async def charge(
    agent_id: uuid.UUID,
    resource: BudgetResource,
    amount: Decimal | int | str,
    *,
    holder: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Reservation | None:
    """Record usage directly (no reservation), if the budget has room: a reservation
    row born committed. Returns it (``None`` for 0, which records nothing). Raises
    :class:`BudgetExceeded`, :class:`NotFound`, ``budget_closed``. Not idempotent: a
    charge repeated after an ambiguous error may count twice - reserve and commit
    where that matters."""
    resource = BudgetResource(resource)
    value = _amount(amount, positive=False)
    if value == 0:
        owner = await db.fetchrow(OWNER_STATUS.sql, agent_id, resource.value, conn=conn)
        if owner is None:
            raise _no_budget(agent_id, resource)
        if (status := owner[0]) in _TERMINAL:
            raise RuleViolation(
                "budget_closed",
                f"budget_closed: agent {agent_id} is {status}; its {resource.value} "
                "budget was returned to its parent",
                table=Budget._meta.tablename,
            )
        return None
    row = await _row(CHARGE, agent_id, resource.value, value, _holder(holder), conn=conn)
    if row is None:
        raise _no_budget(agent_id, resource)
    return from_record(Reservation, row)


@validated
async def get(
    reservation: Reservation | uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> Reservation:
    """The reservation as the database holds it now (a held one may be overdue: it is
    expired by the next operation on its budget)."""
    rid = _id(reservation)
    row = await db.fetchrow(GET.sql, rid, conn=conn)
    if row is None:
        raise NotFound(f"no reservation {rid}")
    return from_record(Reservation, row)


@validated
async def books(agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> list[Books]:
    """The agent's budgets, one per resource, read in one statement (one snapshot).
    Overdue reservations are expired first (or, in a read-only transaction, shown as
    if they were)."""
    return from_records(Books, await _rows(BOOKS, agent_id, conn=conn))


@validated
async def audit(
    agent_ids: list[uuid.UUID] | None = None, *, conn: asyncpg.Connection | None = None
) -> list[Imbalance]:
    """Budgets (of ``agent_ids``, or all) whose ``reserved`` is not their held
    reservations plus their live children's allocations, read in one snapshot. The
    triggers keep this list empty; tests and operators check it."""
    async with db.snapshot(conn) as c:
        found = await c.fetch(AUDIT, agent_ids)
    return from_records(Imbalance, found)
