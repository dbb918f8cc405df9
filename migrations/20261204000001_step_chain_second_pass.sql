-- The arena's second pass (issue 22): a step chain that survives Lambda's real limits.

-- Sessions -------------------------------------------------------------------------------------
ALTER TABLE test_sessions
    -- control events (pause, resume, stop, speed) numbered by the control and published by the
    -- session's step, in seq order with its own events (one publisher per session at a time)
    ADD COLUMN outbox jsonb NOT NULL DEFAULT '[]',
    -- decisions stored in ai_thoughts (a counter, so that a session read counts no rows)
    ADD COLUMN decisions bigint NOT NULL DEFAULT 0,
    -- the response format a model fell back to (`json_object`), kept so that replays hash the
    -- same requests; NULL: the engine's JSON schema
    ADD COLUMN response_format text,
    -- the first step fixes the session's candles: those cached at this moment (later fills of
    -- the cache do not change a running session)
    ADD COLUMN candles_as_of timestamptz,
    -- the open position after the last commit (null when flat), for a client that subscribes late
    ADD COLUMN open_position jsonb,
    -- when the watchdog last re-sent this session's step
    ADD COLUMN nudged_at timestamptz,
    ADD CONSTRAINT test_sessions_response_format_check
        CHECK (response_format IS NULL OR response_format IN ('json_schema', 'json_object'));

UPDATE test_sessions s SET decisions = (SELECT count(*) FROM ai_thoughts t
                                        WHERE t.user_id = s.user_id AND t.session_id = s.id);

-- `last_advanced_at` changes with every commit: out of every index, so commits are HOT updates.
-- One small partial index serves the watchdog (unfinished sessions) and the per-user limit of
-- active sessions.
DROP INDEX test_sessions_active;
CREATE INDEX test_sessions_unfinished ON test_sessions (user_id) WHERE completed_at IS NULL;

-- The equity after every candle, appended by each commit (the checkpoint no longer carries the
-- curve): what the result's curve and later its evidence are built from.
CREATE TABLE session_equity (
    session_id   uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- index of the first candle of this run of points
    first_index  bigint NOT NULL,
    -- candle open times (epoch ms) and the equity at each candle's close
    times        bigint[] NOT NULL,
    equity       double precision[] NOT NULL,
    CONSTRAINT session_equity_pkey PRIMARY KEY (session_id, first_index),
    CONSTRAINT session_equity_session_owner_fkey FOREIGN KEY (session_id, user_id)
        REFERENCES test_sessions (id, user_id) ON DELETE CASCADE,
    CONSTRAINT session_equity_lengths_check
        CHECK (cardinality(times) = cardinality(equity) AND cardinality(times) > 0)
);

-- Market data ----------------------------------------------------------------------------------
-- Candles the exchange was asked for and does not have (outages): remembered so that they are
-- not asked again on every run.
CREATE TABLE market_data_gaps (
    asset      text NOT NULL,
    timeframe  text NOT NULL,
    open_time  timestamptz NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT market_data_gaps_pkey PRIMARY KEY (asset, timeframe, open_time),
    CONSTRAINT market_data_gaps_timeframe_check CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d'))
);

-- The decision cache ---------------------------------------------------------------------------
-- One row per user, request and paying session: a session's replay always finds every answer it
-- received, whatever other sessions (fresh_decisions ones included) wrote since. Answers that
-- were billed but unusable (an empty 200) are kept with their error for the paying session's
-- replays and never served to another session.
DELETE FROM decision_cache WHERE session_id IS NULL;
ALTER TABLE decision_cache
    DROP CONSTRAINT decision_cache_pkey,
    ALTER COLUMN session_id SET NOT NULL,
    ADD COLUMN error text,
    ADD CONSTRAINT decision_cache_pkey PRIMARY KEY (user_id, request_hash, session_id);
DROP INDEX decision_cache_session;
