"""The fifteen tables of the contract (the data model the platforms share: its table,
column and enum names are fixed; extra tables and columns are allowed), all in the schema
``agent``, the
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

Each CHECK is written with the column objects (Piccolo's operators, and
:mod:`agent_app.ddl`'s ``Sql``/``one_of``/``same_truth`` where Piccolo has none), so
renaming a column attribute breaks the class at import rather than leaving a rule that
names a column the code no longer has. Every column carries a ``help_text``, which the
admin shows beside the field.

Indexes that Piccolo cannot express are declared beside each table as
``_indexes`` (see :mod:`agent_app.ddl`); triggers, their functions and the foreign keys
Piccolo cannot declare live in ``agent_app/sql/schema/*.sql`` (loaded by
:mod:`agent_app.raw_schema`). Both reach the database through frozen raw
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

# MAX_AGENT_DEPTH (depth_limit) and MAX_MESSAGE_PRIORITY (priority_range) are also
# importable from here, where they were first defined.
from agent_app.constants import MAX_AGENT_DEPTH, MAX_MESSAGE_PRIORITY
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


def _now(*, help_text: str) -> Timestamptz:
    return Timestamptz(help_text=help_text)


def _maybe_time(*, help_text: str) -> Timestamptz:
    return Timestamptz(null=True, default=None, help_text=help_text)


def _owned_by(table: type[Table] | str, *, help_text: str) -> ForeignKey:
    """A required reference whose target's deletion deletes this row too."""
    return ForeignKey(
        references=table,
        null=False,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
        help_text=help_text,
    )


def _refers_to(table: type[Table] | str, *, null: bool, help_text: str) -> ForeignKey:
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
        help_text=help_text,
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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    status = Varchar(
        choices=SandboxStatus,
        default=SandboxStatus.pending,
        help_text=(
            "Lifecycle status; moves only along the sandbox lifecycle (a trigger refuses other "
            "transitions)."
        ),
    )
    source_type = Varchar(
        choices=SandboxSourceType,
        help_text="What the sandbox is built from: a git ref, a tarball, a snapshot or nothing.",
    )
    source_ref = Text(
        null=True,
        default=None,
        help_text="The git ref or tarball location it is built from; empty when there is none.",
    )
    # A foreign key to sandbox_snapshots, added by a raw migration: sandboxes and
    # snapshots refer to each other, a cycle Piccolo's migrations cannot order.
    source_snapshot_id = UUID(
        null=True,
        default=None,
        help_text="The snapshot it is built from; set exactly when source_type is snapshot.",
    )
    provider = Varchar(help_text="The container or VM provider that runs it.")
    external_id = Varchar(
        null=True,
        default=None,
        unique=True,
        help_text="The provider's id for it (unique); empty until the provider has created it.",
    )
    config = JSONB(help_text="Provider settings (JSON).")
    error = Text(null=True, default=None, help_text="Why it failed; empty unless it failed.")
    created_at = _now(help_text="When the row was created (set on insert).")
    updated_at = _now(help_text="When the row last changed (set by a trigger on every update).")
    started_at = _maybe_time(help_text="When it started running; empty until then.")
    stopped_at = _maybe_time(help_text="When it stopped; empty while it has not.")

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    sandbox_id = _refers_to(
        Sandbox,
        null=False,
        help_text=(
            "The sandbox this is an image of; that sandbox cannot be deleted while this row exists."
        ),
    )
    status = Varchar(
        choices=SnapshotStatus, default=SnapshotStatus.created, help_text="Snapshot status."
    )
    external_id = Varchar(
        null=True,
        default=None,
        help_text="The provider's id for the image; empty until the provider has one.",
    )
    size_bytes = BigInt(
        null=True, default=None, help_text="Size of the image in bytes; empty when not reported."
    )
    metadata = JSONB(help_text="Provider details about the image (JSON).")
    created_at = _now(help_text="When the snapshot was taken (set on insert).")
    deleted_at = _maybe_time(
        help_text="When the image was deleted at the provider; empty while it exists."
    )

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    title = Varchar(help_text="Short name of the feature.")
    request = Text(help_text="The feature request as the person wrote it.")
    repo_url = Text(help_text="The repository the pull request goes to.")
    base_branch = Varchar(
        default="main", help_text="The branch the work starts from and the pull request targets."
    )
    current_phase = Varchar(
        choices=FeaturePhase,
        default=FeaturePhase.analysis,
        help_text=(
            "Where the run is: analysis, approaches, judging, implementation, pr, then completed,"
            " or failed from any phase (a trigger refuses other moves)."
        ),
    )
    sandbox_id = _refers_to(
        Sandbox, null=True, help_text="The sandbox the run works in; empty until one is assigned."
    )
    branch_name = Varchar(
        null=True, default=None, help_text="The branch the work is pushed to; empty until created."
    )
    pr_url = Text(
        null=True, default=None, help_text="The pull request's address; empty until it is opened."
    )
    error = Text(null=True, default=None, help_text="Why the run failed; empty unless it failed.")
    created_at = _now(help_text="When the run was created (set on insert).")
    updated_at = _now(help_text="When the row last changed (set by a trigger on every update).")
    completed_at = _maybe_time(
        help_text="When the run reached completed or failed; empty while it is working."
    )

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    run_id = ForeignKey(
        references=FeatureRun,
        null=True,
        default=None,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
        help_text=(
            "The feature run the agent works for; deleting the run deletes the agent. Empty for "
            "an agent outside any run."
        ),
    )
    parent_id = _refers_to(
        "self",
        null=True,
        help_text="The agent that spawned this one; empty for a root (depth 0). Never changes.",
    )
    depth_level = Integer(
        default=0,
        help_text=(
            f"Depth in the agent tree, 0 for a root, at most {MAX_AGENT_DEPTH}; derived from "
            "the parent by a trigger."
        ),
    )
    agent_type = Varchar(
        choices=AgentType, help_text="The role: orchestrator, explorer, coder, judge or meta-judge."
    )
    name = Varchar(help_text="A readable name for the agent.")
    status = Varchar(
        choices=AgentStatus,
        default=AgentStatus.pending,
        help_text=(
            "Lifecycle status; reaching a terminal status returns its budgets to the parent "
            "(triggers)."
        ),
    )
    created_at = _now(help_text="When the agent was created (set on insert).")
    updated_at = _now(help_text="When the row last changed (set by a trigger on every update).")
    finished_at = _maybe_time(
        help_text=(
            "When it reached a terminal status (a trigger fills it in); empty while it is live."
        ),
    )

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    run_id = _owned_by(FeatureRun, help_text="The feature run; deleting the run deletes this row.")
    phase = Varchar(
        choices=FeaturePhase, help_text="The working phase attempted (never completed or failed)."
    )
    status = Varchar(
        choices=PhaseStatus,
        default=PhaseStatus.running,
        help_text=(
            "Outcome of the attempt: running until it ends (a trigger refuses other transitions)."
        ),
    )
    attempt = Integer(default=1, help_text="Attempt number at this phase of this run, from 1.")
    summary = Text(
        null=True,
        default=None,
        help_text="What the attempt concluded, in words; empty until written.",
    )
    output = JSONB(
        null=True,
        default=None,
        help_text="The attempt's structured result (JSON); empty until written.",
    )
    error = Text(
        null=True, default=None, help_text="Why the attempt failed; empty unless it failed."
    )
    started_at = _now(help_text="When the attempt started (set on insert).")
    finished_at = _maybe_time(
        help_text="When the attempt ended; empty exactly while it is running."
    )

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    run_id = _owned_by(FeatureRun, help_text="The feature run; deleting the run deletes this row.")
    phase_result_id = _owned_by(
        PhaseResult, help_text="The phase attempt the call belongs to (same run)."
    )
    agent_id = _refers_to(
        Agent,
        null=True,
        help_text="The agent that was called; empty when not tracked in the hierarchy.",
    )
    parent_invocation_id = _refers_to(
        "self",
        null=True,
        help_text="The invocation that made this call; empty for a top-level call.",
    )
    agent_type = Varchar(
        choices=AgentType,
        help_text="The role called: orchestrator, explorer, coder, judge or meta-judge.",
    )
    model = Varchar(help_text="The model name the call used.")
    input = JSONB(
        null=True,
        default=None,
        help_text="What the agent was given (JSON); empty when not recorded.",
    )
    output = JSONB(
        null=True, default=None, help_text="What the agent returned (JSON); empty until it returns."
    )
    finish_reason = Varchar(
        choices=FinishReason,
        null=True,
        default=None,
        help_text="Why the call ended; empty while it runs.",
    )
    error = Text(null=True, default=None, help_text="Why the call failed; empty unless it failed.")
    input_tokens = BigInt(
        default=0, help_text="Input tokens over all steps (rolled up from the steps), 0 or more."
    )
    output_tokens = BigInt(
        default=0, help_text="Output tokens over all steps (rolled up from the steps), 0 or more."
    )
    cost_usd = Numeric(
        default=Decimal(0),
        help_text="Cost in US dollars over all steps (rolled up from the steps), 0 or more.",
    )
    started_at = _now(help_text="When the call started (set on insert).")
    finished_at = _maybe_time(help_text="When the call ended; empty while it runs.")

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    invocation_id = _owned_by(
        AgentInvocation,
        help_text="The invocation this model call belongs to; deleting it deletes the step.",
    )
    step_number = Integer(
        default=0, help_text="Position within the invocation, from 0; unique per invocation."
    )
    finish_reason = Varchar(choices=FinishReason, help_text="Why the model stopped, normalised.")
    raw_finish_reason = Varchar(
        null=True,
        default=None,
        help_text="The provider's own finish reason, as reported; empty when none.",
    )
    text = Text(null=True, default=None, help_text="The text the model produced; empty when none.")
    reasoning = Text(
        null=True,
        default=None,
        help_text="The model's reasoning text, when the provider returns it.",
    )
    input_tokens = Integer(
        null=True,
        default=None,
        help_text="Input tokens; empty when the provider did not report them (not zero).",
    )
    output_tokens = Integer(
        null=True,
        default=None,
        help_text="Output tokens; empty when the provider did not report them (not zero).",
    )
    cached_input_tokens = Integer(
        null=True,
        default=None,
        help_text="Input tokens served from the provider's cache; empty when not reported.",
    )
    reasoning_tokens = Integer(
        null=True, default=None, help_text="Tokens spent on reasoning; empty when not reported."
    )
    cost_usd = Numeric(
        null=True, default=None, help_text="Cost of this call in US dollars; empty when unknown."
    )
    response_metadata = JSONB(
        null=True,
        default=None,
        help_text="The provider's response details (JSON); empty when none.",
    )
    started_at = _now(help_text="When the call started (set on insert).")
    finished_at = _maybe_time(help_text="When the call ended; empty when not recorded.")

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    step_id = _owned_by(
        AgentStep, help_text="The step that made the call; deleting it deletes the call."
    )
    invocation_id = _owned_by(
        AgentInvocation, help_text="The invocation of that step (kept equal to the step's)."
    )
    tool_call_id = Varchar(
        help_text="The provider's id for the call, which its result names; unique per invocation."
    )
    tool_name = Varchar(help_text="The tool called.")
    input = JSONB(help_text="The arguments the model passed (JSON).")
    output_type = Varchar(
        choices=ToolOutputType,
        null=True,
        default=None,
        help_text="The kind of result; empty until the result arrives.",
    )
    output = JSONB(null=True, default=None, help_text="The result (JSON); empty until it arrives.")
    provider_executed = Boolean(
        default=False, help_text="True when the provider ran the tool itself, not the worker."
    )
    started_at = _now(help_text="When the call was made (set on insert).")
    finished_at = _maybe_time(help_text="When the result arrived; empty until then.")

    output_type_enum = enum_check(output_type, ToolOutputType)
    output_has_type = Check(output.is_null() | output_type.is_not_null())
    # Its index (invocation_id, tool_call_id) also serves lookups by invocation_id.
    tool_calls_invocation_call_key = Unique(["invocation_id", "tool_call_id"])

    _indexes = (Index("tool_calls_step_idx", ("step_id",), why="a step's tool calls"),)


class MemoryRecord(Table, tablename="memory_records", schema=SCHEMA):
    """Something an agent learnt (insight, failure, decision, constraint) and left for
    later phases of the same run, tagged for retrieval."""

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    run_id = _owned_by(
        FeatureRun, help_text="The feature run; deleting the run deletes the record."
    )
    phase = Varchar(choices=FeaturePhase, help_text="The phase in which it was learnt.")
    kind = Varchar(
        choices=MemoryKind, help_text="What it is: insight, failure, decision or constraint."
    )
    content = Text(help_text="What was learnt, in words (not blank).")
    source_invocation_id = _refers_to(
        AgentInvocation,
        null=True,
        help_text="The invocation that recorded it; empty when not tracked.",
    )
    tags = Array(base_column=Varchar(), help_text="Words to find it by, searched within the run.")
    created_at = _now(help_text="When it was recorded (set on insert).")

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    run_id = _owned_by(
        FeatureRun, help_text="The feature run asking; deleting the run deletes the question."
    )
    phase = Varchar(
        choices=FeaturePhase,
        null=True,
        default=None,
        help_text="The phase that asked; empty when not tied to one.",
    )
    kind = Varchar(
        choices=CtaKind,
        help_text="What answer is wanted: approval, text, or a choice among options.",
    )
    prompt = Text(help_text="The question shown to the person (not blank).")
    options = JSONB(
        null=True,
        default=None,
        help_text="The options of a choice (a non-empty JSON list); empty for other kinds.",
    )
    response = JSONB(
        null=True,
        default=None,
        help_text="The answer (JSON); empty until answered. Answered at most once (a trigger).",
    )
    responded_by = Varchar(null=True, default=None, help_text="Who answered; empty until answered.")
    created_at = _now(help_text="When it was asked (set on insert).")
    responded_at = _maybe_time(help_text="When it was answered; set exactly when response is.")
    expires_at = _maybe_time(
        help_text="After this, an unanswered question expires; empty for no deadline."
    )

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    agent_id = _owned_by(
        Agent, help_text="The agent whose budget this is; one budget per agent and resource."
    )
    resource = Varchar(
        choices=BudgetResource,
        help_text="What is counted: tokens, cost_usd (US dollars) or tool_calls.",
    )
    allocated = Numeric(
        default=Decimal(0),
        help_text=(
            "How much the agent may spend, in the resource's unit; a child's is reserved out of "
            "its parent's budget."
        ),
    )
    used = Numeric(
        default=Decimal(0),
        help_text=(
            "Spent so far: committed reservations plus finished children's usage. Kept by "
            "triggers only."
        ),
    )
    reserved = Numeric(
        default=Decimal(0),
        help_text=(
            "Held now: held reservations plus live children's allocations. Kept by triggers only."
        ),
    )
    created_at = _now(help_text="When the budget was created (set on insert).")
    updated_at = _now(help_text="When the row last changed (set by a trigger on every update).")

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    # The budget's agent and resource, copied (the trigger refuses a mismatch) so a
    # worker's reservations read without a join. No foreign key of its own: deleting the
    # agent deletes its budgets, and those their reservations - one index fewer to keep.
    agent_id = UUID(
        default=None,
        help_text="The budget's agent, copied from the budget (a trigger refuses a mismatch).",
    )
    resource = Varchar(
        choices=BudgetResource,
        help_text="The budget's resource, copied from the budget (a trigger refuses a mismatch).",
    )
    budget_id = _owned_by(
        Budget, help_text="The budget held against; deleting it deletes its reservations."
    )
    amount = Numeric(help_text="How much is held, in the resource's unit (more than 0).")
    holder = Varchar(
        help_text="Who holds it (a worker or task name); the one that commits or releases it."
    )
    state = Varchar(
        choices=ReservationState,
        default=ReservationState.held,
        help_text="held, then committed (turned into usage), released or expired; each final.",
    )
    actual = Numeric(
        null=True,
        default=None,
        help_text="The amount actually used, set when committed; empty otherwise.",
    )
    lease_expires_at = Timestamptz(
        help_text="A held reservation still open after this expires and returns its amount."
    )
    created_at = _now(help_text="When it was made (set on insert).")
    finished_at = _maybe_time(
        help_text="When it was committed, released or expired; empty while held."
    )

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
    id = BigSerial(
        primary_key=True,
        help_text="Identity, in the order of sending: the FIFO order within a priority.",
    )
    run_id = ForeignKey(
        references=FeatureRun,
        null=True,
        default=None,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
        help_text=(
            "The feature run; a trigger fills in the recipient's run when empty. Deleting the run"
            " deletes the message."
        ),
    )
    sender_id = _refers_to(
        Agent, null=True, help_text="The sending agent; empty for a message from outside the tree."
    )
    recipient_id = _refers_to(Agent, null=False, help_text="The agent the message is for.")
    priority = SmallInt(
        default=0,
        help_text=f"0 (lowest, the default) to {MAX_MESSAGE_PRIORITY}; higher is claimed first.",
    )
    status = Varchar(
        choices=MessageStatus,
        default=MessageStatus.pending,
        help_text="pending, claimed (leased to a worker), then done, dead or cancelled.",
    )
    kind = Varchar(help_text="What the message is about, named by the sender.")
    payload = JSONB(help_text="The message body (JSON).")
    attempts = Integer(default=0, help_text="How many times it has been claimed.")
    max_attempts = Integer(
        default=5, help_text="After this many failed attempts the message is dead."
    )
    available_at = _now(help_text="Not claimable before this (a delay or a retry's backoff).")
    lease_expires_at = _maybe_time(
        help_text="While claimed: when the claim lapses and the message is claimable again."
    )
    claimed_by = Varchar(null=True, default=None, help_text="While claimed: the worker holding it.")
    last_error = Text(
        null=True, default=None, help_text="The error of the last failed attempt; empty if none."
    )
    created_at = _now(help_text="When it was sent (set on insert).")
    claimed_at = _maybe_time(help_text="When the current claim was made; empty when not claimed.")
    finished_at = _maybe_time(help_text="When it became done, dead or cancelled; empty before.")

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    agent_id = _owned_by(Agent, help_text="The agent working in it; deleting the agent deletes it.")
    sandbox_id = _refers_to(
        Sandbox, null=True, help_text="The sandbox it lives in; empty when not in a sandbox."
    )
    worktree_path = Text(
        help_text="The git worktree's path; unique among active workspaces of a sandbox."
    )
    branch_name = Varchar(
        help_text="The branch checked out; unique among active workspaces of a sandbox."
    )
    base_ref = Varchar(help_text="The ref the branch started from.")
    head_commit = Varchar(
        null=True, default=None, help_text="The latest commit recorded; empty until one is."
    )
    status = Varchar(
        choices=WorkspaceStatus, default=WorkspaceStatus.active, help_text="active until released."
    )
    created_at = _now(help_text="When it was created (set on insert).")
    updated_at = _now(help_text="When the row last changed (set by a trigger on every update).")
    released_at = _maybe_time(
        help_text="When it was released; set exactly when status is released."
    )

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    agent_id = _owned_by(
        Agent, help_text="The agent whose state this is; deleting the agent deletes it."
    )
    sequence = Integer(
        default=1, help_text="Increases per agent, from 1; the highest is the latest."
    )
    parent_checkpoint_id: ForeignKey[Checkpoint] = ForeignKey(
        references="self",
        null=True,
        default=None,
        on_delete=OnDelete.set_null,
        on_update=OnUpdate.cascade,
        help_text="The checkpoint this one follows; emptied when that one is pruned.",
    )
    state_snapshot = JSONB(help_text="The agent's saved state (JSON).")
    state_hash = Varchar(help_text="Hash of the state: an unchanged state is not saved again.")
    schema_version = Integer(default=1, help_text="Version of the state's format, from 1.")
    label = Varchar(null=True, default=None, help_text="An optional name for the checkpoint.")
    created_at = _now(help_text="When it was saved (set on insert).")

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

    id = UUID(primary_key=True, help_text="Primary key, generated on insert.")
    parent_id = _owned_by(Agent, help_text="The ancestor. Written by a trigger on agents only.")
    child_id = _owned_by(Agent, help_text="The descendant. Written by a trigger on agents only.")
    depth = Integer(default=1, help_text="How many levels apart, from 1 (a direct child).")

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
    thread_id = Text(primary_key=True, help_text="LangGraph's thread id (not empty).")
    run_id = ForeignKey(
        references=FeatureRun,
        null=True,
        default=None,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
        help_text=(
            "The feature run it belongs to; deleting the run deletes the thread. Empty when none."
        ),
    )
    agent_id = _refers_to(Agent, null=True, help_text="The agent it belongs to; empty when none.")
    created_at = _now(help_text="When the thread was first saved (set on insert).")

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


def _thread_owned(*, help_text: str) -> ForeignKey:
    return ForeignKey(
        references=GraphThread,
        null=False,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.cascade,
        help_text=help_text,
    )


class GraphCheckpoint(Table, tablename="graph_checkpoints", schema=SCHEMA):
    """One LangGraph checkpoint of a thread and namespace. The body (serialized with
    LangGraph's serializer) holds the checkpoint with its primitive channel values;
    other channel values are graph_blobs rows named by channels/versions."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s/%s", columns=[cls.thread_id, cls.checkpoint_id])

    id = BigSerial(primary_key=True, help_text="Identity, in the order of saving.")
    thread_id = _thread_owned(help_text="The thread; deleting it deletes the checkpoint.")
    checkpoint_ns = Text(
        default="", help_text="LangGraph's checkpoint namespace; empty for the root graph."
    )
    checkpoint_id = Text(help_text="LangGraph's checkpoint id; unique per thread and namespace.")
    parent_checkpoint_id = Text(
        null=True, default=None, help_text="The checkpoint this one follows; empty for the first."
    )
    type = Text(help_text="The serializer's type tag for the body.")
    body = Bytea(
        help_text="The checkpoint with its primitive channel values, serialized by LangGraph."
    )
    # The blob-backed channels at this checkpoint and their versions, side by side.
    channels = Array(
        base_column=Text(),
        help_text="The blob-backed channels at this checkpoint (beside versions).",
    )
    versions = Array(
        base_column=Text(), help_text="The version of each channel in channels, in the same order."
    )
    metadata = JSONB(help_text="LangGraph's checkpoint metadata (JSON), searchable.")
    created_at = _now(help_text="When it was saved (set on insert).")

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

    id = BigSerial(primary_key=True, help_text="Identity, in the order of saving.")
    thread_id = _thread_owned(help_text="The thread; deleting it deletes the blob.")
    checkpoint_ns = Text(
        default="", help_text="LangGraph's checkpoint namespace; empty for the root graph."
    )
    channel = Text(help_text="The channel whose value this is.")
    version = Text(help_text="The channel version; unique per thread, namespace and channel.")
    type = Text(help_text="The serializer's type tag for the blob.")
    blob = Bytea(
        null=True,
        default=None,
        help_text="The value, serialized by LangGraph; empty for an empty channel.",
    )

    graph_blobs_thread_ns_channel_version_key = Unique(
        ["thread_id", "checkpoint_ns", "channel", "version"]
    )


class GraphWrite(Table, tablename="graph_writes", schema=SCHEMA):
    """A pending write of a LangGraph task against a checkpoint, unique on
    (checkpoint, task_id, idx) so a retried put_writes stores it once. No foreign key
    to the checkpoint: LangGraph may save a step's writes before its checkpoint."""

    id = BigSerial(primary_key=True, help_text="Identity, in the order of saving.")
    thread_id = _thread_owned(help_text="The thread; deleting it deletes the write.")
    checkpoint_ns = Text(
        default="", help_text="LangGraph's checkpoint namespace; empty for the root graph."
    )
    checkpoint_id = Text(help_text="The checkpoint the write belongs to (may be saved before it).")
    task_id = Text(help_text="The LangGraph task that wrote it.")
    task_path = Text(default="", help_text="The task's path in the graph.")
    idx = Integer(default=0, help_text="Position of the write within the task's writes.")
    channel = Text(help_text="The channel written.")
    type = Text(help_text="The serializer's type tag for the value.")
    blob = Bytea(help_text="The value written, serialized by LangGraph.")

    graph_writes_checkpoint_task_idx_key = Unique(
        ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"]
    )


class SessionItem(Table, tablename="session_items", schema=SCHEMA):
    """One item (a message, tool call or result) of an OpenAI Agents SDK session's
    history. The identity column's order is the conversation's order."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s #%s", columns=[cls.session_id, cls.id])

    id = BigSerial(primary_key=True, help_text="Identity: the conversation's order.")
    session_id = Text(help_text="The Agents SDK session (not empty).")
    item = JSONB(help_text="The item: a message, tool call or result (JSON).")
    created_at = _now(help_text="When it was added (set on insert).")

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
