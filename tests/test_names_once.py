"""Names are written once: the worker API reaches tables and columns through the Table
classes of :mod:`agent_app.tables` (or through the ``.sql`` files, which
``test_sql_files.py`` prepares against the migrated schema), so renaming a column in
``tables.py`` and not in the API fails type checking - not production.

Two checks: mypy run on a copy of the package whose ``tables.py`` renames a column the
API uses through Piccolo must fail naming the API module (and pass on the unmodified
copy, so the test can fail both ways); and the worker-API modules hold no hand-typed
``agent.<table>`` literal, table name or column name.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent_app.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agent_app"

#: The worker API: the modules a worker calls.
API_MODULES = (
    "budgets",
    "checkpoints",
    "cta",
    "hierarchy",
    "memory",
    "operator",
    "queue",
    "runs",
    "sandboxes",
    "telemetry",
    "agents_sdk",
    "langgraph",
    "simulation",
)

#: Modules still being moved onto the Table classes on other branches of issue 9; the
#: lead empties this set as they merge.
NOT_YET: frozenset[str] = frozenset()

#: Strings that look like a table or column name but are something else, by module.
ALLOWED: dict[str, set[str]] = {
    # The keys of the refusals' JSON detail (written by the reservation functions) and
    # the parameter named in an amount's refusal message.
    "budgets": {"id", "resource", "state", "actual", "holder", "lease_expires_at", "amount"},
    # LangGraph's config keys and checkpoint dict keys.
    "langgraph": {"thread_id", "checkpoint_ns", "checkpoint_id", "id"},
    # The SDK's objects' attributes and the telemetry StepIn/_Tokens keys.
    "agents_sdk": {
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "type",
        "status",
        "reasoning",
        "tool_call_id",
        "content",
        "text",
        "model",
        "summary",
    },
    # A statistics label and the keys of the simulated checkpoint states.
    "simulation": {"messages", "phase", "attempt"},
}

# (module, Table class, column attribute) renamed in the copy: columns each module uses
# in a Piccolo query (a where clause, an update's values, a select list). agents_sdk and
# langgraph have none: every statement they run is in their .sql file (they run on a
# caller's pool without piccolo_conf.py, so they build no Piccolo query).
RENAMES = [
    ("runs", "FeatureRun", "pr_url"),
    ("sandboxes", "Workspace", "head_commit"),
    ("checkpoints", "Checkpoint", "id"),
    ("cta", "CtaEvent", "responded_by"),
    ("telemetry", "ToolCall", "output_type"),
    ("queue", "Message", "payload"),
    ("operator", "AgentInvocation", "finished_at"),
    ("hierarchy", "Hierarchy", "depth"),
    ("budgets", "BudgetReservation", "id"),
    ("simulation", "FeatureRun", "sandbox_id"),
]


def _mypy(copy: Path, cache: Path, modules: list[str]) -> subprocess.CompletedProcess[str]:
    """mypy with the project's configuration on ``modules`` of the copy; imports are
    followed silently (Piccolo's types are needed to see a missing attribute) and cached
    across the calls of this test module."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--follow-imports=silent",
            "--cache-dir",
            str(cache),
            "--no-error-summary",
            "--hide-error-context",
            *[f"agent_app/{m}.py" for m in modules],
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package (sources only) in a folder of its own."""
    root = tmp_path_factory.mktemp("names_once")
    shutil.copytree(
        PACKAGE, root / "agent_app", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return root


def _rename(tables_py: str, table: str, attribute: str, new: str) -> str:
    """``tables_py`` with ``table``'s ``attribute`` column renamed to ``new``."""
    body = re.search(rf"^class {table}\(Table\b.*?(?=^class |\Z)", tables_py, re.M | re.S)
    assert body is not None, f"no class {table} in tables.py"
    renamed, n = re.subn(rf"^(\s+){attribute}(\s*[:=])", rf"\1{new}\2", body.group(0), flags=re.M)
    assert n == 1, f"{table}.{attribute} is not declared once in tables.py"
    return tables_py[: body.start()] + renamed + tables_py[body.end() :]


def test_mypy_fails_on_a_column_renamed_in_tables_but_not_in_the_api(copy: Path) -> None:
    cache = copy / ".mypy_cache"
    modules = sorted({m for m, _, _ in RENAMES})
    tables_py = copy / "agent_app" / "tables.py"
    original = tables_py.read_text()

    clean = _mypy(copy, cache, modules)
    assert clean.returncode == 0, f"mypy fails on the unmodified copy:\n{clean.stdout}"

    stamp = tables_py.stat().st_mtime
    try:
        for n, (module, table, attribute) in enumerate(RENAMES, 1):
            tables_py.write_text(_rename(original, table, attribute, f"{attribute}_renamed"))
            # Each version gets its own mtime: mypy's cache trusts an unchanged
            # (mtime, size), and every renamed copy has the same size.
            os.utime(tables_py, (stamp + n, stamp + n))
            result = _mypy(copy, cache, [module])
            assert result.returncode == 1, (
                f"mypy passed with {table}.{attribute} renamed in tables.py only:\n"
                f"{result.stdout}{result.stderr}"
            )
            assert re.search(
                rf"^agent_app/{module}\.py:\d+: error: .*has no attribute \"{attribute}\"",
                result.stdout,
                re.M,
            ), result.stdout
    finally:
        tables_py.write_text(original)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """The string literals of a module, except the arguments of ``sqlfile.load(...)``
    (a ``.sql`` file's name, which may be a table's)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load":
            skip.update(id(a) for a in node.args)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


TABLE_NAMES = {t._meta.tablename for t in TABLES}
COLUMN_NAMES = {c._meta.db_column_name for t in TABLES for c in t._meta.columns}
QUALIFIED = re.compile(rf"\b(agent|{'|'.join(t._meta.schema or 'public' for t in TABLES)})\.\w+")


@pytest.mark.parametrize("module", [m for m in API_MODULES if m not in NOT_YET])
def test_the_worker_api_holds_no_hand_typed_table_or_column_name(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = [
        f"line {line}: {value!r}"
        for line, value in _strings(tree)
        if (QUALIFIED.search(value) or value in TABLE_NAMES or value in COLUMN_NAMES)
        and value not in ALLOWED.get(module, set())
    ]
    assert not found, (
        f"agent_app/{module}.py names tables or columns by hand (use the Table classes, "
        f"or move the statement into agent_app/sql/queries/): {found}"
    )


def test_the_name_check_sees_a_hand_typed_name() -> None:
    source = 'SQL = "SELECT status FROM agent.messages"\nx = row["run_id"]\nsqlfile.load("runs")\n'
    strings = [v for _, v in _strings(ast.parse(source))]
    assert strings == ["SELECT status FROM agent.messages", "run_id"]
    assert QUALIFIED.search(strings[0]) and strings[1] in COLUMN_NAMES
