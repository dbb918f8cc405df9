//! Candle times as the API writes them: the candle's open time, `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339
//! UTC, whole seconds). For `#[serde(with = "candle_time")]` (and `candle_time::option`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// `2024-01-01T04:00:00Z`.
pub fn format(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// [`format`] of epoch milliseconds (`None` out of chrono's range).
pub fn format_ms(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| format(&t))
}

pub fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(time))
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(time: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_seconds_with_a_z() {
        assert_eq!(
            super::format_ms(1_704_081_600_000).as_deref(),
            Some("2024-01-01T04:00:00Z")
        );
    }
}
