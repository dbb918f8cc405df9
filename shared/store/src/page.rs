//! Keyset pagination shared by every list: an opaque cursor naming the last row of a page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A page of a list: an opaque cursor to the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        B64.encode(format!(
            "{}_{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// `None` for anything we did not write.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(B64.decode(text).ok()?).ok()?;
        let (micros, id) = raw.split_once('_')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// An opaque cursor of a list ordered by something other than creation time: `tag` names the
/// list and its order (a cursor of another list or order does not decode), `key` the last row.
pub fn encode_key(tag: &str, key: &str) -> String {
    B64.encode(format!("{tag}|{key}"))
}

/// The key of a cursor [`encode_key`] made with `tag`; `None` for anything else.
pub fn decode_key(tag: &str, text: &str) -> Option<String> {
    let raw = String::from_utf8(B64.decode(text).ok()?).ok()?;
    raw.strip_prefix(tag)?.strip_prefix('|').map(str::to_owned)
}

/// Cuts `rows` (fetched with `LIMIT limit + 1`, in the list's order) to `limit`: the key of the
/// next page's cursor when there is one, made from the page's last row by `key`.
pub fn cut<T, K>(rows: &mut Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> Option<K> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(key)
    } else {
        None
    }
}

/// The largest page a list serves, and the default.
pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_764_590_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&B64.encode("12_nope")), None);
        let keyed = encode_key("trades", "41");
        assert_eq!(decode_key("trades", &keyed).as_deref(), Some("41"));
        assert_eq!(decode_key("reasoning", &keyed), None);
    }

    #[test]
    fn a_page_is_cut_to_its_limit_with_the_last_rows_cursor_only_when_more_follow() {
        let at = DateTime::from_timestamp_micros(1_764_590_000_000_000).unwrap();
        let rows: Vec<Cursor> = (0..3)
            .map(|_| Cursor {
                created_at: at,
                id: Uuid::new_v4(),
            })
            .collect();
        let mut page = rows.clone();
        assert_eq!(cut(&mut page, 2, Cursor::clone), Some(rows[1].clone()));
        assert_eq!(page, rows[..2]);
        let mut last = rows.clone();
        assert_eq!(cut(&mut last, 3, Cursor::clone), None);
        assert_eq!(last, rows);
    }
}
