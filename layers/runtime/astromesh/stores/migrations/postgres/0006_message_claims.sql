-- Durable exactly-once claims of messaging deliveries (WhatsApp, Telegram message ids).
-- Redis claims are forgotten when Redis restarts empty; a claim here survives that, so a
-- platform's redelivery of an already-answered message is never answered again. Claimed
-- with INSERT ... ON CONFLICT, retaken only once expires_at has passed.
CREATE TABLE message_claims (
    claim_key   text        PRIMARY KEY,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX message_claims_expires_at ON message_claims (expires_at);
