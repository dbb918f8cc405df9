//! `alphalab watch <session>`: a session's live events on the terminal, one JSON line each
//! (`batch` frames unpacked), through the WebSocket API, the way a frontend receives them. It
//! prints where the session stands when it subscribes (`subscribed`), then every later event in
//! `seq` order, and exits when the session is over.

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub(crate) struct WatchArgs {
    /// The session's id.
    session: uuid::Uuid,
    /// The WebSocket API (`alphalab serve` prints it).
    #[arg(long, default_value = "ws://127.0.0.1:8081/")]
    ws_url: String,
    /// A session token (`alphalab serve` prints one; `alphalab token` mints more).
    #[arg(long, env = "TOKEN", hide_env_values = true)]
    token: String,
}

/// Whether `event` ends the session's stream.
fn ends(event: &Value) -> bool {
    matches!(
        event["event"].as_str(),
        Some("session_completed" | "session_failed")
    )
}

pub(crate) async fn run(args: WatchArgs) -> Result<()> {
    let url = format!("{}?token={}", args.ws_url, args.token);
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("connecting to {}", args.ws_url))?;
    socket
        .send(Message::Text(
            json!({"action": "subscribe", "session_id": args.session})
                .to_string()
                .into(),
        ))
        .await?;
    let mut last_seq = 0;
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text)?;
        match frame["event"].as_str() {
            Some("subscribed") => {
                println!("{frame}");
                let standing = &frame["data"]["session"];
                last_seq = standing["last_seq"].as_u64().unwrap_or(0);
                if standing["finished"] == true {
                    return Ok(());
                }
                continue;
            }
            Some("error") => bail!("{}", frame["data"]["message"]),
            _ => {}
        }
        let events = match frame["event"].as_str() {
            Some("batch") => frame["data"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            _ => vec![frame],
        };
        for event in events {
            // what the subscription's standing already says is not printed again
            if event["seq"].as_u64().is_some_and(|s| s <= last_seq) {
                continue;
            }
            println!("{event}");
            if ends(&event) {
                return Ok(());
            }
        }
    }
    bail!("the connection closed before the session ended")
}
