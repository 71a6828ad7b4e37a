from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from enum import Enum
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import Array
from piccolo.columns.column_types import BigInt
from piccolo.columns.column_types import BigSerial
from piccolo.columns.column_types import Boolean
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import JSONB
from piccolo.columns.column_types import Numeric
from piccolo.columns.column_types import SmallInt
from piccolo.columns.column_types import Text
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import UUID
from piccolo.columns.column_types import Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check
from piccolo.constraints import Unique
from piccolo.table import Table
import decimal


class Agent(Table, tablename="agents", schema="agent"):
    id = UUID(
        default=UUID4(),
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


class AgentInvocation(Table, tablename="agent_invocations", schema="agent"):
    id = UUID(
        default=UUID4(),
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


class AgentStep(Table, tablename="agent_steps", schema="agent"):
    id = UUID(
        default=UUID4(),
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


class FeatureRun(Table, tablename="feature_runs", schema="agent"):
    id = UUID(
        default=UUID4(),
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


class PhaseResult(Table, tablename="phase_results", schema="agent"):
    id = UUID(
        default=UUID4(),
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


class Sandbox(Table, tablename="sandboxes", schema="agent"):
    id = UUID(
        default=UUID4(),
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


ID = "2026-11-22T06:38:10:743914"
VERSION = "1.38.0"
DESCRIPTION = "True"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="agent_app", description=DESCRIPTION
    )

    manager.add_table(
        class_name="PhaseResult",
        tablename="phase_results",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="Agent", tablename="agents", schema="agent", columns=None
    )

    manager.add_table(
        class_name="AgentStep",
        tablename="agent_steps",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="AgentInvocation",
        tablename="agent_invocations",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="Sandbox", tablename="sandboxes", schema="agent", columns=None
    )

    manager.add_table(
        class_name="Budget", tablename="budgets", schema="agent", columns=None
    )

    manager.add_table(
        class_name="Hierarchy",
        tablename="hierarchies",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="FeatureRun",
        tablename="feature_runs",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="Checkpoint",
        tablename="checkpoints",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="CtaEvent",
        tablename="cta_events",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="Message", tablename="messages", schema="agent", columns=None
    )

    manager.add_table(
        class_name="ToolCall",
        tablename="tool_calls",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="MemoryRecord",
        tablename="memory_records",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="Workspace",
        tablename="workspaces",
        schema="agent",
        columns=None,
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="run_id",
        db_column_name="run_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureRun,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="phase",
        db_column_name="phase",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "FeaturePhase",
                {
                    "analysis": "analysis",
                    "approaches": "approaches",
                    "judging": "judging",
                    "implementation": "implementation",
                    "pr": "pr",
                    "completed": "completed",
                    "failed": "failed",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "running",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "PhaseStatus",
                {"running": "running", "passed": "passed", "failed": "failed"},
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="attempt",
        db_column_name="attempt",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="summary",
        db_column_name="summary",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="output",
        db_column_name="output",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="error",
        db_column_name="error",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="started_at",
        db_column_name="started_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="PhaseResult",
        tablename="phase_results",
        column_name="finished_at",
        db_column_name="finished_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="run_id",
        db_column_name="run_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureRun,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="parent_id",
        db_column_name="parent_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": "self",
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="depth_level",
        db_column_name="depth_level",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="agent_type",
        db_column_name="agent_type",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "AgentType",
                {
                    "orchestrator": "orchestrator",
                    "explorer": "explorer",
                    "coder": "coder",
                    "judge": "judge",
                    "meta_judge": "meta_judge",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="name",
        db_column_name="name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "pending",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "AgentStatus",
                {
                    "pending": "pending",
                    "running": "running",
                    "waiting": "waiting",
                    "completed": "completed",
                    "failed": "failed",
                    "terminated": "terminated",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Agent",
        tablename="agents",
        column_name="finished_at",
        db_column_name="finished_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="invocation_id",
        db_column_name="invocation_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": AgentInvocation,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="step_number",
        db_column_name="step_number",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="finish_reason",
        db_column_name="finish_reason",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "FinishReason",
                {
                    "stop": "stop",
                    "length": "length",
                    "content_filter": "content-filter",
                    "tool_calls": "tool-calls",
                    "error": "error",
                    "other": "other",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="raw_finish_reason",
        db_column_name="raw_finish_reason",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="text",
        db_column_name="text",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="reasoning",
        db_column_name="reasoning",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="input_tokens",
        db_column_name="input_tokens",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="output_tokens",
        db_column_name="output_tokens",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="cached_input_tokens",
        db_column_name="cached_input_tokens",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="reasoning_tokens",
        db_column_name="reasoning_tokens",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="cost_usd",
        db_column_name="cost_usd",
        column_class_name="Numeric",
        column_class=Numeric,
        params={
            "default": None,
            "digits": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="response_metadata",
        db_column_name="response_metadata",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="started_at",
        db_column_name="started_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentStep",
        tablename="agent_steps",
        column_name="finished_at",
        db_column_name="finished_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="sandbox_id",
        db_column_name="sandbox_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Sandbox,
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "created",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "SnapshotStatus",
                {"created": "created", "deleted": "deleted", "failed": "failed"},
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="external_id",
        db_column_name="external_id",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="size_bytes",
        db_column_name="size_bytes",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="metadata",
        db_column_name="metadata",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "{}",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        column_name="deleted_at",
        db_column_name="deleted_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="run_id",
        db_column_name="run_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureRun,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="phase_result_id",
        db_column_name="phase_result_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": PhaseResult,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="agent_id",
        db_column_name="agent_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="parent_invocation_id",
        db_column_name="parent_invocation_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": "self",
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="agent_type",
        db_column_name="agent_type",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "AgentType",
                {
                    "orchestrator": "orchestrator",
                    "explorer": "explorer",
                    "coder": "coder",
                    "judge": "judge",
                    "meta_judge": "meta_judge",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="model",
        db_column_name="model",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="input",
        db_column_name="input",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="output",
        db_column_name="output",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="finish_reason",
        db_column_name="finish_reason",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "FinishReason",
                {
                    "stop": "stop",
                    "length": "length",
                    "content_filter": "content-filter",
                    "tool_calls": "tool-calls",
                    "error": "error",
                    "other": "other",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="error",
        db_column_name="error",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="input_tokens",
        db_column_name="input_tokens",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="output_tokens",
        db_column_name="output_tokens",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="cost_usd",
        db_column_name="cost_usd",
        column_class_name="Numeric",
        column_class=Numeric,
        params={
            "default": decimal.Decimal("0"),
            "digits": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="started_at",
        db_column_name="started_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        column_name="finished_at",
        db_column_name="finished_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "pending",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "SandboxStatus",
                {
                    "pending": "pending",
                    "running": "running",
                    "stopping": "stopping",
                    "stopped": "stopped",
                    "failed": "failed",
                    "aborted": "aborted",
                    "snapshotting": "snapshotting",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="source_type",
        db_column_name="source_type",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "SandboxSourceType",
                {
                    "git": "git",
                    "tarball": "tarball",
                    "snapshot": "snapshot",
                    "empty": "empty",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="source_ref",
        db_column_name="source_ref",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="source_snapshot_id",
        db_column_name="source_snapshot_id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="provider",
        db_column_name="provider",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="external_id",
        db_column_name="external_id",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": True,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="config",
        db_column_name="config",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "{}",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="error",
        db_column_name="error",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="started_at",
        db_column_name="started_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Sandbox",
        tablename="sandboxes",
        column_name="stopped_at",
        db_column_name="stopped_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="agent_id",
        db_column_name="agent_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="resource",
        db_column_name="resource",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "BudgetResource",
                {
                    "tokens": "tokens",
                    "cost_usd": "cost_usd",
                    "tool_calls": "tool_calls",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="allocated",
        db_column_name="allocated",
        column_class_name="Numeric",
        column_class=Numeric,
        params={
            "default": decimal.Decimal("0"),
            "digits": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="used",
        db_column_name="used",
        column_class_name="Numeric",
        column_class=Numeric,
        params={
            "default": decimal.Decimal("0"),
            "digits": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="reserved",
        db_column_name="reserved",
        column_class_name="Numeric",
        column_class=Numeric,
        params={
            "default": decimal.Decimal("0"),
            "digits": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Budget",
        tablename="budgets",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Hierarchy",
        tablename="hierarchies",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Hierarchy",
        tablename="hierarchies",
        column_name="parent_id",
        db_column_name="parent_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Hierarchy",
        tablename="hierarchies",
        column_name="child_id",
        db_column_name="child_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Hierarchy",
        tablename="hierarchies",
        column_name="depth",
        db_column_name="depth",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="title",
        db_column_name="title",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="request",
        db_column_name="request",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="repo_url",
        db_column_name="repo_url",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="base_branch",
        db_column_name="base_branch",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "main",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="current_phase",
        db_column_name="current_phase",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "analysis",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "FeaturePhase",
                {
                    "analysis": "analysis",
                    "approaches": "approaches",
                    "judging": "judging",
                    "implementation": "implementation",
                    "pr": "pr",
                    "completed": "completed",
                    "failed": "failed",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="sandbox_id",
        db_column_name="sandbox_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Sandbox,
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="branch_name",
        db_column_name="branch_name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="pr_url",
        db_column_name="pr_url",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="error",
        db_column_name="error",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        column_name="completed_at",
        db_column_name="completed_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="agent_id",
        db_column_name="agent_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="sequence",
        db_column_name="sequence",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="parent_checkpoint_id",
        db_column_name="parent_checkpoint_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": "self",
            "on_delete": OnDelete.set_null,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="state_snapshot",
        db_column_name="state_snapshot",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "{}",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="state_hash",
        db_column_name="state_hash",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="schema_version",
        db_column_name="schema_version",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="label",
        db_column_name="label",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="run_id",
        db_column_name="run_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureRun,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="phase",
        db_column_name="phase",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "FeaturePhase",
                {
                    "analysis": "analysis",
                    "approaches": "approaches",
                    "judging": "judging",
                    "implementation": "implementation",
                    "pr": "pr",
                    "completed": "completed",
                    "failed": "failed",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="kind",
        db_column_name="kind",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "CtaKind",
                {"approval": "approval", "text": "text", "choice": "choice"},
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="prompt",
        db_column_name="prompt",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="options",
        db_column_name="options",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="response",
        db_column_name="response",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="responded_by",
        db_column_name="responded_by",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="responded_at",
        db_column_name="responded_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="CtaEvent",
        tablename="cta_events",
        column_name="expires_at",
        db_column_name="expires_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="id",
        db_column_name="id",
        column_class_name="BigSerial",
        column_class=BigSerial,
        params={
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="run_id",
        db_column_name="run_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureRun,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="sender_id",
        db_column_name="sender_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="recipient_id",
        db_column_name="recipient_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="priority",
        db_column_name="priority",
        column_class_name="SmallInt",
        column_class=SmallInt,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "pending",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "MessageStatus",
                {
                    "pending": "pending",
                    "claimed": "claimed",
                    "done": "done",
                    "dead": "dead",
                    "cancelled": "cancelled",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="kind",
        db_column_name="kind",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="payload",
        db_column_name="payload",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "{}",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="attempts",
        db_column_name="attempts",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="max_attempts",
        db_column_name="max_attempts",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 5,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="available_at",
        db_column_name="available_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="lease_expires_at",
        db_column_name="lease_expires_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="claimed_by",
        db_column_name="claimed_by",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="last_error",
        db_column_name="last_error",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="claimed_at",
        db_column_name="claimed_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Message",
        tablename="messages",
        column_name="finished_at",
        db_column_name="finished_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="step_id",
        db_column_name="step_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": AgentStep,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="invocation_id",
        db_column_name="invocation_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": AgentInvocation,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="tool_call_id",
        db_column_name="tool_call_id",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="tool_name",
        db_column_name="tool_name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="input",
        db_column_name="input",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "{}",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="output_type",
        db_column_name="output_type",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "ToolOutputType",
                {
                    "text": "text",
                    "json": "json",
                    "execution_denied": "execution-denied",
                    "error_text": "error-text",
                    "error_json": "error-json",
                    "content": "content",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="output",
        db_column_name="output",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="provider_executed",
        db_column_name="provider_executed",
        column_class_name="Boolean",
        column_class=Boolean,
        params={
            "default": False,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="started_at",
        db_column_name="started_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="ToolCall",
        tablename="tool_calls",
        column_name="finished_at",
        db_column_name="finished_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="run_id",
        db_column_name="run_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureRun,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="phase",
        db_column_name="phase",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "FeaturePhase",
                {
                    "analysis": "analysis",
                    "approaches": "approaches",
                    "judging": "judging",
                    "implementation": "implementation",
                    "pr": "pr",
                    "completed": "completed",
                    "failed": "failed",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="kind",
        db_column_name="kind",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "MemoryKind",
                {
                    "insight": "insight",
                    "failure": "failure",
                    "decision": "decision",
                    "constraint": "constraint",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="content",
        db_column_name="content",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="source_invocation_id",
        db_column_name="source_invocation_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": AgentInvocation,
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="tags",
        db_column_name="tags",
        column_class_name="Array",
        column_class=Array,
        params={
            "default": list,
            "base_column": Varchar(
                length=255,
                default="",
                null=False,
                primary_key=False,
                unique=False,
                index=False,
                index_method=IndexMethod.btree,
                choices=None,
                db_column_name=None,
                secret=False,
            ),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="id",
        db_column_name="id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": UUID4(),
            "null": False,
            "primary_key": True,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="agent_id",
        db_column_name="agent_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Agent,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="sandbox_id",
        db_column_name="sandbox_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Sandbox,
            "on_delete": OnDelete.no_action,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="worktree_path",
        db_column_name="worktree_path",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="branch_name",
        db_column_name="branch_name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="base_ref",
        db_column_name="base_ref",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="head_commit",
        db_column_name="head_commit",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "active",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "WorkspaceStatus", {"active": "active", "released": "released"}
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="Workspace",
        tablename="workspaces",
        column_name="released_at",
        db_column_name="released_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="PhaseResult",
        tablename="phase_results",
        constraint_name="phase_enum",
        constraint_class=Check,
        params={
            "condition": "phase IN ('analysis', 'approaches', 'judging', 'implementation', 'pr', 'completed', 'failed')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="PhaseResult",
        tablename="phase_results",
        constraint_name="phase_is_working",
        constraint_class=Check,
        params={"condition": "phase NOT IN ('completed', 'failed')"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="PhaseResult",
        tablename="phase_results",
        constraint_name="status_enum",
        constraint_class=Check,
        params={"condition": "status IN ('running', 'passed', 'failed')"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="PhaseResult",
        tablename="phase_results",
        constraint_name="attempt_min",
        constraint_class=Check,
        params={"condition": "attempt >= 1"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="PhaseResult",
        tablename="phase_results",
        constraint_name="finished_when_not_running",
        constraint_class=Check,
        params={"condition": "(status = 'running') = (finished_at IS NULL)"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="PhaseResult",
        tablename="phase_results",
        constraint_name="phase_results_run_phase_attempt_key",
        constraint_class=Unique,
        params={
            "columns": ["run_id", "phase", "attempt"],
            "nulls_distinct": True,
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Agent",
        tablename="agents",
        constraint_name="agent_type_enum",
        constraint_class=Check,
        params={
            "condition": "agent_type IN ('orchestrator', 'explorer', 'coder', 'judge', 'meta_judge')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Agent",
        tablename="agents",
        constraint_name="status_enum",
        constraint_class=Check,
        params={
            "condition": "status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'terminated')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Agent",
        tablename="agents",
        constraint_name="parent_not_self",
        constraint_class=Check,
        params={"condition": "parent_id IS NULL OR parent_id <> id"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Agent",
        tablename="agents",
        constraint_name="depth_limit",
        constraint_class=Check,
        params={"condition": "depth_level >= 0 AND depth_level <= 5"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentStep",
        tablename="agent_steps",
        constraint_name="finish_reason_enum",
        constraint_class=Check,
        params={
            "condition": "finish_reason IN ('stop', 'length', 'content-filter', 'tool-calls', 'error', 'other')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentStep",
        tablename="agent_steps",
        constraint_name="step_number_min",
        constraint_class=Check,
        params={"condition": "step_number >= 0"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentStep",
        tablename="agent_steps",
        constraint_name="usage_non_negative",
        constraint_class=Check,
        params={
            "condition": "(input_tokens IS NULL OR input_tokens >= 0) AND (output_tokens IS NULL OR output_tokens >= 0) AND (cached_input_tokens IS NULL OR cached_input_tokens >= 0) AND (reasoning_tokens IS NULL OR reasoning_tokens >= 0) AND (cost_usd IS NULL OR cost_usd >= 0)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentStep",
        tablename="agent_steps",
        constraint_name="agent_steps_invocation_step_key",
        constraint_class=Unique,
        params={
            "columns": ["invocation_id", "step_number"],
            "nulls_distinct": True,
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        constraint_name="status_enum",
        constraint_class=Check,
        params={"condition": "status IN ('created', 'deleted', 'failed')"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="SandboxSnapshot",
        tablename="sandbox_snapshots",
        constraint_name="size_bytes_non_negative",
        constraint_class=Check,
        params={"condition": "(size_bytes IS NULL OR size_bytes >= 0)"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        constraint_name="agent_type_enum",
        constraint_class=Check,
        params={
            "condition": "agent_type IN ('orchestrator', 'explorer', 'coder', 'judge', 'meta_judge')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        constraint_name="finish_reason_enum",
        constraint_class=Check,
        params={
            "condition": "finish_reason IN ('stop', 'length', 'content-filter', 'tool-calls', 'error', 'other')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        constraint_name="usage_non_negative",
        constraint_class=Check,
        params={
            "condition": "(input_tokens IS NULL OR input_tokens >= 0) AND (output_tokens IS NULL OR output_tokens >= 0) AND (cost_usd IS NULL OR cost_usd >= 0)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        constraint_name="parent_invocation_not_self",
        constraint_class=Check,
        params={
            "condition": "parent_invocation_id IS NULL OR parent_invocation_id <> id"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Sandbox",
        tablename="sandboxes",
        constraint_name="status_enum",
        constraint_class=Check,
        params={
            "condition": "status IN ('pending', 'running', 'stopping', 'stopped', 'failed', 'aborted', 'snapshotting')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Sandbox",
        tablename="sandboxes",
        constraint_name="source_type_enum",
        constraint_class=Check,
        params={
            "condition": "source_type IN ('git', 'tarball', 'snapshot', 'empty')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Sandbox",
        tablename="sandboxes",
        constraint_name="snapshot_source",
        constraint_class=Check,
        params={
            "condition": "(source_type = 'snapshot') = (source_snapshot_id IS NOT NULL)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Budget",
        tablename="budgets",
        constraint_name="resource_enum",
        constraint_class=Check,
        params={"condition": "resource IN ('tokens', 'cost_usd', 'tool_calls')"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Budget",
        tablename="budgets",
        constraint_name="budget_limits",
        constraint_class=Check,
        params={
            "condition": "allocated >= 0 AND used >= 0 AND reserved >= 0 AND used + reserved <= allocated"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Budget",
        tablename="budgets",
        constraint_name="budgets_agent_resource_key",
        constraint_class=Unique,
        params={"columns": ["agent_id", "resource"], "nulls_distinct": True},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Hierarchy",
        tablename="hierarchies",
        constraint_name="depth_min",
        constraint_class=Check,
        params={"condition": "depth >= 1"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Hierarchy",
        tablename="hierarchies",
        constraint_name="no_self_reference",
        constraint_class=Check,
        params={"condition": "parent_id <> child_id"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Hierarchy",
        tablename="hierarchies",
        constraint_name="hierarchies_parent_child_key",
        constraint_class=Unique,
        params={"columns": ["parent_id", "child_id"], "nulls_distinct": True},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="FeatureRun",
        tablename="feature_runs",
        constraint_name="current_phase_enum",
        constraint_class=Check,
        params={
            "condition": "current_phase IN ('analysis', 'approaches', 'judging', 'implementation', 'pr', 'completed', 'failed')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        constraint_name="sequence_min",
        constraint_class=Check,
        params={"condition": "sequence >= 1"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        constraint_name="schema_version_min",
        constraint_class=Check,
        params={"condition": "schema_version >= 1"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        constraint_name="parent_checkpoint_not_self",
        constraint_class=Check,
        params={
            "condition": "parent_checkpoint_id IS NULL OR parent_checkpoint_id <> id"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Checkpoint",
        tablename="checkpoints",
        constraint_name="checkpoints_agent_sequence_key",
        constraint_class=Unique,
        params={"columns": ["agent_id", "sequence"], "nulls_distinct": True},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="CtaEvent",
        tablename="cta_events",
        constraint_name="phase_enum",
        constraint_class=Check,
        params={
            "condition": "phase IN ('analysis', 'approaches', 'judging', 'implementation', 'pr', 'completed', 'failed')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="CtaEvent",
        tablename="cta_events",
        constraint_name="kind_enum",
        constraint_class=Check,
        params={"condition": "kind IN ('approval', 'text', 'choice')"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="CtaEvent",
        tablename="cta_events",
        constraint_name="prompt_not_empty",
        constraint_class=Check,
        params={"condition": "prompt ~ '[^[:space:]]'"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="CtaEvent",
        tablename="cta_events",
        constraint_name="choice_has_options",
        constraint_class=Check,
        params={
            "condition": "kind <> 'choice' OR (options IS NOT NULL AND jsonb_typeof(options) = 'array' AND jsonb_array_length(options) > 0)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="CtaEvent",
        tablename="cta_events",
        constraint_name="response_with_time",
        constraint_class=Check,
        params={"condition": "(response IS NULL) = (responded_at IS NULL)"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Message",
        tablename="messages",
        constraint_name="status_enum",
        constraint_class=Check,
        params={
            "condition": "status IN ('pending', 'claimed', 'done', 'dead', 'cancelled')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Message",
        tablename="messages",
        constraint_name="priority_range",
        constraint_class=Check,
        params={"condition": "priority >= 0 AND priority <= 9"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Message",
        tablename="messages",
        constraint_name="attempts_range",
        constraint_class=Check,
        params={"condition": "attempts >= 0 AND max_attempts >= 1"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Message",
        tablename="messages",
        constraint_name="claim_has_lease",
        constraint_class=Check,
        params={
            "condition": "(status = 'claimed') = (lease_expires_at IS NOT NULL AND claimed_by IS NOT NULL)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Message",
        tablename="messages",
        constraint_name="finished_when_final",
        constraint_class=Check,
        params={
            "condition": "(status IN ('done', 'dead', 'cancelled')) = (finished_at IS NOT NULL)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="ToolCall",
        tablename="tool_calls",
        constraint_name="output_type_enum",
        constraint_class=Check,
        params={
            "condition": "output_type IN ('text', 'json', 'execution-denied', 'error-text', 'error-json', 'content')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="ToolCall",
        tablename="tool_calls",
        constraint_name="output_has_type",
        constraint_class=Check,
        params={"condition": "output IS NULL OR output_type IS NOT NULL"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="ToolCall",
        tablename="tool_calls",
        constraint_name="tool_calls_invocation_call_key",
        constraint_class=Unique,
        params={
            "columns": ["invocation_id", "tool_call_id"],
            "nulls_distinct": True,
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        constraint_name="phase_enum",
        constraint_class=Check,
        params={
            "condition": "phase IN ('analysis', 'approaches', 'judging', 'implementation', 'pr', 'completed', 'failed')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        constraint_name="kind_enum",
        constraint_class=Check,
        params={
            "condition": "kind IN ('insight', 'failure', 'decision', 'constraint')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="MemoryRecord",
        tablename="memory_records",
        constraint_name="content_not_empty",
        constraint_class=Check,
        params={"condition": "content ~ '[^[:space:]]'"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Workspace",
        tablename="workspaces",
        constraint_name="status_enum",
        constraint_class=Check,
        params={"condition": "status IN ('active', 'released')"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Workspace",
        tablename="workspaces",
        constraint_name="released_when_released",
        constraint_class=Check,
        params={"condition": "(status = 'released') = (released_at IS NOT NULL)"},
        schema="agent",
    )

    return manager
