"""The README's worker-API example runs as written."""

from __future__ import annotations

import re
import textwrap
from decimal import Decimal

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
