"""Probe: ``{NAME}`` placeholders render as single-quoted literals (quotes doubled), but
the schema's functions are dollar-quoted (``AS $fn$ ... $fn$``): a constant holding the
dollar tag ends the body early and the rest runs as SQL. A channel name is free text
for PostgreSQL (pg_notify takes any string), so the rendering must be safe for any
value, inside and outside dollar quotes."""

from __future__ import annotations

import asyncpg
import pytest

from agent_app import constants

BODY = """CREATE FUNCTION pg_temp.probe_channel() RETURNS text LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN {MESSAGES_CHANNEL};
END
$fn$"""


async def test_a_constant_holding_the_dollar_tag_stays_a_value(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = "chan$fn$; CREATE TABLE public.probe_injected (x int); --"
    monkeypatch.setitem(
        constants.SQL_CONSTANTS,  # type: ignore[arg-type]
        "MESSAGES_CHANNEL",
        constants.sql_value(hostile),
    )
    sql = constants.render_sql(BODY, "probe")
    try:
        await conn.execute(sql)
    except asyncpg.PostgresError as e:
        pytest.fail(f"the rendered function does not build: {e}\n{sql}")
    injected = await conn.fetchval("SELECT to_regclass('public.probe_injected')")
    assert injected is None, "text from the constant ran as SQL"
    assert await conn.fetchval("SELECT pg_temp.probe_channel()") == hostile
