"""The console's SQL: ``agent_app/sql/queries/console.sql``, one named query each."""

from __future__ import annotations

from agent_app import sqlfile

_QUERIES = sqlfile.load("console")


def sql(name: str) -> str:
    """The query called ``name``; :class:`~agent_app.sqlfile.SqlFileError` names a query
    that does not exist."""
    return _QUERIES[name]
