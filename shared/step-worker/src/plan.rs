//! The start rules of a backtest, as one pure function ([`plan_backtest`]): from the request's
//! body and the facts it depends on (the caller's settings, the agent, its key's status, the
//! time), either the session to store or every invalid field, named. The arena function only
//! routes: it loads the [`Facts`] and stores the plan.

use chrono::{DateTime, NaiveDate, Utc};
use engine::{EngineConfig, Mode, Timeframe};
use serde::Deserialize;
use sqlx::PgPool;
use store::FieldError;
use store::agents::Agent;
use store::sessions::{self, AgentSnapshot, NewSession, SessionConfig};
use uuid::Uuid;

use crate::worker::{DEFAULT_LOOKAHEAD, MAX_LOOKAHEAD};

/// At most this many candles per backtest.
pub const MAX_CANDLES: i64 = 50_000;
/// The largest starting capital accepted.
pub const MAX_CAPITAL: f64 = 1e9;
/// Most warm-up candles a session may ask for.
pub const MAX_WARMUP_CANDLES: u32 = 1000;

/// A backtest to start. Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBacktest {
    /// One of the caller's live agents.
    pub agent_id: Uuid,
    /// `BTCUSDT` or `ETHUSDT`.
    #[schema(pattern = "^(BTCUSDT|ETHUSDT)$")]
    pub asset: String,
    /// `1m`, `5m`, `15m`, `1h`, `4h` or `1d`.
    #[schema(pattern = "^(1m|5m|15m|1h|4h|1d)$")]
    pub timeframe: String,
    /// RFC 3339 or `YYYY-MM-DD` (UTC midnight); candles open at or after it.
    #[schema(
        pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$"
    )]
    pub start_date: String,
    /// RFC 3339 or `YYYY-MM-DD`; candles open before it.
    #[schema(
        pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$"
    )]
    pub end_date: String,
    /// Default: the user's `default_capital`.
    #[schema(exclusive_minimum = 0.0, maximum = 1e9)]
    pub initial_capital: Option<f64>,
    /// `slow`, `normal` (default), `fast` or `instant`.
    #[schema(pattern = "^(slow|normal|fast|instant)$")]
    pub speed: Option<String>,
    /// Fee per fill, basis points (default 10).
    #[schema(minimum = 0.0, maximum = 1000.0)]
    pub fee_bps: Option<f64>,
    /// Slippage per fill, basis points (default 5).
    #[schema(minimum = 0.0, maximum = 1000.0)]
    pub slippage_bps: Option<f64>,
    /// Maximum leverage, 1..the user's `max_leverage` (default 1; the setting is at most 5).
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "store::whole")]
    pub leverage: Option<u8>,
    /// Forced stop-loss, loss at the stop capped at 2 % of equity (default false).
    pub safety_mode: Option<bool>,
    /// Candles a model is asked about at once, 1..16 (default 4): speculative lookahead, the
    /// same result as 1, faster.
    #[schema(minimum = 1, maximum = 16)]
    #[serde(default, deserialize_with = "store::whole")]
    pub lookahead: Option<u32>,
    /// Ask the model again instead of reusing answers to identical requests of earlier runs
    /// (default false).
    pub fresh_decisions: Option<bool>,
    /// USD the model may cost; the session stops (`budget`) before a call could exceed it.
    #[schema(exclusive_minimum = 0.0)]
    pub budget_usd: Option<f64>,
    /// Candles before `start_date` that warm the indicators (0..1000, default 0): no decision,
    /// no fill, not in the progress or the result.
    #[schema(maximum = 1000)]
    #[serde(default, deserialize_with = "store::whole")]
    pub warmup_candles: Option<u32>,
}

/// A forward test to start: a backtest's settings without dates, speed or lookahead (it decides
/// each candle when it closes). Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartForward {
    /// One of the caller's live agents.
    pub agent_id: Uuid,
    /// `BTCUSDT` or `ETHUSDT`.
    #[schema(pattern = "^(BTCUSDT|ETHUSDT)$")]
    pub asset: String,
    /// `1m`, `5m`, `15m`, `1h`, `4h` or `1d`.
    #[schema(pattern = "^(1m|5m|15m|1h|4h|1d)$")]
    pub timeframe: String,
    /// Default: the user's `default_capital`.
    #[schema(exclusive_minimum = 0.0, maximum = 1e9)]
    pub initial_capital: Option<f64>,
    /// Fee per fill, basis points (default 10).
    #[schema(minimum = 0.0, maximum = 1000.0)]
    pub fee_bps: Option<f64>,
    /// Slippage per fill, basis points (default 5).
    #[schema(minimum = 0.0, maximum = 1000.0)]
    pub slippage_bps: Option<f64>,
    /// Maximum leverage, 1..the user's `max_leverage` (default 1; the setting is at most 5).
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "store::whole")]
    pub leverage: Option<u8>,
    /// Forced stop-loss, loss at the stop capped at 2 % of equity (default false).
    pub safety_mode: Option<bool>,
    /// Closed candles up to the start that warm the indicators (0..1000; default: the candles
    /// after which every indicator of the agent is defined, plus one).
    #[schema(maximum = 1000)]
    #[serde(default, deserialize_with = "store::whole")]
    pub warmup_candles: Option<u32>,
    /// USD the model may cost; the session stops (`budget`) before a call could exceed it.
    #[schema(exclusive_minimum = 0.0)]
    pub budget_usd: Option<f64>,
    /// Ask the model again instead of reusing answers to identical requests (default false).
    pub fresh_decisions: Option<bool>,
}

/// The settings a backtest and a forward session share, as a body gives them.
struct Settings<'a> {
    asset: &'a str,
    timeframe: &'a str,
    initial_capital: Option<f64>,
    fee_bps: Option<f64>,
    slippage_bps: Option<f64>,
    leverage: Option<u8>,
    safety_mode: Option<bool>,
    budget_usd: Option<f64>,
    fresh_decisions: Option<bool>,
    warmup_candles: Option<u32>,
}

impl<'a> From<&'a StartBacktest> for Settings<'a> {
    fn from(b: &'a StartBacktest) -> Self {
        Self {
            asset: &b.asset,
            timeframe: &b.timeframe,
            initial_capital: b.initial_capital,
            fee_bps: b.fee_bps,
            slippage_bps: b.slippage_bps,
            leverage: b.leverage,
            safety_mode: b.safety_mode,
            budget_usd: b.budget_usd,
            fresh_decisions: b.fresh_decisions,
            warmup_candles: b.warmup_candles,
        }
    }
}

impl<'a> From<&'a StartForward> for Settings<'a> {
    fn from(b: &'a StartForward) -> Self {
        Self {
            asset: &b.asset,
            timeframe: &b.timeframe,
            initial_capital: b.initial_capital,
            fee_bps: b.fee_bps,
            slippage_bps: b.slippage_bps,
            leverage: b.leverage,
            safety_mode: b.safety_mode,
            budget_usd: b.budget_usd,
            fresh_decisions: b.fresh_decisions,
            warmup_candles: b.warmup_candles,
        }
    }
}

/// What the rules depend on besides the body.
#[derive(Debug, Clone)]
pub struct Facts {
    pub default_capital: f64,
    pub max_leverage: i32,
    /// The caller's agent named by the body (`None`: not theirs, or no such agent).
    pub agent: Option<Agent>,
    /// The status of the key a model agent would use and why (`None`: no key).
    pub key: Option<(String, Option<String>)>,
    pub now: DateTime<Utc>,
}

impl Facts {
    /// Reads the facts for `user_id`'s `body`; `None` when the user is unknown.
    pub async fn load(
        pool: &PgPool,
        user_id: Uuid,
        agent_id: Uuid,
    ) -> Result<Option<Self>, sqlx::Error> {
        let Some(settings) = store::users::settings(pool, user_id).await? else {
            return Ok(None);
        };
        let agent = store::agents::find(pool, user_id, agent_id).await?;
        let key = match &agent {
            Some(a) if engine::baseline::Kind::from_model(&a.model).is_none() => {
                store::api_keys::for_session(pool, user_id, a.api_key_id)
                    .await?
                    .map(|k| (k.status, k.status_reason))
            }
            _ => None,
        };
        Ok(Some(Self {
            default_capital: settings.default_capital,
            max_leverage: settings.max_leverage,
            agent,
            key,
            now: Utc::now(),
        }))
    }
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339.
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The open time of the first candle Binance has of a supported pair at `timeframe` (both
/// pairs were listed on 2017-08-17: the first daily candle opens at midnight, the first of every
/// shorter timeframe at 04:00 UTC).
pub fn first_candle(asset: &str, timeframe: Timeframe) -> Option<DateTime<Utc>> {
    match asset {
        "BTCUSDT" | "ETHUSDT" => parse_date(if timeframe == Timeframe::D1 {
            "2017-08-17T00:00:00Z"
        } else {
            "2017-08-17T04:00:00Z"
        }),
        _ => None,
    }
}

/// The agent's fitness for a session: live, and a baseline or a usable key.
fn check_agent(facts: &Facts, errors: &mut Vec<FieldError>) {
    match &facts.agent {
        None => errors.push(FieldError::new("agent_id", "agent not found")),
        Some(a) if a.archived_at.is_some() => errors.push(FieldError::new(
            "agent_id",
            "the agent is archived; duplicate it to test it again",
        )),
        Some(a) if engine::baseline::Kind::from_model(&a.model).is_none() => match &facts.key {
            None => errors.push(FieldError::new(
                "agent_id",
                "the agent needs an OpenRouter key: add one (POST /api/api-keys) or set the agent's api_key_id",
            )),
            Some((status, reason)) if matches!(status.as_str(), "invalid" | "no_credits") => {
                errors.push(FieldError::new(
                    "agent_id",
                    format!(
                        "the agent's OpenRouter key is {status}{}; validate it again or use another key",
                        reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                ))
            }
            Some(_) => {}
        },
        Some(_) => {}
    }
}

/// The asset and the timeframe, checked.
fn check_market(settings: &Settings<'_>, errors: &mut Vec<FieldError>) -> Option<Timeframe> {
    if !store::SUPPORTED_ASSETS.contains(&settings.asset) {
        errors.push(FieldError::new(
            "asset",
            format!("must be one of {}", store::SUPPORTED_ASSETS.join(", ")),
        ));
    }
    let timeframe = Timeframe::parse(settings.timeframe);
    if timeframe.is_none() {
        errors.push(FieldError::new(
            "timeframe",
            format!("must be one of {}", store::SUPPORTED_TIMEFRAMES.join(", ")),
        ));
    }
    timeframe
}

/// A backtest's and a forward session's shared settings, checked; the engine's configuration
/// and the session's (with `lookahead` and the warm-up given) once every field is valid.
fn configure(
    settings: &Settings<'_>,
    facts: &Facts,
    timeframe: Option<Timeframe>,
    lookahead: u32,
    warmup_default: impl FnOnce(&[String]) -> u32,
    mut errors: Vec<FieldError>,
) -> Result<(Agent, Timeframe, f64, SessionConfig), Vec<FieldError>> {
    let capital = settings.initial_capital.unwrap_or(facts.default_capital);
    if !(capital.is_finite() && capital > 0.0 && capital <= MAX_CAPITAL) {
        errors.push(FieldError::new(
            "initial_capital",
            format!("must be greater than 0 and at most {MAX_CAPITAL}"),
        ));
    }
    let fee = settings.fee_bps.unwrap_or(engine::rules::DEFAULT_FEE_BPS);
    if !(fee.is_finite() && (0.0..=1000.0).contains(&fee)) {
        errors.push(FieldError::new("fee_bps", "must be between 0 and 1000"));
    }
    let slippage = settings
        .slippage_bps
        .unwrap_or(engine::rules::DEFAULT_SLIPPAGE_BPS);
    if !(slippage.is_finite() && (0.0..=1000.0).contains(&slippage)) {
        errors.push(FieldError::new(
            "slippage_bps",
            "must be between 0 and 1000",
        ));
    }
    let leverage = settings.leverage.unwrap_or(1);
    let max_leverage = facts.max_leverage.clamp(1, 5) as u8;
    if !(1..=max_leverage).contains(&leverage) {
        errors.push(FieldError::new(
            "leverage",
            format!("must be between 1 and your max_leverage setting ({max_leverage})"),
        ));
    }
    if let Some(budget) = settings.budget_usd
        && !(budget.is_finite() && budget > 0.0)
    {
        errors.push(FieldError::new(
            "budget_usd",
            "must be a positive amount of USD",
        ));
    }
    if let Some(w) = settings.warmup_candles
        && w > MAX_WARMUP_CANDLES
    {
        errors.push(FieldError::new(
            "warmup_candles",
            format!("must be between 0 and {MAX_WARMUP_CANDLES}"),
        ));
    }
    let (Some(agent), Some(timeframe), true) = (&facts.agent, timeframe, errors.is_empty()) else {
        return Err(errors);
    };
    let mut engine = EngineConfig::new(settings.asset.to_owned(), timeframe);
    engine.initial_capital = capital;
    engine.mode = Mode::parse(&agent.mode).unwrap_or(Mode::Omni);
    engine.safety = settings.safety_mode.unwrap_or(false);
    engine.max_leverage = leverage;
    engine.fee_bps = fee;
    engine.slippage_bps = slippage;
    // a baseline's own indicators first, then the agent's others
    let mut indicators: Vec<String> = engine::baseline::Kind::from_model(&agent.model)
        .map(|k| {
            k.required_indicators()
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
        .unwrap_or_default();
    for name in &agent.indicators {
        if !indicators.contains(name) {
            indicators.push(name.clone());
        }
    }
    engine.indicators = indicators;
    if let Err(e) = engine::Engine::new(engine.clone()) {
        return Err(vec![FieldError::new("agent_id", e.to_string())]);
    }
    let warmup_candles = settings
        .warmup_candles
        .unwrap_or_else(|| warmup_default(&engine.indicators));
    let config = SessionConfig {
        engine,
        fee_bps: fee,
        slippage_bps: slippage,
        leverage,
        safety_mode: settings.safety_mode.unwrap_or(false),
        lookahead,
        fresh_decisions: settings.fresh_decisions.unwrap_or(false),
        budget_usd: settings.budget_usd,
        warmup_candles,
    };
    Ok((agent.clone(), timeframe, capital, config))
}

fn snapshot(agent: &Agent) -> AgentSnapshot {
    AgentSnapshot {
        id: agent.id,
        name: agent.name.clone(),
        model: agent.model.clone(),
        mode: agent.mode.clone(),
        indicators: agent.indicators.clone(),
        strategy_prompt: agent.strategy_prompt.clone(),
        temperature: agent.temperature,
        api_key_id: agent.api_key_id,
    }
}

/// The session `body` asks for, or every invalid field, named (checked in one pass).
pub fn plan_backtest(body: &StartBacktest, facts: &Facts) -> Result<NewSession, Vec<FieldError>> {
    let mut errors = Vec::new();
    check_agent(facts, &mut errors);
    let settings = Settings::from(body);
    let timeframe = check_market(&settings, &mut errors);
    let start = parse_date(&body.start_date);
    let end = parse_date(&body.end_date);
    if start.is_none() {
        errors.push(FieldError::new(
            "start_date",
            "must be RFC 3339 or YYYY-MM-DD",
        ));
    }
    if end.is_none() {
        errors.push(FieldError::new(
            "end_date",
            "must be RFC 3339 or YYYY-MM-DD",
        ));
    }
    let mut total = 0;
    if let (Some(start), Some(end)) = (start, end) {
        if end <= start {
            errors.push(FieldError::new("end_date", "must be after start_date"));
        } else if end > facts.now {
            errors.push(FieldError::new("end_date", "must not be in the future"));
        }
        if let Some(tf) = timeframe
            && let Some(first) = first_candle(&body.asset, tf)
            && start < first
        {
            errors.push(FieldError::new(
                "start_date",
                format!(
                    "the first {} {} candle opens at {}: start there or later",
                    body.asset,
                    tf.as_str(),
                    first.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            ));
        }
        if let Some(tf) = timeframe
            && end > start
            && end <= facts.now
        {
            let span = (end - start).num_milliseconds();
            total = (span + tf.millis() - 1) / tf.millis();
            if total > MAX_CANDLES {
                errors.push(FieldError::new(
                    "end_date",
                    format!(
                        "the range holds {total} {} candles; at most {MAX_CANDLES}",
                        tf.as_str()
                    ),
                ));
            }
        }
    }
    let speed = body.speed.clone().unwrap_or_else(|| "normal".into());
    if !sessions::SPEEDS.contains(&speed.as_str()) {
        errors.push(FieldError::new(
            "speed",
            format!("must be one of {}", sessions::SPEEDS.join(", ")),
        ));
    }
    let lookahead = body.lookahead.unwrap_or(DEFAULT_LOOKAHEAD as u32);
    if !(1..=MAX_LOOKAHEAD as u32).contains(&lookahead) {
        errors.push(FieldError::new(
            "lookahead",
            format!("must be between 1 and {MAX_LOOKAHEAD}"),
        ));
    }
    // a backtest's warm-up is asked for (0 keeps the range's first candles undecided-free)
    let (agent, timeframe, capital, config) =
        configure(&settings, facts, timeframe, lookahead, |_| 0, errors)?;
    let (Some(start), Some(end)) = (start, end) else {
        return Err(Vec::new());
    };
    Ok(NewSession {
        kind: "backtest",
        agent_id: agent.id,
        asset: body.asset.clone(),
        timeframe: timeframe.as_str().into(),
        start: Some(start),
        end: Some(end),
        starting_capital: capital,
        speed,
        agent_snapshot: snapshot(&agent),
        config,
        total_candles: Some(total),
    })
}

/// The warm-up a forward session takes by default: the candles after which every indicator of
/// the agent is defined, plus one (so the first decided candle has previous values too).
pub fn default_warmup(indicators: &[String]) -> u32 {
    engine::IndicatorSet::candles_to_define(indicators, MAX_WARMUP_CANDLES as usize)
        .ok()
        .flatten()
        .map_or(MAX_WARMUP_CANDLES, |n| {
            (n as u32 + 1).min(MAX_WARMUP_CANDLES)
        })
}

/// The forward session `body` asks for, or every invalid field, named (checked in one pass).
pub fn plan_forward(body: &StartForward, facts: &Facts) -> Result<NewSession, Vec<FieldError>> {
    let mut errors = Vec::new();
    check_agent(facts, &mut errors);
    let settings = Settings::from(body);
    let timeframe = check_market(&settings, &mut errors);
    let (agent, timeframe, capital, config) =
        configure(&settings, facts, timeframe, 1, default_warmup, errors)?;
    Ok(NewSession {
        kind: "forward",
        agent_id: agent.id,
        asset: body.asset.clone(),
        timeframe: timeframe.as_str().into(),
        start: None,
        end: None,
        starting_capital: capital,
        // a forward session decides each candle when it closes: no pace
        speed: "instant".into(),
        agent_snapshot: snapshot(&agent),
        config,
        total_candles: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(model: &str) -> Agent {
        Agent {
            id: Uuid::nil(),
            name: "trend".into(),
            mode: "omni".into(),
            model: model.into(),
            indicators: vec!["rsi_14".into()],
            strategy_prompt: "buy strength".into(),
            api_key_id: None,
            temperature: 0.3,
            archived_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            test_count: 0,
            best_pnl_pct: None,
            last_tested_at: None,
        }
    }

    fn facts() -> Facts {
        Facts {
            default_capital: 10_000.0,
            max_leverage: 2,
            agent: Some(agent("baseline/sma-cross")),
            key: None,
            now: parse_date("2026-12-04T12:00:00Z").unwrap(),
        }
    }

    fn body() -> StartBacktest {
        StartBacktest {
            agent_id: Uuid::nil(),
            asset: "BTCUSDT".into(),
            timeframe: "1h".into(),
            start_date: "2021-01-01".into(),
            end_date: "2021-02-01".into(),
            ..StartBacktest::default()
        }
    }

    fn fields(result: Result<NewSession, Vec<FieldError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_valid_body_plans_the_session_with_its_defaults() {
        let plan = plan_backtest(&body(), &facts()).unwrap();
        assert_eq!(plan.total_candles, Some(31 * 24));
        assert_eq!(plan.starting_capital, 10_000.0);
        assert_eq!(plan.speed, "normal");
        assert_eq!(plan.config.lookahead, DEFAULT_LOOKAHEAD as u32);
        assert_eq!(plan.config.engine.indicators[..2], ["sma_10", "sma_30"]);
        assert!(plan.config.engine.indicators.contains(&"rsi_14".to_owned()));
        assert_eq!(plan.agent_snapshot.model, "baseline/sma-cross");
        // the typed config reads back as it was written
        let json = serde_json::to_value(&plan.config).unwrap();
        assert_eq!(
            serde_json::from_value::<SessionConfig>(json).unwrap(),
            plan.config
        );
    }

    /// A change to a valid body or its facts.
    type Change = Box<dyn Fn(&mut StartBacktest, &mut Facts)>;

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|_, f| f.agent = None), "agent_id"),
            (
                Box::new(|_, f| f.agent = Some(agent("openai/gpt-4o-mini"))),
                "agent_id",
            ),
            (
                Box::new(|_, f| {
                    f.agent = Some(agent("openai/gpt-4o-mini"));
                    f.key = Some(("no_credits".into(), None));
                }),
                "agent_id",
            ),
            (Box::new(|b, _| b.asset = "DOGEUSDT".into()), "asset"),
            (Box::new(|b, _| b.timeframe = "2h".into()), "timeframe"),
            (
                Box::new(|b, _| b.start_date = "yesterday".into()),
                "start_date",
            ),
            (
                Box::new(|b, _| b.end_date = "2020-12-01".into()),
                "end_date",
            ),
            (
                Box::new(|b, _| b.end_date = "2099-01-01".into()),
                "end_date",
            ),
            (
                Box::new(|b, _| {
                    b.timeframe = "1m".into();
                    b.start_date = "2020-01-01".into();
                    b.end_date = "2021-01-01".into();
                }),
                "end_date",
            ),
            (
                Box::new(|b, _| b.initial_capital = Some(-5.0)),
                "initial_capital",
            ),
            (Box::new(|b, _| b.speed = Some("warp".into())), "speed"),
            (Box::new(|b, _| b.fee_bps = Some(5000.0)), "fee_bps"),
            (Box::new(|b, _| b.slippage_bps = Some(-1.0)), "slippage_bps"),
            (Box::new(|b, _| b.leverage = Some(3)), "leverage"),
            (Box::new(|b, _| b.lookahead = Some(17)), "lookahead"),
            (Box::new(|b, _| b.budget_usd = Some(0.0)), "budget_usd"),
            (
                Box::new(|b, _| b.warmup_candles = Some(1001)),
                "warmup_candles",
            ),
        ];
        for (change, field) in cases {
            let (mut b, mut f) = (body(), facts());
            change(&mut b, &mut f);
            assert_eq!(fields(plan_backtest(&b, &f)), [field], "{b:?}");
        }
    }

    #[test]
    fn a_forward_session_warms_up_by_default_on_its_indicators_plus_one() {
        let body = StartForward {
            agent_id: Uuid::nil(),
            asset: "BTCUSDT".into(),
            timeframe: "1h".into(),
            ..StartForward::default()
        };
        let plan = plan_forward(&body, &facts()).unwrap();
        assert_eq!(plan.kind, "forward");
        assert_eq!(
            (plan.start, plan.end, plan.total_candles),
            (None, None, None)
        );
        assert_eq!(plan.speed, "instant");
        assert_eq!(plan.config.lookahead, 1);
        // sma_30 defines after 30 candles; rsi_14 after 15: 30 + 1
        assert_eq!(plan.config.warmup_candles, 31);
        let mut b = body.clone();
        b.warmup_candles = Some(0);
        assert_eq!(plan_forward(&b, &facts()).unwrap().config.warmup_candles, 0);
        b.warmup_candles = Some(1001);
        b.asset = "DOGEUSDT".into();
        b.leverage = Some(9);
        assert_eq!(
            fields(plan_forward(&b, &facts())),
            ["asset", "leverage", "warmup_candles"]
        );
    }

    #[test]
    fn the_first_candle_is_named_to_the_hour_and_a_range_from_it_is_accepted() {
        let mut b = body();
        b.start_date = "2017-08-17".into();
        b.end_date = "2017-09-01".into();
        let err = plan_backtest(&b, &facts()).unwrap_err();
        assert_eq!(err[0].field, "start_date");
        assert!(
            err[0].message.contains("2017-08-17T04:00:00Z"),
            "{}",
            err[0].message
        );
        b.start_date = "2017-08-17T04:00:00Z".into();
        assert!(plan_backtest(&b, &facts()).is_ok());
        // the daily candles start at midnight
        b.timeframe = "1d".into();
        b.start_date = "2017-08-17".into();
        assert!(plan_backtest(&b, &facts()).is_ok());
    }
}
