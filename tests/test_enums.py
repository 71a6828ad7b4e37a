"""Every enum column refuses every value outside its enum: through the ORM, through
raw SQL, and for arbitrary strings (hypothesis). Every value inside is accepted."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from enum import Enum
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from piccolo.columns import ForeignKey
from piccolo.table import Table

from agent_app.tables import TABLES
from tests import factories
from tests.conftest import SyncDB

ENUM_COLUMNS: list[tuple[type[Table], str, type[Enum]]] = [
    (t, c._meta.db_column_name, c._meta.choices)
    for t in TABLES
    for c in t._meta.columns
    if isinstance(c._meta.choices, type) and issubclass(c._meta.choices, Enum)
]
IDS = [f"{t._meta.tablename}.{c}" for t, c, _ in ENUM_COLUMNS]
# Values refused by another rule on purpose, tested in test_constraints: phase results are
# for working phases only; a snapshot-built sandbox needs a snapshot.
SKIP_ACCEPT = {
    ("phase_results", "phase", "completed"),
    ("phase_results", "phase", "failed"),
    ("sandboxes", "source_type", "snapshot"),
    # a reservation starts held (or committed); it reaches these by an update
    ("budget_reservations", "state", "released"),
    ("budget_reservations", "state", "expired"),
}
TEXT_REQUIRED = {"content": "remember this", "prompt": "approve?"}
# budget_reservations: a positive amount, a holder, a lease ending in the future.
OTHER_REQUIRED: dict[str, Any] = {"amount": Decimal(1), "holder": "w1"}


def _valid_row(table: type[Table], fks: dict[str, uuid.UUID] | None = None) -> dict[str, Any]:
    """The fewest values for a valid row: required references, enums, required text."""
    row: dict[str, Any] = {}
    for col in table._meta.columns:
        name = col._meta.db_column_name
        if isinstance(col, ForeignKey) and not col._meta.null:
            row[name] = (fks or {}).get(name, uuid.uuid4())
        choices = col._meta.choices
        if isinstance(choices, type) and issubclass(choices, Enum) and not col._meta.null:
            row[name] = next(iter(choices)).value
        if name in TEXT_REQUIRED:
            row[name] = TEXT_REQUIRED[name]
        if name in OTHER_REQUIRED:
            row[name] = OTHER_REQUIRED[name]
    if table._meta.tablename == "budget_reservations":
        row["agent_id"] = (fks or {}).get("agent_id", uuid.uuid4())  # the budget's agent
        row["lease_expires_at"] = _now() + datetime.timedelta(hours=1)
    return row


async def _raw_insert(conn: asyncpg.Connection, table: type[Table], row: dict[str, Any]) -> None:
    cols = list(row)
    await conn.execute(
        f"INSERT INTO agent.{table._meta.tablename} ({', '.join(cols)}) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})",
        *row.values(),
    )


@pytest.mark.parametrize(("table", "column", "enum"), ENUM_COLUMNS, ids=IDS)
async def test_orm_refuses_value_outside_enum(
    table: type[Table], column: str, enum: type[Enum]
) -> None:
    row = _valid_row(table)
    row[column] = "not-a-" + column
    if table._meta.tablename == "phase_results" and column == "status":
        row["finished_at"] = _now()  # a status other than running is finished
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await table.insert(table(**row))
    assert err.value.constraint_name == f"{column}_enum"
    assert f"{column}_enum" in str(err.value)


@pytest.mark.parametrize(("table", "column", "enum"), ENUM_COLUMNS, ids=IDS)
async def test_raw_sql_refuses_value_outside_enum(
    conn: asyncpg.Connection, table: type[Table], column: str, enum: type[Enum]
) -> None:
    row = _valid_row(table)
    if table._meta.tablename == "phase_results" and column == "status":
        row["finished_at"] = _now()
    # Upper case and padded variants of a valid value are still invalid.
    for bad in ("bogus", next(iter(enum)).value.upper(), " " + next(iter(enum)).value):
        row[column] = bad
        with pytest.raises(asyncpg.CheckViolationError) as err:
            async with conn.transaction():
                await _raw_insert(conn, table, row)
        assert err.value.constraint_name == f"{column}_enum"


@pytest.fixture
async def parents(conn: asyncpg.Connection) -> dict[str, uuid.UUID]:
    """One real row to refer to, per referenced table (inside the test's transaction)."""
    sandbox = await factories.sandbox(conn)
    run = await factories.run(conn)
    phase = await factories.phase(conn, run)
    agent = await factories.agent(conn)
    for resource in ("tokens", "cost_usd", "tool_calls"):
        await factories.budget(conn, agent, 100, resource)
    invocation = await factories.invocation(conn, run, phase)
    step = await factories.step(conn, invocation)
    return {
        "sandbox_id": sandbox,
        "run_id": run,
        "phase_result_id": phase,
        "agent_id": agent,
        "recipient_id": agent,
        "invocation_id": invocation,
        "step_id": step,
        "parent_id": agent,
        "child_id": agent,
    }


@pytest.mark.parametrize(("table", "column", "enum"), ENUM_COLUMNS, ids=IDS)
async def test_every_enum_value_is_accepted(
    conn: asyncpg.Connection,
    parents: dict[str, uuid.UUID],
    table: type[Table],
    column: str,
    enum: type[Enum],
) -> None:
    for member in enum:
        row = _valid_row(table, parents)
        row[column] = member.value
        # Rules tied to particular values: give them what they need.
        key = (table._meta.tablename, column, member.value)
        if key in SKIP_ACCEPT:
            continue
        if table._meta.tablename == "phase_results" and column == "status":
            row["finished_at"] = None if member.value == "running" else _now()
        if table._meta.tablename == "cta_events" and member.value == "choice":
            row["options"] = '["a", "b"]'
        if table._meta.tablename == "messages" and column == "status":
            if member.value == "claimed":
                row.update(lease_expires_at=_now(), claimed_by="w1")
            if member.value in ("done", "dead", "cancelled"):
                row["finished_at"] = _now()
        if table._meta.tablename == "workspaces" and member.value == "released":
            row["released_at"] = _now()
        if table._meta.tablename == "workspaces":
            row.update(worktree_path=f"/w/{member.value}", branch_name=f"b-{member.value}")
        if table._meta.tablename == "budgets":
            row["resource"] = member.value
            row["agent_id"] = await factories.agent(conn)
        if table._meta.tablename == "budget_reservations":
            resource = row["resource"]
            row["budget_id"] = await conn.fetchval(
                "SELECT id FROM agent.budgets WHERE agent_id = $1 AND resource = $2",
                row["agent_id"],
                resource,
            )
            if member.value == "committed":
                row.update(actual=Decimal(1), finished_at=_now())
        if table._meta.tablename == "tool_calls":
            row["tool_call_id"] = f"call-{member.value}"
        if table._meta.tablename == "agent_steps":
            row["step_number"] = list(enum).index(member) + 10
        if table._meta.tablename == "phase_results":
            row["attempt"] = list(enum).index(member) + 10
        async with conn.transaction():
            await _raw_insert(conn, table, row)


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.sampled_from(ENUM_COLUMNS),
    value=st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
)
def test_any_string_outside_the_enum_is_refused(
    sync_db: SyncDB, target: tuple[type[Table], str, type[Enum]], value: str
) -> None:
    table, column, enum = target
    refused = value not in {m.value for m in enum}

    async def attempt(conn: asyncpg.Connection) -> str | None:
        row = _valid_row(table)
        row[column] = value
        if (table._meta.tablename, column) == ("phase_results", "status") and value != "running":
            row["finished_at"] = _now()
        tx = conn.transaction()
        await tx.start()
        try:
            await _raw_insert(conn, table, row)
        except asyncpg.CheckViolationError as e:
            return e.constraint_name
        except asyncpg.ForeignKeyViolationError:
            return None  # passed every CHECK; only the made-up references failed
        finally:
            await tx.rollback()
        return None

    constraint = sync_db.run(attempt)
    if refused:
        assert constraint == f"{column}_enum"
    else:
        assert constraint != f"{column}_enum"
