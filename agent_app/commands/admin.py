"""``piccolo agent_app admin``: serve Piccolo Admin over the agent tables."""

from __future__ import annotations


async def admin(host: str = "127.0.0.1", port: int = 8000, production: bool = False) -> None:
    """
    Serve the operator's view (Piccolo Admin) with uvicorn. Log in with a user made by
    ``piccolo user create`` with admin rights.

    :param host:
        The address to listen on.
    :param port:
        The port to listen on.
    :param production:
        Secure cookies only (put it behind HTTPS).
    """
    import uvicorn

    from agent_app.admin import create_app

    print(f"agent_app admin on http://{host}:{port}/ (log in with an admin user)", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(create_app(production=production), host=host, port=port, log_level="info")
    )
    await server.serve()
