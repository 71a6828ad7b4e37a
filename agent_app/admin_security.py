"""What keeps the operator's web views safe in production, in one place.

* :class:`LoginThrottle` — the login rate limit, per account and per client address:
  a sliding window of failed attempts (an attempt counts as failed from the moment it
  starts, so parallel guesses are counted too, and is forgiven when it succeeds). A
  real user who mistypes waits at most ``window`` seconds; a guesser gets
  ``per_account`` guesses per window per account, ``per_address`` per address.
  Nothing is blocked until restart.
* :class:`LoginGuard` — ASGI middleware applying a throttle to ``POST …/login/``
  (429 with ``Retry-After`` when refused). The address is the connection's peer, so
  ``X-Forwarded-For`` counts only when :func:`behind_proxies` says whom to believe.
* :class:`AdminUser` — Piccolo's ``BaseUser`` with password hashing (PBKDF2, about
  0.1 to 0.5 s) run in a worker thread, so other requests are served meanwhile.
* :class:`SecureCookies` — marks every cookie ``Secure`` (``--production``).
* :func:`csv_cell` and :class:`NeutralisedCsvExport` — spreadsheet formulas (cells
  starting with ``= + - @``, tab or CR) are prefixed with ``'`` in the admin's CSV export.

Another view (a console) reuses the throttle like this::

    wait = THROTTLE.attempt(username, address)
    if wait:
        return 429 with Retry-After: ceil(wait)
    if login succeeded:
        THROTTLE.succeeded(username, address)
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import json
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from piccolo.apps.user.tables import BaseUser

from agent_app.errors import AgentAppError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AdminConfigError(AgentAppError):
    """The admin was configured in a way that cannot work safely."""

    rule = "admin_config"


# --- the login rate limit ----------------------------------------------------------


class LoginThrottle:
    """Sliding-window limit on failed logins per account and per address.

    :param per_account: failed attempts per account within ``window`` seconds.
    :param per_address: failed attempts per client address within ``window`` seconds.
    :param window: the window's length in seconds; also the longest wait.
    :param clock: monotonic seconds (injectable for tests).

    Thread-safe. Memory is bounded by the attempts inside one window: old entries are
    swept as they expire.
    """

    def __init__(
        self,
        *,
        per_account: int = 5,
        per_address: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_account < 1 or per_address < 1 or not (window > 0 and math.isfinite(window)):
            raise AdminConfigError(
                f"login throttle needs positive limits and window, got "
                f"per_account={per_account} per_address={per_address} window={window}"
            )
        self.per_account, self.per_address, self.window = per_account, per_address, window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def attempt(self, account: str, address: str) -> float:
        """Ask to try a login. Returns 0 if allowed (the attempt is then counted as a
        failure until :meth:`succeeded` forgives it), else the seconds to wait."""
        now = self._clock()
        keys = ((self._key("account", account), self.per_account),
                (self._key("address", address), self.per_address))  # fmt: skip
        with self._lock:
            self._sweep(now)
            wait = 0.0
            for key, limit in keys:
                recent = self._recent(key, now)
                if len(recent) >= limit:
                    wait = max(wait, recent[len(recent) - limit] + self.window - now)
            if wait > 0:
                return wait
            for key, _ in keys:
                self._failures.setdefault(key, deque()).append(now)
            return 0.0

    def succeeded(self, account: str, address: str) -> None:
        """The attempt logged in: it no longer counts against the account or address."""
        with self._lock:
            for key in (self._key("account", account), self._key("address", address)):
                recent = self._failures.get(key)
                if recent:
                    recent.pop()
                    if not recent:
                        del self._failures[key]

    @staticmethod
    def _key(kind: str, value: str) -> str:
        return f"{kind}:{value[:256]}"

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self._failures.get(key, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
            del self._failures[key]


#: The throttle the admin uses unless given another (one per process).
THROTTLE = LoginThrottle()


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def behind_proxies(app: ASGIApp, trusted_proxies: Iterable[str]) -> ASGIApp:
    """Believe ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only from these proxy
    addresses (uvicorn's middleware: the client is the rightmost untrusted address).
    Without trusted proxies, the app is returned unchanged and the headers are ignored."""
    proxies = [p.strip() for p in trusted_proxies if p.strip()]
    if not proxies:
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    wrapped: Any = ProxyHeadersMiddleware(app, trusted_hosts=proxies)  # type: ignore[arg-type]
    return wrapped  # type: ignore[no-any-return]


async def _send_plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = text.encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()), *headers],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _username(body: bytes, content_type: str) -> str | None:
    try:
        if content_type.startswith("application/json"):
            data = json.loads(body or b"{}")
            value = data.get("username") if isinstance(data, dict) else None
        else:
            values = parse_qs(body.decode("utf-8", "replace")).get("username")
            value = values[0] if values else None
    except ValueError:
        return None
    return value if isinstance(value, str) and value else None


class LoginGuard:
    """ASGI middleware: throttles ``POST`` to any path ending in ``/login/``.

    The body is read (at most ``max_body`` bytes, else 413), the username taken from
    JSON or a form, the throttle asked; a refused attempt gets 429 and never reaches the
    password check. A response below 400 counts as a successful login.
    """

    def __init__(self, app: ASGIApp, throttle: LoginThrottle, *, max_body: int = 65536) -> None:
        self.app, self.throttle, self.max_body = app, throttle, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].rstrip("/").endswith("/login")
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _send_plain(send, 413, "Login request too large", [])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        account = _username(body, content_type)
        address = _client_address(scope)
        if account is None:  # the endpoint answers 422; nothing to count it against
            account = ""
        wait = self.throttle.attempt(account, address)
        if wait > 0:
            seconds = str(math.ceil(wait)).encode()
            await _send_plain(
                send, 429, "Too many login attempts; try again later", [(b"retry-after", seconds)]
            )
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, replay, watch)
        if status < 400:
            self.throttle.succeeded(account, address)


# --- hashing off the event loop -----------------------------------------------------


class AdminUser(BaseUser, tablename="piccolo_user"):
    """Piccolo's user table (same rows) whose password hashing runs in a worker thread:
    ``login`` and ``update_password`` behave as ``BaseUser``'s but never block the event
    loop for the hash."""

    @classmethod
    async def login(cls, username: str, password: str) -> int | None:
        if (max_len := cls.username.length) and len(username) > max_len:
            return None
        if len(password) > cls._max_password_length:
            return None
        row = (
            await cls.select(cls._meta.primary_key, cls.password)
            .where(cls.username == username)
            .first()
            .run()
        )
        if not row:
            # Hash anyway, so response times do not tell which usernames exist.
            await asyncio.to_thread(cls.hash_password, password)
            return None
        stored = row["password"]
        _, iterations_, salt, _ = cls.split_stored_password(stored)
        iterations = int(iterations_)
        computed = await asyncio.to_thread(cls.hash_password, password, salt, iterations)
        if not hmac.compare_digest(computed, stored):
            return None
        if iterations != cls._pbkdf2_iteration_count:
            await cls.update_password(username, password)
        await cls.update({cls.last_login: datetime.datetime.now()}).where(cls.username == username)
        return int(row["id"])

    @classmethod
    async def update_password(cls, user: str | int, password: str) -> None:
        if isinstance(user, str):
            clause = cls.username == user
        elif isinstance(user, int):
            clause = cls.id == user
        else:
            raise ValueError("The `user` arg must be a user id, or a username.")
        cls._validate_password(password=password)
        hashed = await asyncio.to_thread(cls.hash_password, password)
        await cls.update({cls.password: hashed}).where(clause).run()


# --- cookies ----------------------------------------------------------------------


class SecureCookies:
    """ASGI middleware: every ``Set-Cookie`` gets ``Secure`` (the csrftoken cookie of
    piccolo-api's CSRF middleware has no such option)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v + b"; Secure")
                    if k.lower() == b"set-cookie" and b"secure" not in v.lower()
                    else (k, v)
                    for k, v in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, secure)


# --- CSV export ---------------------------------------------------------------------

#: The characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not evaluate: text starting with ``= + - @``, tab or
    CR gets a leading ``'``; numbers and everything else are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


# piccolo-admin builds the CSV in the browser; this is its cell formatter (1.14).
_CSV_CELL_JS = 'Object.values(j).map(H=>`"${d(String(H),\'"\',\'""\')}"`)'
_CSV_CELL_SAFE_JS = 'Object.values(j).map(H=>`"${d(agentAppCsvCell(H),\'"\',\'""\')}"`)'
#: The JavaScript twin of :func:`csv_cell`, put in front of the admin's bundle.
CSV_CELL_JS = (
    "function agentAppCsvCell(v){var s=String(v);"
    "return typeof v==='string'&&/^[=+\\-@\\t\\r]/.test(s)?\"'\"+s:s}\n"
)


class NeutralisedCsvExport:
    """ASGI middleware serving piccolo-admin's JavaScript bundle with its CSV export
    neutralising formulas (see :func:`csv_cell`).

    :raises AdminConfigError: the installed piccolo-admin's export code is not the one
        this patch knows (after an upgrade): refuse to serve an unsafe export silently.
    """

    def __init__(self, app: ASGIApp) -> None:
        import piccolo_admin

        self.app = app
        assets = Path(piccolo_admin.__file__).parent / "dist" / "assets"
        for bundle in sorted(assets.glob("index-*.js")):
            source = bundle.read_text(encoding="utf-8")
            if _CSV_CELL_JS in source:
                patched = CSV_CELL_JS + source.replace(_CSV_CELL_JS, _CSV_CELL_SAFE_JS)
                self.name = bundle.name
                self.body = patched.encode("utf-8")
                return
        raise AdminConfigError(
            f"piccolo-admin's CSV export in {assets} is not the code agent_app knows how "
            "to make formula-safe; update agent_app.admin_security for this version"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(f"/assets/{self.name}"):
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/javascript; charset=utf-8"),
                            (b"content-length", str(len(self.body)).encode()),
                            (b"cache-control", b"no-cache")],
            })  # fmt: skip
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)
