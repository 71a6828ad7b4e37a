"""Migrations: forwards from empty, backwards to an empty schema, forwards again to the
same catalog; a migration that fails midway leaves the database as it was."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import asyncpg

from agent_app.tables import TABLES
from tests.conftest import piccolo

CATALOG_QUERIES = {
    "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                         a.attnotnull, a.attidentity::text, pg_get_expr(d.adbin, d.adrelid)
                    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                    JOIN pg_namespace n ON n.oid = c.relnamespace
                    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                   WHERE n.nspname = 'agent' AND c.relkind = 'r' AND a.attnum > 0
                     AND NOT a.attisdropped""",
    "constraints": """SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
                        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'agent'""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'agent'",
    "triggers": """SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
                     JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'agent' AND NOT t.tgisinternal""",
    "functions": """SELECT p.proname, p.prosrc FROM pg_proc p
                      JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'agent'""",
    "comments": """SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'agent'""",
    "relations": """SELECT c.relname, c.relkind::text FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'agent'""",
    "migrations": "SELECT app_name, name FROM migration WHERE app_name = 'agent_app'",
}


async def catalog(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, Any] = {}
        for key, sql in CATALOG_QUERIES.items():
            try:
                out[key] = sorted(tuple(r.values()) for r in await conn.fetch(sql))
            except asyncpg.UndefinedTableError:
                out[key] = []
        return out
    finally:
        await conn.close()


async def test_round_trip_forwards_backwards_forwards(scratch_url: str) -> None:
    piccolo(scratch_url, "migrations", "forwards", "all")
    first = await catalog(scratch_url)
    assert {r[0] for r in first["relations"] if r[1] == "r"} == {t._meta.tablename for t in TABLES}
    assert len(first["triggers"]) >= 10 and first["functions"]

    # Forwards again: nothing to do, nothing changes.
    piccolo(scratch_url, "migrations", "forwards", "all")
    assert await catalog(scratch_url) == first

    piccolo(
        scratch_url, "migrations", "backwards", "agent_app", "--migration_id=all", "--auto_agree"
    )
    empty = await catalog(scratch_url)
    assert {k: v for k, v in empty.items()} == {k: [] for k in CATALOG_QUERIES}
    conn = await asyncpg.connect(scratch_url)
    try:  # the schema itself stays, empty (Piccolo never drops schemas)
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'agent'") == 1
    finally:
        await conn.close()

    piccolo(scratch_url, "migrations", "forwards", "all")
    assert await catalog(scratch_url) == first
    check = piccolo(scratch_url, "agent_app", "schema_check")
    assert "agree" in check.stdout


async def test_a_migration_failing_midway_leaves_the_database_as_it_was(scratch_url: str) -> None:
    import agent_app.piccolo_migrations as pkg

    first_id = min(
        importlib.import_module(f"{pkg.__name__}.{m.name}").ID
        for m in pkgutil.iter_modules(pkg.__path__)
    )
    piccolo(scratch_url, "migrations", "forwards", "agent_app", f"--migration_id={first_id}")
    # A name the raw migration creates late (an index) is already taken: it must fail there.
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute("CREATE TABLE agent.hierarchies_child_depth_idx (x int)")
    finally:
        await conn.close()
    before = await catalog(scratch_url)
    result = piccolo(scratch_url, "migrations", "forwards", "agent_app", check=False)
    assert "already exists" in result.stdout + result.stderr
    assert await catalog(scratch_url) == before
