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

from agent_app import db, transitions
from agent_app.enums import WORKING_PHASES, FeaturePhase, PhaseStatus
from agent_app.errors import NotFound, RuleViolation
from agent_app.validation import validated


@dataclass(frozen=True)
class Run:
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


@dataclass(frozen=True)
class Phase:
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


_RUN = (
    "id, title, repo_url, base_branch, current_phase, sandbox_id, branch_name, pr_url, "
    "error, created_at, completed_at"
)
_PHASE = "id, run_id, phase, status, attempt, summary, started_at, finished_at"


def _run(row: Mapping[str, Any]) -> Run:
    values = dict(row)
    values["current_phase"] = FeaturePhase(values["current_phase"])
    return Run(**values)


def _phase(row: Mapping[str, Any]) -> Phase:
    values = dict(row)
    values["phase"] = FeaturePhase(values["phase"])
    values["status"] = PhaseStatus(values["status"])
    return Phase(**values)


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
        "INSERT INTO agent.feature_runs (title, request, repo_url, base_branch, sandbox_id)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_RUN}",
        title,
        request,
        repo_url,
        base_branch,
        sandbox_id,
        conn=conn,
    )
    assert row is not None  # INSERT ... RETURNING: one row
    return _run(row)


@validated
async def get_run(run_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> Run:
    row = await db.fetchrow(
        f"SELECT {_RUN} FROM agent.feature_runs WHERE id = $1", run_id, conn=conn
    )
    if row is None:
        raise NotFound(f"no feature run {run_id}")
    return _run(row)


async def _locked_run(c: asyncpg.Connection, run_id: uuid.UUID) -> Run:
    row = await c.fetchrow(
        f"SELECT {_RUN} FROM agent.feature_runs WHERE id = $1 FOR NO KEY UPDATE", run_id
    )
    if row is None:
        raise NotFound(f"no feature run {run_id}")
    return _run(row)


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
                table="phase_results",
            )
        row = await c.fetchrow(
            "INSERT INTO agent.phase_results (run_id, phase, attempt) "
            "SELECT $1, $2::varchar, coalesce(max(attempt), 0) + 1 FROM agent.phase_results "
            f"WHERE run_id = $1 AND phase = $2::varchar RETURNING {_PHASE}",
            run_id,
            phase.value,
        )
    return _phase(row)


async def _finish_phase(
    phase_result_id: uuid.UUID,
    status: PhaseStatus,
    summary: str | None,
    output: Any,
    error: str | None,
    conn: asyncpg.Connection | None,
) -> Phase:
    row = await db.fetchrow(
        "UPDATE agent.phase_results SET status = $2, summary = coalesce($3, summary), "
        "output = coalesce($4::jsonb, output), error = $5, finished_at = now() "
        f"WHERE id = $1 AND status = 'running' RETURNING {_PHASE}",
        phase_result_id,
        status.value,
        summary,
        None if output is None else db.dumps(output),
        error,
        conn=conn,
    )
    if row is None:
        current = await db.fetchval(
            "SELECT status FROM agent.phase_results WHERE id = $1", phase_result_id, conn=conn
        )
        if current is None:
            raise NotFound(f"no phase result {phase_result_id}")
        raise RuleViolation(
            "phase_status_transition",
            f"phase_status_transition: attempt {phase_result_id} is already {current}, "
            f"cannot become {status.value}",
            table="phase_results",
        )
    return _phase(row)


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
                table="feature_runs",
            )
        counts = await c.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'passed') AS passed, "
            "count(*) FILTER (WHERE status = 'running') AS running "
            "FROM agent.phase_results WHERE run_id = $1 AND phase = $2",
            run_id,
            run.current_phase.value,
        )
        if counts["passed"] == 0 or counts["running"] > 0:
            raise RuleViolation(
                "phase_not_passed",
                f"phase_not_passed: run {run_id} has {counts['passed']} passed and "
                f"{counts['running']} running attempts at {run.current_phase.value}",
                table="feature_runs",
            )
        following = transitions.next_phase(run.current_phase)
        row = await c.fetchrow(
            "UPDATE agent.feature_runs SET current_phase = $2::varchar, "
            "pr_url = coalesce($3, pr_url), branch_name = coalesce($4, branch_name), "
            "completed_at = CASE WHEN $2::varchar = 'completed' THEN now() ELSE completed_at END "
            f"WHERE id = $1 RETURNING {_RUN}",
            run_id,
            following.value,
            pr_url,
            branch_name,
        )
    return _run(row)


@validated
async def fail_run(run_id: uuid.UUID, error: str, *, conn: asyncpg.Connection | None = None) -> Run:
    """End the run as failed from any phase; running attempts are failed with it."""
    async with db.transaction(conn) as c:
        run = await _locked_run(c, run_id)
        if FeaturePhase.failed not in transitions.RUN_PHASE[run.current_phase]:
            raise RuleViolation(
                "run_phase_transition",
                f"run_phase_transition: run {run_id} is {run.current_phase.value}; it is over",
                table="feature_runs",
            )
        await c.execute(
            "UPDATE agent.phase_results SET status = 'failed', error = $2, finished_at = now() "
            "WHERE run_id = $1 AND status = 'running'",
            run_id,
            error,
        )
        row = await c.fetchrow(
            "UPDATE agent.feature_runs SET current_phase = 'failed', error = $2, "
            f"completed_at = now() WHERE id = $1 RETURNING {_RUN}",
            run_id,
            error,
        )
    return _run(row)


# One statement, so one snapshot: the run, each of its attempts, and each attempt's
# invocations with their step and tool-call counts - one row per invocation, or one
# per attempt without any, or one for a run without attempts.
TIMELINE = f"""
SELECT {", ".join(f"r.{c} AS run_{c}" for c in _RUN.split(", "))},
       {", ".join(f"p.{c} AS phase_{c}" for c in _PHASE.split(", "))},
       i.id, i.phase_result_id, i.agent_id, i.agent_type, i.model, i.finish_reason,
       i.input_tokens, i.output_tokens, i.cost_usd,
       (SELECT count(*) FROM agent.agent_steps s WHERE s.invocation_id = i.id) AS steps,
       (SELECT count(*) FROM agent.tool_calls t WHERE t.invocation_id = i.id) AS tool_calls,
       i.started_at, i.finished_at
  FROM agent.feature_runs r
  LEFT JOIN agent.phase_results p ON p.run_id = r.id
  LEFT JOIN agent.agent_invocations i ON i.phase_result_id = p.id AND i.run_id = r.id
 WHERE r.id = $1
 ORDER BY p.started_at, p.attempt, p.id, i.started_at, i.id
"""

_INVOCATION = tuple(f.name for f in dataclasses.fields(InvocationSummary))


@validated
async def timeline(run_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> Timeline:
    """The run, its phase attempts in order, and each attempt's invocations with token,
    cost, step and tool-call counts. One statement, so it is one consistent moment even
    while workers add attempts and invocations."""
    rows = await db.fetch(TIMELINE, run_id, conn=conn)
    if not rows:
        raise NotFound(f"no feature run {run_id}")
    run = _run({c: rows[0][f"run_{c}"] for c in _RUN.split(", ")})
    phases: dict[uuid.UUID, PhaseTimeline] = {}
    for r in rows:
        if r["phase_id"] is None:
            continue
        if r["phase_id"] not in phases:
            phases[r["phase_id"]] = PhaseTimeline(
                _phase({c: r[f"phase_{c}"] for c in _PHASE.split(", ")})
            )
        if r["id"] is not None:
            phases[r["phase_id"]].invocations.append(
                InvocationSummary(**{c: r[c] for c in _INVOCATION})
            )
    return Timeline(run, list(phases.values()))
