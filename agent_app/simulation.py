"""A simulated agent platform: whole feature runs driven through the worker API.

Each run does what a real platform does: a sandbox and workspaces; an orchestrator that
spawns explorers, judges, a meta-judge and a coder with budgets carved from its own;
agents talking through the message queue; model steps with tool calls and token usage
(including ``execution-denied`` and error outputs), failed attempts that are retried,
memory records, checkpoints, questions answered by a simulated person; some runs fail,
the rest reach ``completed`` with a PR URL.

The story of run ``i`` depends only on ``(seed, i)``: the same seed tells the same story
whatever the number of workers. Interrupted runs are failed on the way out (all agents
finished, budgets returned), so an interruption leaves the database consistent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from agent_app import (
    budgets,
    checkpoints,
    cta,
    db,
    hierarchy,
    memory,
    operator,
    queue,
    runs,
    sandboxes,
)
from agent_app import telemetry as tel
from agent_app.enums import (
    WORKING_PHASES,
    AgentStatus,
    AgentType,
    BudgetResource,
    CtaKind,
    FeaturePhase,
    FinishReason,
    MemoryKind,
    SandboxSourceType,
    SandboxStatus,
    ToolOutputType,
)
from agent_app.errors import AgentAppError
from agent_app.tables import FeatureRun

R = BudgetResource
TOOLS = ("bash", "read_file", "write_file", "grep", "run_tests")
FEATURES = ("retry logic", "dark mode", "CSV export", "rate limits")
APPROACHES = ["approach-1", "approach-2", "approach-3"]


@dataclass
class Stats:
    """What a simulation did; :meth:`summary` renders it."""

    runs_completed: int = 0
    runs_failed: int = 0
    messages: int = 0
    steps: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    reclaimed_tokens: Decimal = Decimal(0)
    phase_seconds: dict[FeaturePhase, list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    elapsed: float = 0.0
    #: Runs whose clean-up after an interruption or crash failed (left inconsistent).
    cleanup_failures: int = 0

    def summary(self) -> str:
        def pct(values: list[float], q: float) -> str:
            if not values:
                return "-"
            ordered = sorted(values)
            return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f} ms"

        per_s = (lambda n: f"{n / self.elapsed:,.1f}/s") if self.elapsed else (lambda n: "-")
        lines = [
            ("runs completed", f"{self.runs_completed}"),
            ("runs per second", per_s(self.runs_completed + self.runs_failed)),
            ("runs failed", f"{self.runs_failed}"),
            ("messages", f"{self.messages:,} ({per_s(self.messages)})"),
            ("model steps", f"{self.steps:,} ({per_s(self.steps)})"),
            ("tool calls", f"{self.tool_calls:,}"),
            ("tokens in / out", f"{self.input_tokens:,} / {self.output_tokens:,}"),
            ("cost", f"${self.cost_usd:.4f}"),
            ("budget reclaimed", f"{self.reclaimed_tokens:,} tokens returned unused"),
            ("wall time", f"{self.elapsed:.1f} s"),
        ]
        for phase in WORKING_PHASES:
            values = self.phase_seconds.get(phase, [])
            lines.append(
                (f"phase {phase.value}", f"p50 {pct(values, 0.5)}, p95 {pct(values, 0.95)}")
            )
        width = max(len(k) for k, _ in lines)
        return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in lines)


class _Run:
    """One simulated feature run."""

    def __init__(self, index: int, seed: int, stats: Stats) -> None:
        self.i = index
        self.rng = random.Random(f"{seed}:{index}")
        self.stats = stats
        self.worker = f"sim-{index}"
        self.workspaces: list[uuid.UUID] = []

    # -- model calls ------------------------------------------------------ #

    async def invoke(
        self,
        agent: hierarchy.AgentInfo,
        phase: runs.Phase,
        *,
        steps: int,
        denied: float = 0.0,
        parent: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """An invocation of ``agent``: model steps with tool calls, usage charged to the
        agent's budget (reserve, then commit the actual)."""
        rng = self.rng
        inv = await tel.start_invocation(
            phase.run_id, phase.id, agent.agent_type, rng.choice(["model-a", "model-b"]),
            agent_id=agent.id, parent_invocation_id=parent, input={"task": phase.phase.value},
        )  # fmt: skip
        batch: list[tel.StepIn] = []
        results: list[tel.ToolResultIn] = []
        for n in range(steps):
            last = n == steps - 1
            calls = [] if last else [
                tel.ToolCallIn(f"call_{n}_{k}", rng.choice(TOOLS), {"arg": rng.randint(1, 99)})
                for k in range(rng.randint(1, 3))
            ]  # fmt: skip
            input_tokens, output_tokens = rng.randint(800, 4000), rng.randint(50, 600)
            hold = await budgets.reserve(agent.id, R.tokens, 4600, holder=self.worker)
            await budgets.commit(hold, input_tokens + output_tokens)  # by id, safe to repeat
            batch.append(
                tel.StepIn(
                    inv, n, FinishReason.stop if last else FinishReason.tool_calls,
                    raw_finish_reason="end_turn" if last else "tool_use",
                    text=f"step {n} of {agent.name}", input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cached_input_tokens=rng.choice([None, input_tokens // 2]),
                    reasoning_tokens=rng.choice([None, 0, rng.randint(10, 200)]),
                    cost_usd=Decimal(input_tokens * 3 + output_tokens * 15) / Decimal(10**6),
                    tool_calls=calls,
                )
            )  # fmt: skip
            for call in calls:
                roll = rng.random()
                kind, output = (
                    (ToolOutputType.execution_denied, None) if roll < denied
                    else (ToolOutputType.error_text, "exit status 1") if roll < denied + 0.1
                    else (ToolOutputType.json, {"ok": True, "lines": rng.randint(1, 400)})
                )  # fmt: skip
                results.append(tel.ToolResultIn(inv, call.tool_call_id, kind, output))
            self.stats.tool_calls += len(calls)
            self.stats.input_tokens += input_tokens
            self.stats.output_tokens += output_tokens
        if len(batch) > 2:
            await tel.ingest(batch, results)  # a long invocation arrives as one bulk batch
        else:
            for step in batch:
                await tel.record_step(step)
            for result in results:
                await tel.record_tool_result(result)
        _, _, cost = await tel.finish_invocation(inv, output={"ok": True}, finish_reason="stop")
        await budgets.charge(agent.id, R.cost_usd, cost, holder=self.worker)
        self.stats.steps += len(batch)
        self.stats.cost_usd += cost
        return inv

    async def child(
        self, parent: hierarchy.AgentInfo, kind: AgentType, name: str, tokens: int
    ) -> hierarchy.AgentInfo:
        agent = await hierarchy.spawn_child(
            parent.id, kind, name, budgets={R.tokens: tokens, R.cost_usd: 1}
        )
        ws = await sandboxes.allocate_workspace(
            agent.id, f"/sandbox/{self.run.id}/{name}", f"sim/{self.i}/{name}", "main",
            sandbox_id=self.sandbox.id,
        )  # fmt: skip
        self.workspaces.append(ws.id)
        return agent

    async def finish_child(self, agent: hierarchy.AgentInfo) -> None:
        [tokens] = [b for b in await budgets.books(agent.id) if b.resource is R.tokens]
        await hierarchy.finish(agent.id)
        self.stats.reclaimed_tokens += tokens.allocated - tokens.used

    async def exchange(
        self, orchestrator: hierarchy.AgentInfo, workers: list[hierarchy.AgentInfo], kind: str
    ) -> None:
        """The orchestrator briefs each worker and collects a reply, through the queue."""
        await queue.send_many(
            [queue.Outgoing(w.id, kind, {"brief": w.name}, priority=self.rng.randint(0, 9),
                            sender_id=orchestrator.id, run_id=self.run.id) for w in workers]
        )  # fmt: skip
        for w in workers:
            [brief] = await queue.claim(self.worker, [w.id])
            if self.rng.random() < 0.1:  # a flaky handler: fail once, retried at once
                await queue.fail(brief, self.worker, "handler crashed", base_delay=_NO_DELAY)
                [brief] = await queue.claim(self.worker, [w.id])
            await queue.ack(brief, self.worker)
            await queue.send(orchestrator.id, f"{kind}-done", {"from": w.name},
                             sender_id=w.id, run_id=self.run.id)  # fmt: skip
        replies = await queue.claim(self.worker, [orchestrator.id], limit=len(workers))
        await queue.ack(replies, self.worker)
        self.stats.messages += 2 * len(workers)

    async def ask_person(self, question: cta.Question, answer: object) -> None:
        """A simulated person answers while the agent waits."""

        async def person() -> None:
            await asyncio.sleep(self.rng.uniform(0.005, 0.03))
            await cta.answer(question.id, answer, responded_by="simulated-person")

        answered, _ = await asyncio.gather(cta.wait(question.id, timeout=30), person())
        assert answered.response == answer

    # -- the run ---------------------------------------------------------- #

    async def execute(self) -> None:
        rng = self.rng
        self.sandbox = await sandboxes.create(
            SandboxSourceType.git, "simulated", source_ref=f"https://example.invalid/r{self.i}.git@main"
        )  # fmt: skip
        await sandboxes.set_status(self.sandbox.id, SandboxStatus.running)
        self.run = await runs.create_run(
            f"Feature #{self.i}: {rng.choice(FEATURES)}",
            "Implement the feature with tests.", f"https://example.invalid/r{self.i}.git",
            sandbox_id=self.sandbox.id,
        )  # fmt: skip
        self.root = await hierarchy.create_root(
            AgentType.orchestrator, "orchestrator", run_id=self.run.id,
            budgets={R.tokens: 400_000, R.cost_usd: 20, R.tool_calls: 500},
        )  # fmt: skip
        self.workspaces.append(
            (await sandboxes.allocate_workspace(
                self.root.id, f"/sandbox/{self.run.id}/main", f"sim/{self.i}/main", "main",
                sandbox_id=self.sandbox.id)).id
        )  # fmt: skip
        doomed = rng.choice(WORKING_PHASES) if rng.random() < 0.2 else None
        try:
            for phase_name in WORKING_PHASES:
                started = time.perf_counter()
                while True:
                    phase = await runs.start_phase(self.run.id, phase_name)
                    await self.phase(phase)
                    if phase_name is doomed:
                        await runs.fail_phase(phase.id, "the simulated agents gave up")
                        raise _RunFailed(f"{phase_name.value} failed")
                    if rng.random() < 0.15:  # a failed attempt, retried
                        await runs.fail_phase(phase.id, "tests failed", summary="retrying")
                        continue
                    await runs.pass_phase(phase.id, f"{phase_name.value} done", {"ok": True})
                    break
                await checkpoints.save(
                    self.root.id, {"phase": phase_name.value, "run": str(self.run.id)}
                )
                await checkpoints.save(
                    self.root.id, {"phase": phase_name.value, "run": str(self.run.id)}
                )
                await runs.advance(
                    self.run.id,
                    pr_url=f"https://example.invalid/r{self.i}/pull/{self.i + 1}"
                    if phase_name is FeaturePhase.pr else None,
                    branch_name=f"sim/{self.i}/main",
                )  # fmt: skip
                self.stats.phase_seconds[phase_name].append(time.perf_counter() - started)
            await hierarchy.finish(self.root.id, AgentStatus.completed)
            self.stats.runs_completed += 1
        except _RunFailed as failure:
            await self.fail(str(failure))
        finally:
            await self.close_sandbox()

    async def phase(self, phase: runs.Phase) -> None:
        rng, root = self.rng, self.root
        p = phase.phase
        parent = await self.invoke(root, phase, steps=rng.randint(1, 3))
        if p is FeaturePhase.analysis:
            await memory.add(self.run.id, p, MemoryKind.insight, "the repository uses pytest",
                             tags=["tests", "python"], source_invocation_id=parent)  # fmt: skip
        elif p is FeaturePhase.approaches:
            explorers = [
                await self.child(root, AgentType.explorer, f"explorer{k}-{phase.attempt}", 40_000)
                for k in range(3)
            ]
            await self.exchange(root, explorers, "explore")
            for e in explorers:
                await self.invoke(e, phase, steps=rng.randint(2, 5), parent=parent)
                await checkpoints.save(e.id, {"notes": e.name})
                await self.finish_child(e)
            await memory.add(self.run.id, p, MemoryKind.decision, "three approaches proposed",
                             tags=["plan"])  # fmt: skip
        elif p is FeaturePhase.judging:
            judges = [await self.child(root, AgentType.judge, f"judge{k}-{phase.attempt}", 20_000)
                      for k in range(2)]  # fmt: skip
            meta = await self.child(root, AgentType.meta_judge, f"meta-{phase.attempt}", 20_000)
            await self.exchange(root, [*judges, meta], "judge")
            for j in [*judges, meta]:
                await self.invoke(j, phase, steps=rng.randint(1, 3), parent=parent)
                await self.finish_child(j)
            question = await cta.ask(
                self.run.id, CtaKind.choice, "Which approach should we build?",
                options=APPROACHES, phase=p,
            )  # fmt: skip
            await self.ask_person(question, rng.choice(APPROACHES))
        elif p is FeaturePhase.implementation:
            coder = await self.child(root, AgentType.coder, f"coder-{phase.attempt}", 120_000)
            await self.exchange(root, [coder], "implement")
            await self.invoke(coder, phase, steps=rng.randint(4, 9), denied=0.1, parent=parent)
            await checkpoints.save(coder.id, {"diff": "+ feature", "attempt": phase.attempt})
            await memory.add(self.run.id, p, MemoryKind.failure, "flaky test in test_io.py",
                             tags=["tests"])  # fmt: skip
            await self.finish_child(coder)
        elif p is FeaturePhase.pr:
            question = await cta.ask(
                self.run.id, CtaKind.approval, "Open the pull request?", phase=p
            )
            await self.ask_person(question, True)

    async def fail(self, reason: str) -> None:
        await runs.fail_run(self.run.id, reason)
        await hierarchy.finish(self.root.id, AgentStatus.failed)
        await cta.expire(run_id=self.run.id)
        self.stats.runs_failed += 1

    async def close_sandbox(self) -> None:
        for ws in self.workspaces:
            with contextlib.suppress(AgentAppError):  # already released
                await sandboxes.release_workspace(ws)
        await sandboxes.set_status(self.sandbox.id, SandboxStatus.stopping)
        await sandboxes.set_status(self.sandbox.id, SandboxStatus.stopped)


class _RunFailed(Exception):
    pass


_NO_DELAY = dt.timedelta(0)


async def _interrupted(run: _Run) -> None:
    """Leave an interrupted or crashed run consistent: failed as "interrupted", its open
    invocations closed, agents finished, budgets returned, questions closed, workspaces
    released (:func:`agent_app.operator.cancel_run`, which asks the database rather
    than this object: an interruption can land between a write and its bookkeeping)."""
    if not hasattr(run, "run"):
        if not hasattr(run, "sandbox"):
            return
        # Interrupted while create_run was under way: its INSERT may have committed
        # before the cancellation reached us. The database knows it by its sandbox.
        row = await db.query_row(
            FeatureRun.select(FeatureRun.id).where(FeatureRun.sandbox_id == run.sandbox.id).first()
        )
        if row is None:
            await _abort_sandbox(run)
            return
        run.run = await runs.get_run(row[0])
    current = await runs.get_run(run.run.id)
    if current.current_phase not in (FeaturePhase.completed, FeaturePhase.failed):
        run.stats.runs_failed += 1
    await operator.cancel_run(run.run.id, "interrupted")
    await _abort_sandbox(run)


#: How long the clean-up waits for a server that is restarting before giving up on a run.
CLEANUP_PATIENCE = 60.0


async def _clean_up(run: _Run) -> None:
    """:func:`_interrupted`, retried while the server is unavailable (a crash is often
    a restart: the clean-up must outlast it). Every step is safe to repeat."""
    deadline = time.monotonic() + CLEANUP_PATIENCE
    delay = 0.2
    while True:
        try:
            await _interrupted(run)
            return
        except AgentAppError as e:
            if not e.retryable or time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _abort_sandbox(run: _Run) -> None:
    ended = (SandboxStatus.stopped, SandboxStatus.failed, SandboxStatus.aborted)
    if run.sandbox.status not in ended:
        with contextlib.suppress(AgentAppError):  # it moved on meanwhile: nothing to abort
            await sandboxes.set_status(run.sandbox.id, SandboxStatus.aborted)


async def simulate(
    n_runs: int,
    workers: int,
    seed: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    stats: Stats | None = None,
) -> Stats:
    """Run ``n_runs`` feature runs with ``workers`` concurrent workers, counting into
    ``stats`` (a new one by default; pass one to read partial counts after a cancel)."""
    stats = stats if stats is not None else Stats()
    pending = list(range(n_runs))
    active: set[_Run] = set()
    done = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        while pending:
            run = _Run(pending.pop(0), seed, stats)
            active.add(run)
            await run.execute()  # if it raises, the run stays in `active` for the clean-up
            active.discard(run)
            done += 1
            if progress is not None:
                progress(done, n_runs)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, workers))]
    try:
        finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in finished:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    except BaseException:
        # Interrupted (Ctrl-C) or crashed (a worker raised): stop every worker, then
        # finish what each run in progress started, one by one, before letting the
        # cancellation or the error through.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in list(active):
            try:
                await _clean_up(run)
            except Exception as e:  # report, and go on with the other runs
                stats.cleanup_failures += 1
                print(f"cleaning up run {run.i} failed: {e!r}", file=sys.stderr)
        raise
    finally:
        stats.elapsed = time.perf_counter() - started
    return stats
