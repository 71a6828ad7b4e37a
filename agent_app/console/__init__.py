"""The operator's console (see :mod:`agent_app.console.app`)."""

from agent_app.console.app import create_console

__all__ = ["create_console"]
