"""Sandboxes, their snapshots, and the git-worktree workspaces agents use in them.

What a worker may rely on:

* A sandbox's status changes only along :data:`agent_app.transitions.SANDBOX_STATUS`;
  the database refuses anything else (``sandbox_status_transition: running -> pending``).
  :func:`set_status` stamps ``started_at`` on the first ``running`` and ``stopped_at`` on
  reaching ``stopped``, ``failed`` or ``aborted``.
* :func:`allocate_workspace` gives an agent a worktree; no two active workspaces share a
  worktree path or a branch within one sandbox (or among sandbox-less ones). A clash
  raises :class:`WorkspaceConflict` naming the rule and the workspace holding it.
* :func:`release_workspace` frees the path and branch for reuse, once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from piccolo.columns import Column
from piccolo.query.functions.conditional import Coalesce

from agent_app import db, rows, sqlfile
from agent_app import tables as t
from agent_app.enums import SandboxSourceType, SandboxStatus, SnapshotStatus, WorkspaceStatus
from agent_app.errors import NotFound, RuleViolation
from agent_app.validation import validated


class WorkspaceConflict(RuleViolation):
    """The worktree path or branch is held by another active workspace."""


@rows.row_type(t.Sandbox)
@dataclass(frozen=True)
class Sandbox:
    """A sandbox (a row of ``sandboxes``, without its config)."""

    id: uuid.UUID
    status: SandboxStatus
    source_type: SandboxSourceType
    source_ref: str | None
    source_snapshot_id: uuid.UUID | None
    provider: str
    external_id: str | None
    error: str | None
    started_at: dt.datetime | None
    stopped_at: dt.datetime | None


@rows.row_type(t.SandboxSnapshot)
@dataclass(frozen=True)
class Snapshot:
    """A snapshot of a sandbox (a row of ``sandbox_snapshots``, without its metadata)."""

    id: uuid.UUID
    sandbox_id: uuid.UUID
    status: SnapshotStatus
    external_id: str | None
    size_bytes: int | None
    created_at: dt.datetime
    deleted_at: dt.datetime | None


@rows.row_type(t.Workspace)
@dataclass(frozen=True)
class Workspace:
    """An agent's git worktree (a row of ``workspaces``)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    sandbox_id: uuid.UUID | None
    worktree_path: str
    branch_name: str
    base_ref: str
    head_commit: str | None
    status: WorkspaceStatus
    released_at: dt.datetime | None


SQL = sqlfile.load("sandboxes")
CREATE = SQL["create"]
SNAPSHOT = SQL["snapshot"]
ALLOCATE_WORKSPACE = SQL["allocate_workspace"]

#: Sandbox statuses that stamp ``stopped_at``.
_STOPPED = (SandboxStatus.stopped, SandboxStatus.failed, SandboxStatus.aborted)


@validated
async def create(
    source_type: SandboxSourceType,
    provider: str,
    *,
    source_ref: str | None = None,
    source_snapshot_id: uuid.UUID | None = None,
    external_id: str | None = None,
    config: Any = None,
    conn: asyncpg.Connection | None = None,
) -> Sandbox:
    """A new sandbox, pending. ``source_snapshot_id`` is required exactly for snapshots."""
    row = await db.fetchrow(
        CREATE,
        SandboxSourceType(source_type).value,
        provider,
        source_ref,
        source_snapshot_id,
        external_id,
        db.dumps({} if config is None else config),
        conn=conn,
    )
    return rows.from_record(Sandbox, row)


@validated
async def set_status(
    sandbox_id: uuid.UUID,
    status: SandboxStatus,
    *,
    error: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Sandbox:
    """Move the sandbox to ``status`` if the transition table allows it."""
    status = SandboxStatus(status)
    values: dict[Column | str, Any] = {t.Sandbox.status: status.value}
    if error is not None:
        values[t.Sandbox.error] = error
    if status is SandboxStatus.running:  # the first start only
        values[t.Sandbox.started_at] = Coalesce(t.Sandbox.started_at, rows.now())
    if status in _STOPPED:
        values[t.Sandbox.stopped_at] = rows.now()
    row = await db.query_row(
        t.Sandbox.update(values)
        .where(t.Sandbox.id == sandbox_id)
        .returning(*rows.columns(Sandbox)),
        conn=conn,
    )
    if row is None:
        raise NotFound(f"no sandbox {sandbox_id}")
    return rows.from_record(Sandbox, row)


@validated
async def snapshot(
    sandbox_id: uuid.UUID,
    *,
    external_id: str | None = None,
    size_bytes: int | None = None,
    metadata: Any = None,
    status: SnapshotStatus = SnapshotStatus.created,
    conn: asyncpg.Connection | None = None,
) -> Snapshot:
    """Record a snapshot of the sandbox."""
    row = await db.fetchrow(
        SNAPSHOT,
        sandbox_id,
        external_id,
        size_bytes,
        db.dumps({} if metadata is None else metadata),
        SnapshotStatus(status).value,
        conn=conn,
    )
    return rows.from_record(Snapshot, row)


@validated
async def delete_snapshot(
    snapshot_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> Snapshot:
    """Mark a snapshot deleted (the row stays: sandboxes built from it still point at it)."""
    row = await db.query_row(
        t.SandboxSnapshot.update(
            {
                t.SandboxSnapshot.status: SnapshotStatus.deleted.value,
                t.SandboxSnapshot.deleted_at: rows.now(),
            }
        )
        .where(
            t.SandboxSnapshot.id == snapshot_id,
            t.SandboxSnapshot.status != SnapshotStatus.deleted.value,
        )
        .returning(*rows.columns(Snapshot)),
        conn=conn,
    )
    if row is None:
        raise NotFound(f"no undeleted snapshot {snapshot_id}")
    return rows.from_record(Snapshot, row)


@validated
async def allocate_workspace(
    agent_id: uuid.UUID,
    worktree_path: str,
    branch_name: str,
    base_ref: str,
    *,
    sandbox_id: uuid.UUID | None = None,
    conn: asyncpg.Connection | None = None,
) -> Workspace:
    """Give the agent an active workspace; see the module docstring for conflicts.
    Inside a caller's transaction a conflict leaves that transaction usable."""
    try:
        row = await db.fetchrow(
            ALLOCATE_WORKSPACE,
            agent_id,
            sandbox_id,
            worktree_path,
            branch_name,
            base_ref,
            conn=conn,
        )
    except RuleViolation as e:
        if e.rule not in _ACTIVE_KEYS:
            raise
        column = _ACTIVE_KEYS[e.rule]
        value = branch_name if column is t.Workspace.branch_name else worktree_path
        # The failed INSERT ran in its own savepoint: this connection is still usable.
        holder = await db.query_row(
            t.Workspace.select(t.Workspace.id, t.Workspace.agent_id).where(
                t.Workspace.status == WorkspaceStatus.active.value,
                t.Workspace.sandbox_id.is_null()
                if sandbox_id is None
                else t.Workspace.sandbox_id == sandbox_id,
                column == value,
            ),
            conn=conn,
        )
        where = f"sandbox {sandbox_id}" if sandbox_id else "no sandbox"
        held = ""
        if holder is not None:
            held = (
                f" by workspace {holder[t.Workspace.id._meta.db_column_name]} "
                f"of agent {holder[t.Workspace.agent_id._meta.db_column_name]}"
            )
        name = column._meta.db_column_name
        raise WorkspaceConflict(
            e.rule,
            f"{e.rule}: {name} {value!r} in {where} is already active{held}",
            table=t.Workspace._meta.tablename,
        ) from e
    return rows.from_record(Workspace, row)


#: The unique indexes that keep active workspaces apart, by name: the column each one
#: adds to the sandbox (the worktree path, or the branch).
_ACTIVE_KEYS: dict[str, Column] = {
    index.name: t.Workspace._meta.get_column_by_name(index.columns[-1])
    for index in t.Workspace._indexes
    if index.unique
}


@validated
async def release_workspace(
    workspace_id: uuid.UUID,
    *,
    head_commit: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Workspace:
    """Release an active workspace (its path and branch become free)."""
    values: dict[Column | str, Any] = {
        t.Workspace.status: WorkspaceStatus.released.value,
        t.Workspace.released_at: rows.now(),
    }
    if head_commit is not None:
        values[t.Workspace.head_commit] = head_commit
    row = await db.query_row(
        t.Workspace.update(values)
        .where(t.Workspace.id == workspace_id, t.Workspace.status == WorkspaceStatus.active.value)
        .returning(*rows.columns(Workspace)),
        conn=conn,
    )
    if row is None:
        exists = await db.query_row(
            t.Workspace.select(t.Workspace.id).where(t.Workspace.id == workspace_id), conn=conn
        )
        if exists is None:
            raise NotFound(f"no workspace {workspace_id}")
        raise RuleViolation(
            "workspace_released",
            f"workspace_released: workspace {workspace_id} was already released",
            table=t.Workspace._meta.tablename,
        )
    return rows.from_record(Workspace, row)
