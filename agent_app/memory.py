"""Memory records: what agents learnt, left for later phases of the same run.

:func:`add` stores one record; :func:`query` finds a run's records by phase, kind and
tags (any or all of them), newest first: the (run_id, phase) index finds the run's rows,
tags are matched among them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from agent_app import db, sqlfile
from agent_app.enums import FeaturePhase, MemoryKind
from agent_app.errors import RuleViolation
from agent_app.rows import from_record, from_records, row_type
from agent_app.tables import MemoryRecord
from agent_app.validation import validated


@row_type(MemoryRecord)
@dataclass(frozen=True)
class Memory:
    """One memory record (a row of ``memory_records``)."""

    id: uuid.UUID
    run_id: uuid.UUID
    phase: FeaturePhase
    kind: MemoryKind
    content: str
    tags: list[str]
    source_invocation_id: uuid.UUID | None
    created_at: dt.datetime


SQL = sqlfile.load("memory")
ADD = SQL["add"]
QUERY = SQL["query"]


@validated
async def add(
    run_id: uuid.UUID,
    phase: FeaturePhase,
    kind: MemoryKind,
    content: str,
    *,
    tags: Sequence[str] = (),
    source_invocation_id: uuid.UUID | None = None,
    conn: asyncpg.Connection | None = None,
) -> Memory:
    """Store a memory. Empty content is refused (``content_not_empty``)."""
    if not content.strip():
        raise RuleViolation("content_not_empty", "content_not_empty: a memory needs content")
    row = await db.fetchrow(
        ADD,
        run_id,
        FeaturePhase(phase).value,
        MemoryKind(kind).value,
        content,
        list(dict.fromkeys(tags)),
        source_invocation_id,
        conn=conn,
    )
    return from_record(Memory, row)


@validated
async def query(
    run_id: uuid.UUID,
    *,
    phases: Sequence[FeaturePhase] | None = None,
    kinds: Sequence[MemoryKind] | None = None,
    any_tags: Sequence[str] | None = None,
    all_tags: Sequence[str] | None = None,
    limit: int = 100,
    conn: asyncpg.Connection | None = None,
) -> list[Memory]:
    """A run's memories, newest first, filtered by phase, kind, and tags (any / all)."""
    rows = await db.fetch(
        QUERY,
        run_id,
        None if phases is None else [FeaturePhase(p).value for p in phases],
        None if kinds is None else [MemoryKind(k).value for k in kinds],
        None if any_tags is None else list(any_tags),
        None if all_tags is None else list(all_tags),
        limit,
        conn=conn,
    )
    return from_records(Memory, rows)
