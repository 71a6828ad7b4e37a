"""The validation layer's fast forms agree with its full checks.

``@validated`` first tests each value with a cheap compiled expression (its "fast
form") and runs the full check - which converts and names the problem - only when that
test fails. A fast form that accepted something the full check refuses would let bad
input through unnamed; these tests hold the fast forms to the full checks, on the
edges of each rule, and check that a converted dataclass is a copy and the caller's
value is left alone.
"""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal
from typing import Any

import pytest

from agent_app import telemetry, validation
from agent_app.enums import FinishReason, ToolOutputType
from agent_app.errors import InvalidArgument
from agent_app.telemetry import StepIn, ToolCallIn
from tests.test_bad_input import BAD_AMOUNT, BAD_JSON


def _nested(depth: int, leaf: Any, kind: str) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


GOOD_JSON: list[Any] = [
    None, True, 0, -1, 10**30, 1.5, -0.0, 1e-7, "", "ascii", "é", {"a": [1, {"b": None}]},
    [], {}, [1.5, "x", None, False, {"k": "v"}],
]  # fmt: skip
EDGE_JSON: list[Any] = [
    _nested(depth, leaf, kind)
    for depth in range(validation.MAX_JSON_DEPTH - 2, validation.MAX_JSON_DEPTH + 3)
    for leaf in (None, "s", {}, [], 1)
    for kind in ("list", "dict")
] + [{"k": 1e16}, [1e300], {"k\x00": 1}, {"\ud800": 1}, [True, 1, 1.0], {"a": ("t",)}]


def accepts(check: validation.Check, value: Any) -> bool:
    try:
        check(value, "v")
    except InvalidArgument:
        return False
    return True


def fast(check: validation.Check) -> Any:
    expr, names = validation._FAST[check]
    return eval(f"lambda x: {expr}", names)


@pytest.mark.parametrize("value", [v for _, v in BAD_JSON] + GOOD_JSON + EDGE_JSON)
def test_the_json_fast_form_accepts_only_what_the_full_check_accepts(value: Any) -> None:
    if fast(validation._json)(value):
        assert accepts(validation._json, value), repr(value)[:200]


def test_json_nests_at_most_max_depth_levels() -> None:
    deepest = validation.MAX_JSON_DEPTH
    for kind in ("list", "dict"):
        assert accepts(validation._json, _nested(deepest, 1, kind))
        assert not accepts(validation._json, _nested(deepest + 1, 1, kind))
        assert fast(validation._json)(_nested(deepest, 1, kind))


def test_the_json_fast_form_counts_the_character_budget() -> None:
    assert validation._json_ok({"ab": "cd"}, 0, 4) == 0
    assert validation._json_ok({"ab": "cde"}, 0, 4) < 0
    assert validation._json_ok(["ab", ["cd"]], 0, 3) < 0


@pytest.mark.parametrize(
    "value",
    [v for _, v in BAD_AMOUNT]
    + [Decimal("0"), Decimal("-0"), Decimal("1e-30"), Decimal("1e-31"), Decimal("1e29"),
       Decimal("9" * 30), Decimal("1e30"), Decimal("0.10"), 3, "1.5", None],
)  # fmt: skip
def test_the_amount_fast_form_accepts_only_what_the_full_check_accepts(value: Any) -> None:
    check = validation._checker(Decimal, "cost_usd")
    if fast(check)(value):
        assert accepts(check, value) and check(value, "v") is value, repr(value)


def test_a_step_with_enum_values_as_strings_comes_back_as_a_converted_copy() -> None:
    check = validation._dataclass(StepIn)
    inv = uuid.uuid4()
    calls = [ToolCallIn("a", "bash", {"cmd": "ls"}, output_type="json", output={"k": 1})]
    given = StepIn(inv, 3, "tool-calls", cost_usd=Decimal("0.5"), tool_calls=calls)
    checked = check(given, "step")
    assert checked == dataclasses.replace(
        given,
        finish_reason=FinishReason.tool_calls,
        tool_calls=[dataclasses.replace(calls[0], output_type=ToolOutputType.json)],
    )
    assert type(checked.finish_reason) is FinishReason
    assert type(checked.tool_calls[0].output_type) is ToolOutputType
    # The caller's values are untouched.
    assert given.finish_reason == "tool-calls" and type(given.finish_reason) is str
    assert type(calls[0].output_type) is str
    # A conversion is a copy with the same fields otherwise (the fast copy keeps them all).
    for f in dataclasses.fields(StepIn):
        if f.name not in ("finish_reason", "tool_calls"):
            assert getattr(checked, f.name) is getattr(given, f.name), f.name


def test_a_subclass_of_a_dataclass_argument_is_checked_and_kept() -> None:
    @dataclasses.dataclass(frozen=True)
    class TaggedStep(StepIn):
        tag: str = "mine"

    checked = validation._dataclass(StepIn)(TaggedStep(uuid.uuid4(), 0, "stop"), "step")
    assert type(checked) is TaggedStep and checked.tag == "mine"
    assert checked.finish_reason is FinishReason.stop


@pytest.mark.parametrize(
    ("step", "rule", "path"),
    [
        (StepIn(uuid.uuid4(), 0, "nope"), "finish_reason_enum", ".finish_reason"),
        (StepIn(uuid.uuid4(), -1, "stop"), "step_number_min", ".step_number"),
        (StepIn(uuid.uuid4(), 0, "stop", cost_usd=Decimal("-1")), "usage_non_negative",
         ".cost_usd"),
        (StepIn(uuid.uuid4(), 0, "stop", input_tokens=True), "argument_type", ".input_tokens"),
        (StepIn(uuid.uuid4(), 0, "stop", response_metadata={"k": (1,)}), "json_round_trip",
         ".response_metadata['k']"),
        (StepIn(uuid.uuid4(), 0, "stop", tool_calls=[ToolCallIn("a", "b"),
                                                      ToolCallIn("c", "d", {"k": [1e16]})]),
         "json_round_trip", ".tool_calls[1].input['k'][0]"),
        (StepIn(uuid.uuid4(), 0, "stop", tool_calls=[ToolCallIn("a", "b", output_type="x")]),
         "output_type_enum", ".tool_calls[0].output_type"),
    ],
)  # fmt: skip
async def test_a_bad_field_in_a_bulk_batch_is_named_by_row_and_path(
    step: StepIn, rule: str, path: str
) -> None:
    good = [StepIn(step.invocation_id, n, "stop") for n in range(1, 40)]
    with pytest.raises(InvalidArgument) as err:
        await telemetry.ingest([*good[:20], step, *good[20:]])
    assert err.value.rule == rule
    assert err.value.parameter == f"steps row 20 (step){path}", str(err.value)
