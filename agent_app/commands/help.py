"""``piccolo agent_app --help``: what agent_app's commands are."""

from __future__ import annotations

import sys


def help_() -> None:
    """
    List agent_app's commands (``piccolo agent_app <command> --help`` tells more).
    """
    if sys.argv[1:2] != ["agent_app"]:
        # Registered under the name "--help", targ also finds it for a bare
        # `piccolo --help`: that one means Piccolo's own list of every command.
        from piccolo.main import main

        sys.argv = sys.argv[:1]
        main()
        return
    from agent_app.piccolo_app import APP_CONFIG

    print("agent_app commands (piccolo agent_app <command> --help for its options):\n")
    for command in APP_CONFIG.get_commands():
        if command.callable is help_:
            continue
        doc = " ".join((command.callable.__doc__ or "").strip().split("\n\n")[0].split())
        aliases = f" (alias: {', '.join(command.aliases)})" if command.aliases else ""
        name = command.command_name or command.callable.__name__
        print(f"  {name}{aliases}\n      {doc}\n")
