"""Assertions about refusals: the right rule is named and nothing changed."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest


async def snapshot(conn: asyncpg.Connection, *tables: str) -> dict[str, list[Any]]:
    """Every row of the named ``agent`` tables (the ones under test), in a stable order,
    to prove a refusal changed nothing there."""
    assert tables, "name the tables under test"
    out: dict[str, list[Any]] = {}
    for name in tables:
        rows = await conn.fetch(f"SELECT * FROM agent.{name} ORDER BY 1")
        out[name] = [tuple(r.values()) for r in rows]
    return out


_TARGET = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+agent\.(\w+)", re.I)


def target(sql: str) -> str:
    """The table a single INSERT / UPDATE / DELETE statement writes."""
    found = _TARGET.match(sql)
    assert found, f"cannot tell which table {sql!r} writes"
    return found.group(1)


async def refused(
    conn: asyncpg.Connection, rule: str, sql: str, *args: Any, tables: tuple[str, ...] = ()
) -> str:
    """Run ``sql`` expecting the database to refuse it under ``rule``; the table it writes
    (and ``tables``, for statements whose triggers write elsewhere) must be as it was.
    Returns the error message."""
    watched = (target(sql), *tables)
    before = await snapshot(conn, *watched)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as err:
        async with conn.transaction():
            await conn.execute(sql, *args)
    assert err.value.constraint_name == rule, str(err.value)
    assert rule in str(err.value)
    assert await snapshot(conn, *watched) == before
    return str(err.value)
