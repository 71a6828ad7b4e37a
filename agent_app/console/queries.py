"""The console's SQL, loaded once from ``queries.sql`` (one named query each)."""

from __future__ import annotations

import functools
import re
from importlib import resources


@functools.cache
def queries() -> dict[str, str]:
    """``{name: sql}`` for every ``-- name: <name>`` block of ``queries.sql``."""
    text = resources.files("agent_app.console").joinpath("queries.sql").read_text()
    found: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        found[name.strip()] = body.strip().rstrip(";")
    return found


def sql(name: str) -> str:
    """The query called ``name``; KeyError names a query that does not exist."""
    return queries()[name]
