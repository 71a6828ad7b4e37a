"""The database rules Piccolo cannot declare, read from ``agent_app/sql/schema/*.sql``.

Trigger functions, triggers, composite and circular foreign keys and the messages
identity are written as SQL, one file per concern (``tree.sql``, ``budgets.sql``,
``queue.sql`` ...), each statement under a one-line ``--`` comment that says what it
is. This module reads those files (through :mod:`importlib.resources`, so it works from
an installed wheel) and hands them out as statements; the indexes, table comments and
storage parameters declared on the Table classes (:mod:`agent_app.ddl`) are added here
so that :func:`forwards_statements` is the whole raw schema.

What a reader of the ``.sql`` files may rely on:

* The file runs as written, except that ``{NAME}`` placeholders are replaced by the
  constants of :mod:`agent_app.constants` (``{TERMINAL_AGENT_STATUSES}``,
  ``{MESSAGES_CHANNEL}`` ...), written as quoted SQL literals.
* Statements are ``CREATE OR REPLACE FUNCTION``, ``CREATE TRIGGER`` or ``ALTER TABLE
  ... ADD CONSTRAINT``; :func:`backwards_statements` derives their ``DROP ... IF
  EXISTS``. A file of other statements (``messages_identity.sql``) has its undo written
  out beside it (``messages_identity.undo.sql``).
* Each file stands alone: a trigger's function is in the same file, above it.
* Functions that look rows up ``SET enable_seqscan = off``: their lookups are index
  lookups by design, and PL/pgSQL caches plans, so a plan made while a table was small
  would otherwise scan the whole table on every later call (measured: a 30,000-row
  checkpoint insert took 31 s instead of 1.3 s).
* Errors raised by the triggers use SQLSTATE 23514 (check_violation) and set the
  constraint name to the rule, so callers catch them like any CHECK violation and the
  message starts with the rule's name.
* The legal status changes of ``transitions.sql`` are written out in SQL; the test
  suite checks them against :mod:`agent_app.transitions`.

Migrations carry a frozen copy of this SQL (a migration never imports this module), and
``piccolo agent_app schema_check`` compares the database with it, so a rule changed
here without a new migration is reported. To change a rule: edit the ``.sql`` file,
then freeze the change with :func:`agent_app.migration_writer.write_raw_migration`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

from agent_app.constants import render_sql
from agent_app.ddl import (
    comment_sql,
    qualified,
    storage_reset_sql,
    storage_sql,
    table_indexes,
    table_storage,
)
from agent_app.tables import TABLES

#: The schema files, in the order their statements run (after the Table classes'
#: indexes, which the composite foreign keys of ``foreign_keys.sql`` need).
FILES: tuple[str, ...] = (
    "messages_identity",
    "foreign_keys",
    "rules",
    "updated_at",
    "tree",
    "budgets",
    "reservations",
    "checkpoints",
    "transitions",
    "cta",
    "queue",
)


class SchemaFileError(ValueError):
    """A schema ``.sql`` file is malformed (no description, unknown statement kind, ...)."""


@dataclass(frozen=True)
class Statement:
    """One statement of a schema file, rendered: ``sql`` ends with ``;``."""

    file: str
    description: str
    sql: str


@dataclass(frozen=True)
class Function:
    """A ``CREATE OR REPLACE FUNCTION`` of a schema file."""

    name: str
    signature: str
    returns: str
    #: The text between the dollar quotes (what ``pg_proc.prosrc`` holds).
    body: str
    #: ``SET`` clauses, e.g. ``("enable_seqscan = off",)``.
    settings: tuple[str, ...]
    statement: Statement

    def create_sql(self) -> str:
        return self.statement.sql

    def config(self) -> list[str]:
        """The settings as ``pg_proc.proconfig`` lists them."""
        return [s.replace(" = ", "=") for s in self.settings]

    def drop_sql(self) -> str:
        return f"DROP FUNCTION IF EXISTS agent.{self.name}({self.signature});"


@dataclass(frozen=True)
class Trigger:
    """A ``CREATE TRIGGER`` of a schema file."""

    name: str
    table: str
    function: str
    statement: Statement

    def create_sql(self) -> str:
        """The statement on one line (as ``pg_get_triggerdef`` prints it)."""
        return " ".join(self.statement.sql.split())

    def drop_sql(self) -> str:
        return f"DROP TRIGGER IF EXISTS {self.name} ON agent.{self.table};"


@dataclass(frozen=True)
class Constraint:
    """An ``ALTER TABLE ... ADD CONSTRAINT`` of a schema file (foreign keys Piccolo
    can't declare)."""

    name: str
    table: str
    #: What follows the constraint's name, e.g. ``FOREIGN KEY (...) REFERENCES ...``.
    definition: str
    statement: Statement

    def create_sql(self) -> str:
        return self.statement.sql

    def drop_sql(self) -> str:
        return f"ALTER TABLE agent.{self.table} DROP CONSTRAINT IF EXISTS {self.name};"


_FUNCTION = re.compile(
    r"CREATE OR REPLACE FUNCTION agent\.(?P<name>\w+)\((?P<signature>[^()]*)\)\s+"
    r"RETURNS\s+(?P<returns>.+?)\s+LANGUAGE plpgsql(?P<settings>(?:\s+SET \w+ = \w+)*)\s+"
    r"AS (?P<tag>\$\w*\$)(?P<body>.*)(?P=tag);",
    re.S,
)
_TRIGGER = re.compile(
    r"CREATE TRIGGER (?P<name>\w+)\s.*?\sON agent\.(?P<table>\w+)\s.*"
    r"EXECUTE FUNCTION agent\.(?P<function>\w+)\(\);",
    re.S,
)
_CONSTRAINT = re.compile(
    r"ALTER TABLE agent\.(?P<table>\w+)\s+ADD CONSTRAINT (?P<name>\w+)\s+(?P<definition>.*);",
    re.S,
)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")


def split(text: str, path: str = "<string>") -> list[tuple[str, str]]:
    """``(description, statement)`` pairs of a SQL file, in order.

    Statements end with ``;`` outside quotes, dollar quotes and comments. A statement's
    description is the block of ``--`` lines right above it (a blank line ends the
    block, so a file's opening comment is not taken for its first statement's).

    :raises SchemaFileError: a statement without a description, or text after the last
        ``;``.
    """
    pairs: list[tuple[str, str]] = []
    start, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i + 1
        elif c == "'":
            i += 1
            while i < n and not (text[i] == "'" and not text.startswith("''", i)):
                i += 2 if text.startswith("''", i) else 1
            i += 1
        elif c == "$" and (tag := _DOLLAR_TAG.match(text, i)):
            end = text.find(tag.group(0), tag.end())
            if end < 0:
                raise SchemaFileError(f"{path}: unterminated {tag.group(0)} quote")
            i = end + len(tag.group(0))
        elif c == ";":
            pairs.append(_described(text[start : i + 1], path))
            start = i = i + 1
        else:
            i += 1
    rest = [ln for ln in text[start:].splitlines() if ln.strip()]
    if any(not ln.lstrip().startswith("--") for ln in rest):
        raise SchemaFileError(f"{path}: a statement after the last ';' has no ';'")
    return pairs


def _described(chunk: str, path: str) -> tuple[str, str]:
    lines = chunk.strip("\n").splitlines()
    first = next(i for i, ln in enumerate(lines) if not ln.startswith("--") and ln.strip())
    comment: list[str] = []
    for ln in reversed(lines[:first]):
        if not ln.startswith("--"):
            break  # a blank line: what is above belongs to the file, not this statement
        comment.insert(0, ln[2:].strip())
    sql = "\n".join(lines[first:]).strip()
    if not comment or not comment[0]:
        head = sql.splitlines()[0]
        raise SchemaFileError(f"{path}: no '-- description' line above: {head}")
    return " ".join(comment), sql


def _read(name: str) -> str | None:
    resource = resources.files("agent_app").joinpath("sql", "schema", name)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


def _statements(name: str) -> list[Statement]:
    path = f"agent_app/sql/schema/{name}"
    text = _read(name)
    if text is None:
        raise SchemaFileError(f"{path} is missing")
    return [Statement(name, d, render_sql(s, path)) for d, s in split(text, path)]


@functools.cache
def schema_files() -> dict[str, list[Statement]]:
    """``{file name: its statements}`` for :data:`FILES` (``"tree.sql"`` ...)."""
    return {f"{name}.sql": _statements(f"{name}.sql") for name in FILES}


@functools.cache
def undo_files() -> dict[str, list[Statement]]:
    """``{file name: the statements that undo it}``, for files with an ``.undo.sql``."""
    return {
        f"{name}.sql": _statements(f"{name}.undo.sql")
        for name in FILES
        if _read(f"{name}.undo.sql") is not None
    }


def _parse(statement: Statement) -> Function | Trigger | Constraint | None:
    if m := _FUNCTION.fullmatch(statement.sql):
        settings = tuple(s.strip()[4:] for s in re.findall(r"\s+SET \w+ = \w+", m["settings"]))
        signature, returns = " ".join(m["signature"].split()), " ".join(m["returns"].split())
        return Function(m["name"], signature, returns, m["body"], settings, statement)
    if m := _TRIGGER.fullmatch(statement.sql):
        return Trigger(m["name"], m["table"], m["function"], statement)
    if m := _CONSTRAINT.fullmatch(statement.sql):
        return Constraint(m["name"], m["table"], " ".join(m["definition"].split()), statement)
    return None


@functools.cache
def _objects() -> list[tuple[str, Statement, Function | Trigger | Constraint | None]]:
    found = []
    for file, statements in schema_files().items():
        for statement in statements:
            obj = _parse(statement)
            if obj is None and file not in undo_files():
                raise SchemaFileError(
                    f"agent_app/sql/schema/{file}: not a function, trigger or constraint, "
                    f"and no {file.removesuffix('.sql')}.undo.sql says how to undo it: "
                    f"{statement.sql.splitlines()[0]}"
                )
            found.append((file, statement, obj))
    return found


FUNCTIONS: tuple[Function, ...] = tuple(o for _, _, o in _objects() if isinstance(o, Function))
TRIGGERS: tuple[Trigger, ...] = tuple(o for _, _, o in _objects() if isinstance(o, Trigger))
CONSTRAINTS: tuple[Constraint, ...] = tuple(
    o for _, _, o in _objects() if isinstance(o, Constraint)
)

#: Turns Piccolo's BIGSERIAL messages.id into the contract's BIGINT identity, continuing
#: after any id already used (``messages_identity.sql``).
MESSAGES_IDENTITY: tuple[str, ...] = tuple(s.sql for s in schema_files()["messages_identity.sql"])

#: Undoes :data:`MESSAGES_IDENTITY` (``messages_identity.undo.sql``).
MESSAGES_SERIAL: tuple[str, ...] = tuple(s.sql for s in undo_files()["messages_identity.sql"])


def forwards_statements() -> list[str]:
    """Every raw object, one statement each, in an order that runs on the tables the
    Piccolo migrations create: what a raw migration freezes."""
    parts = [i.create_sql(t) for t in TABLES for i in table_indexes(t)]
    parts += [s.sql for statements in schema_files().values() for s in statements]
    parts += [comment_sql(t) for t in TABLES]
    parts += [storage_sql(t) for t in TABLES if table_storage(t)]
    return parts


def backwards_statements() -> list[str]:
    """Undo :func:`forwards_statements`, in reverse order."""
    parts = [storage_reset_sql(t, list(table_storage(t))) for t in TABLES if table_storage(t)]
    parts += [f"COMMENT ON TABLE {qualified(t)} IS NULL;" for t in TABLES]
    for file in reversed(schema_files()):
        if file in undo_files():
            parts += [s.sql for s in undo_files()[file]]
        else:
            parts += [o.drop_sql() for f, _, o in reversed(_objects()) if f == file and o]
    parts += [i.drop_sql() for t in reversed(TABLES) for i in reversed(table_indexes(t))]
    return parts
