//! The local tool's tests, in one binary: the engine's command line, `alphalab serve` end to
//! end, and the agreement of template.yaml, the routers and the OpenAPI document.

mod cli;
mod data;
mod functions;
mod rotate;
mod serve;
mod template;
mod tenancy;
