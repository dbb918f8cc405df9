//! What a failed session says to its user (`failure_reason`, `session_failed`, the
//! notification): what happened, in product words. The internal error goes to the log under a
//! reference the reason quotes; no SQL, URL, host, Rust type or path reaches a client.

use std::time::Duration;

use adapters::openrouter::OpenRouterError;

use crate::StepError;

/// A short random reference that ties a reason to its log line.
pub fn reference() -> String {
    let mut bytes = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes = std::process::id().to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// "7 minutes", "45 seconds", "1 minute".
fn span(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=89 => format!("{} second{}", secs, if secs == 1 { "" } else { "s" }),
        _ => {
            let minutes = (secs + 30) / 60;
            format!("{} minute{}", minutes, if minutes == 1 { "" } else { "s" })
        }
    }
}

/// The reason for a session whose step kept failing with `error` for `failing_for` (from the
/// message's first delivery to its last); the error is logged under the reason's reference.
pub fn step_failed(error: &StepError, failing_for: Option<Duration>) -> String {
    let reference = reference();
    tracing::error!(reference = %reference, error = %error, "the session fails: its step kept failing");
    let during = failing_for
        .map(|d| format!(" for {}", span(d)))
        .unwrap_or_default();
    match error {
        StepError::MarketData(_) => {
            format!("the market data provider did not answer{during} (reference {reference})")
        }
        StepError::Database(_) => {
            format!("our database was unavailable{during} (reference {reference})")
        }
        StepError::OutOfTime => format!(
            "a step could not finish within the function's time limit{during} (reference {reference})"
        ),
        StepError::Queue(_) | StepError::Engine(_) => {
            format!("internal error, reference {reference}")
        }
    }
}

/// The reason for a session whose message reached the dead-letter queue (its invocations died
/// or timed out on every delivery, or the failure could not be recorded then).
pub fn dead_lettered(message_id: &str) -> String {
    let reference = reference();
    tracing::error!(reference = %reference, message_id, "a step message was dead-lettered; the session fails");
    format!("the backtest stopped advancing: its steps kept failing (reference {reference})")
}

/// The reason for a session whose model call was refused for good (400, 401, 402, 403).
pub fn model_refused(error: &OpenRouterError) -> String {
    match error {
        OpenRouterError::Rejected { status, .. } => {
            format!("the model call was refused: OpenRouter rejected the key ({status})")
        }
        OpenRouterError::NoCredits { .. } => {
            "the model call was refused: OpenRouter reports no credits on the key".into()
        }
        OpenRouterError::BadRequest { .. } => {
            "the model call was refused: OpenRouter does not accept the request for this model (400)"
                .into()
        }
        other => format!("the model call failed: {other}"),
    }
}

/// An internal error that ends a session at once (an unreadable checkpoint, a snapshot that
/// does not decode): logged under the reason's reference.
pub fn internal(what: &dyn std::fmt::Display) -> String {
    let reference = reference();
    tracing::error!(reference = %reference, error = %what, "the session fails");
    format!("internal error, reference {reference}")
}

/// Why a forward session's feed is delayed, for people (a session's `feed.reason`): what the
/// exchange did, never a URL or a body.
pub fn exchange(error: &adapters::binance::BinanceError) -> String {
    use adapters::binance::BinanceError as E;
    match error {
        E::BackingOff { until_ms } => format!(
            "the exchange rate-limited us: no request before {}",
            crate::events::rfc3339(*until_ms)
        ),
        E::RateLimited | E::WaitTooLong(_) => "the exchange rate-limited us".into(),
        E::UnexpectedStatus { status: 451, .. } => {
            "the exchange refuses requests from this region (451): set BINANCE_BASE_URL to an origin that serves it".into()
        }
        E::UnexpectedStatus { status, .. } => format!("the exchange answered {status}"),
        E::Network(_) => "the exchange did not answer in time".into(),
        E::InvalidBody(_) => "the exchange's answer could not be read".into(),
        E::OutOfTime => "the exchange could not be asked in time".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(Duration::from_secs(1)), "1 second");
        assert_eq!(span(Duration::from_secs(45)), "45 seconds");
        assert_eq!(span(Duration::from_secs(405)), "7 minutes");
        assert_eq!(span(Duration::from_secs(95)), "2 minutes");
    }

    #[test]
    fn a_reason_names_no_internal_detail() {
        let error = StepError::Queue(crate::queue::QueueError::new(
            "dispatch failure: http://127.0.0.1:5055/123456789012/steps.fifo",
        ));
        let reason = step_failed(&error, Some(Duration::from_secs(405)));
        assert!(reason.starts_with("internal error, reference "), "{reason}");
        assert!(
            !reason.contains("http") && !reason.contains("127.0.0.1"),
            "{reason}"
        );
        let reason = step_failed(
            &StepError::MarketData(adapters::binance::BinanceError::UnexpectedStatus {
                status: 500,
                body: "SELECT 1".into(),
            }),
            Some(Duration::from_secs(405)),
        );
        assert!(
            reason.starts_with("the market data provider did not answer for 7 minutes"),
            "{reason}"
        );
        assert!(!reason.contains("SELECT"), "{reason}");
    }
}
