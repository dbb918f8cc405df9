//! Query parameters read as text and checked one by one, so that every bad one is a 422
//! `validation_failed` naming it (a list's `limit`, `cursor`, filters, sort and order), all of
//! them in one answer.

use std::ops::RangeInclusive;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::{ApiError, FieldError};

/// Collects the errors of a request's parameters while they are read.
#[derive(Debug, Default)]
pub struct Params {
    errors: Vec<FieldError>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `name` is wrong.
    pub fn reject(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(name, message));
    }

    /// A whole number in `range` (`default` when absent).
    pub fn number(
        &mut self,
        name: &str,
        raw: Option<&str>,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        match raw.map(str::parse::<i64>) {
            None => default,
            Some(Ok(n)) if range.contains(&n) => n,
            Some(_) => {
                self.reject(
                    name,
                    format!(
                        "must be a whole number between {} and {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    /// One of `allowed` (`None` when absent).
    pub fn one_of(
        &mut self,
        name: &str,
        raw: Option<&str>,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let raw = raw?;
        let found = allowed.iter().find(|a| **a == raw).copied();
        if found.is_none() {
            self.reject(name, format!("must be one of {}", allowed.join(", ")));
        }
        found
    }

    /// One of `allowed`, which must be given (`None`, and the error, when absent or not one).
    pub fn required(
        &mut self,
        name: &str,
        raw: Option<&str>,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        if raw.is_none() {
            self.reject(name, format!("required: one of {}", allowed.join(", ")));
        }
        self.one_of(name, raw, allowed)
    }

    /// `true` or `false` (`None` when absent).
    pub fn boolean(&mut self, name: &str, raw: Option<&str>) -> Option<bool> {
        self.one_of(name, raw, &["true", "false"])
            .map(|v| v == "true")
    }

    /// A UUID (`None` when absent).
    pub fn uuid(&mut self, name: &str, raw: Option<&str>) -> Option<Uuid> {
        self.parsed(name, raw, "must be a UUID")
    }

    /// A value of `T` read with [`FromStr`] (`None` when absent); `message` when it does not read.
    pub fn parsed<T: FromStr>(
        &mut self,
        name: &str,
        raw: Option<&str>,
        message: &str,
    ) -> Option<T> {
        let value = raw?.parse().ok();
        if value.is_none() {
            self.reject(name, message);
        }
        value
    }

    /// A cursor this API gave out, read by `decode` (`None` when absent or empty).
    pub fn cursor<T>(
        &mut self,
        raw: Option<&str>,
        decode: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        match raw {
            None | Some("") => None,
            Some(text) => {
                let cursor = decode(text);
                if cursor.is_none() {
                    self.reject("cursor", "not a cursor this API gave out for this list");
                }
                cursor
            }
        }
    }

    /// `Ok` when every parameter read well, else the 422 naming each bad one.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_parameter_is_named_and_good_ones_read() {
        let mut p = Params::new();
        assert_eq!(p.number("limit", Some("5"), 1..=100, 20), 5);
        assert_eq!(p.number("limit", None, 1..=100, 20), 20);
        assert_eq!(p.boolean("profitable", Some("true")), Some(true));
        assert!(p.finish().is_ok());
        let mut p = Params::new();
        p.number("limit", Some("0"), 1..=100, 20);
        p.one_of("sort", Some("name"), &["created_at"]);
        p.uuid("agent_id", Some("x"));
        p.cursor(Some("zz"), |_| None::<()>);
        assert_eq!(p.required("format", None, &["csv"]), None);
        let Err(ApiError::Validation(fields)) = p.finish() else {
            panic!("expected a validation error")
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["limit", "sort", "agent_id", "cursor", "format"]);
    }
}
