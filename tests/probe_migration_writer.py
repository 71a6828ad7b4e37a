"""Probe: the description given to --write-migration is pasted raw into the written
file's module docstring (migration_writer._TEMPLATE: '\"\"\"{description}'). A
description holding triple quotes or a backslash escape makes a file that does not
import, or runs code the description carries."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from agent_app.migration_writer import write_raw_migration


@pytest.mark.parametrize(
    "description",
    [
        'fix "quoted" names """ and more',
        "move C:\\Names and \\N things",
        'x"""\nimport os\nPWNED = True\n"""',
    ],
    ids=["triple quotes", "backslash N", "code injection"],
)
def test_description_cannot_break_or_inject_into_the_file(tmp_path: Path, description: str) -> None:
    path = write_raw_migration(["SELECT 1"], ["SELECT 2"], description, tmp_path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # must import
    assert description == module.DESCRIPTION
    assert not hasattr(module, "PWNED"), "the description ran as code"
