"""Feature runs and their phases.

What a worker may rely on:

* :func:`start_phase` assigns attempt numbers atomically: two workers starting the same
  phase at once get attempts 1 and 2, never the same number (the run row is locked
  while the number is chosen). A phase can only be started while it is the run's
  current phase.
* :func:`pass_phase` / :func:`fail_phase` end a running attempt exactly once.
* :func:`advance` moves ``current_phase`` one step along analysis → approaches →
  judging → implementation → pr → completed, and only after an attempt at the current
  phase passed; :func:`fail_run` ends the run from any phase. Both follow
  :data:`agent_app.transitions.RUN_PHASE`, which the database enforces too.
* Every refusal raises :class:`~agent_app.errors.RuleViolation` (or ``NotFound``) naming
  the rule, and changes nothing.
* :func:`timeline` returns a run with its phase attempts, invocations and token and
  cost totals in one statement: one consistent moment, even while workers write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
from piccolo.columns import Column
from piccolo.query.functions.aggregate import Count
from piccolo.query.functions.conditional import Coalesce

from agent_app import db, rows, sqlfile, transitions
from agent_app.enums import WORKING_PHASES, FeaturePhase, PhaseStatus
from agent_app.errors import NotFound, RuleViolation
from agent_app.tables import FeatureRun, PhaseResult
from agent_app.validation import validated


@rows.row_type(FeatureRun)
@dataclass(frozen=True)
class Run:
    """A feature run (a row of ``feature_runs``, without its request text)."""

    id: uuid.UUID
    title: str
    repo_url: str
    base_branch: str
    current_phase: FeaturePhase
    sandbox_id: uuid.UUID | None
    branch_name: str | None
    pr_url: str | None
    error: str | None
    created_at: dt.datetime
    completed_at: dt.datetime | None


@rows.row_type(PhaseResult)
@dataclass(frozen=True)
class Phase:
    """One attempt at a phase (a row of ``phase_results``, without its output)."""

    id: uuid.UUID
    run_id: uuid.UUID
    phase: FeaturePhase
    status: PhaseStatus
    attempt: int
    summary: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class InvocationSummary:
    id: uuid.UUID
    phase_result_id: uuid.UUID
    agent_id: uuid.UUID | None
    agent_type: str
    model: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    steps: int
    tool_calls: int
    started_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class PhaseTimeline:
    phase: Phase
    invocations: list[InvocationSummary] = field(default_factory=list)

    @property
    def input_tokens(self) -> int:
        return sum(i.input_tokens for i in self.invocations)

    @property
    def output_tokens(self) -> int:
        return sum(i.output_tokens for i in self.invocations)

    @property
    def cost_usd(self) -> Decimal:
        return sum((i.cost_usd for i in self.invocations), Decimal(0))


@dataclass(frozen=True)
class Timeline:
    run: Run
    phases: list[PhaseTimeline]

    @property
    def input_tokens(self) -> int:
        return sum(p.input_tokens for p in self.phases)

    @property
    def output_tokens(self) -> int:
        return sum(p.output_tokens for p in self.phases)

    @property
    def cost_usd(self) -> Decimal:
        return sum((p.cost_usd for p in self.phases), Decimal(0))


SQL = sqlfile.load("runs")
CREATE_RUN = SQL["create_run"]
START_PHASE = SQL["start_phase"]
TIMELINE = SQL["timeline"]

# Fixed-shape Piccolo statements, compiled once on first use (db.Compiled): building one
# per call cost ~160 us of client CPU. build's arguments are the parameters $1, $2, ...

#: Run $1.
_GET_RUN = db.Compiled(lambda run: rows.select(Run).where(FeatureRun.id == run), params=1)

#: Run $1, locked against other phase changes until the transaction ends.
_LOCK_RUN = db.Compiled(
    lambda run: rows.select(Run).where(FeatureRun.id == run).lock_rows("NO KEY UPDATE"),
    params=1,
)

#: How many attempts of run $1 at phase $2 are in each status.
_ATTEMPTS = db.Compiled(
    lambda run, phase: (
        PhaseResult.select(PhaseResult.status, Count())
        .where(PhaseResult.run_id == run, PhaseResult.phase == phase)
        .group_by(PhaseResult.status)
    ),
    params=2,
)


def _finish_attempt(with_output: bool) -> db.Compiled:
    """Status $1, error $2, finished now, summary $3 unless null (the stored one stays);
    with_output, output $4 (JSON text); for the attempt $-2 (the last but one parameter)
    if its status is $-1 (the last). Returns the attempt. (Two statements: Piccolo writes
    a JSONB column's non-string value, here a COALESCE, as a JSON string.)"""

    def build(status: Any, error: Any, summary: Any, *rest: Any) -> Any:
        *output, attempt, current = rest
        values: dict[Column | str, Any] = {
            PhaseResult.status: status,
            PhaseResult.error: error,
            PhaseResult.finished_at: rows.now(),
            PhaseResult.summary: Coalesce(summary, PhaseResult.summary),
        }
        if output:
            values[PhaseResult.output] = output[0]
        return (
            PhaseResult.update(values)
            .where(PhaseResult.id == attempt, PhaseResult.status == current)
            .returning(*rows.columns(Phase))
        )

    return db.Compiled(build, params=6 if with_output else 5)


_FINISH_ATTEMPT = {False: _finish_attempt(False), True: _finish_attempt(True)}

#: The status of attempt $1.
_ATTEMPT_STATUS = db.Compiled(
    lambda attempt: PhaseResult.select(PhaseResult.status).where(PhaseResult.id == attempt),
    params=1,
)

#: Run $3's attempts in status $4 become status $1 with error $2, finished now.
_END_ATTEMPTS = db.Compiled(
    lambda status, error, run, current: PhaseResult.update(
        {
            PhaseResult.status: status,
            PhaseResult.error: error,
            PhaseResult.finished_at: rows.now(),
        }
    ).where(PhaseResult.run_id == run, PhaseResult.status == current),
    params=4,
)

#: Run $3 ends in phase $1 with error $2, completed now; returns the run.
_END_RUN = db.Compiled(
    lambda phase, error, run: (
        FeatureRun.update(
            {
                FeatureRun.current_phase: phase,
                FeatureRun.error: error,
                FeatureRun.completed_at: rows.now(),
            }
        )
        .where(FeatureRun.id == run)
        .returning(*rows.columns(Run))
    ),
    params=3,
)


async def _row(c: asyncpg.Connection, query: Any) -> asyncpg.Record | None:
    """One row of a Piccolo query on ``c``, a connection already inside this operation's
    transaction (no savepoint of its own)."""
    sql, args = db.compile_query(query)
    return await c.fetchrow(sql, *args)


@validated
async def create_run(
    title: str,
    request: str,
    repo_url: str,
    *,
    base_branch: str = "main",
    sandbox_id: uuid.UUID | None = None,
    conn: asyncpg.Connection | None = None,
) -> Run:
    """A new run, in phase analysis."""
    row = await db.fetchrow(
        CREATE_RUN, title, request, repo_url, base_branch, sandbox_id, conn=conn
    )
    return rows.from_record(Run, row)


@validated
async def get_run(run_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> Run:
    row = await db.fetchrow(_GET_RUN.sql, run_id, conn=conn)
    if row is None:
        raise NotFound(f"no feature run {run_id}")
    return rows.from_record(Run, row)


async def _locked_run(c: asyncpg.Connection, run_id: uuid.UUID) -> Run:
    row = await c.fetchrow(_LOCK_RUN.sql, run_id)
    if row is None:
        raise NotFound(f"no feature run {run_id}")
    return rows.from_record(Run, row)


@validated
async def start_phase(
    run_id: uuid.UUID, phase: FeaturePhase, *, conn: asyncpg.Connection | None = None
) -> Phase:
    """Start the next attempt at ``phase``, which must be the run's current phase."""
    phase = FeaturePhase(phase)
    async with db.transaction(conn) as c:
        run = await _locked_run(c, run_id)  # serialises attempt numbering per run
        if phase not in WORKING_PHASES or run.current_phase is not phase:
            raise RuleViolation(
                "phase_not_current",
                f"phase_not_current: run {run_id} is in {run.current_phase.value}, "
                f"cannot start {phase.value}",
                table=PhaseResult._meta.tablename,
            )
        row = await c.fetchrow(START_PHASE, run_id, phase.value)
    return rows.from_record(Phase, row)


async def _finish_phase(
    phase_result_id: uuid.UUID,
    status: PhaseStatus,
    summary: str | None,
    output: Any,
    error: str | None,
    conn: asyncpg.Connection | None,
) -> Phase:
    args: list[Any] = [status.value, error, summary]
    if output is not None:
        args.append(db.dumps(output))
    args += [phase_result_id, PhaseStatus.running.value]
    row = await db.fetchrow(_FINISH_ATTEMPT[output is not None].sql, *args, conn=conn)
    if row is None:
        current = await db.fetchrow(_ATTEMPT_STATUS.sql, phase_result_id, conn=conn)
        if current is None:
            raise NotFound(f"no phase result {phase_result_id}")
        raise RuleViolation(
            "phase_status_transition",
            f"phase_status_transition: attempt {phase_result_id} is already "
            f"{current[0]}, cannot become {status.value}",
            table=PhaseResult._meta.tablename,
        )
    return rows.from_record(Phase, row)


@validated
async def pass_phase(
    phase_result_id: uuid.UUID,
    summary: str | None = None,
    output: Any = None,
    *,
    conn: asyncpg.Connection | None = None,
) -> Phase:
    """End a running attempt as passed."""
    return await _finish_phase(phase_result_id, PhaseStatus.passed, summary, output, None, conn)


@validated
async def fail_phase(
    phase_result_id: uuid.UUID,
    error: str,
    summary: str | None = None,
    output: Any = None,
    *,
    conn: asyncpg.Connection | None = None,
) -> Phase:
    """End a running attempt as failed (the run stays in its phase; start another attempt
    or :func:`fail_run`)."""
    return await _finish_phase(phase_result_id, PhaseStatus.failed, summary, output, error, conn)


@validated
async def advance(
    run_id: uuid.UUID,
    *,
    pr_url: str | None = None,
    branch_name: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Run:
    """Move the run to its next phase. The current phase needs a passed attempt and no
    running one; reaching ``completed`` stamps ``completed_at``."""
    async with db.transaction(conn) as c:
        run = await _locked_run(c, run_id)
        if not transitions.RUN_PHASE[run.current_phase]:
            raise RuleViolation(
                "run_phase_transition",
                f"run_phase_transition: run {run_id} is {run.current_phase.value}; it is over",
                table=FeatureRun._meta.tablename,
            )
        attempts = await c.fetch(_ATTEMPTS.sql, run_id, run.current_phase.value)
        counts = {status: count for status, count in attempts}
        passed = counts.get(PhaseStatus.passed.value, 0)
        running = counts.get(PhaseStatus.running.value, 0)
        if passed == 0 or running > 0:
            raise RuleViolation(
                "phase_not_passed",
                f"phase_not_passed: run {run_id} has {passed} passed and "
                f"{running} running attempts at {run.current_phase.value}",
                table=FeatureRun._meta.tablename,
            )
        following = transitions.next_phase(run.current_phase)
        values: dict[Column | str, Any] = {FeatureRun.current_phase: following.value}
        if pr_url is not None:
            values[FeatureRun.pr_url] = pr_url
        if branch_name is not None:
            values[FeatureRun.branch_name] = branch_name
        if following is FeaturePhase.completed:
            values[FeatureRun.completed_at] = rows.now()
        row = await _row(
            c,
            FeatureRun.update(values).where(FeatureRun.id == run_id).returning(*rows.columns(Run)),
        )
    return rows.from_record(Run, row)


@validated
async def fail_run(run_id: uuid.UUID, error: str, *, conn: asyncpg.Connection | None = None) -> Run:
    """End the run as failed from any phase; running attempts are failed with it."""
    async with db.transaction(conn) as c:
        run = await _locked_run(c, run_id)
        if FeaturePhase.failed not in transitions.RUN_PHASE[run.current_phase]:
            raise RuleViolation(
                "run_phase_transition",
                f"run_phase_transition: run {run_id} is {run.current_phase.value}; it is over",
                table=FeatureRun._meta.tablename,
            )
        await c.execute(
            _END_ATTEMPTS.sql,
            PhaseStatus.failed.value,
            error,
            run_id,
            PhaseStatus.running.value,
        )
        row = await c.fetchrow(_END_RUN.sql, FeaturePhase.failed.value, error, run_id)
    return rows.from_record(Run, row)


def _prefixed(record: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The ``prefix``-ed columns of a timeline row, without their prefix."""
    return {k.removeprefix(prefix): v for k, v in record.items() if k.startswith(prefix)}


_INVOCATION = tuple(f.name for f in dataclasses.fields(InvocationSummary))


@validated
async def timeline(run_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> Timeline:
    """The run, its phase attempts in order, and each attempt's invocations with token,
    cost, step and tool-call counts. One statement, so it is one consistent moment even
    while workers add attempts and invocations."""
    records = await db.fetch(TIMELINE, run_id, conn=conn)
    if not records:
        raise NotFound(f"no feature run {run_id}")
    run = rows.from_record(Run, _prefixed(records[0], "run_"))
    phases: dict[uuid.UUID, PhaseTimeline] = {}
    for r in records:
        key = r["phase_id"]
        if key is None:
            continue
        if key not in phases:
            phases[key] = PhaseTimeline(rows.from_record(Phase, _prefixed(r, "phase_")))
        if r["inv_id"] is not None:
            phases[key].invocations.append(
                InvocationSummary(**{c: r[f"inv_{c}"] for c in _INVOCATION})
            )
    return Timeline(run, list(phases.values()))
