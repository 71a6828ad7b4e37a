"""Reads that span several tables see one moment: a writer committing meanwhile never
shows through half-way."""

from __future__ import annotations

import asyncio

from agent_app import db, runs, telemetry
from agent_app.enums import AgentType, FeaturePhase


async def test_timeline_reads_one_snapshot_while_a_writer_adds_attempts() -> None:
    """The writer adds an attempt with its invocation in one transaction, so a timeline
    read at one moment has exactly one invocation per attempt. Read in several
    statements, it could see an invocation without its attempt (KeyError) or an
    attempt without its invocation."""
    run = await runs.create_run("t", "r", "u")
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            async with db.transaction() as c:
                attempt = await runs.start_phase(run.id, FeaturePhase.analysis, conn=c)
                await telemetry.start_invocation(
                    run.id, attempt.id, AgentType.explorer, "m", conn=c
                )
                await runs.fail_phase(attempt.id, "again", conn=c)
            written += 1

    async def reader() -> list[str]:
        problems = []
        for _ in range(60):
            try:
                tl = await runs.timeline(run.id)
            except KeyError as e:
                problems.append(f"invocation of an attempt not read: {e}")
                continue
            counts = [len(p.invocations) for p in tl.phases]
            if any(n != 1 for n in counts):
                problems.append(f"invocations per attempt: {counts}")
        return problems

    task = asyncio.create_task(writer())
    try:
        found = await asyncio.gather(*(reader() for _ in range(8)))
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    problems = [p for ps in found for p in ps]
    assert written > 0
    assert problems == [], f"{len(problems)} of 480 timelines were torn: {problems[:3]}"
