//! Adapters to the outside world, each in its own module, around the domain: the encryption of
//! users' API keys at rest, the OpenRouter client, Binance's klines, and Svix signatures (Clerk's webhooks). No
//! handler or Lambda type here.

pub mod binance;
pub mod crypto;
pub mod openrouter;
pub mod svix;
