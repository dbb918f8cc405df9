//! Real local parts shared by the local stack (`alphalab serve`) and every crate's tests:
//!
//! - [`pg`]: a Postgres cluster from the distribution's server binaries (run as an unprivileged
//!   user when we are root), a migrated template database and a fresh clone of it per test;
//! - [`moto`]: `moto_server` for DynamoDB and SQS, and AWS SDK configuration pointing at it;
//! - [`aws`]: the DynamoDB tables and SQS queues that `template.yaml` declares, created for real;
//! - [`issuer`]: a token issuer with its own RSA key and a JWKS served over HTTP, so local and test
//!   requests pass through the very same Clerk verification code as production;
//! - [`binance`]: a local HTTP server speaking Binance's klines format (pages, gaps, 429/418);
//! - [`openrouter`]: a local HTTP server speaking OpenRouter's wire format (errors and slow
//!   answers included);
//! - [`gateway`]: a local API Gateway WebSocket API (connection ids, `$connect` refusal,
//!   `$disconnect`, the `@connections` management API);
//! - [`iam`]: each function's AWS endpoint, allowing exactly what its template policies allow;
//! - [`sqs`]: Lambda's SQS event source mapping (batch size, concurrency, function timeout);
//! - [`harness`]: the per-test environment (fresh database, shared issuer, moto) and a helper that
//!   serves a router on 127.0.0.1 and talks to it with real HTTP requests.
//!
//! A missing binary is an error that names the package to install; nothing is silently skipped.

pub mod aws;
pub mod binance;
pub mod gateway;
pub mod harness;
pub mod iam;
pub mod issuer;
pub mod moto;
pub mod openrouter;
pub mod pg;
pub mod proc;
pub mod sqs;

pub use harness::{LogCapture, TestApp, TestEnv, TestServer, assert_error};
pub use issuer::{SigningKey, TokenIssuer, TokenSpec};
