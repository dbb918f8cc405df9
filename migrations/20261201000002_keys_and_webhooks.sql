-- Keys and webhooks (the user's workshop).

-- Why the last validation said what it said ("OpenRouter answered 429; retry after 30 s"), shown
-- with the key. A key whose last check failed for a transient reason has status 'error' and stays
-- usable; 'invalid' and 'no_credits' are not.
ALTER TABLE api_keys ADD COLUMN status_reason text;

-- Clerk webhook deliveries already processed, by Svix message id: a replayed delivery has no
-- second effect. Rows expire after a week (Svix retries for up to about three days).
CREATE TABLE webhook_deliveries (
    svix_id      text PRIMARY KEY,
    event_type   text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL DEFAULT now() + interval '7 days'
);
CREATE INDEX webhook_deliveries_expires ON webhook_deliveries (expires_at);
