//! A local stand-in for API Gateway's WebSocket API, faithful where the code depends on it:
//!
//! - `GET /?token=...` upgrades to a WebSocket after `$connect` succeeds; a non-2xx `$connect`
//!   refuses the upgrade (401 for 401, else the handler's status), so no connection is made;
//! - each connection gets an id in API Gateway's form; the handler receives the events API Gateway
//!   sends (`requestContext` with `routeKey`, `eventType`, `connectionId`, `connectedAt`,
//!   `requestTimeEpoch`, `stage`, `domainName`, `apiId`, ...; the query string on `$connect` only);
//! - every text frame is a `$default` event (the one route the API declares besides connect and
//!   disconnect), handled in order per connection; a closed socket sends `$disconnect`;
//! - `POST /@connections/{id}` delivers its body as a text frame, `GET` describes the connection,
//!   `DELETE` closes it; an unknown id answers 410 `GoneException`, as API Gateway does, so the same
//!   `aws-sdk-apigatewaymanagement` code that publishes in AWS publishes to local sockets;
//! - a connection can be lost the way a dead client is in AWS ([`WsGateway::lose_connections`]):
//!   posts to it answer 410 and no `$disconnect` comes (API Gateway sends it best effort).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the gateway invokes: the WebSocket function's handler, in process.
pub type Handler = Arc<
    dyn Fn(ApiGatewayWebsocketProxyRequest) -> BoxFuture<'static, ApiGatewayProxyResponse>
        + Send
        + Sync,
>;

enum Outgoing {
    Text(String),
    Close,
}

struct Connection {
    sender: mpsc::UnboundedSender<Outgoing>,
    connected_at: i64,
    last_active: Arc<AtomicU64>,
    source_ip: String,
}

#[derive(Clone)]
struct Gateway {
    handler: Handler,
    connections: Arc<Mutex<HashMap<String, Connection>>>,
    /// Connections lost without a `$disconnect`.
    lost: Arc<Mutex<std::collections::HashSet<String>>>,
    domain: String,
    counter: Arc<AtomicU64>,
}

/// A running gateway.
#[derive(Clone)]
pub struct WsGateway {
    /// Where clients connect: `ws://127.0.0.1:<port>/`.
    pub ws_url: String,
    /// The `@connections` endpoint for the publisher (`WEBSOCKET_API_ENDPOINT`).
    pub endpoint: String,
    gateway: Gateway,
}

impl std::fmt::Debug for WsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsGateway")
            .field("ws_url", &self.ws_url)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl WsGateway {
    /// Serves on `addr` (port 0: any) on the current runtime.
    pub async fn start(handler: Handler, addr: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the WebSocket gateway on {addr}"))?;
        let local = listener.local_addr()?;
        let gateway = Gateway {
            handler,
            connections: Arc::default(),
            lost: Arc::default(),
            domain: local.to_string(),
            counter: Arc::default(),
        };
        let app = Router::new()
            .route("/", get(upgrade))
            .route(
                "/@connections/{id}",
                post(post_to_connection)
                    .get(get_connection)
                    .delete(delete_connection),
            )
            .with_state(gateway.clone());
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Ok(Self {
            ws_url: format!("ws://{local}/"),
            endpoint: format!("http://{local}"),
            gateway,
        })
    }

    /// Loses every open connection the way API Gateway loses a dead client's: posts to it answer
    /// 410 `GoneException` from now on, its socket is closed, and no `$disconnect` is sent.
    /// Returns how many were lost.
    pub fn lose_connections(&self) -> usize {
        let mut connections = self
            .gateway
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut lost = self.gateway.lost.lock().unwrap_or_else(|p| p.into_inner());
        let n = connections.len();
        for (id, c) in connections.drain() {
            let _ = c.sender.send(Outgoing::Close);
            lost.insert(id);
        }
        n
    }
}

impl Gateway {
    /// An id in API Gateway's form (12 random bytes, base64): unique across gateways too (the
    /// tests of one process share moto's tables).
    fn new_id(&self) -> String {
        use base64::Engine;
        let mut bytes = [0u8; 12];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            bytes[..8].copy_from_slice(&(now_ms() as u64 ^ n).to_be_bytes());
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The event API Gateway would send.
    fn event(
        &self,
        route: &str,
        event_type: &str,
        connection_id: &str,
        connected_at: i64,
        query: Option<&HashMap<String, String>>,
        body: Option<String>,
    ) -> ApiGatewayWebsocketProxyRequest {
        let mut value = json!({
            "requestContext": {
                "routeKey": route,
                "eventType": event_type,
                "messageDirection": "IN",
                "connectionId": connection_id,
                "connectedAt": connected_at,
                "requestTimeEpoch": now_ms(),
                "requestTime": chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z").to_string(),
                "requestId": format!("req-{}", self.counter.fetch_add(1, Ordering::Relaxed)),
                "extendedRequestId": format!("ext-{}", now_ms()),
                "stage": "local",
                "domainName": self.domain,
                "apiId": "local",
                "identity": { "sourceIp": "127.0.0.1" }
            },
            "isBase64Encoded": false
        });
        if let Some(query) = query {
            value["queryStringParameters"] = json!(query);
        }
        if let Some(body) = body {
            value["body"] = Value::String(body);
        }
        serde_json::from_value(value).unwrap_or_default()
    }
}

async fn upgrade(
    State(gateway): State<Gateway>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let id = gateway.new_id();
    let connected_at = now_ms();
    let connect = gateway.event("$connect", "CONNECT", &id, connected_at, Some(&query), None);
    let answer = (gateway.handler)(connect).await;
    if !(200..300).contains(&answer.status_code) {
        let status =
            StatusCode::from_u16(answer.status_code as u16).unwrap_or(StatusCode::UNAUTHORIZED);
        let body = match answer.body {
            Some(LambdaBody::Text(t)) => t,
            _ => String::new(),
        };
        return (status, body).into_response();
    }
    ws.on_upgrade(move |socket| run(gateway, socket, id, connected_at, peer))
}

async fn run(gateway: Gateway, socket: WebSocket, id: String, connected_at: i64, peer: SocketAddr) {
    let (mut sink, mut stream) = socket.split();
    let (sender, mut outgoing) = mpsc::unbounded_channel();
    let last_active = Arc::new(AtomicU64::new(now_ms() as u64));
    gateway
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            id.clone(),
            Connection {
                sender,
                connected_at,
                last_active: last_active.clone(),
                source_ip: peer.ip().to_string(),
            },
        );
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let done = match message {
                Outgoing::Text(text) => sink.send(Message::Text(text.into())).await.is_err(),
                Outgoing::Close => {
                    let _ = sink.send(Message::Close(None)).await;
                    true
                }
            };
            if done {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        last_active.store(now_ms() as u64, Ordering::Relaxed);
        match message {
            Message::Text(text) => {
                let event = gateway.event(
                    "$default",
                    "MESSAGE",
                    &id,
                    connected_at,
                    None,
                    Some(text.to_string()),
                );
                (gateway.handler)(event).await;
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    gateway
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    writer.abort();
    if gateway
        .lost
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&id)
    {
        return;
    }
    let disconnect = gateway.event("$disconnect", "DISCONNECT", &id, connected_at, None, None);
    (gateway.handler)(disconnect).await;
}

fn gone(id: &str) -> Response {
    (
        StatusCode::GONE,
        [
            ("x-amzn-errortype", "GoneException"),
            ("content-type", "application/json"),
        ],
        json!({ "message": format!("connection {id} is gone") }).to_string(),
    )
        .into_response()
}

async fn post_to_connection(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > 32 * 1024 {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [("x-amzn-errortype", "PayloadTooLargeException")],
            json!({ "message": "the message exceeds 32 KB" }).to_string(),
        )
            .into_response();
    }
    let connections = gateway
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let Some(connection) = connections.get(&id) else {
        return gone(&id);
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    if connection.sender.send(Outgoing::Text(text)).is_err() {
        return gone(&id);
    }
    StatusCode::OK.into_response()
}

async fn get_connection(State(gateway): State<Gateway>, Path(id): Path<String>) -> Response {
    let connections = gateway
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let Some(c) = connections.get(&id) else {
        return gone(&id);
    };
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.to_rfc3339())
            .unwrap_or_default()
    };
    axum::Json(json!({
        "connectedAt": iso(c.connected_at),
        "lastActiveAt": iso(c.last_active.load(Ordering::Relaxed) as i64),
        "identity": { "sourceIp": c.source_ip, "userAgent": "" }
    }))
    .into_response()
}

async fn delete_connection(State(gateway): State<Gateway>, Path(id): Path<String>) -> Response {
    let connections = gateway
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match connections.get(&id) {
        Some(c) => {
            let _ = c.sender.send(Outgoing::Close);
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(&id),
    }
}
