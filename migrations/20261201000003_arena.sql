-- The arena (issue 16): backtests as a chain of SQS steps (DESIGN sections 5 and 5b).

-- The sampling temperature the agent's model is called with (OpenRouter accepts 0..2).
ALTER TABLE agents ADD COLUMN temperature double precision NOT NULL DEFAULT 0.3,
    ADD CONSTRAINT agents_temperature_check CHECK (temperature >= 0 AND temperature <= 2);

-- Step-chain state kept beside the checkpoint, committed in the same transaction:
--   last_watched_at   when a step last saw a subscriber (paced sessions unwatched for 2 minutes
--                     run at instant until someone subscribes again)
--   model_failures    candles in a row whose model call failed after its retries
--   model_calls, model_cost_usd: the run's model usage so far (tokens are kept per decision)
ALTER TABLE test_sessions
    ADD COLUMN last_watched_at timestamptz,
    ADD COLUMN model_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN model_calls bigint NOT NULL DEFAULT 0,
    ADD COLUMN model_cost_usd double precision NOT NULL DEFAULT 0,
    -- the live figures GET /api/arena/sessions/{id} shows while the run goes on
    ADD COLUMN live_stats jsonb;
