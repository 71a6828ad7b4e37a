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

from agent_app import db
from agent_app.enums import SandboxSourceType, SandboxStatus, SnapshotStatus, WorkspaceStatus
from agent_app.errors import NotFound, RuleViolation
from agent_app.validation import validated


class WorkspaceConflict(RuleViolation):
    """The worktree path or branch is held by another active workspace."""


@dataclass(frozen=True)
class Sandbox:
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


@dataclass(frozen=True)
class Snapshot:
    id: uuid.UUID
    sandbox_id: uuid.UUID
    status: SnapshotStatus
    external_id: str | None
    size_bytes: int | None
    created_at: dt.datetime
    deleted_at: dt.datetime | None


@dataclass(frozen=True)
class Workspace:
    id: uuid.UUID
    agent_id: uuid.UUID
    sandbox_id: uuid.UUID | None
    worktree_path: str
    branch_name: str
    base_ref: str
    head_commit: str | None
    status: WorkspaceStatus
    released_at: dt.datetime | None


_SANDBOX = (
    "id, status, source_type, source_ref, source_snapshot_id, provider, external_id, error, "
    "started_at, stopped_at"
)
_SNAPSHOT = "id, sandbox_id, status, external_id, size_bytes, created_at, deleted_at"
_WORKSPACE = (
    "id, agent_id, sandbox_id, worktree_path, branch_name, base_ref, head_commit, status, "
    "released_at"
)


def _sandbox(row: asyncpg.Record) -> Sandbox:
    v = dict(row)
    v["status"], v["source_type"] = SandboxStatus(v["status"]), SandboxSourceType(v["source_type"])
    return Sandbox(**v)


def _snapshot(row: asyncpg.Record) -> Snapshot:
    v = dict(row)
    v["status"] = SnapshotStatus(v["status"])
    return Snapshot(**v)


def _workspace(row: asyncpg.Record) -> Workspace:
    v = dict(row)
    v["status"] = WorkspaceStatus(v["status"])
    return Workspace(**v)


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
        "INSERT INTO agent.sandboxes (source_type, provider, source_ref, "
        "source_snapshot_id, external_id, config) VALUES ($1, $2, $3, $4, $5, $6::jsonb) "
        f"RETURNING {_SANDBOX}",
        SandboxSourceType(source_type).value,
        provider,
        source_ref,
        source_snapshot_id,
        external_id,
        db.dumps({} if config is None else config),
        conn=conn,
    )
    return _sandbox(row)


@validated
async def set_status(
    sandbox_id: uuid.UUID,
    status: SandboxStatus,
    *,
    error: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Sandbox:
    """Move the sandbox to ``status`` if the transition table allows it."""
    row = await db.fetchrow(
        "UPDATE agent.sandboxes SET status = $2::varchar, error = coalesce($3, error), "
        "started_at = CASE WHEN $2::varchar = 'running' THEN coalesce(started_at, now()) "
        "                  ELSE started_at END, "
        "stopped_at = CASE WHEN $2::varchar IN ('stopped', 'failed', 'aborted') THEN now() "
        "                  ELSE stopped_at END "
        f"WHERE id = $1 RETURNING {_SANDBOX}",
        sandbox_id,
        SandboxStatus(status).value,
        error,
        conn=conn,
    )
    if row is None:
        raise NotFound(f"no sandbox {sandbox_id}")
    return _sandbox(row)


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
        "INSERT INTO agent.sandbox_snapshots (sandbox_id, external_id, size_bytes, "
        f"metadata, status) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING {_SNAPSHOT}",
        sandbox_id,
        external_id,
        size_bytes,
        db.dumps({} if metadata is None else metadata),
        SnapshotStatus(status).value,
        conn=conn,
    )
    return _snapshot(row)


@validated
async def delete_snapshot(
    snapshot_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
) -> Snapshot:
    """Mark a snapshot deleted (the row stays: sandboxes built from it still point at it)."""
    row = await db.fetchrow(
        "UPDATE agent.sandbox_snapshots SET status = 'deleted', deleted_at = now() "
        f"WHERE id = $1 AND status <> 'deleted' RETURNING {_SNAPSHOT}",
        snapshot_id,
        conn=conn,
    )
    if row is None:
        raise NotFound(f"no undeleted snapshot {snapshot_id}")
    return _snapshot(row)


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
            "INSERT INTO agent.workspaces (agent_id, sandbox_id, worktree_path, branch_name, "
            f"base_ref) VALUES ($1, $2, $3, $4, $5) RETURNING {_WORKSPACE}",
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
        column, value = _ACTIVE_KEYS[e.rule], worktree_path
        if column == "branch_name":
            value = branch_name
        # The failed INSERT ran in its own savepoint: this connection is still usable.
        holder = await db.fetchrow(
            "SELECT id, agent_id FROM agent.workspaces WHERE status = 'active' "
            f"AND sandbox_id IS NOT DISTINCT FROM $1 AND {column} = $2",
            sandbox_id,
            value,
            conn=conn,
        )
        where = f"sandbox {sandbox_id}" if sandbox_id else "no sandbox"
        held = f" by workspace {holder['id']} of agent {holder['agent_id']}" if holder else ""
        raise WorkspaceConflict(
            e.rule,
            f"{e.rule}: {column} {value!r} in {where} is already active{held}",
            table="workspaces",
        ) from e
    return _workspace(row)


_ACTIVE_KEYS = {
    "workspaces_active_path_key": "worktree_path",
    "workspaces_active_branch_key": "branch_name",
}


@validated
async def release_workspace(
    workspace_id: uuid.UUID,
    *,
    head_commit: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> Workspace:
    """Release an active workspace (its path and branch become free)."""
    row = await db.fetchrow(
        "UPDATE agent.workspaces SET status = 'released', released_at = now(), "
        "head_commit = coalesce($2, head_commit) "
        f"WHERE id = $1 AND status = 'active' RETURNING {_WORKSPACE}",
        workspace_id,
        head_commit,
        conn=conn,
    )
    if row is None:
        exists = await db.fetchval(
            "SELECT 1 FROM agent.workspaces WHERE id = $1", workspace_id, conn=conn
        )
        if exists is None:
            raise NotFound(f"no workspace {workspace_id}")
        raise RuleViolation(
            "workspace_released",
            f"workspace_released: workspace {workspace_id} was already released",
            table="workspaces",
        )
    return _workspace(row)
