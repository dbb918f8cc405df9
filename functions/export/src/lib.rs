//! The export endpoint group (issue 23): a result's ground truth as files.
//!
//! `GET /api/export/results/{id}?format=csv|json&part=trades|equity|reasoning[&limit][&cursor]`
//!
//! - `trades`: the 14 trade fields; `equity`: `time,equity` for every candle of the run (the
//!   per-candle equity the step worker stored, not the chart's curve); `reasoning`: the 13
//!   thought fields (`order` as JSON text in CSV).
//! - CSV: RFC 4180, a header row on every page, numbers as Rust's `{}` writes an f64 (the
//!   shortest text that reads back to the same value), null as an empty cell. JSON:
//!   `{"<part>": [...], "next_cursor"}` with the values the results routes return.
//! - Pages: at most `limit` rows (1..100,000, default 50,000), and a page ends before its body
//!   would pass [`PAGE_BYTES`] (so even base64-encoded it fits Lambda's 6 MB response). While
//!   rows remain, `X-Next-Cursor` (and JSON's `next_cursor`) continues; the n-th page's file is
//!   named `alphalab-<id>-<part>-page<n>.<ext>`.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Path, Query};
use platform::query::Params;
use platform::{ApiError, ApiResult, ApiState};
use serde::Deserialize;
use store::results::{self, Located, THOUGHT_FIELDS, TRADE_FIELDS, ThoughtRow, TradeRow};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The variables this function reads: database, Clerk, rate limit, log format.
pub type Config = platform::ApiConfig;

/// The largest body of a page: 4 MiB.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The routes with their OpenAPI operations (one registration for both).
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(export))
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

/// The export's parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` or `json`.
    #[param(pattern = "^(csv|json)$")]
    pub format: Option<String>,
    /// `trades`, `equity` or `reasoning`.
    #[param(pattern = "^(trades|equity|reasoning)$")]
    pub part: Option<String>,
    /// Rows per page, 1..100000 (default 50000); a page also ends before 4 MiB.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100000)]
    pub limit: Option<String>,
    /// `X-Next-Cursor` of the previous page (of the same result and part).
    pub cursor: Option<String>,
}

/// One exported row.
trait Row {
    /// Its key in the part's order (`trade_no`, candle index).
    fn key(&self) -> i64;
    fn cells(&self) -> Vec<String>;
    fn json(&self) -> serde_json::Result<String>;
}

impl Row for TradeRow {
    fn key(&self) -> i64 {
        i64::from(self.trade_no)
    }
    fn cells(&self) -> Vec<String> {
        TradeRow::cells(self)
    }
    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

impl Row for ThoughtRow {
    fn key(&self) -> i64 {
        self.candle_index
    }
    fn cells(&self) -> Vec<String> {
        ThoughtRow::cells(self)
    }
    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

/// One candle's equity.
struct EquityRow {
    index: i64,
    time: String,
    equity: f64,
}

impl Row for EquityRow {
    fn key(&self) -> i64 {
        self.index
    }
    fn cells(&self) -> Vec<String> {
        vec![self.time.clone(), self.equity.to_string()]
    }
    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string(&serde_json::json!({ "time": self.time, "equity": self.equity }))
    }
}

/// Where a page starts: after the row with key `after`, as page `page` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    after: Option<i64>,
    page: u32,
}

fn cursor_tag(id: Uuid, part: &str) -> String {
    format!("export:{id}:{part}")
}

/// A page of one part of a result, CSV or JSON.
#[utoipa::path(get, path = "/api/export/results/{id}", tag = "export",
    params(("id" = Uuid, Path), ExportParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "a page of the export (`X-Next-Cursor` while rows remain)",
            content(("text/csv"), ("application/json"))),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn export(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<ExportParams>,
) -> ApiResult<Response> {
    // an id that is not the caller's is a 404 whatever the parameters
    let at = results::locate(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("result"))?;
    let mut p = Params::new();
    let format = p.required("format", q.format.as_deref(), &["csv", "json"]);
    let part = p.required(
        "part",
        q.part.as_deref(),
        &["trades", "equity", "reasoning"],
    );
    let limit = p.number("limit", q.limit.as_deref(), 1..=100_000, 50_000);
    let tag = cursor_tag(id, part.unwrap_or(""));
    let position = p
        .cursor(q.cursor.as_deref(), |c| {
            let key = store::page::decode_key(&tag, c)?;
            let (after, page) = key.split_once('_')?;
            Some(Position {
                after: Some(after.parse().ok()?),
                page: page.parse().ok().filter(|&n| n >= 2)?,
            })
        })
        .unwrap_or(Position {
            after: None,
            page: 1,
        });
    p.finish()?;
    let (Some(format), Some(part)) = (format, part) else {
        return Err(ApiError::BadRequest("incomplete query".into()));
    };
    let page = Page {
        format,
        part,
        limit,
        position,
        tag: &tag,
    };
    let (body, next) = match part {
        "trades" => {
            let rows =
                results::trades(&api.pool, user.id, at.session_id, position.after, limit + 1)
                    .await?;
            page.render(&TRADE_FIELDS, &rows)?
        }
        "reasoning" => {
            let rows = results::reasoning(&api.pool, user.id, &at, None, position.after, limit + 1)
                .await?;
            page.render(&THOUGHT_FIELDS, &rows)?
        }
        _ => {
            let rows = equity_rows(&api, user.id, &at, position.after, limit + 1).await?;
            page.render(&["time", "equity"], &rows)?
        }
    };
    Ok(page.response(id, body, next))
}

async fn equity_rows(
    api: &ApiState,
    user_id: Uuid,
    at: &Located,
    after: Option<i64>,
    limit: i64,
) -> ApiResult<Vec<EquityRow>> {
    let from = after.map_or(0, |a| a.saturating_add(1));
    let rows = results::equity_rows(&api.pool, user_id, at.session_id, from, limit).await?;
    Ok(rows
        .into_iter()
        .map(|(index, time, equity)| EquityRow {
            index,
            time: store::candle_time::format_ms(time).unwrap_or_default(),
            equity,
        })
        .collect())
}

/// One page being written.
struct Page<'a> {
    format: &'static str,
    part: &'static str,
    limit: i64,
    position: Position,
    tag: &'a str,
}

/// Room kept at the end of a JSON page for `],"next_cursor":"..."}`.
const JSON_TAIL: usize = 512;

impl Page<'_> {
    /// The body of at most `limit` of `rows` (fetched with one more) and under [`PAGE_BYTES`],
    /// and the cursor of the next page when rows remain.
    fn render<R: Row>(&self, header: &[&str], rows: &[R]) -> ApiResult<(Vec<u8>, Option<String>)> {
        let limit = usize::try_from(self.limit).unwrap_or(0);
        let mut body = Vec::new();
        let mut taken = 0;
        if self.format == "csv" {
            body.extend(csv_line(header.iter().copied())?);
            for row in rows.iter().take(limit) {
                let line = csv_line(row.cells().iter().map(String::as_str))?;
                if body.len() + line.len() > PAGE_BYTES {
                    break;
                }
                body.extend(line);
                taken += 1;
            }
        } else {
            body.extend(format!("{{\"{}\":[", self.part).into_bytes());
            for row in rows.iter().take(limit) {
                let text = row.json().map_err(ApiError::internal)?;
                let comma = usize::from(taken > 0);
                if body.len() + comma + text.len() + JSON_TAIL > PAGE_BYTES {
                    break;
                }
                if comma == 1 {
                    body.push(b',');
                }
                body.extend(text.into_bytes());
                taken += 1;
            }
        }
        let next = (taken < rows.len()).then(|| {
            let last = if taken == 0 {
                self.position.after.unwrap_or(-1)
            } else {
                rows[taken - 1].key()
            };
            store::page::encode_key(self.tag, &format!("{last}_{}", self.position.page + 1))
        });
        if self.format == "json" {
            let cursor = serde_json::to_string(&next).map_err(ApiError::internal)?;
            body.extend(format!("],\"next_cursor\":{cursor}}}").into_bytes());
        }
        Ok((body, next))
    }

    fn response(&self, id: Uuid, body: Vec<u8>, next: Option<String>) -> Response {
        let (content_type, ext) = if self.format == "csv" {
            ("text/csv; charset=utf-8", "csv")
        } else {
            ("application/json", "json")
        };
        let page = match self.position.page {
            1 => String::new(),
            n => format!("-page{n}"),
        };
        let disposition = format!(
            "attachment; filename=\"alphalab-{id}-{}{page}.{ext}\"",
            self.part
        );
        let mut response = Body::from(body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        if let Some(value) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert("x-next-cursor", value);
        }
        response
    }
}

/// One RFC 4180 record (quoted where needed), CRLF-terminated.
fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> ApiResult<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let written = writer
        .write_record(cells)
        .and_then(|_| writer.flush().map_err(Into::into));
    written.map_err(ApiError::internal)?;
    writer.into_inner().map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of about 1 KB.
    struct Wide(i64);

    impl Row for Wide {
        fn key(&self) -> i64 {
            self.0
        }
        fn cells(&self) -> Vec<String> {
            vec![self.0.to_string(), "x".repeat(1000)]
        }
        fn json(&self) -> serde_json::Result<String> {
            serde_json::to_string(&serde_json::json!({"n": self.0, "text": "x".repeat(1000)}))
        }
    }

    fn page(format: &'static str, position: Position) -> Page<'static> {
        Page {
            format,
            part: "trades",
            limit: 100_000,
            position,
            tag: "export:test:trades",
        }
    }

    #[test]
    fn a_page_ends_before_4_mib_and_its_cursor_names_the_first_row_left_out() {
        let rows: Vec<Wide> = (1..=6000).map(Wide).collect();
        for format in ["csv", "json"] {
            let first = Position {
                after: None,
                page: 1,
            };
            let (body, next) = page(format, first).render(&["n", "text"], &rows).unwrap();
            assert!(body.len() <= PAGE_BYTES, "{format}: {}", body.len());
            assert!(
                body.len() > PAGE_BYTES - 2_000,
                "{format}: the page is full"
            );
            let key = store::page::decode_key("export:test:trades", &next.unwrap()).unwrap();
            let (last, page_no) = key.split_once('_').unwrap();
            let last: usize = last.parse().unwrap();
            assert_eq!(page_no, "2");
            let taken = if format == "csv" {
                body.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
                    - 1
            } else {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert!(value["next_cursor"].as_str().is_some());
                value["trades"].as_array().unwrap().len()
            };
            assert_eq!(taken, last, "{format}: rows 1..={last} on the page");
            // the rest fits on the next page, which is the last
            let second = Position {
                after: Some(last as i64),
                page: 2,
            };
            let (_, next) = page(format, second)
                .render(&["n", "text"], &rows[last..])
                .unwrap();
            assert_eq!(next, None);
        }
    }
}
