//! The certificates endpoint group (issue 23): a profitable, completed result turned into a
//! certificate anyone can check.
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/certificates` `{"result_id"}` | 201 `{"certificate"}`; 200 with the same one if the result has one |
//! | `GET /api/certificates` | 200 `{"certificates", "next_cursor"}`, newest first |
//! | `GET /api/certificates/{id}` | 200 `{"certificate"}` |
//! | `GET /api/certificates/{id}/pdf` | 200 `application/pdf`, one A4 page |
//! | `GET /api/certificates/verify/{code}` | public: 200 `{"verification"}`, 404, or 429 per address |
//!
//! A certificate's `snapshot` holds the result's headline figures and `trades_sha256`, the
//! SHA-256 of the RFC 8785 form of its trades; `digest` is the SHA-256 of the RFC 8785 form of
//! the snapshot. Version 2 (a result with evidence) adds `ledger_head` (the signed ledger's seal
//! `head`), `evidence` and `methodology`; a certificate of a result written before evidence
//! existed, or issued before, is version 1. Verify recomputes the digest, in the certificate's
//! version, from the rows as stored now: an edit of the result or of one trade after issuance
//! shows as `matches: false`.

pub use evidence::canonical;
pub mod code;
pub mod pdf;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State as AxumState};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{ClientAddress, Json, Path, Query};
use platform::query::Params;
use platform::{ApiConfig, ApiError, ApiResult, ApiState, ConfigError, Env, FieldError, FromEnv};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use store::certificates::{self, Certificate, Issued, NewCertificate};
use store::results::{self, ResultDetail};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The variables this function reads: the authenticated functions' ones, `PUBLIC_APP_URL`
/// (where share links point; default `http://localhost:3000`, no trailing slash) and
/// `VERIFY_RATE_LIMIT_PER_MINUTE` (verify answers per client address per minute, default 30; 0
/// turns it off).
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub public_app_url: String,
    pub verify_per_minute: u64,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = env
            .get("PUBLIC_APP_URL")
            .unwrap_or_else(|| "http://localhost:3000".into());
        let url = url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::invalid(
                "PUBLIC_APP_URL",
                "expected the app's origin (https://app.example.com)",
            ));
        }
        Ok(Self {
            api: ApiConfig::from_env(env)?,
            public_app_url: url,
            verify_per_minute: env.number("VERIFY_RATE_LIMIT_PER_MINUTE", 30, 0..=1_000_000)?,
        })
    }
}

/// What the handlers share.
#[derive(Clone, FromRef)]
pub struct State {
    pub api: ApiState,
    pub public_app_url: Arc<str>,
    pub verify_per_minute: u64,
}

impl State {
    pub async fn new(config: &Config) -> Result<Self, sqlx::Error> {
        Ok(Self::with(ApiState::new(&config.api).await?, config))
    }

    /// The state over an existing [`ApiState`] (the local tool shares one).
    pub fn with(api: ApiState, config: &Config) -> Self {
        Self {
            api,
            public_app_url: config.public_app_url.as_str().into(),
            verify_per_minute: config.verify_per_minute,
        }
    }
}

/// The routes with their OpenAPI operations (one registration for both).
pub fn api() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(issue, list))
        .routes(routes!(verify))
        .routes(routes!(get))
        .routes(routes!(pdf_file))
}

/// The routes with their state, unfinished: the local tool merges them with other functions'.
pub fn routes(state: State) -> Router {
    api().split_for_parts().0.with_state(state)
}

/// The service Lambda serves.
pub fn router(state: State) -> Router {
    platform::http::service(routes(state), ())
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> OpenApi {
    api().split_for_parts().1
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificateResponse {
    pub certificate: Certificate,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificatesResponse {
    pub certificates: Vec<Certificate>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A certificate as anyone with its code sees it: nothing private (no user, email, agent id,
/// strategy prompt or key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub verification_code: String,
    pub share_url: String,
    pub issued_at: DateTime<Utc>,
    /// What was certified.
    #[schema(value_type = Object)]
    pub snapshot: Value,
    /// SHA-256 of the RFC 8785 form of `snapshot`, as certified.
    pub digest: String,
    /// The same digest recomputed at this request from the result and trades as stored now.
    pub current_digest: String,
    /// `current_digest == digest`: nothing was edited since.
    pub matches: bool,
    /// Verify answers given, this one included.
    pub view_count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationResponse {
    pub verification: Verification,
}

/// The body of an issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The result to certify: the caller's, completed, profitable, with a closed trade.
    #[schema(value_type = Uuid)]
    pub result_id: Option<Value>,
}

/// The snapshot's keys besides `version`, `verification_code`, `issued_at` and
/// `trades_sha256`, taken from the result as `GET /api/results/{id}` shows it (summary, then
/// `metrics`, then `config`).
const SNAPSHOT_FROM_RESULT: &[&str] = &[
    "agent_name",
    "model",
    "mode",
    "type",
    "asset",
    "timeframe",
    "start_date",
    "end_date",
    "candles",
    "initial_capital",
    "final_equity",
    "total_return_pct",
    "buy_hold_return_pct",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "sharpe_ratio",
    "total_trades",
    "fee_bps",
    "slippage_bps",
];

/// `issued_at` as written in a snapshot (whole seconds, as stored).
fn issued_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The snapshot version a result's certificate gets: 2 with evidence and a ledger, else 1.
fn version_for(result: &ResultDetail) -> u64 {
    match (&result.ledger_head, &result.evidence) {
        (Some(_), Some(_)) => 2,
        _ => 1,
    }
}

/// The snapshot (in `version`) of `result` and its `trades` under `code` and `issued_at`.
fn snapshot(
    result: &ResultDetail,
    trades: &[results::TradeRow],
    code: &str,
    issued_at: &DateTime<Utc>,
    version: u64,
) -> ApiResult<Value> {
    let shown = serde_json::to_value(result).map_err(ApiError::internal)?;
    let trades = serde_json::to_value(trades).map_err(ApiError::internal)?;
    let mut s = Map::new();
    s.insert("version".into(), version.into());
    if version >= 2 {
        for key in ["ledger_head", "evidence", "methodology"] {
            s.insert(key.into(), shown.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    s.insert("verification_code".into(), code.into());
    s.insert("issued_at".into(), issued_text(issued_at).into());
    s.insert("result_id".into(), result.summary.id.to_string().into());
    for key in SNAPSHOT_FROM_RESULT {
        let value = [&shown, &shown["metrics"], &shown["config"]]
            .iter()
            .find_map(|v| v.get(*key))
            .cloned()
            .unwrap_or(Value::Null);
        s.insert((*key).into(), value);
    }
    s.insert(
        "trades_sha256".into(),
        canonical::sha256_hex(&canonical::canonical(&trades)).into(),
    );
    Ok(Value::Object(s))
}

/// Every trade of a session, in trade order.
async fn all_trades(
    api: &ApiState,
    user_id: Uuid,
    session_id: Uuid,
) -> ApiResult<Vec<results::TradeRow>> {
    Ok(results::trades(&api.pool, user_id, session_id, None, i64::MAX).await?)
}

fn refuse(message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new("result_id", message)])
}

/// Issues the certificate of a result (or answers the one it has).
#[utoipa::path(post, path = "/api/certificates", tag = "certificates", request_body = IssueRequest,
    security(("bearer" = [])),
    responses((status = 201, body = CertificateResponse),
        (status = 200, description = "the result's certificate, issued before", body = CertificateResponse),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn issue(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Json(body): Json<IssueRequest>,
) -> ApiResult<Response> {
    let api = &state.api;
    let id: Uuid = match &body.result_id {
        None | Some(Value::Null) => return Err(refuse("required: the id of a result of yours")),
        Some(Value::String(text)) => text.parse().map_err(|_| refuse("must be a UUID"))?,
        Some(_) => return Err(refuse("must be a UUID")),
    };
    let Some(result) = results::get(&api.pool, user.id, id).await? else {
        return Err(refuse("no result of yours has this id"));
    };
    if let Some(existing) = certificates::for_result(&api.pool, user.id, id).await? {
        return Ok(Json(CertificateResponse {
            certificate: existing,
        })
        .into_response());
    }
    let s = &result.summary;
    if s.status != "completed" {
        return Err(refuse(
            "the test did not complete (it was stopped before the end of its range): only a \
             completed test can be certified",
        ));
    }
    if !s.is_profitable {
        return Err(refuse(format!(
            "the result is not profitable (total return {:.2} %): only a result with a total \
             return of 0 % or more can be certified",
            s.total_return_pct
        )));
    }
    if s.total_trades < 1 {
        return Err(refuse(
            "the result closed no trade: there is nothing to certify",
        ));
    }
    let trades = all_trades(api, user.id, s.session_id).await?;
    // whole seconds: the snapshot's `issued_at` is the stored one, written the same way
    let issued_at = Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now);
    for _ in 0..5 {
        let code = code::generate().ok_or_else(|| ApiError::internal("no randomness"))?;
        let snapshot = snapshot(&result, &trades, &code, &issued_at, version_for(&result))?;
        let digest = canonical::sha256_hex(&canonical::canonical(&snapshot));
        let share_url = format!("{}/verify/{code}", state.public_app_url);
        let new = NewCertificate {
            result_id: id,
            verification_code: &code,
            share_url: &share_url,
            snapshot: &snapshot,
            digest: &digest,
            issued_at,
        };
        match certificates::issue(&api.pool, user.id, &new).await? {
            Issued::Created(certificate) => {
                return Ok(platform::http::created(
                    format!("/api/certificates/{}", certificate.id),
                    Json(CertificateResponse { certificate }),
                )
                .into_response());
            }
            Issued::Existing(certificate) => {
                return Ok(Json(CertificateResponse { certificate }).into_response());
            }
            // 80 random bits collided: draw again
            Issued::CodeTaken => continue,
        }
    }
    Err(ApiError::internal(
        "five verification codes in a row were taken",
    ))
}

/// A page of the caller's certificates.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1..100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller's certificates, newest first.
#[utoipa::path(get, path = "/api/certificates", tag = "certificates", params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, body = CertificatesResponse), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn list(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<CertificatesResponse>> {
    let mut p = Params::new();
    let limit = p.number("limit", q.limit.as_deref(), 1..=100, 20);
    let cursor = p.cursor(q.cursor.as_deref(), store::Cursor::decode);
    p.finish()?;
    let (certificates, next) =
        certificates::list(&api.pool, user.id, cursor.as_ref(), limit).await?;
    Ok(Json(CertificatesResponse {
        certificates,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// One of the caller's certificates.
#[utoipa::path(get, path = "/api/certificates/{id}", tag = "certificates",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = CertificateResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn get(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<CertificateResponse>> {
    let certificate = certificates::get(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("certificate"))?;
    Ok(Json(CertificateResponse { certificate }))
}

/// The certificate as a one-page PDF.
#[utoipa::path(get, path = "/api/certificates/{id}/pdf", tag = "certificates",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "one A4 page", content_type = "application/pdf"),
        (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn pdf_file(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let certificate = certificates::get(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("certificate"))?;
    let content = pdf::Content::from_snapshot(&certificate.snapshot, &certificate.share_url);
    let bytes = pdf::render(&content).map_err(ApiError::internal)?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    let name = format!(
        "attachment; filename=\"alphalab-certificate-{}.pdf\"",
        certificate.verification_code
    );
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Public: a certificate by its code, with its digest recomputed from the rows as stored now.
/// No token needed (an `Authorization` header is ignored); limited per client address.
#[utoipa::path(get, path = "/api/certificates/verify/{code}", tag = "certificates",
    params(("code" = String, Path, description = "any case, with or without hyphens")),
    responses((status = 200, body = VerificationResponse), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn verify(
    AxumState(state): AxumState<State>,
    ClientAddress(address): ClientAddress,
    Path(typed): Path<String>,
) -> ApiResult<Json<VerificationResponse>> {
    let api = &state.api;
    // every request counts, found or not: codes cannot be enumerated
    api.limiter
        .check_address(&address, state.verify_per_minute)
        .await?;
    let code = code::normalize(&typed).ok_or(ApiError::NotFound("certificate"))?;
    let (certificate, owner) = certificates::view(&api.pool, &code)
        .await?
        .ok_or(ApiError::NotFound("certificate"))?;
    let current_digest = match results::get(&api.pool, owner, certificate.result_id).await? {
        Some(result) => {
            let trades = all_trades(api, owner, result.summary.session_id).await?;
            // in the certificate's own version: one issued as version 1 still verifies
            let version = certificate.snapshot["version"].as_u64().unwrap_or(1);
            let now = snapshot(
                &result,
                &trades,
                &certificate.verification_code,
                &certificate.issued_at,
                version,
            )?;
            canonical::sha256_hex(&canonical::canonical(&now))
        }
        None => String::new(),
    };
    Ok(Json(VerificationResponse {
        verification: Verification {
            matches: current_digest == certificate.digest,
            verification_code: certificate.verification_code,
            share_url: certificate.share_url,
            issued_at: certificate.issued_at,
            snapshot: certificate.snapshot,
            digest: certificate.digest,
            current_digest,
            view_count: certificate.view_count,
        },
    }))
}
