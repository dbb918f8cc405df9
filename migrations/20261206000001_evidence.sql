-- Evidence on every result (issue 25): the figures, the methodology card and the signed ledger.

-- What the step worker computes when it writes a result (NULL for results written before).
ALTER TABLE test_results
    ADD COLUMN evidence jsonb,
    ADD COLUMN methodology jsonb,
    -- the ledger seal's `head` and the key that signed it
    ADD COLUMN ledger_head text,
    ADD COLUMN ledger_key_id text;

-- The SHA-256 of the model's answer to a decision's request (NULL: no answer, or a baseline).
ALTER TABLE ai_thoughts ADD COLUMN answer_hash text;

-- A result's ledger, exactly the bytes that were hashed and signed, in chunks of consecutive
-- lines (joined by "\n"): a page reads the chunks it needs.
CREATE TABLE result_ledgers (
    result_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    chunk       integer NOT NULL,
    -- 0-based number of the chunk's first line in the ledger
    first_line  integer NOT NULL,
    lines       integer NOT NULL,
    body        text NOT NULL,
    CONSTRAINT result_ledgers_pkey PRIMARY KEY (result_id, chunk),
    -- a ledger belongs to a result of its own user
    CONSTRAINT result_ledgers_result_owner_fkey FOREIGN KEY (result_id, user_id)
        REFERENCES test_results (id, user_id) ON DELETE CASCADE
);
CREATE INDEX result_ledgers_user ON result_ledgers (user_id, result_id);

-- Every key that signed a ledger, kept after a rotation so that old ledgers still verify.
CREATE TABLE ledger_keys (
    key_id      text PRIMARY KEY,
    algorithm   text NOT NULL DEFAULT 'Ed25519',
    public_key  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
