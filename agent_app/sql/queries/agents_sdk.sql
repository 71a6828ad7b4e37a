-- The OpenAI Agents SDK session store (agent_app.agents_sdk.AgentAppSession): a
-- session's items in the order of the table's identity column.

-- name: add_items
-- Append the items $2 (JSON texts) to session $1, in their order, in one statement.
INSERT INTO agent.session_items (session_id, item)
SELECT $1, i.item
  FROM unnest($2::jsonb[]) WITH ORDINALITY AS i(item, n)
 ORDER BY i.n;

-- name: get_all
-- Every item of session $1 (as JSON text), oldest first.
SELECT item::text FROM agent.session_items WHERE session_id = $1 ORDER BY id;

-- name: get_latest
-- The latest $2 items of session $1 (as JSON text), oldest first.
SELECT item::text
  FROM (SELECT id, item FROM agent.session_items
         WHERE session_id = $1
         ORDER BY id DESC
         LIMIT $2) latest
 ORDER BY id;

-- name: pop_item
-- Remove and return (as JSON text) the newest item of session $1 whose row no
-- concurrent pop holds, so each item goes to one caller only; no row when none is left.
DELETE FROM agent.session_items
 WHERE id = (SELECT id FROM agent.session_items
              WHERE session_id = $1
              ORDER BY id DESC
              LIMIT 1
                FOR UPDATE SKIP LOCKED)
RETURNING item::text;

-- name: clear_session
-- Delete every item of session $1.
DELETE FROM agent.session_items WHERE session_id = $1;
