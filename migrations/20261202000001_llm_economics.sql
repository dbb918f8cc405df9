-- LLM speed and cost (issue 17): speculative lookahead, the decision cache across runs, costs.

-- Every model answer a user paid for, under the SHA-256 of its full request (model,
-- temperature, max_tokens, messages, response format): a later session of the same user whose
-- request hashes the same reuses it and calls nobody. `session_id` is the session that paid for it
-- (a replay of that session reads its own answers even with fresh_decisions).
CREATE TABLE decision_cache (
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    request_hash       text NOT NULL,
    session_id         uuid,
    model              text NOT NULL,
    content            text NOT NULL,
    prompt_tokens      integer,
    completion_tokens  integer,
    cost_usd           double precision,
    latency_ms         integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT decision_cache_pkey PRIMARY KEY (user_id, request_hash)
);
CREATE INDEX decision_cache_session ON decision_cache (session_id) WHERE session_id IS NOT NULL;

-- Decisions a session took from the cache. Its speculative calls wasted are derived: calls made
-- minus the decisions it paid for (ai_thoughts rows not from the cache).
ALTER TABLE test_sessions
    ADD COLUMN cached_decisions bigint NOT NULL DEFAULT 0;

-- The run's model economics, kept with the result.
ALTER TABLE test_results
    ADD COLUMN model_calls bigint NOT NULL DEFAULT 0,
    ADD COLUMN cached_decisions bigint NOT NULL DEFAULT 0,
    ADD COLUMN speculative_calls_wasted bigint NOT NULL DEFAULT 0,
    ADD COLUMN model_cost_usd double precision NOT NULL DEFAULT 0;

-- The step chain across invocations that commit more than once (DESIGN 5): `step_version` is
-- the version of the message whose step made the latest commit, `chain_version` the version the
-- next step message carries once a step has ended (set just before it is sent). A redelivered
-- message older than the session is the step that died mid-way when its version is
-- `step_version` and the chain is not closed (it resumes), a lost send when the chain is closed
-- (the next message is sent again), and an old duplicate otherwise (ignored).
ALTER TABLE test_sessions
    ADD COLUMN step_version bigint,
    ADD COLUMN chain_version bigint NOT NULL DEFAULT 0;
