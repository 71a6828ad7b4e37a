"""Row types derived from the Table classes.

The worker API returns frozen dataclasses (typed, immutable, cheap to build) rather than
Piccolo Table instances. Each is bound to the Table its rows come from with
:func:`row_type`, which checks at import that every field is a column of that Table
(by its Python attribute name, or through an explicit ``field=Table.column`` mapping),
so a column renamed in :mod:`agent_app.tables` and not in a row type fails the moment
the module is imported. Values are converted once, on the way in: enum columns become
their Python enum, JSONB columns are decoded, unless the field asks for the text
(``field=as_text(Table.column)``). A field that is not a column (a value the statement
computes, like ``true AS created``) is marked ``field=extra()``; a field with a default
may be missing from a record (a statement that leaves a large column out), and then
keeps its default.

:func:`select` starts a Piccolo query for a row type's columns (``via=`` a foreign key
to the row type's Table reads them through that key's join; :func:`through` reads one
column so); :func:`from_record` turns
a record (from Piccolo, a ``.sql`` statement returning ``*``, or asyncpg) into the row
type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar

from piccolo.columns import JSONB, Column, ForeignKey
from piccolo.query.methods.select import Select
from piccolo.querystring import QueryString
from piccolo.table import Table

from agent_app import db

R = TypeVar("R")

_Field = tuple[str, str, Callable[[Any], Any] | None, bool]
_FIELDS: dict[type, tuple[_Field, ...]] = {}
_COLUMNS: dict[type, tuple[Column, ...]] = {}
_BUILDERS: dict[type, Callable[[Mapping[str, Any]], Any]] = {}


@dataclasses.dataclass(frozen=True)
class as_text:
    """Mark a JSONB column's field as holding the JSON text, not the decoded value."""

    column: Column


@dataclasses.dataclass(frozen=True)
class extra:
    """Mark a field that is not a column of the Table: read from the record under the
    field's name when the record has it, else the field's default."""


_ABSENT = object()


def _converter(column: Column, decode_json: bool) -> Callable[[Any], Any] | None:
    choices = column._meta.choices
    if isinstance(choices, type) and issubclass(choices, Enum):
        enum = choices
        return lambda v: None if v is None else enum(v)
    if isinstance(column, JSONB) and decode_json:
        return db.loads
    return None


def row_type(
    table: type[Table], **sources: Column | as_text | extra
) -> Callable[[type[R]], type[R]]:
    """Bind a dataclass to ``table``: each field must be a column of it, named like the
    column's attribute or mapped in ``sources`` (``field=Table.column``). Raises
    ``TypeError`` at import when a field matches no column."""

    def bind(cls: type[R]) -> type[R]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} is not a dataclass")
        fields: list[_Field] = []
        columns: list[Column] = []
        for f in dataclasses.fields(cls):
            source = sources.get(f.name)
            optional = f.default is not dataclasses.MISSING or (
                f.default_factory is not dataclasses.MISSING
            )
            if isinstance(source, extra):
                fields.append((f.name, f.name, None, optional))
                continue
            decode = not isinstance(source, as_text)
            if isinstance(source, as_text):
                source = source.column
            if source is None:
                column = table._meta.get_column_by_name(f.name) if _has(table, f.name) else None
            else:
                column = source if source._meta.table is table else None
            if column is None:
                raise TypeError(
                    f"{cls.__name__}.{f.name} is not a column of {table.__name__} "
                    f"(renamed in agent_app.tables?)"
                )
            fields.append(
                (f.name, column._meta.db_column_name, _converter(column, decode), optional)
            )
            columns.append(column)
        _FIELDS[cls] = tuple(fields)
        _COLUMNS[cls] = tuple(columns)
        _BUILDERS[cls] = _builder(cls, fields)
        return cls

    return bind


def _builder(cls: type, fields: Sequence[_Field]) -> Callable[[Mapping[str, Any]], Any]:
    """``cls`` from a record by column name, as one precompiled function,
    ``cls(convert(r["col"]), ...)``: a claim builds a row per message, and a loop over
    the fields with keyword arguments costs about three times the dataclass's own
    ``__init__``. Fields are passed by position (keyword-only ones by keyword); a field
    with a default that the record lacks gets the default, as :func:`from_record` says."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    if not all(f.init for f in by_name.values()):
        raise TypeError(f"{cls.__name__}: a row type's fields are all set by __init__")
    namespace: dict[str, Any] = {"cls": cls, "ABSENT": _ABSENT}
    positional, keyword = [], []
    for i, (name, column, convert, optional) in enumerate(fields):
        value = f"r[{column!r}]" if not optional else "v"
        if convert is not None:
            namespace[f"convert{i}"] = convert
            value = f"convert{i}({value})"
        if optional:
            f = by_name[name]
            if f.default is not dataclasses.MISSING:
                namespace[f"default{i}"] = f.default
                default = f"default{i}"
            else:
                namespace[f"factory{i}"] = f.default_factory
                default = f"factory{i}()"
            value = f"({value} if (v := r.get({column!r}, ABSENT)) is not ABSENT else {default})"
        if by_name[name].kw_only:
            keyword.append(f"{name}={value}")
        else:
            positional.append(value)
    exec(f"def build(r):\n    return cls({', '.join(positional + keyword)})\n", namespace)
    build: Callable[[Mapping[str, Any]], Any] = namespace["build"]
    return build


def record_names(cls: type, *, required: bool = True) -> frozenset[str]:
    """The names a record must have to build ``cls`` (``required=False``: every name it
    reads, defaulted fields included): the columns' database names and the extra fields'
    names. ``tests/test_sql_files.py`` checks each statement's result against these."""
    return frozenset(
        column for _, column, _, optional in _FIELDS[cls] if not (required and optional)
    )


def _has(table: type[Table], name: str) -> bool:
    return any(c._meta.name == name for c in table._meta.columns)


def columns(cls: type) -> tuple[Column, ...]:
    """The Table columns a row type reads, in field order."""
    return _COLUMNS[cls]


def through(via: ForeignKey, column: Column) -> Column:
    """``column`` (of the Table ``via`` refers to) read through the foreign key ``via``:
    ``through(Budget.agent_id, Agent.status)`` is Piccolo's ``Budget.agent_id.status``,
    with ``Agent.status`` spelt so that mypy sees it. Named as the column is."""
    if not isinstance(via, ForeignKey):
        raise TypeError(f"{via._meta.name} is not a foreign key")
    target = via._foreign_key_meta.resolved_references
    if column._meta.table is not target:
        raise TypeError(f"{via._meta.name} does not refer to {column._meta.table.__name__}")
    joined: Column = getattr(via, column._meta.name)
    return joined.as_alias(column._meta.db_column_name)


def select(cls: type, *, via: ForeignKey | None = None) -> Select:
    """``Table.select(<the row type's columns>)``: add ``.where()``/``.order_by()`` and run
    it with :func:`agent_app.db.query`.

    ``via``: a foreign key (of another Table) to the row type's Table: the query is
    ``Other.select(<via>.<each column>)``, the row type's columns read through the join
    and named as in their Table, so :func:`from_record` builds the row type (e.g. the
    agents a closure table names: ``select(AgentInfo, via=Hierarchy.child_id)``)."""
    cols = _COLUMNS[cls]
    if via is None:
        return cols[0]._meta.table.select(*cols)
    return via._meta.table.select(*(through(via, c) for c in cols))


def now() -> QueryString:
    """The server's ``now()`` as a value in a Piccolo update or where clause, so
    timestamps written through Piccolo come from the database clock (the transaction's
    start), like those of the ``.sql`` statements."""
    return QueryString("now()")


def from_record(cls: type[R], record: Mapping[str, Any] | None, **given: Any) -> R:
    """Build ``cls`` from a record holding (at least) its columns, by column name;
    ``given`` fields are taken as passed instead (a value the caller already holds). A
    missing record (``fetchrow`` found none) is a bug of the caller: ``LookupError``."""
    if record is None:
        raise LookupError(f"no row to build a {cls.__name__} from")
    if not given:
        build: Callable[[Mapping[str, Any]], R] = _BUILDERS[cls]
        return build(record)
    values = {}
    for name, column, convert, optional in _FIELDS[cls]:
        if optional:
            value = record.get(column, _ABSENT)
            if value is _ABSENT:
                continue  # the dataclass default
        else:
            value = record[column]
        values[name] = value if convert is None else convert(value)
    if given:
        values.update(given)
    return cls(**values)


def from_records(cls: type[R], records: Sequence[Mapping[str, Any]]) -> list[R]:
    build: Callable[[Mapping[str, Any]], R] = _BUILDERS[cls]
    return [build(r) for r in records]
