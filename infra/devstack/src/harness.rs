//! The per-test environment and an HTTP driver for routers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use crate::issuer::TokenIssuer;
use crate::pg::TestDatabase;

/// Everything one test needs: a fresh migrated database, the shared token issuer, and the
/// environment variables that configure a function to use them (read through
/// `Config::from_lookup`, exactly as Lambda reads the process environment).
#[derive(Debug)]
pub struct TestEnv {
    pub db: TestDatabase,
    pub issuer: &'static TokenIssuer,
    vars: HashMap<String, String>,
    /// This environment's steps queue (`STEPS_QUEUE_URL`) and its dead-letter queue.
    pub steps: crate::sqs::StepsQueue,
}

/// 16 random hex characters.
fn uuid_like() -> String {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestEnv {
    /// Starts (once per process) Postgres, moto (with the template's tables and queues) and the
    /// issuer, and clones a fresh database.
    pub async fn new() -> Result<Self> {
        Self::on(TestDatabase::create().await?).await
    }

    /// The environment over a migrated database of the caller's (a cluster of its own, say, that
    /// a test stops and starts).
    pub async fn on(db: TestDatabase) -> Result<Self> {
        let issuer = TokenIssuer::shared()?;
        let mut vars: HashMap<String, String> = issuer.env().into_iter().collect();
        vars.insert("DATABASE_URL".into(), db.url.clone());
        vars.insert(
            "AWS_ENDPOINT_URL".into(),
            crate::moto::test_endpoint()?.into(),
        );
        // a few connections: tests send concurrent requests to one in-process function
        vars.insert("DATABASE_MAX_CONNECTIONS".into(), "4".into());
        // a steps queue of its own: a poller of one test never takes another test's steps
        let sqs =
            aws_sdk_sqs::Client::new(&crate::moto::sdk_config(crate::moto::test_endpoint()?).await);
        let name = format!("steps-{}", uuid_like());
        // with the template's visibility and maxReceiveCount (the drift test checks the local
        // stack's queues against the template)
        let template = crate::aws::TemplateResources::from_template(&crate::moto::template_path())?;
        let spec = template
            .queue("StepsQueue")
            .context("template.yaml's StepsQueue")?;
        let visibility = spec.visibility_timeout.context("StepsQueue's visibility")?;
        let max_receive = spec.redrive.as_ref().context("StepsQueue's redrive")?.1;
        let steps = crate::sqs::create_steps_queue(
            &sqs,
            &name,
            u32::try_from(visibility)?,
            u32::try_from(max_receive)?,
        )
        .await?;
        vars.insert("STEPS_QUEUE_URL".into(), steps.url.clone());
        vars.insert("LOG_FORMAT".into(), "pretty".into());
        // the ledgers' signing key, as `alphalab serve` makes one: a development secret
        let mut seed = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut seed);
        vars.insert(
            "LEDGER_SIGNING_KEY".into(),
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, seed),
        );
        Ok(Self {
            db,
            issuer,
            vars,
            steps,
        })
    }

    /// Sets or replaces one variable (for example another issuer's `CLERK_*`).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Looks a variable up, for `Config::from_lookup`.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.vars.get(name).cloned()
    }

    /// [`TestEnv::lookup`] over a copy of the variables as they are now.
    pub fn owned_lookup(&self) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
        let vars = self.vars.clone();
        move |name| vars.get(name).cloned()
    }

    /// A valid token for `sub` from the shared issuer.
    pub fn token(&self, sub: &str) -> String {
        self.issuer.token(sub).expect("minting a token")
    }
}

/// A router served on 127.0.0.1 for the duration of a test, and a client to talk to it.
#[derive(Debug)]
pub struct TestServer {
    pub base_url: String,
    pub client: reqwest::Client,
}

impl TestServer {
    /// Serves `router` on a free port of 127.0.0.1 on the current runtime.
    pub async fn serve(router: axum::Router) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the test server")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
        Ok(Self {
            base_url,
            client: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request builder for `method` on `path`, with `token` as bearer when given.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// Sends a request and returns its status and JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await?).await
    }
}

/// Status and JSON body of a response (`Null` for an empty body).
pub async fn read(response: reqwest::Response) -> Result<(u16, serde_json::Value)> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "response {status} is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        })?
    };
    Ok((status, body))
}

/// A function's router served on 127.0.0.1 over a fresh database: what every function's
/// integration tests start from. `build` configures the function from the environment's
/// variables exactly as Lambda would (`Env::from_lookup(env.lookup())`) and returns its router.
#[derive(Debug)]
pub struct TestApp {
    pub env: TestEnv,
    pub server: TestServer,
    /// A pool on the test's database, for assertions on rows.
    pub pool: sqlx::PgPool,
}

impl TestApp {
    /// A fresh environment, then [`TestApp::start_with`].
    pub async fn start(build: impl FnOnce(&TestEnv) -> Result<axum::Router>) -> Result<Self> {
        Self::start_with(TestEnv::new().await?, build).await
    }

    /// Serves the router `build` makes from `env`.
    pub async fn start_with(
        env: TestEnv,
        build: impl FnOnce(&TestEnv) -> Result<axum::Router>,
    ) -> Result<Self> {
        let router = build(&env)?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy(&env.db.url)?;
        let server = TestServer::serve(router).await?;
        Ok(Self { env, server, pool })
    }

    pub fn token(&self, sub: &str) -> String {
        self.env.token(sub)
    }

    /// GET `path`, with `token` as bearer when given: status and JSON body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.server
            .call(reqwest::Method::GET, path, token, None)
            .await
            .expect("request")
    }

    /// `method` on `path` with a JSON body: status and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.server
            .call(method, path, token, Some(body))
            .await
            .expect("request")
    }

    /// A `SELECT count(*) ...` on the test's database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// Asserts the JSON error body of DESIGN section 7 with `code`.
pub fn assert_error(body: &serde_json::Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    assert!(body["error"].get("details").is_some(), "body: {body}");
}

/// Log lines captured in memory: a `tracing_subscriber` writer the tests install as the global
/// subscriber's destination, then read back.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
