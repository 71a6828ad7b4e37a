"""Checkpoints: an agent's saved state, from which a crashed worker resumes.

What a worker may rely on:

* :func:`save` numbers checkpoints 1, 2, 3 … per agent, atomically: concurrent saves for
  one agent never share a number (a save that loses the race waits its turn on a
  per-agent lock and takes the next number). A state equal to
  the latest one (same canonical JSON, compared by SHA-256) stores nothing: the latest
  checkpoint is returned with ``created=False``.
* Each checkpoint points at the previous one (``parent_checkpoint_id``).
* :func:`load_latest` is one index lookup; :func:`history` pages backwards.
* :func:`prune` deletes in batches of ``batch_size`` rows, each batch its own short
  transaction, so a large prune never holds locks for long; it never deletes an agent's
  latest checkpoint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from agent_app import db, rows, sqlfile
from agent_app import tables as t
from agent_app.errors import AgentAppError, NotFound, RuleViolation
from agent_app.validation import validated


@rows.row_type(t.Checkpoint, state=t.Checkpoint.state_snapshot, created=rows.extra())
@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint (a row of ``checkpoints``). ``state`` is the saved state, decoded
    (``None`` where the call does not read it: :func:`history` without ``with_state``);
    ``created`` is False when :func:`save` found the state equal to the latest one."""

    id: uuid.UUID
    agent_id: uuid.UUID
    sequence: int
    parent_checkpoint_id: uuid.UUID | None
    state_hash: str
    schema_version: int
    label: str | None
    created_at: dt.datetime
    state: Any = None
    created: bool = True


SQL = sqlfile.load("checkpoints")
SAVE = SQL["save"]
LOCK_AGENT = SQL["lock_agent"]
LOAD_LATEST = SQL["load_latest"]
PRUNE_BATCH = SQL["prune_batch"]
HISTORY = SQL["history"]

#: Checkpoint $1 (a fixed-shape Piccolo read, compiled once on first use).
_GET = db.Compiled(
    lambda checkpoint: rows.select(Checkpoint).where(t.Checkpoint.id == checkpoint), params=1
)


def canonical(state: Any) -> str:
    """The canonical JSON of a state: sorted keys, no spaces - equal states, equal text.
    What JSON cannot hold exactly (a set, bytes, NaN …) is refused, never stringified."""
    return db.dumps(state, sort_keys=True)


def state_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@validated
async def save(
    agent_id: uuid.UUID,
    state: Any,
    *,
    label: str | None = None,
    schema_version: int = 1,
    conn: asyncpg.Connection | None = None,
) -> Checkpoint:
    """Save ``state`` (any JSON-able value) as the agent's next checkpoint, unless it equals
    the latest one. Returns the checkpoint holding it (``created`` tells which case)."""
    text = canonical(state)
    digest = state_hash(text)
    args = (agent_id, text, digest, schema_version, label)
    try:
        # Usually one worker saves for an agent: one statement, one round trip.
        row = await db.fetchrow(SAVE, *args, conn=conn)
    except RuleViolation as e:
        if e.rule not in _LOST_RACE:
            raise
        row = await db.run(lambda c: _save_in_turn(c, agent_id, args), conn)
    assert row is not None  # SAVE returns the checkpoint holding the state either way
    return rows.from_record(Checkpoint, row, state=state)


_LOST_RACE = ("checkpoints_agent_sequence_key", "checkpoint_sequence_increasing")


async def _save_in_turn(
    c: asyncpg.Connection, agent_id: uuid.UUID, args: tuple[Any, ...]
) -> asyncpg.Record:
    """Save behind the agent's advisory lock (in :func:`db.run`'s transaction). Savers on
    the lock-free first try can still take a number first, each at most once, so a few
    tries under the lock always win."""
    await c.execute(LOCK_AGENT, str(agent_id))
    for _ in range(50):
        try:
            return await db.fetchrow(SAVE, *args, conn=c)
        except RuleViolation as e:
            if e.rule not in _LOST_RACE:
                raise
    raise AgentAppError(
        f"checkpoint_contention: agent {agent_id} kept losing the race for a number",
        rule="checkpoint_contention",
    )


@validated
async def load_latest(
    agent_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> Checkpoint | None:
    """The agent's newest checkpoint with its state, or None if it has none."""
    row = await db.fetchrow(LOAD_LATEST, agent_id, conn=conn)
    return None if row is None else rows.from_record(Checkpoint, row)


@validated
async def history(
    agent_id: uuid.UUID,
    *,
    limit: int = 50,
    before_sequence: int | None = None,
    with_state: bool = False,
    conn: asyncpg.Connection | None = None,
) -> list[Checkpoint]:
    """Checkpoints newest first; page with ``before_sequence``."""
    found = await db.fetch(HISTORY, agent_id, before_sequence, with_state, limit, conn=conn)
    return rows.from_records(Checkpoint, found)


@validated
async def prune(
    *,
    agent_id: uuid.UUID | None = None,
    keep_last: int | None = None,
    older_than: dt.timedelta | None = None,
    batch_size: int = 1000,
    conn: asyncpg.Connection | None = None,
) -> int:
    """Delete checkpoints that are neither among an agent's ``keep_last`` newest nor
    younger than ``older_than`` (give one or both; with both, a checkpoint is deleted only
    if it is outside both). One agent, or all. Returns how many were deleted.

    Runs in batches of ``batch_size``, each its own short transaction - or, inside a
    caller's transaction (``conn``, or Piccolo's ``DB.transaction()``), each a statement
    of that transaction, committed with it.
    """
    if keep_last is None and older_than is None:
        raise AgentAppError("prune_needs_a_rule: give keep_last, older_than or both",
                            rule="prune_needs_a_rule")  # fmt: skip
    if keep_last is not None and keep_last < 1:
        raise AgentAppError(f"prune_keep_last: keep_last must be >= 1, got {keep_last}",
                            rule="prune_keep_last")  # fmt: skip
    deleted = 0
    while True:
        status = await db.execute(
            PRUNE_BATCH, agent_id, keep_last, older_than, batch_size, conn=conn
        )
        n = int(status.split()[-1])
        deleted += n
        if n < batch_size:
            return deleted


@validated
async def get(checkpoint_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> Checkpoint:
    row = await db.fetchrow(_GET.sql, checkpoint_id, conn=conn)
    if row is None:
        raise NotFound(f"no checkpoint {checkpoint_id}")
    return rows.from_record(Checkpoint, row)
