"""Typed errors of the worker API.

Every refusal is a subclass of :class:`AgentAppError` carrying ``rule`` (the name of
the rule, which is also the database constraint's name where one exists) and a
message that starts with that name and says which value broke it. When one of
these is raised, the call changed nothing.
"""

from __future__ import annotations

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
    the call. Retryable: if the call was inside a transaction, the server rolled that
    transaction back; a single-statement call either happened entirely or not at all
    (repeat it by identity - every agent_app operation that takes an id is safe to
    repeat)."""

    rule = "database_unavailable"
    retryable = True


class Contention(AgentAppError):
    """A deadlock or serialization failure persisted through the operation's own
    bounded retries (or happened inside a caller's transaction that cannot be retried
    from here). Nothing was changed by the failed attempt; retryable."""

    rule = "contention"
    retryable = True


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
    """The message is no longer claimed under this lease: it was acked, failed or
    re-claimed by another worker after the lease expired."""

    rule = "lease_lost"

    def __init__(self, message_ids: list[int], worker_id: str) -> None:
        self.message_ids, self.worker_id = message_ids, worker_id
        ids = ", ".join(map(str, message_ids))
        super().__init__(f"worker {worker_id!r} no longer holds the lease on message(s) {ids}")


def translate(error: asyncpg.PostgresError) -> AgentAppError | asyncpg.PostgresError:
    """Map a database refusal to a :class:`RuleViolation` naming its rule, a deadlock or
    serialization failure to :class:`Contention`."""
    if isinstance(error, asyncpg.TransactionRollbackError):
        return Contention(f"{type(error).__name__}: {error}")
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        name: Any = getattr(error, "constraint_name", None)
        if name:
            return RuleViolation(name, str(error), table=getattr(error, "table_name", None))
    return error
