"""Run the benchmarks and print one table of ratios against issue 13's targets.

    python -m benchmarks            # everything, full sizes (tens of minutes)
    python -m benchmarks --quick    # the queue benchmarks at small sizes (under two minutes)
    python -m benchmarks --only claim_churn [--only peers ...]

Each benchmark runs in its own process with its own throwaway database (so peak memory
and server state do not leak between them), prints its own figures, baseline and the
EXPLAIN of the statement it measures, and appends its summary rows to a shared file.
Ratios are measured side by side within one benchmark run; on a shared machine absolute
figures move from run to run, ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import REPO, table

# (module, runs in --quick, extra arguments in full mode)
BENCHMARKS: list[tuple[str, bool, list[str]]] = [
    ("claim_churn", True, []),
    ("queue_throughput", True, []),
    ("peers", True, []),
    ("claim_scaling", False, []),
    ("budget_contention", False, []),
    ("ingestion", False, []),
    ("query_scaling", False, []),
    ("checkpoints_vs_langgraph", False, []),  # needs langgraph-checkpoint-postgres
]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, queue benchmarks")
    parser.add_argument("--only", action="append", default=[], help="run only these")
    args = parser.parse_args()
    wanted = set(args.only) or {n for n, in_quick, _ in BENCHMARKS if in_quick or not args.quick}
    chosen = [(name, extra) for name, _, extra in BENCHMARKS if name in wanted]
    unknown = set(args.only) - {name for name, _, _ in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    fd, summary = tempfile.mkstemp(prefix="agent_app_bench_", suffix=".jsonl")
    os.close(fd)
    failed = []
    started = time.perf_counter()
    for name, extra in chosen:
        print(f"\n=== {name} ===", flush=True)
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *extra]
        supports_summary = name in ("claim_churn", "queue_throughput", "peers")
        if supports_summary:
            cmd += ["--summary", summary] + (["--quick"] if args.quick else [])
        if subprocess.run(cmd, cwd=REPO).returncode != 0:
            failed.append(name)
    rows = []
    with open(summary) as f:
        for line in f:
            r = json.loads(line)
            met = {True: "yes", False: "NO", None: "-"}[r["met"]]
            rows.append([r["figure"], f"{r['value']:.2f}", r["target"], met])
    os.unlink(summary)
    print(f"\n=== summary ({time.perf_counter() - started:.0f} s; ratios side by side) ===")
    if rows:
        print(table(rows, ["figure", "value", "target", "met"]))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
