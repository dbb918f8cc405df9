//! What the arena benchmarks run on: their own Postgres and moto (a test environment), the
//! local WebSocket API, the arena function served over HTTP, and the bundled candles.

use anyhow::{Result, bail};
use platform::{Env, FromEnv};

pub(crate) struct BenchStack {
    pub(crate) env: alphalab_devstack::TestEnv,
    pub(crate) local: crate::local_ws::LocalWs,
    /// The functions' variables (the test environment's, the gateway's, `vars`).
    pub(crate) vars: Env<'static>,
    pub(crate) server: alphalab_devstack::TestServer,
    pub(crate) pool: sqlx::PgPool,
}

impl BenchStack {
    pub(crate) async fn start(vars: &[(&str, &str)]) -> Result<Self> {
        let mut env = alphalab_devstack::TestEnv::new().await?;
        let local = crate::local_ws::LocalWs::start(([127, 0, 0, 1], 0).into()).await?;
        env.set("WEBSOCKET_API_ENDPOINT", local.gateway.endpoint.clone())
            .set(
                "ENCRYPTION_KEYS",
                adapters::crypto::Keyring::generate_text(),
            )
            .set("LOG_FORMAT", "json");
        for (name, value) in vars {
            env.set(name, *value);
        }
        let vars = Env::from_lookup(env.owned_lookup());
        let arena = alphalab_arena::State::new(&alphalab_arena::Config::from_env(&vars)?).await?;
        let server = alphalab_devstack::TestServer::serve(alphalab_arena::router(arena)).await?;
        let pool = sqlx::PgPool::connect(&env.db.url).await?;
        Ok(Self {
            env,
            local,
            vars,
            server,
            pool,
        })
    }

    /// The bundled BTCUSDT 1h candles `keep` selects, cached beforehand with their gaps (a
    /// user's first run of a range pays the fetch once).
    pub(crate) async fn btc_hours(
        &self,
        keep: impl FnOnce(Vec<engine::Candle>) -> Vec<engine::Candle>,
    ) -> Result<Vec<engine::Candle>> {
        let file = crate::workspace_root().join("data/market/BTCUSDT-1h.csv");
        let candles = keep(engine::parse_csv(&std::fs::read_to_string(&file)?)?);
        if candles.is_empty() {
            bail!("no bundled candles selected");
        }
        let rows: Vec<store::market_data::CandleRow> = candles
            .iter()
            .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
            .collect();
        store::market_data::insert_span(&self.pool, "BTCUSDT", "1h", 3_600_000, &rows).await?;
        Ok(candles)
    }

    /// The user `clerk` (provisioned), with a token, and an agent of theirs from `agent` (the
    /// agents API's body).
    pub(crate) async fn agent(
        &self,
        clerk: &str,
        agent: serde_json::Value,
    ) -> Result<(String, uuid::Uuid, uuid::Uuid)> {
        let user = store::users::provision(&self.pool, clerk)
            .await?
            .ok_or_else(|| anyhow::anyhow!("provisioning {clerk}"))?;
        let new: store::agents::NewAgent = serde_json::from_value(agent)?;
        let fields = new.fields().map_err(|e| anyhow::anyhow!("agent: {e:?}"))?;
        let agent = store::agents::create(&self.pool, user, &fields, None)
            .await?
            .id;
        Ok((self.env.token(clerk), user, agent))
    }
}
