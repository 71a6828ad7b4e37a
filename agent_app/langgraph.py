"""A LangGraph checkpointer on agent_app's PostgreSQL: :class:`AgentAppSaver`.

Install with ``pip install 'agent_app[langgraph]'``. It passes all 81 tests of
``langgraph-checkpoint-conformance`` (put, put_writes, get_tuple, list, delete_thread,
delete_for_runs, copy_thread, prune), and is used like LangGraph's own Postgres saver::

    async with AgentAppSaver.from_conn_string(dsn) as saver:
        graph = builder.compile(checkpointer=saver)

or ``AgentAppSaver(pool)`` over an asyncpg pool, or ``AgentAppSaver()`` on agent_app's
own connections (:func:`agent_app.db.connection`: the Piccolo transaction in progress,
if any, else Piccolo's pool).

What a graph author may rely on:

* Storage is LangGraph's: a checkpoint row per (thread, namespace, checkpoint id) with its
  metadata as ``jsonb`` (``alist(filter=...)`` is a containment query, GIN-indexed), one
  ``bytea`` blob per channel and version serialized with the saver's serializer
  (``JsonPlusSerializer`` by default, msgpack), so a channel that did not change is not
  written again. Primitive channel values (``None``, ``str``, ``int``, ``float``,
  ``bool``) travel inside the checkpoint row, as in LangGraph's saver.
* ``aput`` is one statement: the checkpoint and its new blobs are stored together or not
  at all. Putting the same checkpoint id again replaces its body and metadata.
* ``aput_writes`` is idempotent on ``(checkpoint, task_id, idx)``: a retried call stores
  each write once (special channels such as ``__error__`` are replaced instead). Writes
  need no checkpoint row: LangGraph may save a step's writes before its checkpoint.
* A thread may be tied to a feature run and an agent of ours with :meth:`link_thread`;
  deleting the run deletes its threads with everything they hold.
* ``adelete_for_runs`` takes LangGraph run ids (``metadata["run_id"]``);
  ``aprune(strategy="keep_latest")`` keeps the newest checkpoint of each namespace and
  writes that may belong to checkpoints still being saved. Both delete the blobs no
  remaining checkpoint names. A put that continues from a checkpoint deleted by them
  (rather than from a kept one) may find its unchanged channels gone: prune threads
  that are not running.
* The sync methods (``get_tuple``, ``list``, ``put`` ...) run the async ones on the loop
  the saver was created on, from another thread, as LangGraph's async saver does.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from piccolo.table import Table

from agent_app import db, sqlfile
from agent_app.errors import AgentAppError
from agent_app.rows import extra, from_record, row_type
from agent_app.tables import GraphBlob, GraphCheckpoint, GraphThread, GraphWrite

T = TypeVar("T")

_TABLES: tuple[type[Table], ...] = (GraphThread, GraphCheckpoint, GraphBlob, GraphWrite)

#: The tables this saver needs; the agent_app migrations create them.
TABLES = tuple(t._meta.tablename for t in _TABLES)

PRUNE_STRATEGIES = ("keep_latest", "delete")


class SchemaMissing(AgentAppError):
    """The saver's tables are not in the database: run ``piccolo migrations forwards all``."""

    rule = "schema_missing"


class InvalidThreadConfig(AgentAppError):
    """A config without the ``thread_id`` the call needs."""

    rule = "graph_thread_id"


# --------------------------------------------------------------------------- #
# SQL: every statement the saver runs (agent_app/sql/queries/langgraph.sql)
# --------------------------------------------------------------------------- #

SQL = sqlfile.load("langgraph")
PUT_CHECKPOINT = SQL["put_checkpoint"]
#: A retried put_writes changes nothing ...
INSERT_WRITES = SQL["insert_writes"]
#: ... except for special channels (errors, interrupts), whose latest value wins.
UPSERT_WRITES = SQL["upsert_writes"]
GET_LATEST = SQL["get_latest"]
GET_BY_ID = SQL["get_by_id"]
LIST = SQL["list"]
LINK_THREAD = SQL["link_thread"]
MISSING_TABLES = SQL["missing_tables"]
DELETE_FOR_RUNS = SQL["delete_for_runs"]
PRUNE_KEEP_LATEST = SQL["prune_keep_latest"]
COLLECT_BLOBS = SQL["collect_blobs"]
DELETE_THREAD = SQL["delete_thread"]
#: Prune strategy "delete": checkpoints, writes, blobs, in this order.
PRUNE_DELETE = tuple(
    SQL[name] for name in ("prune_delete_checkpoints", "prune_delete_writes", "prune_delete_blobs")
)
COPY_THREAD = tuple(
    SQL[name] for name in ("copy_thread_row", "copy_blobs", "copy_checkpoints", "copy_writes")
)


@row_type(
    GraphCheckpoint,
    blob_channels=extra(),
    blob_types=extra(),
    blob_values=extra(),
    task_ids=extra(),
    write_channels=extra(),
    write_types=extra(),
    write_values=extra(),
    task_paths=extra(),
    idxs=extra(),
)
@dataclass(frozen=True, slots=True)
class _Stored:
    """A checkpoint row as the get/list statements read it: the blobs of the channel
    versions it names, and its pending writes, as parallel arrays (null when none)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    body: bytes
    metadata: Any
    blob_channels: list[str] | None
    blob_types: list[str] | None
    blob_values: list[Any] | None  # null for the "empty" type
    task_ids: list[str] | None
    write_channels: list[str] | None
    write_types: list[str] | None
    write_values: list[bytes] | None
    task_paths: list[str] | None
    idxs: list[int] | None


def _is_inline(value: Any) -> bool:
    """Values LangGraph's Postgres saver keeps in the checkpoint row, not as a blob."""
    return value is None or isinstance(value, str | int | float | bool)


def _thread_id(config: RunnableConfig | None) -> str:
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or str(thread_id) == "":
        raise InvalidThreadConfig(
            f"config {configurable!r} has no thread_id; pass "
            "{'configurable': {'thread_id': ...}}"
        )
    return str(thread_id)


class AgentAppSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer over agent_app's PostgreSQL (see the module docstring).

    :param pool: an asyncpg pool to use; without one, agent_app's connection rules apply
        (:func:`agent_app.db.connection`: the Piccolo transaction in progress, else
        Piccolo's pool).
    :param serde: LangGraph serializer for channel values, writes and checkpoint bodies
        (default ``JsonPlusSerializer``).
    """

    def __init__(
        self, pool: asyncpg.Pool | None = None, *, serde: SerializerProtocol | None = None
    ) -> None:
        super().__init__(serde=serde)
        self.pool = pool
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        pool_size: int = 10,
        serde: SerializerProtocol | None = None,
    ) -> AsyncIterator[AgentAppSaver]:
        """A saver over a pool of its own (``pool_size`` connections at most) to the
        database at ``conn_string``; the pool is closed on exit."""
        pool = await asyncpg.create_pool(conn_string, min_size=1, max_size=pool_size)
        try:
            yield cls(pool, serde=serde)
        finally:
            await pool.close()

    # ----------------------------------------------------------------------- #
    # Connections
    # ----------------------------------------------------------------------- #

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        async with db.connection(from_pool=self.pool) as conn:
            yield conn

    async def setup(self) -> None:
        """Check that the saver's tables exist. Migrations own the DDL: this creates
        nothing, and raises :class:`SchemaMissing` naming the missing tables."""
        names = [t._meta.get_formatted_tablename(quoted=False) for t in _TABLES]
        async with self._conn() as conn:
            missing = [r[0] for r in await conn.fetch(MISSING_TABLES, names)]
        if missing:
            raise SchemaMissing(
                f"tables {', '.join(missing)} are missing: run `piccolo migrations forwards all`"
            )

    async def link_thread(
        self,
        thread_id: str,
        *,
        run_id: uuid.UUID | None = None,
        agent_id: uuid.UUID | None = None,
    ) -> None:
        """Tie the thread (created if new) to a feature run and/or an agent of ours;
        ``None`` unties. Deleting the run then deletes the thread with its checkpoints.
        An unknown run or agent raises :class:`~agent_app.errors.RuleViolation`
        (``graph_threads_run_id_fkey`` / ``graph_threads_agent_id_fkey``)."""
        async with self._conn() as conn:
            await conn.execute(LINK_THREAD, str(thread_id), run_id, agent_id)

    # ----------------------------------------------------------------------- #
    # Reading
    # ----------------------------------------------------------------------- #

    def _load_tuple(self, record: asyncpg.Record) -> CheckpointTuple:
        row = from_record(_Stored, record)
        checkpoint = cast(Checkpoint, self.serde.loads_typed((row.type, row.body)))
        values = dict(checkpoint.get("channel_values") or {})
        if row.blob_channels:
            assert row.blob_types is not None and row.blob_values is not None
            for channel, type_, blob in zip(
                row.blob_channels, row.blob_types, row.blob_values, strict=True
            ):
                if type_ != "empty":
                    values[channel] = self.serde.loads_typed((type_, blob))
        checkpoint["channel_values"] = values
        writes: list[tuple[str, str, Any]] = []
        if row.task_ids:
            assert row.task_paths is not None and row.idxs is not None
            assert row.write_channels is not None and row.write_types is not None
            assert row.write_values is not None
            stored = sorted(
                zip(
                    row.task_paths,
                    row.task_ids,
                    row.idxs,
                    row.write_channels,
                    row.write_types,
                    row.write_values,
                    strict=True,
                ),
                key=lambda w: writes_sort_key(w[0], w[1], w[2]),
            )
            writes = [
                (task_id, channel, self.serde.loads_typed((type_, blob)))
                for _, task_id, _, channel, type_, blob in stored
            ]
        thread_id, ns = row.thread_id, row.checkpoint_ns
        parent = row.parent_checkpoint_id
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": row.checkpoint_id,
                }
            },
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, row.metadata),
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent,
                    }
                }
                if parent
                else None
            ),
            pending_writes=writes,
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config`` (its ``checkpoint_id``), or the thread's
        newest in the namespace when it names none; ``None`` if there is none."""
        thread_id = _thread_id(config)
        ns = config["configurable"].get("checkpoint_ns", "") or ""
        checkpoint_id = get_checkpoint_id(config)
        async with self._conn() as conn:
            if checkpoint_id:
                row = await conn.fetchrow(GET_BY_ID, thread_id, ns, checkpoint_id)
            else:
                row = await conn.fetchrow(GET_LATEST, thread_id, ns)
        return None if row is None else self._load_tuple(row)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first (by checkpoint id): of the thread (and namespace,
        and checkpoint id) in ``config``, or of every thread when ``config`` is None;
        whose metadata contains ``filter``; older than ``before``; at most ``limit``."""
        thread_id = ns = checkpoint_id = before_id = None
        if config is not None:
            thread_id = _thread_id(config)
            ns = config["configurable"].get("checkpoint_ns")
            checkpoint_id = get_checkpoint_id(config) or None
        if before is not None:
            before_id = get_checkpoint_id(before) or None
        contains = db.dumps(filter) if filter else None
        async with self._conn() as conn:
            rows = await conn.fetch(
                LIST,
                thread_id,
                ns,
                checkpoint_id,
                contains,
                before_id,
                None if limit is None else int(limit),
            )
        for row in rows:
            yield self._load_tuple(row)

    # ----------------------------------------------------------------------- #
    # Writing
    # ----------------------------------------------------------------------- #

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint with the blobs of the channels in ``new_versions`` (one
        statement: all or nothing). Returns the config naming the stored checkpoint."""
        thread_id = _thread_id(config)
        ns = config["configurable"].get("checkpoint_ns", "") or ""
        parent_id = config["configurable"].get("checkpoint_id")

        inline: dict[str, Any] = {}
        blobs: dict[str, Any] = {}
        for channel, value in checkpoint["channel_values"].items():
            (inline if _is_inline(value) else blobs)[channel] = value
        body = checkpoint.copy()
        body["channel_values"] = inline
        body_type, body_bytes = self.serde.dumps_typed(body)

        b_channels, b_versions, b_types, b_blobs = [], [], [], []
        for channel, version in new_versions.items():
            if channel in blobs:
                type_, blob = self.serde.dumps_typed(blobs[channel])
                b_channels.append(channel)
                b_versions.append(str(version))
                b_types.append(type_)
                b_blobs.append(blob)
        named = [(c, str(v)) for c, v in checkpoint["channel_versions"].items() if c not in inline]
        async with self._conn() as conn:
            await conn.execute(
                PUT_CHECKPOINT,
                thread_id,
                ns,
                b_channels,
                b_versions,
                b_types,
                b_blobs,
                checkpoint["id"],
                parent_id,
                body_type,
                body_bytes,
                [c for c, _ in named],
                [v for _, v in named],
                db.dumps(get_serializable_checkpoint_metadata(config, metadata)),
            )
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against the checkpoint in ``config``; idempotent on
        ``(task_id, idx)`` (special channels are replaced)."""
        if not writes:
            return
        thread_id = _thread_id(config)
        configurable = config["configurable"]
        idxs, channels, types, blobs = [], [], [], []
        for idx, (channel, value) in enumerate(writes):
            type_, blob = self.serde.dumps_typed(value)
            idxs.append(WRITES_IDX_MAP.get(channel, idx))
            channels.append(channel)
            types.append(type_)
            blobs.append(blob)
        sql = UPSERT_WRITES if all(w[0] in WRITES_IDX_MAP for w in writes) else INSERT_WRITES
        async with self._conn() as conn:
            await conn.execute(
                sql,
                thread_id,
                configurable.get("checkpoint_ns", "") or "",
                configurable["checkpoint_id"],
                str(task_id),
                task_path,
                idxs,
                channels,
                types,
                blobs,
            )

    # ----------------------------------------------------------------------- #
    # Deleting, copying, pruning
    # ----------------------------------------------------------------------- #

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread with all its checkpoints, blobs and writes (and its links)."""
        async with self._conn() as conn:
            await conn.execute(DELETE_THREAD, str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints LangGraph runs ``run_ids`` saved (``metadata.run_id``),
        in every thread and namespace, with their writes and the blobs no remaining
        checkpoint names. One transaction."""
        if isinstance(run_ids, str):
            raise TypeError("run_ids must be a sequence of run IDs, not a str")
        ids = [str(r) for r in run_ids]
        if not ids:
            return
        async with self._conn() as conn, conn.transaction():
            scope = await conn.fetch(DELETE_FOR_RUNS, ids)
            if scope:
                threads, namespaces = zip(*scope, strict=True)  # (thread, namespace) pairs
                await conn.execute(COLLECT_BLOBS, threads, namespaces)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another (one
        transaction; rows the target already has are kept). The copy is not linked to a
        run or agent. Copying a thread that does not exist copies nothing."""
        async with self._conn() as conn, conn.transaction():
            for sql in COPY_THREAD:
                await conn.execute(sql, str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep only the newest checkpoint of each namespace of each
        thread (and writes not older than it); ``delete``: delete every checkpoint, blob
        and write of the threads, keeping the thread rows and their links. One
        transaction. An unknown strategy raises ``ValueError``."""
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(f"Unknown prune strategy: {strategy!r}")
        ids = [str(t) for t in thread_ids]
        if not ids:
            return
        async with self._conn() as conn, conn.transaction():
            if strategy == "delete":
                for sql in PRUNE_DELETE:
                    await conn.execute(sql, ids)
                return
            scope = await conn.fetch(PRUNE_KEEP_LATEST, ids)
            if scope:
                threads, namespaces = zip(*scope, strict=True)  # (thread, namespace) pairs
                await conn.execute(COLLECT_BLOBS, threads, namespaces)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as LangGraph's Postgres saver makes them: a zero-padded counter and
        a random fraction, so two forks from one parent never share a blob key."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # ----------------------------------------------------------------------- #
    # Sync methods: bridged to the saver's loop (from another thread only)
    # ----------------------------------------------------------------------- #

    def _bridge(self, coro: Any) -> Any:
        loop = self.loop
        if loop is None:
            coro.close()
            raise asyncio.InvalidStateError(
                "AgentAppSaver has no event loop yet: create it inside a running loop "
                "or use it asynchronously first"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise asyncio.InvalidStateError(
                "Synchronous calls to AgentAppSaver are only allowed from a different "
                "thread than its event loop's; use the async methods (aget_tuple, "
                "graph.ainvoke, ...) there."
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return cast(CheckpointTuple | None, self._bridge(self.aget_tuple(config)))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        yield from cast(list[CheckpointTuple], self._bridge(collect()))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return cast(
            RunnableConfig, self._bridge(self.aput(config, checkpoint, metadata, new_versions))
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._bridge(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._bridge(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._bridge(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._bridge(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._bridge(self.aprune(thread_ids, strategy=strategy))
