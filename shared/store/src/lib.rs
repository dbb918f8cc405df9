//! AlphaLab's Postgres repositories: one module per aggregate. Every query that reads or writes a
//! user's rows takes the caller's user id and scopes the SQL with it; the schema backs that up
//! with composite foreign keys (a row can only point at rows of its own user).
//!
//! Repositories return `sqlx::Error`; the HTTP layer maps it once (constraint names to 409/422,
//! transient failures to 503). The request and response types live beside the queries that read
//! and write them, with their validation, so each field is defined once.

/// A session's speculative calls wasted, as SQL over `test_sessions s`: the calls it made minus
/// the decisions it paid for itself (its decisions, counted as they are stored, less those that
/// came from the cache). One definition for the session, its result and the live view.
macro_rules! wasted_calls {
    () => {
        "(s.model_calls - (s.decisions - s.cached_decisions))"
    };
}

/// The length of a candle of `timeframe` (a column of `test_sessions` or the cache), as SQL.
macro_rules! candle_length {
    ($timeframe:literal) => {
        concat!(
            "(CASE ",
            $timeframe,
            " WHEN '1m' THEN interval '1 minute'
                 WHEN '5m' THEN interval '5 minutes' WHEN '15m' THEN interval '15 minutes'
                 WHEN '1h' THEN interval '1 hour' WHEN '4h' THEN interval '4 hours'
                 ELSE interval '1 day' END)"
        )
    };
}

pub mod activity;
pub mod agents;

pub mod page;
pub use page::Cursor;
pub mod api_keys;
pub mod candle_time;
pub mod certificates;
pub mod dashboard;
pub mod decisions;
pub mod exchange;
pub mod forward;
pub mod ledger;
pub mod market_data;
pub mod notifications;
pub mod results;
pub mod sessions;
pub mod steps;
pub mod users;
pub mod webhooks;

/// One invalid field of a request: its name and what is wrong, in plain words.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An optional integer field that also takes a JSON number without a fraction (`2.0`): JSON
/// Schema counts it as an integer, and JavaScript clients may send one. For
/// `#[serde(default, deserialize_with = "store::whole")]`.
pub fn whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::Deserialize;
    use serde::de::{Error, Unexpected};
    use serde_json::Value;
    let Some(value) = Option::<Value>::deserialize(d)? else {
        return Ok(None);
    };
    let n = match &value {
        Value::Number(n) => n,
        Value::Null => return Ok(None),
        Value::Bool(b) => return Err(D::Error::invalid_type(Unexpected::Bool(*b), &"an integer")),
        Value::String(s) => return Err(D::Error::invalid_type(Unexpected::Str(s), &"an integer")),
        Value::Array(_) => return Err(D::Error::invalid_type(Unexpected::Seq, &"an integer")),
        Value::Object(_) => return Err(D::Error::invalid_type(Unexpected::Map, &"an integer")),
    };
    let whole = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= 9.0e15)
            .map(|f| f as i64)
    });
    match whole {
        Some(i) => T::try_from(i).map(Some).map_err(|_| {
            D::Error::invalid_value(Unexpected::Signed(i), &"a whole number in range")
        }),
        None => Err(D::Error::invalid_value(
            Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
            &"an integer",
        )),
    }
}

/// A field a resource shows but a client cannot change (ids, timestamps, derived figures): an
/// update accepts it, whatever its value, and ignores it, so a client can send back what it read.
/// A field the resource does not have is still refused by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOnly;

impl<'de> serde::Deserialize<'de> for ReadOnly {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Self)
    }
}

impl utoipa::PartialSchema for ReadOnly {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some("read-only: accepted and ignored"))
            .read_only(Some(true))
            .into()
    }
}

impl utoipa::ToSchema for ReadOnly {}

/// Assets the product supports (the bundled market data).
pub const SUPPORTED_ASSETS: &[&str] = &["BTCUSDT", "ETHUSDT"];
/// Candle timeframes the product supports (the schema's CHECK constraints say the same).
pub const SUPPORTED_TIMEFRAMES: &[&str] = &["1m", "5m", "15m", "1h", "4h", "1d"];
