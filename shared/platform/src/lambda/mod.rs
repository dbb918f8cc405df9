//! The shapes of the functions that are not HTTP: an SQS FIFO batch handler, a WebSocket handler
//! dispatching on the route key, and a scheduled-event handler. Each is a plain async function of
//! the event (what the local tool and the tests call) plus a `serve_*` helper that runs it under
//! `lambda_runtime`, so a function's `main.rs` stays a few lines.

pub mod schedule;
pub mod sqs;
pub mod ws;

/// The error a Lambda handler returns to the runtime.
pub type Error = lambda_runtime::Error;
