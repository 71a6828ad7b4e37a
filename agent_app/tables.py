"""The fifteen tables of the contract (``DATA_MODEL.md``), all in the schema ``agent``, the
budget reservations the books are kept from (``budget_reservations``), and the five tables
of the framework integrations (LangGraph threads, checkpoints, blobs and writes; Agents SDK
session items), which the contract leaves open.

What the database guarantees, whoever writes (ORM, raw SQL, the admin):

* every enum column holds only its Python enum's values (``<column>_enum`` CHECKs);
* every limit and "set together" rule is a named CHECK (names below), so an
  error says which rule was broken;
* the agent tree is a tree: ``depth_level`` is derived from the parent by a
  trigger, a parent never changes, nesting stops at :data:`MAX_AGENT_DEPTH`,
  and ``hierarchies`` (the closure table) is written only by the trigger;
* budgets: a child's allocation is reserved out of its parent's budget in the
  same statement (refused with ``budget_limits`` when the parent lacks the
  headroom), and returned when the child reaches a terminal status; ``used`` and
  ``reserved`` are kept from ``budget_reservations`` rows by triggers only
  (``budget_books_derived`` refuses a write by hand);
* ``updated_at`` is set by a trigger on every UPDATE;
* deleting a feature run deletes what it owns (phases, invocations, steps,
  tool calls, memory, CTAs, agents with their budgets, messages, workspaces,
  checkpoints); deleting a sandbox that is in use or an agent that has
  children or history (messages, invocations) is refused.

Indexes that Piccolo cannot express are declared beside each table as
``_indexes`` (see :mod:`agent_app.ddl`); triggers live in
:mod:`agent_app.triggers`. Both reach the database through frozen raw
migrations and are verified by ``piccolo agent_app schema_check``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from decimal import Decimal

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigInt,
    BigSerial,
    Boolean,
    Bytea,
    ForeignKey,
    Integer,
    Numeric,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import Column, OnDelete, OnUpdate
from piccolo.columns.readable import Readable
from piccolo.constraints import Check, Unique
from piccolo.custom_types import Combinable
from piccolo.table import Table

from agent_app.ddl import SCHEMA, Index, Sql, enum_check, not_one_of, one_of, same_truth
from agent_app.enums import (
    WORKING_PHASES,
    AgentStatus,
    AgentType,
    BudgetResource,
    CtaKind,
    FeaturePhase,
    FinishReason,
    MemoryKind,
    MessageStatus,
    PhaseStatus,
    ReservationState,
    SandboxSourceType,
    SandboxStatus,
    SnapshotStatus,
    ToolOutputType,
    WorkspaceStatus,
)

#: The deepest level an agent may sit at (the root orchestrator is level 0).
MAX_AGENT_DEPTH = 5

#: Highest message priority; 0 is the lowest and the default.
MAX_MESSAGE_PRIORITY = 9


def _now() -> Timestamptz:
    return Timestamptz()


def _maybe_time() -> Timestamptz:
    return Timestamptz(null=True, default=None)


def _owned_by(table: type[Table] | str) -> ForeignKey:
    """A required reference whose target's deletion deletes this row too."""
    return ForeignKey(
        references=table, null=False, on_delete=OnDelete.cascade, on_update=OnUpdate.cascade
    )


def _refers_to(table: type[Table] | str, *, null: bool) -> ForeignKey:
    """A reference that blocks deleting its target while this row exists.

    NO ACTION rather than RESTRICT: the check runs at the end of the statement,
    so deleting a feature run can cascade to all of its rows at once while a
    lone delete of a referenced row is still refused.
    """
    return ForeignKey(
        references=table,
        null=null,
        default=None,
        on_delete=OnDelete.no_action,
        on_update=OnUpdate.cascade,
    )


def _all(conditions: Iterable[Combinable]) -> Combinable:
    """The conditions joined with AND, left to right (as PostgreSQL stores a chain)."""
    return functools.reduce(operator.and_, conditions)


def _non_negative(*columns: Column) -> Check:
    return Check(_all(c.is_null() | (c >= 0) for c in columns))


def _finite(*columns: Column) -> Check:
    """NaN and ±Infinity refused in numeric columns (PostgreSQL 14+ numerics hold both,
    and NaN sorts above every number, so ``used <= allocated`` would hold for a NaN
    budget). NaN and Infinity both fail ``< 'Infinity'``; NULL passes."""
    return Check(_all((c > "-Infinity") & (c < "Infinity") for c in columns))


def _not_blank(column: Column) -> Check:
    """At least one character that is not white space."""
    return Check(Sql("{} ~ '[^[:space:]]'", column))


# --------------------------------------------------------------------------- #
# Feature pipeline
# --------------------------------------------------------------------------- #


class Sandbox(Table, tablename="sandboxes", schema=SCHEMA):
    """An isolated environment (container or VM) in which agents work on a repository.
    Its status moves through the sandbox lifecycle; it is built from a git ref,
    a tarball, a snapshot of another sandbox, or nothing."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s sandbox (%s)", columns=[cls.provider, cls.status])

    id = UUID(primary_key=True)
    status = Varchar(choices=SandboxStatus, default=SandboxStatus.pending)
    source_type = Varchar(choices=SandboxSourceType)
    source_ref = Text(null=True, default=None)
    # A foreign key to sandbox_snapshots, added by a raw migration: sandboxes and
    # snapshots refer to each other, a cycle Piccolo's migrations cannot order.
    source_snapshot_id = UUID(null=True, default=None)
    provider = Varchar()
    external_id = Varchar(null=True, default=None, unique=True)
    config = JSONB()
    error = Text(null=True, default=None)
    created_at = _now()
    updated_at = _now()
    started_at = _maybe_time()
    stopped_at = _maybe_time()

    status_enum = enum_check(status, SandboxStatus)
    source_type_enum = enum_check(source_type, SandboxSourceType)
    snapshot_source = Check(
        same_truth(source_type == SandboxSourceType.snapshot, source_snapshot_id.is_not_null())
    )

    _indexes = (
        Index(
            "sandboxes_source_snapshot_idx",
            ("source_snapshot_id",),
            where="source_snapshot_id IS NOT NULL",
            why="deleting a snapshot checks that no sandbox was built from it",
        ),
        Index("sandboxes_status_idx", ("status",), why="operators list sandboxes by status"),
    )


class SandboxSnapshot(Table, tablename="sandbox_snapshots", schema=SCHEMA):
    """A saved image of a sandbox's file system, from which new sandboxes can be built."""

    id = UUID(primary_key=True)
    sandbox_id = _refers_to(Sandbox, null=False)
    status = Varchar(choices=SnapshotStatus, default=SnapshotStatus.created)
    external_id = Varchar(null=True, default=None)
    size_bytes = BigInt(null=True, default=None)
    metadata = JSONB()
    created_at = _now()
    deleted_at = _maybe_time()

    status_enum = enum_check(status, SnapshotStatus)
    size_bytes_non_negative = _non_negative(size_bytes)

    _indexes = (
        Index(
            "sandbox_snapshots_sandbox_idx",
            ("sandbox_id", "created_at DESC"),
            why="a sandbox's snapshots, newest first; guards deleting a sandbox",
        ),
    )


class FeatureRun(Table, tablename="feature_runs", schema=SCHEMA):
    """One feature request on its way to a pull request: it moves through the phases
    analysis, approaches, judging, implementation, pr to completed, or to failed
    from any phase. Deleting a run deletes everything it owns."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s", columns=[cls.title])

    id = UUID(primary_key=True)
    title = Varchar()
    request = Text()
    repo_url = Text()
    base_branch = Varchar(default="main")
    current_phase = Varchar(choices=FeaturePhase, default=FeaturePhase.analysis)
    sandbox_id = _refers_to(Sandbox, null=True)
    branch_name = Varchar(null=True, default=None)
    pr_url = Text(null=True, default=None)
    error = Text(null=True, default=None)
    created_at = _now()
    updated_at = _now()
    completed_at = _maybe_time()

    current_phase_enum = enum_check(current_phase, FeaturePhase)

    _indexes = (
        Index("feature_runs_current_phase_idx", ("current_phase",), why="runs by phase"),
        Index(
            "feature_runs_sandbox_idx",
            ("sandbox_id",),
            where="sandbox_id IS NOT NULL",
            why="refuses deleting a sandbox a run uses without a scan",
        ),
        Index("feature_runs_created_idx", ("created_at DESC",), why="newest runs first"),
    )


class Agent(Table, tablename="agents", schema=SCHEMA):
    """An agent in the hierarchy: the run's orchestrator at depth 0 spawns children,
    each one level deeper, up to the maximum depth. Its budgets are carved out of
    its parent's and given back when it reaches a terminal status."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s (%s)", columns=[cls.name, cls.agent_type])

    id = UUID(primary_key=True)
    run_id = ForeignKey(
        references=FeatureRun,
        null=True,
        default=None,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
    )
    parent_id = _refers_to("self", null=True)
    depth_level = Integer(default=0)
    agent_type = Varchar(choices=AgentType)
    name = Varchar()
    status = Varchar(choices=AgentStatus, default=AgentStatus.pending)
    created_at = _now()
    updated_at = _now()
    finished_at = _maybe_time()

    agent_type_enum = enum_check(agent_type, AgentType)
    status_enum = enum_check(status, AgentStatus)
    parent_not_self = Check(parent_id.is_null() | (parent_id != id))
    depth_limit = Check((depth_level >= 0) & (depth_level <= MAX_AGENT_DEPTH))

    _indexes = (
        Index("agents_run_idx", ("run_id",), where="run_id IS NOT NULL", why="a run's agents"),
        Index(
            "agents_parent_idx",
            ("parent_id",),
            where="parent_id IS NOT NULL",
            why="direct children; refuses deleting an agent with children",
        ),
    )


class PhaseResult(Table, tablename="phase_results", schema=SCHEMA):
    """One attempt at one working phase of a feature run, with its outcome."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s #%s (%s)", columns=[cls.phase, cls.attempt, cls.status])

    id = UUID(primary_key=True)
    run_id = _owned_by(FeatureRun)
    phase = Varchar(choices=FeaturePhase)
    status = Varchar(choices=PhaseStatus, default=PhaseStatus.running)
    attempt = Integer(default=1)
    summary = Text(null=True, default=None)
    output = JSONB(null=True, default=None)
    error = Text(null=True, default=None)
    started_at = _now()
    finished_at = _maybe_time()

    phase_enum = enum_check(phase, FeaturePhase)
    # Says only "not an end state", so a misspelt phase is reported by phase_enum alone.
    phase_is_working = Check(
        not_one_of(phase, [p for p in FeaturePhase if p not in WORKING_PHASES])
    )
    status_enum = enum_check(status, PhaseStatus)
    attempt_min = Check(attempt >= 1)
    finished_when_not_running = Check(
        same_truth(status == PhaseStatus.running, finished_at.is_null())
    )
    # Its index (run_id, phase, attempt) also serves the contract's (run_id, phase) lookups.
    phase_results_run_phase_attempt_key = Unique(["run_id", "phase", "attempt"])

    _indexes = (
        Index(
            "phase_results_id_run_key",
            ("id", "run_id"),
            unique=True,
            why="target of agent_invocations_phase_same_run_fkey",
        ),
    )


class AgentInvocation(Table, tablename="agent_invocations", schema=SCHEMA):
    """One call of an agent (orchestrator, explorer, coder, judge, meta-judge) within
    a phase attempt, with its token usage and cost rolled up from its steps."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s on %s", columns=[cls.agent_type, cls.model])

    id = UUID(primary_key=True)
    run_id = _owned_by(FeatureRun)
    phase_result_id = _owned_by(PhaseResult)
    agent_id = _refers_to(Agent, null=True)
    parent_invocation_id = _refers_to("self", null=True)
    agent_type = Varchar(choices=AgentType)
    model = Varchar()
    input = JSONB(null=True, default=None)
    output = JSONB(null=True, default=None)
    finish_reason = Varchar(choices=FinishReason, null=True, default=None)
    error = Text(null=True, default=None)
    input_tokens = BigInt(default=0)
    output_tokens = BigInt(default=0)
    cost_usd = Numeric(default=Decimal(0))
    started_at = _now()
    finished_at = _maybe_time()

    agent_type_enum = enum_check(agent_type, AgentType)
    finish_reason_enum = enum_check(finish_reason, FinishReason)
    usage_non_negative = _non_negative(input_tokens, output_tokens, cost_usd)
    cost_usd_finite = _finite(cost_usd)
    parent_invocation_not_self = Check(
        parent_invocation_id.is_null() | (parent_invocation_id != id)
    )

    _indexes = (
        Index(
            "agent_invocations_phase_result_type_idx",
            ("phase_result_id", "agent_type"),
            why="a phase attempt's invocations by agent type",
        ),
        Index("agent_invocations_run_idx", ("run_id", "started_at"), why="a run's timeline"),
        Index(
            "agent_invocations_agent_idx",
            ("agent_id",),
            where="agent_id IS NOT NULL",
            why="an agent's invocations; guards deleting an agent",
        ),
        Index(
            "agent_invocations_parent_idx",
            ("parent_invocation_id",),
            where="parent_invocation_id IS NOT NULL",
            why="sub-invocations",
        ),
    )


class AgentStep(Table, tablename="agent_steps", schema=SCHEMA):
    """One model call inside an invocation: its text, reasoning and token usage.
    Token counts are null when the provider did not report them (not zero)."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="step %s (%s)", columns=[cls.step_number, cls.finish_reason])

    id = UUID(primary_key=True)
    invocation_id = _owned_by(AgentInvocation)
    step_number = Integer(default=0)
    finish_reason = Varchar(choices=FinishReason)
    raw_finish_reason = Varchar(null=True, default=None)
    text = Text(null=True, default=None)
    reasoning = Text(null=True, default=None)
    input_tokens = Integer(null=True, default=None)
    output_tokens = Integer(null=True, default=None)
    cached_input_tokens = Integer(null=True, default=None)
    reasoning_tokens = Integer(null=True, default=None)
    cost_usd = Numeric(null=True, default=None)
    response_metadata = JSONB(null=True, default=None)
    started_at = _now()
    finished_at = _maybe_time()

    finish_reason_enum = enum_check(finish_reason, FinishReason)
    step_number_min = Check(step_number >= 0)
    usage_non_negative = _non_negative(
        input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd
    )
    cost_usd_finite = _finite(cost_usd)
    # Its index (invocation_id, step_number) is the contract's required index.
    agent_steps_invocation_step_key = Unique(["invocation_id", "step_number"])

    _indexes = (
        Index(
            "agent_steps_id_invocation_key",
            ("id", "invocation_id"),
            unique=True,
            why="target of tool_calls_step_same_invocation_fkey",
        ),
    )


class ToolCall(Table, tablename="tool_calls", schema=SCHEMA):
    """A tool call made in a step, matched to its result by the provider's tool_call_id.
    output_type stays null until the result arrives."""

    id = UUID(primary_key=True)
    step_id = _owned_by(AgentStep)
    invocation_id = _owned_by(AgentInvocation)
    tool_call_id = Varchar()
    tool_name = Varchar()
    input = JSONB()
    output_type = Varchar(choices=ToolOutputType, null=True, default=None)
    output = JSONB(null=True, default=None)
    provider_executed = Boolean(default=False)
    started_at = _now()
    finished_at = _maybe_time()

    output_type_enum = enum_check(output_type, ToolOutputType)
    output_has_type = Check(output.is_null() | output_type.is_not_null())
    # Its index (invocation_id, tool_call_id) also serves lookups by invocation_id.
    tool_calls_invocation_call_key = Unique(["invocation_id", "tool_call_id"])

    _indexes = (Index("tool_calls_step_idx", ("step_id",), why="a step's tool calls"),)


class MemoryRecord(Table, tablename="memory_records", schema=SCHEMA):
    """Something an agent learnt (insight, failure, decision, constraint) and left for
    later phases of the same run, tagged for retrieval."""

    id = UUID(primary_key=True)
    run_id = _owned_by(FeatureRun)
    phase = Varchar(choices=FeaturePhase)
    kind = Varchar(choices=MemoryKind)
    content = Text()
    source_invocation_id = _refers_to(AgentInvocation, null=True)
    tags = Array(base_column=Varchar())
    created_at = _now()

    phase_enum = enum_check(phase, FeaturePhase)
    kind_enum = enum_check(kind, MemoryKind)
    content_not_empty = _not_blank(content)

    _indexes = (
        # Tags are searched within one run, after this index has found the run's rows: a
        # global GIN index on tags made the planner AND in every run's matches (measured
        # 5x slower at 1M rows), and cost every insert.
        Index("memory_records_run_phase_idx", ("run_id", "phase"), why="a run's memory by phase"),
        Index(
            "memory_records_source_invocation_idx",
            ("source_invocation_id",),
            where="source_invocation_id IS NOT NULL",
            why="guards deleting an invocation",
        ),
    )


class CtaEvent(Table, tablename="cta_events", schema=SCHEMA):
    """A question put to a person (approve, answer in text, or pick one of the options),
    answered at most once, possibly expiring unanswered."""

    id = UUID(primary_key=True)
    run_id = _owned_by(FeatureRun)
    phase = Varchar(choices=FeaturePhase, null=True, default=None)
    kind = Varchar(choices=CtaKind)
    prompt = Text()
    options = JSONB(null=True, default=None)
    response = JSONB(null=True, default=None)
    responded_by = Varchar(null=True, default=None)
    created_at = _now()
    responded_at = _maybe_time()
    expires_at = _maybe_time()

    phase_enum = enum_check(phase, FeaturePhase)
    kind_enum = enum_check(kind, CtaKind)
    prompt_not_empty = _not_blank(prompt)
    choice_has_options = Check(
        (kind != CtaKind.choice)
        | (
            options.is_not_null()
            & Sql("jsonb_typeof({}) = 'array'", options)
            & Sql("jsonb_array_length({}) > 0", options)
        )
    )
    response_with_time = Check(same_truth(response.is_null(), responded_at.is_null()))

    _indexes = (
        Index("cta_events_run_idx", ("run_id",), why="a run's questions"),
        Index(
            "cta_events_open_expiry_idx",
            ("expires_at",),
            where="responded_at IS NULL AND expires_at IS NOT NULL",
            why="expiring unanswered questions",
        ),
    )


# --------------------------------------------------------------------------- #
# Agent hierarchy
# --------------------------------------------------------------------------- #


class Budget(Table, tablename="budgets", schema=SCHEMA):
    """How much of one resource (tokens, cost_usd, tool_calls) an agent may spend:
    used and reserved never exceed allocated (constraint budget_limits). A child's
    allocation is reserved out of its parent's budget of the same resource. used and
    reserved are kept by triggers only: reserved is the held budget_reservations plus
    the live children's allocations, used the committed reservations plus the usage of
    finished children."""

    id = UUID(primary_key=True)
    agent_id = _owned_by(Agent)
    resource = Varchar(choices=BudgetResource)
    allocated = Numeric(default=Decimal(0))
    used = Numeric(default=Decimal(0))
    reserved = Numeric(default=Decimal(0))
    created_at = _now()
    updated_at = _now()

    resource_enum = enum_check(resource, BudgetResource)
    budget_limits = Check(
        (allocated >= 0)
        & (used >= 0)
        & (reserved >= 0)
        & Sql("{} + {} <= {}", used, reserved, allocated)
    )
    budget_numbers_finite = _finite(allocated, used, reserved)
    budgets_agent_resource_key = Unique(["agent_id", "resource"])


class BudgetReservation(Table, tablename="budget_reservations", schema=SCHEMA):
    """An amount held against one budget by a named holder until its lease ends: held,
    then committed (turned into usage), released or expired, each final. Triggers keep
    the budget's reserved and used from these rows; a charge without a reservation is a
    row born committed."""

    id = UUID(primary_key=True)
    # The budget's agent and resource, copied (the trigger refuses a mismatch) so a
    # worker's reservations read without a join. No foreign key of its own: deleting the
    # agent deletes its budgets, and those their reservations - one index fewer to keep.
    agent_id = UUID(default=None)
    resource = Varchar(choices=BudgetResource)
    budget_id = _owned_by(Budget)
    amount = Numeric()
    holder = Varchar()
    state = Varchar(choices=ReservationState, default=ReservationState.held)
    actual = Numeric(null=True, default=None)
    lease_expires_at = Timestamptz()
    created_at = _now()
    finished_at = _maybe_time()

    resource_enum = enum_check(resource, BudgetResource)
    state_enum = enum_check(state, ReservationState)
    # 'Infinity' is the largest numeric but NaN: this refuses both.
    amount_positive = Check((amount > 0) & (amount < "Infinity"))
    actual_when_committed = Check(
        same_truth(state == ReservationState.committed, actual.is_not_null())
        & (actual.is_null() | ((actual >= 0) & (actual < "Infinity")))
    )
    finished_when_final = Check(
        same_truth(
            one_of(
                state,
                [ReservationState.committed, ReservationState.released, ReservationState.expired],
            ),
            finished_at.is_not_null(),
        )
    )
    holder_not_empty = _not_blank(holder)

    _indexes = (
        Index(
            "budget_reservations_budget_idx",
            ("budget_id", "state", "lease_expires_at"),
            why="a budget's held reservations, overdue first (expiry, finish, the books); "
            "deleting a budget",
        ),
    )


class Message(Table, tablename="messages", schema=SCHEMA):
    """A message between agents in a priority FIFO queue: higher priority first, then
    by id (the order of sending). A claim holds a lease; an expired lease makes the
    message claimable again."""

    # BIGINT identity (converted from Piccolo's bigserial by a raw migration): its
    # order is the FIFO order.
    id = BigSerial(primary_key=True)
    run_id = ForeignKey(
        references=FeatureRun,
        null=True,
        default=None,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
    )
    sender_id = _refers_to(Agent, null=True)
    recipient_id = _refers_to(Agent, null=False)
    priority = SmallInt(default=0)
    status = Varchar(choices=MessageStatus, default=MessageStatus.pending)
    kind = Varchar()
    payload = JSONB()
    attempts = Integer(default=0)
    max_attempts = Integer(default=5)
    available_at = _now()
    lease_expires_at = _maybe_time()
    claimed_by = Varchar(null=True, default=None)
    last_error = Text(null=True, default=None)
    created_at = _now()
    claimed_at = _maybe_time()
    finished_at = _maybe_time()

    status_enum = enum_check(status, MessageStatus)
    priority_range = Check((priority >= 0) & (priority <= MAX_MESSAGE_PRIORITY))
    attempts_range = Check((attempts >= 0) & (max_attempts >= 1))
    claim_has_lease = Check(
        same_truth(
            status == MessageStatus.claimed,
            lease_expires_at.is_not_null() & claimed_by.is_not_null(),
        )
    )
    finished_when_final = Check(
        same_truth(
            one_of(status, [MessageStatus.done, MessageStatus.dead, MessageStatus.cancelled]),
            finished_at.is_not_null(),
        )
    )

    _indexes = (
        Index(
            "messages_claim_idx",
            ("recipient_id", "priority DESC", "id"),
            where="status = 'pending'",
            why="the claim order: per recipient, higher priority first, FIFO within one",
        ),
        Index(
            "messages_lease_idx",
            ("lease_expires_at",),
            where="status = 'claimed'",
            why="claims whose lease expired are claimable again",
        ),
        Index("messages_recipient_idx", ("recipient_id",), why="guards deleting an agent"),
        Index(
            "messages_sender_idx",
            ("sender_id",),
            where="sender_id IS NOT NULL",
            why="guards deleting an agent",
        ),
        Index("messages_run_idx", ("run_id",), where="run_id IS NOT NULL", why="a run's messages"),
        Index(
            "messages_dead_idx",
            ("recipient_id", "id"),
            where="status = 'dead'",
            why="redriving dead messages",
        ),
    )

    # Every claim walks the claim index from the head of the recipient's range, over
    # the entries of messages already claimed: they go only when VACUUM removes them.
    # Vacuum this table whenever ~1,000 messages have been claimed and finished since
    # the last pass (instead of 20% of the table, which for a table of 1M done messages
    # is 200,000 dead rows first), unthrottled: the pages it touches are few and hot.
    _storage = {
        "autovacuum_vacuum_scale_factor": "0",
        "autovacuum_vacuum_threshold": "2000",
        "autovacuum_vacuum_cost_delay": "0",
    }


class Workspace(Table, tablename="workspaces", schema=SCHEMA):
    """A git worktree an agent works in, inside a sandbox. No two active workspaces
    share a worktree path or a branch within one sandbox."""

    id = UUID(primary_key=True)
    agent_id = _owned_by(Agent)
    sandbox_id = _refers_to(Sandbox, null=True)
    worktree_path = Text()
    branch_name = Varchar()
    base_ref = Varchar()
    head_commit = Varchar(null=True, default=None)
    status = Varchar(choices=WorkspaceStatus, default=WorkspaceStatus.active)
    created_at = _now()
    updated_at = _now()
    released_at = _maybe_time()

    status_enum = enum_check(status, WorkspaceStatus)
    released_when_released = Check(
        same_truth(status == WorkspaceStatus.released, released_at.is_not_null())
    )

    _indexes = (
        Index(
            "workspaces_active_path_key",
            ("sandbox_id", "worktree_path"),
            where="status = 'active'",
            unique=True,
            nulls_not_distinct=True,
            why="no two active workspaces share a worktree path in one sandbox",
        ),
        Index(
            "workspaces_active_branch_key",
            ("sandbox_id", "branch_name"),
            where="status = 'active'",
            unique=True,
            nulls_not_distinct=True,
            why="no two active workspaces share a branch in one sandbox",
        ),
        Index(
            "workspaces_agent_active_idx",
            ("agent_id",),
            where="status = 'active'",
            why="an agent's active workspace",
        ),
        Index("workspaces_agent_idx", ("agent_id",), why="an agent's workspaces; deletes"),
        Index(
            "workspaces_sandbox_idx",
            ("sandbox_id",),
            where="sandbox_id IS NOT NULL",
            why="refuses deleting a sandbox in use without a scan",
        ),
    )


class Checkpoint(Table, tablename="checkpoints", schema=SCHEMA):
    """A saved state of an agent from which a crashed worker resumes; sequence numbers
    increase per agent, and state_hash lets an unchanged state be skipped."""

    id = UUID(primary_key=True)
    agent_id = _owned_by(Agent)
    sequence = Integer(default=1)
    parent_checkpoint_id: ForeignKey[Checkpoint] = ForeignKey(
        references="self",
        null=True,
        default=None,
        on_delete=OnDelete.set_null,
        on_update=OnUpdate.cascade,
    )
    state_snapshot = JSONB()
    state_hash = Varchar()
    schema_version = Integer(default=1)
    label = Varchar(null=True, default=None)
    created_at = _now()

    sequence_min = Check(sequence >= 1)
    schema_version_min = Check(schema_version >= 1)
    parent_checkpoint_not_self = Check(
        parent_checkpoint_id.is_null() | (parent_checkpoint_id != id)
    )
    # Its index (agent_id, sequence) serves "latest checkpoint" as a backward scan.
    checkpoints_agent_sequence_key = Unique(["agent_id", "sequence"])

    _indexes = (
        Index(
            "checkpoints_parent_idx",
            ("parent_checkpoint_id",),
            where="parent_checkpoint_id IS NOT NULL",
            why="pruning nulls children's parent_checkpoint_id",
        ),
    )


class Hierarchy(Table, tablename="hierarchies", schema=SCHEMA):
    """The closure of the agent tree: one row per (ancestor, descendant) pair with
    their distance, written only by a trigger on agents, so a whole subtree or
    ancestry is one indexed lookup."""

    id = UUID(primary_key=True)
    parent_id = _owned_by(Agent)
    child_id = _owned_by(Agent)
    depth = Integer(default=1)

    depth_min = Check(depth >= 1)
    no_self_reference = Check(parent_id != child_id)
    # Its index (parent_id, child_id) serves subtree lookups.
    hierarchies_parent_child_key = Unique(["parent_id", "child_id"])

    _indexes = (
        Index(
            "hierarchies_child_depth_idx",
            ("child_id", "depth"),
            why="ancestry of an agent, nearest first",
        ),
    )


# --------------------------------------------------------------------------- #
# Framework integrations: LangGraph threads and OpenAI Agents SDK sessions
# (agent_app.langgraph, agent_app.agents_sdk). Not part of the contract: the
# contract's `checkpoints` stay the agents' own.
# --------------------------------------------------------------------------- #


class GraphThread(Table, tablename="graph_threads", schema=SCHEMA):
    """A LangGraph thread whose checkpoints live here, optionally tied to the feature run
    (deleting the run deletes the thread and all its checkpoints) and the agent it
    belongs to. Deleting a thread deletes its checkpoints, blobs and writes."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s", columns=[cls.thread_id])

    # LangGraph's own thread id: every child row names it, so it is the key.
    thread_id = Text(primary_key=True)
    run_id = ForeignKey(
        references=FeatureRun,
        null=True,
        default=None,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
    )
    agent_id = _refers_to(Agent, null=True)
    created_at = _now()

    thread_id_not_empty = Check(thread_id != "")

    _indexes = (
        Index(
            "graph_threads_run_idx",
            ("run_id",),
            where="run_id IS NOT NULL",
            why="a run's threads; deleting a run cascades through it",
        ),
        Index(
            "graph_threads_agent_idx",
            ("agent_id",),
            where="agent_id IS NOT NULL",
            why="an agent's threads; guards deleting an agent",
        ),
    )


def _thread_owned() -> ForeignKey:
    return ForeignKey(
        references=GraphThread,
        null=False,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
    )


class GraphCheckpoint(Table, tablename="graph_checkpoints", schema=SCHEMA):
    """One LangGraph checkpoint of a thread and namespace. The body (serialized with
    LangGraph's serializer) holds the checkpoint with its primitive channel values;
    other channel values are graph_blobs rows named by channels/versions."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s/%s", columns=[cls.thread_id, cls.checkpoint_id])

    id = BigSerial(primary_key=True)
    thread_id = _thread_owned()
    checkpoint_ns = Text(default="")
    checkpoint_id = Text()
    parent_checkpoint_id = Text(null=True, default=None)
    type = Text()
    body = Bytea()
    # The blob-backed channels at this checkpoint and their versions, side by side.
    channels = Array(base_column=Text())
    versions = Array(base_column=Text())
    metadata = JSONB()
    created_at = _now()

    channels_versions_match = Check(Sql("cardinality({}) = cardinality({})", channels, versions))
    graph_checkpoints_thread_ns_id_key = Unique(["thread_id", "checkpoint_ns", "checkpoint_id"])

    _indexes = (
        Index(
            "graph_checkpoints_metadata_idx",
            ("metadata jsonb_path_ops",),
            using="gin",
            why="alist(filter=...): metadata containment across threads",
        ),
    )


class GraphBlob(Table, tablename="graph_blobs", schema=SCHEMA):
    """One channel value of a LangGraph thread at one version (serialized with
    LangGraph's serializer). A checkpoint whose channel did not change reuses the
    blob of the version it names: unchanged channels are not written again."""

    id = BigSerial(primary_key=True)
    thread_id = _thread_owned()
    checkpoint_ns = Text(default="")
    channel = Text()
    version = Text()
    type = Text()
    blob = Bytea(null=True, default=None)

    graph_blobs_thread_ns_channel_version_key = Unique(
        ["thread_id", "checkpoint_ns", "channel", "version"]
    )


class GraphWrite(Table, tablename="graph_writes", schema=SCHEMA):
    """A pending write of a LangGraph task against a checkpoint, unique on
    (checkpoint, task_id, idx) so a retried put_writes stores it once. No foreign key
    to the checkpoint: LangGraph may save a step's writes before its checkpoint."""

    id = BigSerial(primary_key=True)
    thread_id = _thread_owned()
    checkpoint_ns = Text(default="")
    checkpoint_id = Text()
    task_id = Text()
    task_path = Text(default="")
    idx = Integer(default=0)
    channel = Text()
    type = Text()
    blob = Bytea()

    graph_writes_checkpoint_task_idx_key = Unique(
        ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"]
    )


class SessionItem(Table, tablename="session_items", schema=SCHEMA):
    """One item (a message, tool call or result) of an OpenAI Agents SDK session's
    history. The identity column's order is the conversation's order."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s #%s", columns=[cls.session_id, cls.id])

    id = BigSerial(primary_key=True)
    session_id = Text()
    item = JSONB()
    created_at = _now()

    session_id_not_empty = Check(session_id != "")

    _indexes = (
        Index(
            "session_items_session_idx",
            ("session_id", "id"),
            why="a session's items in order; the latest N; pop the newest",
        ),
    )


#: All tables, in an order where each table comes after the tables it references
#: (except sandboxes.source_snapshot_id, added by a raw migration).
TABLES: tuple[type[Table], ...] = (
    Sandbox,
    SandboxSnapshot,
    FeatureRun,
    Agent,
    PhaseResult,
    AgentInvocation,
    AgentStep,
    ToolCall,
    MemoryRecord,
    CtaEvent,
    Budget,
    BudgetReservation,
    Message,
    Workspace,
    Checkpoint,
    Hierarchy,
    GraphThread,
    GraphCheckpoint,
    GraphBlob,
    GraphWrite,
    SessionItem,
)
