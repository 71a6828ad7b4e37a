"""The operator's console: server-rendered pages next to Piccolo Admin.

* ``/``: the dashboard (runs by phase, queue depth, dead messages, stuck leases, open
  questions, cost per day and per model, slowest phases).
* ``/runs``: runs newest first with cost, tokens, duration, agents and error;
  ``/runs/<id>``: one run (totals, phases, trace, agent tree with budgets, questions,
  messages); ``/runs/<id>/invocations/<id>``: every step of one invocation with its
  tool calls and results, paged.
* ``/steps``, ``/tool-calls``, ``/budgets``, ``/messages``: read-only lists, newest
  first, filterable by run (``?run=<id>``).
* Actions (POST): answer a question, redrive dead messages, release a stuck lease,
  cancel a run. Each calls :mod:`agent_app.operator` (the worker API), and the
  operator sees the rule's name when one refuses.

Only an admin session gets in (piccolo-api's ``SessionsAuthBackend``, the admin's own
sessions); POSTs need the CSRF token, checked by the admin's CSRF middleware (the
console is mounted inside the admin app, see :func:`agent_app.admin.create_app`), and
the console refuses a POST that did not pass through it. Every page is paged, so a run
with 10,000 steps costs the same as one with ten.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import asyncpg
from jinja2 import Environment, PackageLoader, select_autoescape
from piccolo.apps.user.tables import BaseUser
from piccolo_api.session_auth.middleware import SessionsAuthBackend
from piccolo_api.session_auth.tables import SessionsBase
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent_app import db, operator
from agent_app.console.queries import sql
from agent_app.enums import FeaturePhase, MessageStatus, ToolOutputType
from agent_app.errors import AgentAppError

NONE = "\u2013"  # an en dash: shown where a value is absent (not reported, not yet)
PAGE = 50  # rows per list page
STEPS_PAGE = 50  # steps per trace page
INVOCATIONS_PAGE = 100  # invocations per run page


# --------------------------------------------------------------------------- #
# Formatting: numbers plainly (400,000 not 4.0E+5), money, durations, times
# --------------------------------------------------------------------------- #


def num(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, Decimal | float):
        if value == value.to_integral_value() if isinstance(value, Decimal) else value.is_integer():
            return f"{int(value):,}"
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return f"{value:,}"


def usd(value: Any) -> str:
    if value is None:
        return NONE
    return f"${Decimal(value):,.4f}"


def duration(seconds: Any) -> str:
    if seconds is None:
        return NONE
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def when(value: dt.datetime | None) -> str:
    return NONE if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def short_json(value: str | None, limit: int = 240) -> str:
    if value is None:
        return NONE
    text = json.dumps(json.loads(value), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("agent_app.console", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters.update(num=num, usd=usd, duration=duration, when=when, short_json=short_json)
    env.globals.update(phases=[p.value for p in FeaturePhase], loads=db.loads)
    return env


ENV = _env()


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _roots(request: HTTPConnection) -> tuple[str, str]:
    """(console root, admin root) as mounted: links work under any prefix."""
    root = request.scope.get("root_path", "").rstrip("/")
    admin = root[: -len("/console")] if root.endswith("/console") else ""
    return root, admin


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    root, admin = _roots(request)
    page = ENV.get_template(template).render(
        root=root,
        admin=admin,
        request=request,
        csrftoken=request.scope.get("csrftoken") or request.cookies.get("csrftoken", ""),
        user=request.user.display_name,
        notice=request.query_params.get("notice"),
        error=request.query_params.get("error"),
        **context,
    )
    return HTMLResponse(page)


def _page(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and int(raw) >= 1 else 1


def _uuid(raw: str | None) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _choice(raw: str | None, allowed: list[str]) -> str | None:
    return raw if raw in allowed else None


class Pager:
    """Which page of ``total`` rows is shown, and the links to its neighbours."""

    def __init__(self, request: Request, total: int, size: int, param: str = "page") -> None:
        self.request, self.total, self.size, self.param = request, total, size, param
        raw = request.query_params.get(param, "1")
        self.pages = max(1, math.ceil(total / size))
        self.number = min(int(raw), self.pages) if raw.isdigit() and int(raw) >= 1 else 1
        self.offset = (self.number - 1) * size

    def link(self, number: int) -> str:
        params = dict(self.request.query_params)
        params[self.param] = str(number)
        for key in ("notice", "error"):
            params.pop(key, None)
        return f"?{urlencode(params)}"


def _back(
    request: Request, form: Any, notice: str | None = None, error: str | None = None
) -> Response:
    """303 back to the page the form came from (only a page of this console)."""
    root, _ = _roots(request)
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    target = target.split("?")[0]
    query = urlencode({k: v for k, v in (("notice", notice), ("error", error)) if v})
    return RedirectResponse(f"{root}{target}" + (f"?{query}" if query else ""), status_code=303)


async def _form(request: Request) -> Any:
    if "csrftoken" not in request.scope:  # only the admin's CSRF middleware sets it
        raise _Refused("csrf_required: the console must be mounted inside the admin app")
    # The CSRF middleware read the form to find the token, and kept it for us.
    return request.scope.get("form") or await request.form()


class _Refused(Exception):
    pass


# --------------------------------------------------------------------------- #
# Pages
# --------------------------------------------------------------------------- #


async def dashboard(request: Request) -> Response:
    async with db.connection() as c:
        context = {
            "by_phase": await c.fetch(sql("runs_by_phase")),
            "queue": await c.fetch(sql("queue_depth")),
            "stuck": await c.fetchval(sql("stuck_leases")),
            "questions": await c.fetch(sql("open_questions"), 20),
            "per_day": await c.fetch(sql("cost_per_day"), 14),
            "per_model": await c.fetch(sql("cost_per_model")),
            "slowest": await c.fetch(sql("slowest_phases")),
            "recent": await c.fetch(sql("runs"), None, 10, 0),
        }
    dead = next((r["messages"] for r in context["queue"] if r["status"] == "dead"), 0)
    return render(request, "dashboard.html", dead=dead, **context)


async def run_list(request: Request) -> Response:
    phase = _choice(request.query_params.get("phase"), [p.value for p in FeaturePhase])
    async with db.connection() as c:
        pager = Pager(request, await c.fetchval(sql("count_runs"), phase), PAGE)
        rows = await c.fetch(sql("runs"), phase, PAGE, pager.offset)
    return render(request, "runs.html", rows=rows, pager=pager, phase=phase)


async def run_page(request: Request) -> Response:
    run_id = _uuid(request.path_params["run_id"])
    async with db.connection() as c:
        run = await c.fetchrow(sql("run"), run_id) if run_id else None
        if run is None:
            return render(request, "missing.html", what="run")
        pager = Pager(
            request, await c.fetchval(sql("count_run_invocations"), run_id),
            INVOCATIONS_PAGE, "invocations",
        )  # fmt: skip
        invocations = await c.fetch(sql("run_invocations"), run_id, INVOCATIONS_PAGE, pager.offset)
        message_count = await c.fetchval(sql("count_messages"), run_id, None)
        context = {
            "run": run,
            "totals": await c.fetchrow(sql("run_totals"), run_id),
            "phases": await c.fetch(sql("run_phases"), run_id),
            "agents": await c.fetch(sql("run_agents"), run_id),
            "questions": await c.fetch(sql("run_questions"), run_id),
            "messages": await c.fetch(sql("messages"), run_id, None, PAGE, 0),
        }
    by_phase: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for inv in invocations:
        by_phase.setdefault(inv["phase_result_id"], []).append(inv)
    return render(
        request, "run.html", by_phase=by_phase, pager=pager, message_count=message_count,
        over=run["current_phase"] in ("completed", "failed"), **context,
    )  # fmt: skip


async def invocation_page(request: Request) -> Response:
    run_id = _uuid(request.path_params["run_id"])
    inv_id = _uuid(request.path_params["invocation_id"])
    async with db.connection() as c:
        inv = await c.fetchrow(sql("invocation"), inv_id, run_id) if run_id and inv_id else None
        if inv is None:
            return render(request, "missing.html", what="invocation")
        run = await c.fetchrow(sql("run"), run_id)
        pager = Pager(request, inv["steps"], STEPS_PAGE)
        steps = await c.fetch(sql("invocation_steps"), inv_id, STEPS_PAGE, pager.offset)
        calls = await c.fetch(sql("steps_tool_calls"), [s["id"] for s in steps])
    by_step: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for call in calls:
        by_step.setdefault(call["step_id"], []).append(call)
    return render(request, "invocation.html", run=run, inv=inv, steps=steps, by_step=by_step,
                  pager=pager)  # fmt: skip


def _list(kind: str, *, status_choices: list[str] | None = None) -> Any:
    async def page(request: Request) -> Response:
        run_id = _uuid(request.query_params.get("run"))
        status = _choice(request.query_params.get("status"), status_choices or [])
        extra = (status,) if status_choices is not None else ()
        async with db.connection() as c:
            pager = Pager(request, await c.fetchval(sql(f"count_{kind}"), run_id, *extra), PAGE)
            rows = await c.fetch(sql(kind), run_id, *extra, PAGE, pager.offset)
            run = await c.fetchrow(sql("run"), run_id) if run_id else None
        return render(request, f"{kind}.html", rows=rows, pager=pager, run=run, status=status,
                      status_choices=status_choices or [])  # fmt: skip

    return page


# --------------------------------------------------------------------------- #
# Actions: each one call to agent_app.operator; refusals shown with their rule
# --------------------------------------------------------------------------- #


async def _act(request: Request, action: Any) -> Response:
    try:
        form = await _form(request)
    except _Refused as refused:
        return PlainTextResponse(str(refused), status_code=403)
    try:
        notice = await action(form)
    except AgentAppError as refused:
        return _back(request, form, error=str(refused))
    except (ValueError, KeyError) as bad:
        return _back(request, form, error=f"bad_request: {bad}")
    return _back(request, form, notice=notice)


async def answer(request: Request) -> Response:
    async def act(form: Any) -> str:
        question_id = uuid.UUID(request.path_params["question_id"])
        q = await operator.answer_question(
            question_id, str(form.get("answer", "")), operator=request.user.display_name
        )
        return f"answered: {q.prompt} → {json.dumps(q.response)}"

    return await _act(request, act)


async def redrive(request: Request) -> Response:
    async def act(form: Any) -> str:
        ids = [int(i) for i in form.getlist("message_id")]
        if not ids:
            raise ValueError("choose the dead messages to redrive")
        return f"redriven: {await operator.redrive(ids)} of {len(ids)} message(s) back to pending"

    return await _act(request, act)


async def release(request: Request) -> Response:
    async def act(form: Any) -> str:
        message_id = int(request.path_params["message_id"])
        held = await operator.release_lease(message_id)
        return f"released: message {message_id} taken from {held.claimed_by}, pending again"

    return await _act(request, act)


async def cancel(request: Request) -> Response:
    async def act(form: Any) -> str:
        run_id = uuid.UUID(request.path_params["run_id"])
        reason = str(form.get("reason") or "").strip() or "cancelled by an operator"
        done = await operator.cancel_run(run_id, f"{reason} ({request.user.display_name})")
        return (
            f"cancelled: run is {done.run.current_phase.value}; {done.agents_finished} agent(s) "
            f"finished, {done.invocations_closed} invocation(s) closed, "
            f"{done.questions_closed} question(s) closed, "
            f"{done.workspaces_released} workspace(s) released"
        )

    return await _act(request, act)


# --------------------------------------------------------------------------- #
# The app
# --------------------------------------------------------------------------- #


def _on_auth_error(conn: HTTPConnection, exc: Exception) -> Response:
    """A person is sent to the admin's login; a script gets 401."""
    _, admin = _roots(conn)
    if conn.scope.get("method") in ("GET", "HEAD"):
        return RedirectResponse(f"{admin}/#/login", status_code=303)
    return PlainTextResponse("auth_required: log in as an admin user", status_code=401)


def create_console(
    *,
    auth_table: type[BaseUser] = BaseUser,
    session_table: type[SessionsBase] = SessionsBase,
    increase_expiry: dt.timedelta | None = dt.timedelta(minutes=20),
) -> Starlette:
    """The console ASGI app; mount it at ``/console`` inside the admin app."""
    routes = [
        Route("/", dashboard),
        Route("/runs", run_list),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/invocations/{invocation_id}", invocation_page),
        Route("/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/steps", _list("steps")),
        Route("/tool-calls", _list("tool_calls", status_choices=[t.value for t in ToolOutputType])),
        Route("/budgets", _list("budgets")),
        Route("/messages", _list("messages", status_choices=[s.value for s in MessageStatus])),
        Route("/messages/redrive", redrive, methods=["POST"]),
        Route("/messages/{message_id:int}/release", release, methods=["POST"]),
        Route("/questions/{question_id}/answer", answer, methods=["POST"]),
    ]
    backend = SessionsAuthBackend(
        auth_table=auth_table, session_table=session_table, admin_only=True,
        increase_expiry=increase_expiry,
    )  # fmt: skip
    return Starlette(
        routes=routes,
        middleware=[Middleware(AuthenticationMiddleware, backend=backend, on_error=_on_auth_error)],
    )
