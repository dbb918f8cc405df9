//! Adapters to the outside world, each in its own module, around the domain: the encryption of
//! users' API keys at rest, the OpenRouter client, Binance's klines, and Svix signatures (Clerk's webhooks). No
//! handler or Lambda type here, and no crate of ours but `config`.
//!
//! Every call a step makes takes the step's deadline (a `tokio::time::Instant`): nothing starts
//! that cannot end before it, and a wait that would outlast it is not begun.

pub mod binance;
pub mod crypto;
pub mod http;
pub mod openrouter;
pub mod svix;
