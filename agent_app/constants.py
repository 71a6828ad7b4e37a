"""Names and limits that both the Python code and the SQL use, each defined once, here.

Python imports them from this module (other modules re-export some under their old
names, e.g. ``agent_app.queue.CHANNEL``, ``agent_app.tables.MAX_AGENT_DEPTH``). SQL
reaches them through placeholders: in a ``.sql`` file of the package, ``{NAME}`` stands
for :data:`SQL_CONSTANTS` ``[NAME]``, which :func:`render_sql` writes as a SQL literal
(a string quoted and escaped, a list as comma-separated literals for ``IN (...)``, an
integer as digits). An unknown ``{NAME}`` is an error, never left in the SQL.

Why Python holds them and SQL reads them, not the other way round (e.g. a SQL function
``agent.messages_channel()`` that Python would query): they are fixed properties of the
schema, not data. A migration freezes the SQL rendered from them, so the frozen copy
keeps the value it was written with and ``schema_check`` reports a value changed here
without a new migration; Python needs them before any database is reachable (the
channel to LISTEN on, the limit to validate against); and a trigger comparing with
literals costs nothing per row, where a function call would.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from agent_app.enums import TERMINAL_AGENT_STATUSES

#: NOTIFY channel of new and returned messages; the payload is the recipient's id.
#: Sent by the ``messages_notify`` trigger and by the queue's reclaim/release/redrive
#: statements; :class:`agent_app.queue.Consumer` LISTENs on it.
MESSAGES_CHANNEL = "agent_messages"

#: NOTIFY channel of answered questions; the payload is the CTA event's id. Sent by the
#: ``cta_answer_rules`` trigger at commit; :func:`agent_app.cta.wait` LISTENs on it.
CTA_CHANNEL = "agent_cta"

#: The deepest level an agent may sit at (the root orchestrator is level 0); the
#: ``depth_limit`` CHECK of ``agents``.
MAX_AGENT_DEPTH = 5

#: Highest message priority; 0 is the lowest and the default. The ``priority_range``
#: CHECK of ``messages``.
MAX_MESSAGE_PRIORITY = 9


class UnsafeConstant(ValueError):
    """A constant holds ``$``: rendered into a dollar-quoted function body (``AS $fn$
    ... $fn$``) it could end the body and run the rest as SQL, so it is refused."""


def _refuse_dollar(text: str, what: str) -> None:
    if "$" in text:
        raise UnsafeConstant(
            f"{what}: {text!r} holds '$', which could end a dollar-quoted function body; "
            "constants rendered into SQL may not contain it"
        )


def sql_value(value: str | int | Iterable[str]) -> str:
    """``value`` written as SQL: a string as a quoted literal (quotes doubled), an
    integer as digits, any other iterable as comma-separated string literals (the
    inside of an ``IN (...)``).

    :raises UnsafeConstant: a string holding ``$`` (see :func:`render_sql`)."""
    if isinstance(value, str):
        _refuse_dollar(value, "sql_value")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int):
        return str(int(value))
    return ", ".join(sql_value(str(v)) for v in value)


#: What a ``{NAME}`` placeholder in the package's SQL becomes.
SQL_CONSTANTS: Mapping[str, str] = {
    "MESSAGES_CHANNEL": sql_value(MESSAGES_CHANNEL),
    "CTA_CHANNEL": sql_value(CTA_CHANNEL),
    "MAX_AGENT_DEPTH": sql_value(MAX_AGENT_DEPTH),
    "MAX_MESSAGE_PRIORITY": sql_value(MAX_MESSAGE_PRIORITY),
    # e.g. "status IN ({TERMINAL_AGENT_STATUSES})"
    "TERMINAL_AGENT_STATUSES": sql_value(s.value for s in TERMINAL_AGENT_STATUSES),
}

_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


class UnknownPlaceholder(KeyError):
    """A ``{NAME}`` in SQL that :data:`SQL_CONSTANTS` does not define."""


def render_sql(sql: str, where: str = "<sql>") -> str:
    """``sql`` with every ``{NAME}`` placeholder replaced by its SQL literal.

    Placeholders sit inside dollar-quoted function bodies as well as plain SQL, where
    single-quote escaping alone does not hold: a value holding ``$`` is refused.

    :raises UnknownPlaceholder: a placeholder :data:`SQL_CONSTANTS` lacks (``where``
        names the file in the message).
    :raises UnsafeConstant: a constant whose rendering holds ``$``.
    """

    def value(match: re.Match[str]) -> str:
        try:
            rendered = SQL_CONSTANTS[match.group(1)]
        except KeyError:
            raise UnknownPlaceholder(
                f"{where}: unknown placeholder {match.group(0)}; "
                f"known: {', '.join(sorted(SQL_CONSTANTS))}"
            ) from None
        _refuse_dollar(rendered, f"{where}: {match.group(0)}")
        return rendered

    return _PLACEHOLDER.sub(value, sql)
