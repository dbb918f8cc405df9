//! `alphalab verify-ledger <file|result url> [--public-key <base64>]`: checks a result's signed
//! ledger without trusting the server: every line's `prev`, the seal's `head` and Ed25519
//! signature, then a replay of the engine over the ledger's candles and decisions (no model call,
//! no database) that must give every metric in the seal and the evidence figures bit for bit.
//! Prints `OK` and the metrics, or `line <n>: <why>` for the first failing line (exit 1).

use std::io::Read;

use anyhow::{Context, Result, bail};
use serde_json::Value;

#[derive(clap::Args)]
pub(crate) struct VerifyLedgerArgs {
    /// A ledger file (`-` for stdin), or a result's URL (`.../api/results/<id>` or its
    /// `/ledger`): every page is fetched with `--token`.
    source: String,
    /// The signing key (base64 of its 32 bytes). For a URL, the server's `/api/ledger/keys`
    /// entry for the seal's `key_id` is used when absent; a file needs it.
    #[arg(long)]
    public_key: Option<String>,
    /// A session token for a result URL (`alphalab serve` prints one).
    #[arg(long, env = "TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The seal's `key_id`, read from the last line (before anything is verified).
fn key_id(text: &str) -> Option<String> {
    let last = text.trim_end_matches('\n').rsplit('\n').next()?;
    let value: Value = serde_json::from_str(last).ok()?;
    value["seal"]["key_id"].as_str().map(str::to_owned)
}

/// Every page of a result's ledger, and the origin of `url`.
async fn fetch(url: &str, token: Option<&str>) -> Result<(String, String)> {
    let url = url.trim_end_matches('/');
    let ledger = if url.ends_with("/ledger") {
        url.to_owned()
    } else {
        format!("{url}/ledger")
    };
    let origin = match ledger.find("/api/") {
        Some(i) => ledger[..i].to_owned(),
        None => bail!("{url} is not a result URL (…/api/results/<id>)"),
    };
    let client = reqwest::Client::new();
    let mut text = String::new();
    let mut cursor: Option<String> = None;
    loop {
        // a cursor is URL-safe base64
        let mut request = match &cursor {
            Some(c) => client.get(format!("{ledger}?cursor={c}")),
            None => client.get(&ledger),
        };
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {ledger}"))?;
        let status = response.status();
        cursor = response
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        if !status.is_success() {
            bail!("GET {ledger}: {status}: {body}");
        }
        text.push_str(&body);
        if cursor.is_none() {
            return Ok((text, origin));
        }
    }
}

/// The public key the server lists for `key_id`.
async fn listed_key(origin: &str, key_id: &str) -> Result<String> {
    let keys: Value = reqwest::get(format!("{origin}/api/ledger/keys"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["key_id"] == key_id)
        .and_then(|k| k["public_key"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("the server lists no key {key_id}"))
}

pub(crate) async fn run(args: VerifyLedgerArgs) -> Result<()> {
    let is_url = args.source.starts_with("http://") || args.source.starts_with("https://");
    let (text, origin) = if is_url {
        let (text, origin) = fetch(&args.source, args.token.as_deref()).await?;
        (text, Some(origin))
    } else if args.source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        (text, None)
    } else {
        let text = std::fs::read_to_string(&args.source)
            .with_context(|| format!("reading {}", args.source))?;
        (text, None)
    };
    let public_key = match (args.public_key, origin) {
        (Some(k), _) => k,
        (None, Some(origin)) => {
            let id = key_id(&text).context("the ledger has no seal with a key_id")?;
            listed_key(&origin, &id).await?
        }
        (None, None) => bail!("a ledger file needs --public-key (GET /api/ledger/keys lists them)"),
    };
    let verified = match tokio::task::spawn_blocking(move || {
        evidence::ledger::verify(&text, &public_key, evidence::threads())
    })
    .await?
    {
        Ok(v) => v,
        Err(failure) => {
            println!("{failure}");
            std::process::exit(1);
        }
    };
    println!("OK");
    let out = serde_json::json!({
        "result_id": verified.header.result_id,
        "candles": verified.replay.candles.len(),
        "metrics": verified.replay.metrics.summary_json(),
        "verdict": verified.evidence.verdict,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
