//! The market data endpoint group (issue 23): what the candle cache holds, and its candles with
//! the engine's indicators. It reads the cache only: nothing calls the exchange within a
//! request (backtests and `alphalab load-data` fill the cache).
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/data/assets` | 200 `{"assets": [{"asset", "timeframes": [...]}]}` |
//! | `GET /api/data/candles` | 200 `{"candles", "next_cursor"}`, ascending, gaps kept |
//!
//! Indicators are computed by the engine over [`WARMUP_CANDLES`] cached candles before `start`
//! and then every candle up to the page: the same values on every page of one query, defined
//! from the first candle returned whenever that much history is cached.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use engine::{Candle, IndicatorSet, Timeframe};
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Query};
use platform::query::Params;
use platform::{ApiError, ApiResult, ApiState};
use serde::{Deserialize, Serialize};
use store::market_data;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The variables this function reads: database, Clerk, rate limit, log format.
pub type Config = platform::ApiConfig;

/// Cached candles before `start` the indicators warm up on (the longest accepted indicator,
/// `adx_500`, is defined after 999 candles; the recursive ones, EMA and RSI, have forgotten
/// their seed by then).
pub const WARMUP_CANDLES: i64 = 2000;

/// The routes with their OpenAPI operations (one registration for both).
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(assets))
        .routes(routes!(candles))
}

/// The routes with their state, unfinished: the local tool merges them with other functions'.
pub fn routes(state: ApiState) -> Router {
    api().split_for_parts().0.with_state(state)
}

/// The service Lambda serves.
pub fn router(state: ApiState) -> Router {
    platform::http::service(routes(state), ())
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> OpenApi {
    api().split_for_parts().1
}

/// What the cache holds for one timeframe of an asset.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Held {
    pub timeframe: String,
    /// Open time of the first candle held.
    #[schema(example = "2021-01-01T00:00:00Z")]
    pub first: String,
    /// Open time of the last candle held.
    pub last: String,
    pub candles: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Asset {
    pub asset: String,
    pub timeframes: Vec<Held>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetsResponse {
    pub assets: Vec<Asset>,
}

/// Every asset and timeframe in the candle cache.
#[utoipa::path(get, path = "/api/data/assets", tag = "data", security(("bearer" = [])),
    responses((status = 200, body = AssetsResponse)))]
#[tracing::instrument(skip_all)]
async fn assets(State(api): State<ApiState>, _user: AuthUser) -> ApiResult<Json<AssetsResponse>> {
    let mut assets: Vec<Asset> = Vec::new();
    for h in market_data::held(&api.pool).await? {
        let held = Held {
            timeframe: h.timeframe,
            first: store::candle_time::format(&h.first),
            last: store::candle_time::format(&h.last),
            candles: h.candles,
        };
        match assets.last_mut() {
            Some(a) if a.asset == h.asset => a.timeframes.push(held),
            _ => assets.push(Asset {
                asset: h.asset,
                timeframes: vec![held],
            }),
        }
    }
    // shortest timeframe first
    for a in &mut assets {
        a.timeframes
            .sort_by_key(|t| Timeframe::parse(&t.timeframe).map(Timeframe::millis));
    }
    Ok(Json(AssetsResponse { assets }))
}

/// The candles query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandlesParams {
    /// `BTCUSDT` or `ETHUSDT`.
    #[param(required = true, pattern = "^(BTCUSDT|ETHUSDT)$")]
    pub asset: Option<String>,
    /// `1m`, `5m`, `15m`, `1h`, `4h` or `1d`.
    #[param(required = true, pattern = "^(1m|5m|15m|1h|4h|1d)$")]
    pub timeframe: Option<String>,
    /// First open time taken (RFC 3339 or `YYYY-MM-DD`).
    #[param(
        required = true,
        pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$"
    )]
    pub start: Option<String>,
    /// Open times before this one (after `start`).
    #[param(
        required = true,
        pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$"
    )]
    pub end: Option<String>,
    /// Page size, 1..5000 (default 1000).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 5000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (of the same query).
    pub cursor: Option<String>,
    /// Comma-separated indicator names, as agents take them (`sma_10,rsi_14,macd`).
    pub indicators: Option<String>,
}

/// A cached candle and its indicators.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CandleOut {
    /// Open time.
    #[schema(example = "2024-01-01T04:00:00Z")]
    pub time: String,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    /// Each requested indicator's outputs by output name (`macd` gives `macd`, `macd_signal`,
    /// `macd_histogram`); null before an output's first value.
    #[schema(value_type = Object)]
    pub indicators: BTreeMap<String, Option<f64>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CandlesResponse {
    pub candles: Vec<CandleOut>,
    /// Pass as `cursor` (with the same query) for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// RFC 3339, or a date (its midnight UTC).
fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// Cached candles of one asset and timeframe in `[start, end)`, ascending, with indicators.
#[utoipa::path(get, path = "/api/data/candles", tag = "data", params(CandlesParams),
    security(("bearer" = [])),
    responses((status = 200, body = CandlesResponse), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn candles(
    State(api): State<ApiState>,
    _user: AuthUser,
    Query(q): Query<CandlesParams>,
) -> ApiResult<Json<CandlesResponse>> {
    let mut p = Params::new();
    let asset = p.required("asset", q.asset.as_deref(), store::SUPPORTED_ASSETS);
    let timeframe = p.required(
        "timeframe",
        q.timeframe.as_deref(),
        store::SUPPORTED_TIMEFRAMES,
    );
    let mut bound = |name: &str, raw: Option<&str>| match raw {
        None => {
            p.reject(name, "required: RFC 3339 or YYYY-MM-DD");
            None
        }
        Some(text) => {
            let t = instant(text);
            if t.is_none() {
                p.reject(
                    name,
                    "must be RFC 3339 (2024-01-01T00:00:00Z) or YYYY-MM-DD",
                );
            }
            t
        }
    };
    let start = bound("start", q.start.as_deref());
    let end = bound("end", q.end.as_deref());
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        p.reject("end", "must be after start");
    }
    let limit = p.number("limit", q.limit.as_deref(), 1..=5000, 1000);
    let names: Vec<&str> = q
        .indicators
        .as_deref()
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let set = match IndicatorSet::new(&names) {
        Ok(set) => Some(set),
        Err(e) => {
            p.reject("indicators", e.to_string());
            None
        }
    };
    let tag = format!(
        "candles:{}:{}:{}:{}:{}",
        q.asset.as_deref().unwrap_or(""),
        q.timeframe.as_deref().unwrap_or(""),
        start.map_or(0, |t| t.timestamp_millis()),
        end.map_or(0, |t| t.timestamp_millis()),
        names.join(",")
    );
    // a cursor names a candle of this query's range (anything else was not given out)
    let range = start
        .zip(end)
        .map_or(0..0, |(s, e)| s.timestamp_millis()..e.timestamp_millis());
    let from: Option<i64> = p.cursor(q.cursor.as_deref(), |c| {
        let t: i64 = store::page::decode_key(&tag, c)?.parse().ok()?;
        range.contains(&t).then_some(t)
    });
    p.finish()?;
    let (Some(asset), Some(timeframe), Some(start), Some(end), Some(mut set)) =
        (asset, timeframe, start, end, set)
    else {
        // every missing part was rejected above
        return Err(ApiError::BadRequest("incomplete query".into()));
    };
    let start_ms = start.timestamp_millis();
    let from_ms = from.unwrap_or(start_ms);
    // the warm-up, then every candle from `start` up to this page (a later page replays the
    // earlier ones: its values are those of one continuous run), then the page and one more
    let before = (from_ms - start_ms) / Timeframe::parse(timeframe).map_or(1, |t| t.millis());
    let rows = market_data::window(
        &api.pool,
        asset,
        timeframe,
        WARMUP_CANDLES,
        start_ms,
        end.timestamp_millis(),
        before + limit + 1,
    )
    .await?;
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut candles = Vec::with_capacity(limit);
    let mut next = None;
    for &(time, open, high, low, close, volume) in &rows {
        set.update(&Candle {
            time,
            open,
            high,
            low,
            close,
            volume,
        });
        if time < from_ms {
            continue;
        }
        if candles.len() == limit {
            next = Some(store::page::encode_key(&tag, &time.to_string()));
            break;
        }
        candles.push(CandleOut {
            time: store::candle_time::format_ms(time).unwrap_or_default(),
            open,
            high,
            low,
            close,
            volume,
            indicators: set
                .names()
                .iter()
                .cloned()
                .zip(set.values().iter().copied())
                .collect(),
        });
    }
    Ok(Json(CandlesResponse {
        candles,
        next_cursor: next,
    }))
}
