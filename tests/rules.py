"""Assertions about refusals: the right rule is named and nothing changed."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[Any]]:
    """Every row of every agent table, to prove a refusal changed nothing."""
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'agent' ORDER BY 1"
    )
    out: dict[str, list[Any]] = {}
    for t in tables:
        name = t["tablename"]
        rows = await conn.fetch(f"SELECT * FROM agent.{name} ORDER BY 1")
        out[name] = [tuple(r.values()) for r in rows]
    return out


async def refused(conn: asyncpg.Connection, rule: str, sql: str, *args: Any) -> str:
    """Run ``sql`` expecting the database to refuse it under ``rule``; the data must be
    as it was. Returns the error message."""
    before = await snapshot(conn)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as err:
        async with conn.transaction():
            await conn.execute(sql, *args)
    assert err.value.constraint_name == rule, str(err.value)
    assert rule in str(err.value)
    assert await snapshot(conn) == before
    return str(err.value)
