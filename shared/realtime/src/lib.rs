//! Live events (the realtime contract in the README): the typed event model and its envelope, the
//! registry of WebSocket connections and subscriptions (DynamoDB), and the publisher that fans a
//! session's events out with PostToConnection, packed into 32 KB frames.

pub mod events;
pub mod publisher;
pub mod registry;

pub use events::{Envelope, Event};
pub use publisher::{Publisher, RealtimeConfig};
pub use registry::Registry;
