"""The README's LangGraph and Agents SDK examples run as written."""

from __future__ import annotations

import ast
import re
import sys
import types
from typing import Any

from agents import set_tracing_disabled
from langchain_core.messages import AIMessage, HumanMessage

from agent_app import db
from tests.conftest import REPO

set_tracing_disabled(True)


async def run_readme_example(heading: str, **given: Any) -> dict[str, Any]:
    """Run the first python block under ``heading`` as a module with top-level await
    (as in a notebook or ``python -m asyncio``), ``given`` names defined; returns its
    globals."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(heading) :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    # A registered module: LangGraph reads the State class's annotations through it.
    module = types.ModuleType("readme_example")
    module.__dict__.update(given)
    sys.modules[module.__name__] = module
    try:
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        coroutine = eval(compile(code.group(1), "README.md", "exec", flags=flags), module.__dict__)
        if coroutine is not None:
            await coroutine
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


async def new_run_and_phase() -> tuple[Any, Any]:
    async with db.connection() as c:
        run_id = await c.fetchval(
            "INSERT INTO agent.feature_runs (title, request, repo_url) "
            "VALUES ('readme', 'r', 'u') RETURNING id"
        )
        phase_id = await c.fetchval(
            "INSERT INTO agent.phase_results (run_id, phase) VALUES ($1, 'implementation') "
            "RETURNING id",
            run_id,
        )
    return run_id, phase_id


async def test_the_langgraph_example_runs() -> None:
    run_id, _ = await new_run_and_phase()
    result = (await run_readme_example("## LangGraph: `AgentAppSaver`", run_id=run_id))["result"]
    assert [(type(m), m.content) for m in result["messages"]] == [
        (HumanMessage, "add a --json flag"),
        (AIMessage, "plan: add a --json flag"),
        (HumanMessage, "reviewer: yes"),
    ]
    async with db.connection() as c:
        assert (
            await c.fetchval(
                "SELECT run_id FROM agent.graph_threads WHERE thread_id = 'feature-42'"
            )
            == run_id
        )
        await c.execute("DELETE FROM agent.feature_runs WHERE id = $1", run_id)
        assert (
            await c.fetchval(
                "SELECT count(*) FROM agent.graph_checkpoints WHERE thread_id = 'feature-42'"
            )
            == 0
        )


async def test_the_agents_sdk_example_runs() -> None:
    run_id, phase_id = await new_run_and_phase()
    done = await run_readme_example(
        "## OpenAI Agents SDK: `AgentAppSession`", run_id=run_id, phase_result_id=phase_id
    )
    second, session, hooks = done["second"], done["session"], done["hooks"]
    assert second.final_output == "You said hi."
    assert [i.get("content") for i in await session.get_items()][:1] == ["hi"]
    assert len(await session.get_items()) == 4  # two questions, two answers
    async with db.connection() as c:
        assert (
            await c.fetchval(
                "SELECT count(*) FROM agent.agent_steps WHERE invocation_id = $1",
                hooks.invocation_id,
            )
            == 1
        )
    await session.clear_session()
