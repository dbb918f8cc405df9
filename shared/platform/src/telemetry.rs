//! Logs with `tracing`: JSON lines in Lambda, readable lines locally. Every request runs in a
//! span carrying its request id, and the caller's user id once authenticated (see
//! [`crate::http::service`] and [`crate::auth::AuthUser`]). Tokens, keys and the database URL are
//! never put in a log field.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls do nothing. `RUST_LOG` overrides the level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,aws_config=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .try_init(),
        LogFormat::Pretty => builder.compact().with_writer(std::io::stderr).try_init(),
    };
}
