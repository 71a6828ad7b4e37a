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
from piccolo.columns import Column

from agent_app import db, rows, sqlfile
from agent_app.enums import AgentType, FinishReason, ToolOutputType
from agent_app.errors import NotFound, RuleViolation
from agent_app.tables import AgentInvocation, AgentStep, ToolCall
from agent_app.validation import validated

SQL = sqlfile.load("telemetry")
START_INVOCATION = SQL["start_invocation"]
ROLLUP = SQL["rollup_usage"]
RECORD_STEP = SQL["record_step"]
KNOWN_INVOCATIONS = SQL["known_invocations"]
STORED_CALLS = SQL["stored_calls"]
STORED_STEPS = SQL["stored_steps"]
APPLY_RESULTS = SQL["apply_results"]

# Fixed-shape Piccolo statements, compiled once on first use (db.Compiled): building one
# per call cost ~160 us of client CPU. build's arguments are the parameters $1, $2, ...

#: Close invocation $4: output $1 (JSON text), finish reason $2, error $3, finished now;
#: returns its id (no row: no such invocation).
_FINISH = db.Compiled(
    lambda output, reason, error, invocation: (
        AgentInvocation.update(
            {
                AgentInvocation.output: output,
                AgentInvocation.finish_reason: reason,
                AgentInvocation.error: error,
                AgentInvocation.finished_at: rows.now(),
            }
        )
        .where(AgentInvocation.id == invocation)
        .returning(AgentInvocation.id)
    ),
    params=4,
)

#: Give tool call $4 of invocation $3, if it has no result yet, output type $1 and output
#: $2 (JSON text or null), finished now; returns its id (no row: missing or answered).
_SET_RESULT = db.Compiled(
    lambda output_type, output, invocation, call: (
        ToolCall.update(
            {
                ToolCall.output_type: output_type,
                ToolCall.output: output,
                ToolCall.finished_at: rows.now(),
            }
        )
        .where(
            ToolCall.invocation_id == invocation,
            ToolCall.tool_call_id == call,
            ToolCall.output_type.is_null(),
        )
        .returning(ToolCall.id)
    ),
    params=4,
)

#: The output type of tool call $2 of invocation $1 (no row: no such call).
_RESULT_OF = db.Compiled(
    lambda invocation, call: ToolCall.select(ToolCall.output_type).where(
        ToolCall.invocation_id == invocation, ToolCall.tool_call_id == call
    ),
    params=2,
)


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


@dataclass(frozen=True, slots=True)
class _EnumColumn:
    """An enum column as validation needs it, read once (validation runs per row)."""

    enum: type[Enum]
    name: str


def _enum_column(column: Column) -> _EnumColumn:
    enum = column._meta.choices
    assert isinstance(enum, type) and issubclass(enum, Enum), column
    return _EnumColumn(enum, column._meta.db_column_name)


_STEP_FINISH_REASON = _enum_column(AgentStep.finish_reason)
_CALL_OUTPUT_TYPE = _enum_column(ToolCall.output_type)
_INVOCATION_AGENT_TYPE = _enum_column(AgentInvocation.agent_type)
_INVOCATION_FINISH_REASON = _enum_column(AgentInvocation.finish_reason)


def _enum(value: Any, column: _EnumColumn, where: str) -> str:
    """``value`` as the enum column's value, or ``<column>_enum`` naming the allowed ones."""
    try:
        return str(column.enum(value).value)
    except ValueError:
        name, enum = column.name, column.enum
        allowed = ", ".join(m.value for m in enum)
        raise _bad(
            f"{name}_enum", where, f"{name} {value!r} is not a {enum.__name__} ({allowed})"
        ) from None


def _check_calls(step: StepIn, where: str = "") -> None:
    """What ``@validated`` cannot see in a step (it has already checked every field:
    enums converted to members, step number and usage in range): one call per
    ``tool_call_id``, and no output without an output type."""
    seen: set[str] = set()
    for call in step.tool_calls:
        if call.tool_call_id in seen:
            raise _bad(_ONE_CALL_PER_ID, where, f"tool_call_id {call.tool_call_id!r} twice")
        seen.add(call.tool_call_id)
        if call.output_type is None and call.output is not None:
            raise _bad("output_has_type", where, f"tool call {call.tool_call_id!r} has no type")


#: The unique key on a tool call's (invocation_id, tool_call_id).
_ONE_CALL_PER_ID = ToolCall.tool_calls_invocation_call_key._meta.name
#: The unique key on a step's (invocation_id, step_number).
_ONE_STEP_PER_NUMBER = AgentStep.agent_steps_invocation_step_key._meta.name
#: The foreign key from a step to its invocation (PostgreSQL's default name).
_STEP_INVOCATION_FKEY = (
    f"{AgentStep._meta.tablename}_{AgentStep.invocation_id._meta.db_column_name}_fkey"
)


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
    agent_type_value = _enum(agent_type, _INVOCATION_AGENT_TYPE, "")
    return await db.fetchval(
        START_INVOCATION,
        run_id,
        phase_result_id,
        agent_type_value,
        model,
        agent_id,
        parent_invocation_id,
        None if input is None else db.dumps(input),
        conn=conn,
    )


@validated
async def rollup_usage(
    invocation_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> tuple[int, int, Decimal]:
    """Set the invocation's tokens and cost to the sum over its steps (unreported counts
    add nothing). Returns ``(input_tokens, output_tokens, cost_usd)``."""
    row = await db.fetchrow(ROLLUP, invocation_id, conn=conn)
    if row is None:
        raise NotFound(f"no invocation {invocation_id}")
    return row[0], row[1], row[2]


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
    reason = None if finish_reason is None else _enum(finish_reason, _INVOCATION_FINISH_REASON, "")
    async with db.transaction(conn) as c:
        done = await c.fetchval(_FINISH.sql, _json(output), reason, error, invocation_id)
        if done is None:
            raise NotFound(f"no invocation {invocation_id}")
        return await rollup_usage(invocation_id, conn=c)


# --------------------------------------------------------------------------- #
# Steps, tool calls and results: one at a time
# --------------------------------------------------------------------------- #


def _json(value: Any) -> str | None:
    return None if value is None else db.dumps(value)


@validated
async def record_step(step: StepIn, *, conn: asyncpg.Connection | None = None) -> uuid.UUID:
    """Store one step with its tool calls (one statement, all or none); returns its id."""
    _check_calls(step)
    step_id = uuid.uuid4()
    calls = step.tool_calls
    dumps = db.dumps
    # (@validated made the enums members: StrEnum members are their values, as text.)
    await db.execute(
        RECORD_STEP,
        step_id,
        step.invocation_id,
        step.step_number,
        step.finish_reason,
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
        [dumps({} if t.input is None else t.input) for t in calls],
        [t.provider_executed for t in calls],
        [t.output_type for t in calls],
        [_json(t.output) for t in calls],
        conn=conn,
    )
    return step_id


@validated
async def record_tool_result(
    result: ToolResultIn, *, conn: asyncpg.Connection | None = None
) -> uuid.UUID:
    """Attach a result to its call. Refused if the call does not exist
    (``tool_call_missing``) or already has a result (``tool_result_once``)."""
    row = await db.fetchrow(
        _SET_RESULT.sql,
        result.output_type,
        _json(result.output),
        result.invocation_id,
        result.tool_call_id,
        conn=conn,
    )
    if row is not None:
        return row[0]  # type: ignore[no-any-return]
    stored = await db.fetchrow(_RESULT_OF.sql, result.invocation_id, result.tool_call_id, conn=conn)
    if stored is None:
        raise _bad(
            "tool_call_missing",
            "",
            f"invocation {result.invocation_id} has no tool call {result.tool_call_id!r}",
        )
    exists = stored[0]
    raise _bad(
        "tool_result_once", "", f"tool call {result.tool_call_id!r} already has a result ({exists})"
    )


# --------------------------------------------------------------------------- #
# Bulk: COPY
# --------------------------------------------------------------------------- #

#: The columns COPY fills, in the order of ingest's records (names from the Tables).
STEP_COLUMNS = tuple(
    c._meta.db_column_name
    for c in (
        AgentStep.id, AgentStep.invocation_id, AgentStep.step_number, AgentStep.finish_reason,
        AgentStep.raw_finish_reason, AgentStep.text, AgentStep.reasoning,
        AgentStep.input_tokens, AgentStep.output_tokens, AgentStep.cached_input_tokens,
        AgentStep.reasoning_tokens, AgentStep.cost_usd, AgentStep.response_metadata,
        AgentStep.started_at, AgentStep.finished_at,
    )
)  # fmt: skip
TOOL_CALL_COLUMNS = tuple(
    c._meta.db_column_name
    for c in (
        ToolCall.id, ToolCall.step_id, ToolCall.invocation_id, ToolCall.tool_call_id,
        ToolCall.tool_name, ToolCall.input, ToolCall.provider_executed, ToolCall.output_type,
        ToolCall.output, ToolCall.started_at, ToolCall.finished_at,
    )
)  # fmt: skip


@validated
async def ingest(
    steps: Sequence[StepIn],
    results: Sequence[ToolResultIn] = (),
    *,
    conn: asyncpg.Connection | None = None,
) -> Ingested:
    """Store many steps (with their tool calls) and tool results in one transaction, with
    COPY. Validated first, exactly as :func:`record_step` and :func:`record_tool_result`
    validate; one bad row stores nothing and raises naming the row (when a batch breaks
    several rules, the first one found is named). Inside a caller's transaction it runs
    in a savepoint: a refusal leaves that transaction usable. Repeating a batch that was
    stored (a retry after an ambiguous error) is refused whole - its steps by
    ``agent_steps_invocation_step_key``, its results by ``tool_result_once`` - so nothing
    is stored twice."""
    # Every field was checked by @validated (enums are members by now). What is left:
    # tool call ids, within a step and across the batch, and outputs without a type.
    now = dt.datetime.now(dt.UTC)
    dumps, new_id = db.dumps, uuid.uuid4
    step_records: list[tuple[Any, ...]] = []
    call_records: list[tuple[Any, ...]] = []
    batch_calls: dict[tuple[uuid.UUID, str], int] = {}
    batch_steps: dict[tuple[uuid.UUID, int], int] = {}
    answered: set[tuple[uuid.UUID, str]] = set()
    for i, s in enumerate(steps):
        step_id = new_id()
        invocation = s.invocation_id
        meta = s.response_metadata
        first_step = batch_steps.setdefault((invocation, s.step_number), i)
        if first_step != i:
            raise _bad(
                _ONE_STEP_PER_NUMBER,
                f"row {i} (step): ",
                f"step_number {s.step_number} also in row {first_step}",
            )
        step_records.append((
            step_id, invocation, s.step_number, s.finish_reason, s.raw_finish_reason, s.text,
            s.reasoning, s.input_tokens, s.output_tokens, s.cached_input_tokens,
            s.reasoning_tokens, s.cost_usd, None if meta is None else dumps(meta),
            s.started_at or now, s.finished_at,
        ))  # fmt: skip
        for t in s.tool_calls:
            key = (invocation, t.tool_call_id)
            if key in batch_calls:
                first = batch_calls[key]
                again = "twice" if first == i else f"also in row {first}"
                raise _bad(
                    _ONE_CALL_PER_ID,
                    f"row {i} (step): ",
                    f"tool_call_id {t.tool_call_id!r} {again}",
                )
            batch_calls[key] = i
            otype, output = t.output_type, t.output
            if otype is not None:
                answered.add(key)
            elif output is not None:
                raise _bad(
                    "output_has_type",
                    f"row {i} (step): ",
                    f"tool call {t.tool_call_id!r} has no type",
                )
            call_records.append((
                new_id(), step_id, invocation, t.tool_call_id, t.tool_name,
                dumps({} if t.input is None else t.input), t.provider_executed, otype,
                None if output is None else dumps(output), now, None if otype is None else now,
            ))  # fmt: skip
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
    result_args = (
        [r.invocation_id for r in results],
        [r.tool_call_id for r in results],
        [r.output_type for r in results],
        [_json(r.output) for r in results],
    )

    async with db.connection(conn) as c:
        try:
            async with c.transaction():
                if outside:
                    await _check_outside(c, outside)
                if step_records:
                    await c.copy_records_to_table(
                        AgentStep._meta.tablename,
                        schema_name=AgentStep._meta.schema,
                        columns=STEP_COLUMNS,
                        records=step_records,
                    )
                if call_records:
                    await c.copy_records_to_table(
                        ToolCall._meta.tablename,
                        schema_name=ToolCall._meta.schema,
                        columns=TOOL_CALL_COLUMNS,
                        records=call_records,
                    )
                applied = 0
                if results:
                    applied = len(await c.fetch(APPLY_RESULTS, *result_args))
                    if applied != len(results):
                        raise _bad(
                            "tool_result_once",
                            "",
                            f"{len(results) - applied} result(s) matched no open call",
                        )
        except asyncpg.ForeignKeyViolationError as e:
            # The database refused an unknown invocation (no query up front for it): name
            # the first step that has one. Its transaction (or savepoint) is rolled back,
            # so the connection can ask.
            if e.constraint_name == _STEP_INVOCATION_FKEY:
                await _name_unknown_invocation(c, steps)
            raise
        except asyncpg.UniqueViolationError as e:
            # A step number or tool call id already stored (a batch repeated after an
            # ambiguous error, or a clash): name the first row that has one.
            if e.constraint_name in (_ONE_STEP_PER_NUMBER, _ONE_CALL_PER_ID):
                await _name_stored_row(c, steps, e.constraint_name)
            raise
    return Ingested(len(step_records), len(call_records), applied)


async def _check_outside(c: asyncpg.Connection, outside: list[tuple[int, ToolResultIn]]) -> None:
    """Results for calls outside the batch must match a stored call without a result."""
    stored = {
        (r[0], r[1]): r[2]
        for r in await c.fetch(
            STORED_CALLS,
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


async def _name_stored_row(c: asyncpg.Connection, steps: Sequence[StepIn], rule: str) -> None:
    """Raise the refusal of the first step whose step number (``rule`` is the steps' key)
    or one of whose tool call ids is already stored (none found: the caller re-raises
    the database's refusal)."""
    if rule == _ONE_STEP_PER_NUMBER:
        stored = {
            (r[0], r[1])
            for r in await c.fetch(
                STORED_STEPS, [s.invocation_id for s in steps], [s.step_number for s in steps]
            )
        }
        for i, s in enumerate(steps):
            if (s.invocation_id, s.step_number) in stored:
                raise _bad(rule, f"row {i} (step): ", f"step_number {s.step_number} is stored")
        return
    pairs = [(s.invocation_id, t.tool_call_id) for s in steps for t in s.tool_calls]
    calls = {
        (r[0], r[1])
        for r in await c.fetch(STORED_CALLS, [p[0] for p in pairs], [p[1] for p in pairs])
    }
    for i, s in enumerate(steps):
        for t in s.tool_calls:
            if (s.invocation_id, t.tool_call_id) in calls:
                raise _bad(rule, f"row {i} (step): ", f"tool_call_id {t.tool_call_id!r} is stored")


async def _name_unknown_invocation(c: asyncpg.Connection, steps: Sequence[StepIn]) -> None:
    """Raise the refusal of the first step whose invocation does not exist (none found:
    it appeared since; the caller re-raises the database's refusal)."""
    known = {r[0] for r in await c.fetch(KNOWN_INVOCATIONS, list({s.invocation_id for s in steps}))}
    for i, s in enumerate(steps):
        if s.invocation_id not in known:
            raise _bad(
                _STEP_INVOCATION_FKEY,
                f"row {i} (step): ",
                f"invocation {s.invocation_id} does not exist",
            )
