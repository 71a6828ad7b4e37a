"""Row types read through foreign keys, and Piccolo queries compiled once: what the
budget and tree modules rely on to name no column by hand."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from decimal import Decimal

import asyncpg
import pytest

from agent_app import db, hierarchy, rows
from agent_app.enums import AgentStatus, AgentType, BudgetResource
from agent_app.hierarchy import AgentInfo
from agent_app.rows import extra, from_record, row_type
from agent_app.tables import Agent, Budget, Hierarchy, MemoryRecord


@row_type(Budget, budget_id=Budget.id, left=extra())
@dataclasses.dataclass(frozen=True)
class _Left:
    budget_id: uuid.UUID
    resource: BudgetResource
    left: Decimal


def test_an_extra_field_is_read_under_its_own_name_unconverted() -> None:
    record = {"id": uuid.UUID(int=1), "resource": "tokens", "left": Decimal(5), "x": 0}
    row = from_record(_Left, record)
    assert row == _Left(uuid.UUID(int=1), BudgetResource.tokens, Decimal(5))
    assert row.resource is BudgetResource.tokens


def test_through_refuses_a_column_of_a_table_the_key_does_not_refer_to() -> None:
    with pytest.raises(TypeError, match="agent_id does not refer to MemoryRecord"):
        rows.through(Budget.agent_id, MemoryRecord.content)
    with pytest.raises(TypeError, match="run_id does not refer to Agent"):
        rows.select(AgentInfo, via=MemoryRecord.run_id)
    with pytest.raises(TypeError, match="id is not a foreign key"):
        rows.select(AgentInfo, via=Hierarchy.id)  # type: ignore[arg-type]


async def test_select_via_a_foreign_key_builds_the_row_type_of_the_table_it_refers_to(
    conn: asyncpg.Connection,
) -> None:
    root = await hierarchy.create_root(
        AgentType.orchestrator, "root", budgets={BudgetResource.tokens: 100}, conn=conn
    )
    child = await hierarchy.spawn_child(
        root.id, AgentType.coder, "child", budgets={BudgetResource.tokens: 40}, conn=conn
    )
    # The agents owning budgets of 40 tokens or more: agents' columns through the budgets'
    # key, named as in Agent, so from_record builds AgentInfo from them.
    query = (
        rows.select(AgentInfo, via=Budget.agent_id)
        .where(Budget.agent_id.is_in([root.id, child.id]), Budget.allocated >= 40)
        .order_by(rows.through(Budget.agent_id, Agent.depth_level))
    )
    found = rows.from_records(AgentInfo, await db.query(query, conn=conn))
    assert found == [root, child]
    assert found[1].status is AgentStatus.running and found[1].parent_id == root.id
    # One column through the key, named as the column: what budgets.charge(0) reads.
    status = await db.query_row(
        Budget.select(rows.through(Budget.agent_id, Agent.status)).where(
            Budget.agent_id == child.id
        ),
        conn=conn,
    )
    assert status is not None and dict(status) == {"status": "running"}


async def test_a_compiled_query_is_built_once_on_first_use_its_values_the_parameters(
    conn: asyncpg.Connection,
) -> None:
    built: list[int] = []

    def build(name: object, depth: object) -> object:
        built.append(1)
        return Agent.select(Agent.id).where(Agent.name == name, Agent.depth_level <= depth)

    by_name = db.Compiled(build, params=2)
    assert built == []  # nothing compiled at import (that needs piccolo_conf's engine)
    sql = by_name.sql
    assert by_name.sql is sql and built == [1]
    name = f"compiled-{uuid.uuid4()}"
    root = await hierarchy.create_root(AgentType.orchestrator, name, conn=conn)
    await hierarchy.spawn_child(root.id, AgentType.coder, name, conn=conn)
    # $1 the name, $2 the deepest level: build's arguments, in order.
    assert [r[0] for r in await db.fetch(sql, name, 0, conn=conn)] == [root.id]
    assert len(await db.fetch(sql, name, 1, conn=conn)) == 2


def _is_null(parent: object, name: object) -> object:
    return Agent.select().where(Agent.parent_id == None, Agent.name == name)  # noqa: E711


@pytest.mark.parametrize(
    ("params", "build"),
    [
        # A limit is written into the SQL (Piccolo wants an int): a value would be frozen.
        (2, lambda name, n: Agent.select(Agent.id).where(Agent.name == name).limit(n)),
        # == None is IS NULL: no parameter, and the next value's $n shifts.
        (2, _is_null),
        # is_in sends one parameter per element.
        (1, lambda ids: Agent.select().where(Agent.id.is_in([ids, ids]))),
        # Fewer parameters declared than the query takes (a value written in), or more.
        (1, lambda name: Agent.select().where(Agent.name == name, Agent.depth_level <= 0)),
        (2, lambda name, depth: Agent.select().where(Agent.name == name)),
        # The query holds the arguments in another order than build takes them.
        (
            2,
            lambda name, depth: Agent.select().where(
                Agent.depth_level <= depth, Agent.name == name
            ),
        ),
    ],
    ids=["limit", "is-null", "is-in", "too-few", "too-many", "out-of-order"],
)
def test_a_compiled_query_whose_values_are_not_its_parameters_fails_on_first_use(
    params: int, build: Callable[..., object]
) -> None:
    compiled = db.Compiled(build, params=params)
    with pytest.raises(TypeError, match=rf"declared with params={params} "):
        _ = compiled.sql
    with pytest.raises(TypeError):  # every use, not only the first
        _ = compiled.sql


def test_the_worker_apis_compiled_queries_are_declared_right() -> None:
    """Every db.Compiled of the worker API compiles with its declared parameters (a
    mis-declared one raises here, before any caller meets it)."""
    import importlib

    from tests.test_names_once import API_MODULES

    found = 0
    for module in API_MODULES:
        for name, value in vars(importlib.import_module(f"agent_app.{module}")).items():
            values = value.values() if isinstance(value, dict) else [value]
            for compiled in values:
                if isinstance(compiled, db.Compiled):
                    assert compiled.sql.count("$") >= compiled.params, (module, name)
                    found += 1
    assert found >= 20
