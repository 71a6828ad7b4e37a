"""Schema objects Piccolo cannot declare, declared once, beside the tables.

Piccolo 1.38 has no API for composite, partial or DESC indexes, and no notion
of triggers. This module gives them a single declaration in code:

* :class:`Index` - attached to a Table class as ``_indexes``; the frozen raw
  migrations create them, and ``schema_check`` (which compares whole catalogs, see
  :mod:`agent_app.catalog`) reports one that differs, printing the SQL that fixes it.
* ``_storage`` - a Table's storage parameters (``ALTER TABLE ... SET (...)``), such as
  per-table autovacuum settings: :func:`table_storage`, :func:`storage_sql`.
* :func:`enum_check` - the CHECK that makes an enum column refuse any value
  outside its Python enum. The condition is generated from the enum, so the
  two cannot disagree at the time a migration is written; ``schema_check``
  catches a later drift.
* :class:`Sql`, :func:`one_of`, :func:`not_one_of`, :func:`same_truth` - the parts of
  a ``Check`` condition Piccolo's operators cannot write (``IN`` lists, whose
  ``is_in`` renders broken SQL in Piccolo 1.38; functions, casts, arithmetic, two
  conditions compared), taking the column objects rather than their names: the rest
  of a condition is written with Piccolo's operators (``(used >= 0) & ...``). Renaming
  or removing a column attribute then breaks the Table class at import (and mypy),
  instead of leaving a CHECK that names a column the code no longer has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from piccolo.columns.base import Column
from piccolo.columns.combination import WhereRaw
from piccolo.constraints import Check
from piccolo.custom_types import Combinable
from piccolo.querystring import QueryString

if TYPE_CHECKING:
    from piccolo.table import Table

SCHEMA = "agent"


def sql_literal(value: str) -> str:
    """Quote ``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """Quote ``name`` as a SQL identifier (always quoted: safe for any name)."""
    return '"' + name.replace('"', '""') + '"'


def sql_list(values: Iterable[str]) -> str:
    return ", ".join(sql_literal(v) for v in values)


class Sql(WhereRaw):
    """A piece of a ``Check`` condition written in SQL, with ``{}`` for each argument: a
    column (its database name, quoted) or a Piccolo condition (as Piccolo renders it in a
    CHECK). Rendered when Piccolo asks for the constraint's DDL, after the Table class
    has named its columns; combines with Piccolo's conditions through ``&`` and ``|``.
    Literal braces in ``template`` are written ``{{`` and ``}}``."""

    __slots__ = ("args", "template")

    def __init__(self, template: str, *args: Column | Combinable) -> None:
        self.template = template
        self.args = args

    @property
    def querystring(self) -> QueryString:  # type: ignore[override]  # WhereRaw's is a slot
        return QueryString(
            self.template,
            *(
                QueryString(f'"{a._meta.db_column_name}"')
                if isinstance(a, Column)
                else a.querystring_for_constraint
                for a in self.args
            ),
        )


def _values(members: Iterable[str | Enum]) -> list[str]:
    return [m.value if isinstance(m, Enum) else m for m in members]


def _braces(sql: str) -> str:
    return sql.replace("{", "{{").replace("}", "}}")


def one_of(column: Column, members: Iterable[str | Enum]) -> Sql:
    """``column IN (...)``: the column holds one of ``members``."""
    return Sql(f"{{}} IN ({_braces(sql_list(_values(members)))})", column)


def not_one_of(column: Column, members: Iterable[str | Enum]) -> Sql:
    """``column NOT IN (...)``: the column holds none of ``members``."""
    return Sql(f"{{}} NOT IN ({_braces(sql_list(_values(members)))})", column)


def same_truth(first: Combinable, second: Combinable) -> Sql:
    """``(first) = (second)``: the two conditions are both true or both false (the shape
    of every "set together" rule, e.g. a finished row has its finish time)."""
    return Sql("({}) = ({})", first, second)


def enum_values(enum: type[Enum]) -> list[str]:
    return [member.value for member in enum]


def enum_condition(column: str, enum: type[Enum]) -> str:
    """The CHECK condition allowing exactly ``enum``'s values (NULL passes a CHECK)."""
    return f"{column} IN ({sql_list(enum_values(enum))})"


def enum_check(column: Column, enum: type[Enum]) -> Check:
    """A CHECK constraint that refuses any value of ``column`` outside ``enum``: the
    same condition as :func:`enum_condition`, with the column's database name.

    Attach it to the Table as ``<column>_enum``: the rule's name is what a refusal
    (:class:`~agent_app.errors.RuleViolation`) reports.
    """
    return Check(one_of(column, enum))


def qualified(table: type[Table]) -> str:
    return f"{SCHEMA}.{table._meta.tablename}"


@dataclass(frozen=True)
class Index:
    """An index that Piccolo cannot express (composite, partial, DESC, GIN ...).

    :param name: the index name; unique within the schema. Written quoted, so any
        name stays a name.
    :param columns: column names or expressions, each optionally with DESC. Trusted
        SQL, pasted as written: never build them from input.
    :param where: a partial index predicate, or None. Trusted SQL, pasted as written:
        never build it from input.
    :param unique: a UNIQUE index.
    :param nulls_not_distinct: with ``unique``, NULLs count as equal (PostgreSQL 15+).
    :param using: the access method, ``btree`` unless said otherwise.
    :param why: one line for the reader: which query or rule needs it.
    """

    name: str
    columns: tuple[str, ...]
    where: str | None = None
    unique: bool = False
    nulls_not_distinct: bool = False
    using: str = "btree"
    why: str = ""

    def create_sql(self, table: type[Table]) -> str:
        unique = "UNIQUE " if self.unique else ""
        using = f" USING {self.using}" if self.using != "btree" else ""
        nnd = " NULLS NOT DISTINCT" if self.nulls_not_distinct else ""
        where = f" WHERE {self.where}" if self.where else ""
        return (
            f"CREATE {unique}INDEX {sql_ident(self.name)} ON {qualified(table)}{using} "
            f"({', '.join(self.columns)}){nnd}{where};"
        )

    def drop_sql(self) -> str:
        return f"DROP INDEX IF EXISTS {SCHEMA}.{sql_ident(self.name)};"


def table_indexes(table: type[Table]) -> tuple[Index, ...]:
    """The indexes declared on ``table`` (its ``_indexes`` attribute)."""
    return tuple(getattr(table, "_indexes", ()))


def table_comment(table: type[Table]) -> str:
    """The table's docstring, folded to one paragraph: what ``COMMENT ON TABLE`` holds."""
    doc = table.__doc__ or ""
    return " ".join(doc.split())


def comment_sql(table: type[Table]) -> str:
    return f"COMMENT ON TABLE {qualified(table)} IS {sql_literal(table_comment(table))};"


def table_storage(table: type[Table]) -> dict[str, str]:
    """The storage parameters declared on ``table`` (its ``_storage`` attribute), as
    PostgreSQL lists them in ``pg_class.reloptions`` (``name=value``)."""
    return dict(getattr(table, "_storage", {}))


def storage_sql(table: type[Table]) -> str:
    """``ALTER TABLE ... SET (...)`` giving ``table`` its declared storage parameters."""
    options = ", ".join(f"{k} = {v}" for k, v in table_storage(table).items())
    return f"ALTER TABLE {qualified(table)} SET ({options});"


def storage_reset_sql(table: type[Table], names: list[str]) -> str:
    """``ALTER TABLE ... RESET (...)``: back to the server's settings for ``names``."""
    return f"ALTER TABLE {qualified(table)} RESET ({', '.join(names)});"
