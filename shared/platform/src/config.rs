//! Configuration, read once per cold start from environment variables into one typed struct.
//!
//! Every variable is listed in the README. Secrets are held as [`SecretString`] so that a
//! `Debug` print of the configuration cannot reveal them.

use std::time::Duration;

use secrecy::SecretString;

/// Why the configuration could not be read. Each variant names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch); the default in Lambda.
    Json,
    /// Human-readable lines; the default elsewhere.
    Pretty,
}

/// Clerk session-token verification settings.
#[derive(Debug, Clone)]
pub struct ClerkConfig {
    /// Expected `iss` claim: the Frontend API URL of the Clerk instance.
    pub issuer: String,
    /// Where the JWKS is fetched from (default `<issuer>/.well-known/jwks.json`).
    pub jwks_url: String,
    /// Accepted `azp` values (the app's origins). Empty accepts any; a token without `azp` is
    /// accepted either way, as Clerk documents.
    pub authorized_parties: Vec<String>,
    /// Least time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refresh: Duration,
}

/// Everything a function needs from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Postgres connection string (`DATABASE_URL`). Secret: it may hold a password.
    pub database_url: SecretString,
    /// Pool size per Lambda instance (`DATABASE_MAX_CONNECTIONS`, default 2).
    pub database_max_connections: u32,
    pub clerk: ClerkConfig,
    pub log_format: LogFormat,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, which answers a variable's value by name. The local
    /// tool and the tests use it to configure functions exactly as Lambda does, without touching
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let require = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));

        let database_url = SecretString::from(require("DATABASE_URL")?);
        let database_max_connections = match get("DATABASE_MAX_CONNECTIONS") {
            None => 2,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or(ConfigError::Invalid {
                    name: "DATABASE_MAX_CONNECTIONS",
                    reason: "expected an integer between 1 and 100".into(),
                })?,
        };

        let issuer = require("CLERK_ISSUER")?.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "CLERK_ISSUER",
                reason: "expected the Clerk Frontend API URL (https://...)".into(),
            });
        }
        let jwks_url =
            get("CLERK_JWKS_URL").unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        let authorized_parties = get("CLERK_AUTHORIZED_PARTIES")
            .map(|v| {
                v.split(',')
                    .map(|p| p.trim().trim_end_matches('/').to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let jwks_min_refresh = match get("CLERK_JWKS_MIN_REFRESH_SECS") {
            None => Duration::from_secs(300),
            Some(v) => Duration::from_secs(v.parse().map_err(|_| ConfigError::Invalid {
                name: "CLERK_JWKS_MIN_REFRESH_SECS",
                reason: "expected a number of seconds".into(),
            })?),
        };

        let log_format = match get("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    reason: "expected json or pretty".into(),
                });
            }
            None if get("AWS_LAMBDA_FUNCTION_NAME").is_some() => LogFormat::Json,
            None => LogFormat::Pretty,
        };

        Ok(Self {
            database_url,
            database_max_connections,
            clerk: ClerkConfig {
                issuer,
                jwks_url,
                authorized_parties,
                jwks_min_refresh,
            },
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = Config::from_lookup(lookup(&[("CLERK_ISSUER", "https://x")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable DATABASE_URL is required but not set"
        );
    }

    #[test]
    fn defaults_are_applied_and_secrets_are_not_printed() {
        let c = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("CLERK_ISSUER", "https://clerk.example.com/"),
            (
                "CLERK_AUTHORIZED_PARTIES",
                "https://app.example.com, http://localhost:3000/",
            ),
        ]))
        .unwrap();
        assert_eq!(c.database_max_connections, 2);
        assert_eq!(c.clerk.issuer, "https://clerk.example.com");
        assert_eq!(
            c.clerk.jwks_url,
            "https://clerk.example.com/.well-known/jwks.json"
        );
        assert_eq!(
            c.clerk.authorized_parties,
            vec!["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(c.clerk.jwks_min_refresh, Duration::from_secs(300));
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.database_url.expose_secret(), "postgres://u:hunter2@db/x");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn lambda_defaults_to_json_logs_and_bad_values_are_named() {
        let c = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("CLERK_ISSUER", "https://clerk.example.com"),
            ("AWS_LAMBDA_FUNCTION_NAME", "users"),
        ]))
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let err = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("CLERK_ISSUER", "https://clerk.example.com"),
            ("DATABASE_MAX_CONNECTIONS", "lots"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("DATABASE_MAX_CONNECTIONS"));
    }
}
