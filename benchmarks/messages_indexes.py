"""What each index of agent.messages (and its NOTIFY trigger) buys.

1. The generic plan (what asyncpg's prepared statements settle on) of every statement
   ``agent_app.queue`` runs, on a table of 50,000 finished and 2,000 pending messages
   over 50 recipients, analysed: which ``messages_*`` index each one uses.
2. The foreign-key checks PostgreSQL runs when an agent or a feature run is deleted
   (``SELECT 1 FROM ONLY agent.messages WHERE <column> = $1 FOR KEY SHARE``): deleting
   a run cascades to its agents and messages, and each deleted agent is checked against
   ``recipient_id`` and ``sender_id`` (NO ACTION); ``run_id`` cascades.
3. ``pg_stat_user_indexes.idx_scan`` after ``simulate`` (20 runs) and after deleting
   those runs (small tables: many statements are sequential scans there, so this is a
   floor, not the whole story).

An index that no statement and no foreign-key check uses is a candidate to drop. The
trigger (``messages_notify``, AFTER INSERT, once per statement) is what wakes an idle
``Consumer`` within milliseconds of a send (see ``system``: send -> yielded p50); it
costs one ``pg_notify`` per recipient per INSERT statement.

    python -m benchmarks.messages_indexes
"""

from __future__ import annotations

import argparse
import asyncio
import re

from benchmarks.common import prepare, report, table

STATEMENTS = (
    "CLAIM_ONE", "CLAIM_MANY", "ACK", "EXTEND", "RELEASE", "FAIL", "NOT_HELD",
    "CANCEL_PENDING", "REDRIVE", "ANY_AVAILABLE", "NEXT_AVAILABLE",
)  # fmt: skip
IDX_SCANS = """
SELECT indexrelname, idx_scan FROM pg_stat_user_indexes
 WHERE schemaname = 'agent' AND relname = 'messages' ORDER BY indexrelname
"""


async def main(summary: str | None) -> None:
    import asyncpg

    from agent_app import db, queue
    from agent_app.simulation import simulate

    conn = await asyncpg.connect(db.engine().config["dsn"])
    indexes = [
        r["indexname"]
        for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'agent' "
            "AND tablename = 'messages' ORDER BY indexname"
        )
    ]

    # 3 first (on a fresh database), then 1 and 2 on a filled, analysed table.
    await db.start_pool(min_size=2, max_size=10)
    stats = await simulate(20, 4, seed=1)
    await db.close_pool()
    # A backend flushes its statistics when it exits: wait until the closed pool's
    # backends are gone (instead of the 10 s an idle backend may keep them).
    for _ in range(100):
        others = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        if others == 0:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)
    after_sim = {r["indexrelname"]: r["idx_scan"] for r in await conn.fetch(IDX_SCANS)}
    await conn.execute("DELETE FROM agent.feature_runs")
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await asyncio.sleep(1)
    after_delete = {r["indexrelname"]: r["idx_scan"] for r in await conn.fetch(IDX_SCANS)}

    agents = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO agent.agents (agent_type, name) SELECT 'coder', 'i' "
            "FROM generate_series(1, 50) RETURNING id"
        )
    ]
    await conn.execute(
        "INSERT INTO agent.messages (recipient_id, kind, payload, status, finished_at) "
        "SELECT ($1::uuid[])[1 + g % 50], 'k', '{}', 'done', now() "
        "FROM generate_series(1, 50000) g",
        agents,
    )
    await conn.execute(
        "INSERT INTO agent.messages (recipient_id, kind, payload) "
        "SELECT ($1::uuid[])[1 + g % 50], 'k', '{}' FROM generate_series(1, 2000) g",
        agents,
    )
    await conn.execute("ANALYZE agent.messages")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    uses: dict[str, list[str]] = {i: [] for i in indexes}
    rows = []
    for name in STATEMENTS:
        sql = getattr(queue, name)
        n = max(int(x) for x in re.findall(r"\$(\d+)", sql))
        await conn.execute(f"PREPARE s_{name} AS {sql}")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN (COSTS OFF) EXECUTE s_{name}({', '.join(['NULL'] * n)})"
            )
        )
        used = [i for i in indexes if re.search(rf"\b{i}\b", plan)]
        for i in used:
            uses[i].append(f"queue.{name}")
        rows.append([f"queue.{name}", ", ".join(used) or "(none)"])
    for column in ("recipient_id", "sender_id", "run_id"):
        await conn.execute(
            f"PREPARE fk_{column} AS SELECT 1 FROM ONLY agent.messages x "
            f"WHERE {column} = $1 FOR KEY SHARE OF x"
        )
        plan = "\n".join(
            r[0] for r in await conn.fetch(f"EXPLAIN (COSTS OFF) EXECUTE fk_{column}(NULL)")
        )
        used = [i for i in indexes if re.search(rf"\b{i}\b", plan)]
        for i in used:
            uses[i].append(f"FK check on {column}")
        rows.append([f"FK check on {column} (deleting an agent / a run)", ", ".join(used)])
    print("generic plans on 52,000 messages (2,000 pending), analysed:")
    print(table(rows, ["statement", "messages indexes used"]))
    print(f"\nidx_scan after simulate (20 runs, {stats.messages:,} messages) and after "
          "deleting those runs:")  # fmt: skip
    print(table(
        [[i, ", ".join(uses[i]) or "NOTHING", str(after_sim.get(i, 0)),
          str(after_delete.get(i, 0))] for i in indexes],
        ["index", "used by", "idx_scan after simulate", "after deleting runs"],
    ))  # fmt: skip
    unused = [i for i in indexes if not uses[i]]
    print(f"\nindexes no statement or foreign-key check uses: {', '.join(unused) or 'none'}")
    report(summary, [("messages indexes that nothing uses", float(len(unused)), "0",
                      not unused)])  # fmt: skip
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="(the same at any size)")
    parser.add_argument("--summary", default=None, help="append summary rows (JSON lines)")
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.summary))
