"""The one validation layer at the worker API's edge.

Every public operation is wrapped in :func:`validated`, which checks each argument
against the function's type hints plus :data:`RULES` (limits by parameter name) before
anything reaches the database, converts the forms it accepts, and otherwise raises
:class:`~agent_app.errors.InvalidArgument` naming the rule, the parameter (with a path
into nested values: ``steps[3].tool_calls[0].input['k']``) and the value, shortened.
A refused call changed nothing: it never started.

What a worker may rely on (and what it must pass):

* **Ids** (``uuid.UUID``): a UUID or its string form (converted); ``None`` only where
  the hint says ``| None``.
* **Text** (``str``): a ``str`` (never bytes or a number), valid Unicode without NUL
  characters, not empty or whitespace-only where the contract says text (names,
  kinds, models, worker ids, prompts, errors …; step ``text``/``reasoning``, summaries
  and ``raw_finish_reason`` may be empty), at most 255 characters for the columns that
  are ``varchar(255)`` and :data:`MAX_TEXT` otherwise.
* **Enums**: a member or its value (converted to the member); anything else is refused
  with the allowed values.
* **Integers**: an ``int``, never ``bool`` or ``float`` (no truncation), inside the
  parameter's range (``priority`` 0..9, ``limit`` 1..10,000, ``batch_size``
  1..100,000, ``max_attempts`` ≥ 1, token counts ≥ 0 …) and always inside 64 bits.
* **Amounts** (``Decimal``): a ``Decimal``, ``int`` or numeric ``str`` (converted
  exactly to ``Decimal``), finite, ≥ 0, below :data:`MAX_AMOUNT` and with at most
  :data:`AMOUNT_PLACES` decimal places. **Floats are refused**: a float such as 0.1 is
  not the decimal the caller meant, and converting it "exactly" would store
  0.1000000000000000055511151231257827…; pass ``Decimal("0.1")`` or ``"0.1"``.
* **Durations** (``timedelta``) and **seconds** (``float``): finite, ≥ 0, at most a
  century; leases and poll intervals at least 10 ms, retry back-offs and expiries > 0.
* **Datetimes**: timezone-aware (a naive datetime would be read as the server's local
  time).
* **Lists** (``Sequence``/``Iterable``): a list, tuple or other iterable, never a bare
  ``str``/``bytes`` (``tags="abc"`` is not three tags) and never a mapping; each item
  is checked as its own hint says. ``recipients`` needs at least one.
* **JSON parameters** (:data:`JSON_PARAMETERS`: payload, output, input, metadata,
  config, state, options, response, response_metadata): a value that comes back from
  JSONB exactly as given - ``None``, ``bool``, ``int``, finite ``float`` (not one that
  JSONB would print back as an integer, like ``1e16``), ``str`` without NUL, ``list``,
  and ``dict`` with ``str`` keys, at most :data:`MAX_JSON_DEPTH` deep and
  :data:`MAX_JSON_CHARS` characters of strings. A ``set``, ``tuple`` (it would come
  back a list), ``bytes``, ``Decimal``, NaN, infinity or any other object is refused,
  never stringified.
* **Dataclass arguments** (``Outgoing``, ``StepIn``, ``ToolCallIn``, ``ToolResultIn``,
  ``Reservation`` …) are checked field by field under the same rules; a queue
  ``Message`` (handed out by ``claim``, taken back by ``ack`` and friends, which act by
  its identity) by the fields that identify its lease, ``id`` and ``attempts``.

A new public operation gets all of this by adding ``@validated``; a parameter whose
hint this module cannot check (``Any`` outside :data:`JSON_PARAMETERS`, an unknown
class) fails at its first call with a ``TypeError`` naming it, so nothing goes
unchecked by accident.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import inspect
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from agent_app.errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., Any])

#: Longest text for a ``text`` column (characters).
MAX_TEXT = 1 << 20
#: Longest text for a ``varchar(255)`` column.
MAX_NAME = 255
#: Amounts are below this (exclusive) …
MAX_AMOUNT = Decimal(10) ** 30
#: … and have at most this many decimal places.
AMOUNT_PLACES = 30
#: Deepest nesting of a JSON value.
MAX_JSON_DEPTH = 200
#: Most characters of strings (keys and values) in one JSON value.
MAX_JSON_CHARS = 64 << 20
#: Longest duration or number of seconds.
MAX_SECONDS = 100 * 365 * 86400

_INT32 = 2**31 - 1
_INT64 = 2**63 - 1

#: Parameters (and dataclass fields) that hold JSON.
JSON_PARAMETERS = frozenset(
    {
        "payload",
        "output",
        "input",
        "metadata",
        "config",
        "state",
        "options",
        "response",
        "response_metadata",
    }
)


@dataclass(frozen=True)
class Rule:
    """Limits for one parameter name, on top of its type hint. ``lo``/``hi`` bound an
    int, a duration or seconds (inclusive); ``rule`` is the name an error carries."""

    lo: float | None = None
    hi: float | None = None
    rule: str | None = None
    max_len: int = MAX_TEXT
    blank_ok: bool = False
    min_items: int = 0
    #: How an item of a list is named in errors (``{}`` is its index).
    item_label: str = "[{}]"


_NAME = Rule(max_len=MAX_NAME)
_COUNT = Rule(lo=0, hi=_INT32, rule="usage_non_negative")
_LEASE = Rule(lo=0.01, hi=MAX_SECONDS, rule="lease_range")

#: Limits by parameter (or dataclass field) name, the same in every module.
RULES: dict[str, Rule] = {
    # integers
    "priority": Rule(lo=0, hi=9, rule="priority_range"),
    "max_attempts": Rule(lo=1, hi=_INT32, rule="attempts_range"),
    "attempts": Rule(lo=1, hi=_INT32, rule="attempts_range"),
    "id": Rule(lo=1, hi=_INT64),
    "message_ids": Rule(lo=1, hi=_INT64),
    "limit": Rule(lo=1, hi=10_000),
    "batch_size": Rule(lo=1, hi=100_000),
    "keep_last": Rule(lo=1, hi=_INT32, rule="prune_keep_last"),
    "max_depth": Rule(lo=1, hi=_INT32),
    "before_sequence": Rule(lo=1, hi=_INT32),
    "schema_version": Rule(lo=1, hi=_INT32),
    "sequence": Rule(lo=1, hi=_INT32),
    "step_number": Rule(lo=0, hi=_INT32, rule="step_number_min"),
    "input_tokens": _COUNT,
    "output_tokens": _COUNT,
    "cached_input_tokens": _COUNT,
    "reasoning_tokens": _COUNT,
    "size_bytes": Rule(lo=0, hi=_INT64),
    # amounts
    **dict.fromkeys(("amount", "actual", "budgets"), Rule(rule="budget_limits")),
    "cost_usd": Rule(rule="usage_non_negative"),
    # durations and seconds
    "lease": _LEASE,
    "poll_interval": Rule(lo=0.01, hi=MAX_SECONDS, rule="poll_interval_range"),
    "timeout": Rule(lo=0, hi=MAX_SECONDS, rule="timeout_range"),
    "delay": Rule(lo=0, hi=MAX_SECONDS, rule="delay_range"),
    "base_delay": Rule(lo=0, hi=MAX_SECONDS, rule="delay_range"),
    "max_delay": Rule(lo=0, hi=MAX_SECONDS, rule="delay_range"),
    "expires_in": Rule(lo=0.001, hi=MAX_SECONDS, rule="expires_in_range"),
    "older_than": Rule(lo=0, hi=MAX_SECONDS, rule="older_than_range"),
    # varchar(255) columns
    **dict.fromkeys(
        (
            "name",
            "kind",
            "model",
            "worker_id",
            "claimed_by",
            "provider",
            "external_id",
            "title",
            "base_branch",
            "branch_name",
            "tool_call_id",
            "tool_name",
            "tags",
            "any_tags",
            "all_tags",
            "responded_by",
            "base_ref",
            "head_commit",
            "label",
            "holder",
        ),
        _NAME,
    ),
    "raw_finish_reason": Rule(max_len=MAX_NAME, blank_ok=True),
    # text that may be empty
    "text": Rule(blank_ok=True),
    "reasoning": Rule(blank_ok=True),
    "summary": Rule(blank_ok=True),
    "last_error": Rule(blank_ok=True),
    "payload_json": Rule(blank_ok=True, max_len=MAX_JSON_CHARS),
    # lists
    "recipients": Rule(min_items=1),
    "steps": Rule(item_label=" row {} (step)"),
    "results": Rule(item_label=" row {} (tool result)"),
}
_DEFAULT = Rule()

Check = Callable[[Any, str], Any]


def invalid(rule: str, where: str, problem: str, value: Any) -> InvalidArgument:
    return InvalidArgument(rule, where, problem, value)


#: Fast forms of checks: a Python expression in ``x`` (and the names it uses) that is
#: true only for a value the check accepts unchanged. A dataclass's fields are tested
#: with one compiled function made of them (see :func:`_dataclass`); a false result
#: just means "run the check", which names the problem.
_FAST: dict[Check, tuple[str, dict[str, Any]]] = {}


def _fast(check: Check, expr: str, **names: Any) -> None:
    _FAST[check] = (expr, names)


def _always(value: Any) -> bool:
    return True


def _could_be(hint: Any) -> Callable[[Any], bool]:
    """A cheap test that is false only for values the checker of ``hint`` refuses by
    their type: a dataclass needs an instance, a list hint an iterable that is not a
    str or mapping. True means "try the check"."""
    origin = typing.get_origin(hint)
    if origin in (Sequence, Iterable, list, tuple) or hint in (list, tuple):
        return lambda v: (
            isinstance(v, Iterable)
            and not isinstance(v, str | bytes | bytearray | memoryview | Mapping)
        )
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda v: isinstance(v, hint)
    return _always


# --------------------------------------------------------------------------- #
# Checkers, one per kind of hint; each returns the (converted) value or raises.
# --------------------------------------------------------------------------- #


def _uuid(value: Any, where: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise invalid("uuid_format", where, "must be a UUID or its string form", value)


def _text(rule: Rule, name: str) -> Check:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise invalid("argument_type", where, "must be a str", value)
        if len(value) > rule.max_len:
            raise invalid("text_length", where, f"is longer than {rule.max_len} characters", value)
        if "\x00" in value:
            raise invalid("text_no_nul", where, "contains a NUL character", value)
        if not rule.blank_ok and (not value or value.isspace()):
            raise invalid(f"{name}_not_empty", where, "must not be empty or only whitespace", value)
        if not value.isascii():  # (ASCII is always encodable; isascii is O(1))
            _encodable(value, where)
        return value

    _fast(
        check,
        f"type(x) is str and len(x) <= {rule.max_len} and '\\x00' not in x and x.isascii()"
        + ("" if rule.blank_ok else " and x != '' and not x.isspace()"),
    )
    return check


def _encodable(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(
            "text_encoding", where, "is not valid Unicode (a lone surrogate)", value
        ) from None


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise invalid("argument_type", where, "must be True or False", value)
    return value


_fast(_uuid, "isinstance(x, UUID)", UUID=uuid.UUID)  # (asyncpg returns a subclass)
_fast(_bool, "type(x) is bool")


def _range_rule(rule: Rule, name: str) -> str:
    return rule.rule or f"{name}_range"


def _int(rule: Rule, name: str) -> Check:
    lo = -_INT64 - 1 if rule.lo is None else rule.lo
    hi = _INT64 if rule.hi is None else rule.hi

    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid("argument_type", where, "must be an int (not a bool or float)", value)
        if not lo <= value <= hi:
            raise invalid(_range_rule(rule, name), where, f"must be in {lo:g}..{hi:g}", value)
        return int(value)

    _fast(check, f"type(x) is int and {lo!r} <= x <= {hi!r}")
    return check


def _amount_of(name: str) -> Check:
    """Amounts under ``name``'s rule: a negative or oversized budget amount breaks
    ``budget_limits``, a negative cost ``usage_non_negative``, as in the database."""
    range_rule = RULES.get(name, _DEFAULT).rule or "amount_range"

    def check(value: Any, where: str) -> Decimal:
        try:
            return _amount(value, where)
        except InvalidArgument as e:
            if e.rule == "amount_range":
                e.rule = range_rule
                e.args = (str(e.args[0]).replace("amount_range", range_rule, 1),)
            raise

    # A Decimal the check returns as given (ints and strs are converted: not fast).
    _fast(
        check,
        "type(x) is Decimal and x.is_finite() and 0 <= x < max_amount"
        " and x.as_tuple().exponent >= min_exponent",
        Decimal=Decimal, max_amount=MAX_AMOUNT, min_exponent=-AMOUNT_PLACES,
    )  # fmt: skip
    return check


def _amount(value: Any, where: str) -> Decimal:
    if isinstance(value, bool | float):
        raise invalid(
            "amount_type",
            where,
            "must be a Decimal, int or numeric str (floats are refused: pass "
            "Decimal('0.1') or '0.1')",
            value,
        )
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str) and len(value) <= 100:
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise invalid("amount_type", where, "is not a number", value) from None
    else:
        raise invalid("amount_type", where, "must be a Decimal, int or numeric str", value)
    if not amount.is_finite():
        raise invalid("amount_finite", where, "must be a finite number", value)
    if amount < 0:
        raise invalid("amount_range", where, "must be >= 0", value)
    if amount >= MAX_AMOUNT:
        raise invalid("amount_range", where, f"must be below 1e{MAX_AMOUNT.adjusted()}", value)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -AMOUNT_PLACES:
        raise invalid("amount_range", where, f"has more than {AMOUNT_PLACES} decimal places", value)
    return amount


def _seconds_range(rule: Rule, name: str, seconds: float, value: Any, where: str) -> None:
    lo = 0 if rule.lo is None else rule.lo
    hi = MAX_SECONDS if rule.hi is None else rule.hi
    if not math.isfinite(seconds) or not lo <= seconds <= hi:
        raise invalid(
            _range_rule(rule, name),
            where,
            f"must be finite and between {lo:g} and {hi:g} seconds",
            value,
        )


def _duration(rule: Rule, name: str) -> Check:
    def check(value: Any, where: str) -> dt.timedelta:
        if not isinstance(value, dt.timedelta):
            raise invalid("argument_type", where, "must be a datetime.timedelta", value)
        _seconds_range(rule, name, value.total_seconds(), value, where)
        return value

    lo = 0 if rule.lo is None else rule.lo
    hi = MAX_SECONDS if rule.hi is None else rule.hi
    _fast(check, f"type(x) is timedelta and {lo!r} <= x.total_seconds() <= {hi!r}",
          timedelta=dt.timedelta)  # fmt: skip
    return check


def _seconds(rule: Rule, name: str) -> Check:
    def check(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid("argument_type", where, "must be a number of seconds", value)
        _seconds_range(rule, name, float(value), value, where)
        return value

    return check


def _datetime(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise invalid("argument_type", where, "must be a datetime.datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid("datetime_aware", where, "must be timezone-aware", value)
    return value


_fast(
    _datetime,
    "type(x) is datetime and x.tzinfo is not None and x.utcoffset() is not None",
    datetime=dt.datetime,
)


def _enum(cls: type[enum.Enum], name: str) -> Check:
    allowed = ", ".join(str(m.value) for m in cls)
    by_value: dict[Any, enum.Enum] = {m.value: m for m in cls}

    def check(value: Any, where: str) -> enum.Enum:
        if isinstance(value, cls):
            return value
        if type(value) is str and value in by_value:  # (cls(value) costs ~10x more)
            return by_value[value]
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise invalid(
                f"{name}_enum", where, f"must be a {cls.__name__} ({allowed})", value
            ) from None

    _fast(check, "type(x) is cls", cls=cls)
    return check


def _sequence(item: Check, rule: Rule) -> Check:
    def check(value: Any, where: str) -> list[Any]:
        if type(value) is list or type(value) is tuple:
            values = value
        elif isinstance(value, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
            value, Iterable
        ):
            raise invalid(
                "list_not_str",
                where,
                "must be a list or other iterable of items (not a str or mapping)",
                value,
            )
        else:
            values = value if isinstance(value, list | tuple) else list(value)
        try:
            # Paths are built only for an error: the items are checked again with them.
            items = [item(v, where) for v in values]
        except InvalidArgument:
            items = [item(v, where + rule.item_label.format(i)) for i, v in enumerate(values)]
        if len(items) < rule.min_items:
            raise invalid(
                f"{where}_not_empty", where, f"needs at least {rule.min_items} item(s)", value
            )
        return items

    return check


def _mapping(key: Check, val: Check) -> Check:
    def check(value: Any, where: str) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise invalid("argument_type", where, "must be a mapping", value)
        out = {}
        for k, v in value.items():
            checked = key(k, f"{where} key")
            out[checked] = val(
                v, f"{where}[{checked.value if isinstance(checked, enum.Enum) else checked!r}]"
            )
        return out

    return check


def _json(value: Any, where: str) -> Any:
    budget = [MAX_JSON_CHARS]
    _json_walk(value, where, 0, budget)
    return value


def _json_ok(value: Any, depth: int = 0, budget: int = MAX_JSON_CHARS) -> int:
    """The fast form of :func:`_json`: the characters of budget left after ``value``, or
    -1 when it may break a rule (then :func:`_json` runs, which names the problem). It
    accepts a subset of what :func:`_json` accepts: exact types only, ASCII strings
    only, and no floats in exponent notation; no paths are built."""
    if depth > MAX_JSON_DEPTH:
        return -1
    t = type(value)
    if t is str:
        if "\x00" in value or not value.isascii():
            return -1
        return budget - len(value)  # (negative: over budget)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or "\x00" in k or not k.isascii() or depth >= MAX_JSON_DEPTH:
                return -1
            budget -= len(k)
            if type(v) is str and "\x00" not in v and v.isascii():
                budget -= len(v)
            elif v is not None and type(v) is not int and type(v) is not bool:
                budget = _json_ok(v, depth + 1, budget)
            if budget < 0:
                return -1
        return budget
    if t is list:
        for v in value:
            budget = _json_ok(v, depth + 1, budget)
            if budget < 0:
                return -1
        return budget
    if value is None or t is int or t is bool:
        return budget
    if t is float and math.isfinite(value) and "e" not in repr(value):
        return budget
    return -1


_fast(_json, "x is None or json_ok(x) >= 0", json_ok=_json_ok)


def _json_walk(value: Any, where: str, depth: int, budget: list[int]) -> None:
    if depth > MAX_JSON_DEPTH:
        raise invalid(
            "json_depth",
            where,
            f"nests deeper than {MAX_JSON_DEPTH} levels (or contains itself)",
            value,
        )
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise invalid("json_size", where, f"holds more than {MAX_JSON_CHARS} characters", value)
        if "\x00" in value:
            raise invalid(
                "json_round_trip",
                where,
                "contains a NUL character (JSONB cannot store \\u0000)",
                value,
            )
        _encodable(value, where)
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise invalid("json_round_trip", where, "is not a finite number", value)
        if "e+" in repr(value):
            raise invalid(
                "json_round_trip", where, "would come back from JSONB as an int; pass an int", value
            )
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise invalid(
                    "json_round_trip",
                    f"{where} key",
                    "must be a str (JSON object keys come back as strings)",
                    k,
                )
            _json_walk(k, f"{where} key", depth + 1, budget)
            _json_walk(v, f"{where}[{k!r}]", depth + 1, budget)
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _json_walk(v, f"{where}[{i}]", depth + 1, budget)
        return
    kind = type(value).__name__
    hint = " (it would come back as a list)" if isinstance(value, tuple) else ""
    raise invalid(
        "json_round_trip", where, f"is a {kind}, which JSON cannot hold exactly{hint}", value
    )


def _instance(cls: type) -> Check:
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, cls):
            raise invalid("argument_type", where, f"must be a {cls.__name__}", value)
        return value

    return check


def checked_fields(cls: type) -> tuple[str, ...]:
    """The fields of dataclass ``cls`` that are checked: all of them, or the ones its
    ``__checked_fields__`` names - for a value the API hands out and takes back by
    identity (a queue ``Message``: its ``id`` and ``attempts`` are what reaches the
    database; its other fields never do)."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    chosen: tuple[str, ...] | None = getattr(cls, "__checked_fields__", None)
    if chosen is None:
        return names
    unknown = set(chosen) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__}.__checked_fields__ names no field {sorted(unknown)}")
    return tuple(n for n in names if n in chosen)


@functools.cache
def _dataclass(cls: type) -> Check:
    """One generated function checking every field of ``cls`` in field order: a field
    whose check has a fast form is tested inline and checked (with its path, which may
    convert or raise) only when that test fails; the others are checked. A value with
    a converted field comes back as a copy with the converted values."""
    hints = typing.get_type_hints(cls)
    fields = [(name, _checker(hints[name], name)) for name in checked_fields(cls)]
    namespace: dict[str, Any] = {
        "cls": cls,
        "invalid": invalid,
        "problem": f"must be a {cls.__name__}",
        "rebuild": _rebuilder(cls),
    }
    lines = [
        "def check(value, where):",
        "    if type(value) is not cls and not isinstance(value, cls):",
        "        raise invalid('argument_type', where, problem, value)",
        "    changes = None",
    ]
    for i, (name, field_check) in enumerate(fields):
        namespace[f"check_{i}"] = field_check
        run = [
            f"y = check_{i}(x, where + {'.' + name!r})",
            "if y is not x:",
            "    if changes is None:",
            "        changes = {}",
            f"    changes[{name!r}] = y",
        ]
        lines.append(f"    x = value.{name}")
        if field_check in _FAST:
            expr, names = _FAST[field_check]
            for key, val in names.items():
                namespace[f"{key}_{i}"] = val
                expr = re.sub(rf"\b{key}\b", f"{key}_{i}", expr)
            lines.append(f"    if not ({expr}):")
            lines += [f"        {line}" for line in run]
        else:
            lines += [f"    {line}" for line in run]
    lines.append("    return value if changes is None else rebuild(value, changes)")
    exec("\n".join(lines), namespace)
    check: Check = namespace["check"]
    return check


def _rebuilder(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    """How a checked dataclass value gets its converted fields: a copy of its
    ``__dict__`` with them (the fields are all there is to it: every field is an
    ``__init__`` parameter, no ``__post_init__``, no slots), else ``dataclasses.replace``."""
    simple = (
        not hasattr(cls, "__post_init__")
        and not hasattr(cls, "__slots__")
        and all(f.init for f in dataclasses.fields(cls))
    )

    def rebuild(value: Any, changes: dict[str, Any]) -> Any:
        if simple and type(value) is cls:
            new = object.__new__(cls)
            new.__dict__.update(value.__dict__, **changes)
            return new
        return dataclasses.replace(value, **changes)

    return rebuild


def _optional(inner: Check) -> Check:
    def check(value: Any, where: str) -> Any:
        return None if value is None else inner(value, where)

    if inner in _FAST:
        expr, names = _FAST[inner]
        _fast(check, f"x is None or ({expr})", **names)
    return check


def _not_none(inner: Check) -> Check:
    def check(value: Any, where: str) -> Any:
        if value is None:
            raise invalid("not_null", where, "must not be None", value)
        return inner(value, where)

    if inner in _FAST:  # (every fast form already refuses None)
        expr, names = _FAST[inner]
        _fast(check, expr, **names)
    return check


def _first_of(checks: list[Check], hints: list[Any]) -> Check:
    # A member that cannot take the value (a list passed where "Message | list[Message]"
    # is expected is not a Message) is skipped on the way to the one that can, so no
    # error is built for it; if none takes it, all are tried in order for the error.
    plausible = list(zip(checks, [_could_be(h) for h in hints], strict=True))

    def check(value: Any, where: str) -> Any:
        for c, could in plausible:
            if could(value):
                try:
                    return c(value, where)
                except InvalidArgument:
                    break
        errors: list[InvalidArgument] = []
        for c in checks:
            try:
                return c(value, where)
            except InvalidArgument as e:
                errors.append(e)
        # The most specific complaint: one about the value's content, not its type.
        raise next((e for e in errors if e.rule != "argument_type"), errors[0])

    return check


def _checker(hint: Any, name: str) -> Check:
    """The checker for one parameter or field, from its hint and its name's rule."""
    rule = RULES.get(name, _DEFAULT)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(hint))
        if Decimal in members:
            inner: Check = _amount_of(name)
        elif enums := [m for m in members if isinstance(m, type) and issubclass(m, enum.Enum)]:
            inner = _enum(enums[0], name)  # "FinishReason | str": the enum or its value
        elif len(members) == 1:
            inner = _checker(members[0], name)
        else:
            inner = _first_of([_checker(m, name) for m in members], members)
        return _optional(inner) if nullable else _not_none(inner)
    if hint is Any:  # JSON: None is its null
        return _plain(hint, name, rule)
    return _not_none(_plain(hint, name, rule))


def _plain(hint: Any, name: str, rule: Rule) -> Check:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        if name in JSON_PARAMETERS:
            return _json
        raise TypeError(f"validation: parameter {name!r} is Any but not a JSON parameter")
    if origin in (Sequence, Iterable, list, tuple) or hint in (list, tuple):
        item = args[0] if args else Any
        return _sequence(_checker(item, name) if item is not Any else _json_item(name), rule)
    if origin in (Mapping, dict):
        return _mapping(_checker(args[0], f"{name}_key"), _checker(args[1], name))
    if not isinstance(hint, type):
        raise TypeError(f"validation: cannot check parameter {name!r} of type {hint!r}")
    if hint is uuid.UUID:
        return _uuid
    if hint is bool:
        return _bool
    if hint is str:
        return _text(rule, name)
    if hint is int:
        return _int(rule, name)
    if hint is float:
        return _seconds(rule, name)
    if hint is Decimal:
        return _amount_of(name)
    if hint is dt.timedelta:
        return _duration(rule, name)
    if hint is dt.datetime:
        return _datetime
    if issubclass(hint, enum.Enum):
        return _enum(hint, name)
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    raise TypeError(f"validation: cannot check parameter {name!r} of type {hint!r}")


def _json_item(name: str) -> Check:
    if name not in JSON_PARAMETERS:
        raise TypeError(f"validation: items of {name!r} are Any but it is not a JSON parameter")
    return _json


#: Parameters never checked: the caller's connection, the method's object.
_SKIPPED = frozenset({"conn", "self"})


class _Compiled:
    """What :func:`validated` needs of one function, built at its first call."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        hints = typing.get_type_hints(fn)
        self.sig = sig = inspect.signature(fn)
        missing = [n for n in sig.parameters if n not in _SKIPPED and n not in hints]
        if missing:
            raise TypeError(f"validation: {fn.__qualname__} has unannotated parameters {missing}")
        self.checks = {
            name: _checker(hints[name], name)
            for name in sig.parameters
            if name not in _SKIPPED and name in hints
        }
        self.bind = _binder(sig)
        # The arguments whose check has a fast form are tested by one compiled function
        # (true: all valid as given); the others, or all of them when it is false, are
        # checked one by one, in parameter order, as the errors must be.
        quick = [(n, _FAST[c]) for n, c in self.checks.items() if c in _FAST]
        self.rest = [(n, c) for n, c in self.checks.items() if c not in _FAST]
        self.all = list(self.checks.items())
        self.fast = _compile_fast(quick, "a[{!r}]")


def _compile_fast(
    quick: list[tuple[str, tuple[str, dict[str, Any]]]], access: str
) -> Callable[[Any], bool]:
    """One function testing the fast forms of ``quick`` (name, form) on ``access`` of its
    argument (``v.{}`` for a field, ``a[{!r}]`` for an argument)."""
    namespace: dict[str, Any] = {}
    lines = ["def fast(v):", "    a = v"]
    for i, (name, (expr, names)) in enumerate(quick):
        for key, val in names.items():
            namespace[f"{key}_{i}"] = val
            expr = re.sub(rf"\b{key}\b", f"{key}_{i}", expr)
        lines += [f"    x = {access.format(name)}", f"    if not ({expr}):", "        return False"]
    lines.append("    return True")
    exec("\n".join(lines), namespace)
    fast: Callable[[Any], bool] = namespace["fast"]
    return fast


def _binder(sig: inspect.Signature) -> Callable[..., dict[str, Any]] | None:
    """A function with ``sig``'s parameters and defaults that returns its arguments by
    name (Python binds them, several times faster than ``Signature.bind``); None for a
    signature with positional-only or variadic parameters."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = list(sig.parameters.values())
    if any(p.kind not in kinds for p in params):
        return None
    namespace: dict[str, Any] = {}
    parts: list[str] = []
    for i, p in enumerate(params):
        if p.kind is inspect.Parameter.KEYWORD_ONLY and "*" not in parts:
            parts.append("*")
        if p.default is inspect.Parameter.empty:
            parts.append(p.name)
        else:
            namespace[f"__default{i}"] = p.default
            parts.append(f"{p.name}=__default{i}")
    names = ", ".join(f"{p.name!r}: {p.name}" for p in params)
    exec(f"def bind({', '.join(parts)}):\n    return {{{names}}}\n", namespace)
    bind: Callable[..., dict[str, Any]] = namespace["bind"]
    return bind


def validated(fn: F) -> F:
    """Check (and convert) every argument of ``fn`` before it runs; see the module
    docstring. Works on coroutine functions and plain functions (``__init__``)."""
    compiled: list[_Compiled] = []

    def check_arguments(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if not compiled:  # hints name classes defined later in the module: resolve lazily
            compiled.append(_Compiled(fn))
        c = compiled[0]
        bound = None
        try:
            if c.bind is None:
                raise TypeError
            arguments = c.bind(*args, **kwargs)
        except TypeError:
            try:  # (inspect's wording of the problem)
                bound = c.sig.bind(*args, **kwargs)
            except TypeError as e:
                raise InvalidArgument(
                    "arguments", fn.__qualname__, str(e), show_value=False
                ) from None
            bound.apply_defaults()
            arguments = bound.arguments
        for name, check in c.rest if c.fast(arguments) else c.all:
            arguments[name] = check(arguments[name], name)
        return ((), arguments) if bound is None else (bound.args, bound.kwargs)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = check_arguments(args, kwargs)
            return await fn(*args, **kwargs)

        async_wrapper.__validated__ = True  # type: ignore[attr-defined]
        return typing.cast(F, async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = check_arguments(args, kwargs)
        return fn(*args, **kwargs)

    wrapper.__validated__ = True  # type: ignore[attr-defined]
    return typing.cast(F, wrapper)


def is_validated(fn: Any) -> bool:
    """True for a function wrapped by :func:`validated`."""
    return bool(getattr(fn, "__validated__", False))
