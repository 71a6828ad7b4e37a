"""What an operator may do to a running system, through the worker API.

Each action is the same call a worker would make (``cta.answer``, ``queue.redrive``,
``queue.release``, ``runs.fail_run``, ``hierarchy.finish``), so every rule the worker
API and the database enforce holds here too, and a refusal is the same typed error
(:class:`~agent_app.errors.AgentAppError`, whose message starts with the rule's name)
that the console shows the operator. Each action acts on identities (a question id,
message ids, a run id) and is safe to repeat: the second time it changes nothing, and
says so.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from agent_app import cta, db, hierarchy, queue, runs, sandboxes, sqlfile, telemetry
from agent_app import tables as t
from agent_app.enums import (
    TERMINAL_AGENT_STATUSES,
    AgentStatus,
    CtaKind,
    FeaturePhase,
    FinishReason,
    MessageStatus,
    WorkspaceStatus,
)
from agent_app.errors import AgentAppError, LeaseLost, NotFound, RuleViolation
from agent_app.rows import columns, from_record, from_records, row_type, select

SQL = sqlfile.load("operator")
REQUEUE_CLAIM = SQL["requeue_claim"]


# The rows the operator's reads return (beside queue.Message).
@row_type(t.Message)
@dataclass(frozen=True)
class _MessageStatus:
    status: MessageStatus


@row_type(t.AgentInvocation)
@dataclass(frozen=True)
class _Invocation:
    id: uuid.UUID


@row_type(t.Agent)
@dataclass(frozen=True)
class _Agent:
    id: uuid.UUID


@row_type(t.Workspace)
@dataclass(frozen=True)
class _Workspace:
    id: uuid.UUID


async def answer_question(question_id: uuid.UUID, text: str, *, operator: str) -> cta.Question:
    """Answer an open question as ``operator``. ``text`` is what the person typed: for an
    approval ``yes``/``no`` (also true/false, approve/reject), for a choice one of the
    options, for a text question the text itself. Refused like :func:`cta.answer`
    (``cta_answered_once``, ``cta_expired``, ``choice_not_offered``,
    ``cta_response_type``)."""
    question = await cta.get(question_id)
    response: Any = text
    if question.kind is CtaKind.approval:
        word = text.strip().lower()
        if word in ("yes", "y", "true", "approve", "approved"):
            response = True
        elif word in ("no", "n", "false", "reject", "rejected"):
            response = False
        else:
            raise RuleViolation(
                "cta_response_type",
                f"cta_response_type: an approval takes yes or no, got {text!r}",
            )
    elif question.kind is CtaKind.choice:
        # An option as the worker offered it (a number stays a number); anything else
        # goes through as typed and the database refuses it (choice_not_offered).
        response = next((o for o in question.options or [] if str(o) == text), text)
    return await cta.answer(question_id, response, responded_by=operator)


async def redrive(message_ids: list[int]) -> int:
    """Bring the given dead messages back to pending (attempts reset); messages that are
    not dead are left alone. Returns how many came back."""
    if not message_ids:
        return 0
    return await queue.redrive(message_ids)


async def release_lease(message_id: int) -> queue.Message:
    """Give a claimed message back to its queue at once, as its holder would with
    :func:`queue.release` (the attempt is not counted), for a worker that is stuck or
    gone, whether or not its lease has already expired. Acts on the claim as it was read
    (holder and attempt): if the holder acks or fails it, or another worker re-claims it
    meanwhile, :class:`~agent_app.errors.LeaseLost` is raised and nothing changes.
    Raises ``message_not_claimed`` for a message that holds no lease."""
    row = await db.query_row(
        t.Message.select(*columns(queue.Message), t.Message.status).where(
            t.Message.id == message_id
        )
    )
    if row is None:
        raise NotFound(f"no message {message_id}")
    status = from_record(_MessageStatus, row).status
    if status is not MessageStatus.claimed:
        raise RuleViolation(
            "message_not_claimed",
            f"message_not_claimed: message {message_id} is {status}, it holds no lease",
            table=t.Message._meta.tablename,
        )
    held = from_record(queue.Message, row)
    # By the claim as read (holder and attempt), whether or not its lease has expired:
    # a gone worker's lease usually has, and the holder itself could no longer release it.
    released = await db.fetchval(REQUEUE_CLAIM, held.id, held.claimed_by, held.attempts)
    if released is None:
        raise LeaseLost([held.id], held.claimed_by)
    return held


@dataclass(frozen=True)
class Cancelled:
    """What :func:`cancel_run` did."""

    run: runs.Run
    agents_finished: int
    invocations_closed: int
    questions_closed: int
    workspaces_released: int


async def cancel_run(run_id: uuid.UUID, reason: str = "cancelled by an operator") -> Cancelled:
    """Stop a run for good: fail it (its running attempts with it), close its open
    invocations with finish reason ``error``, finish its live agent trees as
    ``terminated`` (their pending messages cancelled, budgets returned to the parents),
    close its open questions and release its active workspaces.

    Each step is its own worker-API call and each looks at what the database holds, so
    a cancel that was interrupted can be repeated and finishes the job; a run already
    over is not failed again (its leftovers are still cleaned up). Raises
    :class:`~agent_app.errors.NotFound` for an unknown run."""
    run = await runs.get_run(run_id)
    if run.current_phase not in (FeaturePhase.completed, FeaturePhase.failed):
        with contextlib.suppress(RuleViolation):  # it ended meanwhile
            run = await runs.fail_run(run_id, reason)
    open_invocations = from_records(
        _Invocation,
        await db.query(
            select(_Invocation).where(
                (t.AgentInvocation.run_id == run_id) & t.AgentInvocation.finished_at.is_null()
            )
        ),
    )
    roots = from_records(
        _Agent,
        await db.query(
            select(_Agent).where(
                (t.Agent.run_id == run_id)
                & t.Agent.parent_id.is_null()
                & t.Agent.status.not_in(list(TERMINAL_AGENT_STATUSES))
            )
        ),
    )
    for inv in open_invocations:
        await telemetry.finish_invocation(inv.id, finish_reason=FinishReason.error, error=reason)
    finished = 0
    for root in roots:
        with contextlib.suppress(AgentAppError):  # finished meanwhile
            done = await hierarchy.finish(root.id, AgentStatus.terminated)
            finished += 1 + len(done.terminated)
    questions = await cta.expire(run_id=run_id)
    active = from_records(
        _Workspace,
        await db.query(
            select(_Workspace).where(
                (t.Workspace.agent_id.run_id == run_id)
                & (t.Workspace.status == WorkspaceStatus.active)
            )
        ),
    )
    released = 0
    for ws in active:
        with contextlib.suppress(AgentAppError):  # released meanwhile
            await sandboxes.release_workspace(ws.id)
            released += 1
    return Cancelled(run, finished, len(open_invocations), questions, released)
