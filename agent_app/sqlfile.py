"""Named SQL statements kept in ``.sql`` files inside the package.

SQL lives in ``agent_app/sql/``, as SQL: a reader (or ``psql``) sees each statement as it
is sent. A file holds one or more statements, each under a header (the aiosql/yesql
convention)::

    -- name: add
    -- Store one memory record and return it.
    INSERT INTO agent.memory_records (...) VALUES (...) RETURNING *;

The header's first line names the statement (``-- name: <name>``); the comment line(s)
right after it say what it does (at least one is required); the rest, up to the next
header, is the statement (its trailing semicolon removed). Statements are read once, at
import, through :mod:`importlib.resources`, so they work from an installed wheel.

A constant that Python and SQL share (a NOTIFY channel, a limit, a list of statuses) is
written ``{NAME}`` and becomes its SQL literal from
:data:`agent_app.constants.SQL_CONSTANTS` when the text is parsed, as in the schema's
files; an unknown ``{NAME}`` is an error.

Names in these files are checked against the database the migrations build: the test
suite prepares every statement (``tests/test_sql_files.py``), so a table or column
renamed in :mod:`agent_app.tables` and not here fails there, not in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources

from agent_app.constants import render_sql

_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$")


class SqlFileError(ValueError):
    """A ``.sql`` file is malformed: a statement without a name or description, twice
    the same name, or a name asked for that the file does not have."""


@dataclass(frozen=True)
class Statement:
    """One named statement: ``sql`` is sent as is; ``description`` says what it does."""

    name: str
    description: str
    sql: str


class SqlFile(Mapping[str, str]):
    """The statements of one file, by name (``file["claim"]`` is the SQL text)."""

    def __init__(self, path: str, statements: Mapping[str, Statement]) -> None:
        self.path = path
        self.statements = dict(statements)

    def __getitem__(self, name: str) -> str:
        try:
            return self.statements[name].sql
        except KeyError:
            raise SqlFileError(f"{self.path} has no statement named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.statements)

    def __len__(self) -> int:
        return len(self.statements)


def parse(text: str, path: str = "<string>") -> SqlFile:
    """Split ``text`` into its named statements, ``{NAME}`` placeholders rendered (see the
    module docstring)."""
    statements: dict[str, Statement] = {}
    name: str | None = None
    description: list[str] = []
    body: list[str] = []
    preamble = True

    def close() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip().removesuffix(";").rstrip()
        if not description:
            raise SqlFileError(f"{path}: statement {name!r} has no description comment")
        if not sql:
            raise SqlFileError(f"{path}: statement {name!r} is empty")
        if name in statements:
            raise SqlFileError(f"{path}: statement {name!r} is defined twice")
        statements[name] = Statement(name, " ".join(description), sql)

    for line in render_sql(text, path).splitlines():
        header = _HEADER.match(line)
        if header:
            close()
            name, description, body, preamble = header.group(1), [], [], True
            continue
        if name is None:
            if line.strip() and not line.lstrip().startswith("--"):
                raise SqlFileError(f"{path}: SQL before the first '-- name: <name>' header")
            continue
        if preamble and line.startswith("--"):
            description.append(line[2:].strip())
            continue
        preamble = False
        body.append(line)
    close()
    return SqlFile(path, statements)


def load(name: str, folder: str = "queries") -> SqlFile:
    """The statements of ``agent_app/sql/<folder>/<name>.sql``."""
    resource = resources.files("agent_app").joinpath("sql", folder, f"{name}.sql")
    return parse(resource.read_text(encoding="utf-8"), f"agent_app/sql/{folder}/{name}.sql")


def all_files(folder: str = "queries") -> list[SqlFile]:
    """Every ``.sql`` file of ``agent_app/sql/<folder>/`` (used by the tests)."""
    root = resources.files("agent_app").joinpath("sql", folder)
    return [
        load(entry.name.removesuffix(".sql"), folder)
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql")
    ]
