"""Legal status changes, written down as tables.

Each table maps a status to the statuses it may change to. The worker API checks
them for a friendly error, and a database trigger with the same table written out in
SQL (``agent_app/sql/schema/transitions.sql``; the test suite checks that the two
agree) refuses any other change, whoever writes; its error names the rule, e.g.
``sandbox_status_transition: running -> pending``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from agent_app.enums import FeaturePhase, PhaseStatus, SandboxStatus

F, S = FeaturePhase, SandboxStatus

#: A run moves forward one phase at a time, or fails from any phase; both ends are final.
RUN_PHASE: Mapping[FeaturePhase, frozenset[FeaturePhase]] = {
    F.analysis: frozenset({F.approaches, F.failed}),
    F.approaches: frozenset({F.judging, F.failed}),
    F.judging: frozenset({F.implementation, F.failed}),
    F.implementation: frozenset({F.pr, F.failed}),
    F.pr: frozenset({F.completed, F.failed}),
    F.completed: frozenset(),
    F.failed: frozenset(),
}

#: A phase attempt runs once and ends passed or failed.
PHASE_STATUS: Mapping[PhaseStatus, frozenset[PhaseStatus]] = {
    PhaseStatus.running: frozenset({PhaseStatus.passed, PhaseStatus.failed}),
    PhaseStatus.passed: frozenset(),
    PhaseStatus.failed: frozenset(),
}

#: The sandbox lifecycle. Snapshotting happens from a running sandbox and returns to it.
SANDBOX_STATUS: Mapping[SandboxStatus, frozenset[SandboxStatus]] = {
    S.pending: frozenset({S.running, S.failed, S.aborted}),
    S.running: frozenset({S.snapshotting, S.stopping, S.failed, S.aborted}),
    S.snapshotting: frozenset({S.running, S.stopping, S.failed, S.aborted}),
    S.stopping: frozenset({S.stopped, S.failed, S.aborted}),
    S.stopped: frozenset(),
    S.failed: frozenset(),
    S.aborted: frozenset(),
}


def allowed(table: Mapping[Enum, frozenset[Enum]], old: Enum, new: Enum) -> bool:
    """Whether ``old -> new`` is a legal change (staying the same always is)."""
    return old == new or new in table[old]


def next_phase(phase: FeaturePhase) -> FeaturePhase:
    """The phase after ``phase`` on the way to completed."""
    [following] = [p for p in RUN_PHASE[phase] if p is not F.failed]
    return following
