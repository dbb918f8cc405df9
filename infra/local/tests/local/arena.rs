//! The arena end to end: the arena function over HTTP, the backtest-step function fed by the
//! local event source mapping (moto SQS), the ws function behind the local gateway with a real
//! WebSocket client, Postgres, and local servers speaking OpenRouter's and Binance's formats.

mod chain;
mod evidence;
mod faults;
mod flows;
mod forward;
mod llm;
mod lookahead;
mod results;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::collections::HashMap;

use alphalab_devstack::gateway::{Handler, WsGateway};
use alphalab_devstack::iam::IamProxy;
use alphalab_devstack::openrouter::MockOpenRouter;
use alphalab_devstack::sqs::{Mapping, Poller};
use alphalab_devstack::{TestEnv, TestServer};
use futures::{SinkExt, StreamExt};
use platform::{Env, FromEnv};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

pub(crate) type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The step function's timeout in these tests unless one sets `STEP_TIMEOUT_SECS` (120 s in
/// AWS), and the queue's visibility timeout (at least the timeout, as Lambda requires; 720 s in
/// AWS): short, so that a killed or abandoned step is redelivered soon.
pub(crate) const TIMEOUT_SECS: u64 = 10;

pub(crate) struct Arena {
    pub(crate) env: TestEnv,
    pub(crate) server: TestServer,
    pub(crate) gateway: WsGateway,
    pub(crate) worker: step_worker::Worker,
    pub(crate) openrouter: MockOpenRouter,
    pub(crate) pool: PgPool,
    pub(crate) keys: adapters::crypto::Keyring,
    pub(crate) binance: alphalab_devstack::binance::MockBinance,
    /// forward-tick, run by the test ([`Arena::tick`]) as its schedule would.
    pub(crate) ticker: step_worker::Ticker,
    /// The event source mapping: the template's batch size and concurrency, the function's
    /// timeout of [`mapping`], and a visibility timeout as long (a test may lengthen it).
    pub(crate) mapping: Mapping,
    poller: Option<Poller>,
    watchdog: Option<(tokio::task::JoinHandle<()>, Poller)>,
    /// Each function's AWS endpoint: what its template policies allow, every call recorded.
    pub(crate) iam: HashMap<&'static str, IamProxy>,
    /// This test holds [`TICKS`] (see [`Arena::own_the_ticks`]).
    owns_ticks: std::sync::atomic::AtomicBool,
}

/// Ticks of the tests of this process, one at a time while a test owns them.
static TICKS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Arena {
    /// Everything but the poller (see [`Arena::run_steps`]), with extra variables `vars`.
    pub(crate) async fn start(vars: &[(&str, &str)]) -> Self {
        Self::start_on(TestEnv::new().await.expect("test environment"), vars).await
    }

    /// [`Arena::start`] over the environment `env` (a database of the test's own).
    pub(crate) async fn start_on(env: TestEnv, vars: &[(&str, &str)]) -> Self {
        let binance = alphalab_devstack::binance::MockBinance::start()
            .await
            .unwrap();
        Self::start_with(env, vars, binance).await
    }

    /// [`Arena::start`] with `binance` as the exchange (a recorded market, for forward tests).
    pub(crate) async fn start_with(
        mut env: TestEnv,
        vars: &[(&str, &str)],
        binance: alphalab_devstack::binance::MockBinance,
    ) -> Self {
        let openrouter = MockOpenRouter::start().await.unwrap();
        let keys_text = adapters::crypto::Keyring::generate_text();
        env.set("ENCRYPTION_KEYS", keys_text.clone())
            .set("OPENROUTER_BASE_URL", openrouter.base_url.clone())
            .set("OPENROUTER_CHAT_TIMEOUT_SECS", "2")
            .set("BINANCE_BASE_URL", binance.base_url.clone())
            // the tests poll sessions often; the rate limit has its own tests
            .set("RATE_LIMIT_PER_MINUTE", "0");
        for (name, value) in vars {
            env.set(name, *value);
        }
        let cell: Arc<OnceLock<alphalab_ws::Ws>> = Arc::default();
        let handler_cell = cell.clone();
        let handler: Handler = Arc::new(move |event| {
            let cell = handler_cell.clone();
            Box::pin(async move {
                let ws = cell.get().expect("built before the first event").clone();
                platform::lambda::ws::dispatch(&ws, &event).await
            })
        });
        let gateway = WsGateway::start(handler, ([127, 0, 0, 1], 0).into())
            .await
            .expect("gateway");
        env.set("WEBSOCKET_API_ENDPOINT", gateway.endpoint.clone());
        // each function reaches AWS through its own endpoint, allowed what template.yaml allows
        let iam = iam_proxies(&env).await;
        let as_function = |function: &str| {
            let vars = env.owned_lookup();
            let endpoint = iam[function].endpoint.clone();
            Env::from_lookup(move |name| match name {
                "AWS_ENDPOINT_URL" => Some(endpoint.clone()),
                _ => vars(name),
            })
        };
        let ws = alphalab_ws::Ws::new(
            &alphalab_ws::Config::from_env(&as_function("WsFunction")).unwrap(),
        )
        .await
        .unwrap();
        let _ = cell.set(ws);
        let state = alphalab_arena::State::new(
            &alphalab_arena::Config::from_env(&as_function("ArenaFunction")).unwrap(),
        )
        .await
        .unwrap();
        // the functions that read what the arena writes, behind the same server
        let api = state.api.clone();
        let certificates = alphalab_certificates::State::with(
            api.clone(),
            &alphalab_certificates::Config::from_env(&Env::from_lookup(env.lookup())).unwrap(),
        );
        let routes = alphalab_arena::routes(state)
            .merge(alphalab_results::routes(api.clone()))
            .merge(alphalab_dashboard::routes(api.clone()))
            .merge(alphalab_data::routes(api.clone()))
            .merge(alphalab_export::routes(api.clone()))
            .merge(alphalab_notifications::routes(api))
            .merge(alphalab_certificates::routes(certificates));
        let server = TestServer::serve(platform::http::service(routes, ()))
            .await
            .unwrap();
        let worker = alphalab_backtest_step::worker(
            &alphalab_backtest_step::Config::from_env(&as_function("BacktestStepFunction"))
                .unwrap(),
        )
        .await
        .unwrap();
        let ticker = alphalab_forward_tick::ticker(
            &alphalab_forward_tick::Config::from_env(&as_function("ForwardTickFunction")).unwrap(),
        )
        .await
        .unwrap();
        let pool = PgPool::connect(&env.db.url).await.unwrap();
        let keys = adapters::crypto::Keyring::parse(&keys_text).unwrap();
        Self {
            ticker,
            env,
            server,
            gateway,
            worker,
            openrouter,
            pool,
            keys,
            binance,
            mapping: mapping(vars),
            poller: None,
            watchdog: None,
            iam,
            owns_ticks: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// An SQS client calling as `function` (through its IAM endpoint).
    async fn sqs_as(&self, function: &str) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(
            &alphalab_devstack::moto::sdk_config(&self.iam[function].endpoint).await,
        )
    }

    async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(
            &alphalab_devstack::moto::sdk_config(alphalab_devstack::moto::test_endpoint().unwrap())
                .await,
        )
    }

    /// Messages in this arena's steps queue (visible or in flight).
    pub(crate) async fn queue_depth(&self) -> usize {
        alphalab_devstack::sqs::depth(&self.sqs().await, &self.env.steps.url)
            .await
            .unwrap()
    }

    /// Deletes every message of this arena's steps queue: a step lost altogether.
    pub(crate) async fn purge_steps(&self) {
        self.sqs()
            .await
            .purge_queue()
            .queue_url(&self.env.steps.url)
            .send()
            .await
            .unwrap();
    }

    /// Starts the event source mapping: steps run from now on.
    pub(crate) async fn run_steps(&mut self) {
        self.run_steps_delivering(1).await
    }

    /// Starts the event source mapping, each batch handed to the function `times` times (a
    /// duplicate delivery right after the first).
    pub(crate) async fn run_steps_delivering(&mut self, times: usize) {
        // Lambda polls with the function's role
        let sqs = self.sqs_as("BacktestStepFunction").await;
        let worker = self.worker.clone();
        let invoke: alphalab_devstack::sqs::Invoke = Arc::new(move |event, deadline| {
            let worker = worker.clone();
            Box::pin(async move {
                let mut response = Default::default();
                for _ in 0..times {
                    response =
                        alphalab_backtest_step::handle(&worker, event.clone(), deadline).await;
                }
                response
            })
        });
        self.poller = Some(
            Poller::start(sqs, self.env.steps.url.clone(), self.mapping, invoke)
                .expect("the event source mapping"),
        );
    }

    /// Stops the event source mapping: invocations in flight die with it.
    pub(crate) fn stop_steps(&mut self) {
        self.poller = None;
    }

    pub(crate) fn poller(&self) -> &Poller {
        self.poller.as_ref().expect("run_steps first")
    }

    /// Starts the step-watchdog: its run every `interval`, and the dead-letter queue's mapping.
    pub(crate) async fn run_watchdog(&mut self, interval: Duration) {
        let vars = self.env.owned_lookup();
        let endpoint = self.iam["StepWatchdogFunction"].endpoint.clone();
        let e = Env::from_lookup(move |name| match name {
            "AWS_ENDPOINT_URL" => Some(endpoint.clone()),
            _ => vars(name),
        });
        let config = alphalab_step_watchdog::Config::from_env(&e).unwrap();
        let watchdog = alphalab_step_watchdog::watchdog(&config).await.unwrap();
        let ticking = watchdog.clone();
        let ticks = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let _ = ticking.tick().await;
            }
        });
        let dead: alphalab_devstack::sqs::Invoke = Arc::new(move |event, _| {
            let watchdog = watchdog.clone();
            Box::pin(async move { alphalab_step_watchdog::dead_letters(&watchdog, event).await })
        });
        let poller = Poller::start(
            self.sqs_as("StepWatchdogFunction").await,
            self.env.steps.dlq_url.clone(),
            Mapping {
                visibility_secs: 60,
                timeout: Duration::from_secs(60),
                max_concurrency: 2,
                batch_size: 1,
            },
            dead,
        )
        .expect("the dead letters' event source mapping");
        self.watchdog = Some((ticks, poller));
    }

    /// One run of forward-tick, its requests ending within `within`.
    pub(crate) async fn tick_within(&self, within: Duration) -> step_worker::TickReport {
        // the tests of one process share moto's tables: a tick publishes prices to every price
        // subscriber of the subscriptions table, through this arena's gateway, which answers 410
        // for another test's connection, which the publisher then prunes. Ticks wait while a
        // test that subscribes to prices owns them (see `Arena::own_the_ticks`).
        let _turn = match self.owns_ticks.load(std::sync::atomic::Ordering::SeqCst) {
            true => None,
            false => Some(TICKS.lock().await),
        };
        self.ticker
            .tick(tokio::time::Instant::now() + within)
            .await
            .expect("a tick")
    }

    /// Keeps every other test's ticks waiting until the guard is dropped: for a test whose
    /// connection subscribes to prices (the only topic a tick publishes to every subscriber).
    pub(crate) async fn own_the_ticks(&self) -> tokio::sync::MutexGuard<'static, ()> {
        let guard = TICKS.lock().await;
        self.owns_ticks
            .store(true, std::sync::atomic::Ordering::SeqCst);
        guard
    }

    /// One run of forward-tick, as the schedule runs it (the template's 50 s less the reserve).
    pub(crate) async fn tick(&self) -> step_worker::TickReport {
        self.tick_within(Duration::from_secs(47)).await
    }

    /// A user's token and id (provisioned).
    pub(crate) async fn user(&self, clerk: &str) -> (String, Uuid) {
        let id = store::users::provision(&self.pool, clerk)
            .await
            .unwrap()
            .unwrap();
        (self.env.token(clerk), id)
    }

    /// An agent of `user` with `model` (a baseline, or an OpenRouter model id).
    pub(crate) async fn agent(&self, user: Uuid, model: &str, api_key_id: Option<Uuid>) -> Uuid {
        let new: store::agents::NewAgent = serde_json::from_value(json!({
            "name": format!("agent {}", Uuid::new_v4()), "mode": "omni", "model": model,
            "strategy_prompt": "Trend following: buy strength, sell weakness.",
            "indicators": ["rsi_14", "sma_20"],
            "api_key_id": api_key_id,
        }))
        .unwrap();
        let mut fields = new.fields().unwrap();
        if let Some(kind) = engine::baseline::Kind::from_model(model) {
            fields.indicators = kind
                .required_indicators()
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        store::agents::create(&self.pool, user, &fields, None)
            .await
            .unwrap()
            .id
    }

    /// An OpenRouter key of `user` (stored encrypted, as the api-keys function does).
    pub(crate) async fn key(&self, user: Uuid, plaintext: &str) -> Uuid {
        let id = Uuid::new_v4();
        let sealed = self.keys.seal(user, id, plaintext).unwrap();
        store::api_keys::insert(
            &self.pool,
            user,
            &store::api_keys::NewKey {
                id,
                name: "main",
                masked_key: &store::api_keys::mask(plaintext),
                encrypted_key: &sealed.bytes,
                key_version: sealed.version,
            },
        )
        .await
        .unwrap();
        id
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, answer) = self
            .server
            .call(method.clone(), path, Some(token), body.clone())
            .await
            .unwrap();
        if status != 401 {
            return (status, answer);
        }
        // a session token lives 60 s, as Clerk's: a long test goes on with a fresh one
        let fresh = self.env.token(&subject(token));
        self.server
            .call(method, path, Some(&fresh), body)
            .await
            .unwrap()
    }

    pub(crate) async fn start_backtest(&self, token: &str, body: Value) -> Uuid {
        let (status, answer) = self
            .call(Method::POST, "/api/arena/backtest/start", token, Some(body))
            .await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["subscribe"]["action"], "subscribe");
        answer["session"]["id"].as_str().unwrap().parse().unwrap()
    }

    /// `POST /api/arena/backtest/{id}/<action>` (pause, resume, stop, speed): status and body.
    pub(crate) async fn control(
        &self,
        token: &str,
        id: Uuid,
        action: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = format!("/api/arena/backtest/{id}/{action}");
        self.call(Method::POST, &path, token, body).await
    }

    pub(crate) async fn session(&self, token: &str, id: Uuid) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/api/arena/sessions/{id}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["session"].clone()
    }

    /// Starts a backtest of `body` and waits (up to 2 minutes) until it is `completed`: the
    /// finished session.
    pub(crate) async fn complete_backtest(&self, token: &str, body: Value) -> Value {
        let id = self.start_backtest(token, body).await;
        self.wait_for(token, id, &["completed"], Duration::from_secs(120))
            .await
    }

    /// Waits until the session's status is one of `statuses` (and it is over when terminal).
    pub(crate) async fn wait_for(
        &self,
        token: &str,
        id: Uuid,
        statuses: &[&str],
        within: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let session = self.session(token, id).await;
            let status = session["status"].as_str().unwrap_or_default().to_owned();
            let terminal = matches!(status.as_str(), "completed" | "failed")
                || (status == "stopped" && !session["completed_at"].is_null());
            if statuses.contains(&status.as_str())
                && (terminal || !matches!(status.as_str(), "completed" | "failed" | "stopped"))
            {
                return session;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "session still {status} (wanted {statuses:?}): {session}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A WebSocket client subscribed to the session.
    pub(crate) async fn watch(&self, token: &str, id: Uuid) -> Client {
        let (mut client, _) =
            tokio_tungstenite::connect_async(format!("{}?token={token}", self.gateway.ws_url))
                .await
                .expect("connect");
        send(
            &mut client,
            json!({"action": "subscribe", "session_id": id}),
        )
        .await;
        let answer = next_frame(&mut client, Duration::from_secs(5))
            .await
            .expect("subscribed");
        assert_eq!(answer["event"], "subscribed", "{answer}");
        client
    }

    /// `clerk`'s token, id and a `model` baseline agent, over the bundled BTCUSDT 1h candles of
    /// the days `[start, end)` (`YYYY-MM-DD`), cached; the candles.
    pub(crate) async fn baseline(
        &self,
        clerk: &str,
        model: &str,
        start: &str,
        end: &str,
    ) -> (String, Uuid, Uuid, Vec<engine::Candle>) {
        let candles = self
            .load(
                "BTCUSDT",
                "1h",
                &format!("{start}T00:00:00Z"),
                &format!("{end}T00:00:00Z"),
            )
            .await;
        let (token, user) = self.user(clerk).await;
        let agent = self.agent(user, model, None).await;
        (token, user, agent, candles)
    }

    /// Asserts the finished `session` equals the uninterrupted run of `model` (a pure function
    /// of a candle's prompt) one call at a time over `candles` ([`reference`]): its metrics, its
    /// stored equity curve and its trades.
    pub(crate) async fn assert_reference(
        &self,
        session: &Value,
        candles: &[engine::Candle],
        model: impl Fn(&str) -> String,
    ) {
        let id: Uuid = session["id"].as_str().unwrap().parse().unwrap();
        let config: engine::EngineConfig =
            serde_json::from_value(session["config"]["engine"].clone()).unwrap();
        let (trades, metrics) = reference(config, candles, model);
        assert_eq!(
            session["result"]["metrics"],
            store::steps::metrics_json(&metrics),
            "same metrics as one call at a time, uninterrupted"
        );
        let curve: Value =
            sqlx::query_scalar("SELECT equity_curve FROM test_results WHERE session_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        assert_eq!(curve, serde_json::to_value(&metrics.equity_curve).unwrap());
        let stored: Vec<(i32, String, f64, f64, f64, String)> = sqlx::query_as(
            "SELECT trade_no, side, entry_price, exit_price, pnl, exit_type FROM trades
             WHERE session_id = $1 ORDER BY trade_no",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let expected: Vec<(i32, String, f64, f64, f64, String)> = trades
            .iter()
            .map(|t| {
                (
                    t.trade_no as i32,
                    t.side.as_str().to_owned(),
                    t.entry_price,
                    t.exit_price,
                    t.pnl,
                    t.exit_type.as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(stored, expected, "same trades");
    }

    /// Bundled candles of `asset`/`timeframe` with open times in `[start, end)` (RFC 3339),
    /// cached and returned.
    pub(crate) async fn load(
        &self,
        asset: &str,
        timeframe: &str,
        start: &str,
        end: &str,
    ) -> Vec<engine::Candle> {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../data/market/{asset}-{timeframe}.csv"));
        let all = engine::parse_csv(&std::fs::read_to_string(file).unwrap()).unwrap();
        let (from, to) = (ms(start), ms(end));
        let candles: Vec<engine::Candle> = all
            .into_iter()
            .filter(|c| c.time >= from && c.time < to)
            .collect();
        let rows: Vec<store::market_data::CandleRow> = candles
            .iter()
            .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
            .collect();
        store::market_data::insert(&self.pool, asset, timeframe, "binance", &rows)
            .await
            .unwrap();
        candles
    }
}

/// The steps' event source mapping of template.yaml: one record per invocation and the
/// template's concurrency, with the function's timeout of these tests (`STEP_TIMEOUT_SECS` in
/// `vars`, as `alphalab serve` reads it; else [`TIMEOUT_SECS`]).
fn mapping(vars: &[(&str, &str)]) -> Mapping {
    let template = alphalab_devstack::aws::TemplateResources::from_template(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
    )
    .unwrap();
    let spec = template
        .mappings
        .iter()
        .find(|m| m.function == "BacktestStepFunction")
        .expect("the steps' event source")
        .clone();
    let timeout = vars
        .iter()
        .find(|(k, _)| *k == "STEP_TIMEOUT_SECS")
        .map_or(TIMEOUT_SECS, |(_, v)| v.parse().unwrap());
    Mapping {
        visibility_secs: timeout as i32,
        timeout: Duration::from_secs(timeout),
        max_concurrency: spec.max_concurrency,
        batch_size: spec.batch_size,
    }
}

/// The IAM endpoints of the functions the arena tests run, over moto.
async fn iam_proxies(env: &TestEnv) -> HashMap<&'static str, IamProxy> {
    alphalab_devstack::iam::endpoints(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        alphalab_devstack::moto::test_endpoint().unwrap(),
        Some(&env.steps.url),
        Some(&env.steps.dlq_url),
    )
    .await
    .expect("the IAM endpoints")
}

impl Drop for Arena {
    fn drop(&mut self) {
        if let Some((ticks, _)) = &self.watchdog {
            ticks.abort();
        }
        // every call of every function was one its template policies allow
        if !std::thread::panicking() {
            for (function, proxy) in &self.iam {
                let denied = proxy.denied();
                assert!(denied.is_empty(), "{function} was denied {denied:?}");
            }
        }
    }
}

/// The `sub` of a token (its payload is not checked here: the API checks it).
fn subject(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes).unwrap_or_default()["sub"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A queue URL on moto where no queue is: a send to it fails (and is denied by the template's
/// policies, as in AWS).
pub(crate) fn missing_queue() -> String {
    format!(
        "{}/123456789012/no-such-queue.fifo",
        alphalab_devstack::moto::test_endpoint().unwrap()
    )
}

pub(crate) fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

pub(crate) async fn send(client: &mut Client, message: Value) {
    client
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next text frame as JSON, or `None` within `wait`.
pub(crate) async fn next_frame(client: &mut Client, wait: Duration) -> Option<Value> {
    loop {
        let next = tokio::time::timeout(wait, client.next()).await.ok()??;
        if let Ok(Message::Text(text)) = next {
            return Some(serde_json::from_str(&text).expect("JSON frame"));
        }
    }
}

/// What a watcher received: every session event in arrival order (batches opened), and the
/// number of frames.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub(crate) events: Vec<Value>,
    pub(crate) frames: usize,
    pub(crate) bytes: usize,
}

impl Watched {
    pub(crate) fn named(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    /// Asserts the seq numbers are 1, 2, 3, ... in arrival order.
    pub(crate) fn assert_gapless(&self) {
        let seqs: Vec<u64> = self
            .events
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "seq in order, without gaps");
    }
}

/// Reads frames until `session_completed` or `session_failed` (or `within` passes).
pub(crate) async fn watch_until_end(client: &mut Client, within: Duration) -> Watched {
    let deadline = tokio::time::Instant::now() + within;
    let mut watched = Watched::default();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = next_frame(client, left).await else {
            panic!(
                "no end within {within:?}; last events: {:?}",
                watched.events.iter().rev().take(3).collect::<Vec<_>>()
            );
        };
        watched.frames += 1;
        watched.bytes += frame.to_string().len();
        let events = if frame["event"] == "batch" {
            frame["data"]["events"].as_array().unwrap().clone()
        } else {
            vec![frame]
        };
        let mut ended = false;
        for event in events {
            if event["seq"].is_null() {
                continue;
            }
            ended |= event["event"] == "session_completed" || event["event"] == "session_failed";
            watched.events.push(event);
        }
        if ended {
            return watched;
        }
    }
}

/// `alphalab backtest` on `candles`: its printed metrics.
pub(crate) fn cli_metrics(candles: &[engine::Candle], asset: &str) -> Value {
    let dir = std::env::temp_dir().join(format!("alphalab-arena-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{asset}-cli.csv"));
    let mut text = String::from("time,open,high,low,close,volume\n");
    for c in candles {
        text.push_str(&format!(
            "{},{},{},{},{},{}\n",
            c.time, c.open, c.high, c.low, c.close, c.volume
        ));
    }
    std::fs::write(&path, text).unwrap();
    let out = crate::succeed(
        &[
            "backtest",
            "--csv",
            path.to_str().unwrap(),
            "--agent",
            "baseline/sma-cross",
        ],
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str::<Value>(&out).unwrap()["metrics"].clone()
}

/// The session an uninterrupted run of one call at a time produces, computed offline: the engine
/// driven with the decisions `model` gives each candle's prompt (a pure function of it).
pub(crate) fn reference(
    config: engine::EngineConfig,
    candles: &[engine::Candle],
    model: impl Fn(&str) -> String,
) -> (Vec<engine::Trade>, engine::Metrics) {
    let mut engine = engine::Engine::new(config).unwrap();
    let mut trades = Vec::new();
    for c in candles {
        let ctx = engine.observe(*c).unwrap();
        let decision = engine::decision::parse(&model(&engine::prompt::candle_prompt(&ctx)));
        trades.extend(engine.apply(&decision).unwrap().closed);
    }
    let (last, metrics) = engine.finish().unwrap();
    trades.extend(last);
    (trades, metrics)
}
