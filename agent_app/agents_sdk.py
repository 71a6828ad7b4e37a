"""OpenAI Agents SDK on agent_app's PostgreSQL: a session store and telemetry hooks.

Install with ``pip install 'agent_app[agents]'``.

* :class:`AgentAppSession` implements the SDK's ``Session`` protocol: pass it to
  ``Runner.run(agent, input, session=...)`` and the conversation history lives in
  the ``session_items`` table.
* :class:`TelemetryHooks` (``RunHooks``) records an SDK run as an agent invocation of ours
  (:mod:`agent_app.telemetry`): each model response a step with its usage, each function
  call a tool call with its result.

Both run on :func:`agent_app.db.connection` (the Piccolo transaction in progress, if any,
else Piccolo's pool) unless given an asyncpg pool.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import asyncpg
from agents import Agent, RunContextWrapper, RunHooks, Tool
from agents.items import ModelResponse, TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import resolve_session_limit
from openai.types.responses import ResponseFunctionToolCall

from agent_app import db, sqlfile, telemetry
from agent_app.enums import AgentType, FinishReason, ToolOutputType
from agent_app.errors import AgentAppError


class InvalidSessionId(AgentAppError):
    rule = "session_id_not_empty"


# --------------------------------------------------------------------------- #
# Session
# --------------------------------------------------------------------------- #

SQL = sqlfile.load("agents_sdk")
ADD_ITEMS = SQL["add_items"]
# Reads once per agent turn: fixed statements (a Piccolo query with its LIMIT compiles on
# every call, which costs as much as the read).
GET_ALL = SQL["get_all"]
GET_LATEST = SQL["get_latest"]
POP_ITEM = SQL["pop_item"]
CLEAR_SESSION = SQL["clear_session"]


class AgentAppSession:
    """The SDK's ``Session`` protocol over the ``session_items`` table.

    What a caller may rely on:

    * items come back in the order they were added (the table's identity column; the
      items of one ``add_items`` call keep their order and are stored all or none);
    * ``get_items(limit)`` returns the latest ``limit`` items, oldest first (``limit``
      falls back to ``session_settings.limit``; ``None`` = all; ``0`` = none);
    * ``pop_item`` removes and returns the newest item, or ``None`` when the session is
      empty; concurrent pops never return the same item twice;
    * sessions are isolated by ``session_id``; ``clear_session`` empties one.

    :param session_id: the conversation's id (not empty).
    :param pool: an asyncpg pool; without one, :func:`agent_app.db.connection`.
    :param session_settings: the SDK's settings (the default ``limit``).
    """

    def __init__(
        self,
        session_id: str,
        *,
        pool: asyncpg.Pool | None = None,
        session_settings: SessionSettings | None = None,
    ) -> None:
        if not session_id:
            raise InvalidSessionId(f"session_id {session_id!r} is empty")
        self.session_id = session_id
        self.pool = pool
        self.session_settings = session_settings or SessionSettings()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        async with db.connection(from_pool=self.pool) as conn:
            yield conn

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest ``limit`` items (all when ``None``), oldest first."""
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is not None and effective <= 0:
            return []
        async with self._conn() as conn:
            if effective is None:
                rows = await conn.fetch(GET_ALL, self.session_id)
            else:
                rows = await conn.fetch(GET_LATEST, self.session_id, effective)
        return [json.loads(r[0]) for r in rows]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in order, in one statement."""
        if not items:
            return
        payload = [json.dumps(item, separators=(",", ":")) for item in items]
        async with self._conn() as conn:
            await conn.execute(ADD_ITEMS, self.session_id, payload)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item; ``None`` if the session is empty."""
        async with self._conn() as conn:
            raw = await conn.fetchval(POP_ITEM, self.session_id)
        return None if raw is None else json.loads(raw)

    async def clear_session(self) -> None:
        """Delete every item of this session."""
        async with self._conn() as conn:
            await conn.execute(CLEAR_SESSION, self.session_id)


# --------------------------------------------------------------------------- #
# Telemetry
# --------------------------------------------------------------------------- #


class _Tokens(TypedDict):
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    reasoning_tokens: int | None


def _usage(response: ModelResponse) -> _Tokens:
    """Token counts of one response; all ``None`` when the provider reported none (the
    SDK's model adapters fill an unreported usage with zeros, ``Usage(requests=1)``; a
    real model call never has zero input tokens)."""
    u = response.usage
    if u.total_tokens == 0 and u.input_tokens == 0 and u.output_tokens == 0:
        return _Tokens(
            input_tokens=None, output_tokens=None, cached_input_tokens=None, reasoning_tokens=None
        )
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cached_input_tokens": getattr(u.input_tokens_details, "cached_tokens", None),
        "reasoning_tokens": getattr(u.output_tokens_details, "reasoning_tokens", None),
    }


def _finish(response: ModelResponse) -> tuple[FinishReason, str | None]:
    """Our finish reason and the provider's own word for it.

    The SDK's ``ModelResponse`` carries no finish reason; what the provider said is in
    its output items (Responses API): a ``function_call`` item ends the turn for tools,
    and a message's ``status`` is ``completed`` or ``incomplete`` (cut off)."""
    kinds = [getattr(item, "type", None) for item in response.output]
    if "function_call" in kinds:
        return FinishReason.tool_calls, "function_call"
    statuses = [getattr(i, "status", None) for i in response.output if getattr(i, "status", None)]
    raw = statuses[-1] if statuses else None
    if raw == "incomplete":
        return FinishReason.length, raw
    if raw in (None, "completed"):
        return FinishReason.stop, raw
    return FinishReason.other, raw


def _text(response: ModelResponse) -> str | None:
    parts: list[str] = []
    for item in response.output:
        if getattr(item, "type", None) == "message":
            for content in getattr(item, "content", []):
                text = getattr(content, "text", None)
                if text:
                    parts.append(text)
    return "".join(parts) or None


def _reasoning(response: ModelResponse) -> str | None:
    parts: list[str] = []
    for item in response.output:
        if getattr(item, "type", None) == "reasoning":
            parts.extend(s.text for s in getattr(item, "summary", []) or [])
    return "\n".join(parts) or None


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"raw": raw}


class TelemetryHooks(RunHooks[Any]):
    """``RunHooks`` that record one SDK run as one agent invocation of ours.

    * the first agent start opens the invocation (``agent_type``, the agent's model name
      or ``model``) in the given run and phase attempt;
    * each model response becomes the next step (0, 1, ...) with its text, reasoning,
      usage (input, output, cached input and reasoning tokens; ``None`` where the
      provider reported none), finish reason and the provider's raw finish reason, and
      its function calls as tool calls;
    * each function tool's result is attached to its call (by the provider's call id);
    * the final agent's end closes the invocation with its output and rolls usage up.

    ``invocation_id`` holds the invocation once opened. Use one instance per run.
    """

    def __init__(
        self,
        run_id: uuid.UUID,
        phase_result_id: uuid.UUID,
        *,
        agent_type: AgentType = AgentType.coder,
        agent_id: uuid.UUID | None = None,
        parent_invocation_id: uuid.UUID | None = None,
        model: str | None = None,
        input: Any = None,
    ) -> None:
        self.run_id = run_id
        self.phase_result_id = phase_result_id
        self.agent_type = agent_type
        self.agent_id = agent_id
        self.parent_invocation_id = parent_invocation_id
        self.model = model
        self.input = input
        self.invocation_id: uuid.UUID | None = None
        self.steps = 0
        self._llm_started: dt.datetime | None = None
        self._last_reason: FinishReason | None = None

    def _model_name(self, agent: Agent[Any]) -> str:
        if self.model:
            return self.model
        model = agent.model
        if isinstance(model, str):
            return model
        if model is not None:
            return getattr(model, "model", None) or type(model).__name__
        return "default"

    async def on_agent_start(self, context: Any, agent: Agent[Any]) -> None:
        if self.invocation_id is None:
            self.invocation_id = await telemetry.start_invocation(
                self.run_id,
                self.phase_result_id,
                self.agent_type,
                self._model_name(agent),
                agent_id=self.agent_id,
                parent_invocation_id=self.parent_invocation_id,
                input=self.input,
            )

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        self._llm_started = dt.datetime.now(dt.UTC)

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        if self.invocation_id is None:
            await self.on_agent_start(context, agent)
        assert self.invocation_id is not None
        reason, raw = _finish(response)
        calls = [
            telemetry.ToolCallIn(
                tool_call_id=item.call_id,
                tool_name=item.name,
                input=_arguments(item.arguments),
            )
            for item in response.output
            if isinstance(item, ResponseFunctionToolCall)
        ]
        await telemetry.record_step(
            telemetry.StepIn(
                invocation_id=self.invocation_id,
                step_number=self.steps,
                finish_reason=reason,
                raw_finish_reason=raw,
                text=_text(response),
                reasoning=_reasoning(response),
                response_metadata={
                    "response_id": response.response_id,
                    "request_id": response.request_id,
                },
                tool_calls=calls,
                started_at=self._llm_started,
                finished_at=dt.datetime.now(dt.UTC),
                **_usage(response),
            )
        )
        self.steps += 1
        self._last_reason = reason

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        call_id = getattr(context, "tool_call_id", None)
        if self.invocation_id is None or call_id is None:
            return
        if isinstance(result, str):
            output_type, output = ToolOutputType.text, result
        else:
            try:
                output = json.loads(json.dumps(result))
                output_type = ToolOutputType.json
            except (TypeError, ValueError):
                output_type, output = ToolOutputType.text, str(result)
        await telemetry.record_tool_result(
            telemetry.ToolResultIn(self.invocation_id, call_id, output_type, output)
        )

    async def on_agent_end(self, context: Any, agent: Agent[Any], output: Any) -> None:
        if self.invocation_id is None:
            return
        try:
            stored = json.loads(json.dumps(output))
        except (TypeError, ValueError):
            stored = str(output)
        await telemetry.finish_invocation(
            self.invocation_id,
            output={"final_output": stored, "agent": agent.name},
            finish_reason=self._last_reason or FinishReason.stop,
        )
