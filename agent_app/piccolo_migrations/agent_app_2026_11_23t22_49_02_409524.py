from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.constraints import Check

ID = "2026-11-23T22:49:02:409524"
VERSION = "1.38.0"
DESCRIPTION = "Finite numerics: NaN and Infinity refused in every numeric column"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="agent_app", description=DESCRIPTION)

    manager.add_constraint(
        table_class_name="AgentInvocation",
        tablename="agent_invocations",
        constraint_name="cost_usd_finite",
        constraint_class=Check,
        params={
            "condition": "(cost_usd > '-Infinity'::numeric AND cost_usd < 'Infinity'::numeric)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="AgentStep",
        tablename="agent_steps",
        constraint_name="cost_usd_finite",
        constraint_class=Check,
        params={
            "condition": "(cost_usd > '-Infinity'::numeric AND cost_usd < 'Infinity'::numeric)"
        },
        schema="agent",
    )

    manager.add_constraint(
        table_class_name="Budget",
        tablename="budgets",
        constraint_name="budget_numbers_finite",
        constraint_class=Check,
        params={
            "condition": "(allocated > '-Infinity'::numeric AND allocated < 'Infinity'::numeric) AND (used > '-Infinity'::numeric AND used < 'Infinity'::numeric) AND (reserved > '-Infinity'::numeric AND reserved < 'Infinity'::numeric)"
        },
        schema="agent",
    )

    return manager
