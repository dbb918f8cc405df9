//! What can go wrong talking to OpenRouter. No variant carries key material.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenRouterError {
    /// 400: the request itself was refused (a model that does not take a parameter).
    #[error("OpenRouter refused the request: {message}")]
    BadRequest { message: String },
    /// 401 / 403: the key is not accepted.
    #[error("OpenRouter rejected the key ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// 402 `in_flight_budget_exhausted`: the key's balance is held by requests in flight; retry
    /// after `Retry-After` (unlike 402 out of credits).
    #[error("OpenRouter's in-flight budget of the key is exhausted{}", retry_after.map(|s| format!("; retry after {s} s")).unwrap_or_default())]
    InFlightBudget { retry_after: Option<u64> },
    /// 402: no credits left.
    #[error("OpenRouter reports no credits ({message})")]
    NoCredits { message: String },
    /// 429, with the seconds to wait when OpenRouter says.
    #[error("OpenRouter is rate limiting{}", retry_after.map(|s| format!("; retry after {s} s")).unwrap_or_default())]
    RateLimited { retry_after: Option<u64> },
    /// 5xx, 408, or another unexpected status.
    #[error("OpenRouter answered {status}")]
    UnexpectedStatus { status: u16 },
    /// No answer within the timeout.
    #[error("OpenRouter did not answer within {0} s")]
    Timeout(u64),
    /// The connection failed.
    #[error("OpenRouter unreachable: {0}")]
    Network(String),
    /// A body that is not what OpenRouter documents (key and model lists).
    #[error("OpenRouter sent an unreadable answer: {0}")]
    InvalidBody(String),
    /// A 200 to a chat request without a usable message: billed, asked again at most once.
    #[error("OpenRouter answered without a usable message ({detail})")]
    EmptyReply { detail: String },
    /// The call (or another attempt of it) could not end before the caller's deadline: not
    /// asked; the next step asks.
    #[error("no time left in this step for the model call")]
    OutOfTime,
}

impl OpenRouterError {
    /// Worth another attempt: 408, 429, 5xx, timeouts and broken connections. 400, 401, 402
    /// and 403 are final (PLATFORM.md, OpenRouter).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::InFlightBudget { .. }
            | Self::Timeout(_)
            | Self::Network(_) => true,
            Self::UnexpectedStatus { status } => *status == 408 || *status >= 500,
            Self::InvalidBody(_) | Self::EmptyReply { .. } | Self::OutOfTime => true,
            Self::BadRequest { .. } | Self::Rejected { .. } | Self::NoCredits { .. } => false,
        }
    }
}

impl OpenRouterError {
    /// The wait OpenRouter asked for (429, 402 in-flight).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } | Self::InFlightBudget { retry_after } => {
                *retry_after
            }
            _ => None,
        }
    }
}
