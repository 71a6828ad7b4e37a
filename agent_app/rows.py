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

:func:`select` starts a Piccolo query for a row type's columns; :func:`from_record` turns
a record (from Piccolo, a ``.sql`` statement returning ``*``, or asyncpg) into the row
type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar

from piccolo.columns import JSONB, Column
from piccolo.query.methods.select import Select
from piccolo.querystring import QueryString
from piccolo.table import Table

from agent_app import db

R = TypeVar("R")

_Field = tuple[str, str, Callable[[Any], Any] | None, bool]
_FIELDS: dict[type, tuple[_Field, ...]] = {}
_COLUMNS: dict[type, tuple[Column, ...]] = {}


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
        return cls

    return bind


def _has(table: type[Table], name: str) -> bool:
    return any(c._meta.name == name for c in table._meta.columns)


def columns(cls: type) -> tuple[Column, ...]:
    """The Table columns a row type reads, in field order."""
    return _COLUMNS[cls]


def select(cls: type) -> Select:
    """``Table.select(<the row type's columns>)``: add ``.where()``/``.order_by()`` and run
    it with :func:`agent_app.db.query`."""
    cols = _COLUMNS[cls]
    return cols[0]._meta.table.select(*cols)


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
    return [from_record(cls, r) for r in records]
