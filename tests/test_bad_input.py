"""Every public operation, fed every class of bad input, answers with a typed error and
changes nothing - and never hangs.

The operations are listed from the API modules (a new public operation without a good
call below fails :func:`test_every_public_operation_has_cases`). For each one, a valid
call is built on a fresh little world (a run, agents with budgets, a claimed message,
a question, a checkpoint, a sandbox with a snapshot and a workspace); then each
argument in turn - and each field of a dataclass argument - is replaced by the bad
values of its kind, derived from the type hint: wrong types, None, empty and NUL-bearing
text, 10 MB strings, out-of-range and non-int numbers, NaN/Infinity/1e200000 amounts,
non-JSON payloads (set, bytes, objects, NaN, tuples, cycles), naive datetimes,
negative durations, bare strings for lists, unknown enum values, malformed ids. Each
call must raise an :class:`~agent_app.errors.AgentAppError` within a hang guard, and
the world's rows (and the row counts of the tables an insert could reach) must be as
before. Finally the valid call itself runs, proving the refusals came from the bad
value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import inspect
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import ModuleType, UnionType
from typing import Any

import pytest

from agent_app import (
    budgets,
    checkpoints,
    cta,
    db,
    hierarchy,
    memory,
    queue,
    runs,
    sandboxes,
    telemetry,
    validation,
)
from agent_app.enums import (
    AgentType,
    BudgetResource,
    CtaKind,
    FeaturePhase,
    MemoryKind,
    SandboxSourceType,
    SandboxStatus,
)
from agent_app.errors import AgentAppError, InvalidArgument, LeaseLost

MODULES: tuple[ModuleType, ...] = (
    queue, budgets, hierarchy, runs, telemetry, checkpoints, cta, memory, sandboxes,
)  # fmt: skip
GUARD = 20.0  # seconds: a hang guard, never an assertion about speed
T = BudgetResource.tokens


def public_operations() -> dict[str, Callable[..., Any]]:
    """Every public operation of the worker API, by ``module.name``."""
    ops: dict[str, Callable[..., Any]] = {}
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[-1]
        for name, fn in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(fn):
                continue
            if inspect.unwrap(fn).__module__ != module.__name__:
                continue
            if inspect.iscoroutinefunction(fn):
                ops[f"{short}.{name}"] = fn
    ops["queue.Consumer"] = queue.Consumer.__init__
    return ops


# --------------------------------------------------------------------------- #
# The world each operation's valid call runs in
# --------------------------------------------------------------------------- #


@dataclass
class World:
    run: uuid.UUID
    phase: uuid.UUID
    invocation: uuid.UUID
    root: uuid.UUID
    child: uuid.UUID
    message: queue.Message
    reservation: budgets.Reservation
    question: uuid.UUID
    checkpoint: uuid.UUID
    sandbox: uuid.UUID
    snapshot: uuid.UUID
    workspace: uuid.UUID


async def make_world() -> World:
    sandbox = await sandboxes.create(SandboxSourceType.empty, "local")
    snap = await sandboxes.snapshot(sandbox.id)
    run = await runs.create_run("t", "do it", "https://example.invalid/r.git")
    phase = await runs.start_phase(run.id, FeaturePhase.analysis)
    root = await hierarchy.create_root(
        AgentType.orchestrator, "root", run_id=run.id, budgets={T: 1000}
    )
    child = await hierarchy.spawn_child(root.id, AgentType.explorer, "child", budgets={T: 100})
    invocation = await telemetry.start_invocation(run.id, phase.id, AgentType.explorer, "m")
    await telemetry.record_step(
        telemetry.StepIn(
            invocation, 0, "tool-calls", tool_calls=[telemetry.ToolCallIn("call-1", "grep")]
        )
    )
    await queue.send(root.id, "k", {"n": 1})
    [message] = await queue.claim("w", [root.id], lease=dt.timedelta(hours=1))
    reservation = await budgets.reserve(root.id, T, 10)
    question = await cta.ask(run.id, CtaKind.text, "why?")
    cp = await checkpoints.save(root.id, {"step": 1})
    await checkpoints.save(root.id, {"step": 2})
    ws = await sandboxes.allocate_workspace(root.id, "/w/1", "b1", "main", sandbox_id=sandbox.id)
    return World(
        run.id, phase.id, invocation, root.id, child.id, message, reservation, question.id,
        cp.id, sandbox.id, snap.id, ws.id,
    )  # fmt: skip


Call = tuple[tuple[Any, ...], dict[str, Any]]


def call(*args: Any, **kwargs: Any) -> Call:
    return args, kwargs


def step(w: World, number: int = 7) -> telemetry.StepIn:
    return telemetry.StepIn(
        w.invocation, number, "stop", text="hi", input_tokens=1, cost_usd=Decimal("0.01"),
        response_metadata={"id": "r"}, tool_calls=[telemetry.ToolCallIn("c7", "ls", {"a": 1})],
        started_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip


#: A valid call of each operation in a world.
GOOD: dict[str, Callable[[World], Call]] = {
    "queue.send": lambda w: call(w.root, "k", {"a": [1]}, priority=3, delay=dt.timedelta(0)),
    "queue.send_many": lambda w: call([queue.Outgoing(w.root, "k", {"a": 1}, priority=1)]),
    "queue.claim": lambda w: call(
        "w", [w.child], limit=2, lease=dt.timedelta(seconds=30), ack=[w.message]
    ),
    "queue.ack": lambda w: call(w.message, "w"),
    "queue.extend_lease": lambda w: call(w.message, "w", dt.timedelta(minutes=5)),
    "queue.release": lambda w: call([w.message], "w"),
    "queue.fail": lambda w: call(
        w.message, "w", "boom", retry=True, base_delay=dt.timedelta(seconds=1)
    ),
    "queue.cancel_pending": lambda w: call([w.child]),
    "queue.redrive": lambda w: call([1], recipient_id=w.child),
    "queue.Consumer": lambda w: call(
        [w.root], worker_id="c", batch_size=5, lease=dt.timedelta(seconds=3), poll_interval=0.5
    ),
    "budgets.reserve": lambda w: call(w.root, T, Decimal("5")),
    "budgets.commit": lambda w: call(w.reservation, 7),
    "budgets.release": lambda w: call(w.reservation),
    "budgets.charge": lambda w: call(w.root, "tokens", "3"),
    "budgets.books": lambda w: call(w.root),
    "budgets.renew": lambda w: call(
        w.reservation, dt.timedelta(minutes=5), holder=w.reservation.holder
    ),
    "budgets.get": lambda w: call(w.reservation),
    "budgets.audit": lambda w: call([w.root]),
    "hierarchy.create_root": lambda w: call(
        AgentType.orchestrator, "r2", run_id=w.run, budgets={T: 5}
    ),
    "hierarchy.spawn_child": lambda w: call(w.root, AgentType.coder, "c2", budgets={T: 5}),
    "hierarchy.finish": lambda w: call(w.child, "completed"),
    "hierarchy.get": lambda w: call(w.root),
    "hierarchy.subtree": lambda w: call(w.root, max_depth=2),
    "hierarchy.ancestors": lambda w: call(w.child),
    "runs.create_run": lambda w: call("t2", "req", "https://x.invalid/r", base_branch="dev"),
    "runs.get_run": lambda w: call(w.run),
    "runs.start_phase": lambda w: call(w.run, FeaturePhase.analysis),
    "runs.pass_phase": lambda w: call(w.phase, "done", {"ok": True}),
    "runs.fail_phase": lambda w: call(w.phase, "broke", "sum", {"why": "x"}),
    "runs.advance": lambda w: call(w.run, pr_url="https://x.invalid/pr/1", branch_name="b"),
    "runs.fail_run": lambda w: call(w.run, "gave up"),
    "runs.timeline": lambda w: call(w.run),
    "telemetry.start_invocation": lambda w: call(
        w.run, w.phase, AgentType.coder, "model-x", agent_id=w.root, input={"q": "x"}
    ),
    "telemetry.rollup_usage": lambda w: call(w.invocation),
    "telemetry.finish_invocation": lambda w: call(
        w.invocation, output=["x"], finish_reason="stop", error="e"
    ),
    "telemetry.record_step": lambda w: call(step(w)),
    "telemetry.record_tool_result": lambda w: call(
        telemetry.ToolResultIn(w.invocation, "call-1", "text", "found")
    ),
    "telemetry.ingest": lambda w: call(
        [step(w, 8)], [telemetry.ToolResultIn(w.invocation, "call-1", "json", {"k": 1})]
    ),
    "checkpoints.save": lambda w: call(
        w.root, {"step": 3, "xs": [1.5, None]}, label="l", schema_version=2
    ),
    "checkpoints.load_latest": lambda w: call(w.root),
    "checkpoints.history": lambda w: call(w.root, limit=5, before_sequence=3, with_state=True),
    "checkpoints.prune": lambda w: call(
        agent_id=w.root, keep_last=1, older_than=dt.timedelta(0), batch_size=10
    ),
    "checkpoints.get": lambda w: call(w.checkpoint),
    "cta.ask": lambda w: call(
        w.run,
        CtaKind.choice,
        "which?",
        options=["a", "b"],
        phase=FeaturePhase.analysis,
        expires_in=dt.timedelta(hours=1),
    ),
    "cta.get": lambda w: call(w.question),
    "cta.answer": lambda w: call(w.question, "because", responded_by="me"),
    "cta.wait": lambda w: call(w.question, 0.0),
    "cta.expire": lambda w: call(run_id=w.run),
    "memory.add": lambda w: call(
        w.run,
        FeaturePhase.analysis,
        MemoryKind.decision,
        "use x",
        tags=["a", "b"],
        source_invocation_id=w.invocation,
    ),
    "memory.query": lambda w: call(
        w.run,
        phases=[FeaturePhase.analysis],
        kinds=["decision"],
        any_tags=["a"],
        all_tags=["a"],
        limit=10,
    ),
    "sandboxes.create": lambda w: call(
        SandboxSourceType.git,
        "local",
        source_ref="main",
        external_id=f"x-{uuid.uuid4()}",
        config={"cpu": 2},
    ),
    "sandboxes.set_status": lambda w: call(w.sandbox, SandboxStatus.running, error="e"),
    "sandboxes.snapshot": lambda w: call(
        w.sandbox, external_id="s", size_bytes=10, metadata={"m": 1}
    ),
    "sandboxes.delete_snapshot": lambda w: call(w.snapshot),
    "sandboxes.allocate_workspace": lambda w: call(
        w.child, "/w/2", "b2", "main", sandbox_id=w.sandbox
    ),
    "sandboxes.release_workspace": lambda w: call(w.workspace, head_commit="abc123"),
}

#: Valid calls that end in a typed refusal of the world's state, not of an argument.
GOOD_REFUSAL = {"runs.advance": "phase_not_passed", "cta.wait": "cta_timeout"}


# --------------------------------------------------------------------------- #
# Bad values, by type hint
# --------------------------------------------------------------------------- #


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


def _cycle() -> list[Any]:
    xs: list[Any] = []
    xs.append(xs)
    return xs


def _deep(n: int) -> Any:
    v: Any = []
    for _ in range(n):
        v = [v]
    return v


BAD_JSON: list[tuple[str, Any]] = [
    ("set", {1, 2}), ("bytes", b"x"), ("object", Opaque()), ("Decimal NaN", Decimal("NaN")),
    ("Decimal", Decimal("1.5")), ("nan", float("nan")), ("inf", {"a": float("inf")}),
    ("-inf", [float("-inf")]), ("int key", {1: "a"}), ("tuple", ("a", "b")),
    ("NUL", {"k": "a\x00b"}), ("surrogate", "\ud800"), ("1e16", 1e16), ("cycle", _cycle()),
    ("deep", _deep(5000)), ("nested bytes", {"k": [b"x"]}),
]  # fmt: skip
BAD_AMOUNT: list[tuple[str, Any]] = [
    ("NaN", Decimal("NaN")), ("sNaN", Decimal("sNaN")), ("Infinity", Decimal("Infinity")),
    ("-Infinity", Decimal("-Infinity")), ("1e200000", Decimal("1e200000")), ("-1", -1),
    ("float", 0.5), ("float nan", float("nan")), ("float inf", float("inf")), ("bool", True),
    ("str", "abc"), ("str NaN", "NaN"), ("tiny", Decimal("1e-40")), ("huge", 10**30),
    ("object", Opaque()),
]  # fmt: skip
BAD_UUID: list[tuple[str, Any]] = [
    ("malformed", "not-a-uuid"), ("int", 12345), ("bytes", b"\x00" * 16),
    ("injection", "'; DROP TABLE agent.agents; --"), ("NUL", "\x00"),
]  # fmt: skip


def _rule(name: str) -> validation.Rule:
    return validation.RULES.get(name, validation.Rule())


def bad_values(hint: Any, name: str, good: Any, nullable: bool = False) -> list[tuple[str, Any]]:
    """The bad values for one parameter (or field) of this hint; ``good`` is its valid
    value (dataclass fields are varied one at a time from it)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return list(BAD_JSON)
    if origin in (typing.Union, UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(hint))
        out = [] if nullable else [("None", None)]
        if Decimal in members:
            return out + BAD_AMOUNT
        if any(isinstance(m, type) and issubclass(m, enum.Enum) for m in members):
            return [*out, ("unknown", "nope"), ("int", 3), ("bytes", b"stop")]
        if len(members) == 1:
            return bad_values(members[0], name, good, nullable)
        # Message | Sequence[Message]: vary the message, and give non-lists
        dc = next(m for m in members if dataclasses.is_dataclass(m))
        one = good if isinstance(good, dc) else good[0]
        return out + bad_values(dc, name, one) + [("str", "abc"), ("int", 5)]
    out = [] if nullable else [("None", None)]
    if origin in (Sequence, Iterable, list):
        (item,) = typing.get_args(hint)
        out += [("bare str", "abc"), ("bytes", b"ab"), ("mapping", {"a": 1}), ("int", 7)]
        if _rule(name).min_items:
            out.append(("empty", []))
        first = next(iter(good)) if good else None
        item_bad = [] if item is Any else bad_values(item, name, first)
        if item is Any:
            item_bad = BAD_JSON
        return out + [(f"[{label}]", [v]) for label, v in item_bad]
    if origin in (Mapping, dict):
        key, _ = typing.get_args(hint)
        out += [("list", [("tokens", 1)]), ("int", 5), ("unknown key", {"nope": 1})]
        return out + [(f"value {label}", {next(iter(key)): v}) for label, v in BAD_AMOUNT]
    if hint is uuid.UUID:
        return out + BAD_UUID
    if hint is str:
        rule = _rule(name)
        out += [("int", 42), ("bytes", b"x"), ("NUL", "a\x00b"), ("surrogate", "a\ud800")]
        if rule.max_len <= validation.MAX_TEXT:
            out.append(("too long", "x" * (rule.max_len + 1)))
        if name not in ("payload_json",):
            out.append(("10 MB", "y" * 10_000_000))
        if not rule.blank_ok:
            out += [("empty", ""), ("whitespace", " \t\n")]
        return out
    if hint is bool:
        return [*out, ("int", 1), ("str", "yes")]
    if hint is int:
        rule = _rule(name)
        out += [("bool", True), ("float", 1.5), ("str", "1"), ("huge", 2**64)]
        if rule.lo is not None:
            out.append(("below", int(rule.lo) - 1))
        if rule.hi is not None:
            out.append(("above", int(rule.hi) + 1))
        return out
    if hint is float:
        rule = _rule(name)
        out += [("nan", float("nan")), ("inf", float("inf")), ("-1", -1.0), ("bool", True),
                ("str", "1")]  # fmt: skip
        if rule.lo:
            out.append(("zero", 0))
        return out
    if hint is Decimal:
        return out + BAD_AMOUNT
    if hint is dt.timedelta:
        rule = _rule(name)
        out += [("negative", dt.timedelta(seconds=-1)), ("int", 5), ("str", "1s"),
                ("millennia", dt.timedelta(days=365_000))]  # fmt: skip
        if rule.lo:
            out.append(("zero", dt.timedelta(0)))
        return out
    if hint is dt.datetime:
        return [*out, ("naive", dt.datetime(2030, 1, 1)), ("str", "2030-01-01T00:00:00Z")]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [*out, ("unknown", "nope"), ("int", 3)]
    if dataclasses.is_dataclass(hint):
        assert isinstance(good, hint), (name, good)
        hints = typing.get_type_hints(hint)
        out += [("dict", dataclasses.asdict(good)), ("str", "x")]
        for field in validation.checked_fields(hint):
            for label, v in bad_values(hints[field], field, getattr(good, field)):
                out.append((f".{field}={label}", dataclasses.replace(good, **{field: v})))
        return out
    raise AssertionError(f"no bad values for {name}: {hint!r}")


def callable_of(op: str) -> Callable[..., Any]:
    return queue.Consumer if op == "queue.Consumer" else public_operations()[op]


def cases(op: str, fn: Callable[..., Any], good: Call) -> list[tuple[str, Call]]:
    """(label, call) for every bad value of every parameter of ``op``."""
    hints = typing.get_type_hints(inspect.unwrap(public_operations()[op]))
    sig = inspect.signature(fn)
    bound = sig.bind(*good[0], **good[1])
    bound.apply_defaults()
    out: list[tuple[str, Call]] = [("unknown keyword", (good[0], {**good[1], "bogus": 1}))]
    for name, value in bound.arguments.items():
        if name in ("self", "conn"):
            continue
        for label, bad in bad_values(hints[name], name, value):
            args = dict(bound.arguments)
            args[name] = bad
            b = sig.bind(**args)
            out.append((f"{name}={label}", (b.args, b.kwargs)))
    return out


# --------------------------------------------------------------------------- #
# What "nothing changed" looks at: the world's rows, and row counts where an insert
# could land outside it.
# --------------------------------------------------------------------------- #

STATE = """
WITH ag AS (SELECT id FROM agent.agents WHERE run_id = $1),
     inv AS (SELECT id FROM agent.agent_invocations WHERE run_id = $1)
SELECT json_build_object(
  'run', (SELECT json_agg(t) FROM agent.feature_runs t WHERE id = $1),
  'runs', (SELECT count(*) FROM agent.feature_runs),
  'phases', (SELECT json_agg(t ORDER BY id) FROM agent.phase_results t WHERE run_id = $1),
  'invocations', (SELECT json_agg(t ORDER BY id) FROM agent.agent_invocations t
                   WHERE run_id = $1),
  'steps', (SELECT json_agg(t ORDER BY id) FROM agent.agent_steps t
             WHERE invocation_id IN (SELECT id FROM inv)),
  'tool_calls', (SELECT json_agg(t ORDER BY id) FROM agent.tool_calls t
                  WHERE invocation_id IN (SELECT id FROM inv)),
  'memory', (SELECT json_agg(t ORDER BY id) FROM agent.memory_records t WHERE run_id = $1),
  'cta', (SELECT json_agg(t ORDER BY id) FROM agent.cta_events t WHERE run_id = $1),
  'agents', (SELECT json_agg(t ORDER BY id) FROM agent.agents t WHERE run_id = $1),
  'all_agents', (SELECT count(*) FROM agent.agents),
  'budgets', (SELECT json_agg(t ORDER BY id) FROM agent.budgets t
               WHERE agent_id IN (SELECT id FROM ag)),
  'messages', (SELECT json_agg(t ORDER BY id) FROM agent.messages t
                WHERE recipient_id IN (SELECT id FROM ag)),
  'all_messages', (SELECT count(*) FROM agent.messages),
  'workspaces', (SELECT json_agg(t ORDER BY id) FROM agent.workspaces t
                  WHERE agent_id IN (SELECT id FROM ag)),
  'checkpoints', (SELECT json_agg(t ORDER BY id) FROM agent.checkpoints t
                   WHERE agent_id IN (SELECT id FROM ag)),
  'all_checkpoints', (SELECT count(*) FROM agent.checkpoints),
  'sandbox', (SELECT json_agg(t) FROM agent.sandboxes t WHERE id = $2),
  'sandboxes', (SELECT count(*) FROM agent.sandboxes),
  'snapshots', (SELECT json_agg(t ORDER BY id) FROM agent.sandbox_snapshots t
                 WHERE sandbox_id = $2)
)::text
"""


async def state(w: World) -> str:
    return str(await db.fetchval(STATE, w.run, w.sandbox))


async def invoke(fn: Callable[..., Any], c: Call) -> Any:
    result = fn(*c[0], **c[1])
    if isinstance(result, Awaitable):
        return await asyncio.wait_for(result, GUARD)
    return result


def test_every_public_operation_has_cases() -> None:
    ops = public_operations()
    assert sorted(ops) == sorted(GOOD), "a public operation without a good call (or gone)"
    for name, fn in ops.items():
        assert validation.is_validated(fn), f"{name} is not @validated"


@pytest.mark.parametrize("op", sorted(GOOD))
async def test_bad_input_is_refused_typed_and_changes_nothing(op: str) -> None:
    fn = callable_of(op)
    w = await make_world()
    good = GOOD[op](w)
    before = await state(w)
    failures = []
    table = cases(op, fn, good)
    assert len(table) > 3
    for label, c in table:
        try:
            await invoke(fn, c)
        except AgentAppError as e:
            if isinstance(e, InvalidArgument) and e.rule != "arguments":
                assert e.parameter.split(".")[0].split("[")[0].split(" ")[0] in (
                    label.split("=")[0],
                    label.split("=")[0].lstrip("."),
                ), (op, label, str(e))
        except TimeoutError:
            failures.append(f"{label}: hung for {GUARD} s")
        except Exception as e:
            failures.append(f"{label}: raw {type(e).__name__}: {str(e)[:200]}")
        else:
            failures.append(f"{label}: accepted")
        if await state(w) != before:
            failures.append(f"{label}: changed the database")
            before = await state(w)
    assert not failures, f"{op}:\n" + "\n".join(failures)
    # The valid call itself is accepted: the refusals came from the bad values.
    try:
        await invoke(fn, good)
    except AgentAppError as e:
        assert GOOD_REFUSAL.get(op) == e.rule, f"{op} good call refused: {e}"
    else:
        assert op not in GOOD_REFUSAL


# --------------------------------------------------------------------------- #
# Regressions named in issue 12
# --------------------------------------------------------------------------- #


async def test_nan_and_infinity_are_never_budgets() -> None:
    w = await make_world()
    before = await state(w)
    for amount in (float("nan"), float("inf"), Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(InvalidArgument) as err:
            await hierarchy.create_root(AgentType.orchestrator, "r", run_id=w.run,
                                        budgets={T: amount})  # fmt: skip
        assert err.value.parameter.startswith("budgets")
        with pytest.raises(InvalidArgument):
            await budgets.reserve(w.root, T, amount)
    with pytest.raises(InvalidArgument) as huge:
        await budgets.reserve(w.root, T, Decimal("1e200000"))
    assert huge.value.rule == "budget_limits"
    assert await state(w) == before
    # Whoever writes: the database refuses NaN and Infinity in every numeric column.
    for value in ("NaN", "Infinity", "-Infinity"):
        for sql, args in (
            ("UPDATE agent.budgets SET allocated = $2::numeric WHERE agent_id = $1", (w.root,)),
            ("UPDATE agent.agent_invocations SET cost_usd = $2::numeric WHERE id = $1",
             (w.invocation,)),
            ("UPDATE agent.agent_steps SET cost_usd = $2::numeric WHERE invocation_id = $1",
             (w.invocation,)),
        ):  # fmt: skip
            with pytest.raises(AgentAppError) as refused:
                await db.execute(sql, *args, value)
            assert refused.value.rule in ("budget_numbers_finite", "cost_usd_finite",
                                          "budget_limits", "usage_non_negative")  # fmt: skip
    assert await state(w) == before


async def test_a_checkpoint_that_would_not_round_trip_is_refused() -> None:
    w = await make_world()
    before = await state(w)
    for state_ in ({"seen": {1, 2}}, {"blob": b"\x00"}, {"x": Decimal("NaN")}, {"t": (1, 2)}):
        with pytest.raises(InvalidArgument) as err:
            await checkpoints.save(w.root, state_)
        assert err.value.rule == "json_round_trip" and err.value.parameter.startswith("state")
    assert await state(w) == before
    exact = {"a": [1, 2.5, None, True, "é"], "b": {"c": -3}, "big": 10**20}
    saved = await checkpoints.save(w.root, exact)
    loaded = await checkpoints.load_latest(w.root)
    assert loaded is not None and loaded.id == saved.id and loaded.state == exact


async def test_prune_with_a_bad_batch_size_deletes_nothing() -> None:
    w = await make_world()
    for n in range(3, 8):
        await checkpoints.save(w.root, {"step": n})
    before = await state(w)
    for bad in (None, 0, -1, 1.5):
        with pytest.raises(InvalidArgument) as err:
            await asyncio.wait_for(
                checkpoints.prune(agent_id=w.root, keep_last=1, batch_size=bad), GUARD
            )
        assert err.value.parameter == "batch_size"
    assert await state(w) == before
    assert await checkpoints.prune(agent_id=w.root, keep_last=1, batch_size=2) == 6


async def test_loops_are_bounded_up_front() -> None:
    w = await make_world()
    for kwargs in (
        {"batch_size": 0}, {"lease": dt.timedelta(0)}, {"lease": dt.timedelta(seconds=-1)},
        {"poll_interval": 0}, {"poll_interval": float("nan")},
    ):  # fmt: skip
        with pytest.raises(InvalidArgument):
            queue.Consumer([w.root], **kwargs)
    with pytest.raises(InvalidArgument) as empty:
        queue.Consumer([])
    assert empty.value.parameter == "recipients"
    for timeout in (float("nan"), float("inf"), -1.0):
        with pytest.raises(InvalidArgument) as err:
            await asyncio.wait_for(cta.wait(w.question, timeout), GUARD)
        assert err.value.parameter == "timeout"


async def test_quiet_coercions_are_gone() -> None:
    w = await make_world()
    with pytest.raises(InvalidArgument) as tags:
        await memory.add(w.run, FeaturePhase.analysis, MemoryKind.decision, "c", tags="abc")
    assert tags.value.rule == "list_not_str"
    with pytest.raises(InvalidArgument):
        await cta.ask(w.run, CtaKind.choice, "which?", options="abc")
    with pytest.raises(InvalidArgument):
        await memory.query(w.run, any_tags="abc")
    forged = dataclasses.replace(w.reservation, amount=Decimal(-5))
    with pytest.raises(InvalidArgument):
        await budgets.release(forged)
    with pytest.raises(InvalidArgument):
        await queue.fail(w.message, "w", "e", retry=None)  # type: ignore[arg-type]
    # Valid forms are accepted: a resource by its value, an id in its string form.
    await budgets.charge(w.root, "tokens", 1)
    assert (await hierarchy.finish(str(w.child))).agent.id == w.child


async def test_an_expired_lease_is_lost_before_anyone_reclaims() -> None:
    """Decision (issue 12, item 5): a lease holds until lease_expires_at by the
    database's clock; after that, ack/fail/release/extend_lease by the holder raise
    LeaseLost and change nothing, even though nobody has re-claimed the message."""
    w = await make_world()
    await queue.send(w.child, "k")
    [m] = await queue.claim("slow", [w.child], lease=dt.timedelta(milliseconds=50))

    async def expired() -> bool:
        return bool(await db.fetchval("SELECT now() > $1::timestamptz", m.lease_expires_at))

    async def until_expired() -> None:
        while not await expired():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until_expired(), GUARD)
    row = "SELECT status, claimed_by, attempts, lease_expires_at FROM agent.messages WHERE id = $1"
    before = await db.fetchrow(row, m.id)
    assert before is not None and before["status"] == "claimed"
    for act in (
        lambda: queue.ack(m, "slow"),
        lambda: queue.fail(m, "slow", "late"),
        lambda: queue.release(m, "slow"),
        lambda: queue.extend_lease(m, "slow", dt.timedelta(hours=1)),
    ):
        with pytest.raises(LeaseLost) as lost:
            await act()
        assert lost.value.message_ids == [m.id]
        assert await db.fetchrow(row, m.id) == before
    # The next claim requeues and hands it out again under a new attempt.
    [again] = await queue.claim("fresh", [w.child])
    assert again.id == m.id and again.attempts == m.attempts + 1
    await queue.ack(again, "fresh")


async def test_translate_names_every_data_error() -> None:
    cases_ = [
        ("INSERT INTO agent.feature_runs (title, request, repo_url) VALUES (NULL, 'r', 'u')",
         "feature_runs_title_not_null"),
        ("SELECT 'abc'::int", "invalid_text_representation"),
        ("SELECT 1e400::float8", "numeric_out_of_range"),
        ("INSERT INTO agent.sandboxes (source_type, provider) VALUES ('empty', repeat('x', 300))",
         "value_too_long"),
        ("SELECT convert_from('\\x00'::bytea, 'UTF8')", "invalid_encoding"),
        ("SELECT now() + interval '300000 years'", "datetime_out_of_range"),
        ("SELECT ('\"\\u0000\"'::jsonb) #>> '{}'", "untranslatable_character"),
    ]  # fmt: skip
    for sql, rule in cases_:
        with pytest.raises(AgentAppError) as err:
            await db.fetchval(sql)
        assert err.value.rule == rule, (sql, str(err.value))
    with pytest.raises(InvalidArgument) as arg:
        await db.fetchval("SELECT $1::int", "not an int")
    assert arg.value.rule == "query_argument"
    # COPY's own errors name the table, the column and the row.
    w = await make_world()
    with pytest.raises(InvalidArgument) as copy:
        async with db.transaction() as c:
            await c.copy_records_to_table(
                "agent_steps", schema_name="agent",
                columns=("id", "invocation_id", "step_number", "finish_reason",
                         "raw_finish_reason"),
                records=[(uuid.uuid4(), w.invocation, 40, "stop", "ok"),
                         (uuid.uuid4(), w.invocation, 41, "stop", "x" * 300)],
            )  # fmt: skip
    assert copy.value.rule == "value_too_long"
    assert copy.value.parameter == "agent_steps.raw_finish_reason", str(copy.value)
    assert "row 1" in str(copy.value)


async def test_a_bad_message_in_a_batch_is_named_by_its_place_and_nothing_is_acked() -> None:
    """A worker acking a batch learns which message of it is bad (its index and field),
    and the batch stays claimed; a str is not a batch of messages."""
    w = await make_world()
    await queue.send(w.root, "k", {"n": 2})
    [other] = await queue.claim("w", [w.root], lease=dt.timedelta(hours=1))
    bad = dataclasses.replace(other, id=1 << 64)
    with pytest.raises(InvalidArgument) as err:
        await queue.ack([w.message, bad], "w")
    assert err.value.rule == "id_range" and err.value.parameter == "messages[1].id"
    with pytest.raises(InvalidArgument) as err:
        await queue.ack([w.message, dataclasses.replace(other, attempts=0)], "w")
    assert err.value.rule == "attempts_range" and err.value.parameter == "messages[1].attempts"
    with pytest.raises(InvalidArgument) as err:
        await queue.ack("not messages", "w")  # type: ignore[arg-type]
    assert err.value.rule == "list_not_str"
    # Nothing was acked: both are still held, and the good batch acks - by identity
    # (id, attempts, worker): the fields a worker may have changed on its copy of a
    # message (it is documented read-only) never reach the database.
    await queue.ack([w.message, dataclasses.replace(other, kind="", payload_json="")], "w")
    assert {m.id for m in await queue.claim("w", [w.root], limit=10)}.isdisjoint(
        {w.message.id, other.id}
    )
