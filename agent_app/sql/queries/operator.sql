-- What an operator does that a worker cannot (agent_app.operator).
-- {MESSAGES_CHANNEL} is the channel the Consumer LISTENs on (agent_app.constants).

-- name: requeue_claim
-- Give message $1 back to pending as its holder would release it (the attempt is not
-- counted), by the claim as the operator read it: holder $2 at attempt $3, whether or
-- not its lease has expired (a gone worker's lease usually has). NOTIFYs its
-- recipient's consumers. Returns one row if it was released, none if the claim changed
-- meanwhile (acked, failed, re-claimed).
UPDATE agent.messages
   SET status = 'pending', attempts = attempts - 1, claimed_by = NULL,
       lease_expires_at = NULL, claimed_at = NULL, available_at = now()
 WHERE id = $1 AND status = 'claimed' AND claimed_by = $2 AND attempts = $3
RETURNING id, pg_notify({MESSAGES_CHANNEL}, recipient_id::text);
