"""Typed errors of the worker API.

Every refusal is a subclass of :class:`AgentAppError` carrying ``rule`` (the name of
the rule, which is also the database constraint's name where one exists) and a
message that starts with that name and says which value broke it. When one of
these is raised, the call changed nothing.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg


class AgentAppError(Exception):
    """Base class: ``rule`` names the broken rule. ``retryable`` says whether repeating
    the same call may succeed (a fault, not a refusal)."""

    rule: str = "agent_app"
    retryable: bool = False

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        if rule is not None:
            self.rule = rule
        super().__init__(message if message.startswith(self.rule) else f"{self.rule}: {message}")


class RuleViolation(AgentAppError):
    """The database refused a write under the named rule (a CHECK, UNIQUE, foreign key
    or trigger rule). ``detail`` is PostgreSQL's own message."""

    def __init__(self, rule: str, detail: str, *, table: str | None = None) -> None:
        self.table = table
        self.detail = detail
        super().__init__(detail, rule=rule)


class DatabaseUnavailable(AgentAppError):
    """The server is down, restarting or unreachable, or the connection was lost during
    the call. Retryable, with one caveat every database client shares: if the
    connection was lost while the server was committing, the work may have been done.
    Calls that act on an identity are safe to repeat - ``budgets.commit``/``release``
    of a reservation id, ``queue.ack``/``fail``/``extend_lease`` of a claimed message,
    ``hierarchy.finish``, ``runs.pass_phase``/``fail_phase``/``advance``, ``cta.answer``,
    ``checkpoints.save`` (an unchanged state is not stored twice). Calls that create
    something new (``queue.send``, ``hierarchy.spawn_child``, ``runs.create_run``,
    ``runs.start_phase``, ``cta.ask``) may have happened: look before repeating them."""

    rule = "database_unavailable"
    retryable = True


class Contention(AgentAppError):
    """A deadlock or serialization failure persisted through the operation's own
    bounded retries (or happened inside a caller's transaction that cannot be retried
    from here). Nothing was changed by the failed attempt; retryable."""

    rule = "contention"
    retryable = True


class InvalidArgument(RuleViolation):
    """An argument was refused before anything was sent to the database (by
    :mod:`agent_app.validation`), or the database refused a value as data (a wrong type,
    a number out of range, a string too long, a NUL byte, a timestamp out of range).
    ``rule`` names the rule, ``parameter`` the argument (or column) and ``value`` is the
    value refused. Nothing was changed. It is a :class:`RuleViolation`, so code that
    catches refusals by ``rule`` keeps working."""

    def __init__(
        self,
        rule: str,
        parameter: str,
        problem: str,
        value: Any = None,
        *,
        show_value: bool = True,
        table: str | None = None,
    ) -> None:
        self.parameter, self.value = parameter, value
        got = f", got {short_repr(value)}" if show_value else ""
        super().__init__(rule, f"{rule}: {parameter} {problem}{got}", table=table)


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 10 MB string is named, not printed)."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = f"{text[: limit - 20]}…{text[-12:]} ({len(text)} chars)"
    return text


class NotFound(AgentAppError):
    rule = "not_found"


class BudgetExceeded(RuleViolation):
    """A reservation, charge or allocation asked for more than is left."""

    def __init__(
        self, agent_id: UUID, resource: str, asked: Decimal, left: Decimal, *, by: str = "asked for"
    ) -> None:
        self.agent_id, self.resource, self.asked, self.left = agent_id, resource, asked, left
        super().__init__(
            "budget_limits",
            f"budget_limits: agent {agent_id} {by} {asked} {resource}, {left} left",
            table="budgets",
        )


class ReservationError(RuleViolation):
    """A budget reservation cannot be acted on as asked (see the subclasses); nothing
    changed. ``reservation_id`` names it."""

    def __init__(self, rule: str, reservation_id: UUID, detail: str) -> None:
        self.reservation_id = reservation_id
        super().__init__(rule, detail, table="budget_reservations")


class ReservationClosed(ReservationError):
    """The reservation is already ``state`` (committed with ``actual``, or released): it
    cannot be committed, released or renewed another way. A repeat of the call that
    closed it is not refused - it returns that first outcome."""

    def __init__(
        self, reservation_id: UUID, state: str, actual: Decimal | None, detail: str
    ) -> None:
        self.state, self.actual = state, actual
        super().__init__("reservation_closed", reservation_id, detail)


class ReservationExpired(ReservationError):
    """The reservation's lease ended at ``lease_expires_at`` before this call: its amount
    went back to the budget (the holder stopped renewing, or was too slow). Reserve
    again."""

    def __init__(self, reservation_id: UUID, lease_expires_at: Any, detail: str) -> None:
        self.state, self.lease_expires_at = "expired", lease_expires_at
        super().__init__("reservation_expired", reservation_id, detail)


class NotReservationHolder(ReservationError):
    """The reservation belongs to ``holder``, not to ``asked``: only its holder may
    commit, release or renew it."""

    def __init__(self, reservation_id: UUID, holder: str, asked: str, detail: str) -> None:
        self.holder, self.asked = holder, asked
        super().__init__("reservation_holder", reservation_id, detail)


class DepthLimitExceeded(RuleViolation):
    def __init__(self, parent_id: UUID, limit: int) -> None:
        self.parent_id, self.limit = parent_id, limit
        super().__init__(
            "depth_limit",
            f"depth_limit: agent {parent_id} is at the deepest level ({limit}); "
            "it cannot spawn children",
            table="agents",
        )


class AlreadyFinished(AgentAppError):
    """The agent is already in a terminal status."""

    rule = "terminal_final"

    def __init__(self, agent_id: UUID, status: str) -> None:
        self.agent_id, self.status = agent_id, status
        super().__init__(f"agent {agent_id} is already {status}")


class LeaseLost(AgentAppError):
    """The message is no longer claimed under this lease: its lease expired (by the
    database's clock, whether or not anyone re-claimed it yet), or it was acked, failed,
    released or re-claimed by another worker."""

    rule = "lease_lost"

    def __init__(self, message_ids: list[int], worker_id: str) -> None:
        self.message_ids, self.worker_id = message_ids, worker_id
        ids = ", ".join(map(str, message_ids))
        super().__init__(f"worker {worker_id!r} no longer holds the lease on message(s) {ids}")


#: Rule names for the data errors (SQLSTATE class 22) a caller's value can cause.
_DATA_RULES = {
    "22001": "value_too_long",  # string_data_right_truncation
    "22003": "numeric_out_of_range",
    "22004": "null_value_not_allowed",
    "22007": "invalid_datetime_format",
    "22008": "datetime_out_of_range",  # datetime_field_overflow
    "22015": "interval_out_of_range",
    "22021": "invalid_encoding",  # character_not_in_repertoire (e.g. a NUL byte)
    "22023": "invalid_parameter_value",
    "22P02": "invalid_text_representation",
    "22P05": "untranslatable_character",  # e.g. \u0000 in JSONB
    "2202E": "array_subscript",
}

# "COPY agent_steps, line 2, column cost_usd: \"NaN\"" - where COPY says which column.
_COPY_CONTEXT = re.compile(r"COPY (\w+), line (\d+)(?:, column (\w+))?")


def translate(error: asyncpg.PostgresError) -> AgentAppError | asyncpg.PostgresError:
    """Map a database error a caller can cause to a typed error:

    * a constraint (CHECK, UNIQUE, foreign key, exclusion, trigger rule) →
      :class:`RuleViolation` named after the constraint;
    * NOT NULL (no constraint name before PostgreSQL 18) → :class:`RuleViolation`
      ``<table>_<column>_not_null`` (PostgreSQL 18's own name for it);
    * a data error (class 22: invalid text representation, numeric out of range, value
      too long, invalid encoding or NUL byte, datetime overflow …), from a statement or
      from COPY → :class:`InvalidArgument` naming the rule and, where PostgreSQL says,
      the column (COPY's row too);
    * deadlock or serialization failure → :class:`Contention`.

    Anything else (a bug in agent_app's SQL) is returned unchanged."""
    if isinstance(error, asyncpg.TransactionRollbackError):
        return Contention(f"{type(error).__name__}: {error}")
    table: Any = getattr(error, "table_name", None)
    column: Any = getattr(error, "column_name", None)
    if isinstance(error, asyncpg.NotNullViolationError):
        not_null = f"{table}_{column}_not_null"
        return RuleViolation(not_null, f"{not_null}: {column} must not be null ({error})",
                             table=table)  # fmt: skip
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        constraint: Any = getattr(error, "constraint_name", None)
        if constraint:
            return RuleViolation(constraint, str(error), table=table)
        return RuleViolation("integrity", str(error), table=table)
    if isinstance(error, asyncpg.DataError):
        rule = _DATA_RULES.get(getattr(error, "sqlstate", ""), "invalid_data")
        if str(error).startswith("invalid input for query argument"):
            rule = "query_argument"  # asyncpg could not encode it: never sent
        where = ""
        copied = _COPY_CONTEXT.search(str(getattr(error, "context", None) or ""))
        if copied:
            table = copied.group(1)
            column = copied.group(3) or column
            where = f" (COPY into {table}, row {int(copied.group(2)) - 1})"
        target = f"{table}.{column}" if table and column else column or "a value"
        return InvalidArgument(rule, target, f"refused by the database: {error}{where}",
                               show_value=False, table=table)  # fmt: skip
    return error
