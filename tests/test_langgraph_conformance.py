"""AgentAppSaver passes LangGraph's official checkpointer conformance suite in full:
all eight capabilities detected, 81 tests passed, none failed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from agent_app.langgraph import AgentAppSaver


async def test_conformance_all_capabilities_all_tests_pass(pool: asyncpg.Pool) -> None:
    @checkpointer_test(name="AgentAppSaver")
    async def agent_app_saver() -> AsyncIterator[AgentAppSaver]:
        saver = AgentAppSaver(pool)
        await saver.setup()
        yield saver

    failures: list[str] = []

    def on_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}.{test}:\n{error}")

    report = await validate(agent_app_saver, progress=ProgressCallbacks(on_test_result=on_result))
    report.print_report()
    assert not failures, "\n".join(failures)
    assert {name for name, r in report.results.items() if r.detected} == {
        c.value for c in ALL_CAPABILITIES
    }
    assert sum(r.tests_passed for r in report.results.values()) == 81
    assert sum(r.tests_failed for r in report.results.values()) == 0
    assert report.conformance_level() == "FULL"


async def test_conformance_on_agent_app_own_connections() -> None:
    """Without a pool the saver runs on agent_app's connections (Piccolo's pool)."""

    @checkpointer_test(name="AgentAppSaver(db pool)")
    async def agent_app_saver() -> AsyncIterator[AgentAppSaver]:
        yield AgentAppSaver()

    report = await validate(agent_app_saver, capabilities={"put", "put_writes", "get_tuple"})
    assert report.passed_all(), report.to_dict()
    assert sum(r.tests_passed for r in report.results.values()) == 37
