"""Compare the code, the migration files and the live database.

Two questions, each answered with a list of :class:`Drift`:

* :func:`migration_drift` - do the Table classes say something the migration
  files do not (a change nobody ran ``piccolo migrations new agent_app --auto``
  for)? Answered by Piccolo's own auto-migration differ, without a database.
* :func:`database_drift` - does the live database differ from the code?
  Tables, columns (type, nullability), every CHECK and UNIQUE (enum CHECKs
  compared value by value with the Python enum), foreign keys and their delete
  behaviour, declared indexes, trigger functions and triggers, the messages
  identity and table comments.

Definitions are compared the way PostgreSQL itself prints them: the expected
objects are created on empty temporary copies of the tables inside a
transaction that is always rolled back, and ``pg_get_*def`` of both sides is
compared. Nothing in the database is changed.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field
from enum import Enum

import asyncpg
from piccolo.columns import Column, ForeignKey
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check
from piccolo.table import Table

from agent_app.ddl import (
    SCHEMA,
    comment_sql,
    enum_condition,
    storage_reset_sql,
    storage_sql,
    table_comment,
    table_indexes,
    table_storage,
)
from agent_app.raw_schema import CONSTRAINTS, FUNCTIONS, MESSAGES_IDENTITY, TRIGGERS
from agent_app.tables import TABLES


@dataclass
class Drift:
    """One difference. ``fix`` holds SQL statements that would remove it (may be empty)."""

    kind: str
    subject: str
    detail: str
    fix: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"[{self.kind}] {self.subject}: {self.detail}"


# --------------------------------------------------------------------------- #
# (a) Table classes against migration files
# --------------------------------------------------------------------------- #


async def migration_drift(app_name: str = "agent_app") -> list[Drift]:
    """What an ``--auto`` migration would contain now; empty when code and migrations agree."""
    from piccolo.apps.migrations.commands.new import AutoMigrationManager
    from piccolo.conf.apps import Finder

    app_config = Finder().get_app_config(app_name)
    with contextlib.redirect_stdout(io.StringIO()):
        alter = await AutoMigrationManager(auto_input="n").get_alter_statements(app_config)
    drifts = []
    for group in alter:
        for statement in group.statements:
            drifts.append(
                Drift(
                    "migrations",
                    app_name,
                    "the Table classes differ from the migration files; run "
                    f"`piccolo migrations new {app_name} --auto`:\n      {statement}",
                )
            )
    return drifts


# --------------------------------------------------------------------------- #
# (b) live database against the code
# --------------------------------------------------------------------------- #

_ON_DELETE = {
    OnDelete.cascade: "c",
    OnDelete.no_action: "a",
    OnDelete.restrict: "r",
    OnDelete.set_null: "n",
    OnDelete.set_default: "d",
}


def _q(table: type[Table]) -> str:
    return f"{SCHEMA}.{table._meta.tablename}"


def _probe_name(table: type[Table]) -> str:
    return f"_expect_{table._meta.tablename}"


def _normalise(sql: str) -> str:
    return re.sub(r"\s+", "", sql).lower()


def _index_tail(indexdef: str) -> str:
    """``CREATE INDEX n ON t USING btree (a) WHERE p`` -> ``USING btree (a) WHERE p``."""
    unique = "UNIQUE " if indexdef.startswith("CREATE UNIQUE") else ""
    return unique + indexdef[indexdef.index(" USING ") + 1 :]


def _trigger_tail(triggerdef: str) -> str:
    return re.sub(r" ON \S+ ", " ON <table> ", triggerdef)


def _enum_of(table: type[Table], column: Column) -> type[Enum] | None:
    choices = column._meta.choices
    return choices if isinstance(choices, type) and issubclass(choices, Enum) else None


def _literals(definition: str) -> set[str]:
    return {m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", definition)}


class _Catalog:
    """The live catalog of the schema, read once."""

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self.columns: dict[str, dict[str, tuple[str, bool, str]]] = {}
        self.constraints: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        self.indexes: dict[str, tuple[str, str, bool]] = {}
        self.triggers: dict[tuple[str, str], str] = {}
        self.functions: dict[str, str] = {}
        self.function_config: dict[str, list[str]] = {}
        self.comments: dict[str, str | None] = {}
        self.storage: dict[str, dict[str, str]] = {}

    async def load(self, conn: asyncpg.Connection) -> None:
        for r in await conn.fetch(
            """SELECT c.relname, c.oid, obj_description(c.oid, 'pg_class') AS comment,
                      coalesce(c.reloptions, '{}') AS reloptions
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')""",
            SCHEMA,
        ):
            self.tables[r["relname"]] = r["oid"]
            self.comments[r["relname"]] = r["comment"]
            self.storage[r["relname"]] = dict(o.split("=", 1) for o in r["reloptions"])
            self.columns[r["relname"]] = {}
        for r in await conn.fetch(
            """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
                      a.attnotnull, a.attidentity::text AS attidentity
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
                  AND a.attnum > 0 AND NOT a.attisdropped""",
            SCHEMA,
        ):
            self.columns[r["relname"]][r["attname"]] = (
                r["type"],
                not r["attnotnull"],
                r["attidentity"],
            )
        for r in await conn.fetch(
            """SELECT c.relname, k.conname, k.contype::text AS contype,
                      pg_get_constraintdef(k.oid) AS def,
                      k.confdeltype::text AS confdeltype, f.relname AS ref
                 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_class f ON f.oid = k.confrelid
                WHERE n.nspname = $1
                  -- PostgreSQL 18 lists NOT NULL as constraints; nullability is compared
                  -- through the columns instead.
                  AND k.contype <> 'n'""",
            SCHEMA,
        ):
            self.constraints[(r["relname"], r["conname"])] = (
                r["def"],
                r["confdeltype"] if r["contype"] == "f" else r["contype"],
                r["ref"],
            )
        for r in await conn.fetch(
            """SELECT i.relname AS name, t.relname AS table, pg_get_indexdef(i.oid) AS def,
                      EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid) AS backs
                 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                 JOIN pg_class t ON t.oid = x.indrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = $1""",
            SCHEMA,
        ):
            self.indexes[r["name"]] = (r["table"], r["def"], r["backs"])
        for r in await conn.fetch(
            """SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) AS def
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND NOT t.tgisinternal""",
            SCHEMA,
        ):
            self.triggers[(r["relname"], r["tgname"])] = r["def"]
        for r in await conn.fetch(
            """SELECT p.proname, p.prosrc, coalesce(p.proconfig, '{}') AS config FROM pg_proc p
                 JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1""",
            SCHEMA,
        ):
            self.functions[r["proname"]] = r["prosrc"]
            self.function_config[r["proname"]] = list(r["config"])


async def _probe(conn: asyncpg.Connection, table: type[Table]) -> None:
    """An empty temporary table with the columns the code declares, to let
    PostgreSQL print expected constraints, indexes and triggers its own way."""
    columns = ", ".join(f'"{c._meta.db_column_name}" {c.column_type}' for c in table._meta.columns)
    await conn.execute(f"CREATE TEMP TABLE {_probe_name(table)} ({columns})")


async def _expected_def(conn: asyncpg.Connection, sql: str, query: str, *args: object) -> str:
    """Run ``sql`` on a probe table under a savepoint and return what ``query`` reads back."""
    try:
        async with conn.transaction():
            await conn.execute(sql)
            value = await conn.fetchval(query, *args)
            raise _Rollback(value)
    except _Rollback as done:
        return str(done.value)


class _Rollback(Exception):
    def __init__(self, value: object) -> None:
        self.value = value


async def _check_table(conn: asyncpg.Connection, cat: _Catalog, table: type[Table]) -> list[Drift]:
    name = table._meta.tablename
    drifts: list[Drift] = []
    live_cols = cat.columns[name]
    await _probe(conn, table)
    probe = _probe_name(table)
    expected_types = {
        r["attname"]: r["type"]
        for r in await conn.fetch(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
                WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
            f"pg_temp.{probe}",
        )
    }

    code_cols = {c._meta.db_column_name: c for c in table._meta.columns}
    for col_name, column in code_cols.items():
        if col_name not in live_cols:
            drifts.append(
                Drift(
                    "column",
                    f"{name}.{col_name}",
                    "missing in the database",
                    [f"ALTER TABLE {_q(table)} ADD COLUMN {column.ddl};"],
                )
            )
            continue
        live_type, live_null, _ = live_cols[col_name]
        want_type = expected_types[col_name]
        if live_type != want_type:
            drifts.append(
                Drift(
                    "column",
                    f"{name}.{col_name}",
                    f"type is {live_type}, the code says {want_type}",
                    [
                        f"ALTER TABLE {_q(table)} ALTER COLUMN {col_name} "
                        f"TYPE {column.column_type} USING {col_name}::{column.column_type};"
                    ],
                )
            )
        want_null = bool(column._meta.null) and not column._meta.primary_key
        if live_null != want_null:
            action = "DROP NOT NULL" if want_null else "SET NOT NULL"
            drifts.append(
                Drift(
                    "column",
                    f"{name}.{col_name}",
                    f"{'nullable' if live_null else 'NOT NULL'} in the database, "
                    f"{'nullable' if want_null else 'NOT NULL'} in the code",
                    [f"ALTER TABLE {_q(table)} ALTER COLUMN {col_name} {action};"],
                )
            )
    for col_name in live_cols.keys() - code_cols.keys():
        drifts.append(
            Drift(
                "column",
                f"{name}.{col_name}",
                "in the database but not in the code",
                [f"ALTER TABLE {_q(table)} DROP COLUMN {col_name};"],
            )
        )

    expected_constraints: set[str] = {f"{name}_pkey"}
    # CHECK and UNIQUE constraints declared on the Table class.
    for constraint in table._meta.constraints:
        cname = constraint._meta.name
        expected_constraints.add(cname)
        add_sql = f"ALTER TABLE {_q(table)} ADD CONSTRAINT {cname} {constraint.ddl};"
        drop_sql = f"ALTER TABLE {_q(table)} DROP CONSTRAINT IF EXISTS {cname};"
        live = cat.constraints.get((name, cname))
        if live is None:
            drifts.append(Drift("constraint", f"{name}.{cname}", "missing", [add_sql]))
            continue
        want = await _expected_def(
            conn,
            f"ALTER TABLE {probe} ADD CONSTRAINT {cname} {constraint.ddl}",
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND conname = $2",
            f"pg_temp.{probe}",
            cname,
        )
        if live[0] != want:
            detail = f"is {live[0]}, the code says {want}"
            if isinstance(constraint, Check) and cname.endswith("_enum"):
                col = code_cols.get(cname.removesuffix("_enum"))
                enum = _enum_of(table, col) if col is not None else None
                if enum is not None:
                    have, expect = _literals(live[0]), {m.value for m in enum}
                    detail = (
                        f"enum CHECK differs from {enum.__name__}: "
                        f"missing {sorted(expect - have)}, extra {sorted(have - expect)}"
                    )
            drifts.append(Drift("constraint", f"{name}.{cname}", detail, [drop_sql, add_sql]))

    # Every enum column has its CHECK, generated from the enum.
    for col_name, column in code_cols.items():
        enum = _enum_of(table, column)
        cname = f"{col_name}_enum"
        if enum is not None and cname not in expected_constraints:
            drifts.append(
                Drift(
                    "constraint",
                    f"{name}.{cname}",
                    f"enum column {col_name} has no CHECK in the code",
                    [
                        f"ALTER TABLE {_q(table)} ADD CONSTRAINT {cname} "
                        f"CHECK ({enum_condition(col_name, enum)});"
                    ],
                )
            )

    # Piccolo unique=True columns.
    for col_name, column in code_cols.items():
        if column._meta.unique:
            expected_constraints.add(f"{name}_{col_name}_key")

    # Foreign keys and their delete behaviour.
    for column in table._meta.foreign_key_columns:
        assert isinstance(column, ForeignKey)
        cname = f"{name}_{column._meta.db_column_name}_fkey"
        expected_constraints.add(cname)
        target = column._foreign_key_meta.resolved_references._meta.tablename
        want_del = _ON_DELETE[column._foreign_key_meta.on_delete]
        live = cat.constraints.get((name, cname))
        fix = [
            f"ALTER TABLE {_q(table)} DROP CONSTRAINT IF EXISTS {cname};",
            f"ALTER TABLE {_q(table)} ADD CONSTRAINT {cname} FOREIGN KEY "
            f"({column._meta.db_column_name}) REFERENCES {SCHEMA}.{target} (id) "
            f"ON DELETE {column._foreign_key_meta.on_delete.value} "
            f"ON UPDATE {column._foreign_key_meta.on_update.value};",
        ]
        if live is None:
            drifts.append(Drift("foreign key", f"{name}.{cname}", "missing", fix[1:]))
        elif live[1] != want_del or live[2] != target:
            drifts.append(
                Drift(
                    "foreign key",
                    f"{name}.{cname}",
                    f"is {live[0]}, the code says ON DELETE "
                    f"{column._foreign_key_meta.on_delete.value} to {target}",
                    fix,
                )
            )

    for raw in CONSTRAINTS:
        if raw.table != name:
            continue
        expected_constraints.add(raw.name)
        live = cat.constraints.get((name, raw.name))
        if live is None:
            drifts.append(Drift("foreign key", f"{name}.{raw.name}", "missing", [raw.create_sql()]))
        elif _normalise(live[0]) != _normalise(raw.definition):
            drifts.append(
                Drift(
                    "foreign key",
                    f"{name}.{raw.name}",
                    f"is {live[0]}, the code says {raw.definition}",
                    [raw.drop_sql(), raw.create_sql()],
                )
            )

    for (tname, cname), live in cat.constraints.items():
        if tname == name and cname not in expected_constraints:
            drifts.append(
                Drift(
                    "constraint",
                    f"{name}.{cname}",
                    f"in the database but not in the code: {live[0]}",
                    [f"ALTER TABLE {_q(table)} DROP CONSTRAINT {cname};"],
                )
            )

    # Storage parameters (per-table autovacuum settings).
    want_storage, live_storage = table_storage(table), cat.storage.get(name, {})
    if live_storage != want_storage:
        fix = []
        if extra := sorted(live_storage.keys() - want_storage.keys()):
            fix.append(storage_reset_sql(table, extra))
        if want_storage:
            fix.append(storage_sql(table))
        drifts.append(
            Drift(
                "storage",
                name,
                f"has storage parameters {live_storage}, the code says {want_storage}",
                fix,
            )
        )

    # Declared indexes.
    declared = {i.name for i in table_indexes(table)}
    for index in table_indexes(table):
        live_index = cat.indexes.get(index.name)
        if live_index is None:
            drifts.append(
                Drift("index", f"{name}.{index.name}", "missing", [index.create_sql(table)])
            )
            continue
        probe_index = f"_expect_{index.name}"[:63]
        want = await _expected_def(
            conn,
            index.create_sql(table).replace(
                f"INDEX {index.name} ON {_q(table)}", f"INDEX {probe_index} ON {probe}"
            ),
            "SELECT pg_get_indexdef($1::regclass)",
            f"pg_temp.{probe_index}",
        )
        if live_index[0] != name or _index_tail(live_index[1]) != _index_tail(want):
            drifts.append(
                Drift(
                    "index",
                    f"{name}.{index.name}",
                    f"is {live_index[1]}, the code says {index.create_sql(table)}",
                    [index.drop_sql(), index.create_sql(table)],
                )
            )
    for index_name, (tname, indexdef, backs_constraint) in cat.indexes.items():
        if tname == name and not backs_constraint and index_name not in declared:
            drifts.append(
                Drift(
                    "index",
                    f"{name}.{index_name}",
                    f"in the database but not declared in the code: {indexdef}",
                    [f"DROP INDEX {SCHEMA}.{index_name};"],
                )
            )

    # Triggers.
    declared_triggers = {t.name for t in TRIGGERS if t.table == name}
    for trigger in (t for t in TRIGGERS if t.table == name):
        live_def = cat.triggers.get((name, trigger.name))
        if live_def is None:
            drifts.append(
                Drift("trigger", f"{name}.{trigger.name}", "missing", [trigger.create_sql()])
            )
            continue
        if trigger.function not in cat.functions:
            continue  # reported with the functions
        want = await _expected_def(
            conn,
            trigger.create_sql().replace(f" ON {_q(table)} ", f" ON {probe} "),
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE tgrelid = $1::regclass AND tgname = $2",
            f"pg_temp.{probe}",
            trigger.name,
        )
        if _trigger_tail(live_def) != _trigger_tail(want):
            drifts.append(
                Drift(
                    "trigger",
                    f"{name}.{trigger.name}",
                    f"is {live_def}, the code says {trigger.create_sql()}",
                    [trigger.drop_sql(), trigger.create_sql()],
                )
            )
    for (tname, tgname), live_def in cat.triggers.items():
        if tname == name and tgname not in declared_triggers:
            drifts.append(
                Drift(
                    "trigger",
                    f"{name}.{tgname}",
                    f"in the database but not in the code: {live_def}",
                    [f"DROP TRIGGER {tgname} ON {_q(table)};"],
                )
            )

    # What psql's \dt+ shows.
    if (cat.comments.get(name) or "") != table_comment(table):
        drifts.append(
            Drift(
                "comment",
                name,
                "the table comment differs from the Table's docstring",
                [comment_sql(table)],
            )
        )
    return drifts


async def database_drift(conn: asyncpg.Connection) -> list[Drift]:
    """Every difference between the live schema ``agent`` and the code. Changes nothing."""
    cat = _Catalog()
    await cat.load(conn)
    drifts: list[Drift] = []
    code_tables = {t._meta.tablename: t for t in TABLES}
    for name in cat.tables.keys() - code_tables.keys():
        drifts.append(Drift("table", name, "in the database but not in the code", []))
    tx = conn.transaction()
    await tx.start()
    try:
        for name, table in code_tables.items():
            if name not in cat.tables:
                drifts.append(
                    Drift(
                        "table",
                        name,
                        "missing in the database; run `piccolo migrations forwards all`",
                        [],
                    )
                )
                continue
            drifts += await _check_table(conn, cat, table)
    finally:
        await tx.rollback()

    for function in FUNCTIONS:
        live_src = cat.functions.get(function.name)
        if live_src is None:
            drifts.append(Drift("function", function.name, "missing", [function.create_sql()]))
        elif live_src != function.body:
            drifts.append(
                Drift(
                    "function",
                    function.name,
                    "its body differs from the code's",
                    [function.create_sql()],
                )
            )
        elif cat.function_config.get(function.name, []) != function.config():
            drifts.append(
                Drift(
                    "function",
                    function.name,
                    f"its settings are {cat.function_config.get(function.name)}, "
                    f"the code says {function.config()}",
                    [function.create_sql()],
                )
            )

    messages = cat.columns.get("messages", {})
    if "id" in messages and messages["id"][2] not in ("a", "d"):
        drifts.append(
            Drift("identity", "messages.id", "is not an identity column", list(MESSAGES_IDENTITY))
        )
    return drifts


def render(drifts: list[Drift]) -> str:
    """A report for people: one line per drift, then the SQL that would fix them."""
    if not drifts:
        return "schema_check: code, migrations and database agree."
    lines = [f"schema_check: {len(drifts)} difference(s) found", ""]
    lines += [f"  - {d}" for d in drifts]
    fixes = [sql for d in drifts for sql in d.fix]
    if fixes:
        lines += [
            "",
            "SQL of a migration that would fix the database drift "
            "(freeze it with --write-migration):",
            "",
        ]
        lines += [f"  {sql}" for sql in fixes]
    return "\n".join(lines)
