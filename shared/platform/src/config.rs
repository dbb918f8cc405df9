//! The configuration pieces every function shares (telemetry, database, Clerk, AWS), read with
//! the `config` crate's [`Env`] and [`FromEnv`] (re-exported here), once per cold start.
//!
//! Secrets are held as [`SecretString`] so that a `Debug` print of the configuration cannot
//! reveal them.

use std::time::Duration;

use secrecy::SecretString;

pub use config::{ConfigError, Env, FromEnv};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch); the default in Lambda.
    Json,
    /// Human-readable lines; the default elsewhere.
    Pretty,
}

/// `LOG_FORMAT` (`json` | `pretty`; default json in Lambda, pretty elsewhere) and `RUST_LOG`
/// (the log filter, `tracing`'s directives; default `info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    pub filter: Option<String>,
}

impl FromEnv for TelemetryConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let log_format = match env.get("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    "expected json or pretty",
                ));
            }
            None if env.in_lambda() => LogFormat::Json,
            None => LogFormat::Pretty,
        };
        Ok(Self {
            log_format,
            filter: env.get("RUST_LOG"),
        })
    }
}

/// `DATABASE_URL` (required, secret; in Lambda it must ask for TLS: `sslmode=require`,
/// `verify-ca` or `verify-full`) and `DATABASE_MAX_CONNECTIONS` (1..100, default 1: one
/// connection per Lambda execution environment, DESIGN section 5b).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
}

/// Whether a Postgres URL's host is this machine (`localhost`, `127.0.0.1`, `[::1]`): no network
/// to protect (`cargo lambda watch` against the local stack).
pub fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// Whether a Postgres URL asks for TLS (`sslmode` `require`, `verify-ca` or `verify-full`).
pub fn requires_tls(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query.split('&').any(|pair| {
        matches!(
            pair.split_once('='),
            Some(("sslmode", "require" | "verify-ca" | "verify-full"))
        )
    })
}

impl FromEnv for DatabaseConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = env.require("DATABASE_URL")?;
        // in AWS the database is reached over the network: never in clear text (a database on
        // this machine, as under `cargo lambda watch`, has no network to cross)
        if env.in_lambda() && !requires_tls(&url) && !is_loopback(&url) {
            return Err(ConfigError::invalid(
                "DATABASE_URL",
                "in Lambda the connection must use TLS: add sslmode=require (or verify-full with \
                 the RDS CA bundle, see the README's deploy section)",
            ));
        }
        Ok(Self {
            url: SecretString::from(url),
            max_connections: env.number("DATABASE_MAX_CONNECTIONS", 1, 1..=100)?,
        })
    }
}

/// Least interval between two JWKS fetches caused by unknown key ids.
pub const JWKS_MIN_REFRESH_FLOOR: Duration = Duration::from_secs(10);

/// Clerk session-token verification: `CLERK_ISSUER` (required), `CLERK_JWKS_URL` (default
/// `<issuer>/.well-known/jwks.json`), `CLERK_AUTHORIZED_PARTIES` (comma-separated origins;
/// required in Lambda, may be empty locally), `CLERK_JWKS_MIN_REFRESH_SECS` (10..86400,
/// default 300).
#[derive(Debug, Clone)]
pub struct ClerkConfig {
    /// Expected `iss` claim: the Frontend API URL of the Clerk instance.
    pub issuer: String,
    /// Where the JWKS is fetched from.
    pub jwks_url: String,
    /// Accepted `azp` values (the app's origins). Empty accepts any (local use only); a token
    /// without `azp` is accepted either way, as Clerk documents.
    pub authorized_parties: Vec<String>,
    /// Least time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refresh: Duration,
}

impl FromEnv for ClerkConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let issuer = env
            .require("CLERK_ISSUER")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(ConfigError::invalid(
                "CLERK_ISSUER",
                "expected the Clerk Frontend API URL (https://...)",
            ));
        }
        let jwks_url = env
            .get("CLERK_JWKS_URL")
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        let authorized_parties: Vec<String> = env
            .get("CLERK_AUTHORIZED_PARTIES")
            .map(|v| {
                v.split(',')
                    .map(|p| p.trim().trim_end_matches('/').to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if authorized_parties.is_empty() && env.in_lambda() {
            return Err(ConfigError::invalid(
                "CLERK_AUTHORIZED_PARTIES",
                "required in Lambda: the comma-separated origins of the app (https://app.example.com)",
            ));
        }
        let floor = JWKS_MIN_REFRESH_FLOOR.as_secs();
        let jwks_min_refresh = Duration::from_secs(env.local_number(
            "CLERK_JWKS_MIN_REFRESH_SECS",
            300,
            floor..=86_400,
        )?);
        Ok(Self {
            issuer,
            jwks_url,
            authorized_parties,
            jwks_min_refresh,
        })
    }
}

/// Where the AWS SDK clients point: `AWS_ENDPOINT_URL` (the local stack and the tests point it at
/// moto, with fixed test credentials) and `AWS_REGION` (default `us-east-1`). In Lambda neither is
/// needed: the runtime provides the region and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    pub endpoint_url: Option<String>,
    pub region: String,
}

impl FromEnv for AwsConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            endpoint_url: env.get("AWS_ENDPOINT_URL"),
            region: env.get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        })
    }
}

impl AwsConfig {
    /// The SDK configuration (loads credentials from the environment in Lambda).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()));
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint).credentials_provider(
                aws_sdk_dynamodb::config::Credentials::new(
                    "testing",
                    "testing",
                    None,
                    None,
                    "alphalab-local",
                ),
            );
        }
        loader.load().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> Env<'a> {
        Env::from_lookup(move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = DatabaseConfig::from_env(&env(&[("CLERK_ISSUER", "https://x")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable DATABASE_URL is required but not set"
        );
    }

    #[test]
    fn in_lambda_the_database_url_must_ask_for_tls_and_is_never_echoed() {
        let plain = "postgres://u:hunter2@db.example.com/x";
        let lambda = |url: &str| {
            let vars = [
                ("DATABASE_URL", url),
                ("AWS_LAMBDA_FUNCTION_NAME", "alphalab-users"),
            ];
            DatabaseConfig::from_env(&env(&vars))
        };
        let err = lambda("postgres://u:hunter2@db.example.com/x").unwrap_err();
        assert!(err.to_string().contains("sslmode=require"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        for url in [
            "postgres://u:p@db/x?sslmode=require",
            "postgresql://u:p@db/x?application_name=a&sslmode=verify-full",
            "postgres://u:p@db/x?sslmode=verify-ca&sslrootcert=/opt/rds.pem",
        ] {
            assert!(requires_tls(url), "{url}");
            assert!(lambda(url).is_ok(), "{url}");
        }
        assert!(!requires_tls("postgres://u:p@db/x?sslmode=prefer"));
        for local in [
            "postgres://postgres@127.0.0.1:5433/alphalab",
            "postgres://u:p@localhost/x",
            "postgres://u:p@[::1]:5432/x",
        ] {
            assert!(lambda(local).is_ok(), "{local}");
        }
        assert!(!is_loopback("postgres://u:p@127.0.0.1.example.com/x"));
        // locally the throwaway cluster speaks plain TCP on 127.0.0.1
        assert!(DatabaseConfig::from_env(&env(&[("DATABASE_URL", plain)])).is_ok());
    }

    #[test]
    fn a_piece_reads_only_its_own_variables() {
        // the database piece needs no Clerk variable, and the reverse
        let db = DatabaseConfig::from_env(&env(&[("DATABASE_URL", "postgres://u:hunter2@db/x")]))
            .unwrap();
        assert_eq!(db.max_connections, 1);
        assert_eq!(db.url.expose_secret(), "postgres://u:hunter2@db/x");
        assert!(!format!("{db:?}").contains("hunter2"));
        assert!(ClerkConfig::from_env(&env(&[("CLERK_ISSUER", "https://c.example.com")])).is_ok());
    }

    #[test]
    fn clerk_defaults_are_applied() {
        let c = ClerkConfig::from_env(&env(&[
            ("CLERK_ISSUER", "https://clerk.example.com/"),
            (
                "CLERK_AUTHORIZED_PARTIES",
                "https://app.example.com, http://localhost:3000/",
            ),
        ]))
        .unwrap();
        assert_eq!(c.issuer, "https://clerk.example.com");
        assert_eq!(
            c.jwks_url,
            "https://clerk.example.com/.well-known/jwks.json"
        );
        assert_eq!(
            c.authorized_parties,
            vec!["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(c.jwks_min_refresh, Duration::from_secs(300));
    }

    #[test]
    fn the_jwks_refresh_interval_has_a_floor_of_10_seconds() {
        let read = |secs: &str| {
            ClerkConfig::from_env(&env(&[
                ("CLERK_ISSUER", "https://c.example.com"),
                ("CLERK_JWKS_MIN_REFRESH_SECS", secs),
            ]))
        };
        let err = read("1").unwrap_err().to_string();
        assert!(err.contains("CLERK_JWKS_MIN_REFRESH_SECS"), "{err}");
        assert!(err.contains("between 10 and"), "{err}");
        assert_eq!(
            read("10").unwrap().jwks_min_refresh,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn lambda_refuses_an_empty_authorized_parties_list_and_local_use_allows_it() {
        let vars = [
            ("CLERK_ISSUER", "https://c.example.com"),
            ("AWS_LAMBDA_FUNCTION_NAME", "users"),
            ("CLERK_AUTHORIZED_PARTIES", " , "),
        ];
        let err = ClerkConfig::from_env(&env(&vars)).unwrap_err().to_string();
        assert!(err.contains("CLERK_AUTHORIZED_PARTIES"), "{err}");
        assert!(ClerkConfig::from_env(&env(&vars[..1])).is_ok());
    }

    #[test]
    fn lambda_defaults_to_json_logs_and_bad_values_are_named() {
        let t = TelemetryConfig::from_env(&env(&[("AWS_LAMBDA_FUNCTION_NAME", "users")])).unwrap();
        assert_eq!(t.log_format, LogFormat::Json);
        assert_eq!(
            TelemetryConfig::from_env(&env(&[])).unwrap().log_format,
            LogFormat::Pretty
        );
        let err = DatabaseConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("DATABASE_MAX_CONNECTIONS", "lots"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("DATABASE_MAX_CONNECTIONS"));
    }
}
