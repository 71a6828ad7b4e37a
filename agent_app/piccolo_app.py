"""The Piccolo app: its tables, migrations and ``piccolo agent_app <command>`` commands."""

import os

from piccolo.conf.apps import AppConfig, Command

from agent_app.commands.admin import admin
from agent_app.commands.help import help_
from agent_app.commands.schema_check import schema_check
from agent_app.commands.simulate import simulate
from agent_app.tables import TABLES

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="agent_app",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    table_classes=list(TABLES),
    migration_dependencies=[],
    commands=[
        Command(callable=simulate, aliases=["sim"]),
        Command(callable=admin),
        Command(callable=schema_check, aliases=["check"]),
        # `piccolo agent_app --help`: targ looks the word up as a command of the app.
        Command(callable=help_, command_name="--help"),
    ],
)
