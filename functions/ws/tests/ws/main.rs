//! The WebSocket function through the local gateway with a real WebSocket client: `$connect`
//! refusal, subscriptions, publishing (order, batches, pruning), bad messages, controls, and 200
//! connections at once. DynamoDB is moto; the publisher posts to the gateway's `@connections`.

mod connect;
mod publish;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alphalab_devstack::TestEnv;
use alphalab_devstack::gateway::{Handler, WsGateway};
use alphalab_ws::{Config, Ws};
use futures::{SinkExt, StreamExt};
use platform::{Env, FromEnv};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Rig {
    pub(crate) env: TestEnv,
    pub(crate) gateway: WsGateway,
    pub(crate) ws: Ws,
}

/// The gateway serving the ws function, which publishes back through the gateway.
pub(crate) async fn start() -> Rig {
    let mut env = TestEnv::new().await.expect("test environment");
    let cell: Arc<OnceLock<Ws>> = Arc::default();
    let handler_cell = cell.clone();
    let handler: Handler = Arc::new(move |event| {
        let cell = handler_cell.clone();
        Box::pin(async move {
            let ws = cell
                .get()
                .expect("the function is built before the first event")
                .clone();
            platform::lambda::ws::dispatch(&ws, &event).await
        })
    });
    let gateway = WsGateway::start(handler, ([127, 0, 0, 1], 0).into())
        .await
        .expect("gateway");
    env.set("WEBSOCKET_API_ENDPOINT", gateway.endpoint.clone());
    let config = Config::from_env(&Env::from_lookup(env.lookup())).expect("config");
    let ws = Ws::new(&config).await.expect("ws function");
    let _ = cell.set(ws.clone());
    Rig { env, gateway, ws }
}

impl Rig {
    pub(crate) async fn connect(
        &self,
        token: &str,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        tokio_tungstenite::connect_async(format!("{}?token={token}", self.gateway.ws_url))
            .await
            .map(|(client, _)| client)
    }

    pub(crate) async fn connect_as(&self, user: &str) -> Client {
        self.connect(&self.env.token(user)).await.expect("connect")
    }

    /// The user id of a Clerk id (provisioned on connect).
    pub(crate) async fn user_id(&self, clerk: &str) -> uuid::Uuid {
        let pool = sqlx::PgPool::connect(&self.env.db.url).await.unwrap();
        sqlx::query_scalar("SELECT id FROM users WHERE clerk_id = $1")
            .bind(clerk)
            .fetch_one(&pool)
            .await
            .unwrap()
    }

    /// A running session of the user.
    pub(crate) async fn session(&self, user: uuid::Uuid) -> uuid::Uuid {
        let pool = sqlx::PgPool::connect(&self.env.db.url).await.unwrap();
        sqlx::query_scalar(
            "INSERT INTO test_sessions (user_id, type, status, asset, timeframe, starting_capital, agent_snapshot, config)
             VALUES ($1, 'backtest', 'running', 'BTCUSDT', '1h', 10000, '{}', '{}') RETURNING id",
        )
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap()
    }
}

pub(crate) async fn send(client: &mut Client, message: Value) {
    client
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next text frame as JSON, or `None` within `wait`.
pub(crate) async fn frame(client: &mut Client, wait: Duration) -> Option<Value> {
    loop {
        let next = tokio::time::timeout(wait, client.next()).await.ok()??;
        if let Ok(Message::Text(text)) = next {
            return Some(serde_json::from_str(&text).expect("JSON frame"));
        }
    }
}

/// The next frame, which must come within 5 s.
pub(crate) async fn next(client: &mut Client) -> Value {
    frame(client, Duration::from_secs(5))
        .await
        .expect("a frame within 5 s")
}
