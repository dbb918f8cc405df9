-- AlphaLab's relational schema (DESIGN section 4). The only source of the Postgres schema.
-- Conventions: uuid ids, timestamptz in UTC, money and prices as double precision,
-- every enumerated column has a CHECK, every row a user owns cascades on account deletion,
-- every list query (user id + created_at desc) has an index.

-- Accounts ------------------------------------------------------------------------------------

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_id    text NOT NULL,
    email       text,
    name        text,
    avatar_url  text,
    plan        text NOT NULL DEFAULT 'free',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_clerk_id_key UNIQUE (clerk_id),
    CONSTRAINT users_plan_check CHECK (plan IN ('free', 'pro', 'enterprise'))
);

CREATE TABLE user_settings (
    user_id                    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    theme                      text NOT NULL DEFAULT 'dark',
    default_capital            double precision NOT NULL DEFAULT 10000,
    default_asset              text NOT NULL DEFAULT 'BTCUSDT',
    default_timeframe          text NOT NULL DEFAULT '1h',
    max_leverage               integer NOT NULL DEFAULT 1,
    max_position_size_pct      double precision NOT NULL DEFAULT 100,
    max_daily_loss_pct         double precision NOT NULL DEFAULT 10,
    default_stop_loss_pct      double precision NOT NULL DEFAULT 2,
    notify_email               boolean NOT NULL DEFAULT true,
    notify_test_completed      boolean NOT NULL DEFAULT true,
    notify_test_failed         boolean NOT NULL DEFAULT true,
    notify_certificate_issued  boolean NOT NULL DEFAULT true,
    notify_key_issues          boolean NOT NULL DEFAULT true,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_settings_theme_check CHECK (theme IN ('dark', 'light', 'system')),
    CONSTRAINT user_settings_timeframe_check CHECK (default_timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d')),
    CONSTRAINT user_settings_capital_check CHECK (default_capital > 0),
    CONSTRAINT user_settings_max_leverage_check CHECK (max_leverage BETWEEN 1 AND 5),
    CONSTRAINT user_settings_position_size_check CHECK (max_position_size_pct > 0 AND max_position_size_pct <= 100),
    CONSTRAINT user_settings_daily_loss_check CHECK (max_daily_loss_pct > 0 AND max_daily_loss_pct <= 100),
    CONSTRAINT user_settings_stop_loss_check CHECK (default_stop_loss_pct > 0 AND default_stop_loss_pct <= 50)
);

CREATE TABLE api_keys (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              text NOT NULL,
    provider          text NOT NULL DEFAULT 'openrouter',
    encrypted_key     bytea NOT NULL,
    key_version       integer NOT NULL,
    masked_key        text NOT NULL,
    status            text NOT NULL DEFAULT 'pending',
    is_default        boolean NOT NULL DEFAULT false,
    label             text,
    credit_limit      double precision,
    usage             double precision,
    last_validated_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_provider_check CHECK (provider IN ('openrouter')),
    CONSTRAINT api_keys_status_check CHECK (status IN ('pending', 'valid', 'invalid', 'no_credits', 'error'))
);
-- exactly one default key per user
CREATE UNIQUE INDEX api_keys_one_default_per_user ON api_keys (user_id) WHERE is_default;
CREATE INDEX api_keys_user_created ON api_keys (user_id, created_at DESC);

-- Agents and tests ---------------------------------------------------------------------------

CREATE TABLE agents (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NO ACTION (checked at the end of the statement) so that deleting the account, which
    -- cascades to agents and keys together, succeeds; deleting a key an agent uses does not.
    api_key_id       uuid REFERENCES api_keys (id),
    name             text NOT NULL,
    mode             text NOT NULL,
    model            text NOT NULL,
    indicators       text[] NOT NULL DEFAULT '{}',
    strategy_prompt  text NOT NULL,
    archived_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_mode_check CHECK (mode IN ('monk', 'omni'))
);
-- an agent name is unique among a user's live (not archived) agents
CREATE UNIQUE INDEX agents_user_id_name_key ON agents (user_id, name) WHERE archived_at IS NULL;
CREATE INDEX agents_user_created ON agents (user_id, created_at DESC);
CREATE INDEX agents_api_key ON agents (api_key_id) WHERE api_key_id IS NOT NULL;

CREATE TABLE test_sessions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id          uuid REFERENCES agents (id) ON DELETE SET NULL,
    type              text NOT NULL,
    status            text NOT NULL DEFAULT 'pending',
    asset             text NOT NULL,
    timeframe         text NOT NULL,
    start_date        timestamptz,
    end_date          timestamptz,
    starting_capital  double precision NOT NULL,
    speed             text NOT NULL DEFAULT 'normal',
    agent_snapshot    jsonb NOT NULL,
    config            jsonb NOT NULL,
    -- the serialised engine state after the last committed candle (DESIGN section 5)
    checkpoint        jsonb,
    -- index of the next candle to process
    cursor            bigint NOT NULL DEFAULT 0,
    total_candles     bigint,
    -- optimistic concurrency for the step chain: a step commits only if the version it read is current
    version           bigint NOT NULL DEFAULT 0,
    -- per-session event sequence number (DESIGN section 5)
    event_seq         bigint NOT NULL DEFAULT 0,
    failure_reason    text,
    started_at        timestamptz,
    completed_at      timestamptz,
    last_advanced_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT test_sessions_type_check CHECK (type IN ('backtest', 'forward')),
    CONSTRAINT test_sessions_status_check CHECK (status IN ('pending', 'running', 'paused', 'completed', 'stopped', 'failed')),
    CONSTRAINT test_sessions_timeframe_check CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d')),
    CONSTRAINT test_sessions_speed_check CHECK (speed IN ('slow', 'normal', 'fast', 'instant')),
    CONSTRAINT test_sessions_capital_check CHECK (starting_capital > 0),
    CONSTRAINT test_sessions_cursor_check CHECK (cursor >= 0),
    CONSTRAINT test_sessions_dates_check CHECK (end_date IS NULL OR start_date IS NULL OR end_date > start_date)
);
CREATE INDEX test_sessions_user_created ON test_sessions (user_id, created_at DESC);
CREATE INDEX test_sessions_agent ON test_sessions (agent_id) WHERE agent_id IS NOT NULL;
-- the watchdog and forward-tick look for sessions that should be advancing
CREATE INDEX test_sessions_active ON test_sessions (status, last_advanced_at) WHERE status IN ('pending', 'running');

CREATE TABLE trades (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id   uuid NOT NULL REFERENCES test_sessions (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    trade_no     integer NOT NULL,
    side         text NOT NULL,
    entry_time   timestamptz NOT NULL,
    entry_price  double precision NOT NULL,
    exit_time    timestamptz,
    exit_price   double precision,
    quantity     double precision NOT NULL,
    leverage     integer NOT NULL DEFAULT 1,
    stop_loss    double precision,
    take_profit  double precision,
    pnl          double precision,
    pnl_pct      double precision,
    fees         double precision NOT NULL DEFAULT 0,
    exit_type    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trades_session_trade_no_key UNIQUE (session_id, trade_no),
    CONSTRAINT trades_side_check CHECK (side IN ('long', 'short')),
    CONSTRAINT trades_exit_type_check CHECK (exit_type IN ('signal', 'stop_loss', 'take_profit', 'liquidation', 'session_end')),
    CONSTRAINT trades_leverage_check CHECK (leverage BETWEEN 1 AND 5),
    CONSTRAINT trades_quantity_check CHECK (quantity > 0)
);
CREATE INDEX trades_user_created ON trades (user_id, created_at DESC);

CREATE TABLE ai_thoughts (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id         uuid NOT NULL REFERENCES test_sessions (id) ON DELETE CASCADE,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    candle_index       bigint NOT NULL,
    candle_time        timestamptz NOT NULL,
    prompt_hash        text,
    action             text NOT NULL,
    reasoning          text NOT NULL DEFAULT '',
    confidence         integer,
    order_details      jsonb,
    raw_response       text,
    prompt_tokens      integer,
    completion_tokens  integer,
    cost_usd           double precision,
    latency_ms         integer,
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- one decision per session and candle: a replayed step reuses it, never pays twice
    CONSTRAINT ai_thoughts_session_candle_key UNIQUE (session_id, candle_index),
    CONSTRAINT ai_thoughts_action_check CHECK (action IN ('long', 'short', 'hold', 'close')),
    CONSTRAINT ai_thoughts_confidence_check CHECK (confidence IS NULL OR confidence BETWEEN 0 AND 100)
);
CREATE INDEX ai_thoughts_user_created ON ai_thoughts (user_id, created_at DESC);

CREATE TABLE test_results (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id           uuid NOT NULL REFERENCES test_sessions (id) ON DELETE CASCADE,
    user_id              uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id             uuid REFERENCES agents (id) ON DELETE SET NULL,
    type                 text NOT NULL,
    mode                 text NOT NULL,
    asset                text NOT NULL,
    timeframe            text NOT NULL,
    start_date           timestamptz,
    end_date             timestamptz,
    starting_capital     double precision NOT NULL,
    final_equity         double precision NOT NULL,
    total_pnl            double precision NOT NULL,
    total_pnl_pct        double precision NOT NULL,
    buy_hold_return_pct  double precision,
    max_drawdown_pct     double precision,
    win_rate             double precision,
    profit_factor        double precision,
    sharpe_ratio         double precision,
    sortino_ratio        double precision,
    calmar_ratio         double precision,
    total_trades         integer NOT NULL DEFAULT 0,
    winning_trades       integer NOT NULL DEFAULT 0,
    losing_trades        integer NOT NULL DEFAULT 0,
    fees_paid            double precision NOT NULL DEFAULT 0,
    metrics              jsonb NOT NULL,
    equity_curve         jsonb NOT NULL,
    agent_snapshot       jsonb NOT NULL,
    config               jsonb NOT NULL,
    duration_seconds     bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT test_results_session_key UNIQUE (session_id),
    CONSTRAINT test_results_type_check CHECK (type IN ('backtest', 'forward')),
    CONSTRAINT test_results_mode_check CHECK (mode IN ('monk', 'omni')),
    CONSTRAINT test_results_timeframe_check CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d'))
);
CREATE INDEX test_results_user_created ON test_results (user_id, created_at DESC);
CREATE INDEX test_results_user_pnl ON test_results (user_id, total_pnl_pct DESC);
CREATE INDEX test_results_agent ON test_results (agent_id) WHERE agent_id IS NOT NULL;

CREATE TABLE certificates (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    result_id          uuid NOT NULL REFERENCES test_results (id) ON DELETE CASCADE,
    verification_code  text NOT NULL,
    share_url          text NOT NULL,
    snapshot           jsonb NOT NULL,
    digest             text NOT NULL,
    view_count         bigint NOT NULL DEFAULT 0,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT certificates_result_key UNIQUE (result_id),
    CONSTRAINT certificates_verification_code_key UNIQUE (verification_code)
);
CREATE INDEX certificates_user_created ON certificates (user_id, created_at DESC);

-- Feeds --------------------------------------------------------------------------------------

CREATE TABLE notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type        text NOT NULL,
    title       text NOT NULL,
    message     text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_type_check CHECK (type IN (
        'test_completed', 'test_failed', 'certificate_issued', 'key_invalid', 'key_no_credits', 'system'))
);
CREATE INDEX notifications_user_created ON notifications (user_id, created_at DESC);
CREATE INDEX notifications_user_unread ON notifications (user_id, created_at DESC) WHERE read_at IS NULL;

CREATE TABLE activity_log (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    action       text NOT NULL,
    entity_type  text,
    entity_id    uuid,
    details      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT activity_log_action_check CHECK (action IN (
        'account_created', 'settings_updated',
        'agent_created', 'agent_updated', 'agent_duplicated', 'agent_deleted', 'agent_archived',
        'key_added', 'key_removed', 'key_validated', 'key_default_changed',
        'test_started', 'test_paused', 'test_resumed', 'test_stopped', 'test_completed', 'test_failed',
        'certificate_issued')),
    CONSTRAINT activity_log_entity_type_check CHECK (entity_type IS NULL OR entity_type IN (
        'user', 'agent', 'api_key', 'session', 'result', 'certificate'))
);
CREATE INDEX activity_log_user_created ON activity_log (user_id, created_at DESC);

-- Market data --------------------------------------------------------------------------------

CREATE TABLE market_data_cache (
    asset       text NOT NULL,
    timeframe   text NOT NULL,
    open_time   timestamptz NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL,
    source      text NOT NULL DEFAULT 'binance',
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT market_data_cache_pkey PRIMARY KEY (asset, timeframe, open_time),
    CONSTRAINT market_data_cache_timeframe_check CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d')),
    CONSTRAINT market_data_cache_range_check CHECK (
        high >= low AND high >= open AND high >= close AND low <= open AND low <= close AND volume >= 0)
);
