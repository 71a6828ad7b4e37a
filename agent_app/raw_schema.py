"""The database rules Piccolo cannot declare: trigger functions, triggers, composite
and circular foreign keys, the messages identity, and table comments.

Each object is declared here once, as SQL. Migrations carry a frozen copy of
that SQL (a migration never imports this module), and
``piccolo agent_app schema_check`` compares the live database with these
declarations, so a rule changed here without a new migration is reported.

Errors raised by the triggers use SQLSTATE 23514 (check_violation) and set
the constraint name to the rule, so callers catch them like any CHECK
violation and the message starts with the rule's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_app import transitions
from agent_app.ddl import (
    SCHEMA,
    comment_sql,
    qualified,
    sql_list,
    sql_literal,
    storage_reset_sql,
    storage_sql,
    table_indexes,
    table_storage,
)
from agent_app.enums import TERMINAL_AGENT_STATUSES
from agent_app.tables import TABLES

TERMINAL = sql_list(s.value for s in TERMINAL_AGENT_STATUSES)


@dataclass(frozen=True)
class Function:
    """A PL/pgSQL function; ``body`` is the text between the dollar quotes."""

    name: str
    signature: str
    returns: str
    body: str
    #: ``SET`` clauses. Functions that look rows up set ``enable_seqscan = off``: their
    #: lookups are index lookups by design, and PL/pgSQL caches plans, so a plan made
    #: while a table was small would otherwise scan the whole table on every later call
    #: (measured: a 30,000-row checkpoint insert took 31 s instead of 1.3 s).
    settings: tuple[str, ...] = ()

    def create_sql(self) -> str:
        settings = "".join(f" SET {s}" for s in self.settings)
        return (
            f"CREATE OR REPLACE FUNCTION {SCHEMA}.{self.name}({self.signature}) "
            f"RETURNS {self.returns} LANGUAGE plpgsql{settings} AS $fn${self.body}$fn$;"
        )

    def config(self) -> list[str]:
        """The settings as ``pg_proc.proconfig`` lists them."""
        return [s.replace(" = ", "=") for s in self.settings]

    def drop_sql(self) -> str:
        return f"DROP FUNCTION IF EXISTS {SCHEMA}.{self.name}({self.signature});"


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    timing: str  # e.g. "BEFORE UPDATE", "AFTER UPDATE OF status"
    function: str
    when: str | None = None
    for_each: str = "ROW"
    referencing: str | None = None  # e.g. "NEW TABLE AS new_rows" (statement triggers)

    def create_sql(self) -> str:
        when = f" WHEN ({self.when})" if self.when else ""
        referencing = f" REFERENCING {self.referencing}" if self.referencing else ""
        return (
            f"CREATE TRIGGER {self.name} {self.timing} ON {SCHEMA}.{self.table}{referencing} "
            f"FOR EACH {self.for_each}{when} EXECUTE FUNCTION {SCHEMA}.{self.function}();"
        )

    def drop_sql(self) -> str:
        return f"DROP TRIGGER IF EXISTS {self.name} ON {SCHEMA}.{self.table};"


@dataclass(frozen=True)
class Constraint:
    """A table constraint added with ALTER TABLE (here: foreign keys Piccolo can't declare)."""

    name: str
    table: str
    definition: str
    why: str = ""

    def create_sql(self) -> str:
        return f"ALTER TABLE {SCHEMA}.{self.table} ADD CONSTRAINT {self.name} {self.definition};"

    def drop_sql(self) -> str:
        return f"ALTER TABLE {SCHEMA}.{self.table} DROP CONSTRAINT IF EXISTS {self.name};"


def _rule(
    name: str, message: str, *args: str, detail: str | None = None, table: str = "TG_TABLE_NAME"
) -> str:
    """PL/pgSQL that raises a check_violation named ``name``; message starts with the name.
    ``detail`` (a SQL expression, e.g. ``json_build_object(...)::text``) carries the values
    for a typed Python error; ``table`` is a SQL expression (a literal outside triggers)."""
    params = "".join(f", {a}" for a in args)
    extra = f", DETAIL = {detail}" if detail else ""
    return (
        f"RAISE EXCEPTION '{name}: {message}'{params} "
        f"USING ERRCODE = 'check_violation', CONSTRAINT = '{name}', SCHEMA = '{SCHEMA}', "
        f"TABLE = {table}{extra}"
    )


FUNCTIONS: tuple[Function, ...] = (
    Function(
        "set_updated_at",
        "",
        "trigger",
        """
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
""",
    ),
    Function(
        "agents_guard",
        "",
        "trigger",
        f"""
DECLARE
    parent record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.parent_id IS NULL THEN
            NEW.depth_level := 0;
        ELSE
            -- FOR SHARE: a parent cannot finish while a child is being added under it.
            SELECT depth_level, status INTO parent
              FROM {SCHEMA}.agents WHERE id = NEW.parent_id FOR SHARE;
            IF FOUND THEN
                IF parent.status IN ({TERMINAL}) THEN
                    {
            _rule(
                "parent_live",
                "parent agent % is %, it cannot take children",
                "NEW.parent_id",
                "parent.status",
            )
        };
                END IF;
                -- depth_limit (a CHECK) refuses a level past the maximum.
                NEW.depth_level := parent.depth_level + 1;
            END IF;
            -- A missing parent is reported by the foreign key, a self parent by parent_not_self.
        END IF;
        IF NEW.status IN ({TERMINAL}) THEN
            NEW.finished_at := coalesce(NEW.finished_at, now());
        END IF;
        RETURN NEW;
    END IF;

    IF NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        {
            _rule(
                "parent_fixed",
                "agent % cannot move from parent % to %",
                "OLD.id",
                "OLD.parent_id",
                "NEW.parent_id",
            )
        };
    END IF;
    IF NEW.depth_level <> OLD.depth_level THEN
        {
            _rule(
                "depth_level_derived",
                "agent % sits at depth %, it cannot be set to %",
                "OLD.id",
                "OLD.depth_level",
                "NEW.depth_level",
            )
        };
    END IF;
    IF OLD.status IN ({TERMINAL}) AND NEW.status <> OLD.status THEN
        {
            _rule(
                "terminal_final",
                "agent % is already %, it cannot become %",
                "OLD.id",
                "OLD.status",
                "NEW.status",
            )
        };
    END IF;
    IF NEW.status IN ({TERMINAL}) AND OLD.status NOT IN ({TERMINAL}) THEN
        IF EXISTS (SELECT 1 FROM {SCHEMA}.agents
                    WHERE parent_id = NEW.id AND status NOT IN ({TERMINAL})) THEN
            {
            _rule(
                "children_finish_first",
                "agent % still has live children; finish them before it becomes %",
                "OLD.id",
                "NEW.status",
            )
        };
        END IF;
        NEW.finished_at := coalesce(NEW.finished_at, now());
    END IF;
    RETURN NEW;
END
""",
    ),
    Function(
        "agents_closure",
        "",
        "trigger",
        f"""
BEGIN
    -- One row per ancestor: the parent's ancestors one level further, and the parent.
    INSERT INTO {SCHEMA}.hierarchies (parent_id, child_id, depth)
    SELECT h.parent_id, NEW.id, h.depth + 1
      FROM {SCHEMA}.hierarchies h
     WHERE h.child_id = NEW.parent_id
    UNION ALL
    SELECT NEW.parent_id, NEW.id, 1
     WHERE NEW.parent_id IS NOT NULL;
    RETURN NULL;
END
""",
    ),
    Function(
        "hierarchies_guard",
        "",
        "trigger",
        f"""
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A closure row goes with its agents: deleting an agent (or its run) cascades
        -- here once the agent is gone. While both agents exist, it is a delete by hand.
        IF EXISTS (SELECT 1 FROM {SCHEMA}.agents WHERE id = OLD.child_id)
           AND EXISTS (SELECT 1 FROM {SCHEMA}.agents WHERE id = OLD.parent_id) THEN
            {
            _rule(
                "hierarchies_derived",
                "hierarchies is kept by the agents trigger; delete agents instead "
                "(DELETE of % -> % by hand)",
                "OLD.parent_id",
                "OLD.child_id",
            )
        };
        END IF;
        RETURN OLD;
    END IF;
    -- Depth 1 is this trigger itself: the write came from outside agents_closure.
    IF pg_trigger_depth() < 2 THEN
        {
            _rule(
                "hierarchies_derived",
                "hierarchies is kept by the agents trigger; insert agents instead (% % by hand)",
                "TG_OP",
                "TG_TABLE_NAME",
            )
        };
    END IF;
    RETURN NEW;
END
""",
    ),
    Function(
        "hierarchies_truncate_guard",
        "",
        "trigger",
        f"""
BEGIN
    -- After the truncation: TRUNCATE agents ... CASCADE emptied both tables and passes;
    -- the closure emptied while agents remain would lose the tree, so it is refused.
    IF EXISTS (SELECT 1 FROM {SCHEMA}.agents) THEN
        {
            _rule(
                "hierarchies_derived",
                "hierarchies is kept by the agents trigger; % % by hand would lose the tree "
                "of the agents that remain",
                "TG_OP",
                "TG_TABLE_NAME",
            )
        };
    END IF;
    RETURN NULL;
END
""",
    ),
    Function(
        "return_budgets",
        "p_agent uuid, p_parent uuid",
        "void",
        f"""
DECLARE
    b record;
BEGIN
    -- The lock order: the parent's budget rows, then the agent's, each by resource, then
    -- their reservations.
    IF p_parent IS NOT NULL THEN
        PERFORM 1 FROM {SCHEMA}.budgets WHERE agent_id = p_parent ORDER BY resource FOR UPDATE;
    END IF;
    FOR b IN SELECT id, resource, allocated, used
               FROM {SCHEMA}.budgets WHERE agent_id = p_agent
              ORDER BY resource FOR UPDATE
    LOOP
        -- Held reservations end with the agent (their trigger gives the amounts back):
        -- expired if their lease ended, else released.
        UPDATE {SCHEMA}.budget_reservations
           SET state = CASE WHEN lease_expires_at <= now() THEN 'expired' ELSE 'released' END
         WHERE budget_id = b.id AND state = 'held';
        -- Amounts reserved before reservations were rows have none to release.
        UPDATE {SCHEMA}.budgets SET reserved = 0 WHERE id = b.id AND reserved <> 0;
        IF p_parent IS NOT NULL THEN
            UPDATE {SCHEMA}.budgets
               SET reserved = reserved - b.allocated, used = used + b.used
             WHERE agent_id = p_parent AND resource = b.resource;
        END IF;
    END LOOP;
END
""",
    ),
    Function(
        "agents_reclaim",
        "",
        "trigger",
        f"""
BEGIN
    -- Reached a terminal status (agents_guard makes that happen once): each budget
    -- goes back to the parent (reserved -= allocated, used += used), the agent's own
    -- reservations are released.
    PERFORM {SCHEMA}.return_budgets(NEW.id, NEW.parent_id);
    RETURN NULL;
END
""",
    ),
    Function(
        "agents_before_delete",
        "",
        "trigger",
        f"""
BEGIN
    -- A live agent deleted outright hands its budgets back like a finished one. Its own
    -- reservation is not released: when a whole run is deleted, its children may still
    -- be handing their allocations back into it within the same statement. A parent
    -- already deleted by this statement (visible here as gone) needs nothing back.
    IF OLD.status NOT IN ({TERMINAL}) AND OLD.parent_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM {SCHEMA}.agents WHERE id = OLD.parent_id) THEN
        UPDATE {SCHEMA}.budgets p
           SET reserved = p.reserved - c.allocated, used = p.used + c.used
          FROM {SCHEMA}.budgets c
         WHERE c.agent_id = OLD.id AND p.agent_id = OLD.parent_id AND p.resource = c.resource;
    END IF;
    RETURN OLD;
END
""",
    ),
    Function(
        "budgets_guard",
        "",
        "trigger",
        f"""
DECLARE
    owner record;
    parent_budget record;
    delta numeric;
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.agent_id <> OLD.agent_id OR NEW.resource <> OLD.resource) THEN
        {
            _rule(
                "budget_identity_fixed",
                "budget % belongs to agent % for %; it cannot move",
                "OLD.id",
                "OLD.agent_id",
                "OLD.resource",
            )
        };
    END IF;

    SELECT status, parent_id INTO owner FROM {SCHEMA}.agents WHERE id = NEW.agent_id;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports a missing agent
    END IF;

    IF owner.status IN ({TERMINAL}) THEN
        IF TG_OP = 'INSERT' OR NEW.allocated <> OLD.allocated OR NEW.used <> OLD.used
           OR NEW.reserved > OLD.reserved THEN
            {
            _rule(
                "budget_closed",
                "agent % is %; its % budget was returned to its parent",
                "NEW.agent_id",
                "owner.status",
                "NEW.resource",
            )
        };
        END IF;
    END IF;

    -- used and reserved are kept by triggers only (depth 1 is this trigger itself: the
    -- write came from outside them), so the books always equal what the rows say.
    IF pg_trigger_depth() < 2 AND (CASE TG_OP
        WHEN 'INSERT' THEN NEW.used <> 0 OR NEW.reserved <> 0
        ELSE NEW.used <> OLD.used OR NEW.reserved <> OLD.reserved END) THEN
        {
            _rule(
                "budget_books_derived",
                "agent %''s % budget: used and reserved are kept from budget_reservations "
                "and child allocations; a write by hand asked for used %, reserved %",
                "NEW.agent_id",
                "NEW.resource",
                "NEW.used",
                "NEW.reserved",
            )
        };
    END IF;
    IF owner.status IN ({TERMINAL}) THEN
        RETURN NEW;
    END IF;

    IF TG_OP = 'INSERT' THEN
        -- Live children budgeting this resource got their allocations while this budget
        -- did not exist: hold them now, so reserved stays what the rows say (and their
        -- return at finish cannot take reserved below 0).
        PERFORM 1 FROM {SCHEMA}.budgets c JOIN {SCHEMA}.agents a ON a.id = c.agent_id
          WHERE a.parent_id = NEW.agent_id AND a.status NOT IN ({TERMINAL})
            AND c.resource = NEW.resource
          ORDER BY a.depth_level, a.id FOR SHARE OF c;
        NEW.reserved := (SELECT coalesce(sum(c.allocated), 0)
                           FROM {SCHEMA}.budgets c JOIN {SCHEMA}.agents a ON a.id = c.agent_id
                          WHERE a.parent_id = NEW.agent_id AND a.status NOT IN ({TERMINAL})
                            AND c.resource = NEW.resource);
    END IF;

    delta := NEW.allocated - CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE OLD.allocated END;
    IF owner.parent_id IS NULL OR delta = 0 THEN
        RETURN NEW;
    END IF;
    SELECT id, allocated, used, reserved INTO parent_budget
      FROM {SCHEMA}.budgets
     WHERE agent_id = owner.parent_id AND resource = NEW.resource
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NEW;  -- the parent does not budget this resource: nothing to carve from
    END IF;
    IF delta > parent_budget.allocated - parent_budget.used - parent_budget.reserved THEN
        {
            _rule(
                "budget_limits",
                "agent % asked its parent % for % %, % left",
                "NEW.agent_id",
                "owner.parent_id",
                "delta",
                "NEW.resource",
                "parent_budget.allocated - parent_budget.used - parent_budget.reserved",
            )
        };
    END IF;
    UPDATE {SCHEMA}.budgets SET reserved = reserved + delta WHERE id = parent_budget.id;
    RETURN NEW;
END
""",
    ),
    Function(
        "budgets_before_delete",
        "",
        "trigger",
        f"""
DECLARE
    owner record;
BEGIN
    -- Deleting one budget of a live agent gives it back to the parent. (When the
    -- agent itself is deleted, agents_before_delete already did, and the agent
    -- is no longer visible here.)
    SELECT status, parent_id INTO owner FROM {SCHEMA}.agents WHERE id = OLD.agent_id;
    IF FOUND AND owner.parent_id IS NOT NULL AND owner.status NOT IN ({TERMINAL}) THEN
        UPDATE {SCHEMA}.budgets
           SET reserved = reserved - OLD.allocated, used = used + OLD.used
         WHERE agent_id = owner.parent_id AND resource = OLD.resource;
    END IF;
    RETURN OLD;
END
""",
    ),
    Function(
        "checkpoints_guard",
        "",
        "trigger",
        f"""
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.agent_id <> OLD.agent_id OR NEW.sequence <> OLD.sequence THEN
            {
            _rule(
                "checkpoint_sequence_fixed",
                "checkpoint % is number % of agent %; it cannot be renumbered",
                "OLD.id",
                "OLD.sequence",
                "OLD.agent_id",
            )
        };
        END IF;
    ELSIF (SELECT sequence FROM {SCHEMA}.checkpoints WHERE agent_id = NEW.agent_id
            ORDER BY sequence DESC LIMIT 1) >= NEW.sequence THEN
        {
            _rule(
                "checkpoint_sequence_increasing",
                "agent % already has a checkpoint numbered % or higher",
                "NEW.agent_id",
                "NEW.sequence",
            )
        };
    END IF;
    IF NEW.parent_checkpoint_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM {SCHEMA}.checkpoints
         WHERE id = NEW.parent_checkpoint_id AND agent_id = NEW.agent_id
           AND sequence < NEW.sequence) THEN
        {
            _rule(
                "checkpoint_parent_earlier",
                "parent checkpoint % is not an earlier checkpoint of agent %",
                "NEW.parent_checkpoint_id",
                "NEW.agent_id",
            )
        };
    END IF;
    RETURN NEW;
END
""",
    ),
)


FUNCTIONS += (
    Function(
        "raise_rule",
        "rule text, message text",
        "boolean",
        f"""
BEGIN
    -- Lets a single SQL statement refuse (and so roll itself back) under a named rule,
    -- e.g. "CASE WHEN <all held> THEN true ELSE agent.raise_rule(...) END".
    RAISE EXCEPTION '%: %', rule, message
          USING ERRCODE = 'check_violation', CONSTRAINT = rule, SCHEMA = '{SCHEMA}';
END
""",
    ),
    Function(
        "messages_recipient",
        "",
        "trigger",
        f"""
DECLARE
    recipient record;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.recipient_id = OLD.recipient_id
       AND NEW.run_id IS NOT DISTINCT FROM OLD.run_id THEN
        -- A message coming back to pending (a retry, a released or expired claim, a
        -- redrive) for an agent that has finished is cancelled instead, as finish
        -- cancels the pending ones: a finished agent never gets a message again.
        IF NEW.status = 'pending' AND OLD.status <> 'pending' AND EXISTS (
            SELECT 1 FROM {SCHEMA}.agents
             WHERE id = NEW.recipient_id AND status IN ({TERMINAL})) THEN
            NEW.status := 'cancelled';
            NEW.finished_at := now();
            NEW.claimed_by := NULL;
            NEW.claimed_at := NULL;
            NEW.lease_expires_at := NULL;
        END IF;
        RETURN NEW;
    END IF;
    -- FOR SHARE: the recipient cannot finish while a message to it is being added
    -- (finish then cancels it with the rest), and a finished one takes no more.
    SELECT status, run_id INTO recipient
      FROM {SCHEMA}.agents WHERE id = NEW.recipient_id FOR SHARE;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports a missing recipient
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.recipient_id <> OLD.recipient_id)
       AND recipient.status IN ({TERMINAL}) THEN
        {
            _rule(
                "recipient_live",
                "agent % is %; it takes no more messages",
                "NEW.recipient_id",
                "recipient.status",
            )
        };
    END IF;
    -- A message belongs to its recipient's run unless it names one, so deleting the run
    -- deletes it too.
    IF NEW.run_id IS NULL THEN
        NEW.run_id := recipient.run_id;
    END IF;
    RETURN NEW;
END
""",
    ),
    Function(
        "messages_notify",
        "",
        "trigger",
        """
BEGIN
    -- One notification per recipient per statement, so a consumer wakes at once;
    -- delayed messages are found by polling when their time comes.
    PERFORM pg_notify('agent_messages', r.recipient_id::text)
       FROM (SELECT DISTINCT recipient_id FROM new_rows
              WHERE status = 'pending' AND available_at <= now()) AS r;
    RETURN NULL;
END
""",
    ),
)


_R = f"{SCHEMA}.budget_reservations"
_RT = "'budget_reservations'"  # the table named in errors raised outside its triggers


def _detail(**values: str) -> str:
    """A SQL expression: the values as a JSON object, for the typed Python error."""
    return "json_build_object(" + ", ".join(f"'{k}', {v}" for k, v in values.items()) + ")::text"


def _over_budget(verb: str, amount: str, free: str) -> str:
    return _rule(
        "budget_limits",
        f"agent % {verb} % %, % left",
        "NEW.agent_id",
        amount,
        "NEW.resource",
        free,
        detail=_detail(
            agent="NEW.agent_id", resource="NEW.resource", asked=amount, left=free, by=f"'{verb}'"
        ),
    )


def _expired(rid: str, lease: str, table: str = "TG_TABLE_NAME") -> str:
    return _rule(
        "reservation_expired",
        "reservation %''s lease ended at %; its amount went back to the budget",
        rid,
        lease,
        detail=_detail(id=rid, lease_expires_at=lease),
        table=table,
    )


FUNCTIONS += (
    Function(
        "expire_reservations",
        "p_budget uuid",
        "integer",
        f"""
DECLARE
    n integer;
BEGIN
    -- Held reservations of one budget whose lease ended become expired; their trigger
    -- gives the amounts back. The caller holds the budget row's lock (the lock order:
    -- a budget, then its reservations), so there is no janitor and no race.
    UPDATE {_R} SET state = 'expired'
     WHERE budget_id = p_budget AND state = 'held' AND lease_expires_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
""",
    ),
    Function(
        "budget_reservations_guard",
        "",
        "trigger",
        f"""
DECLARE
    bud record;
    free numeric;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state IN ('released', 'expired') THEN
            {
            _rule(
                "reservation_starts_held",
                "a reservation starts held (or committed, for usage without one), not %",
                "NEW.state",
            )
        };
        END IF;
        IF NEW.state NOT IN ('held', 'committed')
           OR NOT coalesce(NEW.amount > 0 AND NEW.amount < 'Infinity', false)
           OR (NEW.state = 'committed'
               AND NOT coalesce(NEW.actual >= 0 AND NEW.actual < 'Infinity', false)) THEN
            RETURN NEW;  -- the CHECKs name what is wrong
        END IF;
        SELECT id, agent_id, resource INTO bud
          FROM {SCHEMA}.budgets WHERE id = NEW.budget_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NEW;  -- the foreign key reports a missing budget
        END IF;
        IF bud.agent_id <> NEW.agent_id OR bud.resource <> NEW.resource THEN
            {
            _rule(
                "reservation_budget",
                "budget % is agent %''s % budget, not agent %''s %",
                "bud.id",
                "bud.agent_id",
                "bud.resource",
                "NEW.agent_id",
                "NEW.resource",
            )
        };
        END IF;
        -- Reservations whose lease ended never count against a new one.
        PERFORM {SCHEMA}.expire_reservations(NEW.budget_id);
        SELECT allocated - used - reserved INTO free FROM {SCHEMA}.budgets WHERE id = bud.id;
        IF NEW.state = 'held' THEN
            IF NEW.lease_expires_at <= now() THEN
                {
            _rule(
                "reservation_lease",
                "a lease must end after now (%), not at %",
                "now()",
                "NEW.lease_expires_at",
            )
        };
            END IF;
            IF NEW.amount > free THEN
                {_over_budget("asked to reserve", "NEW.amount", "free")};
            END IF;
            UPDATE {SCHEMA}.budgets SET reserved = reserved + NEW.amount WHERE id = bud.id;
        ELSE
            IF NEW.actual > free THEN
                {_over_budget("asked to use", "NEW.actual", "free")};
            END IF;
            UPDATE {SCHEMA}.budgets SET used = used + NEW.actual WHERE id = bud.id;
        END IF;
        RETURN NEW;
    END IF;

    IF (NEW.id, NEW.agent_id, NEW.resource, NEW.budget_id, NEW.amount, NEW.holder,
        NEW.created_at) IS DISTINCT FROM (OLD.id, OLD.agent_id, OLD.resource, OLD.budget_id,
        OLD.amount, OLD.holder, OLD.created_at) THEN
        {
            _rule(
                "reservation_fixed",
                "reservation % of % % held by %: only its state, lease and actual change",
                "OLD.id",
                "OLD.amount",
                "OLD.resource",
                "OLD.holder",
            )
        };
    END IF;
    IF OLD.state <> 'held' THEN
        IF NEW IS DISTINCT FROM OLD THEN
            {
            _rule(
                "reservation_final",
                "reservation % is already %; it cannot become % (actual %)",
                "OLD.id",
                "OLD.state",
                "NEW.state",
                "NEW.actual",
            )
        };
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.state = 'held' THEN
        IF NEW.lease_expires_at IS DISTINCT FROM OLD.lease_expires_at THEN
            IF OLD.lease_expires_at <= now() THEN
                {_expired("OLD.id", "OLD.lease_expires_at")};
            END IF;
            IF NEW.lease_expires_at <= now() THEN
                {
            _rule(
                "reservation_lease",
                "a lease must end after now (%), not at %",
                "now()",
                "NEW.lease_expires_at",
            )
        };
            END IF;
        END IF;
        RETURN NEW;  -- the CHECKs refuse an actual or finished_at while held
    END IF;
    IF NEW.state NOT IN ('committed', 'released', 'expired') THEN
        RETURN NEW;  -- state_enum names it
    END IF;

    -- held -> committed / released / expired: the budget's books move with the row.
    PERFORM 1 FROM {SCHEMA}.budgets WHERE id = OLD.budget_id FOR UPDATE;
    NEW.finished_at := now();
    IF NEW.state = 'committed' THEN
        IF OLD.lease_expires_at <= now() THEN
            {_expired("OLD.id", "OLD.lease_expires_at")};
        END IF;
        IF NOT coalesce(NEW.actual >= 0 AND NEW.actual < 'Infinity', false) THEN
            RETURN NEW;  -- actual_when_committed names it
        END IF;
        SELECT allocated - used - reserved + OLD.amount INTO free
          FROM {SCHEMA}.budgets WHERE id = OLD.budget_id;
        IF NEW.actual > free THEN
            {_over_budget("asked to use", "NEW.actual", "free")};
        END IF;
        UPDATE {SCHEMA}.budgets SET reserved = reserved - OLD.amount, used = used + NEW.actual
         WHERE id = OLD.budget_id;
    ELSE
        IF NEW.state = 'expired' AND OLD.lease_expires_at > now() THEN
            {
            _rule(
                "reservation_not_expired",
                "reservation %''s lease runs until %; it cannot expire before",
                "OLD.id",
                "OLD.lease_expires_at",
            )
        };
        END IF;
        UPDATE {SCHEMA}.budgets SET reserved = reserved - OLD.amount WHERE id = OLD.budget_id;
    END IF;
    RETURN NEW;
END
""",
    ),
    Function(
        "budget_reservations_before_delete",
        "",
        "trigger",
        f"""
BEGIN
    -- A held reservation deleted by hand would leave its amount reserved for ever. A
    -- cascade (its agent or budget deleted; depth 2) takes the books with it.
    IF OLD.state = 'held' AND pg_trigger_depth() < 2 THEN
        {
            _rule(
                "reservation_held",
                "reservation % holds % %; commit or release it before deleting it",
                "OLD.id",
                "OLD.amount",
                "OLD.resource",
            )
        };
    END IF;
    RETURN OLD;
END
""",
    ),
    Function(
        "reservation_act",
        "p_id uuid, p_holder text, p_action text, p_actual numeric, p_lease interval",
        f"SETOF {_R}",
        f"""
DECLARE
    r {_R};
BEGIN
    -- commit / release / renew one reservation by id, for its holder. A repeated commit
    -- (same actual) or release returns the row as the first call left it; every
    -- refusal raises, so the statement (expiry included) changes nothing.
    SELECT * INTO r FROM {_R} WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The lock order: the budget row, then its reservations.
    PERFORM 1 FROM {SCHEMA}.budgets WHERE id = r.budget_id FOR UPDATE;
    PERFORM {SCHEMA}.expire_reservations(r.budget_id);
    SELECT * INTO r FROM {_R} WHERE id = p_id FOR UPDATE;
    IF r.holder <> p_holder THEN
        {
            _rule(
                "reservation_holder",
                "reservation % is held by %, not by %",
                "r.id",
                "quote_literal(r.holder)",
                "quote_literal(p_holder)",
                detail=_detail(id="r.id", holder="r.holder", asked="p_holder"),
                table=_RT,
            )
        };
    END IF;
    IF r.state = 'expired' THEN
        {_expired("r.id", "r.lease_expires_at", _RT)};
    END IF;
    IF (p_action = 'commit' AND r.state = 'committed' AND r.actual = p_actual)
       OR (p_action = 'release' AND r.state = 'released') THEN
        RETURN NEXT r;  -- a repeat: the first outcome, the books untouched
        RETURN;
    END IF;
    IF r.state <> 'held' THEN
        {
            _rule(
                "reservation_closed",
                "reservation % is already % (actual %); it cannot be %",
                "r.id",
                "r.state",
                "coalesce(r.actual::text, 'none')",
                "CASE p_action WHEN 'commit' THEN 'committed with ' || p_actual "
                "WHEN 'release' THEN 'released' ELSE 'renewed' END",
                detail=_detail(id="r.id", state="r.state", actual="r.actual", action="p_action"),
                table=_RT,
            )
        };
    END IF;
    IF p_action = 'commit' THEN
        UPDATE {_R} SET state = 'committed', actual = p_actual WHERE id = p_id RETURNING * INTO r;
    ELSIF p_action = 'release' THEN
        UPDATE {_R} SET state = 'released' WHERE id = p_id RETURNING * INTO r;
    ELSIF p_action = 'renew' THEN
        UPDATE {_R} SET lease_expires_at = now() + p_lease WHERE id = p_id RETURNING * INTO r;
    ELSE
        RAISE EXCEPTION 'reservation_act: unknown action %', p_action;
    END IF;
    RETURN NEXT r;
END
""",
    ),
    Function(
        "budget_books",
        "p_agent uuid",
        "TABLE(resource varchar, allocated numeric, used numeric, reserved numeric, held numeric)",
        f"""
DECLARE
    b record;
BEGIN
    -- Expire what is overdue first (budget rows locked by resource: the lock order), unless
    -- the caller's transaction is read-only; then the figures read as if expired.
    IF current_setting('transaction_read_only') = 'off' AND EXISTS (
        SELECT 1 FROM {SCHEMA}.budgets x JOIN {_R} r ON r.budget_id = x.id
         WHERE x.agent_id = p_agent AND r.state = 'held' AND r.lease_expires_at <= now()) THEN
        FOR b IN SELECT x.id FROM {SCHEMA}.budgets x WHERE x.agent_id = p_agent
                  ORDER BY x.resource FOR UPDATE
        LOOP
            PERFORM {SCHEMA}.expire_reservations(b.id);
        END LOOP;
    END IF;
    -- One statement: one snapshot of all the agent's budgets.
    RETURN QUERY
    SELECT x.resource, x.allocated, x.used, x.reserved - coalesce(o.overdue, 0),
           coalesce(o.held, 0)
      FROM {SCHEMA}.budgets x
      LEFT JOIN LATERAL (
            SELECT sum(r.amount) FILTER (WHERE r.lease_expires_at <= now()) AS overdue,
                   sum(r.amount) FILTER (WHERE r.lease_expires_at > now()) AS held
              FROM {_R} r WHERE r.budget_id = x.id AND r.state = 'held') o ON true
     WHERE x.agent_id = p_agent
     ORDER BY x.resource;
END
""",
    ),
)


def _transition_function(name: str, column: str, table: Mapping[Any, frozenset[Any]]) -> Function:
    """A trigger function refusing any change of ``column`` not listed in ``table``."""
    cases = "\n".join(
        f"        WHEN {sql_literal(str(old))} THEN "
        + (
            f"NEW.{column} IN ({sql_list(str(n) for n in sorted(new, key=str))})"
            if new
            else "false"
        )
        for old, new in table.items()
    )
    return Function(
        name,
        "",
        "trigger",
        f"""
BEGIN
    -- Generated from agent_app/transitions.py: the legal changes, one line per status.
    IF NEW.{column} IS DISTINCT FROM OLD.{column} AND NOT (CASE OLD.{column}
{cases}
        ELSE false END) THEN
        {_rule(name, "% -> % is not a legal change", f"OLD.{column}", f"NEW.{column}")};
    END IF;
    RETURN NEW;
END
""",
    )


FUNCTIONS += (
    _transition_function("run_phase_transition", "current_phase", transitions.RUN_PHASE),
    _transition_function("phase_status_transition", "status", transitions.PHASE_STATUS),
    _transition_function("sandbox_status_transition", "status", transitions.SANDBOX_STATUS),
    Function(
        "cta_answer_rules",
        "",
        "trigger",
        f"""
BEGIN
    IF OLD.responded_at IS NOT NULL
       AND (NEW.response IS DISTINCT FROM OLD.response
            OR NEW.responded_at IS DISTINCT FROM OLD.responded_at
            OR NEW.responded_by IS DISTINCT FROM OLD.responded_by) THEN
        {
            _rule(
                "cta_answered_once",
                "question % was already answered at %",
                "OLD.id",
                "OLD.responded_at",
            )
        };
    END IF;
    IF NEW.responded_at IS NOT NULL AND OLD.responded_at IS NULL THEN
        IF OLD.expires_at IS NOT NULL AND OLD.expires_at <= NEW.responded_at THEN
            {_rule("cta_expired", "question % expired at %", "OLD.id", "OLD.expires_at")};
        END IF;
        IF NEW.kind = 'choice' AND NOT (NEW.options @> jsonb_build_array(NEW.response)) THEN
            {
            _rule(
                "choice_not_offered", "% is not one of the options %", "NEW.response", "NEW.options"
            )
        };
        END IF;
        -- Wakes agent_app.cta.wait() at commit (never sent if the answer rolls back).
        PERFORM pg_notify('agent_cta', NEW.id::text);
    END IF;
    RETURN NEW;
END
""",
    ),
)

_INDEX_LOOKUPS = frozenset({
    "agents_guard", "agents_closure", "return_budgets", "agents_before_delete",
    "budgets_guard", "budgets_before_delete", "checkpoints_guard", "hierarchies_guard",
    "messages_recipient", "expire_reservations", "budget_reservations_guard", "reservation_act",
    "budget_books",
})  # fmt: skip
FUNCTIONS = tuple(
    dataclasses.replace(f, settings=("enable_seqscan = off",)) if f.name in _INDEX_LOOKUPS else f
    for f in FUNCTIONS
)

_UPDATED_AT_TABLES = ("sandboxes", "feature_runs", "agents", "budgets", "workspaces")

TRIGGERS: tuple[Trigger, ...] = (
    *(
        Trigger(f"{t}_set_updated_at", t, "BEFORE UPDATE", "set_updated_at")
        for t in _UPDATED_AT_TABLES
    ),
    Trigger("agents_guard", "agents", "BEFORE INSERT OR UPDATE", "agents_guard"),
    Trigger("agents_closure", "agents", "AFTER INSERT", "agents_closure"),
    Trigger(
        "agents_reclaim",
        "agents",
        "AFTER UPDATE OF status",
        "agents_reclaim",
        when=f"OLD.status NOT IN ({TERMINAL}) AND NEW.status IN ({TERMINAL})",
    ),
    Trigger("agents_before_delete", "agents", "BEFORE DELETE", "agents_before_delete"),
    Trigger(
        "hierarchies_guard", "hierarchies", "BEFORE INSERT OR UPDATE OR DELETE", "hierarchies_guard"
    ),
    Trigger(
        "hierarchies_truncate_guard",
        "hierarchies",
        "AFTER TRUNCATE",
        "hierarchies_truncate_guard",
        for_each="STATEMENT",
    ),
    Trigger("budgets_guard", "budgets", "BEFORE INSERT OR UPDATE", "budgets_guard"),
    Trigger("budgets_before_delete", "budgets", "BEFORE DELETE", "budgets_before_delete"),
    Trigger("checkpoints_guard", "checkpoints", "BEFORE INSERT OR UPDATE", "checkpoints_guard"),
    Trigger(
        "budget_reservations_guard",
        "budget_reservations",
        "BEFORE INSERT OR UPDATE",
        "budget_reservations_guard",
    ),
    Trigger(
        "budget_reservations_before_delete",
        "budget_reservations",
        "BEFORE DELETE",
        "budget_reservations_before_delete",
    ),
    Trigger(
        "run_phase_transition",
        "feature_runs",
        "BEFORE UPDATE OF current_phase",
        "run_phase_transition",
    ),
    Trigger(
        "phase_status_transition",
        "phase_results",
        "BEFORE UPDATE OF status",
        "phase_status_transition",
    ),
    Trigger(
        "sandbox_status_transition",
        "sandboxes",
        "BEFORE UPDATE OF status",
        "sandbox_status_transition",
    ),
    Trigger("cta_answer_rules", "cta_events", "BEFORE UPDATE", "cta_answer_rules"),
    Trigger(
        "messages_recipient",
        "messages",
        "BEFORE INSERT OR UPDATE OF recipient_id, run_id, status",
        "messages_recipient",
    ),
    Trigger(
        "messages_notify",
        "messages",
        "AFTER INSERT",
        "messages_notify",
        for_each="STATEMENT",
        referencing="NEW TABLE AS new_rows",
    ),
)

CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint(
        "sandboxes_source_snapshot_id_fkey",
        "sandboxes",
        f"FOREIGN KEY (source_snapshot_id) REFERENCES {SCHEMA}.sandbox_snapshots (id) "
        "ON UPDATE CASCADE",
        why="sandboxes and snapshots refer to each other; Piccolo cannot order the cycle",
    ),
    Constraint(
        "agent_invocations_phase_same_run_fkey",
        "agent_invocations",
        f"FOREIGN KEY (phase_result_id, run_id) REFERENCES {SCHEMA}.phase_results (id, run_id) "
        "ON UPDATE CASCADE ON DELETE CASCADE",
        why="an invocation's phase attempt belongs to the invocation's run",
    ),
    Constraint(
        "tool_calls_step_same_invocation_fkey",
        "tool_calls",
        f"FOREIGN KEY (step_id, invocation_id) REFERENCES {SCHEMA}.agent_steps (id, invocation_id) "
        "ON UPDATE CASCADE ON DELETE CASCADE",
        why="a tool call's step belongs to the tool call's invocation",
    ),
)

#: Converts Piccolo's BIGSERIAL messages.id into the contract's BIGINT identity,
#: continuing after any id already used.
MESSAGES_IDENTITY: tuple[str, ...] = (
    f"ALTER TABLE {SCHEMA}.messages ALTER COLUMN id DROP DEFAULT;",
    f"DROP SEQUENCE IF EXISTS {SCHEMA}.messages_id_seq;",
    f"ALTER TABLE {SCHEMA}.messages ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY;",
    f"SELECT setval(pg_get_serial_sequence('{SCHEMA}.messages', 'id'), "
    f"coalesce((SELECT max(id) FROM {SCHEMA}.messages), 0) + 1, false);",
)

MESSAGES_SERIAL: tuple[str, ...] = (
    f"ALTER TABLE {SCHEMA}.messages ALTER COLUMN id DROP IDENTITY IF EXISTS;",
    f"CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.messages_id_seq OWNED BY {SCHEMA}.messages.id;",
    f"ALTER TABLE {SCHEMA}.messages ALTER COLUMN id "
    f"SET DEFAULT nextval('{SCHEMA}.messages_id_seq');",
)


def forwards_statements() -> list[str]:
    """Every object of this module, one statement each: what a raw migration freezes."""
    parts = list(MESSAGES_IDENTITY)
    parts += [i.create_sql(t) for t in TABLES for i in table_indexes(t)]
    parts += [c.create_sql() for c in CONSTRAINTS]
    parts += [f.create_sql() for f in FUNCTIONS]
    parts += [t.create_sql() for t in TRIGGERS]
    parts += [comment_sql(t) for t in TABLES]
    parts += [storage_sql(t) for t in TABLES if table_storage(t)]
    return parts


def backwards_statements() -> list[str]:
    """Undo :func:`forwards_statements`, in reverse order."""
    parts = [storage_reset_sql(t, list(table_storage(t))) for t in TABLES if table_storage(t)]
    parts += [t.drop_sql() for t in reversed(TRIGGERS)]
    parts += [f.drop_sql() for f in reversed(FUNCTIONS)]
    parts += [c.drop_sql() for c in reversed(CONSTRAINTS)]
    parts += [i.drop_sql() for t in reversed(TABLES) for i in reversed(table_indexes(t))]
    parts += [f"COMMENT ON TABLE {qualified(t)} IS NULL;" for t in TABLES]
    parts += list(MESSAGES_SERIAL)
    return parts
