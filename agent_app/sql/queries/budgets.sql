-- Budgets and their reservations (agent_app.budgets). Every write here is one statement
-- guarded by the database: the budget_reservations triggers lock the budget row before
-- its reservations (the lock order in agent_app.db), expire overdue reservations, keep
-- the books (used, reserved) and refuse anything past allocated (budget_limits).

-- name: reserve
-- Hold $3 of agent $1's budget of resource $2 for holder $4 until now() + $5 (an
-- interval); no row when the agent has no such budget. Returns the reservation.
INSERT INTO agent.budget_reservations
       (budget_id, agent_id, resource, amount, holder, lease_expires_at)
SELECT id, agent_id, resource, $3, $4, now() + $5::interval
  FROM agent.budgets
 WHERE agent_id = $1 AND resource = $2
RETURNING *;

-- name: charge
-- Record usage $3 of agent $1's budget of resource $2 without a reservation: a row born
-- committed (the trigger adds it to used), for holder $4; no row without such a budget.
INSERT INTO agent.budget_reservations
       (budget_id, agent_id, resource, amount, holder, state, actual, lease_expires_at,
        finished_at)
SELECT id, agent_id, resource, $3, $4, 'committed', $3, now(), now()
  FROM agent.budgets
 WHERE agent_id = $1 AND resource = $2
RETURNING *;

-- name: act
-- Commit, release or renew ($3) reservation $1 as holder $2, with actual $4 (commit) or
-- lease $5 (renew); no row when there is no such reservation. A repeated commit (same
-- actual) or release returns the first outcome; every refusal raises.
SELECT * FROM agent.reservation_act($1, $2, $3, $4, $5::interval);

-- name: books
-- Agent $1's budgets, one row per resource, in one snapshot (overdue reservations
-- expired first, or shown as if they were in a read-only transaction), named by the
-- agent as given.
SELECT $1::uuid AS agent_id, resource, allocated, used, reserved, held
  FROM agent.budget_books($1);

-- name: audit
-- Budgets (of the agents $1, or all when null) whose reserved is not their held
-- reservations plus the allocations of their live children of the same resource.
-- Empty, always: a check for tests and operators.
SELECT *
  FROM (SELECT b.id, b.agent_id, b.resource, b.reserved,
               coalesce((SELECT sum(r.amount)
                           FROM agent.budget_reservations r
                          WHERE r.budget_id = b.id AND r.state = 'held'), 0)
             + coalesce((SELECT sum(c.allocated)
                           FROM agent.budgets c
                           JOIN agent.agents k ON k.id = c.agent_id
                          WHERE k.parent_id = b.agent_id AND c.resource = b.resource
                            AND k.status NOT IN ({TERMINAL_AGENT_STATUSES})), 0) AS expected
          FROM agent.budgets b
         WHERE $1::uuid[] IS NULL OR b.agent_id = ANY($1)) x
 WHERE reserved <> expected;
