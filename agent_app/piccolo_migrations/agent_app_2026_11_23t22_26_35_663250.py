from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import Array
from piccolo.columns.column_types import BigSerial
from piccolo.columns.column_types import Bytea
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import JSONB
from piccolo.columns.column_types import Text
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import UUID
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check
from piccolo.constraints import Unique
from piccolo.table import Table


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


class GraphThread(Table, tablename="graph_threads", schema="agent"):
    thread_id = Text(
        default="",
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


ID = "2026-11-23T22:26:35:663250"
VERSION = "1.38.0"
DESCRIPTION = (
    "LangGraph threads, checkpoints, blobs, writes; Agents SDK session items"
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="agent_app", description=DESCRIPTION
    )

    manager.add_table(
        class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="GraphThread",
        tablename="graph_threads",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="GraphBlob",
        tablename="graph_blobs",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="SessionItem",
        tablename="session_items",
        schema="agent",
        columns=None,
    )

    manager.add_table(
        class_name="GraphWrite",
        tablename="graph_writes",
        schema="agent",
        columns=None,
    )

    manager.add_column(
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="thread_id",
        db_column_name="thread_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": GraphThread,
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="checkpoint_ns",
        db_column_name="checkpoint_ns",
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="checkpoint_id",
        db_column_name="checkpoint_id",
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="parent_checkpoint_id",
        db_column_name="parent_checkpoint_id",
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="type",
        db_column_name="type",
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="body",
        db_column_name="body",
        column_class_name="Bytea",
        column_class=Bytea,
        params={
            "default": b"",
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="channels",
        db_column_name="channels",
        column_class_name="Array",
        column_class=Array,
        params={
            "default": list,
            "base_column": Text(
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        column_name="versions",
        db_column_name="versions",
        column_class_name="Array",
        column_class=Array,
        params={
            "default": list,
            "base_column": Text(
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
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
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
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
        table_class_name="GraphThread",
        tablename="graph_threads",
        column_name="thread_id",
        db_column_name="thread_id",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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
        table_class_name="GraphThread",
        tablename="graph_threads",
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
        table_class_name="GraphThread",
        tablename="graph_threads",
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
        table_class_name="GraphThread",
        tablename="graph_threads",
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
        table_class_name="GraphBlob",
        tablename="graph_blobs",
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
        table_class_name="GraphBlob",
        tablename="graph_blobs",
        column_name="thread_id",
        db_column_name="thread_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": GraphThread,
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
        table_class_name="GraphBlob",
        tablename="graph_blobs",
        column_name="checkpoint_ns",
        db_column_name="checkpoint_ns",
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
        table_class_name="GraphBlob",
        tablename="graph_blobs",
        column_name="channel",
        db_column_name="channel",
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
        table_class_name="GraphBlob",
        tablename="graph_blobs",
        column_name="version",
        db_column_name="version",
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
        table_class_name="GraphBlob",
        tablename="graph_blobs",
        column_name="type",
        db_column_name="type",
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
        table_class_name="GraphBlob",
        tablename="graph_blobs",
        column_name="blob",
        db_column_name="blob",
        column_class_name="Bytea",
        column_class=Bytea,
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
        table_class_name="SessionItem",
        tablename="session_items",
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
        table_class_name="SessionItem",
        tablename="session_items",
        column_name="session_id",
        db_column_name="session_id",
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
        table_class_name="SessionItem",
        tablename="session_items",
        column_name="item",
        db_column_name="item",
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
        table_class_name="SessionItem",
        tablename="session_items",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="thread_id",
        db_column_name="thread_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": GraphThread,
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="checkpoint_ns",
        db_column_name="checkpoint_ns",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="checkpoint_id",
        db_column_name="checkpoint_id",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="task_id",
        db_column_name="task_id",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="task_path",
        db_column_name="task_path",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="idx",
        db_column_name="idx",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="channel",
        db_column_name="channel",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="type",
        db_column_name="type",
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
        table_class_name="GraphWrite",
        tablename="graph_writes",
        column_name="blob",
        db_column_name="blob",
        column_class_name="Bytea",
        column_class=Bytea,
        params={
            "default": b"",
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

    manager.add_constraint(
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        constraint_name="channels_versions_match",
        constraint_class=Check,
        params={"condition": "cardinality(channels) = cardinality(versions)"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="GraphCheckpoint",
        tablename="graph_checkpoints",
        constraint_name="graph_checkpoints_thread_ns_id_key",
        constraint_class=Unique,
        params={
            "columns": ["thread_id", "checkpoint_ns", "checkpoint_id"],
            "nulls_distinct": True,
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="GraphThread",
        tablename="graph_threads",
        constraint_name="thread_id_not_empty",
        constraint_class=Check,
        params={"condition": "thread_id <> ''"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="GraphBlob",
        tablename="graph_blobs",
        constraint_name="graph_blobs_thread_ns_channel_version_key",
        constraint_class=Unique,
        params={
            "columns": ["thread_id", "checkpoint_ns", "channel", "version"],
            "nulls_distinct": True,
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="SessionItem",
        tablename="session_items",
        constraint_name="session_id_not_empty",
        constraint_class=Check,
        params={"condition": "session_id <> ''"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="GraphWrite",
        tablename="graph_writes",
        constraint_name="graph_writes_checkpoint_task_idx_key",
        constraint_class=Unique,
        params={
            "columns": [
                "thread_id",
                "checkpoint_ns",
                "checkpoint_id",
                "task_id",
                "idx",
            ],
            "nulls_distinct": True,
        },
        schema="agent",
    )

    return manager
