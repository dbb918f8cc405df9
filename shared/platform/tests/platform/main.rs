//! The platform's integration tests, in one binary: the schema of migrations/ on a real
//! Postgres, and the HTTP service wrapper over real HTTP.

mod http;
mod schema;
