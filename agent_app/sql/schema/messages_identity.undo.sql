-- Undoes messages_identity.sql: messages.id back to Piccolo's BIGSERIAL.

-- Drop the identity.
ALTER TABLE agent.messages ALTER COLUMN id DROP IDENTITY IF EXISTS;

-- The BIGSERIAL sequence, owned by the column.
CREATE SEQUENCE IF NOT EXISTS agent.messages_id_seq OWNED BY agent.messages.id;

-- The BIGSERIAL default.
ALTER TABLE agent.messages ALTER COLUMN id SET DEFAULT nextval('agent.messages_id_seq');
