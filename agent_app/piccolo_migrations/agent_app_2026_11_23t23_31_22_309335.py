from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from enum import Enum
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Numeric
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import UUID
from piccolo.columns.column_types import Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check
from piccolo.table import Table
import decimal


class Budget(Table, tablename="budgets", schema="agent"):
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


ID = "2026-11-23T23:31:22:309335"
VERSION = "1.38.0"
DESCRIPTION = "budget_reservations: a reservation is a row with a holder, a state and a lease"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="agent_app", description=DESCRIPTION
    )

    manager.add_table(
        class_name="BudgetReservation",
        tablename="budget_reservations",
        schema="agent",
        columns=None,
    )

    manager.add_column(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        column_name="agent_id",
        db_column_name="agent_id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": None,
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        column_name="budget_id",
        db_column_name="budget_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Budget,
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        column_name="amount",
        db_column_name="amount",
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        column_name="holder",
        db_column_name="holder",
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        column_name="state",
        db_column_name="state",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "held",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "ReservationState",
                {
                    "held": "held",
                    "committed": "committed",
                    "released": "released",
                    "expired": "expired",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema="agent",
    )

    manager.add_column(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        column_name="actual",
        db_column_name="actual",
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        column_name="lease_expires_at",
        db_column_name="lease_expires_at",
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
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
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
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

    manager.add_constraint(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        constraint_name="resource_enum",
        constraint_class=Check,
        params={"condition": "resource IN ('tokens', 'cost_usd', 'tool_calls')"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        constraint_name="state_enum",
        constraint_class=Check,
        params={
            "condition": "state IN ('held', 'committed', 'released', 'expired')"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        constraint_name="amount_positive",
        constraint_class=Check,
        params={"condition": "amount > 0 AND amount < 'Infinity'"},
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        constraint_name="actual_when_committed",
        constraint_class=Check,
        params={
            "condition": "(state = 'committed') = (actual IS NOT NULL) AND (actual IS NULL OR (actual >= 0 AND actual < 'Infinity'))"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        constraint_name="finished_when_final",
        constraint_class=Check,
        params={
            "condition": "(state IN ('committed', 'released', 'expired')) = (finished_at IS NOT NULL)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="BudgetReservation",
        tablename="budget_reservations",
        constraint_name="holder_not_empty",
        constraint_class=Check,
        params={"condition": "holder ~ '[^[:space:]]'"},
        schema="agent",
    )

    return manager
