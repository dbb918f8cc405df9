//! Logs with `tracing`: JSON lines in Lambda, readable lines locally. Every request runs in a
//! span carrying its request id, and the caller's user id once authenticated (see
//! [`crate::http::service`] and [`crate::auth::AuthUser`]). Tokens, keys and the database URL are
//! never put in a log field.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber once; later calls do nothing. The configuration's filter
/// (`RUST_LOG`) overrides the level. JSON lines go to stdout (CloudWatch), readable lines to
/// stderr.
pub fn init(config: &TelemetryConfig) {
    let filter = config.filter.as_deref();
    match config.log_format {
        LogFormat::Json => init_with_writer(config.log_format, std::io::stdout, filter),
        LogFormat::Pretty => init_with_writer(config.log_format, std::io::stderr, filter),
    }
}

/// Logs the function's init time once (`init_ms`: from the first line of `main` until it is ready
/// to serve), just before it serves: what a cold start costs beyond the runtime's own.
pub fn initialised(started: std::time::Instant) {
    tracing::info!(
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "initialised"
    );
}

/// [`init`] with another destination and the filter directives (default
/// `info,sqlx=warn,aws_config=warn,hyper=warn`; the tests capture the lines).
pub fn init_with_writer<W>(format: LogFormat, writer: W, directives: Option<&str>)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // `target=level` directives and a bare default level (no regex: smaller binaries); a
    // directive that does not parse falls back to the default
    let filter: Targets = directives.and_then(|d| d.parse().ok()).unwrap_or_else(|| {
        use tracing::Level;
        Targets::new()
            .with_default(Level::INFO)
            .with_target("sqlx", Level::WARN)
            .with_target("aws_config", Level::WARN)
            .with_target("hyper", Level::WARN)
    });
    let builder = tracing_subscriber::fmt().with_writer(writer);
    let _ = match format {
        // Lambda stamps every line itself
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .finish()
            .with(filter)
            .try_init(),
        LogFormat::Pretty => builder.compact().finish().with(filter).try_init(),
    };
}
