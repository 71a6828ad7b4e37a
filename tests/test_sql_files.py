"""The worker API's SQL files: every statement names only tables and columns the
migrated database has (PostgreSQL prepares each one), every statement says what it
does, and a row type that names a column the Table lacks fails at import."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
import pytest

from agent_app import rows, sqlfile
from agent_app.rows import as_text, from_record, row_type
from agent_app.tables import MemoryRecord, Message

FILES = sqlfile.all_files()


def test_every_query_file_is_found() -> None:
    assert {f.path.rsplit("/", 1)[-1] for f in FILES} >= {"memory.sql", "console.sql"}


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.path.rsplit("/", 1)[-1])
async def test_every_statement_prepares_against_the_migrated_schema(
    conn: asyncpg.Connection, file: sqlfile.SqlFile
) -> None:
    for name, statement in file.statements.items():
        assert statement.description, f"{file.path}:{name} has no description"
        try:
            await conn.prepare(statement.sql)
        except asyncpg.PostgresError as e:  # pragma: no cover - the failure is the report
            pytest.fail(f"{file.path}: statement {name!r} does not prepare: {e}")


def test_a_statement_without_a_description_is_refused() -> None:
    with pytest.raises(sqlfile.SqlFileError, match="'bare' has no description"):
        sqlfile.parse("-- name: bare\nSELECT 1;\n")


def test_a_name_used_twice_is_refused() -> None:
    text = "-- name: a\n-- one\nSELECT 1;\n-- name: a\n-- two\nSELECT 2;\n"
    with pytest.raises(sqlfile.SqlFileError, match="defined twice"):
        sqlfile.parse(text)


def test_statements_are_split_with_their_descriptions() -> None:
    parsed = sqlfile.parse(
        "-- a preamble\n\n-- name: one\n-- First line\n-- second line.\nSELECT 1\n  ;\n\n"
        "-- name: two\n-- Two.\nSELECT 2 -- trailing comment stays\n;\n"
    )
    assert dict(parsed) == {"one": "SELECT 1", "two": "SELECT 2 -- trailing comment stays"}
    assert parsed.statements["one"].description == "First line second line."
    with pytest.raises(sqlfile.SqlFileError, match="no statement named 'three'"):
        parsed["three"]


def test_a_row_type_naming_a_column_the_table_lacks_fails_at_import() -> None:
    @dataclasses.dataclass(frozen=True)
    class Renamed:
        id: uuid.UUID
        body: str  # the column is `content`

    with pytest.raises(TypeError, match=r"Renamed.body is not a column of MemoryRecord"):
        row_type(MemoryRecord)(Renamed)


def test_a_row_type_maps_fields_to_columns_and_converts_values() -> None:
    @row_type(Message, body=as_text(Message.payload), data=Message.payload)
    @dataclasses.dataclass(frozen=True)
    class Row:
        id: int
        status: object
        body: str
        data: object

    row = from_record(Row, {"id": 7, "status": "pending", "payload": '{"a": 1}', "x": 0})
    assert row == Row(id=7, status="pending", body='{"a": 1}', data={"a": 1})
    assert type(row.status).__name__ == "MessageStatus"


def test_a_row_type_with_keyword_only_fields_is_built_by_column_name() -> None:
    @row_type(Message, text=as_text(Message.payload))
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Row:
        status: object
        id: int
        text: str

    record = {"payload": "[1]", "id": 3, "status": "dead"}  # in no particular order
    assert from_record(Row, record) == Row(id=3, status="dead", text="[1]")
    with pytest.raises(LookupError):
        from_record(Row, None)


def test_a_row_type_whose_field_init_does_not_set_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Derived:
        id: int
        status: str = dataclasses.field(init=False, default="x")

    with pytest.raises(TypeError, match="set by __init__"):
        row_type(Message)(Derived)


def test_a_shared_constant_is_written_once_and_rendered_into_the_statement() -> None:
    from agent_app.constants import MESSAGES_CHANNEL, UnknownPlaceholder

    parsed = sqlfile.parse(
        "-- name: wake\n-- Wake consumers.\nSELECT pg_notify({MESSAGES_CHANNEL}, 'x');\n"
    )
    assert parsed["wake"] == f"SELECT pg_notify('{MESSAGES_CHANNEL}', 'x')"
    with pytest.raises(UnknownPlaceholder, match="NO_SUCH"):
        sqlfile.parse("-- name: bad\n-- Bad.\nSELECT {NO_SUCH};\n", "bad.sql")


def _row_types() -> dict[tuple[str, str], tuple[type, str]]:
    """(file, statement) -> (the row type its rows are built into, the prefix of its
    columns in the record): every statement whose result goes to rows.from_record(s)."""
    from agent_app import budgets, checkpoints, cta, hierarchy, langgraph, memory, queue, runs
    from agent_app import sandboxes as sb

    return {
        ("budgets", "reserve"): (budgets.Reservation, ""),
        ("budgets", "charge"): (budgets.Reservation, ""),
        ("budgets", "act"): (budgets.Reservation, ""),
        ("budgets", "books"): (budgets.Books, ""),
        ("budgets", "audit"): (budgets.Imbalance, ""),
        ("checkpoints", "save"): (checkpoints.Checkpoint, ""),
        ("checkpoints", "load_latest"): (checkpoints.Checkpoint, ""),
        ("checkpoints", "history"): (checkpoints.Checkpoint, ""),
        ("cta", "ask"): (cta.Question, ""),
        ("hierarchy", "insert_agent"): (hierarchy.AgentInfo, ""),
        ("hierarchy", "lock_parent"): (hierarchy.AgentInfo, ""),
        ("hierarchy", "lock_agent"): (hierarchy.AgentInfo, ""),
        ("hierarchy", "lock_live_children"): (hierarchy.AgentInfo, ""),
        ("hierarchy", "set_status"): (hierarchy.AgentInfo, ""),
        ("langgraph", "get_latest"): (langgraph._Stored, ""),
        ("langgraph", "get_by_id"): (langgraph._Stored, ""),
        ("langgraph", "list"): (langgraph._Stored, ""),
        ("memory", "add"): (memory.Memory, ""),
        ("memory", "query"): (memory.Memory, ""),
        ("queue", "claim_one"): (queue.Message, ""),
        ("queue", "claim_many"): (queue.Message, ""),
        ("queue", "ack_claim_one"): (queue.Message, ""),
        ("queue", "ack_claim_many"): (queue.Message, ""),
        ("queue", "extend"): (queue._Lease, ""),
        ("queue", "fail"): (queue._Retry, ""),
        ("queue", "extend_held"): (queue._MessageId, ""),
        ("queue", "release_held"): (queue._MessageId, ""),
        ("runs", "create_run"): (runs.Run, ""),
        ("runs", "start_phase"): (runs.Phase, ""),
        ("runs", "timeline"): (runs.Run, "run_"),
        ("runs", "timeline "): (runs.Phase, "phase_"),  # the same statement, second type
        ("sandboxes", "create"): (sb.Sandbox, ""),
        ("sandboxes", "snapshot"): (sb.Snapshot, ""),
        ("sandboxes", "allocate_workspace"): (sb.Workspace, ""),
    }


@pytest.mark.parametrize(
    ("file", "name"), list(_row_types()), ids=lambda v: v.strip() if isinstance(v, str) else v
)
async def test_a_statement_returns_every_column_its_row_type_needs(
    conn: asyncpg.Connection, file: str, name: str
) -> None:
    cls, prefix = _row_types()[(file, name)]
    statement = sqlfile.load(file)[name.strip()]
    returned = {a.name for a in (await conn.prepare(statement)).get_attributes()}
    needed = {prefix + n for n in rows.record_names(cls)}
    assert needed <= returned, (
        f"{file}.sql:{name.strip()} does not return {sorted(needed - returned)} "
        f"that {cls.__name__} needs"
    )
    # The optional ones it does return are read under the same names: nothing to add;
    # a defaulted column it leaves out keeps the field's default (a large one unread).


#: Statements run next to a from_record call whose own result is not built into a row type.
NOT_BUILT = {
    ("hierarchy", "insert_budget"),
    ("hierarchy", "lock_budgets"),
    ("operator", "requeue_claim"),
    ("queue", "any_available"),
}


def test_every_statement_built_into_a_row_type_is_listed() -> None:
    """A statement whose result a module builds with rows.from_record(s) is in the list
    above (found by the constant it is loaded into, next to the call)."""
    import ast
    import pathlib

    listed = {(f, n.strip()) for f, n in _row_types()}
    package = pathlib.Path(sqlfile.__file__).parent
    missing = []
    for file in FILES:
        module = file.path.rsplit("/", 1)[-1].removesuffix(".sql")
        source = package / f"{module}.py"
        if not source.exists():
            continue
        tree = ast.parse(source.read_text())
        constants = {
            target.id: node.value.slice.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Subscript)
            and isinstance(node.value.slice, ast.Constant)
            and getattr(node.value.value, "id", None) == "SQL"
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for func in ast.walk(tree):
            if not isinstance(func, ast.AsyncFunctionDef | ast.FunctionDef):
                continue
            names = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
            if not names & {"from_record", "from_records"} and not any(
                isinstance(n, ast.Attribute) and n.attr in ("from_record", "from_records")
                for n in ast.walk(func)
            ):
                continue
            for used in names & constants.keys():
                if (module, constants[used]) not in listed | NOT_BUILT:
                    missing.append(f"{module}.{func.name}: {constants[used]}")
    assert not missing, f"statements built into row types but not checked: {missing}"


#: Types whose values can be large: a statement should not send them back unread.
LARGE = {"text", "jsonb", "json", "bytea", "_text", "_jsonb", "_bytea", "varchar"}


@pytest.mark.parametrize(
    ("file", "name"), list(_row_types()), ids=lambda v: v.strip() if isinstance(v, str) else v
)
async def test_a_statement_returns_no_large_column_its_row_type_leaves_unread(
    conn: asyncpg.Connection, file: str, name: str
) -> None:
    cls, prefix = _row_types()[(file, name)]
    statement = sqlfile.load(file)[name.strip()]
    read = {prefix + n for n in rows.record_names(cls, required=False)}
    unread = [
        f"{a.name} ({a.type.name})"
        for a in (await conn.prepare(statement)).get_attributes()
        if a.name.startswith(prefix) and a.name not in read and a.type.name in LARGE
    ]
    # (runs.timeline's two prefixes share one record: each type checks its own.)
    assert not unread, f"{file}.sql:{name.strip()} returns {unread} that {cls.__name__} never reads"


BODY = """CREATE FUNCTION pg_temp.probe_channel() RETURNS text LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN {MESSAGES_CHANNEL};
END
$fn$"""


def test_a_constant_holding_a_dollar_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placeholders are rendered into dollar-quoted bodies, where a value holding the
    tag (``chan$fn$; CREATE TABLE ...``) would end the body and run as SQL."""
    from agent_app import constants

    hostile = "chan$fn$; CREATE TABLE public.probe_injected (x int); --"
    with pytest.raises(constants.UnsafeConstant, match=r"\$"):
        constants.sql_value(hostile)
    # Set by hand (not through sql_value): render_sql refuses it too.
    monkeypatch.setitem(
        constants.SQL_CONSTANTS,  # type: ignore[arg-type]
        "MESSAGES_CHANNEL",
        "'" + hostile + "'",
    )
    with pytest.raises(constants.UnsafeConstant, match="MESSAGES_CHANNEL"):
        constants.render_sql(BODY, "probe.sql")


async def test_an_index_name_stays_a_name(conn: asyncpg.Connection) -> None:
    from agent_app.ddl import Index

    evil = "x; DROP TABLE agent.budgets; --"
    index = Index(evil, ("kind",))
    await conn.execute(index.create_sql(MemoryRecord))
    assert await conn.fetchval("SELECT to_regclass('agent.budgets') IS NOT NULL")
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relname = $1 AND relkind = 'i'", evil
        )
        == 1
    )
    await conn.execute(index.drop_sql())
    assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname = $1", evil) == 0
