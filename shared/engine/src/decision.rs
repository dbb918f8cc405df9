//! Decisions: what an agent wants done on a candle, and the tolerant parser of model replies.
//!
//! The parser accepts code fences, prose around the JSON, any key or value case, confidence as
//! 0..100 or 0..1 (or "85%"), order fields nested under `order` or at the top level, and numbers
//! given as strings. Out-of-range order values are clamped to [`crate::rules`] bounds and each
//! clamp is recorded in `notes`. Anything unusable becomes HOLD with the parse error and the raw
//! text kept. It never panics (see the property test in `tests/engine/decision.rs`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Long,
    Short,
    Hold,
    Close,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
            Self::Hold => "hold",
            Self::Close => "close",
        }
    }

    /// The action a word names (case-insensitive; common synonyms accepted).
    pub fn parse(word: &str) -> Option<Self> {
        let w = word.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Some(match w.as_str() {
            "long" | "buy" | "go_long" | "open_long" | "enter_long" => Self::Long,
            "short" | "sell" | "go_short" | "open_short" | "enter_short" => Self::Short,
            "hold" | "wait" | "none" | "stay" | "no_action" | "do_nothing" => Self::Hold,
            "close" | "exit" | "flat" | "close_position" | "close_long" | "close_short" => {
                Self::Close
            }
            _ => return None,
        })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order details of a decision. `None` means "use the rules' default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// 1..=5
    pub leverage: Option<u8>,
    /// Stop-loss distance from the entry, in percent.
    pub stop_loss_pct: Option<f64>,
    /// Take-profit distance from the entry, in percent.
    pub take_profit_pct: Option<f64>,
    /// Fraction of equity to commit (0..1]; omni mode only.
    pub size: Option<f64>,
}

/// Why a decision says what it says: free text from a model, or the values a baseline read
/// (rendered to text only when someone reads it, so the engine's hot loop formats nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum Reasoning {
    Text(String),
    /// A baseline's template and the values it fills in.
    Baseline {
        template: &'static str,
        values: [f64; 3],
    },
}

impl Reasoning {
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Text(t) => Cow::Borrowed(t),
            Self::Baseline { template, values } => {
                let mut out = String::with_capacity(template.len() + 24);
                let mut values = values.iter();
                let mut parts = template.split("{}");
                if let Some(first) = parts.next() {
                    out.push_str(first);
                }
                for part in parts {
                    if let Some(v) = values.next() {
                        out.push_str(&format!("{v:.2}"));
                    }
                    out.push_str(part);
                }
                Cow::Owned(out)
            }
        }
    }
}

impl Serialize for Reasoning {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for Reasoning {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::Text)
    }
}

/// A decision for one candle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    pub reasoning: Reasoning,
    /// 0..=100
    pub confidence: u8,
    pub order: Order,
    /// Clamps and corrections applied while reading the reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why the reply could not be used (the decision is then HOLD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The model's reply as received, kept when it could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Decision {
    pub fn new(action: Action, reasoning: Reasoning, confidence: u8, order: Order) -> Self {
        Self {
            action,
            reasoning,
            confidence,
            order,
            notes: Vec::new(),
            error: None,
            raw: None,
        }
    }

    pub fn hold(reasoning: impl Into<String>) -> Self {
        Self::new(
            Action::Hold,
            Reasoning::Text(reasoning.into()),
            0,
            Order::default(),
        )
    }

    fn unusable(raw: &str, error: String) -> Self {
        let mut d = Self::hold("the reply could not be used; holding");
        d.error = Some(error);
        d.raw = Some(raw.to_owned());
        d
    }
}

/// Reads a model's reply. Never fails and never panics: unusable replies become HOLD.
pub fn parse(raw: &str) -> Decision {
    let Some(object) = find_json_object(raw) else {
        return Decision::unusable(raw, "no JSON object found in the reply".into());
    };
    let fields: Map<String, Value> = object
        .into_iter()
        .map(|(k, v)| (normalize_key(&k), v))
        .collect();
    let Some(action_value) = fields.get("action").or_else(|| fields.get("decision")) else {
        return Decision::unusable(raw, "the reply has no `action`".into());
    };
    let Some(action) = action_value.as_str().and_then(Action::parse) else {
        return Decision::unusable(
            raw,
            format!("unknown action {action_value}; expected long, short, hold or close"),
        );
    };
    let mut notes = Vec::new();
    let reasoning = fields
        .get("reasoning")
        .or_else(|| fields.get("reason"))
        .or_else(|| fields.get("rationale"))
        .map(|v| match v {
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        })
        .unwrap_or_default();

    let confidence = match fields.get("confidence").and_then(number) {
        None => {
            notes.push("confidence missing or unreadable; 0 used".into());
            0
        }
        Some(c) => {
            // 0..1 with a fraction means a probability
            let c = if c > 0.0 && c < 1.0 || c == 1.0 && is_fractional_text(&fields["confidence"]) {
                c * 100.0
            } else {
                c
            };
            if !(0.0..=100.0).contains(&c) {
                notes.push(format!("confidence {c} clamped to 0..100"));
            }
            c.clamp(0.0, 100.0).round() as u8
        }
    };

    let order_fields = fields.get("order").and_then(Value::as_object).map(|o| {
        o.iter()
            .map(|(k, v)| (normalize_key(k), v.clone()))
            .collect::<Map<String, Value>>()
    });
    // (the key found, its value)
    let keyed = |names: &[&'static str]| {
        names.iter().find_map(|n| {
            order_fields
                .as_ref()
                .and_then(|o| o.get(*n))
                .or_else(|| fields.get(*n))
                .filter(|v| !v.is_null())
                .map(|v| (*n, v))
        })
    };
    let field = |names: &[&'static str]| keyed(names).map(|(_, v)| v);
    let mut order = Order::default();
    let mut clamp = |name: &str, v: Option<&Value>, lo: f64, hi: f64| -> Option<f64> {
        let v = v?;
        let Some(x) = number(v) else {
            notes.push(format!("{name} {v} unreadable; ignored"));
            return None;
        };
        if x < lo || x > hi {
            let c = x.clamp(lo, hi);
            notes.push(format!("{name} {x} clamped to {c}"));
            return Some(c);
        }
        Some(x)
    };
    order.leverage = clamp(
        "leverage",
        field(&["leverage"]),
        1.0,
        f64::from(rules::MAX_LEVERAGE),
    )
    .map(|l| l.round() as u8);
    order.stop_loss_pct = clamp(
        "stop_loss_pct",
        field(&["stop_loss_pct", "stop_loss", "stoploss", "sl"]),
        rules::MIN_STOP_PCT,
        rules::MAX_STOP_PCT,
    );
    order.take_profit_pct = clamp(
        "take_profit_pct",
        field(&["take_profit_pct", "take_profit", "takeprofit", "tp"]),
        rules::MIN_TAKE_PROFIT_PCT,
        rules::MAX_TAKE_PROFIT_PCT,
    );
    // A fraction of equity. Percent when written so ("1%", "0.5%"), when the key says so
    // (`size_pct`), or when above 1 (a fraction cannot be).
    order.size = keyed(&["size", "position_size", "size_pct"]).and_then(|(key, v)| {
        let x = number(v);
        if x.is_none() {
            notes.push(format!("size {v} unreadable; ignored"));
        }
        let x = x?;
        let percent =
            key == "size_pct" || x > 1.0 || matches!(v, Value::String(s) if s.contains('%'));
        let fraction = if percent { x / 100.0 } else { x };
        if !(rules::MIN_SIZE..=1.0).contains(&fraction) {
            let c = fraction.clamp(rules::MIN_SIZE, 1.0);
            notes.push(format!("size {v} clamped to {c}"));
            return Some(c);
        }
        Some(fraction)
    });

    let mut decision = Decision::new(action, Reasoning::Text(reasoning), confidence, order);
    decision.notes = notes;
    decision
}

fn normalize_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace(['-', ' '], "_")
}

fn is_fractional_text(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('.')) || matches!(v, Value::Number(n) if n.is_f64())
}

/// A number from a JSON number or a string such as "2", "2.5%", " 3x ".
fn number(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s
            .trim()
            .trim_end_matches(['%', 'x', 'X'])
            .trim()
            .parse::<f64>()
            .ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// The decision object of a reply, looking inside code fences and prose: of the top-level JSON
/// objects that parse, the last one that carries an action (a reply may echo an example before
/// its answer), else the first one (so its missing action is reported).
fn find_json_object(text: &str) -> Option<Map<String, Value>> {
    let has_action = |map: &Map<String, Value>| {
        map.keys()
            .any(|k| matches!(normalize_key(k).as_str(), "action" | "decision"))
    };
    let bytes = text.as_bytes();
    let (mut first, mut with_action) = (None, None);
    let mut start = 0;
    // bounded: at most this many candidate objects are tried
    for _ in 0..64 {
        let Some(open) = text.get(start..).and_then(|t| t.find('{')) else {
            break;
        };
        let open = start + open;
        start = open + 1;
        if let Some(end) = matching_brace(bytes, open)
            && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text[open..=end])
        {
            // the next candidate starts after this object, not inside it
            start = end + 1;
            if has_action(&map) {
                with_action = Some(map);
            } else if first.is_none() {
                first = Some(map);
            }
        }
    }
    with_action.or(first)
}

/// Index of the `}` closing the `{` at `open`, skipping strings.
fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_reply_parses() {
        let d = parse(
            r#"{"action":"LONG","reasoning":"breakout","confidence":72,
                "order":{"leverage":2,"stop_loss_pct":1.5,"take_profit_pct":4,"size":0.5}}"#,
        );
        assert_eq!(d.action, Action::Long);
        assert_eq!(d.confidence, 72);
        assert_eq!(d.reasoning.text(), "breakout");
        assert_eq!(
            d.order,
            Order {
                leverage: Some(2),
                stop_loss_pct: Some(1.5),
                take_profit_pct: Some(4.0),
                size: Some(0.5)
            }
        );
        assert!(d.notes.is_empty() && d.error.is_none());
    }

    #[test]
    fn fences_prose_case_and_fractional_confidence_are_tolerated() {
        let d = parse(
            "Sure! Here is my decision:\n```json\n{\"Action\": \"Short\", \"Confidence\": 0.8, \
             \"Reasoning\": \"RSI {overbought}\", \"Stop_Loss\": \"2%\"}\n```\nGood luck.",
        );
        assert_eq!(d.action, Action::Short);
        assert_eq!(d.confidence, 80);
        assert_eq!(d.reasoning.text(), "RSI {overbought}");
        assert_eq!(d.order.stop_loss_pct, Some(2.0));
    }

    #[test]
    fn out_of_range_values_are_clamped_and_noted() {
        let d = parse(
            r#"{"action":"long","confidence":150,"leverage":20,"stop_loss_pct":0.01,"size":80}"#,
        );
        assert_eq!(d.confidence, 100);
        assert_eq!(d.order.leverage, Some(5));
        assert_eq!(d.order.stop_loss_pct, Some(rules::MIN_STOP_PCT));
        assert_eq!(d.order.size, Some(0.8));
        assert_eq!(d.notes.len(), 3, "{:?}", d.notes);
    }

    #[test]
    fn unusable_replies_hold_and_keep_the_raw_text() {
        for raw in [
            "",
            "I think we should buy",
            "{\"action\": \"moon\"}",
            "{\"confidence\": 3}",
            "{{{{",
        ] {
            let d = parse(raw);
            assert_eq!(d.action, Action::Hold, "{raw}");
            assert!(d.error.is_some(), "{raw}");
            assert_eq!(d.raw.as_deref(), Some(raw));
        }
    }

    #[test]
    fn a_size_written_in_percent_is_that_percent() {
        assert_eq!(
            parse(r#"{"action":"long","size":"1%"}"#).order.size,
            Some(0.01)
        );
        assert_eq!(
            parse(r#"{"action":"long","size":"25 %"}"#).order.size,
            Some(0.25)
        );
        let d = parse(r#"{"action":"long","size":"0.5%"}"#);
        assert_eq!(d.order.size, Some(rules::MIN_SIZE));
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes); // confidence missing, size clamped
        assert_eq!(
            parse(r#"{"action":"long","size_pct":1}"#).order.size,
            Some(0.01)
        );
        assert_eq!(
            parse(r#"{"action":"long","size":0.5}"#).order.size,
            Some(0.5)
        );
        assert_eq!(parse(r#"{"action":"long","size":1}"#).order.size, Some(1.0));
        assert_eq!(
            parse(r#"{"action":"long","size":40}"#).order.size,
            Some(0.4)
        );
    }

    #[test]
    fn the_decision_is_the_last_object_carrying_an_action() {
        let reply = "The format is {\"action\": \"long\", \"confidence\": 50}. \
                     Context: {\"rsi\": 71}. My answer:\n\
                     ```json\n{\"action\": \"short\", \"confidence\": 70, \
                     \"order\": {\"stop_loss_pct\": 2}}\n```";
        let d = parse(reply);
        assert_eq!(d.action, Action::Short);
        assert_eq!(d.confidence, 70);
        assert_eq!(d.order.stop_loss_pct, Some(2.0));
        // an object without an action is still reported as such
        let d = parse(r#"{"rsi": 71} and {"note": "x"}"#);
        assert_eq!(d.error.as_deref(), Some("the reply has no `action`"));
    }

    #[test]
    fn baseline_reasoning_renders_its_values() {
        let r = Reasoning::Baseline {
            template: "SMA10 {} crossed above SMA30 {}",
            values: [101.234, 100.5, 0.0],
        };
        assert_eq!(r.text(), "SMA10 101.23 crossed above SMA30 100.50");
    }
}
