"""``piccolo agent_app admin``: serve the operator's console and Piccolo Admin."""

from __future__ import annotations

import asyncio


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


async def admin(
    host: str = "127.0.0.1",
    port: int = 8000,
    production: bool = False,
    allowed_hosts: str = "",
    trusted_proxies: str = "",
) -> None:
    """
    Serve the operator's console (the home page) and Piccolo Admin with uvicorn. Log in
    with a user made by ``piccolo user create`` with admin rights. Says where it listens
    once it accepts connections.

    :param host:
        The address to listen on.
    :param port:
        The port to listen on.
    :param production:
        Secure cookies only (put it behind HTTPS); needs --allowed_hosts.
    :param allowed_hosts:
        Comma-separated public host names the admin is served under, e.g.
        admin.example.com: over HTTPS, writes (login included) must come from them.
    :param trusted_proxies:
        Comma-separated addresses of reverse proxies whose X-Forwarded-For and
        X-Forwarded-Proto headers are believed (for example 127.0.0.1); from anyone
        else those headers are ignored.
    """
    import uvicorn

    from agent_app.admin import create_app

    app = create_app(
        production=production,
        allowed_hosts=_names(allowed_hosts),
        trusted_proxies=_names(trusted_proxies),
    )
    scheme = "https" if production else "http"
    # Forwarded headers are handled by the app, only from --trusted_proxies (uvicorn
    # would otherwise believe them from 127.0.0.1).
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        print(
            f"agent_app admin listening on {scheme}://{host}:{port}/ (log in with an admin user)",
            flush=True,
        )
    await serving
