"""The schema's SQL files: each object described, placeholders rendered from the shared
constants, transitions as in transitions.py, and the loader's statements equal to what
the frozen migrations built."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import asyncpg
import pytest

from agent_app import constants, raw_schema, transitions
from agent_app.enums import TERMINAL_AGENT_STATUSES
from agent_app.raw_schema import SchemaFileError, split
from tests.conftest import piccolo
from tests.test_migrations import CATALOG_QUERIES

SCHEMA_DIR = resources.files("agent_app").joinpath("sql", "schema")


def _files() -> list[str]:
    return sorted(e.name for e in SCHEMA_DIR.iterdir() if e.name.endswith(".sql"))


def test_every_file_is_loaded() -> None:
    """A file left out of FILES would never reach a migration."""
    loaded = {f"{name}.sql" for name in raw_schema.FILES}
    undo = {f"{name}.undo.sql" for name in raw_schema.FILES}
    assert set(_files()) - loaded - undo == set()
    assert loaded <= set(_files())


@pytest.mark.parametrize("name", _files())
def test_every_statement_has_a_one_line_description(name: str) -> None:
    text = SCHEMA_DIR.joinpath(name).read_text(encoding="utf-8")
    pairs = split(text, name)
    assert pairs, f"{name} holds no statement"
    lines = text.splitlines()
    for description, sql in pairs:
        assert description.strip(), sql
        first = sql.splitlines()[0]
        # The line right above the statement is its description: one `--` line.
        above = lines[lines.index(first) - 1]
        assert above.startswith("-- ") and above[3:].strip(), (name, first)
        assert len(above) <= 100, (name, above)


def test_every_object_is_a_function_trigger_or_constraint() -> None:
    counted = len(raw_schema.FUNCTIONS) + len(raw_schema.TRIGGERS) + len(raw_schema.CONSTRAINTS)
    described = sum(len(s) for s in raw_schema.schema_files().values())
    identity = len(raw_schema.MESSAGES_IDENTITY)
    assert counted + identity == described
    # Each trigger's function is declared, in the same file, above the trigger.
    functions = {f.name: f.statement for f in raw_schema.FUNCTIONS}
    for trigger in raw_schema.TRIGGERS:
        function = functions[trigger.function]
        assert function.file == trigger.statement.file
        statements = raw_schema.schema_files()[function.file]
        assert statements.index(function) < statements.index(trigger.statement)


def test_split_knows_quotes_comments_and_dollar_quotes() -> None:
    text = """-- The file's header; it belongs to no statement.

-- first: a string with ';' and a quote ('') in it
SELECT 'a;b''c';

-- second, a body with ; and $$ inside
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ SELECT 1; -- ; here too
$fn$;
"""
    assert split(text) == [
        ("first: a string with ';' and a quote ('') in it", "SELECT 'a;b''c';"),
        (
            "second, a body with ; and $$ inside",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ SELECT 1; -- ; here too\n$fn$;",
        ),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("SELECT 1;", "no '-- description' line above: SELECT 1;"),
        ("-- the header\n\nSELECT 1;", "no '-- description' line above"),
        ("-- one\nSELECT 1;\n-- two\nSELECT 2", "has no ';'"),
        ("-- one\nSELECT $x$ 1;", "unterminated $x$ quote"),
    ],
)
def test_split_refuses_undescribed_or_unfinished_statements(text: str, error: str) -> None:
    with pytest.raises(SchemaFileError, match=re.escape(error)):
        split(text, "x.sql")


def test_placeholders_are_rendered_as_quoted_literals() -> None:
    sql = "\n".join(raw_schema.forwards_statements())
    assert not re.search(r"\{[A-Z_]+\}", sql), "a placeholder was left in the SQL"
    terminal = ", ".join(f"'{s.value}'" for s in TERMINAL_AGENT_STATUSES)
    assert f"status IN ({terminal})" in sql
    assert f"pg_notify('{constants.MESSAGES_CHANNEL}', r.recipient_id::text)" in sql
    assert f"pg_notify('{constants.CTA_CHANNEL}', NEW.id::text)" in sql
    # A value holding a quote stays one literal.
    assert constants.sql_value("it's") == "'it''s'"
    assert constants.sql_value(["a", "b'c"]) == "'a', 'b''c'"
    assert constants.sql_value(9) == "9"
    with pytest.raises(constants.UnknownPlaceholder, match=r"x\.sql: unknown placeholder \{NOPE\}"):
        constants.render_sql("SELECT {NOPE}", "x.sql")


def test_the_queue_and_cta_listen_on_the_channels_the_triggers_notify() -> None:
    from agent_app import cta, queue

    assert queue.CHANNEL == constants.MESSAGES_CHANNEL
    assert cta.CHANNEL == constants.CTA_CHANNEL
    assert f"pg_notify('{queue.CHANNEL}'" in queue.CLAIM_ONE
    assert f"pg_notify('{queue.CHANNEL}'" in queue.CLAIM_MANY


_CASE_LINE = re.compile(r"WHEN '(\w+)' THEN (?:NEW\.\w+ IN \(([^)]*)\)|(false))")


@pytest.mark.parametrize(
    ("function", "table"),
    [
        ("run_phase_transition", transitions.RUN_PHASE),
        ("phase_status_transition", transitions.PHASE_STATUS),
        ("sandbox_status_transition", transitions.SANDBOX_STATUS),
    ],
)
def test_transitions_in_sql_are_those_of_transitions_py(function: str, table: Any) -> None:
    [fn] = [f for f in raw_schema.FUNCTIONS if f.name == function]
    in_sql = {
        old: frozenset(re.findall(r"'(\w+)'", targets or ""))
        for old, targets, _ in _CASE_LINE.findall(fn.body)
    }
    assert in_sql == {old.value: frozenset(n.value for n in new) for old, new in table.items()}
    assert "ELSE false END" in fn.body  # a status the table does not list changes to nothing


_FULL_CATALOG = {
    **CATALOG_QUERIES,
    # the whole definition: arguments, result, language, settings, volatility, body
    "functions": """SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
                      JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'agent'""",
    "trigger_enabled": """SELECT t.tgname, t.tgenabled::text FROM pg_trigger t
                            JOIN pg_class c ON c.oid = t.tgrelid
                            JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'agent' AND NOT t.tgisinternal""",
}


async def _catalog(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        key: sorted(tuple(r.values()) for r in await conn.fetch(sql))
        for key, sql in _FULL_CATALOG.items()
    }


async def test_loader_builds_what_the_migrations_built(scratch_url: str) -> None:
    """Undo the raw schema with backwards_statements() and build it again with
    forwards_statements(): the catalog is the one the frozen migrations left."""
    piccolo(scratch_url, "migrations", "forwards", "all")
    conn = await asyncpg.connect(scratch_url)
    try:
        migrated = await _catalog(conn)
        tx = conn.transaction()
        await tx.start()
        try:
            for statement in raw_schema.backwards_statements():
                await conn.execute(statement)
            bare = await _catalog(conn)
            assert bare["functions"] == [] and bare["triggers"] == []
            for statement in raw_schema.forwards_statements():
                await conn.execute(statement)
            assert await _catalog(conn) == migrated
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    # And the schema check agrees with the database the migrations built.
    assert "agree" in piccolo(scratch_url, "agent_app", "schema_check").stdout
