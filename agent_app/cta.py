"""Questions to a person (CTA events): ask, answer once, wait for the answer, expire.

What a worker may rely on:

* :func:`answer` succeeds once per question. A second answer (``cta_answered_once``),
  an answer after expiry (``cta_expired``) or a choice not among the options
  (``choice_not_offered``) is refused by the database itself and changes nothing, so of
  two people answering at once exactly one wins.
* :func:`wait` returns as soon as the answer is committed (LISTEN/NOTIFY on channel
  ``agent_cta``, sent by a database trigger, so answers written with raw SQL or in the
  admin wake it too), and raises :class:`CtaTimeout` when ``timeout`` passes or
  :class:`~agent_app.errors.RuleViolation` (``cta_expired``) when the question expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from agent_app import db, rows, sqlfile
from agent_app.constants import CTA_CHANNEL
from agent_app.enums import CtaKind, FeaturePhase
from agent_app.errors import AgentAppError, NotFound, RuleViolation
from agent_app.tables import CtaEvent
from agent_app.validation import validated

CHANNEL = CTA_CHANNEL


class CtaTimeout(AgentAppError):
    rule = "cta_timeout"


@rows.row_type(CtaEvent)
@dataclass(frozen=True)
class Question:
    """A question (a row of ``cta_events``; options and response decoded from JSON)."""

    id: uuid.UUID
    run_id: uuid.UUID
    phase: FeaturePhase | None
    kind: CtaKind
    prompt: str
    options: list[Any] | None
    response: Any
    responded_by: str | None
    created_at: dt.datetime
    responded_at: dt.datetime | None
    expires_at: dt.datetime | None

    @property
    def answered(self) -> bool:
        return self.responded_at is not None


SQL = sqlfile.load("cta")
ASK = SQL["ask"]
EXPIRE = SQL["expire"]

# Fixed-shape Piccolo statements, compiled once on first use (db.Compiled): building one
# per call cost ~160 us of client CPU. build's arguments are the parameters $1, $2, ...

#: Question $1.
_GET = db.Compiled(lambda cta: rows.select(Question).where(CtaEvent.id == cta), params=1)

#: The kind of question $1.
_KIND = db.Compiled(lambda cta: CtaEvent.select(CtaEvent.kind).where(CtaEvent.id == cta), params=1)

#: Answer question $3 with response $1 (JSON text) by $2, now; returns the question.
_ANSWER = db.Compiled(
    lambda response, by, cta: (
        CtaEvent.update(
            {
                CtaEvent.response: response,
                CtaEvent.responded_by: by,
                CtaEvent.responded_at: rows.now(),
            }
        )
        .where(CtaEvent.id == cta)
        .returning(*rows.columns(Question))
    ),
    params=3,
)


@validated
async def ask(
    run_id: uuid.UUID,
    kind: CtaKind,
    prompt: str,
    *,
    options: Sequence[Any] | None = None,
    phase: FeaturePhase | None = None,
    expires_in: dt.timedelta | None = None,
    conn: asyncpg.Connection | None = None,
) -> Question:
    """Put a question to a person. A ``choice`` needs at least one option."""
    kind = CtaKind(kind)
    if kind is CtaKind.choice and not options:
        raise RuleViolation("choice_has_options", "choice_has_options: a choice needs options")
    row = await db.fetchrow(
        ASK,
        run_id,
        None if phase is None else FeaturePhase(phase).value,
        kind.value,
        prompt,
        None if options is None else db.dumps(list(options)),
        expires_in,
        conn=conn,
    )
    return rows.from_record(Question, row)


@validated
async def get(cta_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> Question:
    row = await db.fetchrow(_GET.sql, cta_id, conn=conn)
    if row is None:
        raise NotFound(f"no question {cta_id}")
    return rows.from_record(Question, row)


#: What an answer must be, by kind (the database checks a choice against its options).
_RESPONSE_TYPES: dict[CtaKind, type] = {CtaKind.approval: bool, CtaKind.text: str}


@validated
async def answer(
    cta_id: uuid.UUID,
    response: Any,
    *,
    responded_by: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Question:
    """Answer a question: ``True``/``False`` for an approval, a string for text, one of the
    options for a choice. Refused (nothing changes) if it was answered or has expired."""
    found = await db.fetchrow(_KIND.sql, cta_id, conn=conn)
    if found is None:
        raise NotFound(f"no question {cta_id}")
    kind = CtaKind(found[0])
    expected = _RESPONSE_TYPES.get(kind)
    if expected is not None and not isinstance(response, expected):
        raise RuleViolation(
            "cta_response_type",
            f"cta_response_type: a {kind.value} question takes a {expected.__name__}, "
            f"got {response!r}",
        )
    # The database refuses a second answer, a late one and a choice not offered.
    row = await db.fetchrow(_ANSWER.sql, db.dumps(response), responded_by, cta_id, conn=conn)
    return rows.from_record(Question, row)


@validated
async def wait(
    cta_id: uuid.UUID, timeout: float, *, conn: asyncpg.Connection | None = None
) -> Question:
    """Wait up to ``timeout`` seconds for the answer; see the module docstring. It reads
    the question on ``conn`` (or the Piccolo transaction in progress): inside a caller's
    transaction, an answer committed by others is seen only under READ COMMITTED, and a
    :class:`CtaTimeout` leaves that transaction usable. It listens on a connection of
    its own."""
    woken = asyncio.Event()

    def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == str(cta_id):
            woken.set()

    listener = await asyncpg.connect(**db.engine().config)
    try:
        await listener.add_listener(CHANNEL, on_notify)  # listen first, then look: no gap
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            woken.clear()
            question = await get(cta_id, conn=conn)
            if question.answered:
                return question
            now = dt.datetime.now(dt.UTC)
            if question.expires_at is not None and question.expires_at <= now:
                raise RuleViolation(
                    "cta_expired", f"cta_expired: question {cta_id} expired unanswered"
                )
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise CtaTimeout(f"no answer to question {cta_id} within {timeout} s")
            if question.expires_at is not None:
                remaining = min(remaining, (question.expires_at - now).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), remaining)
    finally:
        await listener.close()


@validated
async def expire(*, run_id: uuid.UUID | None = None, conn: asyncpg.Connection | None = None) -> int:
    """Close every unanswered, unexpired question (of one run, or all) now; waiters wake
    and get ``cta_expired``. Returns how many were closed."""
    return len(await db.fetch(EXPIRE, run_id, CHANNEL, conn=conn))
