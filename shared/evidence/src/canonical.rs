//! RFC 8785, the JSON Canonicalization Scheme: the one byte form of a JSON value that a
//! certificate's digests are taken over, so that anyone can recompute them.
//!
//! - Objects: members sorted by their names' UTF-16 code units, no whitespace.
//! - Strings: as ECMAScript's `JSON.stringify` writes them (`\b \t \n \f \r \" \\`, other
//!   control characters as `\u00xx`, everything else as is), which is what serde_json writes.
//! - Numbers: as ECMAScript's `Number.prototype.toString` writes a double: the shortest digits
//!   that read back to the same value, plain from 1e-6 up to 1e21, else `d.ddde±x`.

use serde_json::{Number, Value};

/// The canonical text of `value`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut names: Vec<&String> = members.keys().collect();
            names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(name, out);
                out.push(':');
                write(&members[name], out);
            }
            out.push('}');
        }
    }
}

fn string(s: &str, out: &mut String) {
    // serde_json escapes exactly the characters JSON.stringify does, in the same forms
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\"")));
}

/// A JSON number as ECMAScript writes the double it denotes.
fn number(n: &Number) -> String {
    match n.as_f64() {
        Some(x) => es_number(x),
        None => n.to_string(),
    }
}

/// ECMAScript's `Number.prototype.toString` of a finite double (ECMA-262, Number::toString).
pub fn es_number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        // -0 is "0"; JSON has no NaN or infinity
        return "0".into();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // Rust's `{:e}` writes the shortest digits that read back to the same double
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    // the value is 0.digits x 10^n
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let mantissa = if k == 1 {
            digits
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{mantissa}e{sign}{}", e.abs())
    };
    format!("{sign}{body}")
}

/// Lowercase hex SHA-256 of `text`'s UTF-8 bytes.
pub fn sha256_hex(text: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_written_as_ecmascript_writes_them() {
        // RFC 8785 section 3.2.2.3 and its appendix B examples
        for (x, text) in [
            (10000.0, "10000"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (-0.0, "0"),
            (1e20, "100000000000000000000"),
            (123e-20, "1.23e-18"),
            (4.50, "4.5"),
            (2e-3, "0.002"),
            (0.000001234, "0.000001234"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-3213.7, "-3213.7"),
            (333333333.3333333, "333333333.3333333"),
            (9007199254740992.0, "9007199254740992"),
            (295147905179352830000.0, "295147905179352830000"),
        ] {
            assert_eq!(es_number(x), text, "{x:e}");
        }
    }

    #[test]
    fn objects_are_sorted_by_utf16_and_written_without_space() {
        // RFC 8785 section 3.2.3's sorting example
        let value = json!({
            "\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{0080}": "Control", "\u{00f6}": "Latin Small Letter O With Diaeresis"
        });
        let text = canonical(&value);
        let order: Vec<&str> = [
            "\\r",
            "1",
            "\u{0080}",
            "\u{00f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .into_iter()
        .collect();
        let mut at = 0;
        for key in order {
            let found = text[at..].find(&format!("\"{key}\"")).map(|i| i + at);
            assert!(found.is_some(), "{key} after {at} in {text}");
            at = found.unwrap_or(at);
        }
        assert_eq!(
            canonical(&json!({"b": [1.0, 10000.0, "\u{1f}"], "a": {"z": null, "y": true}})),
            r#"{"a":{"y":true,"z":null},"b":[1,10000,"\u001f"]}"#
        );
    }
}
