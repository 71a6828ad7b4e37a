"""agent_app: the PostgreSQL state store for platforms that run teams of AI coding agents.

Register ``agent_app.piccolo_app`` in your ``piccolo_conf.py``; see README.md.
"""

__version__ = "0.1.0"
