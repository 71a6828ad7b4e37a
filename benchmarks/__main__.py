"""Run the benchmarks and print one table of figures against issue 13's targets.

    python -m benchmarks            # everything, full sizes (tens of minutes)
    python -m benchmarks --quick    # everything at small sizes (a few minutes on a loaded box)
    python -m benchmarks --only claim_churn [--only peers ...]

Each benchmark runs in its own process with its own database (so peak memory and table
state do not leak between them; one server for all, DATABASE_URL's or one embedded
cluster, and one migrated template database each benchmark's database is copied from,
so setup is paid once), prints its own figures, the baseline it is
measured against and the EXPLAIN of the statement it measures, and appends its summary
rows to a shared file. Ratios are measured side by side within one benchmark run
(interleaved rounds, medians); on a shared machine absolute figures move from run to
run, ratios much less. Figures without a target (best cases, references, whole-system
numbers) show "-" in the "met" column.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import REPO, TEMPLATE_ENV, drop_database, make_template, table

# (module, what it compares)
BENCHMARKS: list[tuple[str, str]] = [
    ("claim_churn", "claim p50 after 100k messages through their life vs fresh"),
    ("queue_throughput", "claim+ack and send vs a raw asyncpg loop with the same semantics"),
    ("peers", "draining a backlog vs procrastinate (as shipped and tuned)"),
    ("system", "Consumer latency, multi-recipient claims, simulate at 20/200/1,000 runs"),
    ("claim_scaling", "claim at 1M done rows vs 10k (best case: vacuumed)"),
    ("query_scaling", "hot reads at 1M telemetry rows vs 10k, fresh and after churn"),
    ("ingestion", "telemetry bulk ingestion vs bare COPY"),
    ("budget_contention", "one hot budget vs a budget per worker"),
    ("checkpoints_vs_langgraph", "checkpoints vs LangGraph's saver (best case; needs langgraph)"),
    ("messages_indexes", "which statement uses each index of agent.messages"),
    ("langgraph_saver", "AgentAppSaver vs LangGraph's AsyncPostgresSaver (its own printout)"),
    ("agents_session", "AgentAppSession vs the Agents SDK's SQLAlchemySession (its own printout)"),
]

# Benchmarks that print their own figures but add no summary rows: their arguments
# (full mode, --quick).
OWN_ARGS: dict[str, tuple[list[str], list[str]]] = {
    "langgraph_saver": ([], ["--steps", "30"]),
    "agents_session": ([], ["--ops", "30"]),
}


# Peers installed only for their benchmark (never dependencies of agent_app).
NEEDS = {
    "peers": ("procrastinate", "pip install procrastinate"),
    "checkpoints_vs_langgraph": ("langgraph", "pip install -e '.[dev]'"),
    "langgraph_saver": ("langgraph", "pip install -e '.[dev]'"),
    "agents_session": ("agents", "pip install -e '.[dev]'"),
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", action="append", default=[], help="run only these")
    args = parser.parse_args()
    wanted = set(args.only) or {name for name, _ in BENCHMARKS}
    chosen = [name for name, _ in BENCHMARKS if name in wanted]
    unknown = set(args.only) - {name for name, _ in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    # One server for every benchmark (DATABASE_URL's, else one embedded cluster) and one
    # migrated template database that each benchmark copies into its own database.
    setup = time.perf_counter()
    server = os.environ.get("DATABASE_URL")
    if not server:
        from agent_app.database import embedded_url, scratch_pgdata

        server = embedded_url(scratch_pgdata("agent_app_bench_"), throwaway=True)
    template = make_template(server)
    env = {**os.environ, "DATABASE_URL": server, TEMPLATE_ENV: template}
    print(f"(one server, one migrated template database: {time.perf_counter() - setup:.1f} s)")
    fd, summary = tempfile.mkstemp(prefix="agent_app_bench_", suffix=".jsonl")
    os.close(fd)
    failed = []
    started = time.perf_counter()
    what = dict(BENCHMARKS)
    skipped = []
    took: dict[str, float] = {}
    for name in chosen:
        if name in NEEDS and importlib.util.find_spec(NEEDS[name][0].split(".")[0]) is None:
            skipped.append(f"{name} ({NEEDS[name][1]})")
            continue
        print(f"\n=== {name}: {what[name]} ===", flush=True)
        cmd = [sys.executable, "-m", f"benchmarks.{name}"]
        if name in OWN_ARGS:
            cmd += OWN_ARGS[name][1 if args.quick else 0]
        else:
            cmd += ["--summary", summary] + (["--quick"] if args.quick else [])
        one = time.perf_counter()
        if subprocess.run(cmd, cwd=REPO, env=env).returncode != 0:
            failed.append(name)
        took[name] = time.perf_counter() - one
        print(f"--- {name}: {took[name]:.1f} s", flush=True)
    drop_database(server, template)
    rows = []
    with open(summary) as f:
        for line in f:
            r = json.loads(line)
            met = {True: "yes", False: "NO", None: "-"}[r["met"]]
            rows.append([r["figure"], f"{r['value']:.2f}", r["target"], met])
    os.unlink(summary)
    print(f"\n=== summary ({time.perf_counter() - started:.0f} s; ratios side by side; "
          "a loaded shared machine moves absolute figures) ===")  # fmt: skip
    if rows:
        print(table(rows, ["figure", "value", "target", "met"]))
    if took:
        print("seconds per benchmark: " + ", ".join(f"{n} {t:.0f}" for n, t in took.items()))
    if skipped:
        print(f"not run, their peer is not installed: {'; '.join(skipped)}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
