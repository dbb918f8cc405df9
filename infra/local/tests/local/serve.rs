//! The README's run command, end to end: `alphalab serve` brings the system up on free ports,
//! prints a token that works against the API, and stops its children on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    alphalab_devstack::proc::free_port().unwrap()
}

/// `alphalab serve` on the ports (API, Postgres, moto, issuer) with its own data dir, starting
/// its own Postgres and moto.
fn serve(ports: [u16; 5], data_dir: &std::path::Path) -> Command {
    let [api, pg, moto, issuer, ws] = ports.map(|p| p.to_string());
    let mut command = Command::new(env!("CARGO_BIN_EXE_alphalab"));
    command
        .args(["serve", "--port", &api, "--pg-port", &pg, "--ws-port", &ws])
        .args(["--moto-port", &moto, "--issuer-port", &issuer])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("AWS_ENDPOINT_URL");
    command
}

/// The lines `child` prints, as they come.
fn lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("a piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Sends `SIG<signal>` (`INT`: Ctrl-C, `TERM`) to `serve` and waits for a clean exit that
/// printed `stopped`.
fn stop(child: &mut std::process::Child, rx: &std::sync::mpsc::Receiver<String>, signal: &str) {
    Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop on SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l == "stopped"), "output: {rest:?}");
}

/// The lines until the token `serve` prints (within 90 s), and the token.
fn until_token(rx: &std::sync::mpsc::Receiver<String>) -> (Vec<String>, String) {
    let start = Instant::now();
    let mut output = Vec::new();
    while start.elapsed() < Duration::from_secs(90) {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            let token = line.trim().strip_prefix("export TOKEN=").map(str::to_owned);
            output.push(line);
            if let Some(token) = token {
                return (output, token);
            }
        }
    }
    panic!("no token printed; output: {output:#?}");
}

#[tokio::test]
async fn serve_prints_a_working_token_and_stops_cleanly_on_ctrl_c() {
    let data_dir = std::env::temp_dir().join(format!("alphalab-serve-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let (api, pg, moto, issuer, ws) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let ports = [api, pg, moto, issuer, ws];
    let mut child = serve(ports, &data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting alphalab serve");
    let rx = lines(&mut child);
    let (output, token) = until_token(&rx);
    assert!(
        output
            .iter()
            .any(|l| l.contains(&format!("http://127.0.0.1:{api}")))
    );

    let client = reqwest::Client::new();
    let me = client
        .get(format!("http://127.0.0.1:{api}/api/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["user"]["clerk_id"], "user_demo");
    assert_eq!(body["user"]["email"], "demo@alphalab.local");

    // `alphalab token` mints tokens the running stack accepts
    let minted = Command::new(env!("CARGO_BIN_EXE_alphalab"))
        .args(["token", "user_second", "--issuer-port", &issuer.to_string()])
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(minted.status.success());
    let second = String::from_utf8(minted.stdout).unwrap();
    let me = client
        .get(format!("http://127.0.0.1:{api}/api/users/me"))
        .bearer_auth(second.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // lambda.env: every variable the functions read, pointed at this stack, readable by its
    // owner only; each function's configuration builds from it alone
    let path = data_dir.join("lambda.env");
    assert!(
        output
            .iter()
            .any(|l| l.contains(&path.display().to_string())),
        "the path is printed: {output:?}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let file: std::collections::HashMap<String, String> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            // single-quoted when it holds more than URL-like characters (a dotenv file)
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(file["AWS_ENDPOINT_URL"], format!("http://127.0.0.1:{moto}"));
    assert_eq!(file["CONNECTIONS_TABLE"], "ConnectionsTable");
    assert!(file["DATABASE_URL"].contains(&format!(":{pg}/")));
    assert!(file["STEPS_QUEUE_URL"].ends_with(".fifo"));
    for name in [
        "ENCRYPTION_KEYS",
        "LEDGER_SIGNING_KEY",
        "CLERK_WEBHOOK_SECRET",
        "CLERK_JWKS_URL",
    ] {
        assert!(!file[name].is_empty(), "{name}");
    }
    let lookup = |name: &str| file.get(name).cloned();
    let env = platform::Env::from_lookup(lookup);
    use platform::FromEnv;
    alphalab_backtest_step::Config::from_env(&env).expect("backtest-step");
    alphalab_ws::Config::from_env(&env).expect("ws");
    alphalab_forward_tick::Config::from_env(&env).expect("forward-tick");
    alphalab_step_watchdog::Config::from_env(&env).expect("step-watchdog");
    assert_eq!(
        crate::functions::all(lookup).await.len(),
        11,
        "every HTTP function"
    );

    // the unauthenticated health probe and the merged OpenAPI document
    let health = client
        .get(format!("http://127.0.0.1:{api}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let served = client
        .get(format!("http://127.0.0.1:{api}/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.headers()["content-type"], "application/json");
    let served = served.text().await.unwrap();
    // the users function serves the committed document, in AWS as here
    assert_eq!(
        served,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json"))
            .unwrap()
    );
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["info"]["title"], "AlphaLab API");
    assert!(doc["paths"]["/api/users/me"]["get"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // the WebSocket API answers on --ws-port with the same token
    {
        use futures::{SinkExt, StreamExt};
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{ws}/?token={token}"))
                .await
                .expect("websocket");
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                r#"{"action":"ping"}"#.into(),
            ))
            .await
            .unwrap();
        let pong = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(pong.to_text().unwrap().contains("\"pong\""), "{pong:?}");
        assert!(
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{ws}/?token=bad"))
                .await
                .is_err()
        );
    }

    // the demo agent is seeded, once
    let agents: serde_json::Value = client
        .get(format!("http://127.0.0.1:{api}/api/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(agents["agents"][0]["name"], "Demo SMA cross", "{agents}");
    assert_eq!(agents["agents"][0]["model"], "baseline/sma-cross");

    // CORS for a local frontend, as API Gateway answers it in AWS
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            format!("http://127.0.0.1:{api}/api/users/me"),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let foreign = client
        .request(
            reqwest::Method::OPTIONS,
            format!("http://127.0.0.1:{api}/api/users/me"),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // the bundled market data is loaded
    let loaded = output.iter().any(|l| l.contains("bundled candles"));
    assert!(loaded, "output: {output:#?}");

    // a backtest of the demo agent on the bundled data runs through the local steps queue
    let started: serde_json::Value = client
        .post(format!("http://127.0.0.1:{api}/api/arena/backtest/start"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"agent_id": agents["agents"][0]["id"], "asset": "BTCUSDT",
            "timeframe": "1h", "start_date": "2022-01-01", "end_date": "2022-02-01", "speed": "instant"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = started["session"]["id"]
        .as_str()
        .expect("a session")
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let read: serde_json::Value = client
            .get(format!(
                "http://127.0.0.1:{api}/api/arena/sessions/{session}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if read["session"]["status"] == "completed" {
            assert_eq!(read["session"]["progress"]["cursor"], 744);
            assert!(read["session"]["result"]["metrics"]["total_return_pct"].is_number());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{read}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // the issuer key is readable by its owner only
    use std::os::unix::fs::PermissionsExt;
    let key = data_dir.join("issuer/signing-key.der");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());

    // a second serve on the same ports says what is going on and which flag moves it
    let second = serve(ports, &data_dir).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("port {api} is already in use"))
            && stderr.contains("another `alphalab serve` may be running")
            && stderr.contains("--port"),
        "{stderr}"
    );

    // Ctrl-C
    stop(&mut child, &rx, "INT");
    // its children are gone: nothing listens on their ports any more
    for port in [api, pg, moto, ws] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A frontend developer's setup: `serve` verifies the tokens of the Clerk instance named by
/// `CLERK_ISSUER` (here a local stand-in with its own keys) instead of starting its own issuer.
#[tokio::test]
async fn serve_verifies_an_external_clerk_instances_tokens_when_told_to() {
    let env = alphalab_devstack::TestEnv::new().await.unwrap();
    let clerk = alphalab_devstack::TokenIssuer::start().unwrap();
    let data_dir =
        std::env::temp_dir().join(format!("alphalab-serve-clerk-{}", std::process::id()));
    let (api, issuer_port, ws) = (free_port(), free_port(), free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_alphalab"));
    command
        .args([
            "serve",
            "--port",
            &api.to_string(),
            "--issuer-port",
            &issuer_port.to_string(),
            "--ws-port",
            &ws.to_string(),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .env("DATABASE_URL", &env.db.url)
        .env(
            "AWS_ENDPOINT_URL",
            alphalab_devstack::moto::test_endpoint().unwrap(),
        );
    for (name, value) in clerk.env() {
        command.env(name, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let mut output = Vec::new();
    let start = Instant::now();
    while !output
        .iter()
        .any(|l: &String| l.contains("Verifying the session tokens"))
    {
        assert!(start.elapsed() < Duration::from_secs(60), "{output:#?}");
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            output.push(line);
        }
    }
    assert!(
        !output.iter().any(|l| l.contains("export TOKEN=")),
        "no local token: {output:#?}"
    );
    // no local issuer was started
    assert!(std::net::TcpStream::connect(("127.0.0.1", issuer_port)).is_err());
    let client = reqwest::Client::new();
    let me = client
        .get(format!("http://127.0.0.1:{api}/api/users/me"))
        .bearer_auth(clerk.token("user_from_clerk").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["user"]["clerk_id"], "user_from_clerk");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A newcomer's first model agent: `serve --demo-models` answers OpenRouter's routes in process
/// with the demo models, seeds a key and a model agent, and a backtest of it runs with no
/// OpenRouter key of the user's and no network (HTTPS goes nowhere here); `alphalab watch`
/// prints where the session stands.
#[tokio::test]
async fn serve_with_demo_models_runs_a_model_agent_with_no_key_and_no_network() {
    let env = alphalab_devstack::TestEnv::new().await.unwrap();
    let data_dir = std::env::temp_dir().join(format!("alphalab-serve-demo-{}", std::process::id()));
    let (api, issuer, ws) = (free_port(), free_port(), free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_alphalab"));
    command
        .args(["serve", "--demo-models", "--demo-latency-ms", "5"])
        .args([
            "--port",
            &api.to_string(),
            "--issuer-port",
            &issuer.to_string(),
        ])
        .args(["--ws-port", &ws.to_string()])
        .arg("--data-dir")
        .arg(&data_dir)
        .env("DATABASE_URL", &env.db.url)
        .env(
            "AWS_ENDPOINT_URL",
            alphalab_devstack::moto::test_endpoint().unwrap(),
        )
        // a queue of its own (serve's default one is shared by every stack on this moto)
        .env("STEPS_QUEUE_URL", &env.steps.url)
        .env("STEPS_DLQ_URL", &env.steps.dlq_url)
        .env_remove("OPENROUTER_BASE_URL")
        // no network: anything over HTTPS goes to a port where nothing listens
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (output, token) = until_token(&lines(&mut child));
    assert!(
        output.iter().any(|l| l.contains("demo/rsi-reversion")),
        "{output:#?}"
    );
    let client = reqwest::Client::new();
    let agents: serde_json::Value = client
        .get(format!("http://127.0.0.1:{api}/api/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["model"] == "demo/rsi-reversion")
        .unwrap_or_else(|| panic!("{agents}"))
        .clone();
    let started: serde_json::Value = client
        .post(format!("http://127.0.0.1:{api}/api/arena/backtest/start"))
        .bearer_auth(&token)
        .json(
            &serde_json::json!({"agent_id": agent["id"], "asset": "BTCUSDT",
            "timeframe": "1h", "start_date": "2022-01-01", "end_date": "2022-01-08",
            "speed": "instant"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = started["session"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let read: serde_json::Value = client
            .get(format!(
                "http://127.0.0.1:{api}/api/arena/sessions/{session}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match read["session"]["status"].as_str() {
            Some("completed") => break read["session"].clone(),
            Some("failed") => panic!("{read}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{read}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["progress"]["cursor"], 168);
    assert!(done["model_calls"].as_i64().unwrap() >= 168, "{done}");
    assert_eq!(done["model_cost_usd"], 0.0, "the demo models are free");
    // `alphalab watch` prints where it stands (over: nothing follows) and exits
    let watched = Command::new(env!("CARGO_BIN_EXE_alphalab"))
        .args([
            "watch",
            &session,
            "--ws-url",
            &format!("ws://127.0.0.1:{ws}/"),
        ])
        .args(["--token", &token])
        .output()
        .unwrap();
    assert!(watched.status.success(), "{watched:?}");
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&watched.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["event"], "subscribed");
    assert_eq!(first["data"]["session"]["status"], "completed");
    assert_eq!(first["data"]["session"]["finished"], true);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// The local exchange of the forward tests: real BTCUSDT 1h candles of February 2021, its clock
/// at `now` (epoch ms).
async fn recorded_exchange(now: i64) -> alphalab_devstack::binance::MockBinance {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/market/BTCUSDT-1h.csv");
    let rows = engine::parse_csv(&std::fs::read_to_string(file).unwrap())
        .unwrap()
        .into_iter()
        .filter(|c| (1_612_137_600_000..1_614_556_800_000).contains(&c.time))
        .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
        .collect();
    alphalab_devstack::binance::MockBinance::recorded("BTCUSDT", "1h", rows, now)
        .await
        .unwrap()
}

/// A `serve` child stopped when the test ends early (a failed assertion): SIGTERM, so that it
/// stops its Postgres and moto too, then SIGKILL if it has not exited within 30 s.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_forward_session_survives_a_restart_of_serve_and_decides_what_closed_meanwhile_once() {
    const HOUR: i64 = 3_600_000;
    // 2021-02-10T12:30Z: the 12:00 candle forming
    let at = |h: i64| 1_612_958_400_000 + h * HOUR;
    let exchange = recorded_exchange(at(0) + HOUR / 2).await;
    let data_dir =
        std::env::temp_dir().join(format!("alphalab-serve-forward-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let ports = [
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ];
    let [api, _, _, _, ws] = ports;
    let start = || {
        let mut child = serve(ports, &data_dir)
            .args(["--tick-interval", "1"])
            .env("BINANCE_BASE_URL", &exchange.base_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting alphalab serve");
        let rx = lines(&mut child);
        let child = Serving(child);
        let (output, token) = until_token(&rx);
        (child, rx, output, token)
    };
    let (mut child, rx, output, token) = start();
    assert!(
        output
            .iter()
            .any(|l| l.contains(&exchange.base_url) && l.contains("forward-tick every 1 s")),
        "{output:#?}"
    );
    let client = reqwest::Client::new();
    let get = |path: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .get(format!("http://127.0.0.1:{api}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let agents = get("/api/agents".into()).await;
    let agent = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["model"] == "baseline/sma-cross")
        .unwrap_or_else(|| panic!("{agents}"))["id"]
        .clone();
    let started: serde_json::Value = client
        .post(format!("http://127.0.0.1:{api}/api/arena/forward/start"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["session"]["id"].as_str().unwrap().to_owned();
    let until = |cursor: i64| {
        let (get, id) = (&get, id.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let s = get(format!("/api/arena/sessions/{id}")).await["session"].clone();
                if s["progress"]["cursor"] == cursor && !s["warmup"].is_null() {
                    return s;
                }
                assert!(Instant::now() < deadline, "cursor not {cursor}: {s}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    until(0).await;
    // two candles close; the tick of the running stack decides them
    exchange.set_now(at(2) + HOUR / 2);
    let before = until(2).await;
    assert_eq!(before["progress"]["last_candle"], "2021-02-10T13:00:00Z");

    // stopped (SIGTERM); three candles close while it is down; started again, not --fresh
    stop(&mut child.0, &rx, "TERM");
    exchange.set_now(at(5) + HOUR / 2);
    let (mut child, rx, output, token) = start();
    assert!(
        output
            .iter()
            .any(|l| l.contains("resumed 1 unfinished sessions")),
        "{output:#?}"
    );
    let ws_url = output
        .iter()
        .find_map(|l| l.trim().strip_prefix("WebSocket"))
        .and_then(|l| l.trim().strip_suffix("?token=<token>"))
        .unwrap_or_else(|| panic!("{output:#?}"))
        .to_owned();
    assert!(ws_url.contains(&ws.to_string()), "{ws_url}");
    let (mut watcher, _) = tokio_tungstenite::connect_async(format!("{ws_url}?token={token}"))
        .await
        .unwrap();
    use futures::{SinkExt, StreamExt};
    watcher
        .send(tokio_tungstenite::tungstenite::Message::Text(
            serde_json::json!({"action": "subscribe", "session_id": id})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let after = until(5).await;
    assert_eq!(after["progress"]["last_candle"], "2021-02-10T16:00:00Z");
    assert_eq!(after["status"], "running");
    // five candles decided: the two before, the three after, none twice (the engine refuses a
    // candle that is not after the last one); stopped, the result counts them
    client
        .post(format!(
            "http://127.0.0.1:{api}/api/arena/forward/{id}/stop"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // the stream's seq continues across the restart: the subscription's last_seq counts the
    // events before it, and every later event follows it, gapless, to session_completed
    let mut last_seq = None;
    let mut seqs = Vec::new();
    let mut completed = false;
    while !completed {
        let frame = tokio::time::timeout(Duration::from_secs(30), watcher.next())
            .await
            .expect("events until session_completed")
            .unwrap()
            .unwrap();
        let Ok(text) = frame.into_text() else {
            continue;
        };
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let events = match event["event"].as_str() {
            Some("subscribed") => {
                last_seq = event["data"]["session"]["last_seq"].as_u64();
                continue;
            }
            Some("batch") => event["data"]["events"].as_array().unwrap().clone(),
            _ => vec![event],
        };
        for e in events {
            completed |= e["event"] == "session_completed";
            seqs.extend(e["seq"].as_u64());
        }
    }
    let last_seq = last_seq.expect("subscribed");
    assert!(last_seq > 0, "numbered before the restart");
    // an event numbered before the subscription may still arrive after it: a client drops it
    seqs.retain(|s| *s > last_seq);
    assert_eq!(
        seqs.first(),
        Some(&(last_seq + 1)),
        "{seqs:?} after {last_seq}"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless: {seqs:?}"
    );
    let done = get(format!("/api/arena/sessions/{id}")).await["session"].clone();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["metrics"]["candles"], 5, "{done}");
    stop(&mut child.0, &rx, "TERM");
    let _ = std::fs::remove_dir_all(&data_dir);
}
