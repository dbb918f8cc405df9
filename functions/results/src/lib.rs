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
//! | `GET /api/results/{id}/ledger` | 200 JSON Lines: the signed ledger, a page at a time |
//! | `GET /api/ledger/keys` | 200 `{"keys"}`: every key that signed a ledger (public) |
//!
//! Every route but the keys needs a Clerk bearer token; another user's result is a 404, as a
//! random id. A bad query parameter is a 422 naming it.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
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
        .routes(routes!(ledger))
        .routes(routes!(ledger_keys))
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
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    /// `backtest` or `forward`.
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = "^(backtest|forward)$")]
    pub kind: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub agent_id: Option<String>,
    /// `BTCUSDT` or `ETHUSDT`.
    #[param(pattern = "^(BTCUSDT|ETHUSDT)$")]
    pub asset: Option<String>,
    /// `true` (`total_return_pct >= 0`) or `false`.
    #[param(value_type = Option<bool>)]
    pub profitable: Option<String>,
    /// `completed` or `stopped`.
    #[param(pattern = "^(completed|stopped)$")]
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
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `created_at` (default) or `total_return_pct`; ties broken by id in the same direction.
    #[param(pattern = "^(created_at|total_return_pct)$")]
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(pattern = "^(desc|asc)$")]
    pub order: Option<String>,
    /// Page size, 1..100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
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
#[into_params(parameter_in = Query)]
pub struct RowsParams {
    /// Page size, 1..1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
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
#[into_params(parameter_in = Query)]
pub struct ReasoningParams {
    /// Only decisions of this action: `long`, `short`, `close` or `hold`.
    #[param(pattern = "^(long|short|close|hold)$")]
    pub action: Option<String>,
    /// Page size, 1..1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
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

/// A page of a ledger's lines.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// Lines per page, 1..100,000 (default 50,000); a page also ends before 4 MiB.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100000)]
    pub limit: Option<String>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The largest ledger page (Lambda's 6 MB response, base64 included, fits it).
pub const LEDGER_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The result's signed ledger (JSON Lines, each line ending in `\n`): the header, one line per
/// candle the engine saw, the seal. Pages concatenated are the ledger; `X-Next-Cursor` names the
/// next page while lines remain.
#[utoipa::path(get, path = "/api/results/{id}/ledger", tag = "results",
    params(("id" = Uuid, Path), LedgerParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "a page of the ledger (`X-Next-Cursor` while lines remain)",
            content_type = "application/x-ndjson"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn ledger(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<LedgerParams>,
) -> ApiResult<Response> {
    let mut p = Params::new();
    let limit = p.number("limit", q.limit.as_deref(), 1..=100_000, 50_000);
    let tag = format!("ledger:{id}");
    let from = p
        .cursor(q.cursor.as_deref(), |c| {
            store::page::decode_key(&tag, c)?
                .parse::<i64>()
                .ok()
                .filter(|&n| n > 0)
        })
        .unwrap_or(0);
    p.finish()?;
    let page = store::ledger::page(&api.pool, user.id, id, from, limit, LEDGER_PAGE_BYTES)
        .await?
        .ok_or(ApiError::NotFound("ledger"))?;
    let mut body = String::with_capacity(page.lines.iter().map(|l| l.len() + 1).sum());
    for line in &page.lines {
        body.push_str(line);
        body.push('\n');
    }
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Some(value) = page
        .next
        .map(|n| store::page::encode_key(&tag, &n.to_string()))
        .and_then(|n| HeaderValue::from_str(&n).ok())
    {
        headers.insert("x-next-cursor", value);
    }
    Ok(response)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeysResponse {
    pub keys: Vec<store::ledger::Key>,
}

/// The public keys that signed ledgers, oldest first (a rotation keeps the old ones). No token.
#[utoipa::path(get, path = "/api/ledger/keys", tag = "results",
    responses((status = 200, body = KeysResponse)))]
#[tracing::instrument(skip_all)]
async fn ledger_keys(State(api): State<ApiState>) -> ApiResult<Json<KeysResponse>> {
    let keys = store::ledger::keys(&api.pool).await?;
    Ok(Json(KeysResponse { keys }))
}
