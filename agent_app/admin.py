"""The operator's view: Piccolo Admin over the fifteen tables.

Grouped (pipeline, hierarchy, telemetry), with readable row names, useful visible
columns and filters, enum columns shown as choices. History rows (steps, tool calls,
checkpoints, the closure table) are read-only here: the API refuses writes to them with
405. Only logged-in users with ``admin`` set get in (Piccolo's session auth, CSRF
enforced, passwords hashed by ``BaseUser``).
"""

from __future__ import annotations

from typing import Any

import pydantic
from piccolo.apps.user.tables import BaseUser
from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.crud.validators import Validators
from piccolo_api.fastapi.endpoints import FastAPIWrapper
from piccolo_api.session_auth.tables import SessionsBase
from starlette.exceptions import HTTPException

from agent_app.tables import (
    Agent,
    AgentInvocation,
    AgentStep,
    Budget,
    Checkpoint,
    CtaEvent,
    FeatureRun,
    Hierarchy,
    MemoryRecord,
    Message,
    PhaseResult,
    Sandbox,
    SandboxSnapshot,
    ToolCall,
    Workspace,
)

PIPELINE, HIERARCHY, TELEMETRY = "Pipeline", "Hierarchy", "Telemetry"


def _allow_a_column_named_request() -> None:
    """piccolo-api 1.11 gives each generated FastAPI endpoint a ``request`` parameter and
    one query parameter per column, so the contract's ``feature_runs.request`` column
    makes the signature invalid ("duplicate parameter name"). That signature only feeds
    the OpenAPI docs (the CRUD layer reads filters from the request itself), so the
    column is left out of it."""
    original = FastAPIWrapper.modify_signature
    if getattr(original, "_agent_app", False):
        return

    def modify_signature(endpoint: Any, model: Any, http_method: Any, **kwargs: Any) -> Any:
        if "request" in model.model_fields:
            fields = {
                name: (field.annotation, field)
                for name, field in model.model_fields.items()
                if name != "request"
            }
            model = pydantic.create_model(model.__name__, **fields)  # type: ignore[call-overload]
        return original(endpoint, model, http_method, **kwargs)

    modify_signature._agent_app = True  # type: ignore[attr-defined]
    FastAPIWrapper.modify_signature = staticmethod(modify_signature)  # type: ignore[method-assign,assignment]


def _history_is_read_only(piccolo_crud: Any, request: Any) -> None:
    raise HTTPException(
        status_code=405, detail="admin_read_only: history rows are read-only in the admin"
    )


READ_ONLY = Validators(
    post_single=[_history_is_read_only],
    put_single=[_history_is_read_only],
    patch_single=[_history_is_read_only],
    delete_single=[_history_is_read_only],
    delete_all=[_history_is_read_only],
)


def table_configs() -> list[TableConfig]:
    return [
        TableConfig(FeatureRun, menu_group=PIPELINE, link_column=FeatureRun.title,
                    visible_columns=[FeatureRun.title, FeatureRun.current_phase,
                                     FeatureRun.repo_url, FeatureRun.pr_url,
                                     FeatureRun.created_at, FeatureRun.completed_at],
                    visible_filters=[FeatureRun.current_phase, FeatureRun.title,
                                     FeatureRun.sandbox_id]),
        TableConfig(PhaseResult, menu_group=PIPELINE,
                    visible_columns=[PhaseResult.run_id, PhaseResult.phase, PhaseResult.attempt,
                                     PhaseResult.status, PhaseResult.summary,
                                     PhaseResult.started_at],
                    visible_filters=[PhaseResult.run_id, PhaseResult.phase, PhaseResult.status]),
        TableConfig(MemoryRecord, menu_group=PIPELINE,
                    visible_filters=[MemoryRecord.run_id, MemoryRecord.phase, MemoryRecord.kind]),
        TableConfig(CtaEvent, menu_group=PIPELINE,
                    visible_filters=[CtaEvent.run_id, CtaEvent.kind, CtaEvent.phase]),
        TableConfig(Sandbox, menu_group=PIPELINE,
                    visible_filters=[Sandbox.status, Sandbox.provider, Sandbox.source_type]),
        TableConfig(SandboxSnapshot, menu_group=PIPELINE,
                    visible_filters=[SandboxSnapshot.sandbox_id, SandboxSnapshot.status]),
        TableConfig(Agent, menu_group=HIERARCHY, link_column=Agent.name,
                    visible_columns=[Agent.name, Agent.agent_type, Agent.status, Agent.depth_level,
                                     Agent.parent_id, Agent.run_id, Agent.created_at],
                    visible_filters=[Agent.agent_type, Agent.status, Agent.run_id,
                                     Agent.parent_id]),
        TableConfig(Budget, menu_group=HIERARCHY,
                    visible_filters=[Budget.agent_id, Budget.resource]),
        TableConfig(Message, menu_group=HIERARCHY,
                    visible_columns=[Message.id, Message.recipient_id, Message.sender_id,
                                     Message.kind, Message.priority, Message.status,
                                     Message.attempts, Message.created_at],
                    visible_filters=[Message.status, Message.recipient_id, Message.run_id,
                                     Message.kind]),
        TableConfig(Workspace, menu_group=HIERARCHY,
                    visible_filters=[Workspace.agent_id, Workspace.sandbox_id, Workspace.status]),
        TableConfig(Checkpoint, menu_group=HIERARCHY, validators=READ_ONLY,
                    exclude_visible_columns=[Checkpoint.state_snapshot],
                    visible_filters=[Checkpoint.agent_id]),
        TableConfig(Hierarchy, menu_group=HIERARCHY, validators=READ_ONLY,
                    visible_filters=[Hierarchy.parent_id, Hierarchy.child_id, Hierarchy.depth]),
        TableConfig(AgentInvocation, menu_group=TELEMETRY,
                    visible_columns=[AgentInvocation.run_id, AgentInvocation.agent_type,
                                     AgentInvocation.model, AgentInvocation.input_tokens,
                                     AgentInvocation.output_tokens, AgentInvocation.cost_usd,
                                     AgentInvocation.finish_reason, AgentInvocation.started_at],
                    visible_filters=[AgentInvocation.run_id, AgentInvocation.phase_result_id,
                                     AgentInvocation.agent_type, AgentInvocation.agent_id]),
        TableConfig(AgentStep, menu_group=TELEMETRY, validators=READ_ONLY,
                    visible_filters=[AgentStep.invocation_id, AgentStep.finish_reason]),
        TableConfig(ToolCall, menu_group=TELEMETRY, validators=READ_ONLY,
                    visible_filters=[ToolCall.invocation_id, ToolCall.tool_name,
                                     ToolCall.output_type]),
    ]  # fmt: skip


def create_app(*, production: bool = False) -> Any:
    """The admin ASGI app. ``production`` marks cookies secure (serve it over HTTPS)."""
    _allow_a_column_named_request()
    return create_admin(
        tables=table_configs(),
        auth_table=BaseUser,
        session_table=SessionsBase,
        site_name="agent_app",
        production=production,
    )
