//! `alphalab serve`: the whole system on 127.0.0.1.
//!
//! Starts Postgres (unless `DATABASE_URL` is given), `moto_server` (unless `AWS_ENDPOINT_URL` is
//! given), applies the migrations, creates the tables and queues `template.yaml` declares, runs
//! the token issuer, seeds the demo user, serves every function's routes on one server under the
//! paths API Gateway uses, prints a token, and stops its children on Ctrl-C.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use alphalab_devstack::aws::TemplateResources;
use alphalab_devstack::moto::{self, Moto};
use alphalab_devstack::pg::{self, PgCluster};
use alphalab_devstack::{SigningKey, TokenIssuer};
use anyhow::{Context, Result};
use platform::Env;

pub(crate) const DEMO_USER: &str = "user_demo";
pub(crate) const ISSUER_PORT: u16 = 8788;
/// The demo user's agent, seeded once.
pub(crate) const DEMO_AGENT: &str = "Demo SMA cross";
/// Origins a local frontend runs on (Next.js, Vite).
const DEFAULT_CORS_ORIGINS: &str = "http://localhost:3000,http://localhost:5173";
const DATABASE: &str = "alphalab";

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Port of the API (0: any free port). Not 3000, where a Next.js frontend runs.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of the WebSocket API (and its `@connections` endpoint).
    #[arg(long, default_value_t = 8081)]
    ws_port: u16,
    /// Port of the local Postgres cluster.
    #[arg(long, default_value_t = 54329)]
    pg_port: u16,
    /// Port of moto_server.
    #[arg(long, default_value_t = 5055)]
    moto_port: u16,
    /// Port of the token issuer (its JWKS is served there).
    #[arg(long, default_value_t = ISSUER_PORT)]
    issuer_port: u16,
    /// Where the Postgres cluster and the issuer key are kept (git-ignored).
    #[arg(long, env = "ALPHALAB_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Delete the local database first and start from an empty one (ignored with DATABASE_URL).
    #[arg(long)]
    fresh: bool,
    /// Seconds between two runs of the step-watchdog (every minute in AWS).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    watchdog_interval: u64,
    /// Seconds between two runs of forward-tick (every minute in AWS): a forward session's
    /// candle is decided within one tick of its close, and the price feed moves once per tick.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    tick_interval: u64,
    /// Answer OpenRouter's chat-completions and key routes in process with the demo models
    /// (deterministic, free: no key, no network); seeds a demo key and a model agent.
    #[arg(long)]
    demo_models: bool,
    /// The demo models' time per answer, milliseconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    demo_latency_ms: u64,
}

/// The demo user's model agent, seeded with `--demo-models`.
pub(crate) const DEMO_MODEL_AGENT: &str = "Demo RSI reversion (model)";

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join(".data"));
    let given_database = env_var("DATABASE_URL");
    let given_aws = env_var("AWS_ENDPOINT_URL");

    // Prerequisites first, so that a missing one stops us before anything starts.
    if given_database.is_none() {
        pg::bin_dir()?;
    }
    if given_aws.is_none() {
        moto::binary()?;
    }
    let mut ports = vec![
        ("--port", args.port),
        ("--ws-port", args.ws_port),
        ("--issuer-port", args.issuer_port),
    ];
    if given_aws.is_none() {
        ports.push(("--moto-port", args.moto_port));
    }
    for (flag, port) in ports {
        ensure_free(port, flag)?;
    }

    let pg_dir = data_dir.join("postgres");
    if args.fresh && given_database.is_none() && pg_dir.exists() {
        if let Ok(old) = PgCluster::start(&pg_dir, args.pg_port) {
            old.stop()?;
        }
        std::fs::remove_dir_all(&pg_dir).context("removing the old database")?;
        println!("removed the old local database ({})", pg_dir.display());
    }
    let (cluster, database_url) = match given_database {
        Some(url) => (None, url),
        None => {
            let cluster = PgCluster::start(&pg_dir, args.pg_port)?;
            pg::ensure_database(&cluster.url("postgres"), DATABASE).await?;
            let url = cluster.url(DATABASE);
            (Some(cluster), url)
        }
    };
    pg::migrate(&database_url).await?;

    let mut moto_child = None;
    let aws_endpoint = match given_aws {
        Some(url) => url,
        None => {
            let moto = Moto::start(args.moto_port)?;
            let endpoint = moto.endpoint.clone();
            moto_child = Some(moto);
            endpoint
        }
    };
    let resources =
        TemplateResources::from_template(&crate::workspace_root().join("template.yaml"))?;
    resources
        .create(&moto::sdk_config(&aws_endpoint).await)
        .await
        .context("creating the template's tables and queues")?;

    // Clerk: a real instance's tokens when CLERK_ISSUER is set (a frontend on a Clerk
    // development instance), else the local issuer's.
    let external_clerk = env_var("CLERK_ISSUER");
    let issuer = match &external_clerk {
        Some(_) => None,
        None => {
            let key = match crate::token::load_key(&data_dir)? {
                Some(key) => key,
                None => {
                    let key = SigningKey::generate()?;
                    crate::token::save_key(&data_dir, &key)?;
                    key
                }
            };
            Some(TokenIssuer::start_with(
                key,
                SocketAddr::from(([127, 0, 0, 1], args.issuer_port)),
            )?)
        }
    };

    // The functions read their configuration exactly as in Lambda, by variable name.
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    if let Some(issuer) = &issuer {
        vars.extend(issuer.env());
    }
    vars.insert("DATABASE_URL".into(), database_url.clone());
    vars.insert("AWS_ENDPOINT_URL".into(), aws_endpoint.clone());
    vars.entry("LOG_FORMAT".into())
        .or_insert_with(|| "pretty".into());
    vars.entry("DATABASE_MAX_CONNECTIONS".into())
        .or_insert_with(|| "10".into());
    if env_var("ENCRYPTION_KEYS").is_none() {
        let keys = crate::secrets::load_or_create(&data_dir, "encryption-keys", || {
            Ok(adapters::crypto::Keyring::generate_text())
        })?;
        vars.insert("ENCRYPTION_KEYS".into(), keys);
    }
    if env_var("LEDGER_SIGNING_KEY").is_none() {
        let key = crate::secrets::load_or_create(&data_dir, "ledger-signing-key", || {
            Ok(evidence::ledger::SigningKey::generate_seed())
        })?;
        vars.insert("LEDGER_SIGNING_KEY".into(), key);
    }
    if env_var("CLERK_WEBHOOK_SECRET").is_none() {
        let secret = crate::secrets::load_or_create(
            &data_dir,
            "webhook-secret",
            crate::secrets::webhook_secret,
        )?;
        vars.insert("CLERK_WEBHOOK_SECRET".into(), secret);
    }
    // The WebSocket API: the gateway invokes the ws function in process, and the function's
    // publisher posts back to the gateway's @connections, as in AWS.
    let local_ws =
        crate::local_ws::LocalWs::start(SocketAddr::from(([127, 0, 0, 1], args.ws_port)))
            .await
            .map_err(|_| {
                busy(
                    args.ws_port,
                    "--ws-port",
                    std::io::ErrorKind::AddrInUse.into(),
                )
            })?;
    let gateway = &local_ws.gateway;
    vars.insert("WEBSOCKET_API_ENDPOINT".into(), gateway.endpoint.clone());
    let mut dead_letters = env_var("STEPS_DLQ_URL");
    if env_var("STEPS_QUEUE_URL").is_none() {
        let queue = crate::steps::create_queue(&aws_endpoint, "alphalab-steps").await?;
        vars.insert("STEPS_QUEUE_URL".into(), queue.url);
        dead_letters = Some(queue.dlq_url);
    }
    // OpenRouter answered in process by the demo models
    let demo_models = match args.demo_models {
        true => {
            let demo = alphalab_devstack::openrouter::MockOpenRouter::start_demo(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                std::time::Duration::from_millis(args.demo_latency_ms),
            )
            .await?;
            vars.insert("OPENROUTER_BASE_URL".into(), demo.base_url.clone());
            Some(demo)
        }
        false => None,
    };
    // every variable the functions read, pointed at this stack, for `cargo lambda watch`
    let lambda_env = write_lambda_env(&data_dir, &vars, &aws_endpoint)?;
    // Lambda's timeout for the step function: the template's, or STEP_TIMEOUT_SECS
    let step_timeout = match vars.get("STEP_TIMEOUT_SECS") {
        Some(v) => Some(std::time::Duration::from_secs(
            v.parse::<u64>()
                .ok()
                .filter(|s| (1..=900).contains(s))
                .context("STEP_TIMEOUT_SECS: expected seconds between 1 and 900")?,
        )),
        None => None,
    };
    let env = Env::from_lookup(|name| vars.get(name).cloned());
    // the arena, ws, step and watchdog functions reach AWS through endpoints that allow what their
    // template policies allow, as IAM does
    let iam = alphalab_devstack::iam::endpoints(
        &crate::workspace_root().join("template.yaml"),
        &aws_endpoint,
        vars.get("STEPS_QUEUE_URL").map(String::as_str),
        dead_letters.as_deref(),
    )
    .await?;
    let as_function = |function: &str| {
        let endpoint = iam.get(function).map(|p| p.endpoint.clone());
        let vars = &vars;
        Env::from_lookup(move |name| match name {
            "AWS_ENDPOINT_URL" => endpoint.clone(),
            _ => vars.get(name).cloned(),
        })
    };
    let states = crate::api::States::from_env(&env, &as_function("ArenaFunction")).await?;
    let ws = alphalab_ws::Ws::new(&<alphalab_ws::Config as platform::FromEnv>::from_env(
        &as_function("WsFunction"),
    )?)
    .await?;
    local_ws.serve(ws);
    let pool = states.api.pool.clone();
    // the backtest-step function, fed by a local event source mapping
    let mapping = crate::steps::mapping(
        "BacktestStepFunction",
        step_timeout,
        crate::steps::VISIBILITY_SECS as i32,
    )?;
    let (_poller, worker) =
        crate::steps::start(&as_function("BacktestStepFunction"), mapping).await?;
    // the queue lived in moto's memory: every session with work left gets a step again (the
    // version protocol makes one that was not lost harmless)
    let resumed = crate::steps::resume_unfinished(&pool, &worker.queue).await?;
    if resumed > 0 {
        println!("resumed {resumed} unfinished sessions (their steps were sent again)");
    }
    // forward-tick: candles, forward sessions' steps and prices, every --tick-interval seconds
    let _tick = crate::steps::start_tick(
        &as_function("ForwardTickFunction"),
        std::time::Duration::from_secs(args.tick_interval),
    )
    .await?;
    // the step-watchdog: on a timer, and on the dead-letter queue
    let _watchdog = match &dead_letters {
        Some(dlq) => Some(
            crate::steps::start_watchdog(
                &as_function("StepWatchdogFunction"),
                std::time::Duration::from_secs(args.watchdog_interval),
                dlq,
            )
            .await?,
        ),
        None => None,
    };

    let demo = store::users::provision(&pool, DEMO_USER)
        .await?
        .context("provisioning the demo user")?;
    let profile = store::users::ProfileUpdate {
        email: Some("demo@alphalab.local".into()),
        name: Some("Demo Trader".into()),
        ..Default::default()
    };
    store::users::update_profile(&pool, demo, &profile).await?;
    if seed_demo_agent(&pool, demo).await? {
        println!("seeded the demo agent \"{DEMO_AGENT}\" (baseline/sma-cross)");
    }
    if demo_models.is_some() && seed_demo_model_agent(&pool, &env, demo).await? {
        println!(
            "seeded the demo model agent \"{DEMO_MODEL_AGENT}\" (demo/rsi-reversion) and its key"
        );
    }
    let loaded = crate::data::load_bundled(&pool).await?;
    if loaded > 0 {
        println!("loaded {loaded} bundled candles into market_data_cache");
    }

    // Every function's routes, merged, under the paths API Gateway uses, the merged OpenAPI
    // document at /api/openapi.json, and CORS as API Gateway answers it in AWS.
    let origins = vars
        .get("CORS_ALLOWED_ORIGINS")
        .cloned()
        .unwrap_or_else(|| DEFAULT_CORS_ORIGINS.into());
    let app =
        platform::http::service(crate::api::routes(states), ()).layer(crate::api::cors(&origins)?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| busy(args.port, "--port", e))?;
    let api = format!("http://{}", listener.local_addr()?);

    println!();
    println!("AlphaLab is running locally.");
    println!("  API        {api}  (CORS for {origins})");
    println!("  WebSocket  {}?token=<token>", gateway.ws_url);
    if let Some(issuer) = &issuer {
        println!("  JWKS       {}", issuer.jwks_url);
    }
    println!("  Postgres   {database_url}");
    println!("  AWS (moto) {aws_endpoint}");
    println!(
        "  Exchange   {} (forward-tick every {} s)",
        vars.get("BINANCE_BASE_URL")
            .map(String::as_str)
            .unwrap_or("https://data-api.binance.vision"),
        args.tick_interval
    );
    println!("  lambda.env {}", lambda_env.display());
    println!();
    match (&issuer, &external_clerk) {
        (Some(issuer), _) => {
            let token =
                crate::token::mint(&issuer.current_key(), args.issuer_port, DEMO_USER, 86_400)?;
            println!("Demo user {DEMO_USER}; a token valid for 24 h:");
            println!("  export TOKEN={token}");
            println!("Try:");
            println!("  curl -H \"Authorization: Bearer $TOKEN\" {api}/api/users/me");
            println!("  curl -H \"Authorization: Bearer $TOKEN\" {api}/api/agents");
            println!("  curl {api}/api/openapi.json");
            println!(
                "  websocat \"{}?token=$TOKEN\"   then type {{\"action\":\"ping\"}}",
                gateway.ws_url
            );
            println!("Run and watch a backtest of the demo agent: README, \"Run a backtest\".");
            println!("More tokens: cargo run --bin alphalab -- token [user-id]. Stop with Ctrl-C.");
        }
        (None, Some(clerk)) => {
            println!("Verifying the session tokens of the Clerk instance {clerk}.");
            println!("From your app (e.g. Next.js on http://localhost:3000), call the API with");
            println!(
                "  fetch(\"{api}/api/users/me\", {{ headers: {{ Authorization: `Bearer ${{await getToken()}}` }} }})"
            );
            println!(
                "Set CLERK_AUTHORIZED_PARTIES to your app's origin to check the tokens' azp. Stop with Ctrl-C."
            );
        }
        (None, None) => {}
    }
    println!();

    // the peer's address reaches the handlers as API Gateway's sourceIp does in AWS
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;

    println!("stopping...");
    drop(moto_child);
    if let Some(cluster) = cluster {
        cluster.stop()?;
    }
    println!("stopped");
    Ok(())
}

/// Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Fails with a helpful message when something already listens on 127.0.0.1:`port`.
fn ensure_free(port: u16, flag: &str) -> Result<()> {
    if port == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| busy(port, flag, e))
}

fn busy(port: u16, flag: &str, err: std::io::Error) -> anyhow::Error {
    if err.kind() == std::io::ErrorKind::AddrInUse {
        anyhow::anyhow!(
            "port {port} is already in use: another `alphalab serve` may be running (stop it \
             with Ctrl-C), or choose another port with {flag} <port>"
        )
    } else {
        anyhow::anyhow!("cannot listen on 127.0.0.1:{port} ({flag}): {err}")
    }
}

/// With `--demo-models`: a demo key (answered by the demo models in process) and an agent of a
/// demo model, unless the demo user has that agent already.
async fn seed_demo_model_agent(
    pool: &sqlx::PgPool,
    env: &Env<'_>,
    demo: uuid::Uuid,
) -> Result<bool> {
    let (agents, _) = store::agents::list(pool, demo, false, None, 100).await?;
    if agents.iter().any(|a| a.name == DEMO_MODEL_AGENT) {
        return Ok(false);
    }
    let key_id = crate::secrets::store_key(
        pool,
        env,
        demo,
        "demo models",
        "sk-or-v1-demo-models-0000000000000000",
    )
    .await?;
    let new: store::agents::NewAgent = serde_json::from_value(serde_json::json!({
        "name": DEMO_MODEL_AGENT, "mode": "omni", "model": "demo/rsi-reversion",
        "indicators": ["rsi_14", "sma_20"], "api_key_id": key_id,
        "strategy_prompt": "Buy when the market is oversold, take profit when it is overbought.",
    }))?;
    let fields = new
        .fields()
        .map_err(|e| anyhow::anyhow!("demo model agent: {e:?}"))?;
    store::agents::create(pool, demo, &fields, None).await?;
    Ok(true)
}

/// Creates the demo agent (`baseline/sma-cross`) unless the demo user has live agents.
async fn seed_demo_agent(pool: &sqlx::PgPool, demo: uuid::Uuid) -> Result<bool> {
    let (existing, _) = store::agents::list(pool, demo, false, None, 1).await?;
    if !existing.is_empty() {
        return Ok(false);
    }
    let new: store::agents::NewAgent = serde_json::from_value(serde_json::json!({
        "name": DEMO_AGENT, "mode": "omni", "model": "baseline/sma-cross",
    }))?;
    let fields = new
        .fields()
        .map_err(|e| anyhow::anyhow!("demo agent: {e:?}"))?;
    store::agents::create(pool, demo, &fields, None).await?;
    Ok(true)
}

/// A value as dotenv files take it (cargo-lambda's `--env-file`): bare when it holds only
/// URL-like characters, else in single quotes (literal: base64 keys end in `=`, which dotenv
/// parsers refuse unquoted). No value of ours holds a single quote.
fn env_file_value(value: &str) -> String {
    let bare = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./:,@%?&-".contains(c));
    if bare {
        value.to_owned()
    } else {
        format!("'{value}'")
    }
}

/// Writes `<data dir>/lambda.env` (0600: it holds the development secrets): every variable the
/// template gives a function, with this stack's value (or the template's own where it has one),
/// and the AWS endpoint, region and moto's dummy credentials; one `KEY=VALUE` per line, so that
/// `cargo lambda watch --env-file <data dir>/lambda.env` runs any function against this stack.
fn write_lambda_env(
    data_dir: &std::path::Path,
    vars: &HashMap<String, String>,
    aws_endpoint: &str,
) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let template =
        TemplateResources::from_template(&crate::workspace_root().join("template.yaml"))?;
    let mut lines: std::collections::BTreeMap<String, String> = template
        .variables
        .into_iter()
        .filter_map(|(name, local)| {
            let value = vars.get(&name).cloned().or(local)?;
            Some((name, value))
        })
        .collect();
    for (name, value) in [
        ("AWS_ENDPOINT_URL", aws_endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ] {
        lines.insert(name.into(), value.into());
    }
    let text: String = lines
        .iter()
        .map(|(k, v)| format!("{k}={}\n", env_file_value(v)))
        .collect();
    let path = data_dir.join("lambda.env");
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(path)
}
