"""The contract's enums, one ``str``-valued :class:`enum.Enum` each.

Values and their order are fixed by the data-model contract. Every enum column's
database CHECK is generated from these classes (see :func:`agent_app.ddl.enum_check`),
and ``piccolo agent_app schema_check`` reports any live CHECK whose value set
differs, so Python and PostgreSQL cannot drift apart silently.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class SandboxStatus(StrEnum):
    pending = "pending"
    running = "running"
    stopping = "stopping"
    stopped = "stopped"
    failed = "failed"
    aborted = "aborted"
    snapshotting = "snapshotting"


class SandboxSourceType(StrEnum):
    git = "git"
    tarball = "tarball"
    snapshot = "snapshot"
    empty = "empty"


class SnapshotStatus(StrEnum):
    created = "created"
    deleted = "deleted"
    failed = "failed"


class FeaturePhase(StrEnum):
    analysis = "analysis"
    approaches = "approaches"
    judging = "judging"
    implementation = "implementation"
    pr = "pr"
    completed = "completed"
    failed = "failed"


class PhaseStatus(StrEnum):
    running = "running"
    passed = "passed"
    failed = "failed"


class AgentType(StrEnum):
    orchestrator = "orchestrator"
    explorer = "explorer"
    coder = "coder"
    judge = "judge"
    meta_judge = "meta_judge"


class FinishReason(StrEnum):
    stop = "stop"
    length = "length"
    content_filter = "content-filter"
    tool_calls = "tool-calls"
    error = "error"
    other = "other"


class ToolOutputType(StrEnum):
    text = "text"
    json = "json"
    execution_denied = "execution-denied"
    error_text = "error-text"
    error_json = "error-json"
    content = "content"


class MemoryKind(StrEnum):
    insight = "insight"
    failure = "failure"
    decision = "decision"
    constraint = "constraint"


class CtaKind(StrEnum):
    approval = "approval"
    text = "text"
    choice = "choice"


class AgentStatus(StrEnum):
    pending = "pending"
    running = "running"
    waiting = "waiting"
    completed = "completed"
    failed = "failed"
    terminated = "terminated"


class MessageStatus(StrEnum):
    pending = "pending"
    claimed = "claimed"
    done = "done"
    dead = "dead"
    cancelled = "cancelled"


class WorkspaceStatus(StrEnum):
    active = "active"
    released = "released"


class BudgetResource(StrEnum):
    tokens = "tokens"
    cost_usd = "cost_usd"
    tool_calls = "tool_calls"


class ReservationState(StrEnum):
    """A budget reservation's life: ``held`` until it is committed (turned into usage),
    released (given back unused) or expired (its lease ended first). Only ``held``
    changes; the other three are final. Not part of the contract's enums: it belongs to
    the extra table ``budget_reservations``."""

    held = "held"
    committed = "committed"
    released = "released"
    expired = "expired"


#: The phases in which work happens; a phase result is always one of these.
WORKING_PHASES: tuple[FeaturePhase, ...] = (
    FeaturePhase.analysis,
    FeaturePhase.approaches,
    FeaturePhase.judging,
    FeaturePhase.implementation,
    FeaturePhase.pr,
)

#: An agent in one of these statuses is finished: its budgets went back to its parent.
TERMINAL_AGENT_STATUSES: tuple[AgentStatus, ...] = (
    AgentStatus.completed,
    AgentStatus.failed,
    AgentStatus.terminated,
)

#: A message in one of these statuses will never be delivered again (short of a redrive).
FINISHED_MESSAGE_STATUSES: tuple[MessageStatus, ...] = (
    MessageStatus.done,
    MessageStatus.dead,
    MessageStatus.cancelled,
)

ALL_ENUMS: tuple[type[Enum], ...] = (
    SandboxStatus,
    SandboxSourceType,
    SnapshotStatus,
    FeaturePhase,
    PhaseStatus,
    AgentType,
    FinishReason,
    ToolOutputType,
    MemoryKind,
    CtaKind,
    AgentStatus,
    MessageStatus,
    WorkspaceStatus,
    BudgetResource,
)
