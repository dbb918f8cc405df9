//! `alphalab`: the local tool. `serve` runs the whole system on a laptop; `token` mints a
//! development token; `migrate` applies the migrations to `DATABASE_URL`.

use clap::{Parser, Subcommand};

mod api;
mod backtest;
mod bench_arena;
mod bench_evidence;
mod bench_forward;
mod bench_lookahead;
mod bench_results;
mod bench_sessions;
mod bench_stack;
mod bench_ws;
mod data;
mod local_ws;
mod rotate;
mod secrets;
mod serve;
mod steps;
mod token;
mod verify_ledger;
mod watch;

#[derive(Parser)]
#[command(name = "alphalab", about = "AlphaLab's local tool", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system locally: Postgres, moto, the token issuer and every function's routes.
    Serve(serve::ServeArgs),
    /// Print a development token, for the demo user unless a user id is given (the local stack's
    /// key must exist: run `serve` once).
    Token(token::TokenArgs),
    /// Apply the migrations to DATABASE_URL.
    Migrate,
    /// Load the bundled market data (data/market) into DATABASE_URL's market_data_cache.
    LoadData,
    /// Measure publish-to-receive latency and events per second through the local WebSocket
    /// gateway, for 1 and 100 subscribers (starts its own Postgres and moto).
    BenchWs(bench_ws::BenchWsArgs),
    /// Run a year of hourly sma-cross at instant through the local stack (arena function, moto
    /// SQS, backtest-step, Postgres, one WebSocket subscriber); report wall time, steps and
    /// WebSocket messages (starts its own Postgres and moto).
    BenchArena(bench_arena::BenchArenaArgs),
    /// Release candles to 500 forward sessions (50 users x 10) of sma-cross through the local
    /// stack and the local exchange; report the time from the tick to the last session's
    /// `candle` event, the exchange requests and the steps (starts its own Postgres and moto).
    BenchForward(bench_forward::BenchForwardArgs),
    /// Run an LLM agent against a local model server with a fixed latency at several lookaheads
    /// (default 1 then 8, 2,000 candles, 1 s per call); report wall times, calls, the wasted
    /// share and the speed-up (starts its own Postgres and moto).
    BenchLookahead(bench_lookahead::BenchLookaheadArgs),
    /// Time `GET /api/arena/sessions` for a user with 20 finished sessions of 45,024 model
    /// decisions each (starts its own Postgres and moto).
    BenchSessions(bench_sessions::BenchSessionsArgs),
    /// Time the exports of a 45,024-candle sma-cross result and `GET /api/results` for a user
    /// with 10,000 results (starts its own Postgres and moto).
    BenchResults(bench_results::BenchResultsArgs),
    /// Measure the evidence of the bundled BTCUSDT 1h sma-cross result and a ledger's
    /// verification (no database).
    BenchEvidence(bench_evidence::BenchEvidenceArgs),
    /// Re-encrypt every stored API key with the active version of ENCRYPTION_KEYS (idempotent,
    /// in batches).
    RotateKeys(rotate::RotateArgs),
    /// Print a session's live events, one JSON line each, until it is over (through the
    /// WebSocket API: `--ws-url`, `--token` or `TOKEN`).
    Watch(watch::WatchArgs),
    /// Print the API's OpenAPI document (the one committed as openapi.json and served at
    /// /api/openapi.json).
    Openapi,
    /// Check a result's signed ledger (a file or a result URL): the hash chain, the seal's
    /// signature, and a replay of the engine to the same metrics and evidence.
    VerifyLedger(verify_ledger::VerifyLedgerArgs),
    /// Backtest a baseline agent on a CSV of candles; metrics as JSON on stdout.
    Backtest(backtest::BacktestArgs),
    /// Compute indicators over a CSV of candles; CSV on stdout.
    Indicators(backtest::IndicatorsArgs),
}

#[tokio::main]
async fn main() {
    if let Err(err) = run(Cli::parse()).await {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Token(args) => token::run(args),
        Command::Watch(args) => watch::run(args).await,
        Command::Backtest(args) => backtest::backtest(args),
        Command::VerifyLedger(args) => verify_ledger::run(args).await,
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&api::document())?);
            Ok(())
        }
        Command::Indicators(args) => backtest::indicators(args),
        Command::Migrate => {
            alphalab_devstack::pg::migrate(&database_url()?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::RotateKeys(args) => rotate::run(args).await,
        Command::BenchWs(args) => bench_ws::run(args).await,
        Command::BenchArena(args) => bench_arena::run(args).await,
        Command::BenchForward(args) => bench_forward::run(args).await,
        Command::BenchLookahead(args) => bench_lookahead::run(args).await,
        Command::BenchSessions(args) => bench_sessions::run(args).await,
        Command::BenchResults(args) => bench_results::run(args).await,
        Command::BenchEvidence(args) => bench_evidence::run(args),
        Command::LoadData => {
            let pool = sqlx::PgPool::connect(&database_url()?).await?;
            let rows = data::load_bundled(&pool).await?;
            println!("{rows} candles loaded ({} datasets)", data::BUNDLED.len());
            Ok(())
        }
    }
}

fn database_url() -> anyhow::Result<String> {
    std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("DATABASE_URL is required"))
}

/// The workspace root (for the default data directory and template.yaml).
pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
