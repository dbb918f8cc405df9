//! The local tool's tests, in one binary: the engine's command line, `alphalab serve` end to
//! end, and the agreement of template.yaml, the routers and the OpenAPI document.

mod arena;
mod cli;
mod data;
mod drift;
mod events;
mod functions;
mod rotate;
mod serve;
mod template;
mod tenancy;

/// Runs `alphalab` with `args` and environment `vars`; its standard output when it succeeds.
pub(crate) fn succeed(args: &[&str], vars: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alphalab"))
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("running alphalab");
    assert!(
        out.status.success(),
        "alphalab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
