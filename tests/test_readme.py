"""The README's examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import asyncpg

from agent_app import budgets, db
from tests.conftest import REPO


async def test_the_worker_api_example_in_the_readme_runs() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The worker API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    source = "async def example(run_id, actual_tokens):\n" + textwrap.indent(code.group(1), "    ")
    source += "    return root, coder\n"
    namespace: dict[str, object] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    async with db.connection() as c:
        run_id = await c.fetchval(
            "INSERT INTO agent.feature_runs (title, request, repo_url) "
            "VALUES ('readme', 'r', 'u') RETURNING id"
        )
    root, coder = await namespace["example"](run_id, 3_500)  # type: ignore[operator]
    books = {b.resource: b for b in await budgets.books(root.id)}
    assert books["tokens"].used == Decimal(3_500) and books["tokens"].reserved == 0
    async with db.connection() as c:
        assert (
            await c.fetchval("SELECT status FROM agent.agents WHERE id = $1", coder.id)
            == "terminated"
        )
        assert (
            await c.fetchval("SELECT status FROM agent.messages WHERE recipient_id = $1", coder.id)
            == "done"
        )


async def test_using_it_from_your_own_project_runs_word_for_word(
    scratch_url: str, tmp_path: Path
) -> None:
    """The README's section, as a newcomer follows it: its piccolo_conf.py and worker.py
    in a fresh project folder, its shell lines run there, against an empty database."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Using it from your own project") :]
    conf, worker = re.findall(r"```python\n(.*?)```", section, re.S)
    [shell] = re.findall(r"```sh\n(.*?)```", section, re.S)
    (tmp_path / "piccolo_conf.py").write_text(conf)
    (tmp_path / "worker.py").write_text(worker)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "DATABASE_URL": scratch_url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    outputs = []
    for line in shell.strip().splitlines():
        done = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        outputs.append(done.stdout)
    assert re.search(r"run [0-9a-f-]{36} is in approaches: 2800 tokens, \$0\.0108", outputs[-1])
    conn = await asyncpg.connect(scratch_url)
    try:
        state = await conn.fetchrow(
            """SELECT
                 (SELECT current_phase FROM agent.feature_runs) AS phase,
                 (SELECT count(*) FROM agent.agent_steps) AS steps,
                 (SELECT output_type FROM agent.tool_calls) AS tool_result,
                 (SELECT finished_at IS NOT NULL FROM agent.agent_invocations) AS closed,
                 (SELECT count(*) FROM agent.checkpoints) AS checkpoints,
                 (SELECT status FROM agent.agents) AS agent,
                 (SELECT sum(reserved) FROM agent.budgets) AS reserved,
                 (SELECT admin FROM piccolo_user WHERE username = 'ops') AS operator"""
        )
    finally:
        await conn.close()
    assert dict(state) == {
        "phase": "approaches", "steps": 2, "tool_result": "json", "closed": True,
        "checkpoints": 1, "agent": "completed", "reserved": 0, "operator": True,
    }  # fmt: skip


async def test_the_worker_loop_example_in_the_readme_acks_everything_once() -> None:
    from agent_app import queue

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The worker API") :]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    loop = next(b for b in blocks if "ack=messages" in b)
    handled: list[int] = []
    source = "async def example(coder):\n" + textwrap.indent(
        loop.replace("...  # handle them", "handled.extend(m.id for m in messages)"), "    "
    )
    namespace: dict[str, object] = {"queue": queue, "handled": handled}
    exec(compile(source, "README.md", "exec"), namespace)
    async with db.connection() as c:
        coder_id = await c.fetchval(
            "INSERT INTO agent.agents (agent_type, name) VALUES ('coder', 'loop') RETURNING id"
        )
    sent = await queue.send_many([queue.Outgoing(coder_id, "k", {"n": n}) for n in range(25)])

    class Coder:
        id = coder_id

    await namespace["example"](Coder)  # type: ignore[operator]
    assert sorted(handled) == sent
    async with db.connection() as c:
        statuses = await c.fetch(
            "SELECT DISTINCT status FROM agent.messages WHERE recipient_id = $1", coder_id
        )
    assert [r["status"] for r in statuses] == ["done"]
