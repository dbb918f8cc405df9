//! The results endpoint group (issue 23): what the caller's finished tests became.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/results` | 200 `{"results", "next_cursor"}`: filters, sort, order, keyset pages |
//! | `GET /api/results/stats` | 200 `{"stats"}` over exactly the results the list would return |
//! | `GET /api/results/{id}` | 200 `{"result"}`: summary, metrics, config, agent snapshot |
//! | `GET /api/results/{id}/trades` | 200 `{"trades", "next_cursor"}` by `trade_no` |
//! | `GET /api/results/{id}/reasoning` | 200 `{"reasoning", "next_cursor"}` by candle |
//! | `GET /api/results/{id}/equity` | 200 `{"equity"}`: the chart's curve with buy & hold |
//!
//! Every route needs a Clerk bearer token; another user's result is a 404, as a random id. A
//! bad query parameter is a 422 naming it.

use axum::Router;
use axum::extract::State;
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Path, Query};
use platform::query::Params;
use platform::{ApiError, ApiResult, ApiState};
use serde::{Deserialize, Serialize};
use store::results::{
    self, CurvePoint, Filter, ListQuery, ResultCursor, ResultDetail, ResultSummary, Sort, Stats,
    ThoughtRow, TradeRow,
};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The variables this function reads: database, Clerk, rate limit, log format.
pub type Config = platform::ApiConfig;

/// The routes with their OpenAPI operations (one registration for both).
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stats))
        .routes(routes!(get))
        .routes(routes!(trades))
        .routes(routes!(reasoning))
        .routes(routes!(equity))
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultsResponse {
    pub results: Vec<ResultSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsResponse {
    pub stats: Stats,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultResponse {
    pub result: ResultDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TradesResponse {
    pub trades: Vec<TradeRow>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReasoningResponse {
    pub reasoning: Vec<ThoughtRow>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EquityResponse {
    pub equity: Vec<CurvePoint>,
}

/// The filters of the list and its stats, read as text so that a bad value is a 422 naming it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct FilterQuery {
    /// `backtest` or `forward`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub agent_id: Option<String>,
    /// `BTCUSDT` or `ETHUSDT`.
    pub asset: Option<String>,
    /// `true` (`total_return_pct >= 0`) or `false`.
    #[param(value_type = Option<bool>)]
    pub profitable: Option<String>,
    /// `completed` or `stopped`.
    pub status: Option<String>,
}

impl FilterQuery {
    fn read(&self, p: &mut Params) -> Filter {
        Filter {
            kind: p.one_of("type", self.kind.as_deref(), &["backtest", "forward"]),
            agent_id: p.uuid("agent_id", self.agent_id.as_deref()),
            asset: p.one_of("asset", self.asset.as_deref(), store::SUPPORTED_ASSETS),
            profitable: p.boolean("profitable", self.profitable.as_deref()),
            status: p.one_of("status", self.status.as_deref(), &["completed", "stopped"]),
        }
    }
}

/// The list's order and page (its filters are [`FilterQuery`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// `created_at` (default) or `total_return_pct`; ties broken by id in the same direction.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// Page size, 1..100 (default 20).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (of the same sort and order).
    pub cursor: Option<String>,
}

/// The caller's results, a page at a time.
#[utoipa::path(get, path = "/api/results", tag = "results", params(FilterQuery, ListParams),
    security(("bearer" = [])),
    responses((status = 200, body = ResultsResponse), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn list(
    State(api): State<ApiState>,
    user: AuthUser,
    Query(filter): Query<FilterQuery>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ResultsResponse>> {
    let mut p = Params::new();
    let filter = filter.read(&mut p);
    let sort = p
        .one_of("sort", q.sort.as_deref(), Sort::NAMES)
        .and_then(Sort::parse)
        .unwrap_or(Sort::CreatedAt);
    let ascending = p.one_of("order", q.order.as_deref(), &["desc", "asc"]) == Some("asc");
    let limit = p.number("limit", q.limit.as_deref(), 1..=100, 20);
    let cursor = p.cursor(q.cursor.as_deref(), |c| {
        ResultCursor::decode(c, sort, ascending)
    });
    p.finish()?;
    let query = ListQuery {
        filter,
        sort,
        ascending,
        cursor,
        limit,
    };
    let (results, next) = results::list(&api.pool, user.id, &query).await?;
    Ok(Json(ResultsResponse {
        results,
        next_cursor: next.map(|c| c.encode(sort, ascending)),
    }))
}

/// Aggregates over exactly the results the list with the same filters returns.
#[utoipa::path(get, path = "/api/results/stats", tag = "results", params(FilterQuery),
    security(("bearer" = [])),
    responses((status = 200, body = StatsResponse), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn stats(
    State(api): State<ApiState>,
    user: AuthUser,
    Query(q): Query<FilterQuery>,
) -> ApiResult<Json<StatsResponse>> {
    let mut p = Params::new();
    let filter = q.read(&mut p);
    p.finish()?;
    let stats = results::stats(&api.pool, user.id, &filter).await?;
    Ok(Json(StatsResponse { stats }))
}

/// One result in full.
#[utoipa::path(get, path = "/api/results/{id}", tag = "results", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ResultResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn get(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ResultResponse>> {
    let result = results::get(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("result"))?;
    Ok(Json(ResultResponse { result }))
}

/// A page of rows keyed by a number (`trade_no`, `candle_index`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RowsParams {
    /// Page size, 1..1000 (default 100).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The cursor of a list of `tag` rows keyed by a number.
fn row_cursor(tag: &str, key: i64) -> String {
    store::page::encode_key(tag, &key.to_string())
}

fn read_row_cursor(tag: &str, text: &str) -> Option<i64> {
    store::page::decode_key(tag, text)?.parse().ok()
}

/// The result's closed trades, by `trade_no`.
#[utoipa::path(get, path = "/api/results/{id}/trades", tag = "results",
    params(("id" = Uuid, Path), RowsParams), security(("bearer" = [])),
    responses((status = 200, body = TradesResponse), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn trades(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<RowsParams>,
) -> ApiResult<Json<TradesResponse>> {
    let mut p = Params::new();
    let limit = p.number("limit", q.limit.as_deref(), 1..=1000, 100);
    let after = p.cursor(q.cursor.as_deref(), |c| read_row_cursor("trades", c));
    p.finish()?;
    let at = results::locate(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("result"))?;
    let mut trades = results::trades(&api.pool, user.id, at.session_id, after, limit + 1).await?;
    let next = store::page::cut(&mut trades, limit, |t| i64::from(t.trade_no));
    Ok(Json(TradesResponse {
        trades,
        next_cursor: next.map(|n| row_cursor("trades", n)),
    }))
}

/// The reasoning list's parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReasoningParams {
    /// Only decisions of this action: `long`, `short`, `close` or `hold`.
    pub action: Option<String>,
    /// Page size, 1..1000 (default 100).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (of the same filter).
    pub cursor: Option<String>,
}

/// The decision of every decided candle, by candle (never a speculative answer).
#[utoipa::path(get, path = "/api/results/{id}/reasoning", tag = "results",
    params(("id" = Uuid, Path), ReasoningParams), security(("bearer" = [])),
    responses((status = 200, body = ReasoningResponse), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn reasoning(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<ReasoningParams>,
) -> ApiResult<Json<ReasoningResponse>> {
    let mut p = Params::new();
    let action = p.one_of("action", q.action.as_deref(), results::ACTIONS);
    let limit = p.number("limit", q.limit.as_deref(), 1..=1000, 100);
    let tag = format!("reasoning:{}", action.unwrap_or("all"));
    let after = p.cursor(q.cursor.as_deref(), |c| read_row_cursor(&tag, c));
    p.finish()?;
    let at = results::locate(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("result"))?;
    let mut rows = results::reasoning(&api.pool, user.id, &at, action, after, limit + 1).await?;
    let next = store::page::cut(&mut rows, limit, |t| t.candle_index);
    Ok(Json(ReasoningResponse {
        reasoning: rows,
        next_cursor: next.map(|n| row_cursor(&tag, n)),
    }))
}

/// The chart's equity curve (at most 1,000 points) with buy & hold beside it.
#[utoipa::path(get, path = "/api/results/{id}/equity", tag = "results",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = EquityResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn equity(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EquityResponse>> {
    let at = results::locate(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("result"))?;
    let equity = results::curve(&api.pool, user.id, &at).await?;
    Ok(Json(EquityResponse { equity }))
}
