"""The main job: simulate drives whole runs through the worker API and leaves a consistent
database; the same seed tells the same story."""

from __future__ import annotations

import dataclasses

from agent_app import db
from agent_app.simulation import Stats, simulate
from tests.conftest import piccolo


def story(stats: Stats) -> dict[str, object]:
    """Everything but timings."""
    return {
        f.name: getattr(stats, f.name)
        for f in dataclasses.fields(stats)
        if f.name not in ("elapsed", "phase_seconds")
    }


async def test_simulate_leaves_a_consistent_database_and_repeats_its_story() -> None:
    first = await simulate(8, 4, seed=5)
    again = await simulate(8, 2, seed=5)  # other concurrency, same seed: same story
    assert story(first) == story(again)
    assert first.runs_completed + first.runs_failed == 8 and first.runs_completed > 0
    assert first.steps > 0 and first.messages > 0
    async with db.connection() as c:
        checks = {
            "run not terminal": "SELECT count(*) FROM agent.feature_runs "
            "WHERE title LIKE 'Feature #%' AND current_phase NOT IN ('completed', 'failed')",
            "completed run without PR": "SELECT count(*) FROM agent.feature_runs "
            "WHERE title LIKE 'Feature #%' AND current_phase = 'completed' AND pr_url IS NULL",
            "agent of a run still live": "SELECT count(*) FROM agent.agents a JOIN agent.feature_runs r "
            "ON r.id = a.run_id WHERE r.title LIKE 'Feature #%' "
            "AND a.status NOT IN ('completed', 'failed', 'terminated')",
            "budget still reserved": "SELECT count(*) FROM agent.budgets b JOIN agent.agents a "
            "ON a.id = b.agent_id JOIN agent.feature_runs r ON r.id = a.run_id "
            "WHERE r.title LIKE 'Feature #%' AND b.reserved <> 0",
            # Reclaim moves a finished child's usage into its parent's: a parent never shows
            # less used than its children together (used + reserved <= allocated is the
            # budget_limits CHECK's job, not this test's).
            "parent used less than its children": "SELECT count(*) FROM agent.budgets p "
            "JOIN agent.agents a ON a.id = p.agent_id JOIN agent.feature_runs r "
            "ON r.id = a.run_id WHERE r.title LIKE 'Feature #%' AND p.used < "
            "(SELECT coalesce(sum(b.used), 0) FROM agent.budgets b JOIN agent.agents k "
            "ON k.id = b.agent_id WHERE k.parent_id = p.agent_id AND b.resource = p.resource)",
            "message left claimed": "SELECT count(*) FROM agent.messages m JOIN agent.feature_runs r "
            "ON r.id = m.run_id WHERE r.title LIKE 'Feature #%' AND m.status IN ('claimed', 'pending')",
            "tool call without result": "SELECT count(*) FROM agent.tool_calls t "
            "JOIN agent.agent_invocations i ON i.id = t.invocation_id JOIN agent.feature_runs r "
            "ON r.id = i.run_id WHERE r.title LIKE 'Feature #%' AND t.output_type IS NULL",
            "invocation unfinished": "SELECT count(*) FROM agent.agent_invocations i "
            "JOIN agent.feature_runs r ON r.id = i.run_id WHERE r.title LIKE 'Feature #%' "
            "AND i.finished_at IS NULL",
            "attempt still running": "SELECT count(*) FROM agent.phase_results p "
            "JOIN agent.feature_runs r ON r.id = p.run_id WHERE r.title LIKE 'Feature #%' "
            "AND p.status = 'running'",
            "workspace still active": "SELECT count(*) FROM agent.workspaces w JOIN agent.agents a "
            "ON a.id = w.agent_id JOIN agent.feature_runs r ON r.id = a.run_id "
            "WHERE r.title LIKE 'Feature #%' AND w.status = 'active'",
            "question unanswered and open": "SELECT count(*) FROM agent.cta_events q "
            "JOIN agent.feature_runs r ON r.id = q.run_id WHERE r.title LIKE 'Feature #%' "
            "AND q.responded_at IS NULL AND (q.expires_at IS NULL OR q.expires_at > now())",
            "sandbox not stopped": "SELECT count(*) FROM agent.sandboxes WHERE provider = 'simulated' "
            "AND status NOT IN ('stopped', 'aborted', 'failed')",
        }
        problems = {name: await c.fetchval(sql) for name, sql in checks.items()}
    assert problems == {name: 0 for name in checks}


async def test_simulate_command_prints_the_summary(database_url: str) -> None:
    result = piccolo(database_url, "agent_app", "simulate", "--seed=9", "--workers=2", "--runs=3")
    assert "runs completed" in result.stdout and "phase implementation" in result.stdout
    # Options by name, in any order (the CLI takes --name=value).
    assert "simulating 3 feature runs with 2 workers (seed 9)" in result.stdout
    assert "3/3 runs" in result.stderr


async def test_ctrl_c_stops_cleanly_and_leaves_the_database_consistent(scratch_url: str) -> None:
    import asyncio
    import os
    import signal
    import subprocess
    import sys

    import asyncpg

    from tests.conftest import REPO

    piccolo(scratch_url, "migrations", "forwards", "all")
    proc = subprocess.Popen(
        [sys.executable, "-m", "piccolo.main", "agent_app", "simulate", "--runs=500",
         "--workers=4", "--seed=2"],
        cwd=REPO, env={**os.environ, "DATABASE_URL": scratch_url},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    conn = await asyncpg.connect(scratch_url)
    try:
        for _ in range(300):  # wait until runs are under way
            if await conn.fetchval("SELECT count(*) FROM agent.feature_runs") >= 6:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # impatient: a second Ctrl-C during the clean-up
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        # 130, or killed by the second SIGINT once Python, finalising after the clean-up,
        # has given the signal back to the system: quiet either way.
        assert proc.returncode in (130, -signal.SIGINT), err[-2000:]
        assert "interrupted" in out and "runs completed" in out and "Traceback" not in err
        problems = await conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM agent.feature_runs
                   WHERE current_phase NOT IN ('completed', 'failed')) AS runs_live,
                 (SELECT count(*) FROM agent.agents
                   WHERE status NOT IN ('completed', 'failed', 'terminated')) AS agents_live,
                 (SELECT count(*) FROM agent.budgets WHERE reserved <> 0) AS reserved,
                 (SELECT count(*) FROM agent.phase_results WHERE status = 'running') AS attempts,
                 (SELECT count(*) FROM agent.agent_invocations WHERE finished_at IS NULL)
                   AS invocations_open,
                 (SELECT count(*) FROM agent.workspaces WHERE status = 'active') AS workspaces,
                 (SELECT count(*) FROM agent.messages WHERE status = 'pending')
                   AS pending_messages"""
        )
        found = dict(problems)
        assert found == dict.fromkeys(found, 0)
        assert await conn.fetchval("SELECT count(*) FROM agent.feature_runs") < 500
    finally:
        await conn.close()


# --------------------------------------------------------------------------- #
# The strict CLI
# --------------------------------------------------------------------------- #

import pytest  # noqa: E402


async def test_options_given_as_name_space_value_are_taken_by_name(database_url: str) -> None:
    result = piccolo(
        database_url, "agent_app", "simulate", "--workers", "2", "--runs", "2", "--seed", "4"
    )
    assert "simulating 2 feature runs with 2 workers (seed 4)" in result.stdout
    assert "runs per second" in result.stdout and "2/2 runs" in result.stderr
    mixed = piccolo(database_url, "agent_app", "simulate", "--runs=1", "--seed", "3")
    assert "simulating 1 feature runs with 4 workers (seed 3)" in mixed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs=0"], "simulate: --runs must be at least 1, got 0"),
        (["--runs=-1"], "simulate: --runs must be at least 1, got -1"),
        (["--workers=0"], "simulate: --workers must be at least 1, got 0"),
        (["--runs=abc"], "simulate: --runs must be a whole number, got 'abc'"),
        (["--runs"], "simulate: --runs needs a value, e.g. --runs=4"),
        (["--runs=2", "--runs=3"], "simulate: --runs given twice"),
        (
            ["--bogus=1"],
            "simulate: unknown option --bogus (simulate takes --runs, --workers, --seed)",
        ),
        (
            ["--workers", "8", "7"],
            "simulate: unexpected argument '7': give options as --name=value",
        ),
        (
            ["--workers=100000"],
            "simulate: --workers=100000 is more than the server's free connections allow",
        ),
    ],
)
async def test_bad_options_are_refused_in_one_line_naming_the_option(
    scratch_url: str, args: list[str], message: str
) -> None:
    result = piccolo(scratch_url, "agent_app", "simulate", *args, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("simulate:")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Usage" not in result.stdout and "Traceback" not in result.stderr
    assert "simulating" not in result.stdout  # nothing ran


async def test_piccolo_agent_app_help_lists_the_commands(database_url: str) -> None:
    result = piccolo(database_url, "agent_app", "--help")
    assert "Unrecognised command" not in result.stdout
    for name in ("simulate (alias: sim)", "admin", "schema_check (alias: check)"):
        assert f"  {name}\n" in result.stdout, result.stdout
    everything = piccolo(database_url, "--help")  # Piccolo's own list is untouched
    assert "migrations" in everything.stdout and "user" in everything.stdout


async def test_a_crash_cleans_up_like_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_app import simulation
    from agent_app.enums import FeaturePhase

    real_phase = simulation._Run.phase
    seen = 0

    async def crashing(self: simulation._Run, phase: object) -> None:
        nonlocal seen
        await real_phase(self, phase)  # type: ignore[arg-type]
        if getattr(phase, "phase", None) is FeaturePhase.judging:
            seen += 1
            if seen == 2:
                raise ConnectionError("the platform fell over")

    monkeypatch.setattr(simulation._Run, "phase", crashing)
    async with db.connection() as c:
        before = await c.fetchval("SELECT coalesce(max(created_at), now()) FROM agent.feature_runs")
    with pytest.raises(ConnectionError):
        await simulate(6, 3, seed=41)
    async with db.connection() as c:
        found = dict(
            await c.fetchrow(
                """SELECT
                 (SELECT count(*) FROM agent.feature_runs WHERE created_at > $1
                   AND current_phase NOT IN ('completed', 'failed')) AS runs_live,
                 (SELECT count(*) FROM agent.feature_runs WHERE created_at > $1
                   AND error = 'interrupted') AS interrupted,
                 (SELECT count(*) FROM agent.agents a JOIN agent.feature_runs r ON r.id = a.run_id
                   WHERE r.created_at > $1
                   AND a.status NOT IN ('completed', 'failed', 'terminated')) AS agents_live,
                 (SELECT count(*) FROM agent.budgets b JOIN agent.agents a ON a.id = b.agent_id
                   JOIN agent.feature_runs r ON r.id = a.run_id
                   WHERE r.created_at > $1 AND b.reserved <> 0) AS reserved,
                 (SELECT count(*) FROM agent.agent_invocations i JOIN agent.feature_runs r
                   ON r.id = i.run_id WHERE r.created_at > $1 AND i.finished_at IS NULL)
                   AS invocations_open,
                 (SELECT count(*) FROM agent.phase_results p JOIN agent.feature_runs r
                   ON r.id = p.run_id WHERE r.created_at > $1 AND p.status = 'running')
                   AS attempts,
                 (SELECT count(*) FROM agent.sandboxes WHERE created_at > $1
                   AND status IN ('pending', 'running')) AS sandboxes_live""",
                before,
            )
        )
    assert found.pop("interrupted") >= 1
    assert found == dict.fromkeys(found, 0)
