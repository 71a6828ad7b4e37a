"""How the worker API reaches PostgreSQL - the one place that runs its statements.

Which connection an operation runs on
-------------------------------------
Every operation takes an optional ``conn`` (an asyncpg connection). Without one, it
runs on the connection of the Piccolo transaction in progress, if any (so API calls
compose with ``async with DB.transaction():``), else on a connection from agent_app's
own asyncpg pool (:func:`pool`), built from the DSN of the ``PostgresEngine`` in
``piccolo_conf.py``. agent_app never starts, resizes or reconfigures Piccolo's own
pool.

What a worker may rely on
-------------------------
* **Composition.** Inside a caller's transaction (an asyncpg ``conn.transaction()`` or
  Piccolo's ``DB.transaction()``) every operation runs in a savepoint: a refusal
  (a typed :class:`~agent_app.errors.AgentAppError`) rolls back only what the operation
  did, and the caller's transaction stays usable. Outside one, each operation is its
  own transaction (or a single statement).
* **Typed errors.** Nothing raises a raw driver error for a fault the caller can meet:
  a refused write is a :class:`~agent_app.errors.RuleViolation` naming its rule; a
  server that is down, restarting or unreachable - or a connection lost mid-call - is
  :class:`~agent_app.errors.DatabaseUnavailable`; a deadlock or serialization failure
  that persists after :data:`RETRIES` attempts is :class:`~agent_app.errors.Contention`.
  Both of the latter have ``retryable = True``. A ``Contention`` call did not happen; a
  ``DatabaseUnavailable`` call did not happen unless the connection was lost while the
  server was committing it, so repeat by identity (see that class for which calls
  are safe to repeat blindly).
* **Recovery.** Once the server is back, the next call works: dead pool connections
  are replaced, and a Piccolo transaction whose connection died is ended (Piccolo
  itself would leave it as the task's current transaction, and every later query in
  the task would join a dead transaction).
* **Retries inside the operation.** Operations that take row locks run through
  :func:`run`, which retries a deadlock or serialization failure a bounded number of
  times (in a fresh transaction, or by rolling back to its savepoint inside a caller's
  transaction) before raising :class:`~agent_app.errors.Contention`.
* **Consistent reads.** :func:`snapshot` gives a read that spans statements one
  snapshot (``REPEATABLE READ, READ ONLY``) when it is not inside a caller's
  transaction; inside one, the caller's isolation level decides.

The lock order
--------------
Every operation that locks rows takes them in this one order, and on each row at
first touch the strongest mode it will need there (no upgrade later), so API operations
never wait on each other in a cycle:

1. ``feature_runs`` rows, by id;
2. ``agents`` rows, shallow to deep: ``ORDER BY depth_level, id`` (a subtree is locked
   level by level, each level in id order, each level read only once its parents are
   locked). Modes: ``FOR SHARE`` to keep an agent live while adding under it (spawn
   locks the parent, send the recipients), ``FOR NO KEY UPDATE`` to finish it;
3. ``budgets`` rows: by owner agent in the same ``(depth_level, agent id)`` order -
   a parent's budgets before its children's - and within an agent ``ORDER BY
   resource``, ``FOR UPDATE``;
4. budget reservation rows (by id), then ``messages`` rows (by id).

What each operation takes:

* ``hierarchy.spawn_child``: the parent ``FOR SHARE``; then the parent's budget rows,
  one per resource in resource order, whatever the caller's mapping order (the
  ``budgets_guard`` trigger carves each child budget out of them).
* ``hierarchy.finish``: the agent, then its live subtree level by level, ``FOR NO KEY
  UPDATE`` (a spawn holds its parent ``FOR SHARE`` until it commits, so no child
  slips in unseen); then every budget row the reclaim triggers (``agents_reclaim``,
  ``return_budgets``) will touch - the parent's, the agent's, the descendants' - in
  the order of 3, *before* any status changes, so the triggers only touch rows already
  held; then the pending messages it cancels.
* ``queue.send`` / ``send_many``: the distinct recipients ``FOR SHARE`` in the order of
  2, within the one INSERT (the ``messages_recipient`` trigger then finds each one
  locked and refuses a finished one, ``recipient_live``).
* ``budgets.reserve`` and the other budget operations: the one budget row, then (if
  any) its reservation rows - the budget before the reservation.
* ``hierarchy.create_root``: only new rows.

Foreign-key checks take ``FOR KEY SHARE`` on the rows they refer to (a new agent's
run and ancestors via the closure rows, a message's sender and run) wherever the
statement happens to be; that mode conflicts only with deleting a row or changing its
key, which no API operation does - so they stay out of the order. Deleting a run (or
an agent) by hand locks its rows in whatever order the cascade takes: do it when the
run's agents have finished.

Pool connections are not reset with a query when they go back to the pool (one round
trip saved per operation), so code sharing :func:`pool` must not leave session state
behind: use ``SET LOCAL`` rather than ``SET``, transaction-scoped advisory locks, and a
dedicated connection for LISTEN (as :class:`agent_app.queue.Consumer` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import asyncpg
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction

from agent_app.errors import Contention, DatabaseUnavailable, InvalidArgument, translate

T = TypeVar("T")

#: Pool size used when the API starts its pool itself.
DEFAULT_POOL_MAX = int(os.environ.get("AGENT_APP_POOL_MAX", "20"))

#: Attempts :func:`run` makes at an operation that meets a deadlock or serialization
#: failure before raising :class:`~agent_app.errors.Contention`.
RETRIES = 5

_engine: PostgresEngine | None = None
_pool: asyncpg.Pool | None = None
_pool_loop: asyncio.AbstractEventLoop | None = None
_pool_lock: asyncio.Lock | None = None


def engine() -> PostgresEngine:
    """The ``PostgresEngine`` of ``piccolo_conf.py``, looked up once per process."""
    global _engine
    if _engine is None:
        found = engine_finder()
        if not isinstance(found, PostgresEngine):
            raise RuntimeError("agent_app needs a PostgresEngine in piccolo_conf.py")
        _engine = found
    return _engine


def in_piccolo_transaction() -> bool:
    """Whether a Piccolo transaction (``DB.transaction()``) is open in this context: the
    API's calls without ``conn=`` then run inside it."""
    return engine().current_transaction.get() is not None


def leave_piccolo_transaction() -> None:
    """In the current context only (e.g. a task of its own, which has a copy of its
    creator's), the API's calls without ``conn=`` run on the pool again rather than in
    an open Piccolo transaction."""
    if in_piccolo_transaction():
        engine().current_transaction.set(None)


def connect_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect`` / ``create_pool``: the engine's config."""
    return dict(engine().config)


async def _light_reset(conn: asyncpg.Connection) -> None:
    """Released connections keep their session: asyncpg has already rolled back any open
    transaction and dropped listeners; skipping its ``RESET ALL``-style query saves a
    round trip on every release."""


#: The asyncpg releases whose pool internals :class:`_Pool` was written against (and
#: tested with); any other takes asyncpg's own release.
_INLINE_RELEASE = asyncpg.__version__.startswith(("0.30.", "0.31.", "0.32."))


class _Pool(asyncpg.Pool):
    """asyncpg's pool, giving a connection back without a task when nothing is left to
    do on it.

    ``asyncpg.Pool.release`` always runs the release in a new task under
    ``asyncio.shield`` (so a cancelled caller cannot interrupt a ``ROLLBACK`` half-way),
    which costs two turns of the event loop - two ``epoll`` calls - per statement on the
    API's pool path. A connection that is open, outside any transaction, not being
    cancelled, of the pool's current generation and under ``max_queries`` has nothing to
    roll back (agent_app's reset is a no-op), so nothing in its release waits and it is
    given back inline, exactly as asyncpg's own code would. Anything else, and any
    asyncpg release other than those it was written against (:data:`_INLINE_RELEASE`),
    takes ``asyncpg.Pool.release``."""

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        holder = getattr(connection, "_holder", None)
        con = getattr(connection, "_con", None)
        try:
            quick = (
                _INLINE_RELEASE
                and holder is not None
                and con is not None
                and holder._pool is self
                and holder._con is con
                and not con.is_closed()
                and not con.is_in_transaction()
                and con._top_xact is None
                and not con._protocol._is_cancelling()
                and holder._generation == self._generation
                and con._protocol.queries_count < holder._max_queries
            )
        except AttributeError:
            quick = False
        if not quick:
            await super().release(connection, timeout=timeout)
            return
        assert holder is not None and con is not None
        con._on_release()
        await holder.release(timeout)


async def start_pool(min_size: int = 1, max_size: int = DEFAULT_POOL_MAX) -> asyncpg.Pool:
    """Start agent_app's pool with these sizes (a no-op if it is already running on this
    event loop). Call it at start-up to size the pool; otherwise :func:`pool` starts
    one of ``AGENT_APP_POOL_MAX`` (20) connections on first use."""
    global _pool, _pool_loop, _pool_lock
    loop = asyncio.get_running_loop()
    if _pool is not None and _pool_loop is loop and not _pool._closed:
        return _pool
    if _pool_lock is None or _pool_loop is not loop:
        _pool_lock, _pool_loop, _pool = asyncio.Lock(), loop, None
    async with _pool_lock:
        if _pool is None or _pool._closed:
            try:
                _pool = await _Pool(
                    **connect_kwargs(),
                    min_size=min_size,
                    max_size=max_size,
                    max_queries=50000,
                    max_inactive_connection_lifetime=300.0,
                    reset=_light_reset,
                    loop=None,
                    connection_class=asyncpg.Connection,
                    record_class=asyncpg.Record,
                )
            except _FAULTS as e:
                _reraise(_typed(e, None), e)
    assert _pool is not None
    return _pool


async def pool() -> asyncpg.Pool:
    """agent_app's asyncpg pool on the running event loop, started on first use."""
    if _pool is not None and _pool_loop is asyncio.get_running_loop() and not _pool._closed:
        return _pool
    return await start_pool()


async def close_pool() -> None:
    """Close agent_app's pool (waiting for connections in use to come back)."""
    global _pool
    if _pool is not None and _pool_loop is asyncio.get_running_loop():
        await _pool.close()
    _pool = None


# --------------------------------------------------------------------------- #
# Faults
# --------------------------------------------------------------------------- #

_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,  # refused, reset, aborted
    OSError,  # the unix socket is gone while the server restarts
    asyncio.TimeoutError,  # connecting timed out
)

#: What :func:`connection` turns into typed errors on the way out.
_FAULTS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a connection whose server end died while idle
    OSError,
    TimeoutError,
)


def is_connection_error(error: BaseException, conn: asyncpg.Connection | None = None) -> bool:
    """True when ``error`` means the server or the connection is gone, not a refusal."""
    if isinstance(error, _CONNECTION_ERRORS):
        return True
    if isinstance(error, asyncpg.InternalClientError) and (
        "cannot switch to state" in str(error) or (conn is not None and _closed(conn))
    ):
        # The server ended the session (a restart, pg_terminate_backend) while the
        # connection sat idle, and its protocol is out of step: it cannot be used
        # again. (Any other InternalClientError is asyncpg's own bug, left as it is.)
        return True
    if isinstance(error, asyncpg.ObjectNotInPrerequisiteStateError) and (
        "not currently accepting connections" in str(error)
    ):
        return True  # the database was taken offline (ALLOW_CONNECTIONS false)
    if isinstance(error, asyncpg.InterfaceError):
        text = str(error)
        if "closed" in text or "released back to the pool" in text or "pool is closing" in text:
            return True
        return conn is not None and _closed(conn)
    return False


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # a pool proxy already released
        return True


async def _end_dead_transaction(
    eng: PostgresEngine, tx: PostgresTransaction, *, keep_current: bool
) -> None:
    """A Piccolo transaction whose connection died: mark it rolled back (the server did)
    so Piccolo does not try again when its block ends, and give its connection back.

    ``keep_current``: it stays the task's current transaction until its block ends, so
    later calls inside that block keep raising :class:`DatabaseUnavailable` instead of
    quietly running outside any transaction. Otherwise (a plain ``PostgresEngine``,
    which leaves a dead transaction current for ever when its rollback fails) it is
    cleared now, so the task recovers."""
    tx._rolled_back = True
    if isinstance(tx, Transaction):
        tx.lost = True
    pool_ = eng.pool
    if pool_ is not None:
        # Releasing a closed connection makes the pool replace it; twice is a no-op.
        await _quiet(pool_.release(tx.connection))
    if not keep_current:
        eng.current_transaction.set(None)


async def _quiet(awaitable: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):  # the connection is gone; nothing to give back
        await awaitable


class Transaction(PostgresTransaction):
    """Piccolo's transaction, except that a block whose connection died ends cleanly:
    it stops being the task's current transaction and raises
    :class:`DatabaseUnavailable` (Piccolo's own raises a raw error from the failed
    rollback and stays the task's current transaction, so every later query in the
    task, in a new ``DB.transaction()`` too, joins a dead transaction)."""

    __slots__ = ("lost",)

    def __init__(self, engine: PostgresEngine, allow_nested: bool = True) -> None:
        super().__init__(engine, allow_nested)
        #: Its connection died during an agent_app call; the server rolled it back.
        self.lost = False

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        try:
            ok = await super().__aexit__(exception_type, exception, traceback)
        except _FAULTS as e:
            if self._parent is not None or not is_connection_error(e, self.connection):
                raise
            # The server rolled the transaction back (or, if COMMIT was in flight, may
            # have committed it: a retry must act by identity, as agent_app's calls do).
            self._rolled_back = True
            if self.engine.pool is not None:
                await _quiet(self.engine.pool.release(self.connection))
            with contextlib.suppress(ValueError):  # a token from another context
                self.engine.current_transaction.reset(self.context)
            if self.engine.current_transaction.get() is self:
                self.engine.current_transaction.set(None)
            if isinstance(exception, DatabaseUnavailable):
                raise exception from None
            raise DatabaseUnavailable(f"{type(e).__name__}: {e}") from e
        if ok and self.lost and self._parent is None:
            # The caller swallowed the error inside the block: the block must not look
            # committed.
            raise DatabaseUnavailable(
                "the transaction lost its connection and was rolled back; nothing in it "
                "was committed"
            )
        return ok


class Engine(PostgresEngine):
    """A ``PostgresEngine`` whose ``transaction()`` recovers from a lost connection (see
    :class:`Transaction`). Use it in ``piccolo_conf.py`` (``DB = Engine(config=...)``)
    so that after a server restart the next ``DB.transaction()`` is a fresh, working
    one. With a plain ``PostgresEngine`` agent_app still recovers: the first agent_app
    call after the dead block ends the dead transaction and raises
    :class:`DatabaseUnavailable`, and the call after it works."""

    def transaction(self, allow_nested: bool = True) -> PostgresTransaction:
        return Transaction(engine=self, allow_nested=allow_nested)


async def connect() -> asyncpg.Connection:
    """A dedicated connection (not from the pool), e.g. for LISTEN. A server that is
    down raises :class:`DatabaseUnavailable`."""
    try:
        return await asyncpg.connect(**connect_kwargs())
    except _FAULTS as e:
        _reraise(_typed(e, None), e)


# --------------------------------------------------------------------------- #
# Connections, transactions, statements
# --------------------------------------------------------------------------- #


def connection(
    conn: asyncpg.Connection | None = None, *, from_pool: asyncpg.Pool | None = None
) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
    """The connection an operation runs on (see the module docstring); ``from_pool``, a
    pool of the caller's own, is used instead of the Piccolo transaction or agent_app's
    pool (the framework integrations accept one). Errors leaving the block are typed:
    connection faults become :class:`DatabaseUnavailable`, database refusals
    :class:`~agent_app.errors.RuleViolation` (via :func:`~agent_app.errors.translate`)."""
    if conn is not None:
        return _Given(conn)
    if from_pool is not None:  # a pool of the caller's own needs no Piccolo engine
        return _Pooled(from_pool)
    eng = engine()
    current = eng.current_transaction.get()
    if current is not None:
        return _in_transaction(eng, current)
    return _Pooled(None)


class _Given:
    """:func:`connection` for a connection the caller passed: itself, errors typed. (A
    plain class: a generator-based context manager costs microseconds per statement on
    the hot path.)"""

    __slots__ = ("conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def __aenter__(self) -> asyncpg.Connection:
        return self.conn

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is not None and isinstance(error, _FAULTS):
            _reraise(_typed(error, self.conn), error)


@asynccontextmanager
async def _in_transaction(
    eng: PostgresEngine, current: PostgresTransaction
) -> AsyncIterator[asyncpg.Connection]:
    """:func:`connection` inside an open Piccolo transaction: its connection."""
    c = getattr(current, "connection", None)
    if c is None or current._rolled_back or _closed(c):
        # Its connection died (a restart). Inside its block, every call says so; a
        # plain PostgresEngine would also keep it current after the block, so it is
        # ended here and the next call works (see Engine).
        keep = isinstance(eng, Engine)
        await _end_dead_transaction(eng, current, keep_current=keep)
        raise DatabaseUnavailable(
            "the Piccolo transaction in progress lost its connection; the server "
            "rolled it back - leave its block and repeat it"
        )
    try:
        yield c
    except _FAULTS as e:
        typed = _typed(e, c)
        if isinstance(typed, DatabaseUnavailable):
            await _end_dead_transaction(eng, current, keep_current=isinstance(eng, Engine))
        _reraise(typed, e)


class _Pooled:
    """:func:`connection` from a pool (agent_app's, or ``from_pool``): a connection
    acquired for the block and given back after it, errors typed; one that was lost is
    terminated, never handed out again (the pool opens a new one)."""

    __slots__ = ("conn", "from_pool", "pool")

    def __init__(self, from_pool: asyncpg.Pool | None) -> None:
        self.from_pool = from_pool

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            self.pool = self.from_pool if self.from_pool is not None else await pool()
            self.conn = await self.pool.acquire()
        except _FAULTS as e:
            _reraise(_typed(e, None), e)
        return self.conn

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        try:
            if error is not None and isinstance(error, _FAULTS):
                typed = _typed(error, self.conn)
                if isinstance(typed, DatabaseUnavailable):
                    # (A connection that was lost is already back in the pool, detached.)
                    with contextlib.suppress(Exception):
                        self.conn.terminate()
                _reraise(typed, error)
        finally:
            await _quiet(self.pool.release(self.conn))


def _reraise(typed: BaseException, original: BaseException) -> NoReturn:
    if typed is original:
        raise original
    raise typed from original


def _typed(error: BaseException, conn: asyncpg.Connection | None) -> BaseException:
    if is_connection_error(error, conn):
        return DatabaseUnavailable(f"{type(error).__name__}: {error}")
    if isinstance(error, asyncpg.PostgresError):
        return translate(error)
    return error


@asynccontextmanager
async def transaction(conn: asyncpg.Connection | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on :func:`connection` - a savepoint when one is already open, so a
    refusal inside it leaves the caller's transaction usable."""
    async with connection(conn) as c, c.transaction():
        yield c


@asynccontextmanager
async def snapshot(conn: asyncpg.Connection | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose statements all read one snapshot: a ``REPEATABLE READ READ
    ONLY`` transaction, or the caller's transaction when one is open."""
    async with connection(conn) as c:
        if c.is_in_transaction():
            yield c
        else:
            async with c.transaction(isolation="repeatable_read", readonly=True):
                yield c


async def run(
    operation: Callable[[asyncpg.Connection], Awaitable[T]],
    conn: asyncpg.Connection | None = None,
    *,
    retries: int = RETRIES,
    one_statement: bool = False,
) -> T:
    """Run ``operation(c)`` in one transaction (a savepoint inside a caller's), retrying
    it from the start after a deadlock or serialization failure, at most ``retries``
    times in all, then raising :class:`~agent_app.errors.Contention`. Every other error
    leaves typed (see :func:`connection`); a refusal rolls back what the operation did.

    ``one_statement``: the operation is a single statement, atomic on its own, so outside
    a caller's transaction it runs without BEGIN/COMMIT (two round trips saved)."""
    async with connection(conn) as c:
        for attempt in range(1, retries + 1):
            try:
                if one_statement and not c.is_in_transaction():
                    return await operation(c)
                async with c.transaction():
                    return await operation(c)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, Contention) as e:
                # (Contention: the same failure, already typed by a nested connection().)
                if attempt == retries:
                    raise Contention(
                        f"gave up after {retries} attempts: {type(e).__name__}: {e}"
                    ) from e
                # Back off a little, randomly, so the other party gets through first.
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")


async def fetch(sql: str, *args: Any, conn: asyncpg.Connection | None = None) -> list[Any]:
    """All rows of one statement on :func:`connection`. Inside a caller's transaction the
    statement runs in a savepoint, so a refusal leaves that transaction usable."""
    async with connection(conn) as c:
        if c.is_in_transaction():
            async with c.transaction():
                return list(await c.fetch(sql, *args))
        return list(await c.fetch(sql, *args))


async def fetchrow(
    sql: str, *args: Any, conn: asyncpg.Connection | None = None
) -> asyncpg.Record | None:
    """Like :func:`fetch`, for one row (or None)."""
    async with connection(conn) as c:
        if c.is_in_transaction():
            async with c.transaction():
                return await c.fetchrow(sql, *args)
        return await c.fetchrow(sql, *args)


async def fetchval(sql: str, *args: Any, conn: asyncpg.Connection | None = None) -> Any:
    """Like :func:`fetch`, for a single value."""
    async with connection(conn) as c:
        if c.is_in_transaction():
            async with c.transaction():
                return await c.fetchval(sql, *args)
        return await c.fetchval(sql, *args)


def compile_query(query: Any) -> tuple[str, list[Any]]:
    """The SQL and arguments of a Piccolo query (select, update, delete, insert): the
    worker API builds its plain reads and writes with Piccolo's query builder and runs
    them here, on agent_app's connections, with its error typing."""
    strings = query.querystrings
    if len(strings) != 1:
        raise ValueError(f"expected one statement, the query makes {len(strings)}")
    sql, args = strings[0].compile_string(engine_type="postgres")
    return sql, list(args)


class _Placeholder(str):
    """A value standing for parameter ``$n`` while a :class:`Compiled` query is built: a
    ``str`` (Piccolo passes strings through untouched, JSON columns included), distinct per
    parameter, so the compiled arguments say which value became which ``$n``."""

    __slots__ = ()


class Compiled:
    """A Piccolo query compiled once, on first use, for a read or write whose shape never
    changes but whose compiling costs more than running it (a join through a foreign key
    takes Piccolo a millisecond or more of client CPU). Run :attr:`sql` with
    :func:`fetch` (or :func:`fetchrow`, :func:`execute`) and the real values.

    ``build`` takes ``params`` arguments and returns the query, using them where the
    values go: ``Compiled(lambda agent, resource: Budget.select(...).where(Budget.agent_id
    == agent, Budget.resource == resource), params=2)`` makes ``$1`` the agent and ``$2``
    the resource: the statement's ``$n`` is ``build``'s n-th argument, and the query must
    hold them in that order (its ``where`` first, then its other clauses).

    The rule: a value works as a parameter only where Piccolo sends it as one - a
    comparison (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``like``), an update's value,
    an insert's value. Piccolo writes some values into the SQL text instead (``.limit(n)``
    and ``.offset(n)`` as literals, ``== None`` as ``IS NULL``) and sends ``is_in(list)``
    as one parameter per element: such a query would freeze its first values or shift the
    ``$n``. So on first compile ``build`` gets distinct placeholder values, and unless the
    compiled query carries exactly them, in order, as ``$1 .. $params`` (each used), a
    ``TypeError`` says what is wrong - the first test that runs the query fails, not a
    production call with other values. A limit or a list of ids belongs in a ``.sql``
    statement (``LIMIT $n``, ``= ANY($n::type[])``). Nothing is compiled at import
    (compiling needs the engine of ``piccolo_conf.py``)."""

    __slots__ = ("_build", "_params", "_sql")

    def __init__(self, build: Callable[..., Any], *, params: int) -> None:
        if params < 0:
            raise ValueError(f"params must be >= 0, got {params}")
        self._build = build
        self._params = params
        self._sql: str | None = None

    @property
    def params(self) -> int:
        """How many parameters the statement takes (``$1 .. $params``)."""
        return self._params

    @property
    def sql(self) -> str:
        if self._sql is None:
            self._sql = self._compile()
        return self._sql

    def _compile(self) -> str:
        placeholders = [
            _Placeholder(f"agent_app compiled parameter {n}") for n in range(1, self._params + 1)
        ]
        try:
            sql, args = compile_query(self._build(*placeholders))
        except Exception as e:
            raise TypeError(
                f"Compiled query declared with params={self._params} does not build with "
                f"placeholder values as its arguments ({type(e).__name__}: {e}): each argument "
                f"of build must become one parameter (a limit, an offset, == None or is_in() "
                f"is not a parameter in Piccolo's SQL - put such a statement in a .sql file)"
            ) from e
        used = {int(n) for n in re.findall(r"\$(\d+)", sql)}
        same = len(args) == len(placeholders) and all(
            a is p for a, p in zip(args, placeholders, strict=True)
        )
        if not same or used != set(range(1, self._params + 1)):
            shown = [
                f"${i} = argument {placeholders.index(a) + 1}"
                if any(a is p for p in placeholders)
                else f"${i} = {a!r} (not an argument of build)"
                for i, a in enumerate(args, 1)
            ]
            raise TypeError(
                f"Compiled query declared with params={self._params} compiles to "
                f"{len(args)} parameter(s) [{', '.join(shown)}] and uses "
                f"{[f'${n}' for n in sorted(used)]}: each argument of build must become "
                f"one parameter, in order (a limit, an offset, == None or is_in() is not "
                f"a parameter in Piccolo's SQL - put such a statement in a .sql file): {sql}"
            )
        return sql


async def query(piccolo_query: Any, *, conn: asyncpg.Connection | None = None) -> list[Any]:
    """All rows of a Piccolo query, run like :func:`fetch` (savepoint inside a caller's
    transaction, typed errors)."""
    sql, args = compile_query(piccolo_query)
    return await fetch(sql, *args, conn=conn)


async def query_row(
    piccolo_query: Any, *, conn: asyncpg.Connection | None = None
) -> asyncpg.Record | None:
    """Like :func:`query`, for one row (or None)."""
    sql, args = compile_query(piccolo_query)
    return await fetchrow(sql, *args, conn=conn)


async def execute(sql: str, *args: Any, conn: asyncpg.Connection | None = None) -> str:
    """Like :func:`fetch`, for a statement whose status line is all that matters."""
    async with connection(conn) as c:
        if c.is_in_transaction():
            async with c.transaction():
                return str(await c.execute(sql, *args))
        return str(await c.execute(sql, *args))


#: The encoders of :func:`dumps`, built once (``json.dumps`` with any option builds one per
#: call, half the cost of encoding a small value).
_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_COMPACT_SORTED = json.JSONEncoder(separators=(",", ":"), allow_nan=False, sort_keys=True)


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON for a JSONB parameter. Refuses (``json_round_trip``) what JSON cannot
    hold exactly - sets, bytes, arbitrary objects, NaN and infinities - instead of
    storing a stand-in string; :mod:`agent_app.validation` names the parameter first."""
    try:
        return (_COMPACT_SORTED if sort_keys else _COMPACT).encode(value)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidArgument(
            "json_round_trip", "a JSON value", f"is not JSON ({e})", value
        ) from None


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)
