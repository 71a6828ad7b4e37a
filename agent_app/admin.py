"""The operator's view: the console (``/console/``) and Piccolo Admin over the tables
(including the framework integrations' LangGraph threads and Agents SDK session items).

The console (:mod:`agent_app.console`) is the run-centric view and the home page: the
admin's empty home (``#/``) opens it, and the sidebar links to its pages. Piccolo Admin
stays for browsing and editing rows: grouped (pipeline, hierarchy, telemetry), newest
first, readable row names, useful visible columns and filters, enum columns shown as
choices. History rows (steps, tool calls, checkpoints) and budget reservations (the
rows the books are kept from) are read-only: the API refuses
writes to them with 405 and the UI shows no add, save or delete buttons for them. The
closure table is not listed (the run page shows the agent tree). Only logged-in users
with ``admin`` set get in (Piccolo's session auth, CSRF
enforced, passwords hashed by ``BaseUser``, off the event loop). Logins are throttled
per account and address, bad list parameters get 400, CSV exports neutralise formulas,
and ``production`` makes every cookie ``Secure`` (see :mod:`agent_app.admin_security`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pydantic
from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.crud.endpoints import OrderBy
from piccolo_api.crud.validators import Validators
from piccolo_api.fastapi.endpoints import FastAPIWrapper
from piccolo_api.rate_limiting.middleware import RateLimitProvider
from piccolo_api.session_auth.tables import SessionsBase
from starlette.exceptions import HTTPException

from agent_app.admin_security import (
    THROTTLE,
    AdminConfigError,
    AdminUser,
    LoginGuard,
    LoginThrottle,
    NeutralisedCsvExport,
    SecureCookies,
    behind_proxies,
)
from agent_app.console import create_console
from agent_app.tables import (
    Agent,
    AgentInvocation,
    AgentStep,
    Budget,
    BudgetReservation,
    Checkpoint,
    CtaEvent,
    FeatureRun,
    GraphThread,
    MemoryRecord,
    Message,
    PhaseResult,
    Sandbox,
    SandboxSnapshot,
    SessionItem,
    ToolCall,
    Workspace,
)

PIPELINE, HIERARCHY, TELEMETRY = "Pipeline", "Hierarchy", "Telemetry"
FRAMEWORKS = "Frameworks"


@contextlib.contextmanager
def _openapi_without_the_request_column() -> Iterator[None]:
    """While the admin builds its endpoints, leave the contract's ``feature_runs.request``
    column out of their OpenAPI signatures; piccolo-api is as it was afterwards.

    piccolo-api 1.11 gives each generated FastAPI endpoint a ``request`` parameter and
    one query parameter per column, so a column named ``request`` makes the signature
    invalid ("duplicate parameter name"). That signature only feeds the OpenAPI docs
    (the CRUD layer reads filters from the request itself).

    Not ``db_column_name``: piccolo 1.38's ``create_pydantic_model`` aliases a renamed
    column to its database name while piccolo-api keys writes and filters by the
    attribute name, so with ``request_text = Text(db_column_name="request")`` the
    admin's edit form shows the request empty and every save of a run is refused
    ("Unrecognised keys - {'request'}"), a PATCH naming ``request_text`` writes NULL,
    and ``?request_text=`` filters match nothing (checked in a browser).
    """
    original = FastAPIWrapper.__dict__["modify_signature"]
    signature = original.__func__

    def modify_signature(endpoint: Any, model: Any, http_method: Any, **kwargs: Any) -> Any:
        if "request" in model.model_fields:
            fields = {
                name: (field.annotation, field)
                for name, field in model.model_fields.items()
                if name != "request"
            }
            model = pydantic.create_model(model.__name__, **fields)  # type: ignore[call-overload]
        return signature(endpoint, model, http_method, **kwargs)

    FastAPIWrapper.modify_signature = staticmethod(modify_signature)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        FastAPIWrapper.modify_signature = original  # type: ignore[method-assign]


def _history_is_read_only(piccolo_crud: Any, request: Any) -> None:
    raise HTTPException(
        status_code=405, detail="admin_read_only: history rows are read-only in the admin"
    )


#: The largest ``__page`` the list API accepts (offsets stay far from bigint's range).
MAX_PAGE = 1_000_000


def _list_parameters_are_valid(piccolo_crud: Any, request: Any) -> None:
    """400, not 500, for an unknown ``__order`` column or a page number out of range."""
    params = request.query_params
    for raw in params.getlist("__order"):
        for name in raw.split(","):
            try:
                piccolo_crud._get_column(column_name=name.removeprefix("-"))
            except (ValueError, AttributeError, KeyError):
                raise HTTPException(
                    status_code=400, detail=f"__order: no column {name[:100]!r}"
                ) from None
    for key, upper in (("__page", MAX_PAGE), ("__page_size", piccolo_crud.max_page_size)):
        for raw in params.getlist(key):
            try:
                value = int(raw)
            except ValueError:
                value = 0
            if not 1 <= value <= upper:
                raise HTTPException(
                    status_code=400, detail=f"{key}: {raw[:40]!r} is not between 1 and {upper}"
                )


def _validators(*, read_only: bool = False) -> Validators:
    refuse: list[Any] = [_history_is_read_only] if read_only else []
    return Validators(
        every=[_list_parameters_are_valid],
        post_single=refuse,
        put_single=refuse,
        patch_single=refuse,
        delete_single=refuse,
        delete_all=refuse,
    )


READ_ONLY = _validators(read_only=True)
CHECKED = _validators()


class _NoPiccoloRateLimit(RateLimitProvider):
    """piccolo-admin's own limit blocks an address (behind a proxy: everyone) after 20
    requests until restart; :class:`~agent_app.admin_security.LoginGuard` replaces it."""

    def increment(self, identifier: str) -> None:
        return None


#: Tables whose rows are history: read-only in the API and without edit buttons in the UI.
READ_ONLY_TABLES = ("agent_steps", "tool_calls", "checkpoints", "budget_reservations")


def _newest(column: Any) -> list[OrderBy]:
    return [OrderBy(column, ascending=False)]


CONSOLE_LINKS = {
    "Dashboard": "./console/",
    "Runs": "./console/runs",
    "Steps (by run)": "./console/steps",
    "Tool calls (by run)": "./console/tool-calls",
    "Budgets (by run)": "./console/budgets",
    "Messages (by run)": "./console/messages",
}

# The admin's single page, told: its empty home opens the console's dashboard, a run's
# page links to the console's run page, read-only tables show no add/save/delete.
_ADMIN_PAGE_ADDITIONS = r"""
<style>
  html.agent-read-only a[href$="/add/"], html.agent-read-only [data-uitest=save_button],
  html.agent-read-only [data-uitest=delete_row_button] { display: none !important; }
  #agent-run-link { position: fixed; top: 10px; right: 180px; z-index: 1000; padding: 6px 12px;
    background: #3056d3; color: #fff; border-radius: 5px; text-decoration: none;
    font: 14px system-ui, sans-serif; }
</style>
<script>
(function () {
  var readOnly = %(read_only)s;
  function mark() {
    var hash = location.hash || "#/";
    if (hash === "#/" || hash === "#") { location.replace("./console/"); return; }
    var table = (hash.match(/^#\/([^/?]+)/) || [])[1] || "";
    document.documentElement.classList.toggle("agent-read-only", readOnly.indexOf(table) >= 0);
    var run = hash.match(/^#\/feature_runs\/([0-9a-f-]{36})\//);
    var link = document.getElementById("agent-run-link");
    if (!run) { if (link) link.remove(); return; }
    if (!link) {
      link = document.createElement("a");
      link.id = "agent-run-link";
      document.body.appendChild(link);
    }
    link.href = "./console/runs/" + run[1];
    link.textContent = "Open the run page: trace, agents, budgets \u2192";
  }
  // The admin's router moves with history.pushState/replaceState, which fire no event.
  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      setTimeout(mark, 0);
      return result;
    };
  });
  addEventListener("hashchange", mark);
  addEventListener("popstate", mark);
  document.addEventListener("DOMContentLoaded", mark);
  mark();
})();
</script>
"""


def table_configs() -> list[TableConfig]:
    return [
        TableConfig(FeatureRun, menu_group=PIPELINE,
                    order_by=_newest(FeatureRun.created_at), validators=CHECKED,
                    link_column=FeatureRun.title,
                    visible_columns=[FeatureRun.title, FeatureRun.current_phase,
                                     FeatureRun.repo_url, FeatureRun.pr_url,
                                     FeatureRun.created_at, FeatureRun.completed_at],
                    visible_filters=[FeatureRun.current_phase, FeatureRun.title,
                                     FeatureRun.sandbox_id]),
        TableConfig(PhaseResult, menu_group=PIPELINE,
                    order_by=_newest(PhaseResult.started_at), validators=CHECKED,
                    visible_columns=[PhaseResult.run_id, PhaseResult.phase, PhaseResult.attempt,
                                     PhaseResult.status, PhaseResult.summary,
                                     PhaseResult.started_at],
                    visible_filters=[PhaseResult.run_id, PhaseResult.phase, PhaseResult.status]),
        TableConfig(MemoryRecord, menu_group=PIPELINE,
                    order_by=_newest(MemoryRecord.created_at), validators=CHECKED,
                    visible_filters=[MemoryRecord.run_id, MemoryRecord.phase, MemoryRecord.kind]),
        TableConfig(CtaEvent, menu_group=PIPELINE,
                    order_by=_newest(CtaEvent.created_at), validators=CHECKED,
                    visible_filters=[CtaEvent.run_id, CtaEvent.kind, CtaEvent.phase]),
        TableConfig(Sandbox, menu_group=PIPELINE,
                    order_by=_newest(Sandbox.created_at), validators=CHECKED,
                    visible_filters=[Sandbox.status, Sandbox.provider, Sandbox.source_type]),
        TableConfig(SandboxSnapshot, menu_group=PIPELINE,
                    order_by=_newest(SandboxSnapshot.created_at), validators=CHECKED,
                    visible_filters=[SandboxSnapshot.sandbox_id, SandboxSnapshot.status]),
        TableConfig(Agent, menu_group=HIERARCHY,
                    order_by=_newest(Agent.created_at), validators=CHECKED, link_column=Agent.name,
                    visible_columns=[Agent.name, Agent.agent_type, Agent.status, Agent.depth_level,
                                     Agent.parent_id, Agent.run_id, Agent.created_at],
                    visible_filters=[Agent.agent_type, Agent.status, Agent.run_id,
                                     Agent.parent_id]),
        TableConfig(Budget, menu_group=HIERARCHY,
                    order_by=_newest(Budget.created_at), validators=CHECKED,
                    visible_filters=[Budget.agent_id, Budget.resource]),
        # The rows the books are kept from: changed through the worker API only.
        TableConfig(BudgetReservation, menu_group=HIERARCHY,
                    order_by=_newest(BudgetReservation.created_at), validators=READ_ONLY,
                    visible_columns=[BudgetReservation.agent_id, BudgetReservation.resource,
                                     BudgetReservation.amount, BudgetReservation.holder,
                                     BudgetReservation.state, BudgetReservation.actual,
                                     BudgetReservation.lease_expires_at,
                                     BudgetReservation.created_at],
                    visible_filters=[BudgetReservation.agent_id, BudgetReservation.state,
                                     BudgetReservation.holder, BudgetReservation.resource]),
        TableConfig(Message, menu_group=HIERARCHY,
                    order_by=_newest(Message.id), validators=CHECKED,
                    visible_columns=[Message.id, Message.recipient_id, Message.sender_id,
                                     Message.kind, Message.priority, Message.status,
                                     Message.attempts, Message.created_at],
                    visible_filters=[Message.status, Message.recipient_id, Message.run_id,
                                     Message.kind]),
        TableConfig(Workspace, menu_group=HIERARCHY,
                    order_by=_newest(Workspace.created_at), validators=CHECKED,
                    visible_filters=[Workspace.agent_id, Workspace.sandbox_id, Workspace.status]),
        TableConfig(Checkpoint, menu_group=HIERARCHY,
                    order_by=_newest(Checkpoint.created_at), validators=READ_ONLY,
                    exclude_visible_columns=[Checkpoint.state_snapshot],
                    visible_filters=[Checkpoint.agent_id]),
        TableConfig(AgentInvocation, menu_group=TELEMETRY,
                    order_by=_newest(AgentInvocation.started_at), validators=CHECKED,
                    visible_columns=[AgentInvocation.run_id, AgentInvocation.agent_type,
                                     AgentInvocation.model, AgentInvocation.input_tokens,
                                     AgentInvocation.output_tokens, AgentInvocation.cost_usd,
                                     AgentInvocation.finish_reason, AgentInvocation.started_at],
                    visible_filters=[AgentInvocation.run_id, AgentInvocation.phase_result_id,
                                     AgentInvocation.agent_type, AgentInvocation.agent_id]),
        TableConfig(AgentStep, menu_group=TELEMETRY,
                    order_by=_newest(AgentStep.started_at), validators=READ_ONLY,
                    visible_filters=[AgentStep.invocation_id, AgentStep.finish_reason]),
        TableConfig(ToolCall, menu_group=TELEMETRY,
                    order_by=_newest(ToolCall.started_at), validators=READ_ONLY,
                    visible_filters=[ToolCall.invocation_id, ToolCall.tool_name,
                                     ToolCall.output_type]),
        # LangGraph threads and Agents SDK session items, written by agent_app.langgraph /
        # agent_app.agents_sdk: items are read-only here, a thread's run and agent links
        # editable. Checkpoints stay out: piccolo-api cannot serialise their bytea bodies.
        TableConfig(GraphThread, menu_group=FRAMEWORKS, link_column=GraphThread.thread_id,
                    visible_filters=[GraphThread.run_id, GraphThread.agent_id]),
        TableConfig(SessionItem, menu_group=FRAMEWORKS, validators=READ_ONLY,
                    visible_filters=[SessionItem.session_id]),
    ]  # fmt: skip


def create_app(
    *,
    production: bool = False,
    allowed_hosts: Sequence[str] = (),
    trusted_proxies: Sequence[str] = (),
    throttle: LoginThrottle | None = None,
) -> Any:
    """The admin ASGI app.

    :param production: every cookie ``Secure`` (serve it over HTTPS); needs
        ``allowed_hosts``.
    :param allowed_hosts: the public host names the admin is served under; over HTTPS a
        write (login included) is accepted only with an ``Origin``/``Referer`` naming one.
    :param trusted_proxies: addresses of reverse proxies whose ``X-Forwarded-For`` and
        ``X-Forwarded-Proto`` are believed; from anyone else they are ignored.
    :param throttle: the login rate limit (default: the process-wide
        :data:`~agent_app.admin_security.THROTTLE`).
    :raises AdminConfigError: ``production`` without ``allowed_hosts``.
    """
    hosts = [h.strip() for h in allowed_hosts if h.strip()]
    if production and not hosts:
        raise AdminConfigError(
            "production needs allowed_hosts (the public host names, e.g. admin.example.com): "
            "behind HTTPS every POST is checked against them"
        )
    with _openapi_without_the_request_column():
        app: Any = create_admin(
            tables=table_configs(),
            auth_table=AdminUser,
            session_table=SessionsBase,
            site_name="agent_app",
            production=production,
            allowed_hosts=hosts,
            rate_limit_provider=_NoPiccoloRateLimit(),
            sidebar_links=CONSOLE_LINKS,
        )
    additions = _ADMIN_PAGE_ADDITIONS % {"read_only": json.dumps(list(READ_ONLY_TABLES))}
    app.template = app.template.replace("</head>", additions + "</head>", 1)
    # Inside the admin app: its CSRF middleware guards the console's POSTs too, and the
    # login guard and cookie wrappers below cover it.
    app.mount("/console", create_console(auth_table=AdminUser, session_table=SessionsBase))
    app = NeutralisedCsvExport(LoginGuard(app, throttle or THROTTLE))
    if production:
        app = SecureCookies(app)
    return behind_proxies(app, trusted_proxies)
