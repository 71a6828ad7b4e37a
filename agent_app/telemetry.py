"""Telemetry: agent invocations, their model steps, tool calls and tool results.

What a worker may rely on:

* :func:`record_step` stores a step and its tool calls in one statement: all or none.
* :func:`record_tool_result` matches a result to its call by the provider's
  ``tool_call_id`` within the invocation. A result whose call does not exist is refused
  (``tool_call_missing``), never stored orphaned; a second result for one call is
  refused (``tool_result_once``).
* :func:`finish_invocation` (or :func:`rollup_usage`) sums the steps' tokens and cost
  into the invocation. Steps keep ``None`` where the provider reported nothing
  (cached and reasoning tokens especially): absence is not zero.
* :func:`ingest` takes many steps, tool calls and results at once through PostgreSQL
  COPY, after the same validation as the single-row path. It is all or nothing: one bad
  row stores nothing and the error says which row (``row 17 (step): ...``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

import asyncpg

from agent_app import db
from agent_app.enums import AgentType, FinishReason, ToolOutputType
from agent_app.errors import NotFound, RuleViolation
from agent_app.validation import validated


@dataclass(frozen=True)
class ToolCallIn:
    """A tool call made in a step; give ``output_type``/``output`` if the result is known."""

    tool_call_id: str
    tool_name: str
    input: Any = None
    provider_executed: bool = False
    output_type: ToolOutputType | str | None = None
    output: Any = None


@dataclass(frozen=True)
class StepIn:
    """One model step. Leave a token count ``None`` when the provider did not report it."""

    invocation_id: uuid.UUID
    step_number: int
    finish_reason: FinishReason | str
    raw_finish_reason: str | None = None
    text: str | None = None
    reasoning: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: Decimal | None = None
    response_metadata: Any = None
    tool_calls: Sequence[ToolCallIn] = field(default_factory=tuple)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


@dataclass(frozen=True)
class ToolResultIn:
    """The result of an earlier tool call, matched by ``tool_call_id`` in the invocation."""

    invocation_id: uuid.UUID
    tool_call_id: str
    output_type: ToolOutputType | str
    output: Any = None


@dataclass(frozen=True)
class Ingested:
    steps: int
    tool_calls: int
    tool_results: int


# --------------------------------------------------------------------------- #
# Validation shared by the single-row and the bulk path
# --------------------------------------------------------------------------- #


def _bad(rule: str, where: str, message: str) -> RuleViolation:
    return RuleViolation(rule, f"{rule}: {where}{message}")


def _enum(value: Any, enum: type[Enum], column: str, where: str) -> str:
    try:
        return enum(value).value
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise _bad(
            f"{column}_enum", where, f"{column} {value!r} is not a {enum.__name__} ({allowed})"
        ) from None


def _check_step(step: StepIn, where: str = "") -> None:
    _enum(step.finish_reason, FinishReason, "finish_reason", where)
    if step.step_number < 0:
        raise _bad("step_number_min", where, f"step_number {step.step_number} < 0")
    for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
        value = getattr(step, name)
        if value is not None and value < 0:
            raise _bad("usage_non_negative", where, f"{name} {value} < 0")
    if step.cost_usd is not None and step.cost_usd < 0:
        raise _bad("usage_non_negative", where, f"cost_usd {step.cost_usd} < 0")
    seen: set[str] = set()
    for call in step.tool_calls:
        if call.tool_call_id in seen:
            raise _bad(
                "tool_calls_invocation_call_key", where, f"tool_call_id {call.tool_call_id!r} twice"
            )
        seen.add(call.tool_call_id)
        if call.output_type is not None:
            _enum(call.output_type, ToolOutputType, "output_type", where)
        elif call.output is not None:
            raise _bad("output_has_type", where, f"tool call {call.tool_call_id!r} has no type")


def _check_result(result: ToolResultIn, where: str = "") -> None:
    _enum(result.output_type, ToolOutputType, "output_type", where)


# --------------------------------------------------------------------------- #
# Invocations
# --------------------------------------------------------------------------- #


@validated
async def start_invocation(
    run_id: uuid.UUID,
    phase_result_id: uuid.UUID,
    agent_type: AgentType,
    model: str,
    *,
    agent_id: uuid.UUID | None = None,
    parent_invocation_id: uuid.UUID | None = None,
    input: Any = None,
    conn: asyncpg.Connection | None = None,
) -> uuid.UUID:
    """Record that an agent was invoked in a phase attempt of the run; returns its id."""
    agent_type_value = _enum(agent_type, AgentType, "agent_type", "")
    return await db.fetchval(
        "INSERT INTO agent.agent_invocations (run_id, phase_result_id, agent_type, model, "
        "agent_id, parent_invocation_id, input) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) "
        "RETURNING id",
        run_id,
        phase_result_id,
        agent_type_value,
        model,
        agent_id,
        parent_invocation_id,
        None if input is None else db.dumps(input),
        conn=conn,
    )


ROLLUP = """
UPDATE agent.agent_invocations AS i
   SET input_tokens = u.input_tokens, output_tokens = u.output_tokens, cost_usd = u.cost_usd
  FROM (SELECT coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               coalesce(sum(cost_usd), 0) AS cost_usd
          FROM agent.agent_steps WHERE invocation_id = $1) AS u
 WHERE i.id = $1
RETURNING i.input_tokens, i.output_tokens, i.cost_usd
"""


@validated
async def rollup_usage(
    invocation_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> tuple[int, int, Decimal]:
    """Set the invocation's tokens and cost to the sum over its steps (unreported counts
    add nothing). Returns ``(input_tokens, output_tokens, cost_usd)``."""
    row = await db.fetchrow(ROLLUP, invocation_id, conn=conn)
    if row is None:
        raise NotFound(f"no invocation {invocation_id}")
    return row["input_tokens"], row["output_tokens"], row["cost_usd"]


@validated
async def finish_invocation(
    invocation_id: uuid.UUID,
    *,
    output: Any = None,
    finish_reason: FinishReason | str | None = None,
    error: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> tuple[int, int, Decimal]:
    """Close the invocation (output, finish reason, error) and roll its usage up."""
    reason = (
        None if finish_reason is None else _enum(finish_reason, FinishReason, "finish_reason", "")
    )
    async with db.transaction(conn) as c:
        done = await c.fetchval(
            "UPDATE agent.agent_invocations SET output = $2::jsonb, finish_reason = $3, "
            "error = $4, finished_at = now() WHERE id = $1 RETURNING id",
            invocation_id,
            None if output is None else db.dumps(output),
            reason,
            error,
        )
        if done is None:
            raise NotFound(f"no invocation {invocation_id}")
        return await rollup_usage(invocation_id, conn=c)


# --------------------------------------------------------------------------- #
# Steps, tool calls and results: one at a time
# --------------------------------------------------------------------------- #

RECORD_STEP = """
WITH step AS (
    INSERT INTO agent.agent_steps (id, invocation_id, step_number, finish_reason,
        raw_finish_reason, text, reasoning, input_tokens, output_tokens, cached_input_tokens,
        reasoning_tokens, cost_usd, response_metadata, started_at, finished_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb,
            coalesce($14, now()), $15)
    RETURNING id, invocation_id
)
INSERT INTO agent.tool_calls (step_id, invocation_id, tool_call_id, tool_name, input,
                              provider_executed, output_type, output, finished_at)
SELECT step.id, step.invocation_id, t.call_id, t.name, t.input::jsonb, t.provider, t.otype,
       t.output::jsonb, CASE WHEN t.otype IS NULL THEN NULL ELSE now() END
  FROM step, unnest($16::varchar[], $17::varchar[], $18::text[], $19::boolean[],
                    $20::varchar[], $21::text[]) AS t(call_id, name, input, provider, otype, output)
"""


def _json(value: Any) -> str | None:
    return None if value is None else db.dumps(value)


@validated
async def record_step(step: StepIn, *, conn: asyncpg.Connection | None = None) -> uuid.UUID:
    """Store one step with its tool calls (one statement, all or none); returns its id."""
    _check_step(step)
    step_id = uuid.uuid4()
    calls = step.tool_calls
    await db.execute(
        RECORD_STEP,
        step_id,
        step.invocation_id,
        step.step_number,
        FinishReason(step.finish_reason).value,
        step.raw_finish_reason,
        step.text,
        step.reasoning,
        step.input_tokens,
        step.output_tokens,
        step.cached_input_tokens,
        step.reasoning_tokens,
        step.cost_usd,
        _json(step.response_metadata),
        step.started_at,
        step.finished_at,
        [t.tool_call_id for t in calls],
        [t.tool_name for t in calls],
        [db.dumps({} if t.input is None else t.input) for t in calls],
        [t.provider_executed for t in calls],
        [None if t.output_type is None else ToolOutputType(t.output_type).value for t in calls],
        [_json(t.output) for t in calls],
        conn=conn,
    )
    return step_id


RECORD_RESULT = """
UPDATE agent.tool_calls SET output_type = $3, output = $4::jsonb, finished_at = now()
 WHERE invocation_id = $1 AND tool_call_id = $2 AND output_type IS NULL
RETURNING id
"""


@validated
async def record_tool_result(
    result: ToolResultIn, *, conn: asyncpg.Connection | None = None
) -> uuid.UUID:
    """Attach a result to its call. Refused if the call does not exist
    (``tool_call_missing``) or already has a result (``tool_result_once``)."""
    _check_result(result)
    row_id = await db.fetchval(
        RECORD_RESULT,
        result.invocation_id,
        result.tool_call_id,
        ToolOutputType(result.output_type).value,
        _json(result.output),
        conn=conn,
    )
    if row_id is not None:
        return row_id
    exists = await db.fetchval(
        "SELECT output_type FROM agent.tool_calls WHERE invocation_id = $1 AND tool_call_id = $2",
        result.invocation_id,
        result.tool_call_id,
        conn=conn,
    )
    if exists is None:
        raise _bad(
            "tool_call_missing",
            "",
            f"invocation {result.invocation_id} has no tool call {result.tool_call_id!r}",
        )
    raise _bad(
        "tool_result_once", "", f"tool call {result.tool_call_id!r} already has a result ({exists})"
    )


# --------------------------------------------------------------------------- #
# Bulk: COPY
# --------------------------------------------------------------------------- #

STEP_COLUMNS = (
    "id", "invocation_id", "step_number", "finish_reason", "raw_finish_reason", "text",
    "reasoning", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
    "cost_usd", "response_metadata", "started_at", "finished_at",
)  # fmt: skip
TOOL_CALL_COLUMNS = (
    "id", "step_id", "invocation_id", "tool_call_id", "tool_name", "input",
    "provider_executed", "output_type", "output", "started_at", "finished_at",
)  # fmt: skip

APPLY_RESULTS = """
UPDATE agent.tool_calls AS t
   SET output_type = r.otype, output = r.output::jsonb, finished_at = now()
  FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::text[])
       AS r(invocation_id, call_id, otype, output)
 WHERE t.invocation_id = r.invocation_id AND t.tool_call_id = r.call_id AND t.output_type IS NULL
RETURNING t.id
"""


@validated
async def ingest(
    steps: Sequence[StepIn],
    results: Sequence[ToolResultIn] = (),
    *,
    conn: asyncpg.Connection | None = None,
) -> Ingested:
    """Store many steps (with their tool calls) and tool results in one transaction, with
    COPY. Validated first, exactly as :func:`record_step` and :func:`record_tool_result`
    validate; one bad row stores nothing and raises naming the row."""
    for i, step in enumerate(steps):
        _check_step(step, f"row {i} (step): ")
    for i, result in enumerate(results):
        _check_result(result, f"row {i} (tool result): ")
    now = dt.datetime.now(dt.UTC)
    step_records: list[tuple[Any, ...]] = []
    call_records: list[tuple[Any, ...]] = []
    batch_calls: dict[tuple[uuid.UUID, str], int] = {}
    answered: set[tuple[uuid.UUID, str]] = set()
    for i, s in enumerate(steps):
        step_id = uuid.uuid4()
        step_records.append((
            step_id, s.invocation_id, s.step_number, FinishReason(s.finish_reason).value,
            s.raw_finish_reason, s.text, s.reasoning, s.input_tokens, s.output_tokens,
            s.cached_input_tokens, s.reasoning_tokens, s.cost_usd, _json(s.response_metadata),
            s.started_at or now, s.finished_at,
        ))  # fmt: skip
        for t in s.tool_calls:
            key = (s.invocation_id, t.tool_call_id)
            if key in batch_calls:
                raise _bad(
                    "tool_calls_invocation_call_key",
                    f"row {i} (step): ",
                    f"tool_call_id {t.tool_call_id!r} also in row {batch_calls[key]}",
                )
            batch_calls[key] = i
            otype = None if t.output_type is None else ToolOutputType(t.output_type).value
            if otype is not None:
                answered.add(key)
            call_records.append((
                uuid.uuid4(), step_id, s.invocation_id, t.tool_call_id, t.tool_name,
                db.dumps({} if t.input is None else t.input), t.provider_executed, otype,
                _json(t.output), now, None if otype is None else now,
            ))  # fmt: skip

    async with db.transaction(conn) as c:
        invocations = {s.invocation_id for s in steps} | {r.invocation_id for r in results}
        known = {
            r["id"]
            for r in await c.fetch(
                "SELECT id FROM agent.agent_invocations WHERE id = ANY($1::uuid[])",
                list(invocations),
            )
        }
        for i, s in enumerate(steps):
            if s.invocation_id not in known:
                raise _bad(
                    "agent_steps_invocation_id_fkey",
                    f"row {i} (step): ",
                    f"invocation {s.invocation_id} does not exist",
                )
        seen_results: set[tuple[uuid.UUID, str]] = set()
        for i, r in enumerate(results):
            key = (r.invocation_id, r.tool_call_id)
            if key in answered or key in seen_results:
                raise _bad(
                    "tool_result_once",
                    f"row {i} (tool result): ",
                    f"tool call {r.tool_call_id!r} already has a result in this batch",
                )
            seen_results.add(key)
        # Results must match a call in this batch or one already stored without a result.
        outside = [
            (i, r)
            for i, r in enumerate(results)
            if (r.invocation_id, r.tool_call_id) not in batch_calls
        ]
        if outside:
            stored = {
                (r["invocation_id"], r["tool_call_id"]): r["output_type"]
                for r in await c.fetch(
                    "SELECT invocation_id, tool_call_id, output_type FROM agent.tool_calls "
                    "WHERE (invocation_id, tool_call_id) IN "
                    "(SELECT * FROM unnest($1::uuid[], $2::varchar[]))",
                    [r.invocation_id for _, r in outside],
                    [r.tool_call_id for _, r in outside],
                )
            }
            for i, r in outside:
                key = (r.invocation_id, r.tool_call_id)
                if key not in stored:
                    raise _bad(
                        "tool_call_missing",
                        f"row {i} (tool result): ",
                        f"invocation {r.invocation_id} has no tool call {r.tool_call_id!r}",
                    )
                if stored[key] is not None:
                    raise _bad(
                        "tool_result_once",
                        f"row {i} (tool result): ",
                        f"tool call {r.tool_call_id!r} already has a result",
                    )
        if step_records:
            await c.copy_records_to_table(
                "agent_steps", schema_name="agent", columns=STEP_COLUMNS, records=step_records
            )
        if call_records:
            await c.copy_records_to_table(
                "tool_calls",
                schema_name="agent",
                columns=TOOL_CALL_COLUMNS,
                records=call_records,
            )
        applied = 0
        if results:
            rows = await c.fetch(
                APPLY_RESULTS,
                [r.invocation_id for r in results],
                [r.tool_call_id for r in results],
                [ToolOutputType(r.output_type).value for r in results],
                [_json(r.output) for r in results],
            )
            applied = len(rows)
            if applied != len(results):
                raise _bad(
                    "tool_result_once",
                    "",
                    f"{len(results) - applied} result(s) matched no open call",
                )
    return Ingested(len(step_records), len(call_records), applied)
