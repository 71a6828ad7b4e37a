"""Runs, phases and sandboxes: every legal transition works, every illegal one is refused
(through the API and through raw SQL) and changes nothing."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest

from agent_app import db, runs, sandboxes, transitions
from agent_app.enums import FeaturePhase, PhaseStatus, SandboxSourceType, SandboxStatus
from agent_app.errors import RuleViolation
from tests.rules import refused, snapshot

F = FeaturePhase


async def run_to(phase: FeaturePhase) -> runs.Run:
    """A run brought to ``phase`` the legal way."""
    run = await runs.create_run("t", "do it", "https://example.invalid/r.git")
    while run.current_phase is not phase:
        if phase is F.failed:
            return await runs.fail_run(run.id, "stop")
        attempt = await runs.start_phase(run.id, run.current_phase)
        await runs.pass_phase(attempt.id, "ok")
        run = await runs.advance(run.id, pr_url="https://example.invalid/pr/1")
    return run


async def test_a_run_goes_all_the_way_to_completed() -> None:
    run = await run_to(F.completed)
    assert run.completed_at is not None and run.pr_url == "https://example.invalid/pr/1"
    tl = await runs.timeline(run.id)
    assert [p.phase.phase for p in tl.phases] == [
        F.analysis, F.approaches, F.judging, F.implementation, F.pr,
    ]  # fmt: skip
    assert all(p.phase.status is PhaseStatus.passed for p in tl.phases)


@pytest.mark.parametrize(
    ("old", "new"),
    [(o, n) for o, n in itertools.product(F, F) if o != n],
    ids=lambda p: p.value,
)
async def test_every_phase_change_is_legal_or_refused_by_the_database(
    old: FeaturePhase, new: FeaturePhase
) -> None:
    run = await run_to(old)
    async with db.connection() as c:
        sql = "UPDATE agent.feature_runs SET current_phase = $2 WHERE id = $1"
        if new in transitions.RUN_PHASE[old]:
            tx = c.transaction()
            await tx.start()
            await c.execute(sql, run.id, new.value)
            assert (await runs.get_run(run.id, conn=c)).current_phase is new
            await tx.rollback()
        else:
            message = await refused(c, "run_phase_transition", sql, run.id, new.value)
            assert f"{old.value} -> {new.value}" in message


async def test_advance_needs_a_passed_attempt_and_nothing_running() -> None:
    run = await runs.create_run("t", "r", "u")
    async with db.connection() as c:
        before = await snapshot(c, "feature_runs", "phase_results")
    with pytest.raises(RuleViolation) as err:
        await runs.advance(run.id)
    assert err.value.rule == "phase_not_passed"
    async with db.connection() as c:
        assert await snapshot(c, "feature_runs", "phase_results") == before
    attempt = await runs.start_phase(run.id, F.analysis)
    await runs.fail_phase(attempt.id, "tests failed")
    with pytest.raises(RuleViolation):
        await runs.advance(run.id)
    second = await runs.start_phase(run.id, F.analysis)
    assert second.attempt == 2
    with pytest.raises(RuleViolation) as wrong:
        await runs.start_phase(run.id, F.judging)
    assert wrong.value.rule == "phase_not_current"
    await runs.pass_phase(second.id, "fine")
    with pytest.raises(RuleViolation) as twice:
        await runs.pass_phase(second.id)
    assert twice.value.rule == "phase_status_transition"
    assert (await runs.advance(run.id)).current_phase is F.approaches
    assert [p.phase.attempt for p in (await runs.timeline(run.id)).phases] == [1, 2]


async def test_a_finished_run_refuses_everything() -> None:
    done = await run_to(F.completed)
    failed = await run_to(F.failed)
    for run in (done, failed):
        for call in (runs.advance(run.id), runs.fail_run(run.id, "again")):
            with pytest.raises(RuleViolation) as err:
                await call
            assert err.value.rule == "run_phase_transition"
        with pytest.raises(RuleViolation):
            await runs.start_phase(run.id, F.analysis)


async def test_fail_run_fails_running_attempts_too() -> None:
    run = await runs.create_run("t", "r", "u")
    attempt = await runs.start_phase(run.id, F.analysis)
    failed = await runs.fail_run(run.id, "sandbox died")
    assert failed.current_phase is F.failed and failed.error == "sandbox died"
    [p] = (await runs.timeline(run.id)).phases
    assert p.phase.id == attempt.id and p.phase.status is PhaseStatus.failed


async def test_two_workers_starting_the_same_phase_get_attempts_1_and_2() -> None:
    for _ in range(10):
        run = await runs.create_run("t", "r", "u")
        a, b = await asyncio.gather(
            runs.start_phase(run.id, F.analysis), runs.start_phase(run.id, F.analysis)
        )
        assert sorted([a.attempt, b.attempt]) == [1, 2]
    many = await runs.create_run("t", "r", "u")
    attempts = await asyncio.gather(*(runs.start_phase(many.id, F.analysis) for _ in range(12)))
    assert sorted(p.attempt for p in attempts) == list(range(1, 13))


@pytest.mark.parametrize(
    ("old", "new"),
    [(o, n) for o, n in itertools.product(SandboxStatus, SandboxStatus) if o != n],
    ids=lambda s: s.value,
)
async def test_every_sandbox_status_change_is_legal_or_refused(
    old: SandboxStatus, new: SandboxStatus
) -> None:
    sandbox = await sandboxes.create(SandboxSourceType.empty, "local")
    path = {
        SandboxStatus.pending: [],
        SandboxStatus.running: [SandboxStatus.running],
        SandboxStatus.snapshotting: [SandboxStatus.running, SandboxStatus.snapshotting],
        SandboxStatus.stopping: [SandboxStatus.running, SandboxStatus.stopping],
        SandboxStatus.stopped: [
            SandboxStatus.running,
            SandboxStatus.stopping,
            SandboxStatus.stopped,
        ],
        SandboxStatus.failed: [SandboxStatus.failed],
        SandboxStatus.aborted: [SandboxStatus.aborted],
    }[old]
    for step in path:
        sandbox = await sandboxes.set_status(sandbox.id, step)
    assert sandbox.status is old
    if new in transitions.SANDBOX_STATUS[old]:
        moved = await sandboxes.set_status(sandbox.id, new)
        assert moved.status is new
        if new is SandboxStatus.running:
            assert moved.started_at is not None
        if new in (SandboxStatus.stopped, SandboxStatus.failed, SandboxStatus.aborted):
            assert moved.stopped_at is not None
    else:
        async with db.connection() as c:
            before = await snapshot(c, "sandboxes")
            with pytest.raises(RuleViolation) as err:
                await sandboxes.set_status(sandbox.id, new)
            assert err.value.rule == "sandbox_status_transition"
            assert f"{old.value} -> {new.value}" in str(err.value)
            assert await snapshot(c, "sandboxes") == before


async def test_workspaces_allocate_conflict_and_release() -> None:
    sandbox = await sandboxes.create(SandboxSourceType.git, "local", source_ref="repo@main")
    async with db.connection() as c:
        a1, a2 = [
            await c.fetchval(
                "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', $1) RETURNING id", n
            )
            for n in ("one", "two")
        ]
    ws = await sandboxes.allocate_workspace(a1, "/w/feat", "feat", "main", sandbox_id=sandbox.id)
    with pytest.raises(sandboxes.WorkspaceConflict) as path_clash:
        await sandboxes.allocate_workspace(a2, "/w/feat", "other", "main", sandbox_id=sandbox.id)
    assert path_clash.value.rule == "workspaces_active_path_key"
    assert str(ws.id) in str(path_clash.value) and "/w/feat" in str(path_clash.value)
    with pytest.raises(sandboxes.WorkspaceConflict) as branch_clash:
        await sandboxes.allocate_workspace(a2, "/w/two", "feat", "main", sandbox_id=sandbox.id)
    assert branch_clash.value.rule == "workspaces_active_branch_key"
    released = await sandboxes.release_workspace(ws.id, head_commit="abc123")
    assert released.released_at is not None and released.head_commit == "abc123"
    with pytest.raises(RuleViolation) as again:
        await sandboxes.release_workspace(ws.id)
    assert again.value.rule == "workspace_released"
    reused = await sandboxes.allocate_workspace(
        a2, "/w/feat", "feat", "main", sandbox_id=sandbox.id
    )
    assert reused.agent_id == a2


async def test_snapshots_and_sandboxes_built_from_them() -> None:
    sandbox = await sandboxes.create(SandboxSourceType.empty, "local")
    snap = await sandboxes.snapshot(sandbox.id, external_id="img-1", size_bytes=1024)
    child = await sandboxes.create(SandboxSourceType.snapshot, "local", source_snapshot_id=snap.id)
    assert child.source_snapshot_id == snap.id
    with pytest.raises(RuleViolation) as err:
        await sandboxes.create(SandboxSourceType.snapshot, "local")
    assert err.value.rule == "snapshot_source"
    deleted = await sandboxes.delete_snapshot(snap.id)
    assert deleted.deleted_at is not None


async def test_raw_sql_sandbox_transition_is_refused_too(conn: asyncpg.Connection) -> None:
    sandbox = await conn.fetchval(
        "INSERT INTO agent.sandboxes (source_type, provider) VALUES ('empty', 'p') RETURNING id"
    )
    await refused(
        conn,
        "sandbox_status_transition",
        "UPDATE agent.sandboxes SET status = 'stopped' WHERE id = $1",
        sandbox,
    )
