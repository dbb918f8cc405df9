-- Forward tests (issue 24): sessions that decide candles closing after they started.

ALTER TABLE test_sessions
    DROP CONSTRAINT test_sessions_status_check,
    -- `stopping`: a forward session whose stop was asked and not yet finalised by its step
    ADD CONSTRAINT test_sessions_status_check
        CHECK (status IN ('pending', 'running', 'paused', 'stopping', 'completed', 'stopped', 'failed')),
    -- the latest candle closed (by the exchange's clock) when the first step ran: the session
    -- decides the candles after it
    ADD COLUMN anchor_time timestamptz,
    -- the warm-up as loaded: {"candles", "first", "last"}
    ADD COLUMN warmup jsonb,
    -- intervals the exchange had no candle for: [{"from", "to", "missing"}]
    ADD COLUMN gaps jsonb NOT NULL DEFAULT '[]',
    -- why a forward session is not advancing: {"status": "ok" | "delayed", "since", "reason"}
    ADD COLUMN feed jsonb,
    -- the open time of the last decided candle
    ADD COLUMN last_candle timestamptz;

-- forward-tick finds the forward sessions to feed by asset and timeframe
CREATE INDEX test_sessions_forward_live ON test_sessions (asset, timeframe)
    WHERE type = 'forward' AND completed_at IS NULL;

-- The exchange's back-off: a 429 or 418 holds every request of every function until `until`.
CREATE TABLE exchange_backoff (
    exchange    text PRIMARY KEY,
    until       timestamptz NOT NULL,
    reason      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The exchange's clock as last read (forward-tick every minute, a forward session's first
-- step): a forward step decides only candles closed by it, whatever else the cache holds.
CREATE TABLE exchange_clock (
    exchange     text PRIMARY KEY,
    server_time  timestamptz NOT NULL,
    read_at      timestamptz NOT NULL DEFAULT now()
);
