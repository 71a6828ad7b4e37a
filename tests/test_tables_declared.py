"""How the Table classes declare their rules: every CHECK is built from the column objects
(a renamed attribute breaks the class, a ``db_column_name`` reaches the SQL), and the
pieces Piccolo cannot write render SQL that PostgreSQL enforces."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import asyncpg
import pytest
from piccolo.columns import Numeric, Text, Timestamptz, Varchar
from piccolo.columns.combination import CombinableMixin
from piccolo.constraints import Check
from piccolo.table import Table

from agent_app.ddl import Sql, enum_check, one_of, same_truth
from agent_app.enums import ReservationState
from agent_app.tables import TABLES

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t._meta.tablename)
def test_every_check_is_built_from_the_columns(table: type[Table]) -> None:
    columns = {c._meta.db_column_name for c in table._meta.columns}
    for check in table._meta.constraints:
        if not isinstance(check, Check):
            continue
        name = f"{table._meta.tablename}.{check._meta.name}"
        assert isinstance(check.condition, CombinableMixin), f"{name} is a SQL string"
        named = set(re.findall(r'"([^"]+)"', check.ddl))
        assert named and named <= columns, (name, named - columns)


class _Renamed(Table, tablename="renamed_probe"):
    """A table whose attributes differ from its database columns."""

    held_amount = Numeric(db_column_name="amount")
    state_now = Varchar(choices=ReservationState, db_column_name="state")
    done_at = Timestamptz(null=True, default=None, db_column_name="finished_at")
    note = Text(db_column_name="memo")

    state_enum = enum_check(state_now, ReservationState)
    amount_positive = Check((held_amount > 0) & (held_amount < "Infinity"))
    finished_when_final = Check(
        same_truth(
            one_of(state_now, [ReservationState.committed, ReservationState.released]),
            done_at.is_not_null(),
        )
    )
    memo_not_blank = Check(Sql("{} ~ '[^[:space:]]'", note))


async def test_checks_name_the_database_columns_and_postgres_enforces_them(
    conn: asyncpg.Connection,
) -> None:
    ddl = " ".join(c.ddl for c in _Renamed._meta.constraints)
    assert '"amount"' in ddl and '"held_amount"' not in ddl and '"finished_at"' in ddl
    columns = ", ".join(
        f'"{c._meta.db_column_name}" {c.column_type}' for c in _Renamed._meta.columns
    )
    checks = ", ".join(f"CONSTRAINT {c._meta.name} {c.ddl}" for c in _Renamed._meta.constraints)
    await conn.execute(f"CREATE TEMP TABLE renamed_probe ({columns}, {checks})")
    insert = "INSERT INTO renamed_probe (amount, state, finished_at, memo) VALUES ($1, $2, $3, $4)"
    await conn.execute(insert, Decimal(5), "committed", NOW, "ok")
    await conn.execute(insert, Decimal(5), "held", None, "ok")
    for values, rule in [
        ((Decimal(0), "held", None, "ok"), "amount_positive"),
        ((Decimal("NaN"), "held", None, "ok"), "amount_positive"),
        ((Decimal(5), "nonsense", None, "ok"), "state_enum"),
        ((Decimal(5), "released", None, "ok"), "finished_when_final"),
        ((Decimal(5), "held", NOW, "ok"), "finished_when_final"),
        ((Decimal(5), "held", None, " \t"), "memo_not_blank"),
    ]:
        sp = conn.transaction()
        await sp.start()
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(insert, *values)
        await sp.rollback()
        assert refused.value.constraint_name == rule, values


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t._meta.tablename)
def test_every_column_tells_the_operator_what_it_holds(table: type[Table]) -> None:
    for column in table._meta.columns:
        text = column._meta.help_text or ""
        name = f"{table._meta.tablename}.{column._meta.db_column_name}"
        assert len(text) >= 10 and text.endswith("."), f"{name}: help_text {text!r}"
