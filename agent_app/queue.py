"""The message queue between agents: priority FIFO, leases, retries, dead letters.

What a worker may rely on:

* **Order.** For each recipient, messages are claimed highest ``priority`` first
  (9 … 0) and, within a priority, in the order they were sent (``id``). A message
  is claimable once its ``available_at`` has passed (``delay`` and retry backoff).
* **Exactly one holder.** :func:`claim` is one statement (``FOR UPDATE SKIP LOCKED``):
  concurrent workers never receive the same message under the same lease, and never
  wait on each other's locks.
* **Leases, no janitor.** A claim holds a lease until ``lease_expires_at``. A claim
  whose lease expired goes back to pending (its attempt counted; ``dead`` after
  ``max_attempts``) on the next :func:`claim` for its recipient by any worker, which
  also notifies, so it is claimed again straight away.
  :func:`extend_lease` is the heartbeat.
* **Acks are checked.** :func:`ack`, :func:`fail`, :func:`extend_lease` and
  :func:`release` act only while the caller still holds the lease (same worker,
  same attempt) **and it has not expired** by the database's clock
  (``lease_expires_at > statement_timestamp()``: the time of the statement, not of the
  start of a caller's transaction, which ``now()`` would be); otherwise they raise
  :class:`~agent_app.errors.LeaseLost` and change nothing. An expired lease is lost
  even before anyone re-claims the message: the holder cannot ack work another worker
  may already be redoing, and :func:`extend_lease` cannot revive it - heartbeat well
  within the lease (:class:`Consumer` beats every ``lease / 3``).
* **Retries.** :func:`fail` puts the message back with exponential backoff
  (``RETRY_BASE * 2 ** (attempts - 1)``, capped at ``RETRY_MAX``) until
  ``max_attempts``, then ``dead``. :func:`redrive` brings dead messages back.
* **Wake-ups.** Every insert of available messages notifies channel
  ``agent_messages`` with the recipient id (a database trigger, so raw SQL
  inserts wake consumers too). :class:`Consumer` listens, and polls as a fallback
  when notifications are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import asyncpg

from agent_app import db, sqlfile
from agent_app import tables as t
from agent_app.constants import MAX_MESSAGE_PRIORITY, MESSAGES_CHANNEL
from agent_app.enums import MessageStatus
from agent_app.errors import DatabaseUnavailable, LeaseLost, RuleViolation
from agent_app.rows import as_text, from_records, row_type
from agent_app.validation import validated

T = TypeVar("T")
_log = logging.getLogger(__name__)

CHANNEL = MESSAGES_CHANNEL
DEFAULT_LEASE = dt.timedelta(seconds=30)
RETRY_BASE = dt.timedelta(seconds=1)
RETRY_MAX = dt.timedelta(hours=1)
#: The shortest wait (seconds) of an idle :class:`Consumer` between claims, for when a
#: due message is row-locked by another transaction.
IDLE_FLOOR = 0.1
#: How long (seconds) :meth:`Consumer.stop` waits for a claim under way to land.
STOP_WAIT = 5.0


def default_worker_id() -> str:
    """``host:pid:random`` - unique per process, readable in the admin."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Outgoing:
    """A message to send with :func:`send_many`."""

    recipient_id: uuid.UUID
    kind: str
    payload: Any = None
    priority: int = 0
    sender_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    delay: dt.timedelta = dt.timedelta(0)
    max_attempts: int = 5


@row_type(t.Message, payload_json=as_text(t.Message.payload))
@dataclass(slots=True)
class Message:
    """A claimed message (a row of ``messages``; treat it as read-only). ``attempts``
    counts this claim; with ``claimed_by`` it identifies the lease that :func:`ack` and
    friends check. ``payload_json`` is the payload as sent (JSON text); ``payload``
    decodes it each time it is read."""

    id: int
    recipient_id: uuid.UUID
    sender_id: uuid.UUID | None
    run_id: uuid.UUID | None
    kind: str
    payload_json: str
    priority: int
    attempts: int
    max_attempts: int
    claimed_by: str
    lease_expires_at: dt.datetime
    created_at: dt.datetime
    last_error: str | None = None

    #: What the lease operations check of a message passed back to them: they act by
    #: its identity (and the worker id), never by the other fields (agent_app.validation).
    __checked_fields__: ClassVar[tuple[str, ...]] = (
        t.Message.id._meta.name,
        t.Message.attempts._meta.name,
    )

    @property
    def payload(self) -> Any:
        return db.loads(self.payload_json)


# What the lease-checked statements return per message.
@row_type(t.Message)
@dataclass(frozen=True, slots=True)
class _MessageId:
    id: int


@row_type(t.Message)
@dataclass(frozen=True, slots=True)
class _Lease:
    id: int
    lease_expires_at: dt.datetime


@row_type(t.Message)
@dataclass(frozen=True, slots=True)
class _Retry:
    id: int
    status: MessageStatus
    available_at: dt.datetime


# --------------------------------------------------------------------------- #
# SQL - each statement is the whole operation, so each operation is atomic. The
# statements, and why each is written the way it is: agent_app/sql/queries/queue.sql.
# --------------------------------------------------------------------------- #

SQL = sqlfile.load("queue")
SEND = SQL["send"]
SEND_MANY = SQL["send_many"]
SEND_MANY_LOCKED = SQL["send_many_locked"]
CLAIM_ONE = SQL["claim_one"]
CLAIM_MANY = SQL["claim_many"]
ACK_CLAIM_ONE = SQL["ack_claim_one"]
ACK_CLAIM_MANY = SQL["ack_claim_many"]
ANY_AVAILABLE = SQL["any_available"]
NEXT_AVAILABLE = SQL["next_available"]
ACK = SQL["ack"]
ACKED_ALREADY = SQL["acked_already"]
NOT_HELD = SQL["not_held"]
EXTEND = SQL["extend"]
RELEASE = SQL["release"]
FAIL = SQL["fail"]
EXTEND_HELD = SQL["extend_held"]
RELEASE_HELD = SQL["release_held"]
CANCEL_PENDING = SQL["cancel_pending"]
REDRIVE = SQL["redrive"]


# --------------------------------------------------------------------------- #
# Operations
# --------------------------------------------------------------------------- #


def _check_priority(priority: int) -> None:
    if not 0 <= priority <= MAX_MESSAGE_PRIORITY:
        raise RuleViolation(
            "priority_range",
            f"priority_range: priority must be 0..{MAX_MESSAGE_PRIORITY}, got {priority}",
            table=t.Message._meta.tablename,
        )


@validated
async def send(
    recipient_id: uuid.UUID,
    kind: str,
    payload: Any = None,
    *,
    priority: int = 0,
    sender_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    delay: dt.timedelta = dt.timedelta(0),
    max_attempts: int = 5,
    conn: asyncpg.Connection | None = None,
) -> int:
    """Send one message; returns its id (ids increase in sending order). Without
    ``run_id`` the message belongs to the recipient's run (the database fills it in).

    Raises :class:`RuleViolation` (``priority_range``, ``attempts_range``,
    ``recipient_live`` for a recipient that has finished, or a foreign key rule for an
    unknown agent) and sends nothing. A send racing ``hierarchy.finish`` of its
    recipient either lands first (and is cancelled by the finish) or is refused.
    """
    _check_priority(priority)
    args = (
        recipient_id,
        kind,
        db.dumps({} if payload is None else payload),
        priority,
        sender_id,
        run_id,
        delay,
        max_attempts,
    )
    message_id: int = await db.run(lambda c: c.fetchval(SEND, *args), conn, one_statement=True)
    return message_id


@validated
async def send_many(
    messages: Iterable[Outgoing], *, conn: asyncpg.Connection | None = None
) -> list[int]:
    """Send many messages in one statement: all or none (one finished recipient
    refuses the batch with ``recipient_live``). Ids return in input order and increase
    in that order, so FIFO follows the list. The recipients are locked ``FOR SHARE`` in
    the lock order of :mod:`agent_app.db`; a deadlock or serialization failure is
    retried (then :class:`~agent_app.errors.Contention`)."""
    batch = list(messages)
    if not batch:
        return []
    for m in batch:
        _check_priority(m.priority)
    columns: tuple[list[Any], ...] = (
        [m.recipient_id for m in batch],
        [m.kind for m in batch],
        [db.dumps({} if m.payload is None else m.payload) for m in batch],
        [m.priority for m in batch],
        [m.sender_id for m in batch],
        [m.run_id for m in batch],
        [m.delay for m in batch],
        [m.max_attempts for m in batch],
    )
    # A value that is the same for every message travels once (an array of one); the
    # payloads always go one per message (they say how many messages there are).
    args: list[Any] = [
        c if i == 2 or any(v != c[0] for v in c) else c[:1] for i, c in enumerate(columns)
    ]
    recipients = list(dict.fromkeys(args[0]))
    sql = SEND_MANY
    if len(recipients) > 1:
        sql = SEND_MANY_LOCKED
        args.append(recipients)
    rows = await db.run(lambda c: c.fetch(sql, *args), conn, one_statement=True)
    return [message_id for (message_id,) in rows]


@validated
async def claim(
    worker_id: str,
    recipients: Sequence[uuid.UUID],
    *,
    limit: int = 1,
    lease: dt.timedelta = DEFAULT_LEASE,
    ack: Message | Sequence[Message] = (),
    conn: asyncpg.Connection | None = None,
) -> list[Message]:
    """Claim up to ``limit`` messages for any of ``recipients``, best first.

    Each returned message is held by ``worker_id`` until ``lease`` passes; its
    ``attempts`` includes this claim. Returns ``[]`` when nothing is available.

    ``ack``: messages this worker is done with, acked (as :func:`ack` does) in the same
    statement before the claim - a worker loop's "done with these, give me the next" in
    one round trip and one commit instead of two::

        messages = await queue.claim(me, [agent_id])
        while messages:
            handle(messages)
            messages = await queue.claim(me, [agent_id], ack=messages)

    All or nothing: if one of them is no longer held, raises
    :class:`~agent_app.errors.LeaseLost` naming it, and nothing is acked and nothing
    claimed. Repeating the call after an ambiguous error
    (:class:`~agent_app.errors.DatabaseUnavailable`) whose first try committed acks
    nothing twice and just claims (messages the lost first try claimed come back when
    their lease ends, as after any claim whose answer was lost).
    """
    done_ids, done_attempts = _lease_args(ack)
    targets = list(dict.fromkeys(recipients))  # (validated: at least one)
    one = len(targets) == 1
    who = targets[0] if one else targets
    sql = CLAIM_ONE if one else CLAIM_MANY
    async with db.connection(conn) as c:
        claimed = False
        if done_ids:
            try:
                # Savepoint-wrapped inside a caller's transaction: a refusal leaves it usable.
                rows = await db.fetch(
                    ACK_CLAIM_ONE if one else ACK_CLAIM_MANY,
                    *(who, limit, worker_id, lease, done_ids, done_attempts),
                    conn=c,
                )
                claimed = True
            except RuleViolation as e:
                if e.rule != "lease_lost":
                    raise
                # Raises LeaseLost unless an earlier try acked them all: then claim only.
                await _refused(c, done_ids, worker_id, done_attempts, done_already=True)
        if not claimed:
            rows = await c.fetch(sql, who, limit, worker_id, lease)
        if not rows and await c.fetchval(ANY_AVAILABLE, targets):
            # Expired leases were just requeued, or concurrent claims held the rows we
            # saw: look once more before reporting "nothing".
            rows = await c.fetch(sql, who, limit, worker_id, lease)
    messages = from_records(Message, rows)
    if len(messages) > 1:
        messages.sort(key=lambda m: (-m.priority, m.id))
    return messages


def _lease_args(messages: Message | Sequence[Message]) -> tuple[list[int], list[int]]:
    """The ids and attempts identifying the leases of ``messages``, each lease once (a
    message listed twice is one lease, not a lost one)."""
    batch = [messages] if isinstance(messages, Message) else messages
    leases = list(dict.fromkeys((m.id, m.attempts) for m in batch))
    return [i for i, _ in leases], [a for _, a in leases]


async def _held(
    sql: str,
    messages: Message | Sequence[Message],
    worker_id: str,
    *extra: Any,
    conn: asyncpg.Connection | None,
    done_already: bool = False,
) -> list[asyncpg.Record]:
    """Run a lease-checked statement; all of ``messages`` or none (LeaseLost). With
    ``done_already``, messages already done under this same claim count as success
    (an ack is idempotent)."""
    ids, attempts = _lease_args(messages)
    if not ids:
        return []
    async with db.connection(conn) as c:
        try:
            # Savepoint-wrapped inside a caller's transaction: a refusal leaves it usable.
            rows = await db.fetch(sql, ids, worker_id, attempts, *extra, conn=c)
        except RuleViolation as e:
            if e.rule != "lease_lost":
                raise
            rows = []
        if len(rows) != len(ids):  # the statement changed nothing
            await _refused(c, ids, worker_id, attempts, done_already=done_already)
            return []
    return list(rows)


async def _refused(
    c: asyncpg.Connection,
    ids: list[int],
    worker_id: str,
    attempts: list[int],
    *,
    done_already: bool,
) -> None:
    """A lease-checked statement on ``ids`` changed nothing: return if ``done_already``
    and they are all done under this very claim (an ack repeated after an ambiguous
    error), else raise :class:`LeaseLost` naming the messages no longer held."""
    if done_already and await c.fetchval(ACKED_ALREADY, ids, worker_id, attempts):
        return
    lost = await c.fetchval(NOT_HELD, ids, worker_id, attempts)
    raise LeaseLost(lost or ids, worker_id)


@validated
async def ack(
    messages: Message | Sequence[Message],
    worker_id: str,
    *,
    conn: asyncpg.Connection | None = None,
) -> None:
    """Mark claimed message(s) done. All or nothing: if any lease was lost, raises
    :class:`LeaseLost` naming those messages and acks none. Idempotent: repeating an
    ack that already happened under the same claim (after an ambiguous error such as
    :class:`~agent_app.errors.DatabaseUnavailable`) succeeds and changes nothing."""
    await _held(ACK, messages, worker_id, conn=conn, done_already=True)


@validated
async def extend_lease(
    messages: Message | Sequence[Message],
    worker_id: str,
    lease: dt.timedelta = DEFAULT_LEASE,
    *,
    conn: asyncpg.Connection | None = None,
) -> dt.datetime:
    """Heartbeat: the lease now ends ``lease`` from now. Returns the new expiry.
    Raises :class:`LeaseLost` if the message was re-claimed meanwhile."""
    rows = await _held(EXTEND, messages, worker_id, lease, conn=conn)
    return min(lease.lease_expires_at for lease in from_records(_Lease, rows))


@validated
async def release(
    messages: Message | Sequence[Message],
    worker_id: str,
    *,
    conn: asyncpg.Connection | None = None,
) -> None:
    """Give claimed message(s) back at once, without spending an attempt (for a worker
    shutting down). Raises :class:`LeaseLost` if a lease was lost."""
    await _held(RELEASE, messages, worker_id, conn=conn)


@validated
async def fail(
    messages: Message | Sequence[Message],
    worker_id: str,
    error: str,
    *,
    retry: bool = True,
    base_delay: dt.timedelta = RETRY_BASE,
    max_delay: dt.timedelta = RETRY_MAX,
    conn: asyncpg.Connection | None = None,
) -> list[tuple[int, MessageStatus, dt.datetime]]:
    """Record a failed attempt. With ``retry`` and attempts left, the message is pending
    again after ``base_delay * 2 ** (attempts - 1)`` (at most ``max_delay``); otherwise
    it is ``dead``. Returns ``(id, status, available_at)`` per message. Raises
    :class:`LeaseLost` if a lease was lost."""
    rows = await _held(FAIL, messages, worker_id, retry, base_delay, max_delay, error, conn=conn)
    return [(r.id, r.status, r.available_at) for r in from_records(_Retry, rows)]


@validated
async def cancel_pending(
    recipients: Sequence[uuid.UUID], *, conn: asyncpg.Connection | None = None
) -> int:
    """Cancel the pending messages of ``recipients`` (agents that were terminated).
    Claimed messages are left to finish or expire. Returns how many were cancelled."""
    async with db.connection(conn) as c:
        rows = await c.fetch(CANCEL_PENDING, list(recipients))
    return len(rows)


@validated
async def redrive(
    message_ids: Sequence[int] | None = None,
    *,
    recipient_id: uuid.UUID | None = None,
    conn: asyncpg.Connection | None = None,
) -> int:
    """Bring dead messages back to pending with their attempts reset: the given ids,
    or all dead messages of ``recipient_id``, or all dead messages. ``last_error`` is
    kept for the record. Returns how many came back."""
    async with db.connection(conn) as c:
        rows = await c.fetch(
            REDRIVE, list(message_ids) if message_ids is not None else None, recipient_id
        )
    return len(rows)


async def _extend_held(
    messages: Sequence[Message], worker_id: str, lease: dt.timedelta
) -> set[int]:
    """Extend the leases still held among ``messages``; returns their ids."""
    ids, attempts = _lease_args(messages)
    rows = await db.fetch(EXTEND_HELD, ids, worker_id, attempts, lease)
    return {r.id for r in from_records(_MessageId, rows)}


async def _release_held(messages: Sequence[Message], worker_id: str) -> set[int]:
    """Release the messages still held among ``messages``; returns their ids."""
    ids, attempts = _lease_args(messages)
    rows = await db.fetch(RELEASE_HELD, ids, worker_id, attempts)
    return {r.id for r in from_records(_MessageId, rows)}


# --------------------------------------------------------------------------- #
# Consumer loop
# --------------------------------------------------------------------------- #


class Consumer:
    """A long-running consumer: ``async for message in consumer`` yields claimed
    messages; the handler then calls :meth:`ack` or :meth:`fail`.

    What a worker may rely on:

    * **Wake-ups.** It LISTENs on ``agent_messages`` on a dedicated connection and wakes
      within milliseconds of a send to one of its recipients; it polls every
      ``poll_interval`` seconds in case a notification is lost (or a retry's backoff
      ends). If the LISTEN connection is lost (a server restart), it reconnects by
      itself and looks for work at once (notifications sent meanwhile are lost), so
      wake-ups return to NOTIFY speed.
    * **Heartbeat.** Every ``lease / 3`` one statement extends the lease of every
      message it holds - handed out and not yet acked, and buffered. A transient error
      (the server restarting) is logged (logger ``agent_app.queue``) and retried; the
      heartbeat never stops before :meth:`stop`.
    * **Never a lost message.** A message whose lease was lost (another worker took it
      after it expired) is never yielded: if no heartbeat has succeeded for a whole
      lease the buffer is dropped (those messages come back to any worker when their
      lease ends), and a buffered message whose lease may have run low is re-checked
      (and extended) before it is yielded. A message already handed out may still
      lose its lease during a failed heartbeat: then :meth:`ack` raises
      :class:`~agent_app.errors.LeaseLost` and the message is redelivered - handlers
      must be idempotent (keyed by ``message.id``).
    * **One round trip per batch.** With ``prefetch`` (the default), :meth:`ack` of the
      last message handed out also claims the next batch, in the same statement as the
      ack (``claim(..., ack=)``); the iteration hands those out. Not inside a
      transaction; one such ack at a time; ``prefetch=False`` turns it off (a consumer
      that handles one message and then does other work holds no batch meanwhile).
    * **Server down.** ``async for`` retries claiming with backoff for up to
      ``unavailable_timeout`` seconds, then raises
      :class:`~agent_app.errors.DatabaseUnavailable` (retryable: start a new
      iteration or a new consumer). :meth:`start` raises it at once.
    * **Stop.** :meth:`stop` (or leaving ``async with``) ends the iteration, releases
      the buffered messages (no attempt spent, claimable at once), stops the heartbeat
      and closes the LISTEN connection - whatever happened before; it never raises an
      old error. Leaving ``async with`` on an exception also fails (retry with
      backoff) the messages handed out and not acked, since their handler is gone; a
      plain :meth:`stop` leaves those to their handlers (ack still works until the
      lease ends). A claim under way when it is called (the iteration's, or an ack's;
      they run to their end even if their task is cancelled) is waited for, at most
      :data:`STOP_WAIT` seconds, and its batch released too.
    """

    @validated
    def __init__(
        self,
        recipients: Sequence[uuid.UUID],
        *,
        worker_id: str | None = None,
        batch_size: int = 10,
        lease: dt.timedelta = DEFAULT_LEASE,
        poll_interval: float = 1.0,
        unavailable_timeout: float = 60.0,
        prefetch: bool = True,
    ) -> None:
        self.recipients = list(recipients)
        self.prefetch = prefetch
        self.worker_id = worker_id or default_worker_id()
        self.batch_size = batch_size
        self.lease = lease
        self.poll_interval = poll_interval
        self.unavailable_timeout = unavailable_timeout
        #: How many times the LISTEN connection was (re)opened, and heartbeats that
        #: failed - for monitoring.
        self.listener_connects = 0
        self.heartbeat_failures = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listening = asyncio.Event()
        self._buffer: list[Message] = []
        self._in_flight: dict[int, Message] = {}
        # monotonic time until which every held lease is known to run (measured from
        # before the statement that set it was sent)
        self._held_until = 0.0
        self._listener: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._targets = {str(r) for r in self.recipients}
        # Claims under way (the iteration's, or an ack's), run shielded; stop() waits.
        self._claims: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None and self._claims:
            # An ack under way (with its claim) settles first: its message is not abandoned.
            await asyncio.wait(set(self._claims), timeout=STOP_WAIT)
        if exc is not None and self._in_flight:
            abandoned = list(self._in_flight.values())
            self._in_flight.clear()
            # One by one: a message whose lease was lost must not keep the others claimed.
            for message in abandoned:
                try:
                    await fail(message, self.worker_id, f"handler left the consumer: {exc!r}")
                except Exception as e:  # a lost lease or a server that is down: it expires
                    _log.warning("could not fail abandoned message %s: %r", message.id, e)
        await self.stop()

    async def start(self) -> None:
        """Open the LISTEN connection and start the heartbeat. Raises
        :class:`~agent_app.errors.DatabaseUnavailable` if the server is down."""
        self._stopping.clear()
        first = await self._connect_listener()
        self._listen_task = asyncio.create_task(self._listen(first))
        self._heartbeat = asyncio.create_task(self._beat())

    async def _connect_listener(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        conn = await db.connect()
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
        except Exception as e:
            conn.terminate()
            raise DatabaseUnavailable(f"{type(e).__name__}: {e}") from e
        self._listener = conn
        self.listener_connects += 1
        self._listening.set()
        self._wake.set()  # anything sent while we were not listening
        return conn, lost

    async def _listen(self, first: tuple[asyncpg.Connection, asyncio.Event]) -> None:
        """Keep a LISTEN connection open, reconnecting with backoff after it is lost."""
        current: tuple[asyncpg.Connection, asyncio.Event] | None = first
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                if current is None:
                    current = await self._connect_listener()
                    _log.info("consumer %s: listening again", self.worker_id)
                    backoff = 0.05
                await current[1].wait()
                _log.warning("consumer %s: LISTEN connection lost; reconnecting", self.worker_id)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                _log.warning("consumer %s: cannot LISTEN yet: %r", self.worker_id, e)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                self._listening.clear()
                if current is not None:
                    current[0].terminate()
                    self._listener = None
                    current = None

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload in self._targets:
            self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        """Stop: release the buffered messages, stop the heartbeat, close the listener.
        Idempotent; never raises (problems are logged)."""
        self._stopping.set()
        self._wake.set()
        for task in (self._heartbeat, self._listen_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._heartbeat = self._listen_task = None
        if self._claims:
            # A claim (an ack's prefetch, or the iteration's) is under way: let it land in
            # the buffer (or give its batch back itself), so nothing it claimed outlives
            # stop() - for at most STOP_WAIT seconds (a server that does not answer must
            # not hang stop(); that batch then comes back when its lease ends).
            await asyncio.wait(set(self._claims), timeout=STOP_WAIT)
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None
        self._listening.clear()
        buffered, self._buffer = self._buffer, []
        if buffered:
            try:
                await _release_held(buffered, self.worker_id)
            except Exception as e:  # a server that is down: the leases expire instead
                _log.warning(
                    "consumer %s: could not release %d buffered messages: %r",
                    self.worker_id,
                    len(buffered),
                    e,
                )

    def _held(self) -> list[Message]:
        return [*self._in_flight.values(), *self._buffer]

    async def _renew(self, messages: list[Message]) -> None:
        """Extend the leases of ``messages`` in one statement; forget the lost ones."""
        sent_at = time.monotonic()
        kept = await _extend_held(messages, self.worker_id, self.lease)
        # (one acked meanwhile is not lost: it is simply no longer held)
        lost = ({m.id for m in messages} - kept) & {m.id for m in self._held()}
        if lost:
            _log.warning("consumer %s: lost the lease on %s", self.worker_id, sorted(lost))
            self._buffer = [m for m in self._buffer if m.id not in lost]
            for i in lost:
                self._in_flight.pop(i, None)
        if {m.id for m in self._held()} <= kept:
            self._held_until = sent_at + self.lease.total_seconds()

    async def _beat(self) -> None:
        interval = self.lease.total_seconds() / 3
        wait = interval
        while True:
            await asyncio.sleep(wait)
            wait = interval
            held = self._held()
            if not held:
                continue
            try:
                await self._renew(held)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.heartbeat_failures += 1
                _log.warning("consumer %s: heartbeat failed: %r", self.worker_id, e)
                self._drop_buffer_if_expired()
                wait = min(interval, 0.5)  # try again soon: the leases are running out

    def _drop_buffer_if_expired(self) -> None:
        if self._buffer and time.monotonic() >= self._held_until:
            _log.warning(
                "consumer %s: no heartbeat for a whole lease; dropping %d buffered "
                "messages (they return to pending when their lease ends)",
                self.worker_id,
                len(self._buffer),
            )
            self._buffer = []

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` until the server answers, at most ``unavailable_timeout``
        seconds, then raise the last DatabaseUnavailable."""
        deadline = time.monotonic() + self.unavailable_timeout
        backoff = 0.05
        while True:
            try:
                return await operation()
            except DatabaseUnavailable as e:
                if time.monotonic() >= deadline or self._stopping.is_set():
                    raise
                _log.warning("consumer %s: database unavailable, retrying: %s", self.worker_id, e)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        margin = self.lease.total_seconds() / 3
        while not self._stopping.is_set():
            self._drop_buffer_if_expired()
            if self._buffer and time.monotonic() >= self._held_until - margin:
                # The heartbeat is late (the server was away): make sure these are
                # still ours before handing one out.
                try:
                    await self._retrying(lambda: self._renew(list(self._buffer)))
                except DatabaseUnavailable:
                    self._drop_buffer_if_expired()
                    raise
                continue
            if not self._buffer and self._claims:
                # An ack is claiming the next batch (a handler in another task): use it.
                await asyncio.wait(set(self._claims))
                continue
            if not self._buffer:
                self._wake.clear()
                await self._retrying(self._shielded_claim)
                if self._stopping.is_set():
                    return
                if not self._buffer:
                    await self._retrying(self._idle)
                    continue
            message = self._buffer.pop(0)
            self._in_flight[message.id] = message
            yield message

    async def _idle(self) -> None:
        timeout = self.poll_interval
        async with db.connection() as c:
            nxt = await c.fetchval(NEXT_AVAILABLE, self.recipients)
        if nxt is not None:
            now = dt.datetime.now(dt.UTC)
            # A due message skipped because another transaction holds its row lock must
            # not turn this into a busy loop: wait at least a short floor.
            floor = min(self.poll_interval, IDLE_FLOOR)
            timeout = max(floor, min(timeout, (nxt - now).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    @validated
    async def ack(self, message: Message, *, conn: asyncpg.Connection | None = None) -> None:
        """Ack a message this consumer handed out (see :func:`ack`; ``conn`` to ack in
        the handler's own transaction). The heartbeat keeps the lease until the ack
        succeeds or the lease is lost, so an ack that raised
        :class:`~agent_app.errors.DatabaseUnavailable` may simply be repeated.

        With ``prefetch`` (the default), when nothing is buffered the ack also claims
        the next batch in the same statement (``claim(..., ack=)``: one round trip per
        batch, not two), which the iteration then hands out - never inside a transaction
        (``conn`` or an open Piccolo transaction), where the caller's rollback could undo
        a claim the consumer had buffered. The statement runs to its end even if the
        handler is cancelled meanwhile, so a cancelled ack loses no batch; :meth:`stop`
        waits for it. As after any claim whose answer is lost, an ack that raised
        ``DatabaseUnavailable`` may have claimed a batch nobody holds: it is claimable
        again when its lease ends."""
        prefetch = (
            self.prefetch
            and conn is None
            and not self._buffer
            and not self._claims
            and not self._stopping.is_set()
            and self._heartbeat is not None
            and not db.in_piccolo_transaction()
        )
        try:
            if prefetch:
                await self._shielded_claim(ack=message)
            else:
                await ack(message, self.worker_id, conn=conn)
        except LeaseLost:
            self._in_flight.pop(message.id, None)
            raise
        self._in_flight.pop(message.id, None)

    async def _shielded_claim(self, ack: Message | None = None) -> None:
        """Claim the next batch into the buffer (acking ``ack`` in the same statement),
        run to its end even if the caller is cancelled meanwhile, and waited for by
        :meth:`stop`: a task cancelled after the claim committed must not leave its batch
        held by nobody until the lease ends."""
        task = asyncio.ensure_future(self._claim_into_buffer(ack))
        self._claims.add(task)
        task.add_done_callback(self._claimed)
        await asyncio.shield(task)

    async def _claim_into_buffer(self, ack: Message | None) -> None:
        # Never inside the caller's Piccolo transaction (this task has its own copy of
        # the context): its rollback would undo a claim whose batch is buffered here.
        db.leave_piccolo_transaction()
        sent_at = time.monotonic()
        claimed = await claim(
            self.worker_id,
            self.recipients,
            limit=self.batch_size,
            lease=self.lease,
            ack=() if ack is None else ack,
        )
        if ack is not None:
            self._in_flight.pop(ack.id, None)
        await self._buffered(claimed, sent_at)

    def _claimed(self, task: asyncio.Task[None]) -> None:
        self._claims.discard(task)
        if not task.cancelled():
            task.exception()  # (raised to the ack that awaited it, if it still did)

    async def _buffered(self, claimed: list[Message], sent_at: float) -> None:
        """Add messages just claimed (the statement sent at ``sent_at``, monotonic) to
        the buffer, or give them back at once if the consumer is stopping."""
        if not claimed:
            return
        if self._stopping.is_set():  # stop() may already have released the buffer
            with contextlib.suppress(Exception):
                await _release_held(claimed, self.worker_id)
            return
        expires = sent_at + self.lease.total_seconds()
        self._held_until = expires if not self._held() else min(self._held_until, expires)
        self._buffer.extend(claimed)
        self._wake.set()  # an idle iteration (a handler acked from another task) hands them out

    @validated
    async def fail(
        self,
        message: Message,
        error: str,
        *,
        retry: bool = True,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Fail a message this consumer handed out (see :func:`fail`)."""
        try:
            await fail(message, self.worker_id, error, retry=retry, conn=conn)
        except LeaseLost:
            self._in_flight.pop(message.id, None)
            raise
        self._in_flight.pop(message.id, None)
